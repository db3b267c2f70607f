"""Node groups as teams build them (issue 24): the compute environment a group's plan gives, synthesized alone (a
rack stack's other resources do not change with these fields)."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from cdk_constructs.node_group import RackNodeGroup
from rackform.capacity import KINDS
from rackform.pipeline import load_plan
from rackform.plan.models import CapacityPlan, NodeGroupPlan
from rackform.render.plan import render_plan
from rackform.spec.models import parse_spec
from rackform.validate import validate_spec
from tests.conftest import dump


def compute_resources(group: NodeGroupPlan) -> dict:
    stack = Stack(App(), "T", env={"account": "123456789012", "region": "us-east-2"})
    RackNodeGroup(stack, "G", group=group, subnet=ec2.Subnet.from_subnet_id(stack, "S", "subnet-0123456789abcdef0"),
                  security_group_ids=["sg-0123456789abcdef0"],
                  instance_profile_arn="arn:aws:iam::123456789012:instance-profile/p")
    [ce] = Template.from_stack(stack).find_resources("AWS::Batch::ComputeEnvironment").values()
    return ce["Properties"]["ComputeResources"]


def test_warm_nodes_are_the_compute_environments_min_vcpus(tmp_path, demo):
    demo["racks"][2]["node_groups"][0]["min_count"] = 1
    group = load_plan(dump(tmp_path, demo)).racks[2].node_groups[0]
    res = compute_resources(group)
    assert (res["MinvCpus"], res["MaxvCpus"]) == (group.vcpus_per_node, 2 * group.vcpus_per_node)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_defaults_to_a_strategy_it_allows_and_never_best_fit(kind):
    facts = KINDS[kind]
    assert facts.batch_allocation_strategy == facts.batch_allocation_strategies[0]
    assert "BEST_FIT" not in facts.batch_allocation_strategies  # no infrastructure updates with it


def test_a_spot_group_chooses_its_allocation_strategy(tmp_path, demo, catalog):
    demo["racks"][2]["node_groups"][0].update(count=1, capacity={"type": "spot",
                                                                 "allocation_strategy": "SPOT_CAPACITY_OPTIMIZED"})
    plan = load_plan(dump(tmp_path, demo))
    group = plan.racks[2].node_groups[0]
    assert compute_resources(group)["AllocationStrategy"] == "SPOT_CAPACITY_OPTIMIZED"
    assert "spot (SPOT_CAPACITY_OPTIMIZED)" in render_plan(plan)
    default = group.model_copy(update={"capacity": CapacityPlan(type="spot")})
    assert compute_resources(default)["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    demo["racks"][2]["node_groups"][0]["capacity"]["type"] = "on-demand"
    [p] = [p for p in validate_spec(parse_spec(demo), catalog) if p.rule == "allocation-strategy"]
    assert p.path == "racks[2].node_groups[0].capacity.allocation_strategy"
    assert "On-Demand compute environments have no choice of allocation strategy" in p.message


def test_a_groups_own_ami_overrides_the_ecs_parameter(tmp_path, demo):
    demo["racks"][2]["node_groups"][0]["image_id"] = "ami-0123456789abcdef0"
    group = load_plan(dump(tmp_path, demo)).racks[2].node_groups[0]
    [ec2_config] = compute_resources(group)["Ec2Configuration"]
    assert ec2_config == {"ImageType": group.batch_image_type, "ImageIdOverride": "ami-0123456789abcdef0"}
