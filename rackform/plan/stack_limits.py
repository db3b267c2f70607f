"""How many node groups one rack stack holds, from the measured size of the heaviest node group.

A rack is one CloudFormation stack: a template under 1,000,000 bytes as CDK writes it to cdk.out and at most 500
resources (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html). The ceiling
comes from `rackform/reference/data/rack_template.json`, measured through `cdk synth` as users run it by
`scripts/measure_rack_template.py`, keeping MARGIN free; tests/stacks/test_stacks.py holds a rack at the ceiling to it.
Why: docs/decisions/0010-rack-ceiling-from-measurement.md
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..capacity import CapacityKind
from ..capacity import of as capacity_kind
from ..reference.aws_limits import STACK_MAX_RESOURCES, TEMPLATE_BODY_MAX_BYTES
from ..reference.catalog import Catalog
from ..spec.models import FsxLustre, InstanceStore
from .models import container_devices, nic_layout

MEASUREMENT_PATH = Path(__file__).resolve().parents[1] / "reference" / "data" / "rack_template.json"
# Kept free at the ceiling, of a template measured as the CLI writes it: for what the measurement cannot see coming
# (a newer CDK adding metadata, longer tokens). The heaviest rack validate admits stays under 950,000 bytes.
MARGIN = 0.05
NAME_MAX = 24  # rackform.spec.models.Name: the longest names give the longest ids, ARNs and tags


def heaviest_instance_types(catalog: Catalog, n: int = 3) -> list[str]:
    """The types whose node groups write the most template: interfaces in the launch template plus devices in
    each job definition."""
    def weight(name: str) -> tuple[int, str]:
        it = catalog.instance_types[name]
        # the heavier EFA layout: efa-only adds card 0's second interface where card 0 takes EFA
        nics = max((nic_layout(it, layout) for layout in (("efa", "efa-only") if it.efa_supported else (None,))),
                   key=len)
        efa = sum(1 for x in nics if x.is_efa)
        return len(nics) + len(container_devices(it, efa)), name

    return sorted(catalog.instance_types, key=weight, reverse=True)[:n]


# A well-formed reservation id for the measured specs: the template carries it, nothing looks it up.
PLACEHOLDER_RESERVATION = "cr-0123456789abcdef0"


# The mount paths the measured specs use, the defaults: each is written into every node group's user data and job
# definitions, so a longer one makes every group heavier (mount_path_bytes).
DEFAULT_FSX_MOUNT_PATH: str = FsxLustre.model_fields["mount_path"].default
DEFAULT_INSTANCE_STORE_MOUNT_PATH: str = InstanceStore.model_fields["mount_path"].default


def worst_case_spec(catalog: Catalog, instance_type: str, groups: int, *, capacity: CapacityKind = "on-demand",
                    fsx_mount_path: str = DEFAULT_FSX_MOUNT_PATH,
                    instance_store_mount_path: str = DEFAULT_INSTANCE_STORE_MOUNT_PATH) -> dict[str, Any]:
    """A spec (plain data) of one rack holding `groups` node groups of `instance_type`, with the longest names and
    an FSx file system (whose mount script goes into every launch template), in a Region and AZ that offer it;
    `capacity` on-demand, reservation or capacity-block (targeting a placeholder reservation id)."""
    region, azs = next((r, catalog.azs_offering(r, instance_type))
                       for r in sorted(catalog.offerings, key=lambda r: (r != "us-east-2", r))
                       if catalog.azs_offering(r, instance_type))
    group: dict[str, Any] = {"instance_type": instance_type, "count": 2,
                             "instance_store": {"mount_path": instance_store_mount_path}}
    if capacity_kind(capacity).needs_reservation_id:
        group["capacity"] = {"type": capacity, "reservation_id": PLACEHOLDER_RESERVATION}
    return {
        "name": "s" * NAME_MAX,
        "region": region,
        "availability_zone": azs[0],
        "storage": {"fsx_lustre": {"storage_capacity_gib": 1200, "per_unit_storage_throughput": 125,
                                   "data_repository_path": "s3://example-bucket/prefix",
                                   "mount_path": fsx_mount_path}},
        # the repair loop with everything it can add per group (cdk_constructs/repair.py): idle checks, e-mail
        "racks": [{"name": "r" * NAME_MAX, "healing": {"idle_check_every": "1h", "email": "oncall@example.com"},
                   "node_groups": [{"name": f"{'g' * (NAME_MAX - 3)}{i:03d}", **group} for i in range(groups)]}],
    }


@functools.lru_cache(maxsize=1)
def measurement(path: Path = MEASUREMENT_PATH) -> dict[str, Any]:
    measured: dict[str, Any] = json.loads(Path(path).read_text())
    return measured


def mount_path_bytes(fsx_mount_path: str | None, instance_store_mount_path: str | None,
                     m: dict[str, Any] | None = None) -> int:
    """What a node group's template share grows by beyond the measured one where its FSx mount path or its instance
    store's (None: no such mount) is longer than the default the measurement used: the measured bytes per character
    (each path is written many times into every group's user data and job definitions). A shorter path counts 0."""
    m = m or measurement()
    return sum(m[key] * max(0, len(path) - len(default)) for path, default, key in (
        (fsx_mount_path, DEFAULT_FSX_MOUNT_PATH, "fsx_mount_path_bytes_per_char"),
        (instance_store_mount_path, DEFAULT_INSTANCE_STORE_MOUNT_PATH, "instance_store_mount_path_bytes_per_char"))
        if path is not None)


def max_node_groups_per_rack(m: dict[str, Any] | None = None, extra_bytes_per_group: int = 0) -> int:
    """The most node groups of the heaviest kind that one rack's template holds, in bytes and in resources, each
    group `extra_bytes_per_group` (mount_path_bytes) heavier than measured."""
    m = m or measurement()
    by_bytes = (TEMPLATE_BODY_MAX_BYTES * (1 - MARGIN) - m["base_bytes"]) // (m["per_group_bytes"]
                                                                              + extra_bytes_per_group)
    by_resources = (STACK_MAX_RESOURCES - m["base_resources"]) // m["per_group_resources"]
    return int(min(by_bytes, by_resources))


ROOT = Path(__file__).resolve().parents[2]
CDK_CLI = ROOT / "node_modules" / ".bin" / "cdk"


def cdk_synth(spec: Path | str, outdir: Path, *, env: dict[str, str] | None = None) \
        -> subprocess.CompletedProcess[str]:
    """`cdk synth -c spec=SPEC` as a user runs it from a checkout (its cdk.json and default context), writing to
    `outdir`, with no AWS credentials, no instance-metadata probing and no telemetry; `env` adds variables."""
    # A missing CLI is a broken set-up, never a reason to skip: `make setup` installs it from package-lock.json.
    assert CDK_CLI.exists(), "the CDK CLI is not installed: run `make setup` (npm ci)"
    run_env = {
        **os.environ,
        # This interpreter's venv first: cdk.json runs `python3 app.py`, and jsii must get Node from it.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(CDK_CLI.parent), os.environ.get("PATH", "")]),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        **(env or {}),
    }
    for var in ("CDK_DEFAULT_ACCOUNT", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN"):
        run_env.pop(var, None)
    return subprocess.run(
        [str(CDK_CLI), "synth", "-c", f"spec={spec}", "-o", str(outdir), "--quiet", "--no-notices"],
        cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=600,
    )
