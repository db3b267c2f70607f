"""The run report's analysis: each benchmark's headlines held against the hardware's physical limit and the job's
price, the run's validity (node health, transport, nodes and ranks, spread across repeats), and the comparison with a
baseline run. What a benchmark means (its headlines, limit kinds, pricing) is its definition in
workloads/benchmarks.py; rackform/render turns the Report into a table, CSV, JSON and HTML.

An unknown figure is None all the way through and printed as "unknown" (empty in CSV, null in JSON), never as 0. A
limit basis or per-dollar unit of None means no limit or per-dollar figure applies to that metric at all.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache, cached_property
from typing import Any

from workloads.benchmarks import BENCHMARKS, Headline, Pricing
from workloads.results import REPEAT_LABEL, ResultRecord

from ..numbers import num
from ..reference.peaks import Limits
from ..spec.models import FsxLustre
from .summary import HeadlineFigure, figure, headline_key, headlines, metric_key

LimitsOf = Callable[[str], "Limits | None"]

ACCELERATOR_TIERS = ("gpu", "trainium")
GIB_PER_TIB = 1024
SECONDS_PER_HOUR = 3600
LOCAL_CAVEAT = ("LOCAL REHEARSAL: rows marked [local] were measured on this machine, not on the instance type they "
                "name; their % of limit and per-dollar figures describe this machine priced as that instance")
TWO_NODE_NOTE = ("at 2 nodes NCCL's hierarchical algorithms can report bus bandwidth above the network line rate: "
                 "not an error")
TRAINIUM_DEVICE_NOTE = ("on Trainium one torch-xla device may be a single NeuronCore, not the whole chip the peak "
                        "describes (unconfirmed): this figure may understate the hardware")
SOCKET_NOTE = ("this collective ran over TCP sockets, not EFA: not held against the EFA line rate; check the EFA "
               "devices and FI_PROVIDER of the job")


def higher_is_better(name: str) -> bool:
    return "latency" not in name and not name.endswith(("_ms", "_us"))


def is_local(record: ResultRecord) -> bool:
    return record.environment.get("executor") == "local"


# --- validity: node health, transport, ranks -------------------------------------------------------------------

def health_of(record: ResultRecord) -> tuple[bool | None, str | None]:
    """(healthy, why not) from the record's validity, which the runner sets from every node's health step (schema 2);
    None for a schema-1 record, written before there was a health step."""
    if record.validity == "invalid":
        return False, record.invalid_reason or "a node failed its health check"
    return (True, None) if record.schema_version >= 2 else (None, None)


def transport_of(record: ResultRecord) -> str | None:
    """efa, socket, local or unknown, as the collective's own log showed it; None where not recorded."""
    if record.fabric is None:
        return None
    return f"{record.fabric} x{record.efa_devices}" if record.fabric == "efa" and record.efa_devices else record.fabric


def ranks_of(record: ResultRecord) -> int | None:
    for key in ("tool_world_size", "tool_ranks", "tool_nranks"):
        if (v := record.environment.get(key, "")).isdigit():
            return int(v)
    return None


# --- limits ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limit:
    value: float | None  # None: a limit applies but its figure is unknown
    unit: str
    basis: str  # what the figure is, or why it is unknown
    notes: tuple[str, ...] = ()
    flag: bool = False  # a figure the reader must look at (a collective over sockets on an EFA instance)


def bus_limit(node_count: int, tier: str, limits: Limits | None, transport: str | None = None) -> Limit:
    """Bus bandwidth's ceiling: the network line rate across nodes, the per-accelerator intra-node link on one."""
    if node_count >= 2:
        gbps = limits.network_gbps if limits else None
        if transport == "socket" and limits is not None and limits.efa_interfaces:  # TCP: not what EFA carries
            return Limit(None, "GB/s", "over TCP sockets, not EFA: not held against the EFA line rate",
                         (SOCKET_NOTE,), flag=True)
        if limits is None or gbps is None:
            return Limit(None, "GB/s", "network line rate unknown")
        efa = f", {limits.efa_interfaces} EFA" if limits.efa_interfaces else ", no EFA"
        notes = [TWO_NODE_NOTE] if node_count == 2 and tier == "gpu" else []
        if limits.network_is_burst:
            notes.append(f"EC2 lists 'Up to {gbps:g} Gigabit': a burst ceiling, not sustained bandwidth")
        return Limit(gbps / 8, "GB/s", f"network line rate {gbps:g} Gbps/8{efa}", tuple(notes))
    link = limits.intra_node_link_gb_s_per_accelerator if limits else None
    name = (limits.intra_node_link if limits else None) or "link"
    if link is None:
        return Limit(None, "GB/s", f"intra-node {name} bandwidth unknown")
    if name.startswith("NVLink"):
        # NVLink is quoted as both directions added up; bus bandwidth counts one direction.
        return Limit(link / 2, "GB/s", f"intra-node {name} {link:g} GB/s per GPU, both directions: "
                     f"{link / 2:g} GB/s each way")
    return Limit(link, "GB/s", f"intra-node {name} {link:g} GB/s per accelerator (direction unconfirmed)")


def gemm_limit(dtype: str | None, tier: str, limits: Limits | None) -> Limit:
    """torchbench's tflops_max is one device's, so it is held against one accelerator's peak."""
    notes = (TRAINIUM_DEVICE_NOTE,) if tier == "trainium" else ()
    if dtype != "bf16":
        return Limit(None, "TFLOP/s", f"no {dtype} peak in rackform/reference/data/limits.json")
    peak = limits.bf16_dense_tflops_per_accelerator if limits else None
    if peak is None:
        return Limit(None, "TFLOP/s", "peak dense BF16 unknown for this type")
    return Limit(peak, "TFLOP/s", f"peak dense BF16 {peak:g} TFLOP/s per accelerator", notes)


def fsx_limit(fsx: FsxLustre | None) -> Limit:
    """What the file system's size buys: per-unit throughput (MB/s per TiB) x capacity in TiB."""
    if fsx is None:
        return Limit(None, "MB/s", "FSx throughput unknown (no plan given, or the plan has no FSx)")
    if fsx.per_unit_storage_throughput is None:
        return Limit(None, "MB/s", f"FSx {fsx.deployment_type} has no per-unit throughput in the plan")
    tib = fsx.storage_capacity_gib / GIB_PER_TIB
    return Limit(fsx.per_unit_storage_throughput * tib, "MB/s",
                 f"FSx {fsx.deployment_type} {fsx.per_unit_storage_throughput} MB/s/TiB x {tib:.4g} TiB")


def _fsx_or_local(record: ResultRecord, h: Headline, limits: Limits | None, fsx: FsxLustre | None) -> Limit:
    if is_local(record):  # the local executor writes to a temporary directory through the page cache
        return Limit(None, "MB/s", "measured on a local directory, not on FSx: no FSx limit applies")
    return fsx_limit(fsx)


# A Headline's limit kind -> its lookup in rackform/reference/peaks.py (or the plan's FSx). A new kind is one entry
# here.
LIMIT_KINDS: dict[str, Callable[[ResultRecord, Headline, Limits | None, FsxLustre | None], Limit]] = {
    "network_line_rate": lambda r, h, lim, fsx: bus_limit(r.node_count, r.tier, lim, r.fabric),
    "peak_tflops": lambda r, h, lim, fsx: gemm_limit(dict(h.labels).get("dtype"), r.tier, lim),
    "fsx_throughput": _fsx_or_local,
}


def limit_for(record: ResultRecord, h: Headline, limits: Limits | None, fsx: FsxLustre | None) -> Limit | None:
    """The physical limit a headline is held against; None where no limit applies to it."""
    return None if h.limit is None else LIMIT_KINDS[h.limit](record, h, limits, fsx)


def percent(value: float, limit: float | None) -> float | None:
    return None if limit is None or limit <= 0 else value / limit * 100


# --- performance per dollar -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PerDollar:
    value: float | None  # None: unknown (no price, or no device count to scale by)
    unit: str
    basis: str
    notes: tuple[str, ...] = ()


def devices_per_job(record: ResultRecord, limits: Limits | None) -> int | None:
    """How many devices like the measured one the job's price pays for: torchbench's gemm and inference run on one
    device, so an accelerator instance's throughput is that device's times its accelerators. A CPU device is the
    whole instance, and so is whatever the local executor measured (this machine's CPU, not an accelerator)."""
    if record.tier not in ACCELERATOR_TIERS or is_local(record):
        return record.node_count
    if limits is None or not limits.accelerators:
        return None
    return limits.accelerators * record.node_count


def _rate(record: ResultRecord, name: str) -> float | None:
    """The largest finite value of a metric over its sweep; with repeats, the median of each repeat's largest."""
    best: dict[str, float] = {}
    for m in record.metrics:
        if m.name == name and math.isfinite(m.value):
            r = m.labels.get(REPEAT_LABEL, "")
            if m.value > best.get(r, -math.inf):  # a comparison, not max(): this runs for every point of a sweep
                best[r] = m.value
    return statistics.median(best.values()) if best else None


def per_dollar(record: ResultRecord, value: float, pricing: Pricing, limits: Limits | None) -> PerDollar:
    """Work bought per dollar of the job's nodes (price_usd_per_hour covers every node)."""
    unit = pricing.unit
    rate = value if pricing.rate is None else _rate(record, pricing.rate)
    if rate is None:
        return PerDollar(None, unit, f"no {pricing.rate} in the record")
    notes: list[str] = []
    devices = 1
    if pricing.per_device:
        if (per_job := devices_per_job(record, limits)) is None:
            return PerDollar(None, unit, f"accelerator count of {record.instance_type} unknown")
        devices = per_job
        if record.tier in ACCELERATOR_TIERS and not is_local(record):
            notes.append(f"per instance: one device measured x {devices // record.node_count} accelerators, "
                         "assumed to run alike")
            if record.tier == "trainium":
                notes.append(TRAINIUM_DEVICE_NOTE)
    usd = record.price_usd_per_hour
    if usd is None:
        return PerDollar(None, unit, "price unknown", tuple(notes))
    if usd <= 0:
        return PerDollar(None, unit, f"price {usd:g} $/h: per-dollar figure undefined", tuple(notes))
    scale = f" x {pricing.scale:g}" if pricing.scale != 1 else ""
    what = f"{pricing.rate} max " if pricing.rate else ""
    basis = (f"{what}{num(rate)} {pricing.rate_unit}" + (f" x {devices} devices" if pricing.per_device else "")
             + f" x 3600{scale} / $/h")
    return PerDollar(rate * devices * SECONDS_PER_HOUR * pricing.scale / usd, unit, basis, tuple(notes))


# --- rows ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    run_id: str
    benchmark: str
    rack: str
    node_group: str
    tier: str
    instance_type: str
    node_count: int
    status: str  # the record's status; "error" for a succeeded record with no headline
    reason: str | None
    local: bool
    metric: str | None  # short label (busbw, bf16, p50...); None for a record without a headline
    metric_key: str | None
    value: float | None  # the median over repeats
    unit: str | None
    higher_is_better: bool
    limit: float | None
    limit_unit: str | None
    limit_basis: str | None  # None: no limit applies
    pct_of_limit: float | None
    usd_per_hour: float | None
    per_dollar: float | None
    per_dollar_unit: str | None  # None: no per-dollar figure applies
    per_dollar_basis: str | None
    notes: tuple[str, ...]
    # Validity: whether the figure may be compared at all.
    priced: bool = False  # the figure the benchmark is priced by (advise ranks it, the per-dollar chart draws it)
    healthy: bool | None = None  # the node health check before the run; None: not recorded
    transport: str | None = None  # efa (x devices) | socket | local | unknown; None: not recorded
    ranks: int | None = None
    repeats: int | None = None
    low: float | None = None
    high: float | None = None
    spread_pct: float | None = None
    unstable: bool = False  # spread across repeats over 10%
    flagged: bool = False  # shown in red: a collective over sockets on an EFA instance

    @property
    def group(self) -> tuple[str, str, str]:
        return self.benchmark, self.rack, self.node_group

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return self.benchmark, self.rack, self.node_group, self.metric_key

    @property
    def valid(self) -> bool:
        """A figure that may enter plots and advice: measured, on a node that did not fail its health check."""
        return self.status == "succeeded" and self.value is not None and self.healthy is not False


def record_rows(record: ResultRecord, limits: Limits | None, fsx: FsxLustre | None) -> list[Row]:
    """One row per headline the record has; one bare row when it failed. A succeeded record with none of its
    benchmark's headlines is an error row naming what was expected: never left out in silence."""
    healthy, sick = health_of(record)
    bare = Row(run_id=record.run_id, benchmark=record.benchmark, rack=record.rack, node_group=record.node_group,
               tier=record.tier, instance_type=record.instance_type, node_count=record.node_count,
               status=record.status, reason=record.reason, local=is_local(record),
               usd_per_hour=record.price_usd_per_hour, healthy=healthy, transport=transport_of(record),
               ranks=ranks_of(record), metric=None, metric_key=None, value=None, unit=None, higher_is_better=True,
               limit=None, limit_unit=None, limit_basis=None, pct_of_limit=None, per_dollar=None,
               per_dollar_unit=None, per_dollar_basis=None, notes=())
    if record.status != "succeeded":
        return [bare]
    pricing = BENCHMARKS[record.benchmark].priced_by if record.benchmark in BENCHMARKS else None
    rows = []
    for h in headlines(record.benchmark):
        if (f := figure(record, h)) is None:
            continue
        if f.failed:  # NaN or infinite: the tool measured nothing, so it is no figure at all
            rows.append(replace(bare, status="failed", reason=f"{h.label}: {h.metric} is {f.value}, a failed "
                                "measurement"))
            continue
        rows.append(_row(record, h, f, bare, pricing, limits, fsx, sick))
    if rows:
        return rows
    expected = ", ".join(headline_key(h) for h in headlines(record.benchmark)) or "none declared"
    got = ", ".join(dict.fromkeys(metric_key(m.name, m.labels) for m in record.metrics[:20])) or "no metrics"
    return [replace(bare, status="error", reason=f"succeeded, but none of its headline metrics ({expected}) is in "
                    f"the record (it has {got})")]


def _row(record: ResultRecord, h: Headline, f: HeadlineFigure, bare: Row, pricing: Pricing | None,
         limits: Limits | None, fsx: FsxLustre | None, sick: str | None) -> Row:
    lim = limit_for(record, h, limits, fsx)
    priced = pricing is not None and pricing.headline == h.label
    pd = per_dollar(record, f.value, pricing, limits) if priced and pricing else None
    notes = [*(lim.notes if lim else ()), *(pd.notes if pd else ())]
    if sick:
        notes.append(f"node health check failed ({sick}): not a valid figure, left out of plots and advice")
    if f.unstable:
        notes.append(f"unstable: spread across {f.repeats} repeats is {num(f.spread_pct or 0)}%, over 10%")
    return replace(
        bare, metric=h.label, metric_key=headline_key(h), value=f.value, unit=f.unit,
        higher_is_better=higher_is_better(h.metric), limit=lim.value if lim else None,
        limit_unit=lim.unit if lim else None, limit_basis=lim.basis if lim else None,
        pct_of_limit=percent(f.value, lim.value) if lim else None, per_dollar=pd.value if pd else None,
        per_dollar_unit=pd.unit if pd else None, per_dollar_basis=pd.basis if pd else None,
        notes=tuple(dict.fromkeys(notes)), priced=priced, repeats=f.repeats, low=f.low, high=f.high,
        spread_pct=f.spread_pct, unstable=f.unstable, flagged=bool(lim and lim.flag))


def report_rows(records: Iterable[ResultRecord], limits_of: LimitsOf, fsx: FsxLustre | None = None) -> list[Row]:
    """Rows grouped by benchmark (in BENCHMARKS order), so that tiers running the same work sit together. Each record
    becomes its rows as it comes and is not kept: the records may be a stream of any length."""
    limits_of = once_per_type(limits_of)
    return ordered_rows(row for r in records for row in record_rows(r, limits_of(r.instance_type), fsx))


def once_per_type(limits_of: LimitsOf) -> LimitsOf:
    """`limits_of`, asked once per instance type: a run of 10,000 records has a handful of types, and each answer
    is a validated model built from the catalog and limits.json."""
    return cache(limits_of)


def ordered_rows(rows: Iterable[Row]) -> list[Row]:
    """Rows by benchmark (BENCHMARKS order), rack and node group; a record's own rows keep their order."""
    order = {b: i for i, b in enumerate(BENCHMARKS)}
    return sorted(rows, key=lambda r: (order.get(r.benchmark, len(order)), r.benchmark, r.rack, r.node_group))


# --- baseline comparison ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResultChange:
    benchmark: str
    rack: str
    node_group: str
    metric: str  # short label, or "status"
    metric_key: str | None
    unit: str | None
    baseline: float | None
    current: float | None
    change_pct: float | None  # None: no baseline, or a baseline of 0
    higher_is_better: bool
    regression: bool
    note: str | None


def change_pct(current: float, baseline: float) -> float | None:
    return None if baseline == 0 else (current - baseline) / abs(baseline) * 100


def is_regression(change: float | None, higher_better: bool, threshold_pct: float) -> bool:
    if change is None:
        return False
    return change < -threshold_pct if higher_better else change > threshold_pct


def compare(current: Sequence[Row], baseline: Sequence[Row], threshold_pct: float) -> list[ResultChange]:
    """Per (benchmark, rack, node group, metric): the change from the baseline, flagged beyond the threshold in the
    worse direction. A job that succeeded in the baseline and fails now is a regression too."""
    base = {r.key: r for r in baseline if r.metric_key is not None}
    base_ok = {r.group for r in baseline if r.status == "succeeded"}
    changes = []
    for row in current:
        if row.metric_key is None:
            if row.status != "succeeded" and row.group in base_ok:
                changes.append(ResultChange(*row.group, metric="status", metric_key=None, unit=None, baseline=None,
                                      current=None, change_pct=None, higher_is_better=True, regression=True,
                                      note=f"{row.status} now, succeeded in the baseline"))
            continue
        before = base.get(row.key)
        note = None
        comparable = False
        if before is None:
            note = "not in the baseline"
        elif before.instance_type != row.instance_type or before.node_count != row.node_count:
            note = (f"hardware changed: {before.node_count} x {before.instance_type} -> "
                    f"{row.node_count} x {row.instance_type}: shown, not judged")
        elif before.local != row.local:
            note = "one side is a local rehearsal, the other is not: shown, not judged"
        else:
            comparable = True
        pct = (change_pct(row.value, before.value)
               if before is not None and before.value is not None and row.value is not None else None)
        if before is not None and pct is None:
            note = "baseline value is 0: no % change"
        assert row.metric is not None  # a row with a metric key names its metric
        changes.append(ResultChange(*row.group, metric=row.metric, metric_key=row.metric_key, unit=row.unit,
                              baseline=before.value if before else None, current=row.value, change_pct=pct,
                              higher_is_better=row.higher_is_better,
                              regression=comparable and is_regression(pct, row.higher_is_better, threshold_pct),
                              note=note))
    return changes


# --- bus bandwidth by message size -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Series:
    label: str
    benchmark: str
    tier: str
    rack: str
    node_group: str
    instance_type: str
    node_count: int
    placement: str
    local: bool
    sizes: tuple[int, ...]
    busbw: tuple[float, ...]  # GB/s


# Benchmarks whose headline is bus bandwidth: their sweeps are drawn by message size.
BUS_BENCHMARKS = tuple(b.name for b in BENCHMARKS.values() if any(h.metric == "busbw_max" for h in b.headlines))


def busbw_series(records: Iterable[ResultRecord]) -> list[Series]:
    """One line per all-reduce record: in-place rows where the tool reports them (what torch.distributed does),
    else the only placement there is (nccom-test)."""
    out = []
    for r in records:
        if r.benchmark not in BUS_BENCHMARKS or r.status != "succeeded" or health_of(r)[0] is False:
            continue
        rows = [m for m in r.metrics if m.name == "busbw" and m.size_bytes is not None]
        placements = {m.labels.get("placement", "") for m in rows}
        placement = "in-place" if "in-place" in placements else min(placements, default="")
        by_size: dict[int, list[float]] = {}
        for m in rows:
            if m.size_bytes is not None and m.labels.get("placement", "") == placement and math.isfinite(m.value):
                by_size.setdefault(m.size_bytes, []).append(m.value)
        # One point per size: the median over the repeats, as the headline is (a line through every repeat zigzags).
        points = sorted((size, statistics.median(values)) for size, values in by_size.items())
        if not points:
            continue
        tool = "" if r.benchmark == "allreduce" else f" {r.benchmark.removeprefix('allreduce-')}"
        label = (f"{r.tier}{tool}: {r.rack}/{r.node_group} ({r.instance_type} x{r.node_count})"
                 + (" [local]" if is_local(r) else ""))
        out.append(Series(label, r.benchmark, r.tier, r.rack, r.node_group, r.instance_type, r.node_count,
                          placement, is_local(r), tuple(p[0] for p in points), tuple(p[1] for p in points)))
    return out


# --- the report ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    run_id: str
    baseline_run_id: str | None
    threshold_pct: float
    rows: tuple[Row, ...]
    changes: tuple[ResultChange, ...]
    series: tuple[Series, ...]
    # Objects of the run that are not data (store.BadObject: unreadable or tampered), shown apart from the rows.
    problems: tuple[Any, ...] = ()

    @property
    def local(self) -> bool:
        return any(r.local for r in self.rows)

    @property
    def errors(self) -> list[Row]:
        """Succeeded records that yielded no headline: an error of the report, which exits 1."""
        return [r for r in self.rows if r.status == "error"]

    @property
    def regressions(self) -> list[ResultChange]:
        return [c for c in self.changes if c.regression]

    @cached_property
    def _changes_by_key(self) -> dict[tuple[str, str, str, str | None], ResultChange]:
        """Each change by (benchmark, rack, node group, metric key), a status change under None: built once, so a
        table of n rows looks its changes up in O(n), not O(n x changes)."""
        index: dict[tuple[str, str, str, str | None], ResultChange] = {}
        for c in self.changes:
            index.setdefault((c.benchmark, c.rack, c.node_group, None if c.metric == "status" else c.metric_key), c)
        return index

    def change_for(self, row: Row) -> ResultChange | None:
        return self._changes_by_key.get((*row.group, row.metric_key or None))


def build_report(records: Iterable[ResultRecord], *, limits_of: LimitsOf, fsx: FsxLustre | None = None,
                 baseline: Iterable[ResultRecord] | None = None, baseline_run_id: str | None = None,
                 threshold_pct: float = 5.0, problems: Sequence[Any] | Callable[[], Sequence[Any]] = (),
                 series: bool = True) -> Report:
    """The report of `records`, which may be a stream read once (ResultStore.iter_records): each record becomes its
    rows and its bus bandwidth line as it comes and is then dropped, so memory holds rows, not records. `problems`
    may be a callable, asked once the records (and the baseline) are read: a stream's problems are known at its end.
    `series`: whether to draw each all-reduce's bus bandwidth by message size, which only the HTML and JSON show
    (a tenth of the report's work at 10,000 records)."""
    run_id, rows, lines = "", [], []
    limits_of = once_per_type(limits_of)
    for record in records:
        run_id = run_id or record.run_id
        rows += record_rows(record, limits_of(record.instance_type), fsx)
        if series:
            lines += busbw_series((record,))
    rows = ordered_rows(rows)
    changes = compare(rows, report_rows(baseline, limits_of, fsx), threshold_pct) if baseline is not None else []
    found = problems() if callable(problems) else problems
    return Report(run_id, baseline_run_id, threshold_pct, tuple(rows), tuple(changes), tuple(lines), tuple(found))
