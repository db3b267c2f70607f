"""What a node-hour costs on a node group, by its capacity kind (rackform/capacity.py's row), and what Spot reclaims
are expected to add to a job's run.

- On-Demand: the prices snapshot.
- Spot: the live Spot price read with the state (DescribeSpotPriceHistory), else the dated Spot snapshot's price
  in the plan's AZ (a guide: Spot prices move, so its basis says the date).
- An On-Demand Capacity Reservation or a Capacity Block is paid for whether or not it runs instances (ODCRs bill the
  On-Demand rate for unused capacity; a block is paid up front): while it is active with free instances, running the
  job there costs nothing more, its marginal price is 0 (sunk cost).
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-reservations-pricing-billing.html
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-pricing-billing.html
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..capacity import of as capacity_kind
from ..plan.models import NodeGroupPlan, Plan
from ..reference.prices import Quote, load_prices, spot, spot_gap
from .start import duration_text
from .state import QueueState


@dataclass(frozen=True)
class NodePrice:
    usd_per_node_hour: float | None  # the marginal price of one node-hour; None: unknown (never 0 for unknown)
    basis: str


@dataclass(frozen=True)
class SpotGuide:
    quote: Quote | None  # the Spot snapshot's price of one instance-hour in the plan's AZ; None: not in it
    gap: str  # why there is none


def spot_guides(plan: Plan, groups: Iterable[NodeGroupPlan]) -> dict[str, SpotGuide]:
    """The Spot snapshot's price per instance type of the groups priced at Spot, in the plan's AZ."""
    book, zone = load_prices(), plan.availability_zone_id
    return {g.instance_type: SpotGuide(spot(book, plan.region, zone, g.instance_type),
                                       spot_gap(book, plan.region, zone, g.instance_type))
            for g in groups if capacity_kind(g.capacity.type).price == "spot"}


def node_price(g: NodeGroupPlan, state: QueueState | None, nodes: int, guide: SpotGuide | None = None) -> NodePrice:
    kind = capacity_kind(g.capacity.type)
    if kind.needs_reservation_id:
        rid = g.capacity.reservation_id
        free = state.reservation_free if state is not None else None
        if state is not None and state.reservation_state == "active" and free is not None and free >= nodes:
            return NodePrice(0.0, f"{kind.label} {rid}, active with {free} free instance(s), is already paid for: "
                                  "marginal price 0 (sunk cost)")
        why = "not read" if free is None else f"{free} free instance(s), the job needs {nodes}"
        return NodePrice(None, f"{kind.label} {rid} ({why}): {kind.no_price_reason}")
    if kind.price == "spot":
        if state is not None and state.spot_usd_per_hour is not None:
            return NodePrice(state.spot_usd_per_hour, f"live Spot price ${state.spot_usd_per_hour:g} a node-hour")
        if guide is not None and guide.quote is not None:
            return NodePrice(guide.quote.usd, f"Spot ${guide.quote.usd:g} a node-hour ({guide.quote.source}; Spot "
                                              f"prices move: {kind.no_price_reason})")
        return NodePrice(None, f"{guide.gap}; {kind.no_price_reason}" if guide else kind.no_price_reason)
    if g.on_demand_usd_per_hour is None:
        return NodePrice(None, f"no On-Demand price for {g.instance_type} in the prices snapshot")
    return NodePrice(g.on_demand_usd_per_hour, f"On-Demand ${g.on_demand_usd_per_hour:g} a node-hour (prices "
                                               "snapshot)")


@dataclass(frozen=True)
class Interruption:
    extra_s: float | None  # the run time reclaims are expected to add; None: unknown
    text: str  # the arithmetic, in words


def interruption(g: NodeGroupPlan, state: QueueState | None, *, run_s: float | None, checkpoint_s: int | None,
                 queue_job_s: float | None) -> Interruption | None:
    """Expected run time lost to reclaims on an interruptible kind (None for the others): the queue's recent
    reclaims per job-hour, times the run's hours, each reclaim losing on average half the work since the last
    checkpoint (half the run so far without checkpoints)."""
    if not capacity_kind(g.capacity.type).interruptible:
        return None
    if state is None or state.spot_interruptions is None:
        return Interruption(None, "recent Spot reclaims not read: interruption cost unknown")
    window = f"in the last {duration_text(state.reclaim_window_s)}" if state.reclaim_window_s else "recently"
    if state.spot_interruptions == 0:
        return Interruption(0.0, f"no Spot reclaims {window}")
    if not state.finished_jobs or queue_job_s is None:
        return Interruption(None, f"{state.spot_interruptions} Spot reclaim(s) {window}, but not how many jobs "
                                  "ran or how long: interruption cost unknown")
    per_hour = state.spot_interruptions / (state.finished_jobs * queue_job_s / 3600)
    seen = (f"{state.spot_interruptions} of {state.finished_jobs} jobs reclaimed {window} (jobs of "
            f"{duration_text(queue_job_s)}): {per_hour:.2g} reclaims a job-hour")
    if run_s is None:
        return Interruption(None, f"{seen}; the job's run time is unknown (expected_duration): cost unknown")
    expected = per_hour * run_s / 3600
    lost_each = (min(checkpoint_s, run_s) if checkpoint_s else run_s) / 2
    extra = expected * lost_each
    saved = (f"checkpoints every {duration_text(checkpoint_s)}: half of that" if checkpoint_s else
             "no checkpoints: half the run on average")
    text = (f"{seen}; a {duration_text(run_s)} run expects {expected:.2g} reclaim(s), each losing "
            f"{duration_text(lost_each)} ({saved}): +{duration_text(extra)}, +{extra / run_s:.0%} run time")
    if extra >= run_s:
        text += "; a bad bet: it expects to lose more than the whole run" + (
            "" if checkpoint_s else ", checkpoint it or run it elsewhere")
    return Interruption(extra, text)
