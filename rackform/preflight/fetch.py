"""Reading what preflight checks: every AWS call (boto3, through rackform.aws) and the probe of this machine's image
builds, each turned into the typed values of state.py. A failed call becomes an `ApiError` value, never an exception:
its check reads `unknown` (checks.py)."""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from .. import aws
from ..aws import PaginatingClient, paginate
from ..plan.models import Plan
from ..reference.catalog import is_zone_id
from .checks import custom_images, data_repository_bucket, existing_placement_groups
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

ClientFactory = Callable[[str], aws.BotoClient]  # service name -> boto3 client for the plan's Region
T = TypeVar("T")


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
    def describe_images(self, *, ImageIds: list[str]) -> dict[str, Any]: ...
    def describe_subnets(self, *, SubnetIds: list[str]) -> dict[str, Any]: ...
    def describe_route_tables(self, *, Filters: list[dict[str, Any]]) -> dict[str, Any]: ...
    def describe_vpc_endpoints(self, *, Filters: list[dict[str, Any]]) -> dict[str, Any]: ...
    def describe_security_groups(self, *, GroupIds: list[str]) -> dict[str, Any]: ...


class FsxClient(Protocol):
    def describe_file_systems(self, *, FileSystemIds: list[str]) -> dict[str, Any]: ...


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


def _placement_group_name(arn: str | None) -> str | None:
    # arn:aws:ec2:REGION:ACCOUNT:placement-group/NAME
    return arn.rsplit("/", 1)[-1] if arn else None


def reservation_from_api(r: Mapping[str, Any]) -> ReservationState:
    """One DescribeCapacityReservations entry -> what the checks read of it."""
    return ReservationState(
        reservation_type=r.get("ReservationType"), state=r["State"], instance_type=r["InstanceType"],
        availability_zone=r["AvailabilityZone"], availability_zone_id=r.get("AvailabilityZoneId"),
        total_instances=r["TotalInstanceCount"], available_instances=r["AvailableInstanceCount"],
        placement_group=_placement_group_name(r.get("PlacementGroupArn")), start=r.get("StartDate"),
        end=r.get("EndDate"))


def fetch_reservation(ec2: Ec2Client, rid: str) -> ReservationState | ApiError | None:
    found = _describe_one(
        "ec2:DescribeCapacityReservations",
        ("InvalidCapacityReservationId.NotFound", "InvalidCapacityReservationId.Malformed"),
        lambda: ec2.describe_capacity_reservations(CapacityReservationIds=[rid])["CapacityReservations"])
    return reservation_from_api(found) if isinstance(found, dict) else found


def fetch_placement_group(ec2: Ec2Client, name: str) -> PlacementGroupState | ApiError | None:
    found = _describe_one(
        "ec2:DescribePlacementGroups", ("InvalidPlacementGroup.Unknown", "InvalidPlacementGroup.NotFound"),
        lambda: ec2.describe_placement_groups(GroupNames=[name])["PlacementGroups"])
    return PlacementGroupState(found.get("State"), found.get("Strategy")) if isinstance(found, dict) else found


def fetch_image(ec2: Ec2Client, image: str) -> ImageState | ApiError | None:
    found = _describe_one("ec2:DescribeImages", ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"),
                          lambda: ec2.describe_images(ImageIds=[image])["Images"])
    if not isinstance(found, dict):
        return found
    return ImageState(state=found.get("State", ""), architecture=found.get("Architecture", ""),
                      name=found.get("Name", ""), description=found.get("Description", ""))


def _route_table(ec2: Ec2Client, subnet: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The subnet's route table: the one associated with it, else its VPC's main one
    (https://docs.aws.amazon.com/vpc/latest/userguide/VPC_Route_Tables.html)."""
    main = [{"Name": "vpc-id", "Values": [subnet["VpcId"]]}, {"Name": "association.main", "Values": ["true"]}]
    for filters in ([{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}], main):
        if tables := ec2.describe_route_tables(Filters=filters)["RouteTables"]:
            table: Mapping[str, Any] = tables[0]
            return table
    return None


ROUTE_TARGETS = ("NatGatewayId", "TransitGatewayId", "NetworkInterfaceId", "GatewayId", "VpcPeeringConnectionId")


def fetch_subnet(ec2: Ec2Client, subnet_id: str, region: str) -> SubnetState | ApiError | None:
    found = _describe_one("ec2:DescribeSubnets", ("InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"),
                          lambda: ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"])
    if not isinstance(found, dict):
        return found

    def read() -> SubnetState:
        routes = (_route_table(ec2, found) or {}).get("Routes", [])
        default = next((r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)
        target = next((default[k] for k in ROUTE_TARGETS if default and default.get(k)), None)
        endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [found["VpcId"]]}])
        interface = {e["ServiceName"] for e in endpoints["VpcEndpoints"] if e.get("VpcEndpointType") == "Interface"}
        return SubnetState(
            vpc_id=found["VpcId"], availability_zone=found["AvailabilityZone"],
            availability_zone_id=found.get("AvailabilityZoneId"), free_addresses=found["AvailableIpAddressCount"],
            default_route=target,
            s3_gateway_endpoint=any(r.get("GatewayId", "").startswith("vpce-") and r.get("DestinationPrefixListId")
                                    for r in routes),
            ecr_endpoints={f"com.amazonaws.{region}.ecr.api", f"com.amazonaws.{region}.ecr.dkr"} <= interface)

    return _guarded("ec2:DescribeRouteTables", read)


def _all_to_itself(group_id: str, rules: list[Mapping[str, Any]]) -> bool:
    return any(r.get("IpProtocol") == "-1" and any(p.get("GroupId") == group_id for p in r.get("UserIdGroupPairs", []))
               for r in rules)


def fetch_security_group(ec2: Ec2Client, group_id: str) -> SecurityGroupState | ApiError | None:
    found = _describe_one("ec2:DescribeSecurityGroups", ("InvalidGroup.NotFound", "InvalidGroupId.Malformed"),
                          lambda: ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"])
    if not isinstance(found, dict):
        return found
    return SecurityGroupState(vpc_id=found.get("VpcId", ""),
                              self_ingress=_all_to_itself(group_id, found.get("IpPermissions", [])),
                              self_egress=_all_to_itself(group_id, found.get("IpPermissionsEgress", [])))


def fetch_existing_network(ec2: Ec2Client, plan: Plan) -> ExistingNetworkState | None:
    mine = plan.network.existing
    if mine is None:
        return None
    return ExistingNetworkState(subnet=fetch_subnet(ec2, mine.subnet_id, plan.region),
                                security_groups={g: fetch_security_group(ec2, g) for g in mine.security_group_ids})


def fetch_file_system(fsx: FsxClient, file_system_id: str) -> FileSystemState | ApiError | None:
    found = _describe_one("fsx:DescribeFileSystems", ("FileSystemNotFound",),
                          lambda: fsx.describe_file_systems(FileSystemIds=[file_system_id])["FileSystems"])
    if not isinstance(found, dict):
        return found
    lustre = found.get("LustreConfiguration", {})
    return FileSystemState(file_system_type=found.get("FileSystemType", ""), lifecycle=found.get("Lifecycle", ""),
                           vpc_id=found.get("VpcId", ""), storage_capacity_gib=found.get("StorageCapacity", 0),
                           deployment_type=lustre.get("DeploymentType"),
                           per_unit_storage_throughput=lustre.get("PerUnitStorageThroughput"),
                           mount_name=lustre.get("MountName"))


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
        images={image: fetch_image(ec2, image) for image in custom_images(plan)},
        network=fetch_existing_network(ec2, plan),
        file_system=None if (fsx := plan.storage.fsx_lustre) is None or fsx.file_system_id is None else
        fetch_file_system(client_for("fsx"), fsx.file_system_id),
    )


def aws_clients(region: str, endpoint_url: str | None, profile: str | None = None) -> ClientFactory | None:
    """Clients from the AWS layer (profile, retries), or None where the chain finds no credentials at all."""
    target = aws.Target(region, profile, endpoint_url)
    s = aws.session(target)  # one credential chain for the check and every client
    return aws.client_factory(target, s) if aws.has_credentials(target, s) else None


# --- this machine: can `cdk deploy` build the arm64 image here? ----------------------------------------------

# An arm64 machine builds it natively; an x86_64 one only where the kernel runs arm64 programs through QEMU,
# registered with binfmt_misc (Docker Desktop registers it in its VM; elsewhere Docker's multi-platform guide
# installs it with `docker run --privileged --rm tonistiigi/binfmt --install arm64`,
# https://docs.docker.com/build/building/multi-platform/#qemu).
BINFMT_ARM64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


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
