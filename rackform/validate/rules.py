"""Validation rules: pure functions of (spec, catalog) in one table, like cdk-nag's packs.

Every rule yields Problems that name the field path, the bad value and what would be valid. Rules never raise on a
bad spec and never stop each other: `validate_spec` runs them all and returns every problem at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from workloads.contract import CONTAINER_WORK_DIR

from ..plan import naming
from ..reference.catalog import Catalog, InstanceType
from ..plan.netmath import private_subnet_prefix, smallest_prefix, usable_ips
from ..plan.models import card0_free_slots, efa_enabled, node_group_plan, private_ips_needed
from ..spec.problems import Level, Problem, did_you_mean
from ..spec.models import NodeGroup, Spec
from ..plan.stack_limits import max_node_groups_per_rack
from ..reference.aws_limits import (
    BATCH_MAX_COMPUTE_ENVIRONMENTS,
    BATCH_MAX_JOB_QUEUES,
    PLACEMENT_GROUP_NAME_MAX,
    STACK_MAX_RESOURCES,
    TEMPLATE_BODY_MAX_BYTES,
)

MAX_VPC_PREFIX = 27  # half of it is the private subnet, which must still be a /28 or larger
# Patterns are used with fullmatch: `re.match(...$)` also accepts a trailing newline ("/fsx\n").
RESERVATION_ID = re.compile(r"cr-[0-9a-f]{8}([0-9a-f]{9})?")
S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[^\s]*)?")
MOUNT_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
# The FSx mount point is a directory of its own on every node (user data mounts it there) and in every job container
# (the job definitions mount it at the same path), so it may neither be, nor hold, nor sit inside what the host, the
# ECS agent or the job images keep: at /var it would hide /var/lib/docker and /var/lib/ecs, under /opt the images'
# software (/opt/amazon/efa, /opt/aws/neuron), at /scratch the jobs' scratch volume. /var/lock is the FHS link to
# /run/lock (as /var/run is to /run): a mount there lands in /run. /var/cache/ecs holds the ECS agent image that
# ecs-init loads at boot, after user data has mounted the file system (aws/amazon-ecs-agent, ecs-init/config/common.go
# CacheDirectory).
RESERVED_MOUNT_PATHS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/opt", "/proc", "/root", "/run", "/sbin",
                        "/sys", "/tmp", "/usr", "/var/lib", "/var/log", "/var/run", "/var/lock", "/var/cache/ecs",
                        CONTAINER_WORK_DIR)
# An IAM role's ARN: optional path, then a name of 1-64 of [A-Za-z0-9+=,.@_-]
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html).
ROLE_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII)

# VPC CIDRs: AWS recommends RFC 1918 space and says "Some AWS services use the 172.17.0.0/16 CIDR range. To avoid
# future conflicts, don't use this range when creating your VPC"
# (https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html). It is also the subnet of Docker's default
# bridge (docker0) on the ECS-optimized AMIs every Batch node runs
# (https://docs.docker.com/engine/network/drivers/bridge/), so containers there could not reach VPC addresses in it.
# The others are IANA special-purpose space (RFC 6890).
RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
SPECIAL_VPC_RANGES = (
    ("0.0.0.0/8", "0.0.0.0/8 ('this network', RFC 1122)"),
    ("127.0.0.0/8", "loopback 127.0.0.0/8"),
    ("169.254.0.0/16", "link-local 169.254.0.0/16 (where instances reach the metadata service and the VPC's DNS)"),
    ("172.17.0.0/16", "172.17.0.0/16, Docker's default bridge on every Batch node, which AWS says not to use for a "
                      "VPC"),
    ("224.0.0.0/4", "multicast 224.0.0.0/4"),
    ("240.0.0.0/4", "reserved 240.0.0.0/4"),
)

# FSx for Lustre CreateFileSystem (https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html and
# its LustreConfiguration): per-unit throughput by deployment and storage type; HDD exists only on PERSISTENT_1, and
# its capacity steps depend on the throughput tier.
FSX_THROUGHPUT = {("PERSISTENT_1", "SSD"): (50, 100, 200), ("PERSISTENT_1", "HDD"): (12, 40),
                  ("PERSISTENT_2", "SSD"): (125, 250, 500, 1000)}
FSX_HDD_CAPACITY_STEP = {12: 6000, 40: 1800}  # GiB per MB/s/TiB tier


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    check: Callable[[Spec, Catalog], Iterator[tuple[str, str]]]  # yields (path, message)
    doc: str


def _groups(spec: Spec) -> Iterator[tuple[str, str, NodeGroup]]:
    for ri, rack in enumerate(spec.racks):
        for gi, group in enumerate(rack.node_groups):
            yield f"racks[{ri}].node_groups[{gi}]", rack.name, group


def _known_groups(spec: Spec, catalog: Catalog) -> Iterator[tuple[str, str, NodeGroup, InstanceType]]:
    for path, rack, group in _groups(spec):
        if (it := catalog.get(group.instance_type)) is not None:
            yield path, rack, group, it


def _hint(word: str, candidates) -> str:
    found = did_you_mean(word, candidates, n=1)
    return f"; did you mean {found[0]!r}?" if found else ""


# --- where --------------------------------------------------------------------------------------------------

def region_known(spec: Spec, catalog: Catalog):
    if spec.region not in catalog.availability_zones:
        yield "region", (f"{spec.region!r} is not a Region in the catalog{_hint(spec.region, catalog.offerings)} "
                         f"Known Regions: {', '.join(sorted(catalog.availability_zones))}")


def az_in_region(spec: Spec, catalog: Catalog):
    # An AZ name or an AZ ID: IDs name the same zone in every account, names do not in the oldest Regions.
    # https://docs.aws.amazon.com/global-infrastructure/latest/regions/az-ids.html
    names = catalog.availability_zones.get(spec.region)
    if names is None:
        return
    ids = catalog.region_zone_ids(spec.region)
    az = spec.availability_zone
    if az not in names and az not in ids:
        yield "availability_zone", (f"{az!r} is not an Availability Zone name or AZ ID of {spec.region}"
                                    f"{_hint(az, names + ids) or '.'} Choose a name ({', '.join(names)}) or an AZ "
                                    f"ID ({', '.join(ids)})")


# --- names ---------------------------------------------------------------------------------------------------

def unique_rack_names(spec: Spec, catalog: Catalog):
    seen: dict[str, int] = {}
    for i, rack in enumerate(spec.racks):
        if rack.name in seen:
            yield f"racks[{i}].name", f"{rack.name!r} is already the name of racks[{seen[rack.name]}]; rack names " \
                                      "must be unique (they name stacks)"
        seen.setdefault(rack.name, i)


def unique_node_group_names(spec: Spec, catalog: Catalog):
    for ri, rack in enumerate(spec.racks):
        seen: dict[str, int] = {}
        for gi, g in enumerate(rack.node_groups):
            if g.name in seen:
                yield f"racks[{ri}].node_groups[{gi}].name", (
                    f"{g.name!r} is already the name of racks[{ri}].node_groups[{seen[g.name]}]; node group names "
                    "must be unique within a rack")
            seen.setdefault(g.name, gi)


def unique_resource_names(spec: Spec, catalog: Catalog):
    # AWS names are unique per resource type and Region: rack "a-b" with group "c" and rack "a" with group "b-c"
    # would both name their Batch queue "<spec>-a-b-c".
    seen: dict[tuple[str, str], tuple[str, str, str]] = {}
    for path, rack, g in _groups(spec):
        for kind, name in naming.rack_aws_names(spec.name, rack, g.name):
            first = seen.setdefault((kind, name), (path, rack, g.name))
            if first[1:] != (rack, g.name):
                yield f"{path}.name", (f"rack {rack!r}/node group {g.name!r} gives the {kind} name {name!r}, as does "
                                       f"rack {first[1]!r}/node group {first[2]!r} ({first[0]}.name); rename one")
                break
    # CDK construct ids: unique among a stack's children, or synth fails ("There is already a Construct with name").
    for ri, rack in enumerate(spec.racks):
        index = {}
        tiers: dict[str, str | None] = {}
        for gi, g in enumerate(rack.node_groups):
            index.setdefault(g.name, gi)
            tiers.setdefault(g.name, g.tier or getattr(catalog.get(g.instance_type), "tier", None))
        owners: dict[str, tuple[str | None, str]] = {}
        reported: set[tuple[str | None, str]] = set()
        for cid, group, what in naming.rack_construct_ids(tiers):
            other_group, other_what = owners.setdefault(cid, (group, what))
            if group is None or other_group == group or (other_group, group) in reported:
                continue
            reported.add((other_group, group))
            its = "" if what == "node group" else f" {what}"
            other = other_what if other_group is None else (
                ("" if other_what == "node group" else f"the {other_what} of ")
                + f"node group {other_group!r} (racks[{ri}].node_groups[{index[other_group]}].name)")
            yield f"racks[{ri}].node_groups[{index[group]}].name", (
                f"{group!r} gives its node group{its} the construct id {cid!r}, already the id of {other} in the "
                f"stack of rack {rack.name!r}: CDK ids must be unique in a stack (synth fails); rename the node group")


# --- instances -----------------------------------------------------------------------------------------------

def instance_type_known(spec: Spec, catalog: Catalog):
    for path, _, g in _groups(spec):
        if catalog.get(g.instance_type) is None:
            family = g.instance_type.split(".", 1)[0]
            why = (f"family {family!r} is not supported by rackform (supported: {', '.join(catalog.families)})"
                   if family not in catalog.families else "no such instance type in the catalog")
            close = catalog.suggest_instance_type(g.instance_type)
            hint = f"; did you mean {' or '.join(repr(t) for t in close)}?" if close else ""
            yield f"{path}.instance_type", f"{g.instance_type!r}: {why}{hint}"


def _zones_text(catalog: Catalog, region: str, zone_ids: tuple[str, ...]) -> str:
    return ", ".join(catalog.zone_label(region, z) for z in zone_ids)


def instance_offered_in_az(spec: Spec, catalog: Catalog):
    # Offerings are kept by AZ ID; an AZ name is checked through its ID where every account maps it alike (else
    # instance_offered_in_az_name warns instead).
    region, az = spec.region, spec.availability_zone
    if region not in catalog.offerings:
        return
    zone_id = catalog.zone_id(region, az)
    where_az = az if zone_id in (None, az) else f"{az} ({zone_id})"
    for path, _, g, it in _known_groups(spec, catalog):
        ids = catalog.azs_offering(region, it.name)
        if ids and (zone_id is None or zone_id in ids):
            continue  # an unknown AZ is az-in-region's to report
        if ids:
            where = f"in {region} it is offered in {_zones_text(catalog, region, ids)}"
        else:
            regions = catalog.regions_offering(it.name)
            where = (f"it is not offered anywhere in {region}; Regions that offer it: "
                     f"{', '.join(regions) or 'none in the catalog'}")
        yield f"{path}.instance_type", (f"{it.name} is not offered in {where_az}: {where}. Move the cluster to an AZ "
                                        "that offers every type (EFA does not cross AZs)")


def instance_offered_in_az_name(spec: Spec, catalog: Catalog):
    # In Regions that map AZ names per account, which zone a name is depends on the account: offline, a type that
    # only some zones offer can only be a warning.
    # https://docs.aws.amazon.com/global-infrastructure/latest/regions/az-ids.html
    region, az = spec.region, spec.availability_zone
    if az not in catalog.availability_zones.get(region, ()) or catalog.mapping_known(region):
        return
    every = set(catalog.region_zone_ids(region))
    for path, _, g, it in _known_groups(spec, catalog):
        ids = catalog.azs_offering(region, it.name)
        if ids and set(ids) != every:
            yield f"{path}.instance_type", (
                f"{it.name} is offered only in AZ IDs {', '.join(ids)} of {region}, which maps AZ names to zones per "
                f"account: whether {az} is one of them depends on your account. Run `rackform validate --live` to "
                f"check with your account's mapping, or set availability_zone to one of those AZ IDs")


def tier_matches_instance(spec: Spec, catalog: Catalog):
    for path, _, g, it in _known_groups(spec, catalog):
        if g.tier is not None and g.tier != it.tier:
            yield f"{path}.tier", (f"{g.tier!r} contradicts {it.name}, which is a {it.tier!r} instance; "
                                   f"write tier: {it.tier} or leave tier out")


def efa_supported(spec: Spec, catalog: Catalog):
    for path, _, g, it in _known_groups(spec, catalog):
        if g.efa and not it.efa_supported:
            family = it.family
            with_efa = sorted(t for t, x in catalog.instance_types.items() if x.family == family and x.efa_supported)
            alt = f" In the {family} family these support EFA: {', '.join(with_efa)}" if with_efa else ""
            yield f"{path}.efa", f"{it.name} does not support EFA; set efa: false or pick another type.{alt}"


def efa_interfaces_layout(spec: Spec, catalog: Catalog):
    for path, rack, g, it in _known_groups(spec, catalog):
        if g.efa_interfaces is None:
            continue
        if not efa_enabled(g, it):
            why = "efa is false" if it.efa_supported else f"{it.name} has no EFA"
            yield f"{path}.efa_interfaces", f"efa_interfaces: {g.efa_interfaces} lays out EFA interfaces, but {why}: " \
                                            "remove efa_interfaces"
            continue
        plan = node_group_plan(spec, rack, g, it)
        if plan.max_job_nodes > 1 and card0_free_slots(it, plan.network_interfaces) < 1:
            used = sum(1 for n in plan.network_interfaces if n.network_card_index == 0)
            yield f"{path}.efa_interfaces", (
                f"efa_interfaces: {g.efa_interfaces} fills network card 0 of {it.name} ({used} interfaces, its "
                "limit), leaving no slot for the ENI AWS Batch attaches to each node of a multi-node job: use "
                "efa_interfaces: efa (one IP per EFA interface) or count: 1")


def multi_node_accelerators_without_efa(spec: Spec, catalog: Catalog):
    for path, _, g, it in _known_groups(spec, catalog):
        if g.count > 1 and it.accelerator is not None and not efa_enabled(g, it):
            why = "efa is false" if it.efa_supported else f"{it.name} has no EFA"
            yield f"{path}.count", (f"{g.count} x {it.name} without EFA ({why}): collectives across nodes will run "
                                    "over TCP at a fraction of the bandwidth; use an EFA type for multi-node training")


# --- capacity ------------------------------------------------------------------------------------------------

def reservation_id_matches_type(spec: Spec, catalog: Catalog):
    for path, _, g in _groups(spec):
        c = g.capacity
        if c.type in ("reservation", "capacity-block"):
            if c.reservation_id is None:
                yield f"{path}.capacity.reservation_id", (f"capacity type {c.type!r} needs reservation_id: the id of "
                                                          "the Capacity Reservation or Capacity Block (cr-...)")
            elif not RESERVATION_ID.fullmatch(c.reservation_id):
                yield f"{path}.capacity.reservation_id", (f"{c.reservation_id!r} is not a capacity reservation id: "
                                                          "expected cr- and 8 or 17 lowercase hex digits")
        elif c.reservation_id is not None:
            yield f"{path}.capacity.reservation_id", (f"reservation_id is only used with type reservation or "
                                                      f"capacity-block, not {c.type!r}; remove it or change type")


def usage_class_supported(spec: Spec, catalog: Catalog):
    need = {"spot": "spot", "capacity-block": "capacity-block"}
    for path, _, g, it in _known_groups(spec, catalog):
        cls = need.get(g.capacity.type)
        if cls and cls not in it.usage_classes:
            yield f"{path}.capacity.type", (f"{it.name} cannot be bought as {cls}; it supports "
                                            f"{', '.join(it.usage_classes)}")


def spot_multi_node(spec: Spec, catalog: Catalog):
    for path, _, g, it in _known_groups(spec, catalog):
        if g.capacity.type == "spot" and g.count > 1:
            yield f"{path}.capacity.type", ("AWS Batch multi-node parallel jobs cannot run on Spot: this group gets "
                                            "single-node jobs only; use on-demand or a reservation for multi-node")


def placement_group_choice(spec: Spec, catalog: Catalog):
    for path, _, g in _groups(spec):
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


def capacity_block_on_batch(spec: Spec, catalog: Catalog):
    # What AWS documents, and what it does not (README, "Capacity Blocks with AWS Batch"): Batch's launch-template
    # page (https://docs.aws.amazon.com/batch/latest/userguide/launch-templates.html) lists "instance market options"
    # among the launch template parameters Batch ignores, and no Batch page mentions Capacity Blocks. AWS's samples
    # (aws-samples/sample-aws-batch-capacity-block-reservations, awsome-distributed-training's p5 Batch template)
    # launch Batch nodes into a block through the launch template's MarketType capacity-block and reservation id,
    # which is what rackform writes.
    for path, _, g in _groups(spec):
        if g.capacity.type == "capacity-block":
            yield f"{path}.capacity.type", (
                "AWS Batch does not document Capacity Blocks: its launch-template page lists instance market options "
                "among the settings Batch ignores. rackform targets the block as AWS's Batch samples do (launch "
                "template market type capacity-block and the block's id), which is unconfirmed by Batch's docs: "
                "once the block is active, run one small job before relying on it")


def capacity_block_placement_group(spec: Spec, catalog: Catalog):
    # AWS places Capacity Block instances close together in EC2 UltraClusters
    # (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-capacity-blocks.html); ParallelCluster warns that a
    # placement group on a Capacity Block can cause insufficient-capacity errors (PlacementGroupCapacityTypeValidator).
    for path, _, g in _groups(spec):
        pg = g.placement_group
        if g.capacity.type == "capacity-block" and pg is not None and (pg.name is not None or pg.create):
            what = f"placement group {pg.name!r}" if pg.name is not None else "a new placement group"
            yield f"{path}.placement_group", (
                f"{what} on a Capacity Block: AWS places the block's instances together itself, and a placement "
                "constraint can make launches fail for insufficient capacity while the block still has room; "
                "remove placement_group")


def reservation_placement_group(spec: Spec, catalog: Catalog):
    # A Capacity Reservation created in a cluster placement group serves only launches into that group, and one
    # outside any group may have no room inside a new one
    # (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cr-cpg.html; ParallelCluster's
    # PlacementGroupCapacityReservationValidator encodes both). `rackform preflight` compares the reservation's
    # PlacementGroupArn with the spec.
    for path, _, g, it in _known_groups(spec, catalog):
        if g.capacity.type != "reservation":
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


# --- storage -------------------------------------------------------------------------------------------------

def fsx_storage_type(spec: Spec, catalog: Catalog):
    fsx = spec.storage.fsx_lustre
    if fsx is None:
        return
    path = "storage.fsx_lustre"
    if fsx.storage_type == "HDD" and fsx.deployment_type != "PERSISTENT_1":
        yield f"{path}.storage_type", (f"HDD storage exists only with deployment_type PERSISTENT_1, not "
                                       f"{fsx.deployment_type}; use SSD or PERSISTENT_1")
    # DriveCacheType: "required when StorageType is set to HDD" (CreateFileSystemLustreConfiguration).
    if fsx.storage_type == "HDD" and fsx.drive_cache_type is None:
        yield f"{path}.drive_cache_type", ("HDD storage needs drive_cache_type: READ (an SSD read cache of 20% of the "
                                           "capacity) or NONE")
    elif fsx.storage_type == "SSD" and fsx.drive_cache_type is not None:
        yield f"{path}.drive_cache_type", (f"drive_cache_type is for HDD storage only; remove it or set "
                                           f"storage_type: HDD (got {fsx.drive_cache_type} with SSD)")


def _fsx_steps(fsx) -> tuple[int, ...] | None:
    """Valid capacities begin with these steps and continue in multiples of the last; None: not decidable here."""
    if fsx.storage_type == "SSD":
        return (1200, 2400)
    if fsx.deployment_type != "PERSISTENT_1" or fsx.per_unit_storage_throughput not in FSX_HDD_CAPACITY_STEP:
        return None  # fsx-storage-type or fsx-throughput reports it
    return (FSX_HDD_CAPACITY_STEP[fsx.per_unit_storage_throughput],)


def fsx_capacity(spec: Spec, catalog: Catalog):
    fsx = spec.storage.fsx_lustre
    steps = None if fsx is None else _fsx_steps(fsx)
    if steps is None:
        return
    gib, step = fsx.storage_capacity_gib, steps[-1]
    if gib in steps or (gib > 0 and gib % step == 0):
        return
    next_valid = next((s for s in steps if gib < s), -(-gib // step) * step)
    if fsx.storage_type == "SSD":
        what, allowed = fsx.deployment_type, "1200, 2400 or a multiple of 2400"
    else:
        what = f"PERSISTENT_1 HDD at {fsx.per_unit_storage_throughput} MB/s/TiB"
        allowed = f"a multiple of {step}"
    yield "storage.fsx_lustre.storage_capacity_gib", (
        f"{gib} GiB is not a size {what} offers: use {allowed} (the next valid size is {next_valid})")


def fsx_throughput(spec: Spec, catalog: Catalog):
    fsx = spec.storage.fsx_lustre
    if fsx is None or (fsx.storage_type == "HDD" and fsx.deployment_type != "PERSISTENT_1"):
        return  # no throughput table for a storage type the deployment lacks: fsx-storage-type reports it
    allowed = FSX_THROUGHPUT.get((fsx.deployment_type, fsx.storage_type))
    kind = f"{fsx.deployment_type} {fsx.storage_type}" if fsx.deployment_type == "PERSISTENT_1" else \
        fsx.deployment_type
    t = fsx.per_unit_storage_throughput
    path = "storage.fsx_lustre.per_unit_storage_throughput"
    if allowed is None and t is not None:
        yield path, f"{fsx.deployment_type} has no throughput setting; remove per_unit_storage_throughput"
    elif allowed is not None and t is None:
        yield path, f"{kind} needs per_unit_storage_throughput (MB/s/TiB): one of {', '.join(map(str, allowed))}"
    elif allowed is not None and t not in allowed:
        yield path, f"{t} MB/s/TiB is not offered for {kind}: choose one of {', '.join(map(str, allowed))}"


def fsx_data_repository(spec: Spec, catalog: Catalog):
    fsx = spec.storage.fsx_lustre
    if fsx is None or fsx.data_repository_path is None:
        return
    if not S3_URI.fullmatch(fsx.data_repository_path):
        yield "storage.fsx_lustre.data_repository_path", (
            f"{fsx.data_repository_path!r} is not an S3 URI: write s3://bucket-name/optional/prefix")


def fsx_export_deletions(spec: Spec, catalog: Catalog):
    fsx = spec.storage.fsx_lustre
    if fsx is not None and fsx.export_deletions and fsx.data_repository_path is None:
        yield "storage.fsx_lustre.export_deletions", ("true exports deletions to a data repository, and none is "
                                                      "linked: set data_repository_path or remove export_deletions")


def break_glass_role(spec: Spec, catalog: Catalog):
    arn = spec.storage.results.break_glass_role_arn
    if arn is not None and not ROLE_ARN.fullmatch(arn):
        # The bucket policy compares it with aws:PrincipalArn, which for a role session is the role's ARN.
        hint = "; give the role's ARN, not a session's (arn:aws:sts::...:assumed-role/...)" if ":sts::" in arn else ""
        yield "storage.results.break_glass_role_arn", (f"{arn!r} is not an IAM role ARN: write "
                                                       f"arn:aws:iam::123456789012:role/name{hint}")


def fsx_mount_path(spec: Spec, catalog: Catalog):
    fsx = spec.storage.fsx_lustre
    if fsx is None:
        return
    path, field = fsx.mount_path, "storage.fsx_lustre.mount_path"
    if not MOUNT_PATH.fullmatch(path):
        yield field, f"{path!r} is not an absolute path of letters, digits, '.', '_', '-' and '/'; e.g. /fsx"
        return
    parts = path.split("/")[1:]
    if bad := next((p for p in parts if p in (".", "..")), None):
        yield field, f"{path!r} has a {bad!r} component; write the directory itself, e.g. /fsx"
        return
    if "" in parts and path != "/":
        yield field, f"{path!r} has an empty component ('//' or a trailing '/'); write /{'/'.join(filter(None, parts))}"
        return
    for reserved in RESERVED_MOUNT_PATHS:
        if path == reserved or path.startswith(f"{reserved}/"):
            why = f"is {reserved}" if path == reserved else f"is inside {reserved}"
        elif path == "/" or reserved.startswith(f"{path}/"):
            why = "is the root directory" if path == "/" else f"holds {reserved}"
        else:
            continue
        yield field, (f"{path!r} {why}, which the nodes or the job images need: the file system is mounted there on "
                      "every node and in every job container; choose a directory of its own, e.g. /fsx or /mnt/fsx")
        return


# --- network -------------------------------------------------------------------------------------------------

def vpc_cidr_valid(spec: Spec, catalog: Catalog):
    cidr = spec.network.vpc_cidr
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as e:
        yield "network.vpc_cidr", f"{cidr!r} is not a valid IPv4 CIDR ({e}); e.g. 10.40.0.0/16"
        return
    if net.version != 4:
        yield "network.vpc_cidr", f"{cidr!r} is IPv6; a VPC's primary CIDR is IPv4, e.g. 10.40.0.0/16"
    elif not 16 <= net.prefixlen <= MAX_VPC_PREFIX:
        # AWS allows a /28 VPC, but rackform splits it in half for the private subnet and needs a /28 for NAT
        yield "network.vpc_cidr", f"/{net.prefixlen} is outside what rackform can lay out: use /16 to /27"


def vpc_cidr_private(spec: Spec, catalog: Catalog):
    try:
        net = ipaddress.ip_network(spec.network.vpc_cidr, strict=True)
    except ValueError:
        return
    if net.version != 4:
        return
    # Python's is_private also holds for loopback, link-local and reserved space, so those are named one by one.
    if special := [why for cidr, why in SPECIAL_VPC_RANGES if net.overlaps(ipaddress.ip_network(cidr))]:
        yield "network.vpc_cidr", f"{net} overlaps {'; and '.join(special)}: choose another range, e.g. 10.40.0.0/16"
    elif not any(net.subnet_of(ipaddress.ip_network(r)) for r in RFC1918):
        public = "; it is public address space" if net.is_global else ""
        yield "network.vpc_cidr", f"{net} is outside the RFC 1918 ranges AWS recommends for a VPC " \
                                  f"({', '.join(RFC1918)}){public}"


def vpc_cidr_large_enough(spec: Spec, catalog: Catalog):
    try:
        net = ipaddress.ip_network(spec.network.vpc_cidr, strict=True)
    except ValueError:
        return
    if net.version != 4 or not 16 <= net.prefixlen <= MAX_VPC_PREFIX:
        return
    groups = [node_group_plan(spec, r, g, it) for _, r, g, it in _known_groups(spec, catalog)]
    needed = private_ips_needed(spec, groups)
    prefix = private_subnet_prefix(str(net))
    if needed <= usable_ips(prefix):
        return
    want = smallest_prefix(needed) - 1
    fix = (f"use a /{want} VPC or larger" if want >= 16 else
           "that is more than a /16 VPC holds: reduce node counts or split the cluster")
    yield "network.vpc_cidr", (f"{net} is too small: the racks need {needed:,} addresses in the private subnet "
                               f"(node interfaces, Batch task ENIs, FSx, endpoints), which is half the VPC "
                               f"(/{prefix}, {usable_ips(prefix):,} usable after AWS reserves 5); {fix}")


# --- AWS Batch quotas ----------------------------------------------------------------------------------------

def batch_quotas(spec: Spec, catalog: Catalog):
    n = sum(len(r.node_groups) for r in spec.racks)
    limit = min(BATCH_MAX_COMPUTE_ENVIRONMENTS, BATCH_MAX_JOB_QUEUES)
    if n > limit:
        yield "racks", (f"{n} node groups need {n} Batch compute environments and {n} job queues; AWS Batch allows "
                        f"{BATCH_MAX_COMPUTE_ENVIRONMENTS} and {BATCH_MAX_JOB_QUEUES} per Region. Merge node groups "
                        "or split the cluster across Regions")


def rack_stack_size(spec: Spec, catalog: Catalog):
    # The ceiling comes from the measured template share of the heaviest node group (rackform/plan/stack_limits.py).
    ceiling = max_node_groups_per_rack()
    for i, rack in enumerate(spec.racks):
        if len(rack.node_groups) > ceiling:
            yield f"racks[{i}].node_groups", (
                f"rack {rack.name!r} has {len(rack.node_groups)} node groups; a rack is one CloudFormation stack "
                f"(at most {STACK_MAX_RESOURCES} resources and a template under {TEMPLATE_BODY_MAX_BYTES:,} bytes), "
                f"which holds at most {ceiling} node groups: split the rack")


RULES: tuple[Rule, ...] = (
    Rule("region-known", "error", region_known, "the Region exists"),
    Rule("az-in-region", "error", az_in_region, "the AZ belongs to the Region"),
    Rule("unique-rack-names", "error", unique_rack_names, "rack names are unique"),
    Rule("unique-node-group-names", "error", unique_node_group_names, "node group names are unique in a rack"),
    Rule("unique-resource-names", "error", unique_resource_names,
         "derived AWS names and CDK construct ids do not collide"),
    Rule("instance-type-known", "error", instance_type_known, "the instance type is in the catalog"),
    Rule("instance-offered-in-az", "error", instance_offered_in_az, "the type is offered in the AZ"),
    Rule("instance-offered-in-az-name", "warning", instance_offered_in_az_name,
         "an AZ name in a Region that maps names per account: the type is offered in every AZ"),
    Rule("tier-matches-instance", "error", tier_matches_instance, "a given tier matches the instance"),
    Rule("efa-supported", "error", efa_supported, "EFA is only asked of types that have it"),
    Rule("efa-interfaces", "error", efa_interfaces_layout,
         "an EFA layout is asked only with EFA, and leaves multi-node groups a slot for the Batch task ENI"),
    Rule("multi-node-accelerators-without-efa", "warning", multi_node_accelerators_without_efa,
         "multi-node accelerator groups use EFA"),
    Rule("reservation-id", "error", reservation_id_matches_type, "reservation ids are present and well formed"),
    Rule("usage-class-supported", "error", usage_class_supported, "spot/capacity-block is sold for the type"),
    Rule("spot-multi-node", "warning", spot_multi_node, "multi-node groups are not Spot"),
    Rule("placement-group", "error", placement_group_choice, "a placement group is named or created, not both"),
    Rule("capacity-block-batch", "warning", capacity_block_on_batch,
         "Capacity Blocks through AWS Batch are not documented by Batch"),
    Rule("capacity-block-placement-group", "warning", capacity_block_placement_group,
         "Capacity Blocks carry no placement group"),
    Rule("reservation-placement-group", "warning", reservation_placement_group,
         "reservation groups launch into the reservation's placement group"),
    Rule("fsx-storage-type", "error", fsx_storage_type, "HDD only on PERSISTENT_1, with a drive cache type"),
    Rule("fsx-capacity", "error", fsx_capacity, "FSx capacity is a valid size"),
    Rule("fsx-throughput", "error", fsx_throughput, "FSx throughput matches the deployment type"),
    Rule("fsx-data-repository", "error", fsx_data_repository, "the data repository is an s3:// URI"),
    Rule("fsx-export-deletions", "error", fsx_export_deletions, "deletions are exported only to a linked repository"),
    Rule("break-glass-role", "error", break_glass_role, "the break-glass role is an IAM role ARN"),
    Rule("fsx-mount-path", "error", fsx_mount_path, "the mount path is a plain absolute path of its own, "
         "outside the system's and the images' directories"),
    Rule("vpc-cidr-valid", "error", vpc_cidr_valid, "the VPC CIDR is valid IPv4 /16-/28"),
    Rule("vpc-cidr-private", "warning", vpc_cidr_private,
         "the VPC CIDR is RFC 1918, clear of special-purpose ranges and Docker's bridge"),
    Rule("vpc-cidr-large-enough", "error", vpc_cidr_large_enough, "the VPC holds every address the plan needs"),
    Rule("batch-quotas", "error", batch_quotas, "node groups fit AWS Batch's per-Region quotas"),
    Rule("rack-stack-size", "error", rack_stack_size, "a rack's stack fits CloudFormation's limits"),
)


def validate_spec(spec: Spec, catalog: Catalog, lines: dict[str, int] | None = None) -> list[Problem]:
    lines = lines or {}
    problems = []
    for rule in RULES:
        for path, message in rule.check(spec, catalog):
            line = lines.get(path) or lines.get(path.rsplit(".", 1)[0])
            problems.append(Problem(rule.level, path, message, rule=rule.id, line=line))
    return problems
