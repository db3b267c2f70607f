"""The capacity kinds a node group runs on, one row each: every branch on a kind reads its row here.

A leaf (imports nothing from rackform), so the spec's `Literal` and every layer above can use it. Each fact names the
AWS page it comes from in `sources`; a new kind is one row in `KINDS` and one name in `CapacityKind`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

CapacityKind = Literal["on-demand", "spot", "reservation", "capacity-block"]
# The EC2 purchasing option: the launch template's InstanceMarketOptions.MarketType for capacity-block, the compute
# environment's type for spot.
Market = Literal["on-demand", "spot", "capacity-block"]
# Who decides where the instances go: a cluster placement group (rackform creates one for an EFA group unless the
# spec says otherwise), the reservation's (it serves only launches into the group it was created in), or AWS's
# (a Capacity Block's instances are placed together by AWS).
Placement = Literal["cluster-group", "reservation", "aws"]
# What `rackform preflight` reads for a group of this kind.
PreflightCheck = Literal["quota", "reservation"]
# Where a price per instance-hour comes from: the prices snapshot, EC2's current Spot price where read
# (`cost --spot-live`, `place --live`) else the dated Spot snapshot of the AZ,
# the Capacity Block rate AWS publishes per Region and type (a rate: a block costs its offering's upfront fee),
# or nowhere public (the user gives --price).
PriceSource = Literal["on-demand-snapshot", "spot", "capacity-block-published", "none"]

_MNP_CE = "https://docs.aws.amazon.com/batch/latest/userguide/mnp-ce.html"
_BATCH_EFA = "https://docs.aws.amazon.com/batch/latest/userguide/efa.html"
_CE_RESOURCES = "https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeResource.html"
_ALLOCATION = "https://docs.aws.amazon.com/batch/latest/userguide/allocation-strategies.html"
_UPDATING = "https://docs.aws.amazon.com/batch/latest/userguide/updating-compute-environments.html"
_CR_CPG = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cr-cpg.html"
_BLOCKS = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-capacity-blocks.html"
_BLOCK_PRICES = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-pricing-billing.html"
_CR_API = "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CapacityReservation.html"
_CREATE_CR = "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateCapacityReservation.html"
_USAGE_CLASS = "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceTypeInfo.html"
_SPOT_PRICES = "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSpotPriceHistory.html"
_SPOT_QUOTA = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html"
_OD_QUOTA = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-resource-limits.html"


@dataclass(frozen=True)
class KindFacts:
    kind: CapacityKind
    label: str  # the kind in a sentence: "an On-Demand Capacity Reservation"
    market: Market
    # The launch template's InstanceMarketOptions.MarketType; None leaves it out (Batch buys Spot through the
    # compute environment's type, and a launch template that sets a market of its own is refused for it).
    launch_market_type: Literal["capacity-block"] | None
    batch_type: Literal["EC2", "SPOT"]  # the compute environment's ComputeResources.Type
    # The AllocationStrategy values a group of this kind may choose, the default first. Never BEST_FIT: a compute
    # environment with it takes no infrastructure updates, which rackform's in-place changes rely on (_UPDATING).
    batch_allocation_strategies: tuple[str, ...]
    usage_class: str | None  # the usage class the instance type must support to be bought this way
    multi_node: bool  # whether a Batch multi-node parallel job may run on it
    needs_reservation_id: bool  # the group names the reservation or block (cr-...) it launches into
    reservation_type: str | None  # DescribeCapacityReservations' ReservationType of that reservation
    placement: Placement
    spot_quota: bool  # counted against the Spot vCPU quota rather than the On-Demand one
    quota_note: str | None  # said beside the quota check where AWS does not document the quota this kind uses
    price: PriceSource
    no_price_reason: str  # why no price is known when its source has none ("": the prices snapshot says why)
    interruptible: bool  # EC2 may reclaim the instances (Spot interruptions lengthen a queue's wait)
    # Preflight counts an active reservation's AvailableInstanceCount (it may already hold other instances), else
    # its TotalInstanceCount (a Capacity Block or a scheduled ODCR holds none yet).
    counts_available: bool
    add_capacity_hint: str | None  # how to get more instances of a reservation of this kind ({rid}, {count})
    termination_lead: dt.timedelta | None  # EC2 terminates the instances this long before the reservation ends
    preflight: tuple[PreflightCheck, ...]
    sources: tuple[str, ...]  # the AWS pages the facts above come from

    @property
    def batch_allocation_strategy(self) -> str:
        """The compute environment's AllocationStrategy unless the group chooses another of the strategies."""
        return self.batch_allocation_strategies[0]


KINDS: Mapping[CapacityKind, KindFacts] = {
    "on-demand": KindFacts(
        kind="on-demand", label="On-Demand", market="on-demand", launch_market_type=None,
        batch_type="EC2",
        batch_allocation_strategies=("BEST_FIT_PROGRESSIVE",), usage_class=None, multi_node=True,
        needs_reservation_id=False, reservation_type=None, placement="cluster-group", spot_quota=False,
        quota_note=None, price="on-demand-snapshot", no_price_reason="", interruptible=False,
        counts_available=False, add_capacity_hint=None, termination_lead=None, preflight=("quota",),
        sources=(_MNP_CE, _BATCH_EFA, _CE_RESOURCES, _ALLOCATION, _UPDATING, _OD_QUOTA)),
    "spot": KindFacts(
        kind="spot", label="Spot", market="spot", launch_market_type=None, batch_type="SPOT",
        batch_allocation_strategies=("SPOT_PRICE_CAPACITY_OPTIMIZED", "SPOT_CAPACITY_OPTIMIZED",
                                     "BEST_FIT_PROGRESSIVE"), usage_class="spot", multi_node=False,
        needs_reservation_id=False, reservation_type=None, placement="cluster-group", spot_quota=True,
        quota_note=None, price="spot",
        no_price_reason="--spot-live (cost) or --live (place) reads the current Spot price from EC2",
        interruptible=True, counts_available=False, add_capacity_hint=None, termination_lead=None,
        preflight=("quota",), sources=(_MNP_CE, _CE_RESOURCES, _ALLOCATION, _UPDATING, _USAGE_CLASS, _SPOT_PRICES,
                                     _SPOT_QUOTA)),
    "reservation": KindFacts(
        kind="reservation", label="an On-Demand Capacity Reservation", market="on-demand", launch_market_type=None,
        batch_type="EC2",
        batch_allocation_strategies=("BEST_FIT_PROGRESSIVE",), usage_class=None, multi_node=True,
        needs_reservation_id=True, reservation_type="default", placement="reservation", spot_quota=False,
        quota_note=None, price="none",
        no_price_reason="a capacity reservation is billed as your agreement says (on-demand rate, Savings Plan or RI)",
        interruptible=False, counts_available=True,
        add_capacity_hint=("aws ec2 modify-capacity-reservation --capacity-reservation-id {rid} "
                           "--instance-count {count}"),
        termination_lead=None, preflight=("quota", "reservation"), sources=(_MNP_CE, _CR_CPG, _CR_API, _CREATE_CR)),
    "capacity-block": KindFacts(
        kind="capacity-block", label="a Capacity Block", market="capacity-block",
        launch_market_type="capacity-block", batch_type="EC2",
        batch_allocation_strategies=("BEST_FIT_PROGRESSIVE",), usage_class="capacity-block", multi_node=True,
        needs_reservation_id=True, reservation_type="capacity-block", placement="aws", spot_quota=False,
        # Counted to be safe: ODCRs count against the On-Demand quota (CreateCapacityReservation); for Capacity
        # Blocks AWS does not say.
        quota_note="capacity blocks counted too; unconfirmed that they use it", price="capacity-block-published",
        no_price_reason="a capacity block is priced per offering when you buy it", interruptible=False,
        counts_available=False, add_capacity_hint="buy a Capacity Block with enough instances",
        termination_lead=dt.timedelta(minutes=30), preflight=("quota", "reservation"),
        sources=(_BLOCKS, _CR_API, _USAGE_CLASS, _CREATE_CR, _BLOCK_PRICES)),
}


def of(kind: CapacityKind) -> KindFacts:
    return KINDS[kind]


def of_reservation(reservation_type: str | None) -> KindFacts:
    """The kind of a reservation EC2 describes: its ReservationType is "capacity-block" for a Capacity Block and
    "default" (or absent, in older answers) for an On-Demand Capacity Reservation (API_CapacityReservation)."""
    return next((c for c in KINDS.values() if c.needs_reservation_id and c.reservation_type == reservation_type),
                KINDS["reservation"])


def with_reservation_id() -> tuple[CapacityKind, ...]:
    """The kinds whose groups name a reservation (cr-...)."""
    return tuple(k for k, c in KINDS.items() if c.needs_reservation_id)
