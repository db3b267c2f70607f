"""`rackform plan`'s output: one row per node group, then the network, storage and quota totals."""

from __future__ import annotations

from workloads.contract import FSX_SCRATCH_DIR

from ..capacity import of as capacity_kind
from ..plan.models import NodeGroupPlan, Plan
from .text import table, wrap


def _nic_summary(g: NodeGroupPlan) -> str:
    kinds: dict[str, int] = {}
    for n in g.network_interfaces:
        kinds[n.interface_type] = kinds.get(n.interface_type, 0) + 1
    cards = len({n.network_card_index for n in g.network_interfaces})
    return ", ".join(f"{v} {k}" for k, v in kinds.items()) + f" on {cards} card{'s' * (cards != 1)}"


def _usd(g: NodeGroupPlan) -> str:
    if capacity_kind(g.capacity.type).price != "on-demand-snapshot" or g.on_demand_usd_per_hour is None:
        return "unknown"  # `rackform cost` takes user-given prices for these
    from ..numbers import usd

    return usd(g.on_demand_usd_per_hour * g.count)


def _capacity(g: NodeGroupPlan) -> str:
    # The allocation strategy is shown where the kind offers a choice of it (Spot).
    kind = capacity_kind(g.capacity.type)
    return f"{g.capacity.type} ({g.capacity.batch_allocation_strategy})" if len(
        kind.batch_allocation_strategies) > 1 else g.capacity.type


def _network(plan: Plan) -> str:
    net = plan.network
    if (mine := net.existing) is not None:
        return (f"network  existing VPC {mine.vpc_id}, subnet {mine.subnet_id}, security groups "
                f"{', '.join(mine.security_group_ids)}: rackform creates no VPC, subnet, NAT gateway, endpoint or "
                f"security group; {net.ips_needed:,} addresses needed in the subnet (`rackform preflight` counts its "
                "free ones, its AZ, its route to S3 and ECR and the groups' EFA rules)")
    return (f"network  VPC {net.vpc_cidr}; private subnet /{net.private_subnet.cidr_mask} "
            f"({net.private_subnet.usable_ips:,} usable, {net.ips_needed:,} needed); public subnet "
            f"/{net.public_subnet.cidr_mask} for NAT; endpoints: S3 gateway"
            + "".join(f", {e}" for e in net.interface_endpoints))


def render_plan(plan: Plan) -> str:
    rows = []
    for g in plan.node_groups():
        count = f"{g.count} ({g.min_count} warm)" if g.min_count else g.count
        rows.append([f"{g.rack}/{g.name}", g.tier, g.architecture, g.instance_type, count, _nic_summary(g),
                     len(g.devices), g.ips, f"{g.quota.vcpus:,}", g.quota.code or "?", g.placement_group or "-",
                     _capacity(g), _usd(g)])
    header = ["rack/node group", "tier", "arch", "instance", "count", "interfaces per node", "devices", "IPs",
              "vCPUs", "quota", "placement group", "capacity", "$/hour"]
    quota_totals: dict[str, int] = {}
    for g in plan.node_groups():
        key = f"{g.quota.code or '?'} ({g.quota.name})"
        quota_totals[key] = quota_totals.get(key, 0) + g.quota.vcpus
    lines = [
        f"plan {plan.name}: {plan.region} / {plan.availability_zone}  (catalog {plan.catalog_generated_on})",
        "",
        table(rows, header),
        "",
        _network(plan),
    ]
    if (fsx := plan.storage.fsx_lustre) is not None:
        thr = f", {fsx.per_unit_storage_throughput} MB/s/TiB" if fsx.per_unit_storage_throughput else ""
        repo = f", linked to {fsx.data_repository_path}" if fsx.data_repository_path else ""
        meta = "" if fsx.metadata is None else f", metadata {fsx.metadata.mode or f'{fsx.metadata.iops:,} IOPS'}"
        lz4 = ", LZ4 compressed" if fsx.data_compression == "LZ4" else ""
        if fsx.file_system_id is not None:
            lines.append(f"storage  existing FSx for Lustre {fsx.file_system_id} (mount name {fsx.mount_name}; "
                         f"stated {fsx.deployment_type} {fsx.storage_capacity_gib:,} GiB{thr}, which preflight "
                         f"checks), mounted at {fsx.mount_path}, not created; results bucket")
        else:
            lines.append(f"storage  FSx for Lustre {fsx.file_system_type_version} {fsx.deployment_type} "
                         f"{fsx.storage_capacity_gib:,} GiB{thr}{meta}{lz4}{repo}, mounted at {fsx.mount_path}; "
                         "results bucket")
        lines.append(f"fsx      jobs mount {fsx.mount_path} read-only: benchmarks write {fsx.mount_path}/"
                     f"{FSX_SCRATCH_DIR} only, a workload all of it with fsx_write: true")
        if fsx.data_repository_path:
            deletions = "deletions too (export_deletions: true)" if fsx.export_deletions else \
                "deletions never (export_deletions: false)"
            lines.append(f"fsx      {fsx.mount_path}/data -> {fsx.data_repository_path}: new and changed files "
                         f"exported, {deletions}")
    else:
        lines.append("storage  results bucket (no FSx)")
    results = plan.storage.results
    lock = f"Object Lock {results.object_lock.mode}, {results.object_lock.retention_days} days a version" \
        if results.object_lock else "no Object Lock"
    who = f"only {results.break_glass_role_arn} may" if results.break_glass_role_arn else \
        "no principal may (no break_glass_role_arn)"
    lines.append(f"results  write-once; {lock}; {who} delete a version or change versioning")
    lines += [f"warm     {g.rack}/{g.name}: {g.min_count} of {g.count} x {g.instance_type} always running, jobs or "
              f"not (MinvCpus {g.min_vcpus:,}); `rackform cost` prices them all month" for g in plan.node_groups()
              if g.min_count]
    lines += [f"image    {g.rack}/{g.name}: {g.image_id} (yours, for {g.architecture}: the ECS agent and any GPU or "
              f"Neuron driver must be in it{'; EFA is installed at boot' if g.efa_interfaces else ''}; "
              "`rackform preflight` reads it)" for g in plan.node_groups() if g.image_id]
    lines += [f"scratch  {g.rack}/{g.name}: {g.instance_store.summary}" for g in plan.node_groups()]
    lines.append("quotas   " + "; ".join(f"{v:,} vCPUs of {k}" for k, v in quota_totals.items()))
    lines.append("stacks   " + ", ".join(plan.stack_names()))
    return wrap("\n".join(lines))  # prose folded to the terminal, as the tables fit it
