"""Names that must be unique: racks, node groups in a rack, the AWS names and CDK ids derived from them."""

from __future__ import annotations

from ..plan import naming
from ..reference.catalog import Catalog
from ..spec.models import Spec
from .core import Found, Rule, SpecRule, groups


def unique_rack_names(spec: Spec, catalog: Catalog) -> Found:
    seen: dict[str, int] = {}
    for i, rack in enumerate(spec.racks):
        if rack.name in seen:
            yield f"racks[{i}].name", f"{rack.name!r} is already the name of racks[{seen[rack.name]}]; rack names " \
                                      "must be unique (they name stacks)"
        seen.setdefault(rack.name, i)


def unique_node_group_names(spec: Spec, catalog: Catalog) -> Found:
    for ri, rack in enumerate(spec.racks):
        seen: dict[str, int] = {}
        for gi, g in enumerate(rack.node_groups):
            if g.name in seen:
                yield f"racks[{ri}].node_groups[{gi}].name", (
                    f"{g.name!r} is already the name of racks[{ri}].node_groups[{seen[g.name]}]; node group names "
                    "must be unique within a rack")
            seen.setdefault(g.name, gi)


def unique_resource_names(spec: Spec, catalog: Catalog) -> Found:
    # AWS names are unique per resource type and Region: rack "a-b" with group "c" and rack "a" with group "b-c"
    # would both name their Batch queue "<spec>-a-b-c".
    seen: dict[tuple[str, str], tuple[str, str, str]] = {}
    for path, rack, g in groups(spec):
        for kind, name in naming.rack_aws_names(spec.name, rack, g.name):
            first = seen.setdefault((kind, name), (path, rack, g.name))
            if first[1:] != (rack, g.name):
                yield f"{path}.name", (f"rack {rack!r}/node group {g.name!r} gives the {kind} name {name!r}, as does "
                                       f"rack {first[1]!r}/node group {first[2]!r} ({first[0]}.name); rename one")
                break
    # CDK construct ids: unique among a stack's children, or synth fails ("There is already a Construct with name").
    for ri, r in enumerate(spec.racks):
        index: dict[str, int] = {}
        tiers: dict[str, str | None] = {}
        for gi, g in enumerate(r.node_groups):
            index.setdefault(g.name, gi)
            tiers.setdefault(g.name, g.tier or getattr(catalog.get(g.instance_type), "tier", None))
        owners: dict[str, tuple[str | None, str]] = {}
        reported: set[tuple[str | None, str]] = set()
        for cid, group, what in naming.rack_construct_ids(tiers):
            other_group, other_what = owners.setdefault(cid, (group, what))
            if group is None or other_group == group or (other_group, group) in reported:
                continue
            reported.add((other_group, group))
            its = "" if what == "node group" else f" {what}"
            other = other_what if other_group is None else (
                ("" if other_what == "node group" else f"the {other_what} of ")
                + f"node group {other_group!r} (racks[{ri}].node_groups[{index[other_group]}].name)")
            yield f"racks[{ri}].node_groups[{index[group]}].name", (
                f"{group!r} gives its node group{its} the construct id {cid!r}, already the id of {other} in the "
                f"stack of rack {r.name!r}: CDK ids must be unique in a stack (synth fails); rename the node group")


RULES: tuple[SpecRule, ...] = (
    Rule(unique_rack_names, "error", "rack names are unique",
         "https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html"),
    Rule(unique_node_group_names, "error", "node group names are unique in a rack",
         "https://docs.aws.amazon.com/batch/latest/APIReference/API_CreateComputeEnvironment.html"),
    Rule(unique_resource_names, "error", "derived AWS names and CDK construct ids do not collide",
         "https://docs.aws.amazon.com/cdk/v2/guide/identifiers.html"),
)
