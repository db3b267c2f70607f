"""EFA: asked only of types that have it, laid out with room for Batch, used by multi-node accelerator groups."""

from __future__ import annotations

from ..plan.models import card0_free_slots, efa_enabled, node_group_plan
from ..reference.catalog import Catalog, InstanceType
from ..spec.models import Spec
from .core import Found, Rule, SpecRule, known_groups


def _why_no_efa(it: InstanceType) -> str:
    """Why a group of `it` runs without EFA, given that it does (efa_enabled is false)."""
    return "efa is false" if it.efa_supported else f"{it.name} has no EFA"


def efa_supported(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g, it in known_groups(spec, catalog):
        if g.efa and not it.efa_supported:
            family = it.family
            with_efa = sorted(t for t, x in catalog.instance_types.items() if x.family == family and x.efa_supported)
            alt = f" In the {family} family these support EFA: {', '.join(with_efa)}" if with_efa else ""
            yield f"{path}.efa", f"{it.name} does not support EFA; set efa: false or pick another type.{alt}"


def efa_interfaces(spec: Spec, catalog: Catalog) -> Found:
    for path, rack, g, it in known_groups(spec, catalog):
        if g.efa_interfaces is None:
            continue
        if not efa_enabled(g, it):
            yield f"{path}.efa_interfaces", f"efa_interfaces: {g.efa_interfaces} lays out EFA interfaces, but " \
                                            f"{_why_no_efa(it)}: remove efa_interfaces"
            continue
        plan = node_group_plan(spec, rack, g, it)
        if plan.max_job_nodes > 1 and card0_free_slots(it, plan.network_interfaces) < 1:
            used = sum(1 for n in plan.network_interfaces if n.network_card_index == 0)
            yield f"{path}.efa_interfaces", (
                f"efa_interfaces: {g.efa_interfaces} fills network card 0 of {it.name} ({used} interfaces, its "
                "limit), leaving no slot for the ENI AWS Batch attaches to each node of a multi-node job: use "
                "efa_interfaces: efa (one IP per EFA interface) or count: 1")


def multi_node_accelerators_without_efa(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g, it in known_groups(spec, catalog):
        if g.count > 1 and it.accelerator is not None and not efa_enabled(g, it):
            yield f"{path}.count", (f"{g.count} x {it.name} without EFA ({_why_no_efa(it)}): collectives across "
                                    "nodes will run over TCP at a fraction of the bandwidth; use an EFA type for "
                                    "multi-node training")


RULES: tuple[SpecRule, ...] = (
    Rule(efa_supported, "error", "EFA is only asked of types that have it",
         "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa.html"),
    Rule(efa_interfaces, "error",
         "an EFA layout is asked only with EFA, and leaves multi-node groups a slot for the Batch task ENI",
         "https://docs.aws.amazon.com/batch/latest/userguide/efa.html"),
    Rule(multi_node_accelerators_without_efa, "warning", "multi-node accelerator groups use EFA",
         "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa.html"),
)
