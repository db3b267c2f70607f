"""Racks in an existing network (issue 24 item 3): network.{vpc_id, subnet_id, security_group_ids} validated
offline, planned and priced without a network of rackform's, and synthesized creating nothing that exists (the gates
run over examples/existing-network.yaml in test_gates.py)."""

from __future__ import annotations

import json

import pytest

from rackform.cli import checked_plan
from rackform.plan import cost
from rackform.reference.prices import load_prices
from rackform.render.plan import render_plan
from rackform.spec.models import parse_spec
from rackform.validate import validate_spec
from tests.conftest import ROOT, Synth, synth

EXISTING = ROOT / "examples" / "existing-network.yaml"
VPC, SUBNET, SG = "vpc-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60718", "sg-0a1b2c3d4e5f60718"
NETWORK = {"vpc_id": VPC, "subnet_id": SUBNET, "security_group_ids": [SG]}


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> Synth:
    return synth(checked_plan(str(EXISTING)), tmp_path_factory.mktemp("existing-network"))


def network_problems(demo, catalog, **network) -> list[tuple[str, str]]:
    demo["network"] = network
    return [(p.path, p.message) for p in validate_spec(parse_spec(demo), catalog) if p.path.startswith("network")]


def test_a_whole_existing_network_validates(demo, catalog):
    assert network_problems(demo, catalog, **NETWORK) == []


@pytest.mark.parametrize("network,path,says", [
    ({"vpc_id": VPC}, "network.subnet_id", "subnet_id is missing"),
    ({**NETWORK, "vpc_id": "vpc-12"}, "network.vpc_id", "is not a vpc id"),
    ({**NETWORK, "subnet_id": "subnet-XYZ00000"}, "network.subnet_id", "is not a subnet id"),
    ({**NETWORK, "security_group_ids": ["sg-1"]}, "network.security_group_ids[0]", "is not a security group id"),
    ({**NETWORK, "security_group_ids": []}, "network.security_group_ids", "give 1 to 5"),
    ({**NETWORK, "security_group_ids": [f"sg-0000000{i}" for i in range(6)]}, "network.security_group_ids",
     "give 1 to 5"),
    ({**NETWORK, "vpc_cidr": "10.40.0.0/16"}, "network.vpc_cidr", "is for a VPC rackform creates"),
    ({**NETWORK, "interface_endpoints": False}, "network.interface_endpoints", "is for a VPC rackform creates"),
])
def test_an_existing_network_is_named_whole_and_by_its_ids(demo, catalog, network, path, says):
    found = network_problems(demo, catalog, **network)
    assert [p for p, m in found if says in m] == [path], found


def test_the_plan_and_cost_hold_no_network_of_rackforms(existing):
    plan = existing.plan
    assert plan.network.existing is not None and plan.network.existing.security_group_ids == (SG,)
    assert plan.network.interface_endpoints == ()
    assert plan.stack_names() == ["corp-storage", "corp-rack-gpu", "corp-rack-graviton"]
    assert f"network  existing VPC {VPC}, subnet {SUBNET}, security groups {SG}: rackform creates no VPC" \
        in render_plan(plan)
    report = cost.cost_plan(plan, load_prices())
    assert [ln for ln in report.lines if ln.category == "network"] == []
    assert any(VPC in item for item in report.not_included)
    assert not any("NAT gateway's public IPv4" in item for item in report.not_included)  # not ours to pay


def test_nothing_that_exists_is_created(existing):
    assert set(existing.raw) == set(existing.plan.stack_names())
    created = {r["Type"] for t in existing.raw.values() for r in t["Resources"].values()}
    assert not created & {"AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::NatGateway", "AWS::EC2::VPCEndpoint",
                          "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress", "AWS::EC2::FlowLog"}


def test_nodes_and_the_file_system_use_the_given_subnet_and_groups(existing):
    def of_type(kind: str) -> list[dict]:
        return [r["Properties"] for t in existing.raw.values() for r in t["Resources"].values() if r["Type"] == kind]

    for ce in of_type("AWS::Batch::ComputeEnvironment"):
        assert ce["ComputeResources"]["Subnets"] == [SUBNET]
    for lt in of_type("AWS::EC2::LaunchTemplate"):
        assert {json.dumps(n["Groups"]) for n in lt["LaunchTemplateData"]["NetworkInterfaces"]} == {json.dumps([SG])}
    [fs] = of_type("AWS::FSx::FileSystem")
    assert (fs["SubnetIds"], fs["SecurityGroupIds"]) == ([SUBNET], [SG])
