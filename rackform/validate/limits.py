"""AWS service limits: AWS Batch's per-Region quotas and CloudFormation's stack size."""

from __future__ import annotations

from ..plan.models import instance_store_enabled
from ..plan.stack_limits import (
    DEFAULT_FSX_MOUNT_PATH,
    DEFAULT_INSTANCE_STORE_MOUNT_PATH,
    max_node_groups_per_rack,
    mount_path_bytes,
)
from ..reference.aws_limits import (
    BATCH_MAX_COMPUTE_ENVIRONMENTS,
    BATCH_MAX_JOB_QUEUES,
    STACK_MAX_RESOURCES,
    TEMPLATE_BODY_MAX_BYTES,
)
from ..reference.catalog import Catalog
from ..spec.models import NodeGroup, Spec
from .core import Found, Rule, SpecRule


def batch_quotas(spec: Spec, catalog: Catalog) -> Found:
    n = sum(len(r.node_groups) for r in spec.racks)
    limit = min(BATCH_MAX_COMPUTE_ENVIRONMENTS, BATCH_MAX_JOB_QUEUES)
    if n > limit:
        yield "racks", (f"{n} node groups need {n} Batch compute environments and {n} job queues; AWS Batch allows "
                        f"{BATCH_MAX_COMPUTE_ENVIRONMENTS} and {BATCH_MAX_JOB_QUEUES} per Region. Merge node groups "
                        "or split the cluster across Regions")


def rack_stack_size(spec: Spec, catalog: Catalog) -> Found:
    # The ceiling comes from the measured template share of the heaviest node group (rackform/plan/stack_limits.py),
    # measured with the default mount paths: every character a rack's groups write beyond them is counted too.
    fsx = None if spec.storage.fsx_lustre is None else spec.storage.fsx_lustre.mount_path

    def store(g: NodeGroup) -> str | None:
        it = catalog.get(g.instance_type)
        return g.instance_store.mount_path if it is not None and instance_store_enabled(g, it) else None

    for i, rack in enumerate(spec.racks):
        extra = max(mount_path_bytes(fsx, store(g)) for g in rack.node_groups)
        ceiling = max_node_groups_per_rack(extra_bytes_per_group=extra)
        if len(rack.node_groups) > ceiling:
            paths = (f" with mount paths longer than {DEFAULT_FSX_MOUNT_PATH} and {DEFAULT_INSTANCE_STORE_MOUNT_PATH} "
                     f"({extra:,} bytes more a node group)" if extra else "")
            yield f"racks[{i}].node_groups", (
                f"rack {rack.name!r} has {len(rack.node_groups)} node groups; a rack is one CloudFormation stack "
                f"(at most {STACK_MAX_RESOURCES} resources and a template under {TEMPLATE_BODY_MAX_BYTES:,} bytes), "
                f"which holds at most {ceiling} node groups{paths}: split the rack"
                + (", or shorten storage.fsx_lustre.mount_path or instance_store.mount_path" if extra else ""))


RULES: tuple[SpecRule, ...] = (
    Rule(batch_quotas, "error", "node groups fit AWS Batch's per-Region quotas",
         "https://docs.aws.amazon.com/batch/latest/userguide/service_limits.html"),
    Rule(rack_stack_size, "error", "a rack's stack fits CloudFormation's limits",
         "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html"),
)
