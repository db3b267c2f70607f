"""The run report: each benchmark's headline held against the hardware's physical limit and the job's price, and
compared with a baseline run. Rendered as a terminal table, CSV, JSON and one self-contained HTML page.

Pure functions turn records, limits and the FSx configuration into rows; the renderers only format rows. An unknown
figure is None all the way through and printed as "unknown" (empty in CSV, null in JSON), never as 0. "n/a" means no
limit or per-dollar figure applies to that metric at all.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from workloads.results import Metric, ResultRecord
from workloads.store import problem_dicts, problem_lines

from ..limits import Limits
from ..spec import FsxLustre
from ..textsafe import visible
from .summary import HEADLINES, find, fmt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LimitsOf = Callable[[str], "Limits | None"]

ALLREDUCE = ("allreduce", "allreduce-nccl", "allreduce-nccom")
ACCELERATOR_TIERS = ("gpu", "trainium")
GIB_PER_TIB = 1024
SECONDS_PER_HOUR = 3600
UNKNOWN = "unknown"
NOT_APPLICABLE = "n/a"
LOCAL_CAVEAT = ("LOCAL REHEARSAL: rows marked [local] were measured on this machine, not on the instance type they "
                "name; their % of limit and per-dollar figures describe this machine priced as that instance")
TWO_NODE_NOTE = ("at 2 nodes NCCL's hierarchical algorithms can report bus bandwidth above the network line rate: "
                 "not an error")
TRAINIUM_DEVICE_NOTE = ("on Trainium one torch-xla device may be a single NeuronCore, not the whole chip the peak "
                        "describes (unconfirmed): this figure may understate the hardware")

# The metric each benchmark is priced by: the one `rackform advise` ranks and the per-dollar chart draws.
PER_DOLLAR_HEADLINE: dict[str, str] = {
    "allreduce": "busbw_max",
    "gemm": "tflops_max{dtype=bf16}",
    "inference": "tokens_per_second",
    "storage": "read_bw{test=seq-read}",
    "cpu": "events_per_second",
}


def metric_key(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner else name


def higher_is_better(name: str) -> bool:
    return "latency" not in name and not name.endswith(("_ms", "_us"))


def is_local(record: ResultRecord) -> bool:
    return record.environment.get("executor") == "local"


# --- limits ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limit:
    value: float | None  # None: a limit applies but its figure is unknown
    unit: str
    basis: str  # what the figure is, or why it is unknown
    notes: tuple[str, ...] = ()


def bus_limit(node_count: int, tier: str, limits: Limits | None) -> Limit:
    """Bus bandwidth's ceiling: the network line rate across nodes, the per-accelerator intra-node link on one."""
    if node_count >= 2:
        gbps = limits.network_gbps if limits else None
        if gbps is None:
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
        return Limit(None, "TFLOP/s", f"no {dtype} peak in rackform/data/limits.json")
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


def limit_for(record: ResultRecord, metric: Metric, limits: Limits | None, fsx: FsxLustre | None) -> Limit | None:
    """The physical limit a headline metric is held against; None where no limit applies to it."""
    if record.benchmark in ALLREDUCE and metric.name == "busbw_max":
        return bus_limit(record.node_count, record.tier, limits)
    if record.benchmark == "gemm" and metric.name == "tflops_max":
        return gemm_limit(metric.labels.get("dtype"), record.tier, limits)
    if record.benchmark == "storage" and metric.name in ("read_bw", "write_bw"):
        if is_local(record):  # the local executor writes to a temporary directory through the page cache
            return Limit(None, "MB/s", "measured on a local directory, not on FSx: no FSx limit applies")
        return fsx_limit(fsx)
    return None


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


def per_dollar(record: ResultRecord, metric: Metric, limits: Limits | None) -> PerDollar | None:
    """Work bought per dollar of the job's nodes (price_usd_per_hour covers every node); None where not applicable."""
    usd = record.price_usd_per_hour
    key = metric_key(metric.name, metric.labels)
    if record.benchmark in ALLREDUCE and metric.name == "busbw_max":
        # Bus bandwidth is a per-link figure; data all-reduced is algbw, the largest over the sweep.
        algbw = max((m.value for m in record.metrics if m.name == "algbw" and math.isfinite(m.value)),
                    default=None)
        if algbw is None:
            return PerDollar(None, "TB/$", "no algbw in the record")
        return _per_hour(algbw * SECONDS_PER_HOUR / 1000, usd, "TB/$",
                         f"algbw max {fmt(algbw)} GB/s x 3600 / 1000 / $/h")
    if record.benchmark == "gemm" and metric.name == "tflops_max":
        return _scaled(record, metric, limits, "TFLOP/$", "TFLOP/s")
    if record.benchmark == "inference" and metric.name == "tokens_per_second":
        return _scaled(record, metric, limits, "tokens/$", "tokens/s")
    if record.benchmark == "storage" and key == PER_DOLLAR_HEADLINE["storage"]:
        return _per_hour(metric.value * SECONDS_PER_HOUR / 1000, usd, "GB/$", "read_bw MB/s x 3600 / 1000 / $/h")
    if record.benchmark == "cpu" and metric.name == "events_per_second":
        return _per_hour(metric.value * SECONDS_PER_HOUR, usd, "events/$", "events/s x 3600 / $/h")
    return None


def _per_hour(work_per_hour: float, usd: float | None, unit: str, basis: str, notes: tuple[str, ...] = ()
              ) -> PerDollar:
    if usd is None:
        return PerDollar(None, unit, "price unknown", notes)
    if usd <= 0:
        return PerDollar(None, unit, f"price {usd:g} $/h: per-dollar figure undefined", notes)
    return PerDollar(work_per_hour / usd, unit, basis, notes)


def _scaled(record: ResultRecord, metric: Metric, limits: Limits | None, unit: str, rate: str) -> PerDollar:
    devices = devices_per_job(record, limits)
    if devices is None:
        return PerDollar(None, unit, f"accelerator count of {record.instance_type} unknown")
    notes = []
    if record.tier in ACCELERATOR_TIERS and not is_local(record):
        notes.append(f"per instance: one device measured x {devices // record.node_count} accelerators, "
                     "assumed to run alike")
        if record.tier == "trainium":
            notes.append(TRAINIUM_DEVICE_NOTE)
    return _per_hour(metric.value * devices * SECONDS_PER_HOUR, record.price_usd_per_hour, unit,
                     f"{rate} x {devices} devices x 3600 / $/h", tuple(notes))


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
    status: str
    reason: str | None
    local: bool
    metric: str | None  # short label (busbw, bf16, p50...); None for a record without a headline
    metric_key: str | None
    value: float | None
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

    @property
    def group(self) -> tuple[str, str, str]:
        return self.benchmark, self.rack, self.node_group

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return self.benchmark, self.rack, self.node_group, self.metric_key


def record_rows(record: ResultRecord, limits: Limits | None, fsx: FsxLustre | None) -> list[Row]:
    """One row per headline metric the record has (summary.HEADLINES); one bare row when it failed or has none."""
    base = dict(run_id=record.run_id, benchmark=record.benchmark, rack=record.rack, node_group=record.node_group,
                tier=record.tier, instance_type=record.instance_type, node_count=record.node_count,
                status=record.status, reason=record.reason, local=is_local(record),
                usd_per_hour=record.price_usd_per_hour)
    bare = Row(**base, metric=None, metric_key=None, value=None, unit=None, higher_is_better=True, limit=None,
               limit_unit=None, limit_basis=None, pct_of_limit=None, per_dollar=None, per_dollar_unit=None,
               per_dollar_basis=None, notes=())
    if record.status != "succeeded":
        return [bare]
    rows = []
    for name, labels, short in HEADLINES.get(record.benchmark, []):
        if (m := find(record, name, labels)) is None:
            continue
        if not math.isfinite(m.value):  # NaN or infinite: the tool measured nothing, so it is no figure at all
            rows.append(replace(bare, status="failed", reason=f"{short}: {m.name} is {m.value}, a failed "
                                "measurement"))
            continue
        lim = limit_for(record, m, limits, fsx)
        pd = per_dollar(record, m, limits)
        notes = tuple(dict.fromkeys((*(lim.notes if lim else ()), *(pd.notes if pd else ()))))
        rows.append(Row(
            **base, metric=short, metric_key=metric_key(m.name, m.labels), value=m.value, unit=m.unit,
            higher_is_better=higher_is_better(m.name), limit=lim.value if lim else None,
            limit_unit=lim.unit if lim else None, limit_basis=lim.basis if lim else None,
            pct_of_limit=percent(m.value, lim.value) if lim else None, per_dollar=pd.value if pd else None,
            per_dollar_unit=pd.unit if pd else None, per_dollar_basis=pd.basis if pd else None, notes=notes))
    return rows or [bare]


def report_rows(records: Iterable[ResultRecord], limits_of: LimitsOf, fsx: FsxLustre | None = None) -> list[Row]:
    """Rows grouped by benchmark (in HEADLINES order), so that tiers running the same work sit together."""
    order = {b: i for i, b in enumerate(HEADLINES)}
    ordered = sorted(records, key=lambda r: (order.get(r.benchmark, len(order)), r.benchmark, r.rack, r.node_group))
    return [row for r in ordered for row in record_rows(r, limits_of(r.instance_type), fsx)]


# --- baseline comparison ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
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


def compare(current: Sequence[Row], baseline: Sequence[Row], threshold_pct: float) -> list[Change]:
    """Per (benchmark, rack, node group, metric): the change from the baseline, flagged beyond the threshold in the
    worse direction. A job that succeeded in the baseline and fails now is a regression too."""
    base = {r.key: r for r in baseline if r.metric_key is not None}
    base_ok = {r.group for r in baseline if r.status == "succeeded"}
    changes = []
    for row in current:
        if row.metric_key is None:
            if row.status != "succeeded" and row.group in base_ok:
                changes.append(Change(*row.group, metric="status", metric_key=None, unit=None, baseline=None,
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
        pct = change_pct(row.value, before.value) if before is not None and row.value is not None else None
        if before is not None and pct is None:
            note = "baseline value is 0: no % change"
        changes.append(Change(*row.group, metric=row.metric, metric_key=row.metric_key, unit=row.unit,
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


def busbw_series(records: Iterable[ResultRecord]) -> list[Series]:
    """One line per all-reduce record: in-place rows where the tool reports them (what torch.distributed does),
    else the only placement there is (nccom-test)."""
    out = []
    for r in records:
        if r.benchmark not in ALLREDUCE or r.status != "succeeded":
            continue
        rows = [m for m in r.metrics if m.name == "busbw" and m.size_bytes is not None]
        placements = {m.labels.get("placement", "") for m in rows}
        placement = "in-place" if "in-place" in placements else min(placements, default="")
        points = sorted((m.size_bytes, m.value) for m in rows
                        if m.labels.get("placement", "") == placement and math.isfinite(m.value))
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
    changes: tuple[Change, ...]
    series: tuple[Series, ...]
    # Objects of the run that are not data (store.BadObject: unreadable or tampered), shown apart from the rows.
    problems: tuple[Any, ...] = ()

    @property
    def local(self) -> bool:
        return any(r.local for r in self.rows)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    def change_for(self, row: Row) -> Change | None:
        return next((c for c in self.changes if (c.benchmark, c.rack, c.node_group) == row.group
                     and (c.metric_key == row.metric_key if row.metric_key else c.metric == "status")), None)


def build_report(records: Sequence[ResultRecord], *, limits_of: LimitsOf, fsx: FsxLustre | None = None,
                 baseline: Sequence[ResultRecord] | None = None, baseline_run_id: str | None = None,
                 threshold_pct: float = 5.0, problems: Sequence[Any] = ()) -> Report:
    rows = report_rows(records, limits_of, fsx)
    changes = compare(rows, report_rows(baseline, limits_of, fsx), threshold_pct) if baseline is not None else []
    run_id = records[0].run_id if records else ""
    return Report(run_id, baseline_run_id, threshold_pct, tuple(rows), tuple(changes), tuple(busbw_series(records)),
                  tuple(problems))


# --- text ------------------------------------------------------------------------------------------------------

def _num(value: float | None, unit: str | None = None) -> str:
    if value is None:
        return UNKNOWN
    return f"{fmt(value)} {unit}" if unit else fmt(value)


def limit_text(row: Row) -> str:
    return NOT_APPLICABLE if row.limit_basis is None else _num(row.limit, row.limit_unit)


def pct_text(row: Row) -> str:
    if row.limit_basis is None:
        return NOT_APPLICABLE
    return UNKNOWN if row.pct_of_limit is None else f"{row.pct_of_limit:.1f}%"


def per_dollar_text(row: Row) -> str:
    return NOT_APPLICABLE if row.per_dollar_unit is None else _num(row.per_dollar, row.per_dollar_unit)


def usd_text(usd: float | None) -> str:
    if usd is None:
        return UNKNOWN
    return f"{usd:,.2f}" if usd >= 10 else f"{usd:.4g}"  # m7g.xlarge's 0.1632 must not read as 0.16


def change_text(change: Change | None) -> str:
    if change is None:
        return ""
    if change.metric == "status":
        return "REGRESSION: " + (change.note or "")
    text = f"{change.change_pct:+.1f}%" if change.change_pct is not None else (change.note or UNKNOWN)
    return f"{text} REGRESSION" if change.regression else text


def instance_text(row: Row) -> str:
    return row.instance_type + (" [local]" if row.local else "")


def result_text(row: Row) -> tuple[str, str]:
    """(metric, value) cells; a record that did not succeed shows its status and reason instead."""
    if row.status != "succeeded":
        return row.status, (row.reason or "")[:80]
    if row.metric is None:
        return "-", "no headline metric"
    return row.metric, _num(row.value, row.unit)


def notes_index(report: Report) -> dict[str, int]:
    return {note: i for i, note in enumerate(dict.fromkeys(n for r in report.rows for n in r.notes), 1)}


def summary_table(report: Report) -> tuple[list[list[str]], list[str]]:
    """(rows, header) for the terminal table."""
    index = notes_index(report)
    header = ["benchmark", "rack/node group", "instance", "nodes", "metric", "value", "limit", "% of limit",
              "$/hour", "per $"]
    if report.baseline_run_id is not None:
        header.append(f"vs {report.baseline_run_id}")
    header.append("notes")
    rows = []
    for r in report.rows:
        metric, value = result_text(r)
        cells = [r.benchmark, f"{r.rack}/{r.node_group}", instance_text(r), str(r.node_count), metric, value,
                 limit_text(r), pct_text(r), usd_text(r.usd_per_hour), per_dollar_text(r)]
        if report.baseline_run_id is not None:
            cells.append(change_text(report.change_for(r)))
        cells.append(",".join(f"[{i}]" for i in sorted(index[n] for n in r.notes)))
        rows.append(cells)
    return rows, header


def text_lines(report: Report) -> tuple[list[str], list[str]]:
    """Lines printed before and after the table: the rehearsal caveat, the notes, the verdict."""
    before = [f"report for run {report.run_id}" + (f" against baseline {report.baseline_run_id} "
                                                   f"(threshold {report.threshold_pct:g}%)"
                                                   if report.baseline_run_id else "")]
    if report.local:
        before.append(LOCAL_CAVEAT)
    after = [f"[{i}] {note}" for note, i in notes_index(report).items()]
    bases = dict.fromkeys(f"{r.benchmark} {r.metric} on {r.instance_type}: {r.limit_basis}"
                          for r in report.rows if r.limit_basis)
    after += [f"limit  {b}" for b in bases]
    failed = [r for r in report.rows if r.status != "succeeded"]
    if failed:
        after.append(f"{len(failed)} record(s) did not succeed: "
                     + ", ".join(f"{r.benchmark} on {r.rack}/{r.node_group} ({r.status})" for r in failed))
    if report.baseline_run_id is not None:
        regs = report.regressions
        after.append(f"{len(regs)} regression(s) beyond {report.threshold_pct:g}% against {report.baseline_run_id}")
        after += [f"  {c.benchmark} {c.rack}/{c.node_group} {c.metric}: {change_text(c)}" for c in regs]
    after += problem_lines(report.problems)
    if report.local:
        after.append(LOCAL_CAVEAT)
    # Every line quotes names and reasons from the bucket: one line each, control characters shown, never sent.
    return [visible(line) for line in before], [visible(line) for line in after]


# --- CSV and JSON ----------------------------------------------------------------------------------------------

CSV_COLUMNS = ["run_id", "benchmark", "rack", "node_group", "tier", "instance_type", "node_count", "status",
               "measured_on", "metric", "metric_key", "value", "unit", "limit", "limit_unit", "limit_basis",
               "pct_of_limit", "usd_per_hour", "per_dollar", "per_dollar_unit", "per_dollar_basis", "baseline_value",
               "change_pct", "regression", "notes", "reason"]


def measured_on(row: Row) -> str:
    return f"local rehearsal (this machine, not {row.instance_type})" if row.local else row.instance_type


def row_dict(report: Report, row: Row) -> dict[str, Any]:
    change = report.change_for(row)
    return {**asdict(row), "notes": list(row.notes), "measured_on": measured_on(row),
            "baseline_value": change.baseline if change else None,
            "change_pct": change.change_pct if change else None,
            "regression": change.regression if change else None}


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV Injection): `=HYPERLINK(...)` in a
# node group name or a reason would run when the CSV is opened. Such text cells get a leading apostrophe, which
# the spreadsheet shows as text. Numbers are written as numbers and never escaped, so -3.5 stays a number.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def render_csv(report: Report) -> str:
    """Unknown figures are empty cells; the *_basis columns say why. Text cells cannot start a formula."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        d = row_dict(report, row)
        d["notes"] = "; ".join(row.notes)
        writer.writerow({k: csv_cell(v) for k, v in d.items()})
    return out.getvalue()


def per_dollar_chart_data(report: Report) -> dict[str, list[dict[str, Any]]]:
    """benchmark -> one bar per job, from the metric the benchmark is priced by; unknown stays None."""
    data: dict[str, list[dict[str, Any]]] = {}
    for r in report.rows:
        if r.benchmark in PER_DOLLAR_HEADLINE and PER_DOLLAR_HEADLINE[r.benchmark] == r.metric_key:
            data.setdefault(r.benchmark, []).append({"label": _bar_label(r), "tier": r.tier, "value": r.per_dollar,
                                                     "unit": r.per_dollar_unit, "local": r.local})
    return data


def pct_chart_data(report: Report) -> list[dict[str, Any]]:
    return [{"label": f"{r.benchmark} {r.metric} {_bar_label(r)}", "pct": r.pct_of_limit, "local": r.local}
            for r in report.rows if r.limit_basis is not None]


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "baseline_run_id": report.baseline_run_id,
        "threshold_pct": report.threshold_pct,
        "local_rehearsal": report.local,
        "caveat": LOCAL_CAVEAT if report.local else None,
        "rows": [row_dict(report, r) for r in report.rows],
        "changes": [asdict(c) for c in report.changes],
        "regressions": len(report.regressions),
        "problems": problem_dicts(report.problems),
        "charts": {
            "busbw_by_size": [asdict(s) for s in report.series],
            "per_dollar": per_dollar_chart_data(report),
            "pct_of_limit": pct_chart_data(report),
        },
    }


def finite(data: Any) -> Any:
    """`data` with every NaN and infinity replaced by None: JSON has no NaN, and `NaN` breaks strict parsers."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


def json_text(data: Any) -> str:
    """JSON for --json: never NaN or Infinity (allow_nan=False is the guard if `finite` ever misses one)."""
    return json.dumps(finite(data), indent=2, allow_nan=False)


def render_json(report: Report) -> str:
    return json_text(report_dict(report))


# --- figures (matplotlib, Agg; built as Figure objects so tests can read their series) ---------------------------

def _bar_label(r: Row) -> str:
    return f"{r.tier} {r.rack}/{r.node_group}" + (" [local]" if r.local else "")


def _plain(text: str) -> str:
    """A label matplotlib draws as the text it is. Labels quote names from the bucket, and matplotlib reads text
    between two `$` as mathtext: `$\\foo$` would fail the whole report, others would draw something else. An escaped
    dollar is never math and draws as `$` (matplotlib Text._preprocess_math); control characters show as escapes.
    Escaping, not parse_math=False: tick labels are made at draw time, outside any setting given here."""
    return visible(text).replace("$", r"\$")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display, no pyplot state
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def busbw_figure(report: Report) -> Figure:
    fig, (ax,) = _figure(9, 5)
    ax.set_title("All-reduce bus bandwidth by message size" + (" (local rehearsal)" if report.local else ""))
    if not report.series:
        _empty(ax, "no all-reduce results in this run")
        return fig
    for s in report.series:
        ax.plot(s.sizes, s.busbw, marker="o", label=_plain(s.label))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def per_dollar_figure(report: Report) -> Figure:
    """One bar chart per workload class; a job with an unknown price gets no bar and is named under the chart."""
    data = per_dollar_chart_data(report)
    fig, axes = _figure(4 * max(len(data), 1), 4.5, max(len(data), 1))
    fig.suptitle("Performance per dollar by tier" + (" (local rehearsal)" if report.local else ""))
    if not data:
        _empty(axes[0], "no priced workloads in this run")
        return fig
    for ax, (benchmark, bars) in zip(axes, data.items()):
        known = [b for b in bars if b["value"] is not None]
        unit = bars[0]["unit"]
        ax.set_title(f"{benchmark} ({unit})")  # both from PER_DOLLAR_HEADLINE and per_dollar: never from a record
        unknown = [b["label"] for b in bars if b["value"] is None]
        if known:
            ax.bar([_plain(b["label"]) for b in known], [b["value"] for b in known])
            ax.tick_params(axis="x", labelrotation=60, labelsize="small")
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        if unknown:
            ax.set_xlabel(_plain("unknown: " + ", ".join(unknown)), fontsize="small")
    return fig


def pct_figure(report: Report) -> Figure:
    data = pct_chart_data(report)
    known = [d for d in data if d["pct"] is not None]
    fig, (ax,) = _figure(9, max(2.5, 0.4 * len(known) + 1.5))
    ax.set_title("% of the physical limit" + (" (local rehearsal)" if report.local else ""))
    if not known:
        _empty(ax, "no result has a known limit")
        return fig
    bars = ax.barh([_plain(d["label"]) for d in known], [d["pct"] for d in known])
    ax.bar_label(bars, fmt="%.1f%%", fontsize="small", padding=2)
    ax.axvline(100, color="black", linewidth=1)
    unknown = len(data) - len(known)
    ax.set_xlabel("% of limit" + (f" ({unknown} row(s) with an unknown limit not drawn)" if unknown else ""))
    ax.invert_yaxis()
    return fig


def png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode()


# --- HTML ------------------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:1em 0}
th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
td.num{text-align:right;white-space:nowrap}
.caveat{background:#fff3cd;border:2px solid #e0a800;padding:0.75em;font-weight:bold}
.regression{background:#f8d7da;font-weight:bold}
.failed{color:#a00}
.unknown{color:#888;font-style:italic}
img{max-width:100%;display:block;margin:1em 0}
"""


def _cell(text: str, cls: str = "") -> str:
    if text in (UNKNOWN, NOT_APPLICABLE):
        cls = (cls + " unknown").strip()
    return f"<td class=\"{cls}\">{html.escape(text)}</td>" if cls else f"<td>{html.escape(text)}</td>"


def _html_table(header: Sequence[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render_html(report: Report, generated: dt.datetime | None = None) -> str:
    """One file: inline CSS, plots as base64 PNG, no external URL of any kind."""
    generated = generated or dt.datetime.now(dt.timezone.utc)
    esc = html.escape
    index = notes_index(report)
    caveat = f"<p class=\"caveat\">{esc(LOCAL_CAVEAT)}</p>" if report.local else ""
    header = ["benchmark", "rack/node group", "tier", "instance", "measured on", "nodes", "metric", "value", "limit",
              "limit basis", "% of limit", "$/hour", "per $", "per $ basis"]
    if report.baseline_run_id:
        header.append(f"vs {report.baseline_run_id}")
    header.append("notes")
    body = []
    for r in report.rows:
        metric, value = result_text(r)
        change = report.change_for(r)
        cells = [_cell(r.benchmark), _cell(f"{r.rack}/{r.node_group}"), _cell(r.tier), _cell(instance_text(r)),
                 _cell(measured_on(r)), _cell(str(r.node_count), "num"), _cell(metric),
                 _cell(value, "failed" if r.status != "succeeded" else "num"), _cell(limit_text(r), "num"),
                 _cell(r.limit_basis or NOT_APPLICABLE), _cell(pct_text(r), "num"),
                 _cell(usd_text(r.usd_per_hour), "num"), _cell(per_dollar_text(r), "num"),
                 _cell(r.per_dollar_basis or NOT_APPLICABLE)]
        if report.baseline_run_id:
            cells.append(_cell(change_text(change), "regression" if change and change.regression else "num"))
        cells.append(_cell(" ".join(f"[{i}]" for i in sorted(index[n] for n in r.notes))))
        body.append(f"<tr>{''.join(cells)}</tr>")
    notes = "".join(f"<li>[{i}] {esc(n)}</li>" for n, i in index.items())
    failed = [r for r in report.rows if r.status != "succeeded"]
    failed_html = ("<h2>Did not succeed</h2><ul>" + "".join(
        f"<li class=\"failed\">{esc(r.benchmark)} on {esc(r.rack)}/{esc(r.node_group)}: {esc(r.status)}"
        f"{esc(': ' + r.reason) if r.reason else ''}</li>" for r in failed) + "</ul>") if failed else ""
    problems_html = ("<h2>Not reported: unreadable or tampered objects</h2><ul>" + "".join(
        f"<li class=\"failed\">{esc(p.render())}</li>" for p in report.problems) + "</ul>") if report.problems else ""
    baseline_html = ""
    if report.baseline_run_id:
        regs = report.regressions
        baseline_html = (f"<h2>Against {esc(report.baseline_run_id)}</h2><p>{len(regs)} regression(s) beyond "
                         f"{report.threshold_pct:g}% (latency: lower is better; everything else: higher)</p>")
    figures = [("Bus bandwidth by message size", busbw_figure(report)),
               ("Performance per dollar", per_dollar_figure(report)),
               ("% of the physical limit", pct_figure(report))]
    imgs = "".join(f"<h2>{esc(title)}</h2><img alt=\"{esc(title)}\" src=\"data:image/png;base64,{png_base64(fig)}\">"
                   for title, fig in figures)
    title = f"rackform report: {report.run_id}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{CSS}</style></head>
<body>
<h1>{esc(title)}</h1>
<p>generated {generated:%Y-%m-%d %H:%M} UTC; {len({r.group for r in report.rows})} job(s), {len(report.rows)} row(s)</p>
{caveat}
{baseline_html}
{_html_table(header, body)}
<ol class="notes">{notes}</ol>
{failed_html}
{problems_html}
{imgs}
<h2>Formulas</h2>
<ul>
<li>% of limit = value / limit x 100. All-reduce bus bandwidth: against the network line rate (Gbps / 8) on 2 or
more nodes, the per-accelerator intra-node link on one. GEMM: one device's tflops_max against one accelerator's peak
dense BF16. Storage: against FSx per-unit throughput x capacity (TiB).</li>
<li>$/hour: the record's price, every node of the job.</li>
<li>TB all-reduced per $ = max algbw (GB/s) x 3600 / 1000 / $/h; TFLOP per $ = TFLOP/s x devices x 3600 / $/h;
tokens per $ = tokens/s x devices x 3600 / $/h; GB read per $ = sequential read MB/s x 3600 / 1000 / $/h;
events per $ = events/s x 3600 / $/h.</li>
<li>unknown: the figure is not known (no price, no published limit); n/a: no such figure applies.</li>
</ul>
{caveat}
</body></html>
"""
