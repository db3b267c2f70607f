"""What preflight reads, as plain typed values: the account's state as AWS answered (fetch.py reads it) and how this
machine builds images. The checks (checks.py) take these and the plan, so every rule is tested without AWS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ApiError:
    """A call that failed (no permission, throttled, unreachable): its check becomes `unknown`, never a crash."""

    action: str  # the IAM action that was refused or failed, e.g. servicequotas:GetServiceQuota
    message: str
    denied: bool = False  # refused for want of permission, rather than failed


@dataclass(frozen=True)
class QuotaValue:
    vcpus: float
    default: bool  # the account has no applied value; AWS's default was read instead


@dataclass(frozen=True)
class ReservationState:
    """A capacity reservation as DescribeCapacityReservations describes it: the fields the checks read."""

    reservation_type: str | None  # ReservationType: "default" (an ODCR) or "capacity-block"
    state: str
    instance_type: str
    availability_zone: str
    availability_zone_id: str | None
    total_instances: int
    available_instances: int
    placement_group: str | None  # the cluster placement group it was created in, by name; None: none
    start: dt.datetime | None
    end: dt.datetime | None  # None: no end date


@dataclass(frozen=True)
class PlacementGroupState:
    """A placement group as DescribePlacementGroups describes it."""

    state: str | None
    strategy: str | None


@dataclass(frozen=True)
class BucketState:
    """What S3 says of the data repository bucket (HeadBucket)."""

    exists: bool
    readable: bool  # False: S3 refused this account (403)
    region: str | None  # S3's x-amz-bucket-region; None where S3 did not say


@dataclass(frozen=True)
class ImageState:
    """An AMI as DescribeImages describes it: what tells its architecture and whether it is an ECS AMI."""

    state: str  # available, pending, failed, ...
    architecture: str  # arm64, x86_64, ...
    name: str
    description: str


@dataclass(frozen=True)
class SubnetState:
    """An existing subnet (spec network.subnet_id) as DescribeSubnets and its route table describe it."""

    vpc_id: str
    availability_zone: str
    availability_zone_id: str | None
    free_addresses: int  # AvailableIpAddressCount
    # Where the subnet's default route (0.0.0.0/0) goes: its target's id (nat-..., tgw-..., igw-..., eni-...);
    # None: no default route.
    default_route: str | None
    s3_gateway_endpoint: bool  # a route to S3's prefix list through a gateway endpoint (vpce-...)
    ecr_endpoints: bool  # interface endpoints for both ecr.api and ecr.dkr in the VPC


@dataclass(frozen=True)
class SecurityGroupState:
    """An existing security group: its VPC and whether it allows all traffic from and to itself."""

    vpc_id: str
    self_ingress: bool  # an inbound rule: all protocols, from this group
    self_egress: bool  # an outbound rule: all protocols, to this group


@dataclass(frozen=True)
class ExistingNetworkState:
    subnet: SubnetState | ApiError | None  # None: no such subnet
    security_groups: Mapping[str, SecurityGroupState | ApiError | None]  # None: no such group


@dataclass(frozen=True)
class FileSystemState:
    """An existing file system (spec storage.fsx_lustre.file_system_id) as DescribeFileSystems describes it."""

    file_system_type: str  # LUSTRE, ...
    lifecycle: str  # AVAILABLE, ...
    vpc_id: str
    storage_capacity_gib: int
    deployment_type: str | None
    per_unit_storage_throughput: int | None
    mount_name: str | None


@dataclass(frozen=True)
class AccountState:
    """Everything preflight reads from the account, so the checks need no AWS."""

    quotas: Mapping[str, QuotaValue | ApiError | None]  # quota code -> value; None: Service Quotas lacks the code
    reservations: Mapping[str, ReservationState | ApiError | None]  # reservation id -> it; None: not found
    offerings: Mapping[str, tuple[str, ...]] | ApiError  # instance type -> AZs of the Region offering it
    compute_environments: tuple[str, ...] | ApiError
    job_queues: tuple[str, ...] | ApiError
    stack_limit: int | None | ApiError  # None: DescribeAccountLimits did not list StackLimit
    stacks: tuple[str, ...] | ApiError  # names of stacks not deleted
    data_repository: BucketState | ApiError | None = None  # None: the spec links no bucket
    # placement group the spec names -> it; None: no such group
    placement_groups: Mapping[str, PlacementGroupState | ApiError | None] | None = None
    # the AMIs node groups name (image_id) -> it; None: no such image visible to this account
    images: Mapping[str, ImageState | ApiError | None] | None = None
    network: ExistingNetworkState | None = None  # None: rackform creates the network
    file_system: FileSystemState | ApiError | None = None  # None: no existing file system named, or none found


@dataclass(frozen=True)
class BuildHost:
    machine: str  # platform.machine()
    arm64: bool | None  # whether builds here can run arm64 programs; None: it could not be told
    how: str  # what said so
