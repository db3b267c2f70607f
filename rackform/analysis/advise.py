"""Which tier to buy for which work, decided by the measured performance per dollar of one or more runs.

Candidates are (tier, instance type) pairs; each scores the median of its jobs' per-dollar figures (the headline each
benchmark's definition is priced by, workloads/benchmarks.py), so a repeated run counts once per job rather than by
its best try. A job whose price is unknown is listed but never ranked: no price is not a price of 0. Invalid figures
(a node that failed its health check) are never evidence.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from workloads.benchmarks import BENCHMARKS

from ..numbers import num as fmt
from ..numbers import usd
from .report import LOCAL_CAVEAT, Row

# How each workload class of the benchmark definitions is named in the advice.
CLASS_TITLES = {"training": "training", "inference": "inference", "general": "general CPU work"}
# class title -> the benchmarks that answer it: priced, and run on more than one tier (a benchmark only one tier can
# run, such as nccl-tests, cannot say which tier to buy).
CLASSES: dict[str, tuple[str, ...]] = {
    title: tuple(b.name for b in BENCHMARKS.values()
                 if b.workload_class == cls and b.priced_by is not None and len(b.tiers) > 1)
    for cls, title in CLASS_TITLES.items()}
MEANING = {b.name: b.priced_by.meaning for b in BENCHMARKS.values() if b.priced_by is not None}


@dataclass(frozen=True)
class TierCandidate:
    tier: str
    instance_type: str
    per_dollar: float  # median over its priced jobs
    unit: str
    jobs: int
    groups: str = ""  # the rack/node groups that measured it: "gpu/h100"
    # The per-dollar figure's range over its jobs' repeats (each job's lowest and highest repeat at its price): two
    # candidates whose ranges overlap are within noise of each other.
    low: float | None = None
    high: float | None = None

    def overlaps(self, other: TierCandidate) -> bool:
        if None in (self.low, self.high, other.low, other.high):
            return False
        return bool(self.low <= other.high and other.low <= self.high)  # type: ignore[operator]


@dataclass(frozen=True)
class Advice:
    workload_class: str
    benchmark: str
    unit: str | None
    winner: TierCandidate | None
    runner_up: TierCandidate | None
    ratio: float | None  # winner / runner-up; None without a runner-up or when the runner-up measured 0
    verdict: str
    evidence: tuple[Row, ...]  # every succeeded job considered, priced or not
    local: bool
    # The winner's and the runner-up's spreads across repeats overlap: the ranking may be noise.
    within_noise: bool = False


def candidates(rows: Sequence[Row]) -> list[TierCandidate]:
    """Priced rows grouped by (tier, instance type), best median first."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if r.per_dollar is not None:
            groups.setdefault((r.tier, r.instance_type), []).append(r)
    found = [TierCandidate(tier, itype, statistics.median(r.per_dollar for r in rs if r.per_dollar is not None),
                           rs[0].per_dollar_unit or "", len(rs), _named(f"{r.rack}/{r.node_group}" for r in rs),
                           *_range(rs))
             for (tier, itype), rs in groups.items()]
    return sorted(found, key=lambda c: (-c.per_dollar, c.tier, c.instance_type))


# Node groups a verdict names before it counts the rest: a run over 10,000 racks must not make a verdict of 10,000
# names (the evidence table and --json list every row).
NAMED_GROUPS = 3


def _named(groups: Iterable[str]) -> str:
    names = list(dict.fromkeys(groups))
    more = len(names) - NAMED_GROUPS
    return ", ".join(names[:NAMED_GROUPS]) + (f" and {more:,} more" if more > 0 else "")


def _range(rows: Sequence[Row]) -> tuple[float | None, float | None]:
    """The lowest and highest per-dollar figure of the rows' repeats; None where a row has no spread recorded."""
    spans = [(r.per_dollar * r.low / r.value, r.per_dollar * r.high / r.value) for r in rows
             if r.per_dollar is not None and r.low is not None and r.high is not None and r.value]
    if len(spans) < len(rows):
        return None, None
    return min(lo for lo, _ in spans), max(hi for _, hi in spans)


def _name(c: TierCandidate) -> str:
    return f"{c.tier} ({c.instance_type})"


def _value(c: TierCandidate) -> str:
    return f"{fmt(c.per_dollar)} {c.unit}"


def advise_benchmark(workload_class: str, benchmark: str, rows: Sequence[Row]) -> Advice:
    """The best tier for one benchmark; the runner-up is the best of another tier where one has data, since the
    question is which tier to buy."""
    evidence = tuple(r for r in rows if r.benchmark == benchmark and r.priced and r.valid)
    local = any(r.local for r in evidence)
    unit = evidence[0].per_dollar_unit if evidence else None
    ranked = candidates(evidence)
    tiers = sorted({r.tier for r in evidence})
    unpriced = sorted({f"{r.tier} ({r.instance_type})" for r in evidence if r.per_dollar is None})
    if not evidence:
        invalid = sorted({f"{r.tier} ({r.instance_type})" for r in rows if r.benchmark == benchmark and r.priced
                          and r.status == "succeeded" and not r.valid})
        why = f" (invalid, a node failed its health check: {', '.join(invalid)})" if invalid else ""
        return Advice(workload_class, benchmark, unit, None, None, None,
                      f"no valid succeeded {benchmark} results in these runs{why}", evidence, local)
    if not ranked:
        return Advice(workload_class, benchmark, unit, None, None, None,
                      f"cannot advise on cost for {benchmark}: no price known for " + ", ".join(unpriced),
                      evidence, local)
    winner = ranked[0]
    others = [c for c in ranked[1:] if c.tier != winner.tier] or ranked[1:]
    runner_up = others[0] if others else None
    ratio = winner.per_dollar / runner_up.per_dollar if runner_up and runner_up.per_dollar > 0 else None
    verdict = f"best per dollar: {_name(winner)} at {_value(winner)}"
    if runner_up is not None:
        verdict += (f", {ratio:.2f}x the runner-up {_name(runner_up)} at {_value(runner_up)}" if ratio is not None
                    else f"; the runner-up {_name(runner_up)} measured 0")
    if len(tiers) == 1:
        verdict += f"; only the {tiers[0]} tier has {benchmark} data, so nothing is compared across tiers"
    elif runner_up is None or runner_up.tier == winner.tier:
        verdict += "; no other tier has a priced result to compare with"
    noise = runner_up is not None and winner.overlaps(runner_up)
    if noise:
        verdict += ("; within noise: the two overlap across repeats "
                    f"({fmt(winner.low or 0)}-{fmt(winner.high or 0)} and "
                    f"{fmt(runner_up.low or 0)}-{fmt(runner_up.high or 0)} {winner.unit})")  # type: ignore[union-attr]
    if unpriced:
        verdict += "; not ranked, price unknown: " + ", ".join(unpriced)
    return Advice(workload_class, benchmark, unit, winner, runner_up, ratio, verdict, evidence, local, noise)


def advise(rows: Sequence[Row]) -> list[Advice]:
    return [advise_benchmark(cls, b, rows) for cls, benchmarks in CLASSES.items() for b in benchmarks]


def class_verdict(workload_class: str, advice: Sequence[Advice]) -> str:
    """The verdict for a class of work, first: the tier to buy, by how much per dollar against which, and because of
    what figures; "within noise" where the repeats' spreads overlap; or the split between tiers."""
    mine = [a for a in advice if a.workload_class == workload_class and a.winner is not None]
    if not mine:
        return f"{workload_class}: no priced results to advise on"
    missing = [a.benchmark for a in advice if a.workload_class == workload_class and a.winner is None]
    gap = f" ({', '.join(missing)}: no priced result)" if missing else ""
    tiers = {a.winner.tier for a in mine if a.winner is not None}
    if len(tiers) > 1:
        split = "; ".join(f"{a.benchmark} favours {a.winner.tier}" for a in mine if a.winner is not None)
        return f"{workload_class}: split, {split}{gap}"
    if all(a.within_noise for a in mine):
        others = ", ".join(dict.fromkeys(a.runner_up.tier for a in mine if a.runner_up is not None))
        return (f"{workload_class}: within noise between {tiers.pop()} and {others} on "
                f"{', '.join(a.benchmark for a in mine)}: the spreads across repeats overlap{gap}")
    winner = mine[0].winner
    assert winner is not None
    return f"{workload_class} -> {winner.tier} ({winner.groups}): " + "; ".join(_because(a) for a in mine) + gap


def _because(a: Advice) -> str:
    w, r = a.winner, a.runner_up
    assert w is not None
    if r is None or a.ratio is None:
        return f"the only priced {a.benchmark} result ({_value(w)})"
    noise = " (within noise)" if a.within_noise else ""
    return (f"{a.ratio:.2f}x the {MEANING[a.benchmark]} per dollar of {r.tier} ({r.groups}) on {a.benchmark}"
            f"{noise}, because it measured {_value(w)} against {_value(r)}")


def evidence_table(a: Advice) -> tuple[list[list[str]], list[str]]:
    """Units in the header: every row of one benchmark's evidence measures the same headline."""
    rows = [[r.run_id, f"{r.rack}/{r.node_group}", r.instance_type + (" [local]" if r.local else ""),
             str(r.node_count), fmt(r.value), usd(r.usd_per_hour),
             fmt(r.per_dollar)]
            for r in a.evidence]
    unit = a.evidence[0].unit if a.evidence else ""
    return rows, ["run", "rack/node group", "instance", "nodes", f"{a.evidence[0].metric if a.evidence else 'value'}"
                  f" ({unit})", "$/hour", f"per $ ({a.unit})"]


def advice_dict(advice: Sequence[Advice]) -> dict[str, Any]:
    local = any(a.local for a in advice)
    return {
        "local_rehearsal": local,
        "caveat": LOCAL_CAVEAT if local else None,
        "classes": {cls: class_verdict(cls, advice) for cls in CLASSES},
        "advice": [{**asdict(a), "meaning": MEANING[a.benchmark],
                    "evidence": [{k: v for k, v in asdict(r).items()
                                  if k in ("run_id", "rack", "node_group", "tier", "instance_type", "node_count",
                                           "value", "unit", "usd_per_hour", "per_dollar", "per_dollar_unit",
                                           "local")} for r in a.evidence]}
                   for a in advice],
    }
