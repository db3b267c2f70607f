"""Where a workload runs: the pure placement policy.

Inputs: one workload, the plan, result records and the queues' live state (read elsewhere, rackform.jobs.queues);
no AWS call happens here. The policy, in order:

1. Candidates are the plan's node groups whose tier the workload has an image for and whose nodes fit it (node
   count within what one Batch job may span, per-node vCPUs, memory and GPUs). A pinned or excluded tier, and a
   candidate whose expected cost is over the workload's budget or unknown while it has one, are refused with the
   reason.
2. They are ranked by the measured performance per dollar of the benchmark that stands for the class (the table
   below), per instance type, the median over healthy records with a known price (as `rackform advise` ranks).
   Measured ones come first, best first; the others follow in the class's seed order. A price that is unknown is
   never a price of 0: that instance type is simply not ranked by figure. When nothing is measured the seed order
   decides alone, and the decision says so. Ties go to the seed order, then to rack and node group names.
3. Live state decides among them: the expected wait of a queue is the vCPUs of its RUNNABLE and STARTING jobs over
   its compute environment's maximum vCPUs, times a typical job duration (the median of the node group's healthy
   records measured on AWS, else DEFAULT_JOB_DURATION_S). A reservation or Capacity Block that is not active
   cannot start the job at all; one with fewer free instances than the job needs adds one job duration; a Spot
   group whose queue saw interruptions adds one job duration (the interrupted job runs again). The best-ranked
   candidate whose wait is within the workload's max_wait takes the job; when that is not the best-ranked one,
   the job has spilled over. An unknown backlog is not a long one: it is shown as unknown and does not spill.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from workloads.results import ResultRecord

from ..analysis.advise import candidates
from ..analysis.report import health_of, is_local, report_rows
from ..capacity import of as capacity_kind
from ..plan.models import NodeGroupPlan, Plan
from ..reference.peaks import Limits
from ..spec.workload import Workload
from .state import QueueState

# Which benchmark stands for a class of work, and so which per-dollar figure ranks the tiers for it:
#   general   -> cpu        sysbench cpu events per $ (the whole instance's CPUs)
#   inference -> inference  tokens per $ (a small transformer, all accelerators of the instance)
#   training  -> gemm       bf16 TFLOP per $: dense matrix multiply is where training spends its compute, and it
#                           runs on every tier on one node; allreduce prices the fabric, which only matters
#                           once a job spans nodes, and is left to `rackform advise`.
CLASS_BENCHMARK: dict[str, str] = {"general": "cpu", "inference": "inference", "training": "gemm"}
# When nothing is measured: AWS's own split (general compute on Graviton, scalable inference on Trainium, high-end
# AI on NVIDIA GPUs), then the other tiers from cheapest kind of node up.
SEED_ORDER: dict[str, tuple[str, ...]] = {
    "general": ("graviton", "cpu", "trainium", "gpu"),
    "inference": ("trainium", "gpu", "graviton", "cpu"),
    "training": ("gpu", "trainium", "graviton", "cpu"),
}
DEFAULT_JOB_DURATION_S = 3600.0
Outcome = Literal["placed", "spilled", "unplaced"]


def healthy(record: ResultRecord) -> bool:
    """A record whose figures may rank tiers: it succeeded and the runner did not mark it invalid (a node failed its
    health step: record schema 2). Version-1 records, from before the health step, count on their success alone."""
    return record.status == "succeeded" and health_of(record)[0] is not False


@dataclass(frozen=True)
class PlacementCandidate:
    rack: str
    node_group: str
    tier: str
    instance_type: str
    capacity: str
    queue: str
    nodes: int
    per_dollar: float | None  # measured work per $ of the class's benchmark; None: not measured or price unknown
    per_dollar_unit: str | None
    measured_jobs: int
    usd_per_hour: float | None  # the job's nodes at the plan's On-Demand price; None: unknown
    backlog_vcpus: int | None
    max_vcpus: int | None
    job_duration_s: float
    wait_s: float | None  # expected wait in the queue; None: unknown; inf: cannot start
    expected_cost_usd: float | None
    refused: str | None  # why it cannot take the job; None: it can
    notes: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.rack}/{self.node_group}"


@dataclass(frozen=True)
class Decision:
    workload: str
    workload_class: str
    benchmark: str
    basis: Literal["measured", "seed order"]
    outcome: Outcome
    chosen: PlacementCandidate | None
    preferred: PlacementCandidate | None  # the best-ranked candidate that could take the job
    reason: str
    candidates: tuple[PlacementCandidate, ...] = field(default=())  # ranked; refused ones last
    ranking: str = ""  # what ranked the candidates: the measured figure, or the seed order

    def line(self) -> str:
        if self.outcome == "unplaced" or self.chosen is None:
            return f"unplaced {self.workload} ({self.workload_class}): {self.reason}"
        if self.outcome == "spilled" and self.preferred is not None:
            return f"spilled {self.workload} from {self.preferred.tier} to {self.chosen.tier}: {self.reason}"
        return f"placed {self.workload} ({self.workload_class}) on {self.chosen.where} [{self.chosen.tier}]"

    def to_dict(self) -> dict[str, Any]:
        def clean(c: PlacementCandidate | None) -> dict[str, Any] | None:
            if c is None:
                return None
            d = asdict(c)
            d["wait_s"] = None if c.wait_s is None else (c.wait_s if math.isfinite(c.wait_s) else "never")
            return d

        return {"workload": self.workload, "class": self.workload_class, "benchmark": self.benchmark,
                "basis": self.basis, "ranking": self.ranking, "outcome": self.outcome, "line": self.line(),
                "reason": self.reason,
                "chosen": clean(self.chosen), "preferred": clean(self.preferred),
                "candidates": [clean(c) for c in self.candidates]}


def decision_from_dict(d: dict[str, Any]) -> Decision:
    """A decision as `to_dict` wrote it (the record `rackform run` keeps in S3), to explain it again."""
    def cand(c: dict[str, Any]) -> PlacementCandidate:
        return PlacementCandidate(**{**c, "wait_s": math.inf if c["wait_s"] == "never" else c["wait_s"],
                                       "notes": tuple(c["notes"])})

    candidates = tuple(cand(c) for c in d["candidates"])

    def same(c: dict[str, Any] | None) -> PlacementCandidate | None:  # the ranked candidate itself, so `is` finds it
        if c is None:
            return None
        found = cand(c)
        return next((x for x in candidates if (x.rack, x.node_group) == (found.rack, found.node_group)), found)

    return Decision(d["workload"], d["class"], d["benchmark"], d["basis"], d["outcome"], same(d["chosen"]),
                    same(d["preferred"]), d["reason"], candidates, d.get("ranking", ""))


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if not math.isfinite(seconds):
        return "never"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else (f"{minutes}m" if minutes else
                                                                        f"{seconds:.0f}s")


# --- measured figures -------------------------------------------------------------------------------------------

UNPRICED_NOTE = "measured, but its price is unknown: not ranked by figure"


@dataclass(frozen=True)
class PerDollarFigure:
    per_dollar: float
    unit: str
    jobs: int


def figures(records: Iterable[ResultRecord], benchmark: str,
            limits_of: Callable[[str], Limits | None]) -> tuple[dict[str, PerDollarFigure], set[str]]:
    """Per instance type, the median per-dollar figure of the benchmark over healthy priced records; and the
    instance types measured but not priced (shown, never ranked as if free)."""
    rows = [r for r in report_rows([r for r in records if healthy(r) and r.benchmark == benchmark], limits_of)
            if r.priced and r.valid]
    # Ranked as `rackform advise` ranks (the median: a repeated run counts once per job, not by its best try).
    ranked = {c.instance_type: PerDollarFigure(c.per_dollar, c.unit, c.jobs) for c in candidates(rows)}
    return ranked, {r.instance_type for r in rows if r.per_dollar is None} - set(ranked)


def job_durations(records: Iterable[ResultRecord]) -> dict[tuple[str, str], float]:
    """Median seconds of a node group's healthy records measured on AWS (a local rehearsal's times are this
    machine's, not the instance's)."""
    found: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if healthy(r) and not is_local(r):
            found.setdefault((r.rack, r.node_group), []).append((r.ended_at - r.started_at).total_seconds())
    return {k: statistics.median(v) for k, v in found.items()}


# --- the policy ---------------------------------------------------------------------------------------------------

def _fit(workload: Workload, g: NodeGroupPlan) -> str | None:
    nodes, res = workload.nodes_on(g.tier), workload.resources_on(g.tier)
    if nodes > g.max_job_nodes:
        kind = capacity_kind(g.capacity.type)
        single = "" if kind.multi_node else f", {kind.label}: one node per job"
        return f"needs {nodes} nodes; one job here spans at most {g.max_job_nodes}{single}"
    if res.vcpus and res.vcpus > g.vcpus_per_node:
        return f"needs {res.vcpus} vCPUs a node; {g.instance_type} has {g.vcpus_per_node}"
    if res.memory_mib and res.memory_mib > g.memory_mib_per_node:
        return f"needs {res.memory_mib} MiB a node; {g.instance_type} has {g.memory_mib_per_node}"
    if res.gpus and res.gpus > g.gpus_per_node:
        return f"needs {res.gpus} GPUs a node; {g.instance_type} has {g.gpus_per_node}"
    return None


def _wait(g: NodeGroupPlan, state: QueueState | None, nodes: int, duration_s: float
          ) -> tuple[float | None, int | None, tuple[str, ...]]:
    """Expected wait, the maximum vCPUs it was reckoned against, and notes on what added to it."""
    max_vcpus = (state.max_vcpus if state and state.max_vcpus else None) or g.count * g.vcpus_per_node
    if state is None or state.backlog_vcpus is None:
        return None, max_vcpus, ("queue state unknown",)
    notes: list[str] = []
    kind = capacity_kind(g.capacity.type)
    if kind.needs_reservation_id and state.reservation_state not in (None, "active"):
        return math.inf, max_vcpus, (f"{g.capacity.type} {g.capacity.reservation_id} is "
                                     f"{state.reservation_state}, not active",)
    wait = state.backlog_vcpus / max_vcpus * duration_s
    if state.reservation_free is not None and state.reservation_free < nodes:
        wait += duration_s
        notes.append(f"{state.reservation_free} free instance(s) in {g.capacity.reservation_id}, the job needs "
                     f"{nodes}: waits for one job")
    if kind.interruptible and state.spot_interruptions:
        wait += duration_s
        notes.append(f"{state.spot_interruptions} Spot interruption(s) in the queue's recent jobs: one rerun "
                     "expected")
    return wait, max_vcpus, tuple(notes)


def _candidate(workload: Workload, g: NodeGroupPlan, figure: PerDollarFigure | None, unpriced: bool,
               state: QueueState | None, duration_s: float, pin: str | None, exclude: Sequence[str]
               ) -> PlacementCandidate:
    nodes = workload.nodes_on(g.tier)
    usd = g.on_demand_usd_per_hour * nodes if g.on_demand_usd_per_hour is not None else None
    cost = workload.work / figure.per_dollar if workload.work and figure and figure.per_dollar > 0 else None
    wait, max_vcpus, notes = _wait(g, state, nodes, duration_s)
    if unpriced:
        notes = (UNPRICED_NOTE, *notes)
    refused = None
    if g.tier in exclude:
        refused = f"tier {g.tier} excluded"
    elif pin is not None and g.tier != pin:
        refused = f"pinned to {pin}"
    elif (why := _fit(workload, g)) is not None:
        refused = why
    elif workload.budget_usd is not None and cost is None:
        refused = (f"expected cost unknown ({'price unknown' if unpriced else 'not measured'}): cannot keep "
                   f"within budget ${workload.budget_usd:g}")
    elif workload.budget_usd is not None and cost is not None and cost > workload.budget_usd:
        refused = f"expected cost ${cost:,.2f} is over the budget ${workload.budget_usd:,.2f}"
    return PlacementCandidate(g.rack, g.name, g.tier, g.instance_type, g.capacity.type, g.job_queue, nodes,
                     figure.per_dollar if figure else None, figure.unit if figure else None,
                     figure.jobs if figure else 0, usd, state.backlog_vcpus if state else None, max_vcpus,
                     duration_s, wait, cost, refused, notes)


def place(workload: Workload, plan: Plan, records: Sequence[ResultRecord], queues: Mapping[str, QueueState], *,
          limits_of: Callable[[str], Limits | None], pin: str | None = None,
          exclude: Sequence[str] = ()) -> Decision:
    """Decide where `workload` runs. `queues` is keyed by job queue name; `pin`/`exclude` add to the workload's own."""
    cls = workload.workload_class
    benchmark = CLASS_BENCHMARK[cls]
    seed = SEED_ORDER[cls]
    pin = pin or workload.placement.pin
    exclude = (*workload.placement.exclude, *exclude)
    measured, unpriced = figures(records, benchmark, limits_of)
    durations = job_durations(records)
    found = [_candidate(workload, g, measured.get(g.instance_type), g.instance_type in unpriced,
                        queues.get(g.job_queue), durations.get((g.rack, g.name), DEFAULT_JOB_DURATION_S), pin,
                        exclude)
             for g in plan.node_groups() if workload.job_for(g.tier) is not None]

    def rank(c: PlacementCandidate) -> tuple[Any, ...]:
        tier_pos = seed.index(c.tier) if c.tier in seed else len(seed)
        return (c.refused is not None, c.per_dollar is None, -(c.per_dollar or 0.0), tier_pos, c.rack, c.node_group)

    ranked = tuple(sorted(found, key=rank))
    able = [c for c in ranked if c.refused is None]
    basis: Literal["measured", "seed order"] = "measured" if any(c.per_dollar is not None for c in able) \
        else "seed order"
    if not able:
        why = "; ".join(f"{c.where}: {c.refused}" for c in ranked) or \
            f"no node group of spec {plan.name} has a tier the workload has an image for ({', '.join(workload.tiers)})"
        return Decision(workload.name, cls, benchmark, basis, "unplaced", None, None, why, ranked)
    preferred = able[0]
    limit = workload.max_wait_s
    within = [c for c in able if limit is None or c.wait_s is None or c.wait_s <= limit]
    chosen = within[0] if within else min(able, key=lambda c: c.wait_s if c.wait_s is not None else 0.0)
    how = (f"best measured {benchmark} per dollar ({figure_text(preferred)})" if basis == "measured" and
           preferred.per_dollar is not None else
           f"no healthy priced {benchmark} results: seed order {' -> '.join(seed)}")
    if chosen is preferred:
        return Decision(workload.name, cls, benchmark, basis, "placed", chosen, preferred, how, ranked, how)
    why = (f"{preferred.where} would wait about {duration_text(preferred.wait_s)} "
           f"({_backlog(preferred)}), over max_wait {workload.max_wait}; {chosen.where} about "
           f"{duration_text(chosen.wait_s)}")
    if not within:
        why += " (every candidate is over max_wait: the shortest wait)"
    return Decision(workload.name, cls, benchmark, basis, "spilled", chosen, preferred, why, ranked, how)


def figure_text(c: PlacementCandidate) -> str:
    return "not measured" if c.per_dollar is None else f"{c.per_dollar:,.4g} {c.per_dollar_unit}"


def _backlog(c: PlacementCandidate) -> str:
    if c.backlog_vcpus is None:
        return "backlog unknown"
    text = f"{c.backlog_vcpus} vCPUs queued for {c.max_vcpus} x {duration_text(c.job_duration_s)} a job"
    return "; ".join((text, *[n for n in c.notes if n != UNPRICED_NOTE]))
