"""Which nodes of a group fall short: the group's robust band (median and median absolute deviation) and the
published per-instance-type baseline, and what the slowest node costs a synchronous job.

A synchronous training step waits for its slowest rank, so one slow node sets the pace of the whole group: the
verdict names it, with its instance id, and prices the time it loses.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from pydantic import Field, field_validator

from ..analysis.report import higher_is_better
from ..analysis.summary import UNSTABLE_SPREAD_PCT, spread_pct
from ..reference.baselines import Baseline, BaselineData
from ..spec.base import Frozen

# The band: a node is an outlier when its figure lies more than OUTLIER_MADS scaled MADs on the bad side of the
# group's median (the modified z-score of Iglewicz and Hoaglin, who recommend 3.5 as the cut-off: 3.5 standard
# deviations on one side, about 1 node in 4,000 of a normal fleet by chance). MAD x 1.4826 estimates the standard
# deviation of normal data, and unlike the standard deviation it is not dragged wide by the outlier it must find.
OUTLIER_MADS = 3.5
MAD_TO_SIGMA = 1.4826
# ...and at least MIN_SHORTFALL_PCT worse than the median: in a tight fleet the MAD is tiny and a 1% wobble would
# score as an outlier, yet no one replaces a node for 1%. 5% is what a synchronous job of N nodes loses to that node.
MIN_SHORTFALL_PCT = 5.0
# With fewer nodes the median cannot tell which one is slow (of two, each is "half the gap" from the median).
MIN_BAND_NODES = 3
# A band is no verdict when the nodes it keeps disagree among themselves by more than UNSTABLE_SPREAD_PCT (10%,
# (max - min) / median, the limit the report holds a figure's repeats to): a MAD that wide hides a slow node as
# well as it hides noise, so such a figure is `unsteady`, neither accepted nor used to name a node.
# The published baseline: a node below this fraction of AWS's figure for its type is an outlier even when the whole
# group is alike (a group of uniformly bad nodes passes any band). The published figure is one tuned run with its own
# NCCL, EFA and driver versions, so 20% leaves room for honest version and tuning differences.
BASELINE_FRACTION = 0.8


class NodeFigure(Frozen):
    """One figure of one node: what the acceptance job measured on it (or, for a fabric pair, its best pair)."""

    node: int = Field(ge=0)  # the node's index in the job
    instance_id: str | None = None
    host: str | None = None
    test: str  # the runner's test: a benchmark (gemm, cpu, storage, ...), "fabric" or "group-collective"
    metric: str
    headline: str  # the figure's label within its test, e.g. "bf16", "memory", "bandwidth"
    value: float | None  # None: the measurement failed (JSON has no NaN: a failed figure is null, never a number)
    unit: str

    @field_validator("value")
    @classmethod
    def _failed_is_none(cls, value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None


class Band(Frozen):
    nodes: int  # figures the band is made of (finite ones)
    median: float
    mad: float
    floor: float | None  # the bad-side limit (below it for higher-is-better); None when the group is too small
    spread_pct: float  # (max - min) / median, as the report's spread across repeats


class Outlier(Frozen):
    node: int
    instance_id: str | None
    value: float | None  # None: the measurement failed
    shortfall_pct: float | None  # how far worse than the median, in %; None for a failed measurement
    reasons: tuple[str, ...]  # "band", "baseline", "pair" (the slower of two), "failed"


class MetricVerdict(Frozen):
    test: str
    metric: str
    headline: str
    unit: str
    higher_is_better: bool
    nodes: int  # nodes the figures span: each node's own (1), or the group's for a figure of the whole group
    figures: tuple[NodeFigure, ...]  # one per node, by node index; one for the group's own figure
    band: Band | None  # None when no node has a finite figure
    baseline: Baseline | None
    baseline_floor: float | None
    outliers: tuple[Outlier, ...]
    kept_spread_pct: float | None  # (max - min) / median of the nodes that are not outliers
    unsteady: bool  # the band keeps nodes more than UNSTABLE_SPREAD_PCT apart: too noisy to accept
    notes: tuple[str, ...]  # what the verdict could not judge, and why

    @property
    def accepted(self) -> bool:
        return not self.outliers and self.band is not None and not self.unsteady

    @property
    def label(self) -> str:
        return figure_label(self.test, self.headline)


def figure_label(test: str, headline: str) -> str:
    """A figure as a verdict names it: its test and its label within it ("gemm bf16", "cpu memory", "fabric
    bandwidth"), the test alone where the two agree ("cpu")."""
    return test if headline == test else f"{test} {headline}"


class StragglerCost(Frozen):
    """(1 - slowest/median) of the group's $/hour is lost every hour a synchronous job runs on the group."""

    test: str
    metric: str
    label: str  # the figure as the verdict lines name it
    slowest_node: int
    slowest_instance_id: str | None
    slowdown: float  # 1 - pace(slowest)/pace(median), 0..1
    group_usd_per_hour: float | None
    lost_usd_per_hour: float | None
    # With the outliers replaced by median nodes, the next slowest sets the pace: what that saves per hour.
    slowdown_after_replacing: float
    saving_usd_per_hour: float | None


def band(values: Iterable[float | None], *, higher_better: bool = True) -> Band | None:
    finite = [v for v in values if v is not None]
    if not finite:
        return None
    median = statistics.median(finite)
    mad = statistics.median(abs(v - median) for v in finite)
    spread = spread_pct(min(finite), max(finite), median) or 0.0
    if len(finite) < MIN_BAND_NODES:
        return Band(nodes=len(finite), median=median, mad=mad, floor=None, spread_pct=spread)
    margin = max(OUTLIER_MADS * MAD_TO_SIGMA * mad, abs(median) * MIN_SHORTFALL_PCT / 100)
    return Band(nodes=len(finite), median=median, mad=mad, floor=median - margin if higher_better else median + margin,
                spread_pct=spread)


def _worse(value: float, limit: float, higher_better: bool) -> bool:
    return value < limit if higher_better else value > limit


def shortfall_pct(value: float, median: float, higher_better: bool) -> float:
    """How much worse than the median, in % of the median (positive is worse)."""
    return ((median - value) if higher_better else (value - median)) / abs(median) * 100 if median else 0.0


def per_node(figures: Sequence[NodeFigure]) -> tuple[NodeFigure, ...]:
    """One figure per node: the median of a node's repeats (failed only when none of them measured anything)."""
    out = []
    for node in sorted({f.node for f in figures}):
        mine = [f for f in figures if f.node == node]
        finite = [f.value for f in mine if f.value is not None]
        value = statistics.median(finite) if finite else None
        out.append(mine[0].model_copy(update={"value": value}))
    return tuple(out)


def judge(figures: Sequence[NodeFigure], *, instance_type: str, baselines: BaselineData,
          spans: int = 1) -> MetricVerdict:
    """The verdict on one (test, metric, headline) of a group: every node against the band and the baseline.
    `spans`: the nodes one figure spans (2 for a fabric pair, the group's size for its collective), which a
    published figure must match to be comparable."""
    first = figures[0]
    better = higher_is_better(first.metric)
    nodes = per_node(figures)
    b = band((f.value for f in nodes), higher_better=better)
    published = baselines.find(instance_type, first.test, first.metric, spans)
    if published is not None and published.unit != first.unit:
        published = None  # never compare GB/s with GiB/s
    baseline_floor = None if published is None else \
        published.value * BASELINE_FRACTION if better else published.value / BASELINE_FRACTION
    notes = []  # a missing baseline is `baseline` None: the lines name those figures once per group
    if b is not None and b.floor is None and len(nodes) > 1:
        notes.append(f"{b.nodes} node(s): too few for a band (a median of fewer than {MIN_BAND_NODES} cannot tell "
                     f"which node is slow); the slower of two more than {MIN_SHORTFALL_PCT:g}% apart is named, as "
                     "the one that sets a synchronous job's pace")
    pair = [f.value for f in nodes if f.value is not None]
    worst = (min if better else max)(pair) if pair else None
    outliers = []
    for f in nodes:
        if f.value is None:
            outliers.append(Outlier(node=f.node, instance_id=f.instance_id, value=None, shortfall_pct=None,
                                    reasons=("failed",)))
            continue
        reasons = tuple(r for r, limit in (("band", b.floor if b else None), ("baseline", baseline_floor))
                        if limit is not None and _worse(f.value, limit, better))
        if b is not None and b.floor is None and b.nodes == 2 and f.value == worst and \
                shortfall_pct(f.value, max(pair) if better else min(pair), better) > MIN_SHORTFALL_PCT:
            reasons += ("pair",)
        if reasons:
            assert b is not None  # a finite figure makes a band
            outliers.append(Outlier(node=f.node, instance_id=f.instance_id, value=f.value,
                                    shortfall_pct=shortfall_pct(f.value, b.median, better), reasons=reasons))
    out = {o.node for o in outliers}
    kept = [f.value for f in nodes if f.value is not None and f.node not in out]
    kept_spread = spread_pct(min(kept), max(kept), b.median) if b is not None and kept else None
    return MetricVerdict(test=first.test, metric=first.metric, headline=first.headline, unit=first.unit,
                         higher_is_better=better, nodes=spans, figures=nodes, band=b, baseline=published,
                         baseline_floor=baseline_floor, outliers=tuple(outliers), kept_spread_pct=kept_spread,
                         unsteady=b is not None and b.floor is not None and kept_spread is not None
                         and kept_spread > UNSTABLE_SPREAD_PCT, notes=tuple(notes))


def judge_all(figures: Sequence[NodeFigure], *, instance_type: str, baselines: BaselineData,
              spans: int = 1) -> tuple[MetricVerdict, ...]:
    """One verdict per (test, metric, headline) the figures hold, in the order they first appear."""
    keys = list(dict.fromkeys((f.test, f.metric, f.headline) for f in figures))
    return tuple(judge([f for f in figures if (f.test, f.metric, f.headline) == k], instance_type=instance_type,
                       baselines=baselines, spans=spans) for k in keys)


def _pace(value: float, higher_better: bool) -> float:
    return value if higher_better else 1 / value


def straggler_cost(verdicts: Sequence[MetricVerdict], group_usd_per_hour: float | None) -> StragglerCost | None:
    """The metric that slows the group most, and what it costs: a synchronous job runs at its slowest node's pace,
    so (1 - slowest/median) of the group's $/hour buys nothing. A failed node is not priced here: the job cannot run
    on it at all (the verdict names it)."""
    worst: StragglerCost | None = None
    for v in verdicts:
        finite = [(f, f.value) for f in v.figures if f.value is not None and f.value > 0]
        if v.band is None or not finite or v.band.median <= 0:
            continue
        median_pace = _pace(v.band.median, v.higher_is_better)
        slowest, slowest_value = min(finite, key=lambda fv: _pace(fv[1], v.higher_is_better))
        slowdown = max(0.0, 1 - _pace(slowest_value, v.higher_is_better) / median_pace)
        outliers = {o.node for o in v.outliers}
        kept = [value for f, value in finite if f.node not in outliers]
        after = max(0.0, 1 - min(_pace(x, v.higher_is_better) for x in kept) / median_pace) if kept else 0.0
        cost = StragglerCost(
            test=v.test, metric=v.metric, label=v.label, slowest_node=slowest.node,
            slowest_instance_id=slowest.instance_id, slowdown=slowdown, group_usd_per_hour=group_usd_per_hour,
            lost_usd_per_hour=None if group_usd_per_hour is None else slowdown * group_usd_per_hour,
            slowdown_after_replacing=after,
            saving_usd_per_hour=None if group_usd_per_hour is None else (slowdown - after) * group_usd_per_hour)
        if worst is None or cost.slowdown > worst.slowdown:
            worst = cost
    return worst
