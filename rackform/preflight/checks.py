"""`rackform preflight`'s checks: can this account hold the cluster, and can this machine build its images? Asked
before `cdk deploy`.

A deploy that fails on a quota, a reservation in the wrong AZ or a full Batch Region fails late (after the VPC and
file system exist) and names the cause badly. Preflight reads the account once (fetch.py, into the values of
state.py) and says what blocks the deploy. Every check here is pure: plan + state + the time -> `Check`s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from ..capacity import of as capacity_kind
from ..capacity import of_reservation
from ..plan.models import NodeGroupPlan, Plan

# AWS Batch's fixed per-Region quotas (no Service Quotas code is read for them): one definition, in validate.
from ..reference.aws_limits import BATCH_MAX_COMPUTE_ENVIRONMENTS, BATCH_MAX_JOB_QUEUES, DEFAULT_STACK_LIMIT
from ..reference.catalog import is_zone_id
from .state import (
    AccountState,
    ApiError,
    BucketState,
    BuildHost,
    ExistingNetworkState,
    FileSystemState,
    ImageState,
    PlacementGroupState,
    QuotaValue,
    ReservationState,
    SecurityGroupState,
    SubnetState,
)

Status = Literal["ok", "blocker", "warning", "unknown"]
K = TypeVar("K")

# A reservation that ends this soon still deploys, but leaves little time for a run: warn, do not block.
END_WARNING = dt.timedelta(hours=24)
USABLE_RESERVATION_STATES = ("active", "scheduled")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    found: str
    needed: str = ""
    fix: str = ""



def unreadable(error: ApiError, name: str, needed: str) -> Check:
    """The check `name` when the call that reads its state failed: unknown, with what to grant or retry."""
    if error.message.startswith("NotImplemented:"):
        # The endpoint lacks the call (the embedded AWS, moto, answers so: rackform/jobs/local.py): no retry or
        # permission makes it answerable there.
        return Check(name, "unknown", f"not checkable here: {error.message.removeprefix('NotImplemented: ')} "
                     f"({error.action})", needed, "run preflight against AWS itself to check it")
    fix = (f"grant {error.action} to the caller and run preflight again" if error.denied else
           f"run preflight again once the call works (it needs {error.action}): check the network, endpoint "
           f"and Region")
    return Check(name, "unknown", f"cannot read: {error.message}", needed, fix + "; or check by hand in the console")


def _groups_text(groups: list[NodeGroupPlan]) -> str:
    return ", ".join(f"{g.rack}/{g.name} {g.count} x {g.instance_type}"
                     + (f" ({g.min_count} always running)" if g.min_count else "") for g in groups)


def _grouped(plan: Plan, key: Callable[[NodeGroupPlan], K | None]) -> dict[K, list[NodeGroupPlan]]:
    """The plan's node groups by `key`, in plan order; a group whose key is None is left out."""
    out: dict[K, list[NodeGroupPlan]] = {}
    for g in plan.node_groups():
        if (k := key(g)) is not None:
            out.setdefault(k, []).append(g)
    return out


def check_quotas(plan: Plan, quotas: Mapping[str, QuotaValue | ApiError | None]) -> list[Check]:
    by_code = _grouped(plan, lambda g: (g.quota.code, g.quota.name)
                       if "quota" in capacity_kind(g.capacity.type).preflight else None)
    checks = []
    for (code, quota_name), groups in by_code.items():
        need = sum(g.quota.vcpus for g in groups)
        name = f"vCPU quota {code or '?'} ({quota_name})"
        needed = f"{need:,} vCPUs: {_groups_text(groups)}"
        for note in dict.fromkeys(n for g in groups if (n := capacity_kind(g.capacity.type).quota_note)):
            needed += f" ({note})"
        if code is None:
            checks.append(Check(name, "unknown", "rackform does not know this quota's Service Quotas code", needed,
                                f"look up {quota_name} in the Service Quotas console for {plan.region} and make "
                                f"sure it holds {need:,} vCPUs"))
            continue
        value = quotas[code]
        if isinstance(value, ApiError):
            checks.append(unreadable(value, name, needed))
        elif value is None:
            checks.append(Check(name, "unknown", f"Service Quotas has no quota {code} for ec2 in {plan.region}",
                                needed, f"find '{quota_name}' in the Service Quotas console and check it holds "
                                f"{need:,} vCPUs"))
        else:
            # Instances already running in the Region use the same quota; Service Quotas does not report usage.
            found = f"{value.vcpus:,.0f} vCPUs, shared with running instances" + (
                " (AWS default; no applied value)" if value.default else "")
            if value.vcpus >= need:
                checks.append(Check(name, "ok", found, needed))
            else:
                checks.append(Check(name, "blocker", found, needed,
                                    f"request an increase to {need} vCPUs: aws service-quotas "
                                    f"request-service-quota-increase --service-code ec2 --quota-code {code} "
                                    f"--desired-value {need} --region {plan.region}"))
    return checks


def _as_spec_names(plan: Plan, zone_name: str, zone_id: str | None) -> str | None:
    """A zone EC2 describes, in the form the spec names its AZ: by AZ ID or by this account's AZ name (the
    reservation's and the subnet's Describe answers carry both), so the two compare."""
    return zone_id if is_zone_id(plan.availability_zone) else zone_name


def utc_text(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check_reservation(plan: Plan, rid: str, groups: list[NodeGroupPlan], r: ReservationState | ApiError | None,
                       now: dt.datetime) -> list[Check]:
    name = f"capacity {rid}"
    kind = groups[0].capacity.type
    count = sum(g.count for g in groups)
    needed = f"{kind} for {count} x {groups[0].instance_type} in {plan.availability_zone} ({_groups_text(groups)})"
    if isinstance(r, ApiError):
        return [unreadable(r, name, needed)]
    if r is None:
        return [Check(name, "blocker", f"not found in {plan.region}", needed,
                      f"check the id and the spec's region (reservations belong to one Region and account): "
                      f"aws ec2 describe-capacity-reservations --region {plan.region}")]
    actual = of_reservation(r.reservation_type)
    state = r.state
    out: list[Check] = []

    def blocker(found: str, fix: str) -> None:
        out.append(Check(name, "blocker", found, needed, fix))

    if wrong_kind := [g for g in groups if g.capacity.type != actual.kind]:
        blocker(f"is {actual.label}",
                f"set capacity.type: {actual.kind} on {', '.join(f'{g.rack}/{g.name}' for g in wrong_kind)} (the "
                f"launch template differs: Capacity Blocks need market type capacity-block)")
    if state not in USABLE_RESERVATION_STATES:
        blocker(f"state {state}", "use an active or scheduled reservation; instances cannot launch into a "
                f"{state} one")
    for g in groups:
        if g.instance_type != r.instance_type:
            blocker(f"reserves {r.instance_type}, not {g.instance_type}",
                    f"set instance_type: {r.instance_type} on {g.rack}/{g.name}, or use a reservation for "
                    f"{g.instance_type}")
    zone = _as_spec_names(plan, r.availability_zone, r.availability_zone_id)
    if zone != plan.availability_zone:
        blocker(f"is in {zone}, the spec's availability_zone is {plan.availability_zone}",
                f"set availability_zone: {zone} (every rack shares the AZ), or use a "
                f"reservation in {plan.availability_zone}")
    # An active ODCR may already hold other instances; a Capacity Block or a scheduled ODCR holds none yet.
    use_available = state == "active" and actual.counts_available
    have = r.available_instances if use_available else r.total_instances
    if have < count:
        more = (actual.add_capacity_hint or "").format(rid=rid, count=r.total_instances + count - have)
        # Warm nodes (min_count) hold their instances of the reservation all the time: they must fit in it first.
        warm = sum(g.min_count for g in groups)
        lower = f"lower count to {have}" + (f" and min_count to at most {have} (the {warm} warm nodes alone do "
                                            "not fit)" if warm > have else "")
        blocker(f"{have} instances available (running ones, this cluster's included, not counted)" if use_available
                else f"{have} instances reserved",
                f"{lower} or add capacity: {more}")
    held_in = r.placement_group
    out.extend(_placement_checks(name, needed, held_in, groups))
    end = r.end
    if state in USABLE_RESERVATION_STATES and end is not None:
        if end <= now:
            blocker(f"ended {utc_text(end)}", "use a reservation that has not ended")
        elif end - now < END_WARNING:
            lead = (f"; instances are terminated at {utc_text(end - actual.termination_lead)}"
                    if actual.termination_lead is not None else "")
            out.append(Check(name, "warning", f"ends {utc_text(end)}{lead}", needed,
                             "extend the reservation or expect the nodes to stop within a day"))
    if not out:
        starts = f", starts {utc_text(r.start)}" if state == "scheduled" and r.start else ""
        ends = f", ends {utc_text(end)}" if end else ", no end date"
        placed = f" (placement group {held_in})" if held_in else ""
        out.append(Check(name, "ok", f"{actual.kind} {state}, {have} x {r.instance_type} in "
                         f"{r.availability_zone}{placed}{starts}{ends}", needed))
    return out


def _placement_checks(name: str, needed: str, held_in: str | None, groups: list[NodeGroupPlan]) -> list[Check]:
    """A reservation created in a cluster placement group serves only launches into that group
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cr-cpg.html): a group launching anywhere else cannot use
    it. One outside any group can, but a placement constraint may then fail for insufficient capacity while the
    reservation has room (ParallelCluster warns the same, and for Capacity Blocks, which AWS places itself)."""
    out = []
    for g in groups:
        where = f"{g.rack}/{g.name}"
        launches = ("a new placement group" if g.creates_placement_group else
                    f"placement group {g.placement_group}" if g.placement_group else None)
        if held_in is not None and (g.creates_placement_group or g.placement_group != held_in):
            out.append(Check(name, "blocker",
                             f"was created in cluster placement group {held_in}; {where} launches "
                             f"{'into ' + launches if launches else 'outside any placement group'}", needed,
                             f"set placement_group: {{name: {held_in}}} on {where}: a reservation in a cluster "
                             "placement group serves only launches into that group"))
        elif held_in is None and launches is not None:
            out.append(Check(name, "warning", f"is in no placement group; {where} launches into {launches}", needed,
                             f"set placement_group: {{create: false}} on {where}, or use a reservation created in "
                             "the placement group: inside a group, launches can fail for insufficient capacity "
                             "while the reservation still has room"))
    return out


def check_reservations(plan: Plan, reservations: Mapping[str, ReservationState | ApiError | None],
                       now: dt.datetime) -> list[Check]:
    by_id = _grouped(plan, lambda g: (g.capacity.reservation_id or None)
                     if "reservation" in capacity_kind(g.capacity.type).preflight else None)
    return [c for rid, groups in by_id.items() for c in _check_reservation(plan, rid, groups, reservations[rid], now)]


def check_offerings(plan: Plan, offerings: Mapping[str, tuple[str, ...]] | ApiError) -> list[Check]:
    az = plan.availability_zone
    by_id = is_zone_id(az)
    checks = []
    for itype in dict.fromkeys(g.instance_type for g in plan.node_groups()):
        name = f"offering {itype}"
        needed = f"offered in {az}"
        if isinstance(offerings, ApiError):
            checks.append(unreadable(offerings, name, needed))
            continue
        # Compared in the spec's own terms: AZ IDs with an ID, this account's AZ names with a name.
        zones = tuple(z for z in offerings.get(itype, ()) if is_zone_id(z) == by_id)
        if az in zones:
            checks.append(Check(name, "ok", f"offered in {', '.join(zones)}", needed))
        elif zones:
            checks.append(Check(name, "blocker", f"not offered in {az}; offered in {', '.join(zones)}", needed,
                                f"set availability_zone to one of {', '.join(zones)} (every rack shares the AZ), "
                                f"or pick another instance type"))
        else:
            checks.append(Check(name, "blocker", f"not offered anywhere in {plan.region}", needed,
                                "pick another Region (`rackform validate` names the Regions offering it) or type"))
    return checks


def _count_check(name: str, region: str, existing: tuple[str, ...] | ApiError, ours: list[str], limit: int,
                 what: str, fix: str) -> Check:
    new = len(set(ours))
    if isinstance(existing, ApiError):
        return unreadable(existing, name, f"{new} new")
    others = len(set(existing) - set(ours))  # ours already there are replaced in place on a redeploy
    total = others + new
    found = f"{len(existing)} {what} in {region} ({len(existing) - others} of them this cluster's); limit {limit}"
    needed = f"{others} + {new} of this cluster = {total}"
    return Check(name, "ok" if total <= limit else "blocker", found, needed, "" if total <= limit else fix)


def check_batch(plan: Plan, compute_environments: tuple[str, ...] | ApiError,
                job_queues: tuple[str, ...] | ApiError) -> list[Check]:
    groups, region = plan.node_groups(), plan.region
    source = f"AWS Batch's documented per-Region figure, not read from Service Quotas; region {region}"
    return [
        _count_check("Batch compute environments", region, compute_environments,
                     [g.compute_environment for g in groups], BATCH_MAX_COMPUTE_ENVIRONMENTS,
                     "compute environments",
                     f"delete unused compute environments (aws batch update-compute-environment --state DISABLED, "
                     f"then delete-compute-environment) or deploy to another Region ({source})"),
        _count_check("Batch job queues", region, job_queues, [g.job_queue for g in groups],
                     BATCH_MAX_JOB_QUEUES, "job queues",
                     f"delete unused job queues (aws batch update-job-queue --state DISABLED, then delete-job-queue) "
                     f"or deploy to another Region ({source})"),
    ]


def check_stacks(plan: Plan, stack_limit: int | None | ApiError, stacks: tuple[str, ...] | ApiError) -> list[Check]:
    name = "CloudFormation stacks"
    ours = plan.stack_names()
    if isinstance(stacks, ApiError):
        return [unreadable(stacks, name, f"{len(ours)} stacks")]
    new = [s for s in ours if s not in set(stacks)]
    total = len(stacks) + len(new)
    needed = f"{len(stacks)} existing + {len(new)} new = {total}"
    if isinstance(stack_limit, ApiError):
        return [unreadable(stack_limit, name, f"{needed} (AWS's default limit is {DEFAULT_STACK_LIMIT:,})")]
    limit = DEFAULT_STACK_LIMIT if stack_limit is None else stack_limit
    found = f"limit {limit:,}" + (" (AWS default; StackLimit not reported)" if stack_limit is None else "")
    if total <= limit:
        return [Check(name, "ok", found, needed)]
    return [Check(name, "blocker", found, needed,
                  f"delete unused stacks in {plan.region} or request a higher 'Stack count' quota in Service Quotas "
                  f"(service cloudformation)")]


def existing_placement_groups(plan: Plan) -> dict[str, list[NodeGroupPlan]]:
    """Placement groups the spec names (rackform launches into them, never creates them), with their node groups."""
    return _grouped(plan, lambda g: None if g.creates_placement_group else g.placement_group)


def check_placement_groups(plan: Plan, found: Mapping[str, PlacementGroupState | ApiError | None] | None
                           ) -> list[Check]:
    """A named group must exist and be usable: Batch launches into it by name. Cluster is the strategy EFA and
    multi-node jobs want (https://docs.aws.amazon.com/batch/latest/userguide/mnp-ce.html)."""
    checks = []
    for pg, groups in existing_placement_groups(plan).items():
        name, needed = f"placement group {pg}", f"an available cluster placement group for {_groups_text(groups)}"
        entry = (found or {}).get(pg)
        if isinstance(entry, ApiError):
            checks.append(unreadable(entry, name, needed))
        elif entry is None:
            checks.append(Check(name, "blocker", f"no placement group named {pg} in {plan.region}", needed,
                                f"create it (aws ec2 create-placement-group --group-name {pg} --strategy cluster "
                                f"--region {plan.region}) or fix placement_group.name"))
        elif entry.state != "available":
            checks.append(Check(name, "blocker", f"state {entry.state}", needed,
                                "use an available placement group; instances cannot launch into this one"))
        elif entry.strategy != "cluster":
            checks.append(Check(name, "warning", f"a {entry.strategy} placement group", needed,
                                "EFA and multi-node jobs want a cluster placement group: name one"))
        else:
            checks.append(Check(name, "ok", "cluster, available", needed))
    return checks


def data_repository_bucket(plan: Plan) -> str | None:
    fsx = plan.storage.fsx_lustre
    if fsx is None or fsx.data_repository_path is None:
        return None
    return fsx.data_repository_path.removeprefix("s3://").split("/", 1)[0]


def check_data_repository(plan: Plan, bucket: BucketState | ApiError | None) -> list[Check]:
    """The bucket FSx links must exist, be readable, and sit in the plan's Region: the data repository association
    imports automatically, which FSx does only from a bucket in the file system's Region
    (https://docs.aws.amazon.com/fsx/latest/LustreGuide/autoimport-data-repo-dra.html)."""
    name_ = data_repository_bucket(plan)
    if name_ is None or bucket is None:
        return []
    path = plan.storage.fsx_lustre.data_repository_path  # type: ignore[union-attr]
    name = f"data repository {path}"
    needed = f"bucket {name_} exists, this account can read it, in {plan.region}"
    if isinstance(bucket, ApiError):
        return [unreadable(bucket, name, needed)]
    if not bucket.exists:
        return [Check(name, "blocker", f"no bucket named {name_}", needed,
                      f"create it (aws s3 mb s3://{name_} --region {plan.region}) and put the data there, or fix "
                      f"data_repository_path; the file system's data repository association fails without it")]
    out = []
    if not bucket.readable:
        out.append(Check(name, "blocker", "access denied to this account (HeadBucket 403)", needed,
                         f"give this account s3:ListBucket and s3:GetObject on {name_} (s3:PutObject too: the "
                         "association exports changes back), by a bucket policy if another account owns it"))
    if bucket.region is not None and bucket.region != plan.region:
        out.append(Check(name, "blocker", f"is in {bucket.region}", needed,
                         f"use a bucket in {plan.region} (copy the data or replicate it there): FSx imports changes "
                         f"automatically only from a bucket in the file system's Region"))
    if not out:
        where = f"in {bucket.region}" if bucket.region else "Region not reported by S3"
        out.append(Check(name, "ok", f"exists {where}, readable", needed))
    return out


def custom_images(plan: Plan) -> dict[str, list[NodeGroupPlan]]:
    """The AMIs node groups name (spec image_id), with their node groups."""
    return _grouped(plan, lambda g: g.image_id)


# What names an ECS-optimized AMI, or one built from it: AWS's own are named amzn2023-ami-ecs-..., and their
# descriptions say "Amazon Linux AMI 2023... x86_64 ECS HVM"
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-optimized_AMI.html); a team's image keeps "ecs" in
# its name or description by convention only, so a miss is a warning, not a blocker.
ECS_IMAGE_MARK = "ecs"


def check_images(plan: Plan, found: Mapping[str, ImageState | ApiError | None] | None) -> list[Check]:
    """A group's own AMI must exist, be available and be built for the type's architecture (EC2 refuses to launch
    it otherwise); Batch's ECS instances need the ECS agent, which only the image can say it has."""
    checks = []
    for image, groups in custom_images(plan).items():
        arch = groups[0].architecture
        name, needed = f"image {image}", f"an available {arch} ECS AMI for {_groups_text(groups)}"
        entry = (found or {}).get(image)
        if isinstance(entry, ApiError):
            checks.append(unreadable(entry, name, needed))
            continue
        if entry is None:
            checks.append(Check(name, "blocker", f"no image {image} visible to this account in {plan.region}", needed,
                                f"copy the AMI to {plan.region} or share it with this account (AMIs are Regional), "
                                "or fix image_id"))
            continue
        found_text = f"{entry.name or '(no name)'}, {entry.architecture}, {entry.state}"
        wrong_arch = [g for g in groups if g.architecture != entry.architecture]
        if entry.state != "available":
            checks.append(Check(name, "blocker", found_text, needed, "wait until the image is available, or use "
                                "another: instances cannot launch from it"))
        elif wrong_arch:
            checks.append(Check(name, "blocker", found_text, needed,
                                f"use an {entry.architecture} type or an AMI built for "
                                f"{', '.join(sorted({g.architecture for g in wrong_arch}))} on "
                                f"{', '.join(f'{g.rack}/{g.name}' for g in wrong_arch)}"))
        elif ECS_IMAGE_MARK not in f"{entry.name} {entry.description}".lower():
            checks.append(Check(name, "warning", found_text + "; neither its name nor its description says ECS",
                                needed, "make sure it has the ECS agent enabled (build it from the ECS-optimized AMI): "
                                "Batch's instances that never register with ECS run no job"))
        else:
            checks.append(Check(name, "ok", found_text, needed))
    return checks


# Nodes have no public address (their launch template gives none), so an internet gateway route takes them nowhere.
NO_PUBLIC_ROUTE = "igw-"
EFA_SECURITY_GROUP = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html"


def check_existing_network(plan: Plan, found: ExistingNetworkState | None) -> list[Check]:
    """The spec's own subnet and security groups: the subnet in the spec's AZ and VPC with a free address for every
    interface the plan needs, a way to S3 and ECR, and a group allowing all traffic to and from itself (AWS's EFA
    guide, which also carries Lustre's ports between the nodes and the file system in it)."""
    mine = plan.network.existing
    if mine is None or found is None:
        return []
    out: list[Check] = []
    name, needed = f"subnet {mine.subnet_id}", (f"in {plan.availability_zone} and {mine.vpc_id}, "
                                                f"{plan.network.ips_needed:,} free addresses")
    subnet = found.subnet
    if isinstance(subnet, ApiError):
        out.append(unreadable(subnet, name, needed))
    elif subnet is None:
        out.append(Check(name, "blocker", f"no subnet {mine.subnet_id} in {plan.region}", needed,
                         "fix network.subnet_id (subnets belong to one Region and account)"))
    else:
        zone = _as_spec_names(plan, subnet.availability_zone, subnet.availability_zone_id)
        problems = []
        if subnet.vpc_id != mine.vpc_id:
            problems.append((f"is in {subnet.vpc_id}, not {mine.vpc_id}", "set network.vpc_id to the subnet's VPC"))
        if zone != plan.availability_zone:
            problems.append((f"is in {zone}", f"use a subnet in {plan.availability_zone}, or set availability_zone: "
                             f"{zone} (EFA and placement groups do not span AZs)"))
        if subnet.free_addresses < plan.network.ips_needed:
            problems.append((f"has {subnet.free_addresses:,} free addresses",
                             "use a larger subnet, or fewer nodes: each node interface, the file system and the "
                             "Batch task ENIs take one"))
        out += [Check(name, "blocker", f, needed, fix) for f, fix in problems]
        if not problems:
            out.append(Check(name, "ok", f"in {zone}, {subnet.free_addresses:,} free addresses", needed))
        out.append(_route_check(mine.subnet_id, subnet))
    out += _efa_rule_check(mine.vpc_id, mine.security_group_ids, found)
    return out


def _route_check(subnet_id: str, subnet: SubnetState) -> Check:
    """Nodes pull images from ECR (its layers from S3) and write results to S3: through a NAT gateway (or another
    private default route), or S3's gateway endpoint with ECR's interface endpoints
    (https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html)."""
    name, needed = f"route to S3 and ECR from {subnet_id}", "a NAT route, or S3's gateway endpoint and ECR's endpoints"
    egress = subnet.default_route is not None and not subnet.default_route.startswith(NO_PUBLIC_ROUTE)
    s3 = egress or subnet.s3_gateway_endpoint
    ecr = egress or (subnet.ecr_endpoints and subnet.s3_gateway_endpoint)
    found = ", ".join(filter(None, [f"default route via {subnet.default_route}" if subnet.default_route else
                                    "no default route", "S3 gateway endpoint" if subnet.s3_gateway_endpoint else "",
                                    "ECR interface endpoints" if subnet.ecr_endpoints else ""]))
    if s3 and ecr:
        return Check(name, "ok", found, needed)
    why = (" (an internet gateway: the nodes have no public address)"
           if subnet.default_route and subnet.default_route.startswith(NO_PUBLIC_ROUTE) else "")
    return Check(name, "blocker", found + why, needed,
                 "route 0.0.0.0/0 through a NAT gateway, or add S3's gateway endpoint to the subnet's route table and "
                 "interface endpoints for ecr.api and ecr.dkr: nodes cannot pull images or write results otherwise")


def _efa_rule_check(vpc_id: str, group_ids: tuple[str, ...], found: ExistingNetworkState) -> list[Check]:
    name = f"security groups {', '.join(group_ids)}"
    needed = f"in {vpc_id}; one allows all traffic in from and out to itself (EFA, {EFA_SECURITY_GROUP})"
    states = {g: found.security_groups.get(g) for g in group_ids}
    if errors := [s for s in states.values() if isinstance(s, ApiError)]:
        return [unreadable(errors[0], name, needed)]
    out = [Check(name, "blocker", f"no security group {g} in this Region", needed, "fix network.security_group_ids")
           for g, s in states.items() if s is None]
    known = {g: s for g, s in states.items() if isinstance(s, SecurityGroupState)}
    out += [Check(name, "blocker", f"{g} is in {s.vpc_id}", needed, f"use groups of {vpc_id}")
            for g, s in known.items() if s.vpc_id != vpc_id]
    if out:
        return out
    if any(s.self_ingress and s.self_egress for s in known.values()):
        return [Check(name, "ok", "self-referencing all-traffic rules in and out", needed)]
    return [Check(name, "blocker", "no group allows all traffic both in from and out to itself", needed,
                  f"add both rules to {group_ids[0]}: aws ec2 authorize-security-group-ingress --group-id "
                  f"{group_ids[0]} --ip-permissions 'IpProtocol=-1,UserIdGroupPairs=[{{GroupId={group_ids[0]}}}]', "
                  "and the same with authorize-security-group-egress; EFA traffic and Lustre's fail without them")]


def check_existing_file_system(plan: Plan, found: FileSystemState | ApiError | None) -> list[Check]:
    """An existing file system the racks mount: an available Lustre file system in the spec's VPC, under the mount name
    the nodes use; what the spec states of it (deployment type, size, throughput) is what DescribeFileSystems says."""
    fsx = plan.storage.fsx_lustre
    if fsx is None or fsx.file_system_id is None:
        return []
    vpc = plan.network.existing.vpc_id if plan.network.existing else "the spec's VPC"
    name, needed = f"file system {fsx.file_system_id}", f"an available Lustre file system in {vpc}, mount name " \
        f"{fsx.mount_name}"
    if isinstance(found, ApiError):
        return [unreadable(found, name, needed)]
    if found is None:
        return [Check(name, "blocker", f"no file system {fsx.file_system_id} in {plan.region}", needed,
                      "fix storage.fsx_lustre.file_system_id (file systems belong to one Region and account)")]
    stated = {"deployment_type": (fsx.deployment_type, found.deployment_type),
              "storage_capacity_gib": (fsx.storage_capacity_gib, found.storage_capacity_gib),
              "per_unit_storage_throughput": (fsx.per_unit_storage_throughput, found.per_unit_storage_throughput)}
    blockers = []
    if found.file_system_type != "LUSTRE":
        blockers.append((f"a {found.file_system_type} file system", "name an FSx for Lustre file system"))
    if found.lifecycle != "AVAILABLE":
        blockers.append((f"state {found.lifecycle}", "wait until it is AVAILABLE"))
    if found.vpc_id != vpc:
        blockers.append((f"in {found.vpc_id}", f"deploy into {found.vpc_id} (network.vpc_id, subnet_id, "
                                               "security_group_ids)"))
    if found.mount_name != fsx.mount_name:
        blockers.append((f"mount name {found.mount_name}", f"set storage.fsx_lustre.mount_name: {found.mount_name}"))
    out = [Check(name, "blocker", f, needed, fix) for f, fix in blockers]
    differs = [f"{k} {spec} (it has {theirs})" for k, (spec, theirs) in stated.items() if spec != theirs]
    if differs:
        out.append(Check(name, "warning", "the spec states " + "; ".join(differs), needed,
                         "state what the file system is in storage.fsx_lustre: the plan counts its throughput and "
                         "size from there"))
    if not out:
        out.append(Check(name, "ok", f"LUSTRE {found.deployment_type} {found.storage_capacity_gib:,} GiB, "
                     f"{found.lifecycle}, in {found.vpc_id}, mount name {found.mount_name}", needed))
    return out


def all_checks(plan: Plan, state: AccountState, now: dt.datetime) -> list[Check]:
    return (check_quotas(plan, state.quotas) + check_reservations(plan, state.reservations, now)
            + check_offerings(plan, state.offerings) + check_batch(plan, state.compute_environments, state.job_queues)
            + check_stacks(plan, state.stack_limit, state.stacks)
            + check_placement_groups(plan, state.placement_groups)
            + check_data_repository(plan, state.data_repository) + check_images(plan, state.images)
            + check_existing_network(plan, state.network) + check_existing_file_system(plan, state.file_system))


# --- this machine: can `cdk deploy` build the arm64 image here? ----------------------------------------------

# `cdk deploy` builds each tier's image on the machine it runs on, the Graviton tier's for linux/arm64
# (cdk_constructs/jobs.py TIER_IMAGES), and only after the stacks before it have deployed: fetch.probe_build_host
# asks this machine whether it can; without it the build's first RUN fails with "exec format error", minutes into
# the deploy.
ARM64_BUILD_FIX = ("register QEMU for arm64 once: `docker run --privileged --rm tonistiigi/binfmt --install arm64` "
                   "(Docker's multi-platform build guide), or run cdk deploy on an arm64 (Graviton) machine")


def check_image_build(plan: Plan, host: BuildHost) -> list[Check]:
    arm = sorted({g.tier for g in plan.node_groups() if g.architecture == "arm64"})
    if not arm:
        return []
    name, needed = "arm64 image build", f"linux/arm64 builds on this machine for the {', '.join(arm)} image"
    found = f"{host.machine}: {host.how}"
    if host.arm64:
        return [Check(name, "ok", found, needed)]
    return [Check(name, "unknown" if host.arm64 is None else "blocker", found, needed, ARM64_BUILD_FIX)]
