"""`rackform plan NEW --against OLD`: what changes between two plans, and what CloudFormation would do to each stack.

Offline: the two specs are planned and compared, nothing is read from AWS. What a change replaces follows from the
"Update requires" entry of each property in the CloudFormation resource reference, and the deploy steps from how
CloudFormation updates (`PlanDiff.steps`).
Why, and every property's page: docs/decisions/0002-plan-diff-from-update-requires.md
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from . import naming
from .models import NodeGroupPlan, Plan

# Node group fields that are the user's choices (the rest is derived from them: devices, IPs, prices, names), in
# the order a diff lists them, with what each change does to the rack stack's resources (the sources: the decision
# record the module docstring names).
GROUP_EFFECTS = {
    "instance_type": "compute environment: Batch infrastructure update (InstanceTypes); launch template: new "
                     "version; job definitions: new revisions",
    "count": "compute environment: MaxvCpus, no interruption",
    "min_count": "compute environment: MinvCpus, no interruption (warm nodes launch or end)",
    "tier": "compute environment: Batch infrastructure update (Ec2Configuration image type)",
    "efa_interfaces": "launch template: new version (network interfaces)",
    "efa_layout": "launch template: new version (network interfaces)",
    "capacity": "launch template: new version (capacity targeting); compute environment: Batch infrastructure "
                "update (Type EC2/SPOT) where on-demand and Spot swap, or of AllocationStrategy",
    "placement_group": "compute environment: Batch infrastructure update (PlacementGroup)",
    "creates_placement_group": "placement group: created or deleted",
    "root_volume_gib": "launch template: new version (root volume)",
    "instance_store": "launch template: new version (user data: the scratch volume); job definitions: new revisions "
                      "(its mount)",
}
GROUP_FIELDS = tuple(GROUP_EFFECTS)
# FSx settings whose change replaces the file system (the storage type moves with the deployment type).
FSX_REPLACED_BY = ("deployment_type", "storage_type", "drive_cache_type", "per_unit_storage_throughput",
                   "file_system_id")  # another file system altogether

# "fails": CloudFormation would refuse the update and roll the stack back; the notes say why and what deploys.
Action = Literal["create", "delete", "replace", "update", "unchanged", "fails"]


@dataclass(frozen=True)
class PlanChange:
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
    changes: tuple[PlanChange, ...]
    stacks: tuple[StackEffect, ...]
    steps: tuple[str, ...] = ()  # what the user runs, in order; or, first, why it cannot be deployed as written
    deployable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [{"change": {"+": "added", "-": "removed", "~": "changed"}[c.sign], "what": c.what,
                             "details": list(c.details)} for c in self.changes],
                "stacks": [{"stack": s.stack, "action": s.action, "notes": s.notes} for s in self.stacks],
                "deployable": self.deployable, "steps": list(self.steps)}


def _value(v: object) -> str:
    if hasattr(v, "model_dump"):
        v = {k: x for k, x in v.model_dump().items() if x is not None}
    return "none" if v is None else str(v)


def _field_changes(old: object, new: object, fields: tuple[str, ...]) -> list[str]:
    return [f"{f}: {_value(getattr(old, f))} -> {_value(getattr(new, f))}" for f in fields
            if getattr(old, f) != getattr(new, f)]


def _groups(plan: Plan) -> dict[tuple[str, str], NodeGroupPlan]:
    return {(g.rack, g.name): g for g in plan.node_groups()}


def _fsx_fields(plan: Plan) -> dict[str, Any]:
    fsx = plan.storage.fsx_lustre
    return {} if fsx is None else fsx.model_dump()


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    changes: list[PlanChange] = []
    effects: dict[str, StackEffect] = {}

    def effect(stack: str, action: Action, note: str | None = None) -> None:
        e = effects.setdefault(stack, StackEffect(stack, "unchanged"))
        order = ["unchanged", "update", "replace", "create", "delete", "fails"]
        if order.index(action) > order.index(e.action):
            e.action = action
        if note:
            e.notes.append(note)

    old_stacks, new_stacks = old.stack_names(), new.stack_names()
    if (old.name, old.region) != (new.name, new.region):
        # Other stack names or another Region: nothing is updated in place.
        changes.append(PlanChange("~", "cluster", tuple(_field_changes(old, new, ("name", "region")))))
        for s in new_stacks:
            effect(s, "create", "new stack")
        for s in old_stacks:
            if s not in new_stacks or old.region != new.region:
                effect(s + ("" if old.region == new.region else f" ({old.region})"), "delete",
                       "deleted with its resources (the storage stack keeps the bucket and FSx: retained)")
        steps = ("cdk deploy --all -c spec=<new spec>: the new cluster's stacks, beside the old ones",
                 "cdk destroy --all -c spec=<old spec> when the old cluster is no longer needed: racks, storage, "
                 "network in that order; the storage stack is termination-protected (aws cloudformation "
                 f"update-termination-protection --no-enable-termination-protection --stack-name "
                 f"{old.storage.stack_name} first)")
        return PlanDiff(tuple(changes), tuple(effects.values()), steps)

    net, storage = new.network.stack_name, new.storage.stack_name
    for s in new_stacks:
        effect(s, "unchanged")
    racks = [r.stack_name for r in new.racks]
    refused: list[str] = []  # why the deploy would fail
    first: list[str] = []  # what to do before `cdk deploy`
    then: list[str] = []  # and after it
    params = naming.parameter(new.name, "")  # the SSM parameters' prefix

    def each_rack(note: str) -> None:
        for r in racks:
            effect(r, "update", note)

    # --- network: a new VPC or subnet is felt by everything placed in it
    had_fsx, has_fsx = old.storage.fsx_lustre is not None, new.storage.fsx_lustre is not None
    old_mine, new_mine = old.network.existing, new.network.existing
    if old_mine is not None or new_mine is not None:
        # Into or out of an existing network (spec network.vpc_id): rackform's VPC, CIDR and endpoints are not
        # compared; the subnet and groups the nodes and the file system use are.
        if old_mine != new_mine:
            changes.append(PlanChange("~", "network", (f"existing: {_value(old_mine)} -> {_value(new_mine)}",)))
            if old_mine is None:
                effect(old.network.stack_name, "delete", "no network stack into an existing network: its VPC, "
                       "subnets, NAT gateway, endpoints and security groups are deleted after the racks move"
                       + ("; the deletion fails on the private subnet, FSx security group and VPC while the retained "
                          "old file system's interfaces use them: delete that file system first" if had_fsx else ""))
            elif new_mine is None:
                effect(net, "create", "a VPC of rackform's, in place of the existing network")
            if had_fsx and has_fsx:
                effect(storage, "replace", "FSx file system replaced (SubnetIds, SecurityGroupIds): a new, empty file "
                       "system in the new subnet, the old one retained with its data")
            each_rack("launch templates: new versions (subnet and security groups); compute environments: Batch "
                      "infrastructure update")
            first.append("wait until no job runs and the compute environments are down to 0 instances: running "
                         "instances keep the old subnet and security groups in use")
        new_vpc = new_subnets = False
    else:
        net_changes = _field_changes(old.network, new.network, ("vpc_cidr", "availability_zone",
                                                                "interface_endpoints"))
        if net_changes:
            changes.append(PlanChange("~", "network", tuple(net_changes)))
        new_vpc = old.network.vpc_cidr != new.network.vpc_cidr
        new_subnets = new_vpc or old.network.availability_zone != new.network.availability_zone
    if new_subnets and not new_vpc:
        # CloudFormation creates a replacement before it deletes the old resource, and in the same VPC the new
        # subnets take the CIDR blocks the old ones hold.
        effect(net, "fails", "the subnets would be replaced (AvailabilityZone / AvailabilityZoneId) by subnets with "
               "the same CIDR blocks in the same VPC, created before the old ones are deleted: EC2 refuses a subnet "
               "that overlaps another (CreateSubnet), and the update rolls back. Change vpc_cidr in the same edit "
               "(a new VPC: then it deploys)")
        refused.append(f"a new availability zone needs a new vpc_cidr too ({net})")
    elif new_vpc:
        effect(net, "replace", f"a new VPC with its subnets, route tables, NAT gateway, endpoints and security groups "
               f"(CidrBlock, VpcId: Replacement); the SSM parameters {params}network/* then name them; the old ones "
               "are deleted at the "
               "end of this update")
        if had_fsx:
            effect(net, "replace", "except the old private subnet, FSx security group and VPC: the old file system's "
                   "network interfaces keep them in use, so CloudFormation's three tries to delete them fail, it "
                   "drops them from the stack (DELETE_FAILED) and completes the update; they remain in the account")
        if had_fsx and has_fsx:
            effect(storage, "replace", "FSx file system replaced (SubnetIds): a new, empty file "
                   "system in the new subnet, the old one retained with its data; its data repository association "
                   f"replaced with it (FileSystemId); the SSM parameters {params}storage/lustre-* name the new one")
        each_rack("launch templates: new versions (subnet, node security group" + (", file system" if has_fsx else "")
                  + " read from the SSM parameters); compute environments: Batch infrastructure update")
        first.append("wait until no job runs and the compute environments are down to 0 instances: a running "
                     "instance keeps the old subnet and node security group in use, and they would be left behind")
    if old_mine is None and new_mine is None and old.network.interface_endpoints != new.network.interface_endpoints:
        effect(net, "update", "interface endpoints created or deleted")

    # --- storage
    old_fsx, new_fsx = _fsx_fields(old), _fsx_fields(new)
    fsx_replaced = False
    if old_fsx != new_fsx:
        if not old_fsx:
            changes.append(PlanChange("+", "storage: FSx for Lustre"))
            effect(storage, "update", f"FSx file system created; the SSM parameters {params}storage/lustre-* "
                   "written")
            each_rack("launch templates: new versions (user data mounts the file system)")
        elif not new_fsx:
            changes.append(PlanChange("-", "storage: FSx for Lustre"))
            effect(storage, "update", "FSx file system leaves the template and is retained (not deleted): delete "
                   "it by hand when its data is no longer needed")
            each_rack("launch templates: new versions (no Lustre mount)")
        else:
            changed = [k for k in old_fsx if old_fsx[k] != new_fsx[k]]
            changes.append(PlanChange("~", "storage: FSx for Lustre", tuple(
                f"{k}: {_value(old_fsx[k])} -> {_value(new_fsx[k])}" for k in changed)))
            replaced = [k for k in changed if k in FSX_REPLACED_BY]
            if replaced:
                fsx_replaced = True
                effect(storage, "replace", f"FSx file system replaced ({', '.join(replaced)}): a new, empty file "
                       "system, the old one retained with its data" + (
                           "; its data repository association replaced with it (FileSystemId)"
                           if new_fsx["data_repository_path"] else "")
                       + f"; the SSM parameters {params}storage/lustre-* name the new one")
            elif "storage_capacity_gib" in changed:
                if new_fsx["storage_capacity_gib"] > old_fsx["storage_capacity_gib"]:
                    effect(storage, "update", "FSx storage capacity grows in place (no interruption)")
                else:
                    effect(storage, "fails", "FSx for Lustre cannot shrink: the file system's update fails and the "
                           "stack rolls back; keep the capacity, or make a new file system (a new deployment type)")
                    refused.append(f"storage_capacity_gib cannot shrink ({storage})")
            if "data_repository_path" in changed and not replaced:
                effect(storage, "replace", "data repository association replaced (DataRepositoryPath)")
            if "export_deletions" in changed and not replaced:
                effect(storage, "update", "data repository association: its export policy updated in place")
            if fsx_replaced or "mount_path" in changed:
                each_rack("launch templates: new versions (" + ", ".join(
                    ["the new file system" if fsx_replaced else "", "mount path" if "mount_path" in changed else ""]
                ).strip(", ") + ")")
    old_results, new_results = old.storage.results, new.storage.results
    if old_results != new_results:
        changes.append(PlanChange("~", "storage: results bucket", tuple(
            _field_changes(old_results, new_results, ("object_lock", "break_glass_role_arn")))))
        if old_results.object_lock and not new_results.object_lock:
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html
            effect(storage, "update", "Object Lock stays on: S3 cannot turn it off once on, whatever the template "
                   "says, and every version written keeps its retention")
        elif old_results.object_lock != new_results.object_lock:
            # ObjectLockEnabled and ObjectLockConfiguration: "Update requires: No interruption"
            effect(storage, "update", "results bucket: Object Lock's default retention set in place, for versions "
                   "written from then on")
        if old_results.break_glass_role_arn != new_results.break_glass_role_arn:
            effect(storage, "update", "bucket policy: who may delete object versions or change versioning "
                   "(VersionsAreKept)")
    if (new_vpc and had_fsx) or fsx_replaced:
        then.append("copy what you still need from the old file system (retained, outside the stack), then delete "
                     "it: aws fsx delete-file-system --file-system-id <old id>")
    if new_vpc and had_fsx:
        then.append("then delete what it kept in use, left outside the network stack: the old private subnet, FSx "
                     "security group and VPC (aws ec2 delete-subnet, delete-security-group, delete-vpc)")

    # --- racks and node groups
    old_racks, new_racks = {r.name: r for r in old.racks}, {r.name: r for r in new.racks}
    for name, r in new_racks.items():
        if name not in old_racks:
            changes.append(PlanChange("+", f"rack {name}", (f"{len(r.node_groups)} node groups",)))
            effect(r.stack_name, "create", "new stack")
    for name, r in old_racks.items():
        if name not in new_racks:
            changes.append(PlanChange("-", f"rack {name}", (f"{len(r.node_groups)} node groups",)))
            effect(r.stack_name, "delete", "the stack and every resource in it are deleted (no other stack changes), "
                   "once you delete the stack (see the steps)")
    old_groups, new_groups = _groups(old), _groups(new)
    for (rack, group), g in new_groups.items():
        if rack not in old_racks:
            continue
        stack = new_racks[rack].stack_name
        if (rack, group) not in old_groups:
            changes.append(PlanChange("+", f"node group {rack}/{group}", (f"{g.count} x {g.instance_type}",)))
            effect(stack, "update", f"{group}: launch template, compute environment, job queue, job definitions "
                   "created")
            continue
        before = old_groups[(rack, group)]
        fields = [f for f in GROUP_FIELDS if getattr(before, f) != getattr(g, f)]
        if fields:
            changes.append(PlanChange("~", f"node group {rack}/{group}",
                                      tuple(_field_changes(before, g, tuple(fields)))))
            if before.creates_placement_group and g.creates_placement_group and before.placement_group != \
                    g.placement_group:
                effect(stack, "replace", f"{group}: placement group replaced (Tags)")
            for f in fields:
                effect(stack, "update", f"{group}: {GROUP_EFFECTS[f]}")
    for (rack, group), g in old_groups.items():
        if rack in new_racks and (rack, group) not in new_groups:
            changes.append(PlanChange("-", f"node group {rack}/{group}", (f"{g.count} x {g.instance_type}",)))
            effect(new_racks[rack].stack_name, "update", f"{group}: its resources are deleted")
    if refused:
        return PlanDiff(tuple(changes), tuple(effects.values()),
                        tuple(f"not deployable as written: {r}" for r in refused), deployable=False)
    deployed = [s.stack for s in effects.values() if s.action not in ("unchanged", "delete")]
    deploy = [] if not deployed else [
        f"cdk deploy --all -c spec=<new spec>: CDK deploys {', '.join(deployed)} in that order, each after the one "
        "before has finished; each stack reads the network's and storage's SSM parameters afresh, and no export "
        "holds any of them back"]
    # cdk deploy never deletes a stack that left the app, and cdk destroy with the new spec no longer knows it.
    deploy += [f"aws cloudformation delete-stack --stack-name {s.stack}: cdk deploy leaves a stack that left the spec "
               "in place" for s in effects.values() if s.action == "delete"]
    return PlanDiff(tuple(changes), tuple(effects.values()), tuple(first + deploy + then))
