#!/usr/bin/env python3
"""Measure what one node group adds to a rack's CloudFormation template, for the heaviest node groups the catalog
allows, and write rackform/reference/data/rack_template.json, from which `rackform validate` derives how many node
groups a rack may hold (rackform/plan/stack_limits.py).

For each of the heaviest instance types, and each capacity kind that changes the template (on-demand with a
placement group, a reservation or Capacity Block), it synthesizes racks of 1 and 2 groups with the longest names
through the CDK CLI, as users do (`cdk synth`, this checkout's cdk.json, default context: path metadata, asset
metadata and version reporting on), and measures the template files it writes: per group = size(2) - size(1),
base = size(1) - per group. The largest figures win. Then, for the type and capacity of the heaviest group, what
each character of a longer FSx or instance store mount path adds to one group's rack (both are written into every
group's user data and job definitions). Run it after any change to the rack stack, then `make test`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rackform.capacity import CapacityKind  # noqa: E402
from rackform.capacity import of as capacity_kind  # noqa: E402
from rackform.plan import naming  # noqa: E402
from rackform.plan.stack_limits import (  # noqa: E402
    DEFAULT_FSX_MOUNT_PATH,
    DEFAULT_INSTANCE_STORE_MOUNT_PATH,
    MEASUREMENT_PATH,
    cdk_synth,
    heaviest_instance_types,
    max_node_groups_per_rack,
    worst_case_spec,
)
from rackform.reference.catalog import load_catalog  # noqa: E402

# How much longer than the default the measured mount paths are: enough characters for a per-character figure.
LONGER_BY = 64
MEASURED_KEYS = ("per_group_bytes", "base_bytes", "per_group_resources", "base_resources",
                 "fsx_mount_path_bytes_per_char", "instance_store_mount_path_bytes_per_char")


def measure(data: dict[str, Any], outdir: Path) -> tuple[int, int]:
    """(bytes on disk, resources) of the spec's one rack template, as `cdk synth` writes it."""
    outdir.mkdir(parents=True)
    spec = outdir / "spec.json"  # JSON is YAML: the spec loader reads it as written
    spec.write_text(json.dumps(data))
    result = cdk_synth(spec, outdir / "cdk.out")
    if result.returncode != 0:
        raise SystemExit(f"cdk synth failed for {spec}:\n{result.stderr}")
    path = outdir / "cdk.out" / f"{naming.rack_stack(data['name'], data['racks'][0]['name'])}.template.json"
    return path.stat().st_size, len(json.loads(path.read_text())["Resources"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--types", type=int, default=3, help="how many of the heaviest types to measure")
    parser.add_argument("--check", action="store_true", help="measure and compare, write nothing")
    args = parser.parse_args()
    catalog = load_catalog()
    worst: dict[str, Any] = {}
    one_group: dict[tuple[str, str], int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in heaviest_instance_types(catalog, args.types):
            it = catalog.instance_types[name]
            block = capacity_kind("capacity-block").usage_class in it.usage_classes
            kinds: list[CapacityKind] = ["on-demand", "capacity-block" if block else "reservation"]
            for capacity in kinds:
                label = f"{name} {capacity}"
                (b1, r1), (b2, r2) = (measure(worst_case_spec(catalog, name, n, capacity=capacity),
                                              Path(tmp) / f"{label}-{n}".replace(" ", "-")) for n in (1, 2))
                one_group[name, capacity] = b1
                row = {"instance_type": name, "capacity": capacity,
                       "per_group_bytes": b2 - b1, "base_bytes": b1 - (b2 - b1),
                       "per_group_resources": r2 - r1, "base_resources": r1 - (r2 - r1)}
                print(f"{label}: {row['per_group_bytes']:,} bytes and {row['per_group_resources']} resources per "
                      f"group; base {row['base_bytes']:,} bytes, {row['base_resources']} resources")
                for key in ("per_group_bytes", "base_bytes", "per_group_resources", "base_resources"):
                    if row[key] > worst.get(key, -1):
                        worst[key] = row[key]
                        if key == "per_group_bytes":
                            worst["instance_type"], worst["capacity"] = row["instance_type"], row["capacity"]
        heaviest: tuple[str, CapacityKind] = (worst["instance_type"], worst["capacity"])
        for key, longer in (("fsx_mount_path_bytes_per_char",
                             {"fsx_mount_path": DEFAULT_FSX_MOUNT_PATH + "f" * LONGER_BY}),
                            ("instance_store_mount_path_bytes_per_char",
                             {"instance_store_mount_path": DEFAULT_INSTANCE_STORE_MOUNT_PATH + "s" * LONGER_BY})):
            size, _ = measure(worst_case_spec(catalog, heaviest[0], 1, capacity=heaviest[1], **longer),
                              Path(tmp) / key)
            worst[key] = -(-(size - one_group[heaviest]) // LONGER_BY)  # rounded up
            print(f"{key}: {worst[key]} bytes a group")
    worst["measured_on"] = dt.date.today().isoformat()
    worst["note"] = ("written by scripts/measure_rack_template.py: the heaviest node group's share of a rack "
                     "template as `cdk synth` writes it (default context: path metadata on); "
                     "rackform/plan/stack_limits.py derives the per-rack ceiling")
    print(f"ceiling: {max_node_groups_per_rack(worst)} node groups per rack")
    if args.check:
        old = json.loads(MEASUREMENT_PATH.read_text())
        stale = any(worst[k] > old.get(k, -1) for k in MEASURED_KEYS)
        print("committed measurement is " + ("STALE: run without --check" if stale else "current"))
        return 1 if stale else 0
    MEASUREMENT_PATH.write_text(json.dumps(worst, indent=2, sort_keys=True) + "\n")
    print(f"wrote {MEASUREMENT_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
