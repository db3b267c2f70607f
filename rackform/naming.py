"""Every name rackform gives to AWS resources, in one place.

The stacks name resources with these functions and `rackform submit` finds them with the same functions, so the
two cannot drift apart. Names derive from spec names, never list positions: adding or reordering racks renames
nothing.
"""

from __future__ import annotations


def network_stack(spec: str) -> str:
    return f"{spec}-network"


def storage_stack(spec: str) -> str:
    return f"{spec}-storage"


def rack_stack(spec: str, rack: str) -> str:
    return f"{spec}-rack-{rack}"


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


def job_definition(spec: str, rack: str, group: str, benchmark: str) -> str:
    return f"{node_group(spec, rack, group)}-{benchmark}"


def construct_id(name: str) -> str:
    """'trn2-train' -> 'Trn2Train': stable CDK construct ids from spec names."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", "-").split("-") if part)
