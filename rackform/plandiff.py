"""`rackform plan NEW --against OLD`: what changes between two plans, and what CloudFormation would do to each stack.

Offline: the two specs are planned and compared, nothing is read from AWS. Which resources CloudFormation replaces
follows from the "Update requires" entry of each property in the CloudFormation resource reference:

- AWS::EC2::VPC `CidrBlock`: Replacement
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-ec2-vpc.html). A new VPC replaces
  what names it: subnets and security groups (`VpcId`: Replacement,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-ec2-subnet.html,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-ec2-securitygroup.html).
- AWS::EC2::Subnet `CidrBlock`, `AvailabilityZone`, `AvailabilityZoneId`: Replacement (the subnet page above).
- AWS::FSx::FileSystem `SubnetIds`: Replacement, so a new subnet is a new, empty file system; `StorageCapacity`: No
  interruption (FSx for Lustre only grows: a smaller size fails the update); `LustreConfiguration.DeploymentType`,
  `DriveCacheType` and `PerUnitStorageThroughput`: Replacement
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-fsx-filesystem.html,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-fsx-filesystem-lustreconfiguration.html).
  The storage type moves with the deployment type here (HDD is PERSISTENT_1 only).
- AWS::FSx::DataRepositoryAssociation `DataRepositoryPath`, `FileSystemPath` and `FileSystemId`: Replacement
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-fsx-datarepositoryassociation.html).
- AWS::EC2::PlacementGroup `Strategy` and `Tags`: Replacement
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-ec2-placementgroup.html).
- AWS::Batch::ComputeEnvironment `ComputeEnvironmentName`: Replacement; `ComputeResources` instance types, subnets,
  placement group, type (EC2/SPOT) and launch template: "Some interruptions", applied as a Batch infrastructure
  update because rackform sets `ReplaceComputeEnvironment: false`
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-batch-computeenvironment.html,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-batch-computeenvironment-computeresources.html,
  https://docs.aws.amazon.com/batch/latest/userguide/updating-compute-environments.html); `MaxvCpus` (the count):
  No interruption.
- AWS::EC2::LaunchTemplate `LaunchTemplateData`: No interruption (a new version)
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-ec2-launchtemplate.html).

Stack and construct ids derive from names (rackform.naming): a renamed rack or node group is a removal and an
addition, and a renamed cluster or another Region is a new set of stacks. A stack that leaves the app is deleted
with everything in it, except what the storage stack retains (the results bucket, FSx and its association).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .plan import NodeGroupPlan, Plan

# Node group fields that are the user's choices (the rest is derived from them: devices, IPs, prices, names), in
# the order a diff lists them, with what each change does to the rack stack's resources (see the module docstring
# for the sources).
GROUP_EFFECTS = {
    "instance_type": "compute environment: Batch infrastructure update (InstanceTypes); launch template: new "
                     "version; job definitions: new revisions",
    "count": "compute environment: MaxvCpus, no interruption",
    "tier": "compute environment: Batch infrastructure update (Ec2Configuration image type)",
    "efa_interfaces": "launch template: new version (network interfaces)",
    "efa_layout": "launch template: new version (network interfaces)",
    "capacity": "launch template: new version (capacity targeting); compute environment: Batch infrastructure "
                "update (Type EC2/SPOT) where on-demand and Spot swap",
    "placement_group": "compute environment: Batch infrastructure update (PlacementGroup)",
    "creates_placement_group": "placement group: created or deleted",
    "root_volume_gib": "launch template: new version (root volume)",
}
GROUP_FIELDS = tuple(GROUP_EFFECTS)

Action = Literal["create", "delete", "replace", "update", "unchanged"]


@dataclass(frozen=True)
class Change:
    sign: Literal["+", "-", "~"]
    what: str  # "rack gpu", "node group gpu/h100", "network", "storage"
    details: tuple[str, ...] = ()  # "count: 2 -> 4"


@dataclass
class StackEffect:
    stack: str
    action: Action
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlanDiff:
    changes: tuple[Change, ...]
    stacks: tuple[StackEffect, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [{"change": {"+": "added", "-": "removed", "~": "changed"}[c.sign], "what": c.what,
                             "details": list(c.details)} for c in self.changes],
                "stacks": [{"stack": s.stack, "action": s.action, "notes": s.notes} for s in self.stacks]}


def _value(v: Any) -> str:
    if hasattr(v, "model_dump"):
        v = {k: x for k, x in v.model_dump().items() if x is not None}
    return "none" if v is None else str(v)


def _field_changes(old: Any, new: Any, fields: tuple[str, ...]) -> list[str]:
    return [f"{f}: {_value(getattr(old, f))} -> {_value(getattr(new, f))}" for f in fields
            if getattr(old, f) != getattr(new, f)]


def _groups(plan: Plan) -> dict[tuple[str, str], NodeGroupPlan]:
    return {(g.rack, g.name): g for g in plan.node_groups()}


def _fsx_fields(plan: Plan) -> dict[str, Any]:
    fsx = plan.storage.fsx_lustre
    return {} if fsx is None else fsx.model_dump()


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    changes: list[Change] = []
    effects: dict[str, StackEffect] = {}

    def effect(stack: str, action: Action, note: str | None = None) -> None:
        e = effects.setdefault(stack, StackEffect(stack, "unchanged"))
        order = ["unchanged", "update", "replace", "create", "delete"]
        if order.index(action) > order.index(e.action):
            e.action = action
        if note:
            e.notes.append(note)

    old_stacks = [old.network.stack_name, old.storage.stack_name, *(r.stack_name for r in old.racks)]
    new_stacks = [new.network.stack_name, new.storage.stack_name, *(r.stack_name for r in new.racks)]
    if (old.name, old.region) != (new.name, new.region):
        # Other stack names or another Region: nothing is updated in place.
        changes.append(Change("~", "cluster", tuple(_field_changes(old, new, ("name", "region")))))
        for s in new_stacks:
            effect(s, "create", "new stack")
        for s in old_stacks:
            if s not in new_stacks or old.region != new.region:
                effect(s + ("" if old.region == new.region else f" ({old.region})"), "delete",
                       "deleted with its resources (the storage stack keeps the bucket and FSx: retained)")
        return PlanDiff(tuple(changes), tuple(effects.values()))

    net, storage = new.network.stack_name, new.storage.stack_name
    for s in new_stacks:
        effect(s, "unchanged")

    # --- network: a new VPC or subnet is felt by everything placed in it
    net_changes = _field_changes(old.network, new.network, ("vpc_cidr", "availability_zone", "interface_endpoints"))
    subnets_replaced = False
    if old.network.vpc_cidr != new.network.vpc_cidr:
        effect(net, "replace", "VPC replaced (CidrBlock), with its subnets and security groups (VpcId)")
        subnets_replaced = True
    if old.network.availability_zone != new.network.availability_zone:
        effect(net, "replace", "subnets replaced (AvailabilityZone / AvailabilityZoneId)")
        subnets_replaced = True
    if old.network.interface_endpoints != new.network.interface_endpoints:
        effect(net, "update", "interface endpoints created or deleted")
    if net_changes:
        changes.append(Change("~", "network", tuple(net_changes)))
    if subnets_replaced:
        if new.storage.fsx_lustre is not None and old.storage.fsx_lustre is not None:
            effect(storage, "replace", "FSx file system replaced (SubnetIds): a new, empty file system, the old "
                   "one retained; its data repository association replaced with it (FileSystemId)")
        for r in new.racks:
            effect(r.stack_name, "update", "compute environments: Batch infrastructure update (Subnets, security "
                   "groups); launch templates: new versions")

    # --- storage
    old_fsx, new_fsx = _fsx_fields(old), _fsx_fields(new)
    if old_fsx != new_fsx:
        if not old_fsx:
            changes.append(Change("+", "storage: FSx for Lustre"))
            effect(storage, "update", "FSx file system created")
        elif not new_fsx:
            changes.append(Change("-", "storage: FSx for Lustre"))
            effect(storage, "update", "FSx file system leaves the template and is retained (not deleted): delete "
                   "it by hand when its data is no longer needed")
        else:
            changed = [k for k in old_fsx if old_fsx[k] != new_fsx[k]]
            changes.append(Change("~", "storage: FSx for Lustre", tuple(
                f"{k}: {_value(old_fsx[k])} -> {_value(new_fsx[k])}" for k in changed)))
            replaced = [k for k in changed if k in ("deployment_type", "storage_type", "drive_cache_type",
                                                    "per_unit_storage_throughput")]
            if replaced:
                effect(storage, "replace", f"FSx file system replaced ({', '.join(replaced)}): a new, empty file "
                       "system; the old one is retained")
            if "storage_capacity_gib" in changed:
                grows = new_fsx["storage_capacity_gib"] > old_fsx["storage_capacity_gib"]
                effect(storage, "update", "FSx storage capacity grows in place (no interruption)" if grows else
                       "FSx cannot shrink: CloudFormation's update fails; create a new file system instead")
            if {"data_repository_path", "mount_path"} & set(changed):
                effect(storage, "replace", "data repository association replaced (DataRepositoryPath)")
            if "mount_path" in changed:
                for r in new.racks:
                    effect(r.stack_name, "update", "launch templates: new versions (mount path)")

    # --- racks and node groups
    old_racks, new_racks = {r.name: r for r in old.racks}, {r.name: r for r in new.racks}
    for name, r in new_racks.items():
        if name not in old_racks:
            changes.append(Change("+", f"rack {name}", (f"{len(r.node_groups)} node groups",)))
            effect(r.stack_name, "create", "new stack")
    for name, r in old_racks.items():
        if name not in new_racks:
            changes.append(Change("-", f"rack {name}", (f"{len(r.node_groups)} node groups",)))
            effect(r.stack_name, "delete", "the stack and every resource in it are deleted (no other stack changes)")
    old_groups, new_groups = _groups(old), _groups(new)
    for (rack, group), g in new_groups.items():
        if rack not in old_racks:
            continue
        stack = new_racks[rack].stack_name
        if (rack, group) not in old_groups:
            changes.append(Change("+", f"node group {rack}/{group}", (f"{g.count} x {g.instance_type}",)))
            effect(stack, "update", f"{group}: launch template, compute environment, job queue, job definitions "
                   "created")
            continue
        before = old_groups[(rack, group)]
        fields = [f for f in GROUP_FIELDS if getattr(before, f) != getattr(g, f)]
        if fields:
            changes.append(Change("~", f"node group {rack}/{group}", tuple(_field_changes(before, g, tuple(fields)))))
            if before.creates_placement_group and g.creates_placement_group and before.placement_group != \
                    g.placement_group:
                effect(stack, "replace", f"{group}: placement group replaced (Tags)")
            for f in fields:
                effect(stack, "update", f"{group}: {GROUP_EFFECTS[f]}")
    for (rack, group), g in old_groups.items():
        if rack in new_racks and (rack, group) not in new_groups:
            changes.append(Change("-", f"node group {rack}/{group}", (f"{g.count} x {g.instance_type}",)))
            effect(new_racks[rack].stack_name, "update", f"{group}: its resources are deleted")
    return PlanDiff(tuple(changes), tuple(effects.values()))


def render_diff(diff: PlanDiff, old_name: str, new_name: str) -> str:
    lines = [f"plan {new_name} against {old_name}:"]
    if not diff.changes:
        return "\n".join(lines + ["  no changes: every stack stays as it is"])
    for c in diff.changes:
        lines.append(f"  {c.sign} {c.what}" + (f": {'; '.join(c.details)}" if c.details else ""))
    lines += ["", "stacks (what CloudFormation would do, from each property's 'Update requires'):"]
    width = max(len(s.stack) for s in diff.stacks)
    for s in diff.stacks:
        lines.append(f"  {s.stack:<{width}}  {s.action}")
        lines += [f"  {'':<{width}}    {n}" for n in dict.fromkeys(s.notes)]
    return "\n".join(lines)
