"""What acceptance will run on a node group, for how long and at what cost, said before anything is submitted.

The steps and their expected seconds are the in-job runner's own schedule (workloads/accept_plan.py); this module adds
the group's shape, the capacity kind's limits and the price, and holds the total against a budget.
"""

from __future__ import annotations

import math

from pydantic import Field

from workloads.accept_plan import acceptance_steps

from ..capacity import of as capacity_kind
from ..numbers import usd
from ..plan.models import NodeGroupPlan
from ..spec.base import Frozen

SECONDS_PER_HOUR = 3600

# What a group that can run one multi-node job proves, and what one that cannot (Spot) does not: the single-node tests
# need no other node, the fabric rounds and the group's collective need the nodes in one job
# (https://docs.aws.amazon.com/batch/latest/userguide/mnp-ce.html: multi-node parallel jobs do not run on Spot).
PROVES_SINGLE = "every node's health and single-node figures (compute, memory, storage, on-node collective, CPU)"
PROVES_FABRIC = "every node's fabric, pair by pair, and the whole group's collective"
NO_FABRIC = ("no fabric figure: AWS Batch runs no multi-node job on {label} capacity, so the pairwise rounds and the "
             "group's collective cannot run; a node with a bad EFA device or link passes unseen")


class PlannedStep(Frozen):
    """One step of the acceptance job, as the runner schedules it."""

    test: str
    nodes: int = Field(ge=1)  # nodes busy in the step (all of them for the per-node tests and the pair rounds)
    seconds: float = Field(ge=0)  # expected wall time of the step
    what: str  # one line: what it measures


class GroupAcceptancePlan(Frozen):
    rack: str
    node_group: str
    instance_type: str
    capacity: str
    nodes: int
    multi_node: bool  # one multi-node job spans the group; False: one single-node job per node
    jobs: int
    steps: tuple[PlannedStep, ...]
    wall_seconds: float
    usd_per_node_hour: float | None
    price_source: str  # where the price came from, or why there is none and how to give one
    cost_usd: float | None  # every node billed for the whole wall time; None when the price is unknown
    proves: tuple[str, ...]
    cannot_prove: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.rack}/{self.node_group}"


class AcceptancePlan(Frozen):
    spec: str
    groups: tuple[GroupAcceptancePlan, ...]

    @property
    def known_cost_usd(self) -> float:
        return math.fsum(g.cost_usd for g in self.groups if g.cost_usd is not None)

    @property
    def unpriced(self) -> tuple[GroupAcceptancePlan, ...]:
        return tuple(g for g in self.groups if g.cost_usd is None)


def group_plan(group: NodeGroupPlan, *, fsx: bool, repeats: int, usd_per_node_hour: float | None,
               price_source: str) -> GroupAcceptancePlan:
    """The runner's own steps for the group (workloads/accept_plan.py: its tier's tests, the fabric rounds at their
    most, the group's collective), priced with every node billed for the whole run: a multi-node job holds them all
    until it ends, and single-node jobs (Spot) run side by side, one per node."""
    kind = capacity_kind(group.capacity.type)
    multi = kind.multi_node and group.count >= 2
    planned = tuple(PlannedStep(test=t, nodes=n, seconds=s, what=w) for t, n, s, w in
                    acceptance_steps(group.tier, group.count, multi, fsx, repeats))
    wall = math.fsum(s.seconds for s in planned)
    cost = None if usd_per_node_hour is None else round(wall / SECONDS_PER_HOUR * usd_per_node_hour * group.count, 6)
    cannot = () if multi else (NO_FABRIC.format(label=kind.label),) if not kind.multi_node else \
        ("no fabric figure: a group of one node has no peer",)
    return GroupAcceptancePlan(
        rack=group.rack, node_group=group.name, instance_type=group.instance_type, capacity=group.capacity.type,
        nodes=group.count, multi_node=multi, jobs=1 if multi else group.count, steps=planned, wall_seconds=wall,
        usd_per_node_hour=usd_per_node_hour, price_source=price_source, cost_usd=cost,
        proves=(PROVES_SINGLE, PROVES_FABRIC) if multi else (PROVES_SINGLE,), cannot_prove=cannot)


def over_budget(plan: AcceptancePlan, budget_usd: float) -> str | None:
    """Why the plan may not run under `budget_usd` (None: it may). Unpriced groups fail: a budget gate that passes on
    a missing price is no gate."""
    if plan.known_cost_usd > budget_usd:
        return (f"acceptance would cost {'at least ' if plan.unpriced else ''}{usd(plan.known_cost_usd)} USD, over "
                f"--budget {usd(budget_usd)} USD; nothing was submitted (accept fewer groups with --node-group)")
    if plan.unpriced:
        names = ", ".join(f"{g.label} ({g.price_source})" for g in plan.unpriced)
        return (f"cannot confirm --budget {usd(budget_usd)} USD: no price for {names}; nothing was submitted")
    return None
