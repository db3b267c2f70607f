"""Every validation rule, spec and workload, in one table: a bad case that makes exactly that rule fire, and a good
case, the closest near miss, where it stays quiet. A rule registered without a row here fails the suite.

Each case is a few edits of the example spec (tests/conftest.py's `demo`, examples/trn2-capacity-block.yaml) or of
a small valid workload: {"racks.1.node_groups.0.count": 2} sets one field, DELETE removes it. A case's good edits
apply first, then its bad edits on top, so the only difference between the two is the mistake.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rackform.spec.models import parse_spec
from rackform.spec.workload import workload_from_data
from rackform.validate import RULES, WORKLOAD_RULES, validate_spec, validate_workload
from tests.conftest import ROOT

DELETE = object()
CR = "cr-0123456789abcdef0"
# The Capacity Block group (racks[1]) and the 2 x p5.48xlarge EFA group (racks[2]) of the example.
BLOCK, H100 = "racks.1.node_groups.0", "racks.2.node_groups.0"
FSX = "storage.fsx_lustre"
C8G = {"instance_type": "c8g.4xlarge", "count": 1}


def _groups(n: int) -> list[dict[str, Any]]:
    return [{"name": f"g{i}", **C8G} for i in range(n)]


def _ceiling() -> int:
    from rackform.plan.stack_limits import max_node_groups_per_rack
    return max_node_groups_per_rack()


# rule id -> (good edits, bad edits); values may be callables, called when the case runs (for measured figures).
SPEC_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # instances
    "region-known": ({}, {"region": "us-east-22"}),
    "az-in-region": ({}, {"availability_zone": "us-east-1a"}),
    "instance-type-known": ({}, {f"{BLOCK}.instance_type": "trn2.48xlage"}),
    "instance-offered-in-az": ({"region": "us-east-1", "availability_zone": "use1-az6", "racks": [
        {"name": "r", "node_groups": [{"name": "g", "instance_type": "p5en.48xlarge", "count": 1}]}]},
        {"availability_zone": "use1-az1"}),
    "instance-offered-in-az-name": ({"region": "us-east-1", "availability_zone": "use1-az6", "racks": [
        {"name": "r", "node_groups": [{"name": "g", "instance_type": "p5en.48xlarge", "count": 1}]}]},
        {"availability_zone": "us-east-1c"}),
    "tier-matches-instance": ({f"{H100}.tier": "gpu"}, {f"{H100}.tier": "trainium"}),
    "image-id": ({f"{H100}.image_id": "ami-0123456789abcdef0"}, {f"{H100}.image_id": "ami-XYZ"}),
    # names
    "unique-rack-names": ({"racks.2.name": "gpus"}, {"racks.2.name": "graviton"}),
    "unique-node-group-names": ({"racks.0.node_groups.1.name": "heads"}, {"racks.0.node_groups.1.name": "head"}),
    "unique-resource-names": ({"racks": [{"name": "a-b", "node_groups": [{"name": "c", **C8G}]},
                                         {"name": "a", "node_groups": [{"name": "d", **C8G}]}]},
                              {"racks.1.node_groups.0.name": "b-c"}),
    # efa
    "efa-supported": ({"racks.0.node_groups.0.efa": False}, {"racks.0.node_groups.0.efa": True}),
    "efa-interfaces": ({f"{H100}.efa_interfaces": "efa"}, {f"{H100}.efa_interfaces": "efa-only"}),
    "multi-node-accelerators-without-efa": ({f"{H100}.efa": False, f"{H100}.count": 1}, {f"{H100}.count": 2}),
    # capacity
    "min-count-within-count": ({f"{H100}.min_count": 2}, {f"{H100}.min_count": 3}),
    "reservation-id": ({f"{BLOCK}.capacity.reservation_id": "cr-0123abcd"},
                       {f"{BLOCK}.capacity.reservation_id": "cr-123"}),
    "allocation-strategy": ({f"{H100}.capacity": {"type": "spot", "allocation_strategy": "SPOT_CAPACITY_OPTIMIZED"},
                             f"{H100}.count": 1}, {f"{H100}.capacity.type": "on-demand"}),
    "usage-class-supported": ({"racks.0.node_groups.0.capacity": {"type": "capacity-block", "reservation_id": CR},
                               "racks.0.node_groups.0.instance_type": "p5.48xlarge"},
                              {"racks.0.node_groups.0.instance_type": "c8g.4xlarge"}),
    "spot-multi-node": ({f"{H100}.capacity": {"type": "spot"}, f"{H100}.count": 1}, {f"{H100}.count": 2}),
    "placement-group": ({f"{H100}.placement_group": {"name": "mine"}},
                        {f"{H100}.placement_group": {"name": "mine", "create": True}}),
    "capacity-block-batch": ({f"{BLOCK}.capacity.type": "reservation", f"{BLOCK}.placement_group": {"create": False}},
                             {f"{BLOCK}.capacity.type": "capacity-block"}),
    "capacity-block-placement-group": ({f"{BLOCK}.placement_group": {"create": False}},
                                       {f"{BLOCK}.placement_group": {"create": True}}),
    "reservation-placement-group": ({f"{BLOCK}.capacity.type": "reservation",
                                     f"{BLOCK}.placement_group": {"name": "pg"}},
                                    {f"{BLOCK}.placement_group": DELETE}),
    # storage
    "fsx-storage-type": ({f"{FSX}.storage_type": "SSD"}, {f"{FSX}.storage_type": "HDD"}),
    "fsx-capacity": ({f"{FSX}.storage_capacity_gib": 2400}, {f"{FSX}.storage_capacity_gib": 1800}),
    "fsx-throughput": ({f"{FSX}.per_unit_storage_throughput": 125}, {f"{FSX}.per_unit_storage_throughput": 200}),
    "fsx-data-repository": ({f"{FSX}.data_repository_path": "s3://my-datasets"},
                            {f"{FSX}.data_repository_path": "my-datasets/train"}),
    "fsx-export-deletions": ({f"{FSX}.export_deletions": True}, {f"{FSX}.data_repository_path": DELETE}),
    "fsx-metadata": ({f"{FSX}.metadata": {"iops": 24000}}, {f"{FSX}.metadata": {"iops": 18000}}),
    "fsx-lustre-version": ({f"{FSX}.file_system_type_version": "2.12"},
                           {f"{FSX}.file_system_type_version": "2.10"}),
    "fsx-existing": ({"network": {"vpc_id": "vpc-0123456789abcdef0", "subnet_id": "subnet-0123456789abcdef0",
                                  "security_group_ids": ["sg-0123456789abcdef0"]},
                      f"{FSX}.data_repository_path": DELETE, f"{FSX}.file_system_id": "fs-0123456789abcdef0",
                      f"{FSX}.mount_name": "abcdefgh"}, {f"{FSX}.mount_name": DELETE}),
    "break-glass-role": ({"storage.results": {"break_glass_role_arn": "arn:aws:iam::123456789012:role/ops/bg"}},
                         {"storage.results.break_glass_role_arn": "arn:aws:sts::123456789012:assumed-role/ops/me"}),
    "fsx-mount-path": ({f"{FSX}.mount_path": "/var/cache/fsx"}, {f"{FSX}.mount_path": "/var/cache"}),
    "instance-store": ({f"{H100}.instance_store": {"enabled": True, "mount_path": "/mnt/nvme"}},
                       {f"{H100}.instance_store.mount_path": "/home"}),
    # network
    "existing-network": ({"network": {"vpc_id": "vpc-0123456789abcdef0", "subnet_id": "subnet-0123456789abcdef0",
                                      "security_group_ids": ["sg-0123456789abcdef0"]}},
                         {"network.security_group_ids": ["sg-0123456789abcdef0", "sg-0123456789abcdef0"]}),
    "vpc-cidr-valid": ({"network.vpc_cidr": "10.40.0.0/16"}, {"network.vpc_cidr": "10.40.0.0/15"}),
    "vpc-cidr-private": ({"network.vpc_cidr": "172.18.0.0/16"}, {"network.vpc_cidr": "172.17.0.0/16"}),
    "vpc-cidr-large-enough": ({"network.vpc_cidr": "10.40.0.0/23"}, {"network.vpc_cidr": "10.40.0.0/24"}),
    # AWS service limits
    "batch-quotas": ({"racks": [{"name": n, "node_groups": _groups(10)} for n in "abcde"]},
                     {"racks.5": {"name": "f", "node_groups": _groups(1)}}),
    "rack-stack-size": ({"racks": lambda: [{"name": "a", "node_groups": _groups(_ceiling())}]},
                        {"racks.1": {"name": "b", "node_groups": _groups(1)},
                         "racks.0.node_groups": lambda: _groups(_ceiling() + 1)}),
    # healing
    "stuck-runnable-threshold": ({"racks.2.healing.stuck_runnable_minutes": 10},
                                 {"racks.2.healing.stuck_runnable_minutes": 9}),
}

WORKLOAD = {"name": "w", "class": "inference", "tiers": {
    "trainium": {"image": "i:neuron", "command": ["serve"]}, "gpu": {"image": "i:cuda", "command": ["serve"]}}}
WORKLOAD_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "budget-needs-work": ({"budget_usd": 40, "work": 2.0e9}, {"work": DELETE}),
    "pin-has-image": ({"placement": {"pin": "gpu"}}, {"placement.pin": "graviton"}),
    "not-all-excluded": ({"placement": {"exclude": ["gpu"]}}, {"placement.exclude": ["gpu", "trainium"]}),
    "gpus-only-on-gpu": ({"tiers.gpu.resources": {"gpus": 1}}, {"tiers.trainium.resources": {"gpus": 1}}),
    "checkpoint-within-duration": ({"expected_duration": "6h", "checkpoint_every": "30m"},
                                   {"checkpoint_every": "7h"}),
    "slo-needs-inference": ({"slo": {"p99_latency_ms": 200}}, {"class": "training"}),
    "utilization-needs-work": ({"utilization": 0.4, "work": 2.0e9}, {"work": DELETE}),
    "environment-names": ({"tiers.gpu.environment": {"MODEL": "m"}},
                          {"tiers.gpu.environment": {"AWS_BATCH_JOB_ID": "x"}}),
}


def edited(data: dict[str, Any], *edits: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for edit in edits:
        for path, value in edit.items():
            *parents, leaf = path.split(".")
            node: Any = out
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
            value = value() if callable(value) else value
            if value is DELETE:
                del node[leaf]
            elif isinstance(node, list) and int(leaf) == len(node):
                node.append(value)
            elif isinstance(node, list):
                node[int(leaf)] = value
            else:
                node[leaf] = value
    return out


def spec_rules(data: dict[str, Any], catalog: Any) -> set[str]:
    return {p.rule for p in validate_spec(parse_spec(data), catalog)}


def workload_rules(data: dict[str, Any]) -> set[str]:
    return {p.rule for p in validate_workload(workload_from_data(data))}


@pytest.mark.parametrize("rule", SPEC_CASES)
def test_a_spec_rule_fires_on_its_bad_case_alone_and_not_on_its_good_case(demo, catalog, rule):
    good_edits, bad_edits = SPEC_CASES[rule]
    good = spec_rules(edited(demo, good_edits), catalog)
    bad = spec_rules(edited(demo, good_edits, bad_edits), catalog)
    assert rule not in good
    assert bad - good == {rule}


@pytest.mark.parametrize("rule", WORKLOAD_CASES)
def test_a_workload_rule_fires_on_its_bad_case_alone_and_not_on_its_good_case(rule):
    good_edits, bad_edits = WORKLOAD_CASES[rule]
    assert workload_rules(edited(WORKLOAD, good_edits)) == set()
    assert workload_rules(edited(WORKLOAD, good_edits, bad_edits)) == {rule}


def test_every_registered_rule_has_a_row_and_every_row_a_rule():
    assert list(SPEC_CASES) == [r.id for r in RULES]
    assert list(WORKLOAD_CASES) == [r.id for r in WORKLOAD_RULES]


def test_a_rule_id_is_its_function_name_and_it_cites_its_source():
    for rule in (*RULES, *WORKLOAD_RULES):
        assert rule.id == rule.check.__name__.replace("_", "-")
        # an AWS page, or for rackform's own rules (placement's) the page of docs/ that states them
        own = rule.source.startswith("docs/") and (ROOT / rule.source.split("#")[0]).is_file()
        assert rule.source.startswith("https://docs.aws.amazon.com/") or own, (rule.id, rule.source)
