"""What the result records say, read for placement: the measured figure per dollar of each instance type with the
spread behind it, its p99 latency, how long a node group's jobs take, and each group's latest health verdict.

Local-rehearsal records (executor=local: measured on this machine, priced as the instance types) rank real tiers
only when the caller says so (`rackform place --include-rehearsal`), and every figure they make is labelled.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from workloads.results import ResultRecord

from ..analysis.report import health_of, is_local, report_rows
from ..analysis.summary import spread_pct
from ..reference.peaks import Limits

# The inference benchmark's p99 latency headline (workloads/benchmarks.py), what a workload's slo is held against.
P99_METRIC = "latency_p99_ms"


def healthy(record: ResultRecord) -> bool:
    """A record whose figures may rank tiers: it succeeded and the runner did not mark it invalid (a node failed its
    health step: record schema 2). Version-1 records, from before the health step, count on their success alone."""
    return record.status == "succeeded" and health_of(record)[0] is not False


def usable(records: Iterable[ResultRecord], include_rehearsal: bool) -> list[ResultRecord]:
    return [r for r in records if include_rehearsal or not is_local(r)]


@dataclass(frozen=True, kw_only=True)
class GroupHealth:
    """A node group's latest health verdict: the health step of its newest job (records of schema 2)."""

    healthy: bool
    reason: str | None  # why not healthy, as the records say it
    run_id: str
    at: dt.datetime  # when that job ended


@dataclass(frozen=True)
class PerDollarFigure:
    per_dollar: float  # the median over jobs
    unit: str
    jobs: int
    low: float  # the lowest and highest per-dollar value behind it: its jobs and each job's repeats
    high: float
    usd_per_node_hour: float  # the median price its records were priced at, per node (so work per node-hour)
    rehearsal: bool  # some of its records are a local rehearsal's

    @property
    def spread_pct(self) -> float:
        return spread_pct(self.low, self.high, self.per_dollar) or 0.0


def figures(records: Iterable[ResultRecord], benchmark: str,
            limits_of: Callable[[str], Limits | None]) -> tuple[dict[str, PerDollarFigure], set[str]]:
    """Per instance type, the median per-dollar figure of the benchmark over healthy priced records (as `rackform
    advise` ranks: a repeated run counts once per job) with its spread; and the instance types measured but not
    priced (shown, never ranked as if free)."""
    rows = [r for r in report_rows([r for r in records if healthy(r) and r.benchmark == benchmark], limits_of)
            if r.priced and r.valid]
    by_type: dict[str, list[tuple[float, float, float, float, bool, str]]] = {}
    for r in rows:
        if r.per_dollar is None or r.usd_per_hour is None:
            continue
        # A job's repeats spread its figure: low/high scale the per-dollar value the way they scale the value.
        scale_low = r.low / r.value if r.low is not None and r.value else 1.0
        scale_high = r.high / r.value if r.high is not None and r.value else 1.0
        by_type.setdefault(r.instance_type, []).append(
            (r.per_dollar, r.per_dollar * min(scale_low, scale_high), r.per_dollar * max(scale_low, scale_high),
             r.usd_per_hour / r.node_count, r.local, r.per_dollar_unit or ""))
    ranked = {
        itype: PerDollarFigure(statistics.median(v[0] for v in vals), vals[0][5], len(vals), min(v[1] for v in vals),
                               max(v[2] for v in vals), statistics.median(v[3] for v in vals),
                               any(v[4] for v in vals))
        for itype, vals in by_type.items()}
    return ranked, {r.instance_type for r in rows if r.per_dollar is None} - set(ranked)


def p99_latency_ms(records: Iterable[ResultRecord]) -> dict[str, tuple[float, int]]:
    """Per instance type, the median p99 latency (ms) of its healthy inference records and how many there are."""
    found: dict[str, list[float]] = {}
    for r in records:
        if healthy(r) and r.benchmark == "inference":
            found.setdefault(r.instance_type, []).extend(m.value for m in r.metrics if m.name == P99_METRIC)
    return {k: (statistics.median(v), len(v)) for k, v in found.items() if v}


def job_durations(records: Iterable[ResultRecord]) -> dict[tuple[str, str], float]:
    """Median seconds of a node group's healthy records measured on AWS (a local rehearsal's times are this
    machine's, not the instance's)."""
    found: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if healthy(r) and not is_local(r):
            found.setdefault((r.rack, r.node_group), []).append((r.ended_at - r.started_at).total_seconds())
    return {k: statistics.median(v) for k, v in found.items()}


def latest_health(records: Sequence[ResultRecord]) -> dict[tuple[str, str], GroupHealth]:
    """Per node group, the verdict of its newest record that has one (schema 2: every node's health step); an
    invalid record among the newest makes the group failing."""
    latest: dict[tuple[str, str], GroupHealth] = {}
    for r in sorted(records, key=lambda r: r.ended_at):
        ok, why = health_of(r)
        if ok is None:
            continue
        key = (r.rack, r.node_group)
        seen = latest.get(key)
        if seen is not None and seen.at == r.ended_at and not seen.healthy:
            continue  # a failing node in the same newest batch is not outvoted by a healthy one
        latest[key] = GroupHealth(healthy=ok, reason=why, run_id=r.run_id, at=r.ended_at)
    return latest
