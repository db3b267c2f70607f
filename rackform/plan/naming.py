"""Every name rackform gives to AWS resources, in one place.

The stacks name resources with these functions and `rackform submit` finds them with the same functions, so the
two cannot drift apart. Names derive from spec names, never list positions: adding or reordering racks renames
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal


def network_stack(spec: str) -> str:
    return f"{spec}-network"


def storage_stack(spec: str) -> str:
    return f"{spec}-storage"


def rack_stack(spec: str, rack: str) -> str:
    return f"{spec}-rack-{rack}"


def parameter(spec: str, key: str) -> str:
    """The SSM parameter through which the network and storage stacks hand one value (e.g. "network/subnet-id") to
    the stacks deployed after them: read at each deploy, so a replaced subnet or file system reaches them with no
    CloudFormation export in the way (stacks/handoff.py)."""
    return f"/rackform/{spec}/{key}"


def node_group(spec: str, rack: str, group: str) -> str:
    """Base name of a node group's resources: launch template, placement group, compute environment, job queue."""
    return f"{spec}-{rack}-{group}"


def compute_environment(spec: str, rack: str, group: str) -> str:
    return f"{node_group(spec, rack, group)}-ce"


def job_queue(spec: str, rack: str, group: str) -> str:
    return f"{node_group(spec, rack, group)}-queue"


def placement_group(spec: str, rack: str, group: str) -> str:
    return f"{node_group(spec, rack, group)}-cluster"


def launch_template(spec: str, rack: str, group: str) -> str:
    return f"{node_group(spec, rack, group)}-lt"


def job_definition(spec: str, rack: str, group: str, kind: str | None = None, *, workload: str | None = None) -> str:
    """A node group's job definition: its benchmark definition of one kind ("single" or "multinode"; the benchmark is
    a job parameter), or with `workload` (and no kind) that workload's definition on the node group.

    Hyphens join the parts, so names of different definitions can meet: workload `single` on node group `a` and the
    benchmark definition of node group `a-wl` are both `<spec>-<rack>-a-wl-single`, and registering the one would
    add a revision to the other. job_definition_collisions finds such pairs before anything is registered.
    """
    if (kind is None) == (workload is None):
        raise ValueError("a job definition is either a benchmark kind's or a workload's")
    return f"{node_group(spec, rack, group)}-{kind if workload is None else f'wl-{workload}'}"


def job_definition_collisions(spec: str, groups: Iterable[tuple[str, str]],
                              workloads: Iterable[tuple[str, str, str]]) -> list[str]:
    """One line per job definition name that two definitions would share: the benchmark definitions of every node
    group (rack, group) and each workload's on each node group it may run on (workload, rack, group)."""
    owners: dict[str, str] = {}
    for rack, group in groups:
        for kind in JOB_KINDS:
            owners.setdefault(job_definition(spec, rack, group, kind),
                              f"the {kind} benchmark definition of node group {rack}/{group}")
    found = []
    for workload, rack, group in workloads:
        name = job_definition(spec, rack, group, workload=workload)
        mine = f"workload {workload!r} on {rack}/{group}"
        if (other := owners.setdefault(name, mine)) != mine:
            found.append(f"{mine} would register its job definition as {name!r}, already the name of {other}; "
                         "rename the workload or the node group")
    return found


def construct_id(name: str) -> str:
    """'trn2-train' -> 'Trn2Train': stable CDK construct ids from spec names."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", "-").split("-") if part)


# --- the construct ids of a rack stack ------------------------------------------------------------------------
# CDK refuses two children of one scope with the same id ("There is already a Construct with name ..."), only at
# synth. stacks/rack.py names its direct children with these functions and `rackform validate` checks the ids they
# give for collisions, so keep the two in step: a test synthesizes a rack and compares its children with
# rack_construct_ids. Ids are case-sensitive; a CfnOutput is a child of the stack like any other construct.
NODE_ROLE_ID = "Nodes"
JOB_ROLE_ID = "Jobs"
WORKLOAD_ROLE_ID = "Workloads"
REPAIR_ID = "Repair"  # the rack's repair loop (cdk_constructs/repair.py), where the spec enables it
TELEMETRY_ID = "Telemetry"  # its dashboard and alarms (cdk_constructs/telemetry.py)
# The rack's handles on what the network and storage stacks made, read from their SSM parameters.
HANDOFF_IDS = {"PrivateSubnet": "the rack's handle on the private subnet",
               "NodeSecurityGroup": "the rack's handle on the node security group",
               "ResultsBucket": "the rack's handle on the results bucket"}
# Added to every stack by CDK itself: the version-reporting resource and the bootstrap version parameter and rule.
CDK_STACK_IDS = ("CDKMetadata", "BootstrapVersion", "CheckBootstrapVersion")


def tier_image_id(tier: str) -> str:
    return f"{construct_id(tier)}Image"


def node_group_ids(group: str) -> dict[str, str]:
    """Ids of one node group's direct children of the rack stack: what -> id."""
    cid = construct_id(group)
    return {"node group": cid, "job definitions": f"{cid}Jobs", "job queue output": f"{cid}JobQueue"}


def rack_construct_ids(groups: dict[str, str | None]) -> list[tuple[str, str | None, str]]:
    """Every id a rack stack gives its direct children, from {node group name: tier (None if unknown)}.

    Returns (construct id, owning node group or None for the rack's own constructs, what it is); an id appearing
    twice is a collision.
    """
    ids: list[tuple[str, str | None, str]] = [(i, None, "CDK's own stack construct") for i in CDK_STACK_IDS]
    ids += [(NODE_ROLE_ID, None, "the rack's node instance role"), (JOB_ROLE_ID, None, "the rack's job role"),
            (WORKLOAD_ROLE_ID, None, "the rack's workload role"), (REPAIR_ID, None, "the rack's repair loop"),
            (TELEMETRY_ID, None, "the rack's dashboard and alarms")]
    ids += [(cid, None, what) for cid, what in HANDOFF_IDS.items()]
    ids += [(tier_image_id(t), None, f"the rack's {t} image") for t in sorted({t for t in groups.values() if t})]
    for group in groups:
        ids += [(cid, group, what) for what, cid in node_group_ids(group).items()]
    return ids


JOB_KINDS: tuple[Literal["single"], Literal["multinode"]] = ("single", "multinode")


def rack_aws_names(spec: str, rack: str, group: str) -> list[tuple[str, str]]:
    """(resource type, name) of every named AWS resource of one node group; names are unique per type and Region."""
    return [("AWS Batch compute environment", compute_environment(spec, rack, group)),
            ("AWS Batch job queue", job_queue(spec, rack, group)),
            ("EC2 launch template", launch_template(spec, rack, group)),
            *(("AWS Batch job definition", job_definition(spec, rack, group, kind)) for kind in JOB_KINDS)]
