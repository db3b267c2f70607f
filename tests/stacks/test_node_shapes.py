"""Node groups as teams build them (issue 24): the compute environment a group's plan gives, synthesized alone (a
rack stack's other resources do not change with these fields)."""

from __future__ import annotations

from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from cdk_constructs.node_group import RackNodeGroup
from rackform.pipeline import load_plan
from rackform.plan.models import NodeGroupPlan
from tests.conftest import dump


def compute_resources(group: NodeGroupPlan) -> dict:
    stack = Stack(App(), "T", env={"account": "123456789012", "region": "us-east-2"})
    RackNodeGroup(stack, "G", group=group, subnet=ec2.Subnet.from_subnet_id(stack, "S", "subnet-0123456789abcdef0"),
                  security_group=ec2.SecurityGroup.from_security_group_id(stack, "SG", "sg-0123456789abcdef0"),
                  instance_profile_arn="arn:aws:iam::123456789012:instance-profile/p")
    [ce] = Template.from_stack(stack).find_resources("AWS::Batch::ComputeEnvironment").values()
    return ce["Properties"]["ComputeResources"]


def test_warm_nodes_are_the_compute_environments_min_vcpus(tmp_path, demo):
    demo["racks"][2]["node_groups"][0]["min_count"] = 1
    group = load_plan(dump(tmp_path, demo)).racks[2].node_groups[0]
    res = compute_resources(group)
    assert (res["MinvCpus"], res["MaxvCpus"]) == (group.vcpus_per_node, 2 * group.vcpus_per_node)
