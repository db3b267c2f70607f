"""The plan: the pure result of a valid spec and the catalog, which everything downstream reads.

Stacks translate it into CloudFormation, `rackform plan` prints it, cost and preflight (later) sum it. Nothing here
touches AWS or CDK; the same spec and catalog always give the same plan.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Literal

from ..capacity import CapacityKind
from ..capacity import of as capacity_kind
from ..reference.aws_limits import vcpu_quota
from ..reference.catalog import Catalog, InstanceType
from ..reference.prices import PriceBook, on_demand
from ..spec.base import Frozen
from ..spec.models import EfaLayout, FsxLustre, Healing, NodeGroup, Results, Spec, Tier
from . import naming, netmath

# Interface endpoints put one ENI (one IP) in the subnet each. ECR and Logs carry the heavy traffic (image layers,
# job logs); everything else goes out through NAT.
INTERFACE_ENDPOINTS: tuple[str, ...] = ("ecr.api", "ecr.dkr", "logs")

# The ECS-optimized AL2023 AMI of each tier, as the SSM public parameter resolved at deploy time (Batch needs an ECS
# AMI). Names from the ECS guide
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/retrieve-ecs-optimized_AMI.html) and AWS's release
# tooling (github.com/aws/amazon-ecs-ami, generate-release-notes.sh). The GPU and Neuron variants exist for x86_64
# only, so an arm64 accelerator type has no ECS AMI (tests/stacks/test_user_data.py checks the catalog). None of the
# four installs the EFA software: cdk_constructs/user_data.py adds it. Batch's image type is ECS_AL2023_NVIDIA for GPU
# families, ECS_AL2023 otherwise (https://docs.aws.amazon.com/batch/latest/APIReference/API_Ec2Configuration.html).
ECS_AL2023_AMI = {
    "graviton": "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id",
    "trainium": "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id",
    "gpu": "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id",
    "cpu": "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
}
BATCH_IMAGE_TYPE = {"graviton": "ECS_AL2023", "trainium": "ECS_AL2023", "gpu": "ECS_AL2023_NVIDIA",
                    "cpu": "ECS_AL2023"}


class NetworkInterfacePlan(Frozen):
    network_card_index: int
    device_index: int
    interface_type: Literal["interface", "efa", "efa-only"]

    @property
    def has_ip(self) -> bool:
        return self.interface_type != "efa-only"

    @property
    def is_efa(self) -> bool:
        return self.interface_type != "interface"


class QuotaPlan(Frozen):
    code: str | None
    name: str
    vcpus: int


class CapacityPlan(Frozen):
    type: CapacityKind
    reservation_id: str | None = None
    # The compute environment's AllocationStrategy; None: the kind's default (rackform/capacity.py).
    allocation_strategy: str | None = None

    @property
    def batch_allocation_strategy(self) -> str:
        return self.allocation_strategy or capacity_kind(self.type).batch_allocation_strategy


# The ECS agent registers less memory than the instance has (kernel, platform overhead, ECS_RESERVED_MEMORY), and a
# job asking for more than it registered is never placed; AWS recommends keeping 5% back for the agent and the
# system. rackform keeps 10%, at least 2 GiB.
# https://docs.aws.amazon.com/batch/latest/userguide/memory-management.html
# https://docs.aws.amazon.com/batch/latest/userguide/ecs-reserved-memory.html
MEMORY_RESERVED_FRACTION = 0.1
MEMORY_RESERVED_MIN_MIB = 2048


class InstanceStorePlan(Frozen):
    """The type's NVMe instance store (catalog: InstanceStorageInfo) and what the node group does with it."""

    disks: int  # NVMe instance store disks per node; 0: the type has none
    size_gb: int  # all of them together per node, in GB as EC2 states it (TotalSizeInGB)
    # Where every node mounts them, one RAID0 volume when disks > 1, and jobs see it (their work directory); None:
    # not used (no disks, or the spec's instance_store.enabled: false).
    mount_path: str | None

    @property
    def summary(self) -> str:
        """What `plan` says about it: the volume and its path, or why there is none."""
        if not self.disks:
            return "none: the type has no NVMe instance store"
        disks = f"{self.disks} NVMe disk{'s' * (self.disks > 1)}, {self.size_gb:,} GB"
        if self.mount_path is None:
            return f"off (instance_store.enabled: false): {disks} unused"
        layout = "RAID0 of " if self.disks > 1 else ""
        return f"{layout}{disks}, XFS at {self.mount_path} (jobs' work directory); in the instance price"


class NodeGroupPlan(Frozen):
    name: str
    rack: str
    resource_name: str  # base of the AWS names below, unique across the cluster
    tier: Tier
    architecture: Literal["arm64", "x86_64"]
    instance_type: str
    count: int
    vcpus_per_node: int
    # Nodes kept running with no job (the compute environment's MinvCpus / vcpus_per_node); 0: scales to zero.
    min_count: int = 0
    memory_mib_per_node: int
    gpus_per_node: int
    neuron_devices_per_node: int
    neuron_cores_per_node: int  # physical NeuronCores: one collective rank each (fewer with logical cores, LNC)
    efa_interfaces: int
    efa_layout: EfaLayout | None  # None: no EFA
    network_interfaces: tuple[NetworkInterfacePlan, ...]
    devices: tuple[str, ...]  # container device paths a Batch job on this group needs
    ips_per_node: int
    ips: int
    quota: QuotaPlan
    # The cluster placement group the instances launch into, or None. With creates_placement_group the stack creates
    # it and this is its Name tag (CloudFormation cannot name a placement group); without, it is the name of an
    # existing group the spec gave, which the compute environment uses as is.
    placement_group: str | None
    creates_placement_group: bool
    capacity: CapacityPlan
    root_volume_gib: int
    instance_store: InstanceStorePlan
    # On-Demand $/hour of one node from the price snapshot; None when unknown (never 0). Spot, reservations and
    # capacity blocks are priced by `rackform cost`, which takes user-given prices.
    on_demand_usd_per_hour: float | None
    ami_ssm_parameter: str
    # The group's own AMI (spec image_id), used instead of the one ami_ssm_parameter names; None: that one.
    image_id: str | None = None
    batch_image_type: str
    compute_environment: str
    job_queue: str
    launch_template: str


    @property
    def job_memory_mib(self) -> int:
        """The memory a job on one node may ask for: what rackform's job definitions give it (rackform.jobs.jobdefs)
        and what placement checks a workload against."""
        return self.memory_mib_per_node - max(MEMORY_RESERVED_MIN_MIB,
                                              int(self.memory_mib_per_node * MEMORY_RESERVED_FRACTION))

    @property
    def min_vcpus(self) -> int:
        """The compute environment's MinvCpus: Batch keeps this many vCPUs of instances running even with no job
        (https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeResource.html)."""
        return self.min_count * self.vcpus_per_node

    @property
    def max_job_nodes(self) -> int:
        """Nodes one Batch job may span: multi-node parallel jobs cannot run on Spot."""
        return self.count if capacity_kind(self.capacity.type).multi_node else 1


class HealingPlan(Frozen):
    """The rack's repair loop, when the spec enables it (cdk_constructs/repair.py builds it)."""

    email: str | None
    max_fraction_per_hour: float
    # EventBridge Scheduler's rate expression for the idle checks
    # (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#rate-based), and the node groups
    # that get them (none: no schedule)
    idle_check_rate: str
    idle_checked: tuple[str, ...]
    # The "jobs stuck RUNNABLE" alarm's threshold (cdk_constructs/telemetry.py); None: no such alarm
    stuck_runnable_minutes: int | None


# Idle checks where the spec gives no interval: on node groups with warm nodes only, which are up anyway.
DEFAULT_IDLE_CHECK = "6h"
# How often the rack's queue-depth function (workloads/queue_depth.py) samples its Batch queues: a job that waits
# RUNNABLE longer than a Batch scale-up (minutes) is seen within one interval, and at 5 minutes the function costs
# cents a month (docs/self-healing.md has the figures).
QUEUE_DEPTH_INTERVAL_MINUTES = 5


def healing_plan(healing: Healing, groups: Sequence[NodeGroup]) -> HealingPlan | None:
    if not healing.enabled:
        return None
    every = healing.idle_check_every or DEFAULT_IDLE_CHECK
    count, unit = int(every[:-1]), {"h": "hour", "d": "day"}[every[-1]]
    checked = [g.name for g in groups if healing.idle_check_every or g.min_count > 0]
    return HealingPlan(email=healing.email, max_fraction_per_hour=healing.max_fraction_per_hour,
                       idle_check_rate=f"rate({count} {unit}{'s' * (count > 1)})", idle_checked=tuple(checked),
                       stuck_runnable_minutes=healing.stuck_runnable_minutes)


class RackPlan(Frozen):
    name: str
    stack_name: str
    node_groups: tuple[NodeGroupPlan, ...]
    healing: HealingPlan | None = None  # None: the rack has no repair loop (spec `healing: {enabled: false}`)


class SubnetPlan(Frozen):
    cidr_mask: int
    usable_ips: int


class ExistingNetworkPlan(Frozen):
    """The VPC, subnet and security groups a spec brings (network.vpc_id...): used as they are, never created."""

    vpc_id: str
    subnet_id: str
    security_group_ids: tuple[str, ...]


class NetworkPlan(Frozen):
    stack_name: str
    vpc_cidr: str
    availability_zone: str  # as the spec wrote it: an AZ name, or an AZ ID (then the subnets are placed by ID)
    availability_zone_id: str | None  # the AZ ID, where known for every account (see Catalog.zone_id)
    private_subnet: SubnetPlan
    public_subnet: SubnetPlan
    ips_needed: int  # in the private subnet: nodes, Batch task ENIs, FSx, endpoints
    interface_endpoints: tuple[str, ...]
    # The spec's own network: no network stack is built, and nodes and FSx go into its subnet and groups; the CIDR
    # and subnet sizes above then describe nothing deployed (`rackform preflight` reads the subnet instead).
    existing: ExistingNetworkPlan | None = None


class StoragePlan(Frozen):
    stack_name: str
    fsx_lustre: FsxLustre | None
    fsx_ips: int
    results: Results


class Plan(Frozen):
    name: str
    region: str
    availability_zone: str
    availability_zone_id: str | None
    catalog_generated_on: str
    network: NetworkPlan
    storage: StoragePlan
    racks: tuple[RackPlan, ...]

    def node_groups(self) -> list[NodeGroupPlan]:
        return [g for r in self.racks for g in r.node_groups]

    def stack_names(self) -> list[str]:
        """Every stack the plan deploys, in deploy order: no network stack into an existing network."""
        network = [] if self.network.existing is not None else [self.network.stack_name]
        return [*network, self.storage.stack_name, *(r.stack_name for r in self.racks)]

    def rack(self, name: str) -> RackPlan | None:
        return next((r for r in self.racks if r.name == name), None)


# --- pure functions the validators reuse ---------------------------------------------------------------------

def efa_enabled(group: NodeGroup, it: InstanceType) -> bool:
    return it.efa_supported if group.efa is None else group.efa


def instance_store_enabled(group: NodeGroup, it: InstanceType) -> bool:
    """Whether the group's nodes use their NVMe instance store: by default wherever the type has it."""
    nvme = it.instance_store_disks > 0 and it.instance_store_nvme
    return nvme if group.instance_store.enabled is None else group.instance_store.enabled


def nic_layout(it: InstanceType, layout: EfaLayout | None) -> tuple[NetworkInterfacePlan, ...]:
    """The launch template's interfaces: the primary on card 0, device 0, then one EFA interface on each further
    EFA-capable card, up to the type's maximum number of EFA interfaces; without a layout (no EFA) the primary alone.

    EC2 refuses a launch template without an interface on card 0, device 0, and never lets it be `efa-only`.
    `efa-only` is the layout AWS recommends for types with several network cards
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-acc-inst-types.html, the P5/P5e configuration that
    saves IP addresses): an ENA primary, an `efa-only` interface on card 0, device 1 where card 0 takes EFA, and
    `efa-only` on device 0 of every further card; only the primary has an IP. `efa` is the layout of AWS's own Batch
    samples (awsome-distributed-training, aws-neuron-samples): the primary is `efa` where card 0 takes EFA and a
    plain `interface` where it does not (p6-b300: card 0 is ENA only, EFA sits on cards 1-16), further cards carry
    `efa` on device 1, and every interface has an IP.
    """
    card0 = next((c for c in it.network_cards if c.index == 0), None)
    card0_efa = (layout is not None and card0 is not None and "efa" in card0.interface_kinds
                 and it.max_efa_interfaces > 0)
    primary = NetworkInterfacePlan(network_card_index=0, device_index=0,
                                   interface_type="efa" if card0_efa and layout == "efa" else "interface")
    if layout is None:
        return (primary,)
    first = ((NetworkInterfacePlan(network_card_index=0, device_index=1, interface_type="efa-only"),)
             if card0_efa and layout == "efa-only" else ())
    others = [c for c in it.network_cards if c.index != 0 and layout in c.interface_kinds]
    room = it.max_efa_interfaces - (1 if card0_efa else 0)
    device = 0 if layout == "efa-only" else 1
    return (primary, *first, *(NetworkInterfacePlan(network_card_index=c.index, device_index=device,
                                                    interface_type=layout) for c in others[:max(room, 0)]))


def card0_free_slots(it: InstanceType, nics: tuple[NetworkInterfacePlan, ...]) -> int:
    """Interfaces network card 0 still takes after `nics`. The ENI that AWS Batch attaches to each node of a
    multi-node job (awsvpc mode) goes there: AttachNetworkInterface's card index defaults to 0
    (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AttachNetworkInterface.html)."""
    card0 = next((c for c in it.network_cards if c.index == 0), None)
    limit = card0.max_interfaces if card0 is not None else it.max_network_interfaces
    return limit - sum(1 for n in nics if n.network_card_index == 0)


def default_efa_layout(it: InstanceType) -> EfaLayout:
    """AWS's recommended `efa-only` layout where card 0 keeps a slot for the Batch task ENI beside it; `efa` where
    it does not (p5, p5e, trn2: two interfaces on card 0, which `efa-only` fills with the ENA primary and its EFA)."""
    return "efa-only" if card0_free_slots(it, nic_layout(it, "efa-only")) > 0 else "efa"


def efa_layout(group: NodeGroup, it: InstanceType) -> EfaLayout | None:
    if not efa_enabled(group, it):
        return None
    return group.efa_interfaces or default_efa_layout(it)


def placement_group_of(spec: Spec, rack: str, group: NodeGroup, efa: bool) -> tuple[str | None, bool]:
    """(name, rackform creates it) of the group's cluster placement group, (None, False) for none.

    By default only EFA groups on On-Demand or Spot capacity get a new one (AWS Batch wants all EFA instances of a
    job in one cluster placement group, https://docs.aws.amazon.com/batch/latest/userguide/efa.html). Reservations
    and Capacity Blocks get none: a Capacity Reservation created in a cluster placement group serves only launches
    into that group (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cr-cpg.html), so a new group could never
    use it, and AWS places Capacity Block instances together itself
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-capacity-blocks.html).
    """
    choice = group.placement_group
    if choice is not None and choice.name is not None:
        return choice.name, False
    create = (choice.create if choice is not None and choice.create is not None
              else efa and capacity_kind(group.capacity.type).placement == "cluster-group")
    return (naming.placement_group(spec.name, rack, group.name), True) if create else (None, False)


def container_devices(it: InstanceType, efa_interfaces: int) -> tuple[str, ...]:
    # GPUs are not listed: Batch exposes them through ResourceRequirements GPU. Neuron has no Batch resource type.
    uverbs = [f"/dev/infiniband/uverbs{i}" for i in range(efa_interfaces)]
    neuron = [f"/dev/neuron{i}" for i in range(it.neuron_devices)]
    return tuple(uverbs + neuron)


def node_group_plan(spec: Spec, rack: str, group: NodeGroup, it: InstanceType,
                    prices: PriceBook | None = None) -> NodeGroupPlan:
    efa = efa_enabled(group, it)
    layout = efa_layout(group, it)
    nics = nic_layout(it, layout)
    efa_count = sum(1 for n in nics if n.is_efa)
    per_node_ips = netmath.ips_per_node(sum(1 for n in nics if n.has_ip))
    quota = vcpu_quota(it.name, spot=capacity_kind(group.capacity.type).spot_quota)
    quote = on_demand(prices, spec.region, it.name) if prices else None
    placement_group, creates_placement_group = placement_group_of(spec, rack, group, efa)
    return NodeGroupPlan(
        name=group.name,
        rack=rack,
        resource_name=naming.node_group(spec.name, rack, group.name),
        tier=it.tier,
        architecture=it.architecture,
        instance_type=it.name,
        count=group.count,
        vcpus_per_node=it.vcpus,
        min_count=group.min_count,
        memory_mib_per_node=it.memory_mib,
        gpus_per_node=it.gpus,
        neuron_devices_per_node=it.neuron_devices,
        neuron_cores_per_node=it.neuron_cores,
        efa_interfaces=efa_count,
        efa_layout=layout,
        network_interfaces=nics,
        devices=container_devices(it, efa_count),
        ips_per_node=per_node_ips,
        ips=per_node_ips * group.count,
        quota=QuotaPlan(code=quota.code, name=quota.name, vcpus=it.vcpus * group.count),
        placement_group=placement_group,
        creates_placement_group=creates_placement_group,
        capacity=CapacityPlan(type=group.capacity.type, reservation_id=group.capacity.reservation_id,
                              allocation_strategy=group.capacity.allocation_strategy
                              or capacity_kind(group.capacity.type).batch_allocation_strategy),
        root_volume_gib=group.root_volume_gib,
        instance_store=InstanceStorePlan(
            disks=it.instance_store_disks if it.instance_store_nvme else 0, size_gb=it.instance_store_gb,
            mount_path=group.instance_store.mount_path if instance_store_enabled(group, it) else None),
        on_demand_usd_per_hour=quote.usd if quote else None,
        ami_ssm_parameter=ECS_AL2023_AMI[it.tier],
        image_id=group.image_id,
        batch_image_type=BATCH_IMAGE_TYPE[it.tier],
        compute_environment=naming.compute_environment(spec.name, rack, group.name),
        job_queue=naming.job_queue(spec.name, rack, group.name),
        launch_template=naming.launch_template(spec.name, rack, group.name),
    )


def created_fsx(spec: Spec) -> FsxLustre | None:
    """The file system rackform creates: None without one, or when the spec mounts an existing one."""
    fsx = spec.storage.fsx_lustre
    return fsx if fsx is not None and fsx.file_system_id is None else None


def private_ips_needed(spec: Spec, groups: list[NodeGroupPlan], endpoints: int | None = None) -> int:
    """`endpoints`: the interface endpoints' addresses, by default those the spec asks rackform to create. An
    existing file system's addresses are taken already (the subnet's free count leaves them out)."""
    fsx = created_fsx(spec)
    if endpoints is None:
        endpoints = len(INTERFACE_ENDPOINTS) if spec.network.interface_endpoints else 0
    return netmath.private_ips_needed(
        (g.ips for g in groups), fsx_capacity_gib=fsx.storage_capacity_gib if fsx else None, endpoints=endpoints)


def build_plan(spec: Spec, catalog: Catalog, prices: PriceBook | None = None) -> Plan:
    """Spec + catalog (+ price snapshot) -> plan. The spec must have passed validation. Without `prices` every
    On-Demand price in the plan is unknown (None); rackform.pipeline passes the bundled snapshot."""
    racks = tuple(
        RackPlan(
            name=r.name,
            stack_name=naming.rack_stack(spec.name, r.name),
            node_groups=tuple(node_group_plan(spec, r.name, g, catalog.instance_types[g.instance_type], prices)
                              for g in r.node_groups),
            healing=healing_plan(r.healing, r.node_groups),
        )
        for r in spec.racks
    )
    net = spec.network
    existing = None if net.vpc_id is None or net.subnet_id is None or net.security_group_ids is None else \
        ExistingNetworkPlan(vpc_id=net.vpc_id, subnet_id=net.subnet_id,
                            security_group_ids=tuple(net.security_group_ids))
    endpoints = INTERFACE_ENDPOINTS if net.interface_endpoints and existing is None else ()
    needed = private_ips_needed(spec, [g for r in racks for g in r.node_groups], endpoints=len(endpoints))
    prefix = netmath.private_subnet_prefix(spec.network.vpc_cidr)
    zone_id = catalog.zone_id(spec.region, spec.availability_zone)
    network = NetworkPlan(
        stack_name=naming.network_stack(spec.name),
        vpc_cidr=str(ipaddress.ip_network(spec.network.vpc_cidr, strict=False)),
        availability_zone=spec.availability_zone,
        availability_zone_id=zone_id,
        private_subnet=SubnetPlan(cidr_mask=prefix, usable_ips=netmath.usable_ips(prefix)),
        public_subnet=SubnetPlan(cidr_mask=netmath.PUBLIC_SUBNET_PREFIX,
                                 usable_ips=netmath.usable_ips(netmath.PUBLIC_SUBNET_PREFIX)),
        ips_needed=needed,
        interface_endpoints=endpoints,
        existing=existing,
    )
    created = created_fsx(spec)
    storage = StoragePlan(stack_name=naming.storage_stack(spec.name), fsx_lustre=spec.storage.fsx_lustre,
                          results=spec.storage.results,
                          fsx_ips=netmath.fsx_ips(created.storage_capacity_gib if created else None))
    return Plan(name=spec.name, region=spec.region, availability_zone=spec.availability_zone,
                availability_zone_id=zone_id, catalog_generated_on=catalog.generated_on, network=network,
                storage=storage, racks=racks)
