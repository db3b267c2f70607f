"""`rackform preflight`: can this account hold the cluster, and can this machine build its images? Asked before
`cdk deploy`.

A deploy that fails on a quota, a reservation in the wrong AZ or a full Batch Region fails late (after the VPC and
file system exist) and names the cause badly. Preflight reads the account once and says what blocks the deploy.

Two layers: `fetch_*` functions make the boto3 calls and turn API failures into `ApiError` values; `check_*`
functions are pure (plan + fetched data + the time -> `Check`s), so every rule is tested with plain data.
"""

from __future__ import annotations

import datetime as dt
import platform
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from .. import aws
from ..aws import paginate
from ..capacity import of as capacity_kind
from ..capacity import of_reservation
from ..plan.models import NodeGroupPlan, Plan

# AWS Batch's fixed per-Region quotas (no Service Quotas code is read for them): one definition, in validate.
from ..reference.aws_limits import BATCH_MAX_COMPUTE_ENVIRONMENTS, BATCH_MAX_JOB_QUEUES
from ..reference.catalog import is_zone_id, zone_field
from ..reference.prices import PaginatingClient

Status = Literal["ok", "blocker", "warning", "unknown"]
ClientFactory = Callable[[str], Any]  # service name -> boto3 client for the plan's Region
T = TypeVar("T")

# CloudFormation's default stacks per account and Region, used only when DescribeAccountLimits omits StackLimit.
DEFAULT_STACK_LIMIT = 2000
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


@dataclass(frozen=True)
class ApiError:
    """A call that failed (no permission, throttled, unreachable): its check becomes `unknown`, never a crash."""

    action: str  # the IAM action that was refused or failed, e.g. servicequotas:GetServiceQuota
    message: str
    denied: bool = False  # refused for want of permission, rather than failed

    def as_check(self, name: str, needed: str) -> Check:
        fix = (f"grant {self.action} to the caller and run preflight again" if self.denied else
               f"run preflight again once the call works (it needs {self.action}): check the network, endpoint "
               f"and Region")
        return Check(name, "unknown", f"cannot read: {self.message}", needed, fix + "; or check by hand in the console")


@dataclass(frozen=True)
class QuotaValue:
    vcpus: float
    default: bool  # the account has no applied value; AWS's default was read instead


@dataclass(frozen=True)
class BucketState:
    """What S3 says of the data repository bucket (HeadBucket)."""

    exists: bool
    readable: bool  # False: S3 refused this account (403)
    region: str | None  # S3's x-amz-bucket-region; None where S3 did not say


@dataclass(frozen=True)
class AccountState:
    """Everything preflight reads from the account, so the checks need no AWS."""

    quotas: Mapping[str, QuotaValue | ApiError | None]  # quota code -> value; None: Service Quotas lacks the code
    # reservation id -> its DescribeCapacityReservations entry; None: not found
    reservations: Mapping[str, dict[str, Any] | ApiError | None]
    offerings: Mapping[str, tuple[str, ...]] | ApiError  # instance type -> AZs of the Region offering it
    compute_environments: tuple[str, ...] | ApiError
    job_queues: tuple[str, ...] | ApiError
    stack_limit: int | None | ApiError  # None: DescribeAccountLimits did not list StackLimit
    stacks: tuple[str, ...] | ApiError  # names of stacks not deleted
    data_repository: BucketState | ApiError | None = None  # None: the spec links no bucket
    # existing placement group name -> its DescribePlacementGroups entry; None: no such group
    placement_groups: Mapping[str, dict[str, Any] | ApiError | None] | None = None


# --- checks (pure) ---------------------------------------------------------------------------------------------

def _groups_text(groups: list[NodeGroupPlan]) -> str:
    return ", ".join(f"{g.rack}/{g.name} {g.count} x {g.instance_type}" for g in groups)


def check_quotas(plan: Plan, quotas: Mapping[str, QuotaValue | ApiError | None]) -> list[Check]:
    by_code: dict[tuple[str | None, str], list[NodeGroupPlan]] = {}
    for g in plan.node_groups():
        if "quota" in capacity_kind(g.capacity.type).preflight:
            by_code.setdefault((g.quota.code, g.quota.name), []).append(g)
    checks = []
    for (code, quota_name), groups in by_code.items():
        need = sum(g.quota.vcpus for g in groups)
        name = f"vCPU quota {code or '?'} ({quota_name})"
        needed = f"{need:,} vCPUs: {_groups_text(groups)}"
        for note in dict.fromkeys(n for g in groups if (n := capacity_kind(g.capacity.type).quota_note)):
            needed += f" ({note})"
        if code is None:
            checks.append(Check(name, "unknown", "rackform does not know this quota's Service Quotas code", needed,
                                f"look up '{quota_name}' in the Service Quotas console for {plan.region} and "
                                f"make sure it holds {need:,} vCPUs"))
            continue
        value = quotas[code]
        if isinstance(value, ApiError):
            checks.append(value.as_check(name, needed))
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


def _when(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check_reservation(plan: Plan, rid: str, groups: list[NodeGroupPlan], r: dict[str, Any] | ApiError | None,
                       now: dt.datetime) -> list[Check]:
    name = f"capacity {rid}"
    kind = groups[0].capacity.type
    count = sum(g.count for g in groups)
    needed = f"{kind} for {count} x {groups[0].instance_type} in {plan.availability_zone} ({_groups_text(groups)})"
    if isinstance(r, ApiError):
        return [r.as_check(name, needed)]
    if r is None:
        return [Check(name, "blocker", f"not found in {plan.region}", needed,
                      f"check the id and the spec's region (reservations belong to one Region and account): "
                      f"aws ec2 describe-capacity-reservations --region {plan.region}")]
    actual = of_reservation(r.get("ReservationType"))
    state = r["State"]
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
        if g.instance_type != r["InstanceType"]:
            blocker(f"reserves {r['InstanceType']}, not {g.instance_type}",
                    f"set instance_type: {r['InstanceType']} on {g.rack}/{g.name}, or use a reservation for "
                    f"{g.instance_type}")
    # The spec names its AZ by name or by AZ ID; compare in the same form (DescribeCapacityReservations returns both).
    zone_key = zone_field(plan.availability_zone)
    if (zone := r.get(zone_key)) != plan.availability_zone:
        blocker(f"is in {zone}, the spec's availability_zone is {plan.availability_zone}",
                f"set availability_zone: {zone} (every rack shares the AZ), or use a "
                f"reservation in {plan.availability_zone}")
    # An active ODCR may already hold other instances; a Capacity Block or a scheduled ODCR holds none yet.
    use_available = state == "active" and actual.counts_available
    have = r["AvailableInstanceCount"] if use_available else r["TotalInstanceCount"]
    if have < count:
        more = (actual.add_capacity_hint or "").format(rid=rid, count=r["TotalInstanceCount"] + count - have)
        blocker(f"{have} instances available (running ones, this cluster's included, not counted)" if use_available
                else f"{have} instances reserved",
                f"lower count to {have} or add capacity: {more}")
    held_in = _placement_group_name(r.get("PlacementGroupArn"))
    out.extend(_placement_checks(name, needed, held_in, groups))
    end = r.get("EndDate")
    if state in USABLE_RESERVATION_STATES and end is not None:
        if end <= now:
            blocker(f"ended {_when(end)}", "use a reservation that has not ended")
        elif end - now < END_WARNING:
            lead = (f"; instances are terminated at {_when(end - actual.termination_lead)}"
                    if actual.termination_lead is not None else "")
            out.append(Check(name, "warning", f"ends {_when(end)}{lead}", needed,
                             "extend the reservation or expect the nodes to stop within a day"))
    if not out:
        start = r.get("StartDate")
        starts = f", starts {_when(start)}" if state == "scheduled" and start else ""
        ends = f", ends {_when(end)}" if end else ", no end date"
        placed = f" (placement group {held_in})" if held_in else ""
        out.append(Check(name, "ok", f"{actual.kind} {state}, {have} x {r['InstanceType']} in "
                         f"{r['AvailabilityZone']}{placed}{starts}{ends}", needed))
    return out


def _placement_group_name(arn: str | None) -> str | None:
    # arn:aws:ec2:REGION:ACCOUNT:placement-group/NAME
    return arn.rsplit("/", 1)[-1] if arn else None


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


def check_reservations(plan: Plan, reservations: Mapping[str, dict[str, Any] | ApiError | None],
                       now: dt.datetime) -> list[Check]:
    by_id: dict[str, list[NodeGroupPlan]] = {}
    for g in plan.node_groups():
        if "reservation" in capacity_kind(g.capacity.type).preflight and g.capacity.reservation_id:
            by_id.setdefault(g.capacity.reservation_id, []).append(g)
    return [c for rid, groups in by_id.items() for c in _check_reservation(plan, rid, groups, reservations[rid], now)]


def check_offerings(plan: Plan, offerings: Mapping[str, tuple[str, ...]] | ApiError) -> list[Check]:
    az = plan.availability_zone
    by_id = is_zone_id(az)
    checks = []
    for itype in dict.fromkeys(g.instance_type for g in plan.node_groups()):
        name = f"offering {itype}"
        needed = f"offered in {az}"
        if isinstance(offerings, ApiError):
            checks.append(offerings.as_check(name, needed))
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
        return existing.as_check(name, f"{new} new")
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
    ours = [plan.network.stack_name, plan.storage.stack_name] + [r.stack_name for r in plan.racks]
    if isinstance(stacks, ApiError):
        return [stacks.as_check(name, f"{len(ours)} stacks")]
    new = [s for s in ours if s not in set(stacks)]
    total = len(stacks) + len(new)
    needed = f"{len(stacks)} existing + {len(new)} new = {total}"
    if isinstance(stack_limit, ApiError):
        return [stack_limit.as_check(name, f"{needed} (AWS's default limit is {DEFAULT_STACK_LIMIT:,})")]
    limit = DEFAULT_STACK_LIMIT if stack_limit is None else stack_limit
    found = f"limit {limit:,}" + (" (AWS default; StackLimit not reported)" if stack_limit is None else "")
    if total <= limit:
        return [Check(name, "ok", found, needed)]
    return [Check(name, "blocker", found, needed,
                  f"delete unused stacks in {plan.region} or request a higher 'Stack count' quota in Service Quotas "
                  f"(service cloudformation)")]


def existing_placement_groups(plan: Plan) -> dict[str, list[NodeGroupPlan]]:
    """Placement groups the spec names (rackform launches into them, never creates them), with their node groups."""
    named: dict[str, list[NodeGroupPlan]] = {}
    for g in plan.node_groups():
        if g.placement_group is not None and not g.creates_placement_group:
            named.setdefault(g.placement_group, []).append(g)
    return named


def check_placement_groups(plan: Plan, found: Mapping[str, dict[str, Any] | ApiError | None] | None) -> list[Check]:
    """A named group must exist and be usable: Batch launches into it by name. Cluster is the strategy EFA and
    multi-node jobs want (https://docs.aws.amazon.com/batch/latest/userguide/mnp-ce.html)."""
    checks = []
    for pg, groups in existing_placement_groups(plan).items():
        name, needed = f"placement group {pg}", f"an available cluster placement group for {_groups_text(groups)}"
        entry = (found or {}).get(pg)
        if isinstance(entry, ApiError):
            checks.append(entry.as_check(name, needed))
        elif entry is None:
            checks.append(Check(name, "blocker", f"no placement group named {pg} in {plan.region}", needed,
                                f"create it (aws ec2 create-placement-group --group-name {pg} --strategy cluster "
                                f"--region {plan.region}) or fix placement_group.name"))
        elif entry.get("State") != "available":
            checks.append(Check(name, "blocker", f"state {entry.get('State')}", needed,
                                "use an available placement group; instances cannot launch into this one"))
        elif entry.get("Strategy") != "cluster":
            checks.append(Check(name, "warning", f"a {entry.get('Strategy')} placement group", needed,
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
        return [bucket.as_check(name, needed)]
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


def all_checks(plan: Plan, state: AccountState, now: dt.datetime) -> list[Check]:
    return (check_quotas(plan, state.quotas) + check_reservations(plan, state.reservations, now)
            + check_offerings(plan, state.offerings) + check_batch(plan, state.compute_environments, state.job_queues)
            + check_stacks(plan, state.stack_limit, state.stacks)
            + check_placement_groups(plan, state.placement_groups)
            + check_data_repository(plan, state.data_repository))


# --- this machine: can `cdk deploy` build the arm64 image here? ----------------------------------------------

# `cdk deploy` builds each tier's image on the machine it runs on, the Graviton tier's for linux/arm64
# (cdk_constructs/jobs.py TIER_IMAGES), and only after the stacks before it have deployed. An arm64 machine builds it
# natively; an x86_64 one only where the kernel runs arm64 programs through QEMU, registered with binfmt_misc
# (Docker Desktop registers it in its VM; elsewhere Docker's multi-platform guide installs it with
# `docker run --privileged --rm tonistiigi/binfmt --install arm64`,
# https://docs.docker.com/build/building/multi-platform/#qemu). Without it the build's first RUN fails with
# "exec format error", minutes into the deploy.
BINFMT_ARM64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
ARM64_BUILD_FIX = ("register QEMU for arm64 once: `docker run --privileged --rm tonistiigi/binfmt --install arm64` "
                   "(Docker's multi-platform build guide), or run cdk deploy on an arm64 (Graviton) machine")


@dataclass(frozen=True)
class BuildHost:
    machine: str  # platform.machine()
    arm64: bool | None  # whether builds here can run arm64 programs; None: it could not be told
    how: str  # what said so


def probe_build_host(machine: Callable[[], str] = platform.machine, binfmt: Path = BINFMT_ARM64,
                     run: Callable[..., Any] = subprocess.run) -> BuildHost:
    """How this machine would build an arm64 image: natively, through a registered QEMU handler, or through what
    the current Docker builder says it can build (`docker buildx inspect`, its Platforms line)."""
    arch = machine()
    if arch.lower() in ("arm64", "aarch64"):
        return BuildHost(arch, True, "builds arm64 natively")
    try:
        if binfmt.read_text().splitlines()[:1] == ["enabled"]:
            return BuildHost(arch, True, f"QEMU registered for arm64 ({binfmt} enabled)")
    except OSError:
        pass
    try:
        out = run(["docker", "buildx", "inspect"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return BuildHost(arch, None, f"no {binfmt}, and `docker buildx inspect` did not run ({e})")
    platforms = re.search(r"^Platforms:(.*)$", out.stdout, re.MULTILINE) if out.returncode == 0 else None
    if platforms is None:
        return BuildHost(arch, None, f"no {binfmt}, and `docker buildx inspect` named no platforms")
    names = [p.strip() for p in platforms.group(1).split(",") if p.strip()]
    return BuildHost(arch, any(p.split("/")[:2] == ["linux", "arm64"] for p in names),
                     f"Docker builder platforms: {', '.join(names) or 'none'}")


def check_image_build(plan: Plan, host: BuildHost) -> list[Check]:
    arm = sorted({g.tier for g in plan.node_groups() if g.architecture == "arm64"})
    if not arm:
        return []
    name, needed = "arm64 image build", f"linux/arm64 builds on this machine for the {', '.join(arm)} image"
    found = f"{host.machine}: {host.how}"
    if host.arm64:
        return [Check(name, "ok", found, needed)]
    return [Check(name, "unknown" if host.arm64 is None else "blocker", found, needed, ARM64_BUILD_FIX)]


# --- fetch (boto3) ---------------------------------------------------------------------------------------------

# Whatever botocore raises when a call fails. ResponseParserError (an endpoint answering with an HTML error page,
# as a moto server does for APIs it lacks) derives from neither of the others.
CALL_FAILED = (ClientError, BotoCoreError, ResponseParserError)


# The parts of the boto3 clients the `fetch_*` functions call (keyword arguments as boto3 spells them); their
# answers are AWS's JSON.
class ServiceQuotasClient(Protocol):
    def get_service_quota(self, *, ServiceCode: str, QuotaCode: str) -> dict[str, Any]: ...
    def get_aws_default_service_quota(self, *, ServiceCode: str, QuotaCode: str) -> dict[str, Any]: ...


class Ec2Client(PaginatingClient, Protocol):
    def describe_capacity_reservations(self, *, CapacityReservationIds: list[str]) -> dict[str, Any]: ...
    def describe_placement_groups(self, *, GroupNames: list[str]) -> dict[str, Any]: ...


class S3Client(Protocol):
    def head_bucket(self, *, Bucket: str) -> dict[str, Any]: ...


class CloudFormationClient(PaginatingClient, Protocol):
    # botocore's client metadata: its `service_model` holds the API's shapes.
    meta: Any

    def describe_account_limits(self) -> dict[str, Any]: ...


def _api_error(action: str, e: Exception) -> ApiError:
    if isinstance(e, ClientError):
        message = f"{aws.error_code(e) or 'error'}: {aws.error_message(e)}".rstrip(": ")
        denied = aws.is_denied(e)
    else:
        message, denied = f"{type(e).__name__}: {e}", False
    # Whitespace collapsed and cut short: an endpoint's error can be a whole HTML page.
    return ApiError(action, " ".join(message.split())[:200], denied)


def _guarded(action: str, call: Callable[[], T]) -> T | ApiError:
    try:
        return call()
    except CALL_FAILED as e:
        return _api_error(action, e)


def fetch_quota(service_quotas: ServiceQuotasClient, code: str) -> QuotaValue | ApiError | None:
    try:
        return QuotaValue(service_quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"],
                          default=False)
    except CALL_FAILED as e:
        # No applied value (the account never asked for a change): AWS's default is the quota in force.
        if aws.error_code(e) != "NoSuchResourceException":
            return _api_error("servicequotas:GetServiceQuota", e)
    try:
        quota = service_quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]
        return QuotaValue(quota["Value"], default=True)
    except CALL_FAILED as e:
        if aws.error_code(e) == "NoSuchResourceException":
            return None
        return _api_error("servicequotas:GetAWSDefaultServiceQuota", e)


def _describe_one(action: str, not_found: tuple[str, ...], call: Callable[[], list[dict[str, Any]]]
                  ) -> dict[str, Any] | ApiError | None:
    """The one item a Describe call asked for by id or name; None when EC2 says it does not exist. One per call:
    EC2 fails the whole call when any id or name in the list is unknown."""
    try:
        found = call()
    except CALL_FAILED as e:
        return None if aws.error_code(e) in not_found else _api_error(action, e)
    return found[0] if found else None


def fetch_reservation(ec2: Ec2Client, rid: str) -> dict[str, Any] | ApiError | None:
    return _describe_one(
        "ec2:DescribeCapacityReservations",
        ("InvalidCapacityReservationId.NotFound", "InvalidCapacityReservationId.Malformed"),
        lambda: ec2.describe_capacity_reservations(CapacityReservationIds=[rid])["CapacityReservations"])


def fetch_placement_group(ec2: Ec2Client, name: str) -> dict[str, Any] | ApiError | None:
    return _describe_one(
        "ec2:DescribePlacementGroups", ("InvalidPlacementGroup.Unknown", "InvalidPlacementGroup.NotFound"),
        lambda: ec2.describe_placement_groups(GroupNames=[name])["PlacementGroups"])


def fetch_bucket(s3: S3Client, bucket: str) -> BucketState | ApiError:
    """HeadBucket: 404 is no bucket, 403 a bucket this account may not read; S3 names the bucket's Region in the
    x-amz-bucket-region header of both answers and of a redirect (301) from another Region's endpoint."""
    try:
        response = s3.head_bucket(Bucket=bucket)
    except CALL_FAILED as e:
        if not isinstance(e, ClientError):
            return _api_error("s3:ListBucket", e)
        meta = e.response.get("ResponseMetadata", {})
        status, region = meta.get("HTTPStatusCode"), meta.get("HTTPHeaders", {}).get("x-amz-bucket-region")
        if status == 404 or aws.error_code(e) in ("404", "NoSuchBucket"):
            return BucketState(exists=False, readable=False, region=None)
        if status == 403:
            return BucketState(exists=True, readable=False, region=region)
        if status == 301 and region:
            return BucketState(exists=True, readable=True, region=region)
        return _api_error("s3:ListBucket", e)
    region = response.get("BucketRegion") or response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
        "x-amz-bucket-region")
    return BucketState(exists=True, readable=True, region=region)


def fetch_offerings(ec2: PaginatingClient, instance_types: list[str], location_types: tuple[str, ...] = (
        "availability-zone", "availability-zone-id")) -> dict[str, tuple[str, ...]]:
    """Instance type -> the AZ names (as this account maps them) and/or the AZ IDs that offer it.
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html"""
    zones: dict[str, list[str]] = {}
    for location_type in location_types:
        for o in paginate(ec2, "describe_instance_type_offerings", "InstanceTypeOfferings",
                           LocationType=location_type,
                           Filters=[{"Name": "instance-type", "Values": instance_types}]):
            zones.setdefault(o["InstanceType"], []).append(o["Location"])
    return {t: tuple(sorted(z)) for t, z in zones.items()}


def fetch_stack_limit(cloudformation: CloudFormationClient) -> int | None:
    limits = cloudformation.describe_account_limits()["AccountLimits"]
    return next((int(x["Value"]) for x in limits if x["Name"] == "StackLimit"), None)


def fetch_stacks(cloudformation: CloudFormationClient) -> tuple[str, ...]:
    # Every status but DELETE_COMPLETE counts against the limit; take them from the API model so new ones are in.
    statuses = [s for s in cloudformation.meta.service_model.shape_for("StackStatus").enum if s != "DELETE_COMPLETE"]
    return tuple(s["StackName"] for s in paginate(cloudformation, "list_stacks", "StackSummaries",
                                                   StackStatusFilter=statuses))


def fetch_state(plan: Plan, client_for: ClientFactory) -> AccountState:
    groups = plan.node_groups()
    service_quotas, ec2 = client_for("service-quotas"), client_for("ec2")
    batch, cloudformation = client_for("batch"), client_for("cloudformation")
    codes = sorted({g.quota.code for g in groups if g.quota.code})
    ids = sorted({g.capacity.reservation_id for g in groups if g.capacity.reservation_id})
    types = sorted({g.instance_type for g in groups})
    return AccountState(
        quotas={c: fetch_quota(service_quotas, c) for c in codes},
        reservations={i: fetch_reservation(ec2, i) for i in ids},
        offerings=_guarded("ec2:DescribeInstanceTypeOfferings", lambda: fetch_offerings(
            ec2, types, ("availability-zone-id" if is_zone_id(plan.availability_zone) else "availability-zone",))),
        compute_environments=_guarded("batch:DescribeComputeEnvironments", lambda: tuple(
            c["computeEnvironmentName"]
            for c in paginate(batch, "describe_compute_environments", "computeEnvironments"))),
        job_queues=_guarded("batch:DescribeJobQueues", lambda: tuple(
            q["jobQueueName"] for q in paginate(batch, "describe_job_queues", "jobQueues"))),
        stack_limit=_guarded("cloudformation:DescribeAccountLimits", lambda: fetch_stack_limit(cloudformation)),
        stacks=_guarded("cloudformation:ListStacks", lambda: fetch_stacks(cloudformation)),
        data_repository=None if (bucket := data_repository_bucket(plan)) is None else
        fetch_bucket(client_for("s3"), bucket),
        placement_groups={pg: fetch_placement_group(ec2, pg) for pg in existing_placement_groups(plan)},
    )


def aws_clients(region: str, endpoint_url: str | None, profile: str | None = None) -> ClientFactory | None:
    """Clients from the AWS layer (profile, retries), or None where the chain finds no credentials at all."""
    from .. import aws

    target = aws.Target(region, profile, endpoint_url)
    s = aws.session(target)  # one credential chain for the check and every client
    return aws.client_factory(target, s) if aws.has_credentials(target, s) else None
