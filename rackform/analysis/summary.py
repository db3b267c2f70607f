"""The few numbers that sum up each benchmark's record, for tables and reports: the headlines each Benchmark declares
(workloads/benchmarks.py), matched in a record by metric name and exact labels."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from workloads.benchmarks import BENCHMARKS, Headline
from workloads.results import REPEAT_LABEL, Metric, ResultRecord

from ..numbers import num as fmt

UNSTABLE_SPREAD_PCT = 10.0


def spread_pct(low: float, high: float, median: float) -> float | None:
    """(max - min) / median, in % of the median: how far apart repeats (or a group's nodes) are. None about a median
    of 0, where no percentage means anything."""
    return (high - low) / abs(median) * 100 if median else None


def metric_key(name: str, labels: dict[str, str] | tuple[tuple[str, str], ...]) -> str:
    inner = ",".join(f"{k}={v}" for k, v in sorted(dict(labels).items()))
    return f"{name}{{{inner}}}" if inner else name


def headline_key(h: Headline) -> str:
    return metric_key(h.metric, h.labels)


def headlines(benchmark: str) -> tuple[Headline, ...]:
    b = BENCHMARKS.get(benchmark)
    return b.headlines if b else ()


def matches(metric: Metric, h: Headline) -> bool:
    """The metric is the headline: the same name and exactly its labels, a repeat label aside. A metric with labels
    the headline does not name is another figure (an out-of-place busbw_max is not the in-place one)."""
    return metric.name == h.metric and {k: v for k, v in metric.labels.items() if k != REPEAT_LABEL} == dict(h.labels)


@dataclass(frozen=True)
class HeadlineFigure:
    """One headline over its repeats: the median, and the lowest and highest value."""

    value: float
    low: float
    high: float
    repeats: int
    unit: str
    failed: bool  # some repeat measured nothing (NaN or infinite)

    @property
    def spread_pct(self) -> float | None:
        """(max - min) / median, in %; None with one repeat or a median of 0."""
        return spread_pct(self.low, self.high, self.value) if self.repeats >= 2 else None

    @property
    def unstable(self) -> bool:
        return (s := self.spread_pct) is not None and s > UNSTABLE_SPREAD_PCT


def figure(record: ResultRecord, h: Headline) -> HeadlineFigure | None:
    found = [m for m in record.metrics if m.name == h.metric and matches(m, h)]  # the name first: no call per metric
    if not found:
        return None
    values = [m.value for m in found]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return HeadlineFigure(values[0], values[0], values[0], len(values), found[0].unit, True)
    return HeadlineFigure(statistics.median(finite), min(finite), max(finite), len(values), found[0].unit,
                  len(finite) < len(values))


def headline_text(record: ResultRecord) -> str:
    if record.status != "succeeded":
        return record.reason or record.status  # whole, as --json has it: a table wraps it in its cell
    parts = []
    for h in headlines(record.benchmark):
        if (f := figure(record, h)) is not None:
            # NaN or infinite: the tool gave no number, a failed measurement (the report says the same)
            parts.append(f"{h.label} {fmt(f.value)} {f.unit}" if not f.failed else
                         f"{h.label} failed measurement ({f.value})")
    if parts:
        return "; ".join(parts)
    expected = ", ".join(headline_key(h) for h in headlines(record.benchmark))
    return f"no headline metric ({expected or 'none declared'}) in {len(record.metrics)} metrics"
