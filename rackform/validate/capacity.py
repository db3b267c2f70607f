"""Capacity: reservation ids, usage classes, Spot, placement groups and Capacity Blocks."""

from __future__ import annotations

import re

from ..capacity import of as capacity_kind
from ..capacity import with_reservation_id
from ..plan.models import efa_enabled
from ..reference.aws_limits import (
    PLACEMENT_GROUP_NAME_MAX,
)
from ..reference.catalog import Catalog
from ..spec.models import Spec
from .core import Found, Rule, SpecRule, groups, known_groups

# Patterns are used with fullmatch: `re.match(...$)` also accepts a trailing newline ("/fsx\n").
RESERVATION_ID = re.compile(r"cr-[0-9a-f]{8}([0-9a-f]{9})?")


def reservation_id(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g in groups(spec):
        c = g.capacity
        if capacity_kind(c.type).needs_reservation_id:
            if c.reservation_id is None:
                yield f"{path}.capacity.reservation_id", (f"capacity type {c.type!r} needs reservation_id: the id of "
                                                          "the Capacity Reservation or Capacity Block (cr-...)")
            elif not RESERVATION_ID.fullmatch(c.reservation_id):
                yield f"{path}.capacity.reservation_id", (f"{c.reservation_id!r} is not a capacity reservation id: "
                                                          "expected cr- and 8 or 17 lowercase hex digits")
        elif c.reservation_id is not None:
            yield f"{path}.capacity.reservation_id", (f"reservation_id is only used with type "
                                                      f"{' or '.join(with_reservation_id())}, not {c.type!r}; "
                                                      "remove it or change type")


def usage_class_supported(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g, it in known_groups(spec, catalog):
        cls = capacity_kind(g.capacity.type).usage_class
        if cls and cls not in it.usage_classes:
            yield f"{path}.capacity.type", (f"{it.name} cannot be bought as {cls}; it supports "
                                            f"{', '.join(it.usage_classes)}")


def spot_multi_node(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g, _it in known_groups(spec, catalog):
        if not (kind := capacity_kind(g.capacity.type)).multi_node and g.count > 1:
            yield f"{path}.capacity.type", (f"AWS Batch multi-node parallel jobs cannot run on {kind.label}: this "
                                            "group gets single-node jobs only; use on-demand or a reservation for "
                                            "multi-node")


def placement_group(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g in groups(spec):
        pg = g.placement_group
        if pg is None:
            continue
        if pg.name is not None and pg.create is not None:
            yield f"{path}.placement_group", ("give either name (an existing cluster placement group) or create "
                                              f"(true: rackform creates one; false: none), not both; got name "
                                              f"{pg.name!r} and create {str(pg.create).lower()}")
        if pg.name is not None and not (0 < len(pg.name) <= PLACEMENT_GROUP_NAME_MAX and pg.name.isascii()
                                        and pg.name.isprintable()):
            yield f"{path}.placement_group.name", (f"{pg.name[:60]!r} is not a placement group name: EC2 allows 1 to "
                                                   f"{PLACEMENT_GROUP_NAME_MAX} printable ASCII characters")


def capacity_block_batch(spec: Spec, catalog: Catalog) -> Found:
    # Batch's documentation ignores a launch template's market options and never names Capacity Blocks; AWS's samples
    # target a block through them anyway, as rackform does. Why: docs/decisions/0012-capacity-blocks-on-batch.md
    # Capacity Blocks are the one market written into the launch template (Spot is the compute environment's type).
    for path, _, g in groups(spec):
        if capacity_kind(g.capacity.type).market == "capacity-block":
            yield f"{path}.capacity.type", (
                "AWS Batch does not document Capacity Blocks: its launch-template page lists instance market options "
                "among the settings Batch ignores. rackform targets the block as AWS's Batch samples do (launch "
                "template market type capacity-block and the block's id), which is unconfirmed by Batch's docs: "
                "once the block is active, run one small job before relying on it")


def capacity_block_placement_group(spec: Spec, catalog: Catalog) -> Found:
    # AWS places Capacity Block instances close together in EC2 UltraClusters
    # (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-capacity-blocks.html); ParallelCluster warns that a
    # placement group on a Capacity Block can cause insufficient-capacity errors (PlacementGroupCapacityTypeValidator).
    for path, _, g in groups(spec):
        pg = g.placement_group
        kind = capacity_kind(g.capacity.type)
        if kind.placement == "aws" and pg is not None and (pg.name is not None or pg.create):
            what = f"placement group {pg.name!r}" if pg.name is not None else "a new placement group"
            yield f"{path}.placement_group", (
                f"{what} on {kind.label}: AWS places the block's instances together itself, and a placement "
                "constraint can make launches fail for insufficient capacity while the block still has room; "
                "remove placement_group")


def reservation_placement_group(spec: Spec, catalog: Catalog) -> Found:
    # A Capacity Reservation created in a cluster placement group serves only launches into that group, and one
    # outside any group may have no room inside a new one
    # (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cr-cpg.html; ParallelCluster's
    # PlacementGroupCapacityReservationValidator encodes both). `rackform preflight` compares the reservation's
    # PlacementGroupArn with the spec.
    for path, _, g, it in known_groups(spec, catalog):
        if capacity_kind(g.capacity.type).placement != "reservation":
            continue
        pg = g.placement_group
        if pg is not None and pg.create and pg.name is None:
            yield f"{path}.placement_group", (
                f"a new placement group cannot use reservation {g.capacity.reservation_id}: a reservation created in "
                "a cluster placement group serves only launches into that group, and one outside any group may "
                "have no room inside a new one. Name the group the reservation was created in "
                "(placement_group: {name: ...}) or set create: false")
        elif (pg is None or pg.name is None and pg.create is None) and g.count > 1 and efa_enabled(g, it):
            yield f"{path}.placement_group", (
                f"{g.count} x {it.name} with EFA and no placement group: AWS Batch wants all EFA instances of a job "
                "in one cluster placement group, and a reservation serves one only if it was created in it. Name "
                "that group (placement_group: {name: ...}), or set placement_group: {create: false} to launch "
                "where the reservation is")


def min_count_within_count(spec: Spec, catalog: Catalog) -> Found:
    # MinvCpus may not exceed MaxvCpus (API_ComputeResource); rackform writes them as min_count and count x vCPUs.
    for path, _, g in groups(spec):
        if g.min_count > g.count:
            yield f"{path}.min_count", (f"{g.min_count} warm nodes is more than the group's count of {g.count} (its "
                                        f"maximum): lower min_count to at most {g.count}, or raise count")


def allocation_strategy(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g in groups(spec):
        chosen, kind = g.capacity.allocation_strategy, capacity_kind(g.capacity.type)
        if chosen is None or chosen in kind.batch_allocation_strategies:
            continue
        if len(kind.batch_allocation_strategies) == 1:
            yield f"{path}.capacity.allocation_strategy", (
                f"{kind.label} compute environments have no choice of allocation strategy: rackform uses "
                f"{kind.batch_allocation_strategy} (BEST_FIT takes no infrastructure updates, the SPOT_* strategies "
                "are Spot's); remove allocation_strategy")
        else:
            yield f"{path}.capacity.allocation_strategy", (
                f"{chosen} is not a strategy for {kind.label}: choose one of "
                f"{', '.join(kind.batch_allocation_strategies)}")


RULES: tuple[SpecRule, ...] = (
    Rule(min_count_within_count, "error", "warm nodes (min_count) are at most the group's count",
         "https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeResource.html"),
    Rule(reservation_id, "error", "reservation ids are present and well formed",
         "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CapacityReservation.html"),
    Rule(allocation_strategy, "error", "an allocation strategy is chosen only where Batch offers a choice",
         "https://docs.aws.amazon.com/batch/latest/userguide/allocation-strategies.html"),
    Rule(usage_class_supported, "error", "spot/capacity-block is sold for the type",
         "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceTypeInfo.html"),
    Rule(spot_multi_node, "warning", "multi-node groups are not Spot",
         "https://docs.aws.amazon.com/batch/latest/userguide/mnp-ce.html"),
    Rule(placement_group, "error", "a placement group is named or created, not both",
         "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreatePlacementGroup.html"),
    Rule(capacity_block_batch, "warning", "Capacity Blocks through AWS Batch are not documented by Batch",
         "https://docs.aws.amazon.com/batch/latest/userguide/launch-templates.html"),
    Rule(capacity_block_placement_group, "warning", "Capacity Blocks carry no placement group",
         "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-capacity-blocks.html"),
    Rule(reservation_placement_group, "warning", "reservation groups launch into the reservation's placement group",
         "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cr-cpg.html"),
)
