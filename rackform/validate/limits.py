"""AWS service limits: AWS Batch's per-Region quotas and CloudFormation's stack size."""

from __future__ import annotations

from ..plan.stack_limits import max_node_groups_per_rack
from ..reference.aws_limits import (
    BATCH_MAX_COMPUTE_ENVIRONMENTS,
    BATCH_MAX_JOB_QUEUES,
    STACK_MAX_RESOURCES,
    TEMPLATE_BODY_MAX_BYTES,
)
from ..reference.catalog import Catalog
from ..spec.models import Spec
from .core import Found, Rule, SpecRule


def batch_quotas(spec: Spec, catalog: Catalog) -> Found:
    n = sum(len(r.node_groups) for r in spec.racks)
    limit = min(BATCH_MAX_COMPUTE_ENVIRONMENTS, BATCH_MAX_JOB_QUEUES)
    if n > limit:
        yield "racks", (f"{n} node groups need {n} Batch compute environments and {n} job queues; AWS Batch allows "
                        f"{BATCH_MAX_COMPUTE_ENVIRONMENTS} and {BATCH_MAX_JOB_QUEUES} per Region. Merge node groups "
                        "or split the cluster across Regions")


def rack_stack_size(spec: Spec, catalog: Catalog) -> Found:
    # The ceiling comes from the measured template share of the heaviest node group (rackform/plan/stack_limits.py).
    ceiling = max_node_groups_per_rack()
    for i, rack in enumerate(spec.racks):
        if len(rack.node_groups) > ceiling:
            yield f"racks[{i}].node_groups", (
                f"rack {rack.name!r} has {len(rack.node_groups)} node groups; a rack is one CloudFormation stack "
                f"(at most {STACK_MAX_RESOURCES} resources and a template under {TEMPLATE_BODY_MAX_BYTES:,} bytes), "
                f"which holds at most {ceiling} node groups: split the rack")


RULES: tuple[SpecRule, ...] = (
    Rule(batch_quotas, "error", "node groups fit AWS Batch's per-Region quotas",
         "https://docs.aws.amazon.com/batch/latest/userguide/service_limits.html"),
    Rule(rack_stack_size, "error", "a rack's stack fits CloudFormation's limits",
         "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html"),
)
