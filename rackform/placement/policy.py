"""Where a workload runs: the pure placement policy (docs/allocation.md says it in one page).

Inputs: one workload, the plan, result records, the live state of each node group's queue and capacity
(state.py, read by rackform.jobs) and the image platforms read from registries; no AWS call happens here.

1. Hard constraints (constraints.py): a node group is a candidate only if the job fits it (nodes with EFA and a
   placement group when more than one, vCPUs, memory after the ECS reserve, GPUs, accelerator memory), its image
   runs on the group's architecture, the group passes its latest health check, its job queue and compute
   environment are ENABLED/VALID, its reservation or Capacity Block is active until the job's expected end, the
   job can ever start there (its vCPUs within the maximum), a latency SLO is met by the measured p99, and the
   expected cost keeps within the budget. Each refusal says why.
2. When it would start (start.py): the queue's RUNNING jobs and the jobs ahead walked against the maximum vCPUs.
3. What it would cost (pricing.py): the capacity kind's marginal price (a reservation with free instances costs
   nothing more), the measured work per node-hour scaled by the workload's utilization (without one the cost is a
   lower bound), and on Spot the run time the queue's recent reclaims are expected to add.
4. The objective ranks what is left: cost (default; the cost per unit of work) or time (the expected end). Two
   figures whose measured ranges overlap are a tie, broken by the price per hour and then the class's seed
   order, never by name; groups with nothing measured follow, in seed order and cheapest node first. The
   best-ranked candidate whose start is within max_wait takes the job; otherwise it spills over to the next one.
   An unknown start is shown as unknown and does not spill.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from workloads.results import ResultRecord

from ..capacity import of as capacity_kind
from ..numbers import num
from ..plan.models import NodeGroupPlan, Plan
from ..reference.peaks import Limits
from ..spec.workload import Workload
from . import evidence
from .constraints import image_architecture_warnings, verdicts
from .evidence import GroupHealth, PerDollarFigure
from .pricing import SpotGuide, interruption, node_price, spot_guides
from .start import duration_text, estimate
from .state import ImagePlatforms, QueueState

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
Outcome = Literal["placed", "spilled", "unplaced"]
UNPRICED_NOTE = "measured, but its price is unknown: not ranked by figure"
REHEARSAL_NOTE = "figure from a local rehearsal (--include-rehearsal): this machine's, priced as the instance type"


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
    usd_per_hour: float | None  # the job's nodes at the capacity kind's marginal price; None: unknown
    backlog_vcpus: int | None
    max_vcpus: int | None
    job_duration_s: float | None  # how long the queue's jobs take, for the start estimate; None: unknown
    wait_s: float | None  # expected start, seconds from now; None: cannot estimate; inf: can never start
    expected_cost_usd: float | None
    refused: str | None  # why it cannot take the job; None: it can
    notes: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()  # every hard constraint: ok, REFUSED or unknown, with why
    start_basis: str = ""  # how wait_s was reckoned, in words
    price_basis: str = ""  # where usd_per_hour comes from
    usd_per_unit: float | None = None  # expected $ per unit of the class's work (utilization and reclaims in)
    per_dollar_low: float | None = None  # the measured range behind per_dollar
    per_dollar_high: float | None = None
    rehearsal: bool = False  # per_dollar comes (in part) from a local rehearsal
    p99_latency_ms: float | None = None  # measured inference p99 of the instance type
    run_s: float | None = None  # how long the job is expected to run (reclaims not in)
    interruption: str = ""  # Spot: the expected reclaim cost's arithmetic
    cost_is_lower_bound: bool = False  # no utilization (or reclaim cost unknown): the job will cost more

    @property
    def where(self) -> str:
        return f"{self.rack}/{self.node_group}"

    @property
    def finish_s(self) -> float | None:
        """Expected end, seconds from now: start plus run; None where either is unknown."""
        if self.wait_s is None or self.run_s is None:
            return None
        return self.wait_s + self.run_s


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
    objective: str = "cost"
    warnings: tuple[str, ...] = ()

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
                "basis": self.basis, "ranking": self.ranking, "objective": self.objective, "outcome": self.outcome,
                "line": self.line(), "reason": self.reason, "warnings": list(self.warnings),
                "chosen": clean(self.chosen), "preferred": clean(self.preferred),
                "candidates": [clean(c) for c in self.candidates]}


def decision_from_dict(d: dict[str, Any]) -> Decision:
    """A decision as `to_dict` wrote it (the record `rackform run` keeps in S3), to explain it again."""
    def cand(c: dict[str, Any]) -> PlacementCandidate:
        return PlacementCandidate(**{**c, "wait_s": math.inf if c["wait_s"] == "never" else c["wait_s"],
                                       "notes": tuple(c["notes"]), "verdicts": tuple(c.get("verdicts", ()))})

    candidates = tuple(cand(c) for c in d["candidates"])

    def same(c: dict[str, Any] | None) -> PlacementCandidate | None:  # the ranked candidate itself, so `is` finds it
        if c is None:
            return None
        found = cand(c)
        return next((x for x in candidates if (x.rack, x.node_group) == (found.rack, found.node_group)), found)

    return Decision(d["workload"], d["class"], d["benchmark"], d["basis"], d["outcome"], same(d["chosen"]),
                    same(d["preferred"]), d["reason"], candidates, d.get("ranking", ""), d.get("objective", "cost"),
                    tuple(d.get("warnings", ())))


def figure_text(c: PlacementCandidate) -> str:
    if c.per_dollar is None:
        return "not measured"
    spread = ""
    if c.per_dollar_low is not None and c.per_dollar_high is not None and c.per_dollar:
        spread = f" ±{(c.per_dollar_high - c.per_dollar_low) / 2 / c.per_dollar:.1%}"
    # numbers.num, as report and advise write the same figure (never 1.047e+06 beside advise's 1,046,512)
    return (f"{num(c.per_dollar)} {c.per_dollar_unit} ({c.measured_jobs} job{'s' * (c.measured_jobs != 1)}"
            f"{spread}{', rehearsal' if c.rehearsal else ''})")


# --- the evidence a decision reads ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Evidence:
    figures: dict[str, PerDollarFigure]
    unpriced: set[str]
    p99: dict[str, tuple[float, int]]
    durations: dict[tuple[str, str], float]
    health: dict[tuple[str, str], GroupHealth]
    spot: dict[str, SpotGuide]  # instance type -> the Spot snapshot's price in the plan's AZ, for Spot groups


def _queue_job_s(w: Workload, g: NodeGroupPlan, state: QueueState | None,
                 durations: Mapping[tuple[str, str], float]) -> tuple[float | None, str]:
    """How long a job of the group's queue takes, for the start estimate, and where that comes from."""
    if state is not None and state.succeeded_s:
        return statistics.median(state.succeeded_s), f"median of the queue's {len(state.succeeded_s)} recent " \
                                                      "SUCCEEDED jobs"
    if w.expected_duration_s is not None:
        return float(w.expected_duration_s), f"the workload's expected_duration {w.expected_duration}"
    if (g.rack, g.name) in durations:
        return durations[(g.rack, g.name)], "median of the group's measured benchmark jobs"
    return None, ""


# --- one candidate ----------------------------------------------------------------------------------------------

def _candidate(w: Workload, g: NodeGroupPlan, ev: _Evidence, state: QueueState | None, images: ImagePlatforms,
               pin: str | None, exclude: Sequence[str]) -> PlacementCandidate:
    nodes, res = w.nodes_on(g.tier), w.resources_on(g.tier)
    kind = capacity_kind(g.capacity.type)
    figure = ev.figures.get(g.instance_type)
    job_s, job_basis = _queue_job_s(w, g, state, ev.durations)
    start = estimate(g, state, need_vcpus=nodes * (res.vcpus or g.vcpus_per_node), job_s=job_s, job_basis=job_basis)
    wait, start_basis = start.wait_s, start.basis
    free = state.reservation_free if state is not None else None
    if kind.needs_reservation_id and free is not None and free < nodes and wait is not None and math.isfinite(wait):
        short = f"{free} free instance(s) in {g.capacity.reservation_id}, the job needs {nodes}"
        wait, start_basis = ((None, f"{start_basis}; {short}, and how long a job takes is unknown: cannot estimate")
                             if job_s is None else
                             (wait + job_s, f"{start_basis}; {short}: waits for one job ({duration_text(job_s)})"))
    price = node_price(g, state, nodes, ev.spot.get(g.instance_type))
    util = w.utilization or 1.0
    # Work one node does in an hour: the measured figure per dollar times the price it was measured at.
    per_node_hour = figure.per_dollar * figure.usd_per_node_hour * util if figure else None
    run_s = (float(w.expected_duration_s) if w.expected_duration_s is not None else
             w.work / per_node_hour / nodes * 3600 if w.work and per_node_hour else None)
    lost = interruption(g, state, run_s=run_s, checkpoint_s=w.checkpoint_every_s, queue_job_s=job_s)
    factor = 1 + (lost.extra_s / run_s if lost and lost.extra_s and run_s else 0.0)
    unit = None
    if figure and price.usd_per_node_hour is not None:
        unit = price.usd_per_node_hour * factor / (figure.usd_per_node_hour * util) / figure.per_dollar
    cost = w.work * unit if w.work and unit is not None else None
    lower_bound = w.utilization is None or (lost is not None and lost.extra_s is None)
    checks = verdicts(w, g, state, images, ev.health.get((g.rack, g.name)), start_s=wait, expected_s=run_s)
    notes = [n for n, on in ((UNPRICED_NOTE, g.instance_type in ev.unpriced),
                             (REHEARSAL_NOTE, figure is not None and figure.rehearsal)) if on]
    p99 = ev.p99.get(g.instance_type)
    refused = _refusal(w, g, pin, exclude, [v.text for v in checks if v.ok is False], wait, start_basis, p99, cost,
                       lower_bound, g.instance_type in ev.unpriced)
    return PlacementCandidate(
        g.rack, g.name, g.tier, g.instance_type, g.capacity.type, g.job_queue, nodes,
        figure.per_dollar if figure else None, figure.unit if figure else None, figure.jobs if figure else 0,
        None if price.usd_per_node_hour is None else price.usd_per_node_hour * nodes,
        state.backlog_vcpus if state else None,
        (state.max_vcpus if state and state.max_vcpus else None) or g.count * g.vcpus_per_node, job_s, wait, cost,
        refused, tuple(notes), tuple(v.line() for v in checks), start_basis, price.basis, unit,
        figure.low if figure else None, figure.high if figure else None, bool(figure and figure.rehearsal),
        p99[0] if p99 else None, run_s, lost.text if lost else "", cost is not None and lower_bound)


def _refusal(w: Workload, g: NodeGroupPlan, pin: str | None, exclude: Sequence[str], failing: list[str],
             wait: float | None, start_basis: str, p99: tuple[float, int] | None, cost: float | None,
             lower_bound: bool, unpriced: bool) -> str | None:
    if g.tier in exclude:
        return f"tier {g.tier} excluded"
    if pin is not None and g.tier != pin:
        return f"pinned to {pin}"
    if failing:
        return "; ".join(failing)
    if wait is not None and not math.isfinite(wait):
        return start_basis
    if w.slo is not None:
        limit = w.slo.p99_latency_ms
        if p99 is None:
            return f"no measured p99 latency for {g.instance_type}: cannot show it meets the SLO of {limit:g} ms"
        if p99[0] > limit:
            return f"measured p99 {p99[0]:,.4g} ms (median of {p99[1]}) is over the SLO of {limit:g} ms"
    if w.budget_usd is not None:
        if cost is None:
            return (f"expected cost unknown ({'price unknown' if unpriced else 'not measured or not priced'}): "
                    f"cannot keep within budget ${w.budget_usd:g}")
        if cost > w.budget_usd:
            at_least = "at least " if lower_bound else ""
            return f"expected cost {at_least}${cost:,.2f} is over the budget ${w.budget_usd:,.2f}"
    return None


# --- ranking and the decision -----------------------------------------------------------------------------------

def _rank(found: list[PlacementCandidate], objective: str, seed: tuple[str, ...],
          order: Mapping[tuple[str, str], int]) -> list[PlacementCandidate]:
    """Able candidates by the objective, measured ranges that overlap counted as a tie (broken by $/hour, then the
    seed order, then the spec's order: never by name); then the unranked ones by seed order and cheapest node;
    refused ones last."""
    def seed_pos(c: PlacementCandidate) -> int:
        return seed.index(c.tier) if c.tier in seed else len(seed)

    def tie_break(c: PlacementCandidate) -> tuple[float, int, int]:
        return (c.usd_per_hour if c.usd_per_hour is not None else math.inf, seed_pos(c), order[(c.rack, c.node_group)])

    able = [c for c in found if c.refused is None]
    if objective == "time":
        keyed = sorted((c for c in able if c.finish_s is not None), key=lambda c: (c.finish_s, *tie_break(c)))
    else:
        keyed = []
        rest_sorted = sorted((c for c in able if c.usd_per_unit is not None), key=lambda c: c.usd_per_unit or 0.0)
        while rest_sorted:
            high = _unit_high(rest_sorted[0])
            tied = [c for c in rest_sorted if _unit_low(c) <= high]
            keyed += sorted(tied, key=tie_break)
            rest_sorted = [c for c in rest_sorted if c not in tied]
    unranked = sorted((c for c in able if c not in keyed), key=lambda c: (seed_pos(c), *tie_break(c)[:1],
                                                                             order[(c.rack, c.node_group)]))
    refused = sorted((c for c in found if c.refused is not None), key=lambda c: (seed_pos(c),
                                                                                order[(c.rack, c.node_group)]))
    return [*keyed, *unranked, *refused]


def _unit_low(c: PlacementCandidate) -> float:
    """The lowest $ per unit the measured range allows (the highest figure)."""
    assert c.usd_per_unit is not None
    return c.usd_per_unit * (c.per_dollar or 1) / (c.per_dollar_high or c.per_dollar or 1)


def _unit_high(c: PlacementCandidate) -> float:
    assert c.usd_per_unit is not None
    return c.usd_per_unit * (c.per_dollar or 1) / (c.per_dollar_low or c.per_dollar or 1)


def place(workload: Workload, plan: Plan, records: Sequence[ResultRecord], queues: Mapping[str, QueueState], *,
          limits_of: Callable[[str], Limits | None], pin: str | None = None, exclude: Sequence[str] = (),
          images: ImagePlatforms | None = None, include_rehearsal: bool = False) -> Decision:
    """Decide where `workload` runs. `queues` is keyed by job queue name; `pin`/`exclude` add to the workload's own;
    `images` the platforms read from registries (an image not in it was not read); local-rehearsal records rank
    tiers only with `include_rehearsal`."""
    cls = workload.workload_class
    benchmark = CLASS_BENCHMARK[cls]
    seed = SEED_ORDER[cls]
    pin = pin or workload.placement.pin
    exclude = (*workload.placement.exclude, *exclude)
    usable = evidence.usable(records, include_rehearsal)
    figures, unpriced = evidence.figures(usable, benchmark, limits_of)
    groups = [g for g in plan.node_groups() if workload.job_for(g.tier) is not None]
    ev = _Evidence(figures, unpriced, evidence.p99_latency_ms(usable), evidence.job_durations(usable),
                   evidence.latest_health(usable), spot_guides(plan, groups))
    order = {(g.rack, g.name): i for i, g in enumerate(groups)}
    found = [_candidate(workload, g, ev, queues.get(g.job_queue), images or {}, pin, exclude) for g in groups]
    ranked = tuple(_rank(found, workload.objective, seed, order))
    warnings = tuple(image_architecture_warnings(workload, groups))
    if len(usable) < len(records):
        warnings += (f"{len(records) - len(usable)} local-rehearsal record(s) left out: measured on this machine, "
                     "they rank no real tier (--include-rehearsal to use them, labelled)",)
    able = [c for c in ranked if c.refused is None]
    basis: Literal["measured", "seed order"] = "measured" if any(c.per_dollar is not None for c in able) \
        else "seed order"
    if not able:
        why = "; ".join(f"{c.where}: {c.refused}" for c in ranked) or \
            f"no node group of spec {plan.name} has a tier the workload has an image for ({', '.join(workload.tiers)})"
        return Decision(workload.name, cls, benchmark, basis, "unplaced", None, None, why, ranked,
                        objective=workload.objective, warnings=warnings)
    preferred = able[0]
    limit = workload.max_wait_s
    within = [c for c in able if limit is None or c.wait_s is None or c.wait_s <= limit]
    chosen = within[0] if within else min(able, key=lambda c: c.wait_s if c.wait_s is not None else 0.0)
    how = _how(workload, benchmark, seed, preferred, basis)
    if chosen is preferred:
        return Decision(workload.name, cls, benchmark, basis, "placed", chosen, preferred, how, ranked, how,
                        workload.objective, warnings)
    why = (f"{preferred.where} would wait about {duration_text(preferred.wait_s)} "
           f"({preferred.start_basis}), over max_wait {workload.max_wait}; {chosen.where} about "
           f"{duration_text(chosen.wait_s)}")
    if not within:
        why += " (every candidate is over max_wait: the shortest wait)"
    return Decision(workload.name, cls, benchmark, basis, "spilled", chosen, preferred, why, ranked, how,
                    workload.objective, warnings)


def _how(w: Workload, benchmark: str, seed: tuple[str, ...], preferred: PlacementCandidate, basis: str) -> str:
    if w.objective == "time":
        if preferred.finish_s is not None:
            return (f"objective time: the earliest expected end ({duration_text(preferred.finish_s)}: starts in "
                    f"{duration_text(preferred.wait_s)}, runs {duration_text(preferred.run_s)})")
        return (f"objective time, but no candidate's end can be estimated (a start estimate and a run time: "
                f"expected_duration, or work with a measured figure): seed order {' -> '.join(seed)}")
    if basis == "measured" and preferred.usd_per_unit is not None:
        return f"objective cost: the lowest measured cost per unit of work ({benchmark}: {figure_text(preferred)})"
    if basis == "measured" and preferred.per_dollar is not None:
        return f"best measured {benchmark} per dollar ({figure_text(preferred)})"
    return f"no healthy priced {benchmark} results: seed order {' -> '.join(seed)}, in a tier the cheapest node first"
