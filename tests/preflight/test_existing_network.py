"""Preflight of an existing network (issue 24 item 3): the subnet's VPC, AZ and free addresses, its way to S3 and
ECR, and the security groups' EFA self-rules; pure checks on plain data, then the reads on moto."""

from __future__ import annotations

from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from rackform.cli import checked_plan
from rackform.preflight.checks import check_existing_network
from rackform.preflight.fetch import fetch_existing_network, fetch_security_group, fetch_subnet
from rackform.preflight.state import ApiError, ExistingNetworkState, SecurityGroupState, SubnetState
from tests.conftest import ROOT

VPC, SUBNET, SG = "vpc-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60718", "sg-0a1b2c3d4e5f60718"
GOOD_SUBNET = SubnetState(vpc_id=VPC, availability_zone="us-east-1b", availability_zone_id="use1-az6",
                          free_addresses=250, default_route="nat-0123456789abcdef0", s3_gateway_endpoint=False,
                          ecr_endpoints=False)
EFA_GROUP = SecurityGroupState(vpc_id=VPC, self_ingress=True, self_egress=True)


@pytest.fixture(scope="module")
def plan():
    return checked_plan(str(ROOT / "examples" / "existing-network.yaml"))


def checks(plan, subnet=GOOD_SUBNET, group=EFA_GROUP) -> dict[str, tuple[str, str]]:
    found = check_existing_network(plan, ExistingNetworkState(subnet=subnet, security_groups={SG: group}))
    return {c.name.split()[0]: (c.status, c.found) for c in found}


def test_a_ready_network_passes(plan):
    assert checks(plan) == {"subnet": ("ok", "in use1-az6, 250 free addresses"),
                            "route": ("ok", "default route via nat-0123456789abcdef0"),
                            "security": ("ok", "self-referencing all-traffic rules in and out")}


@pytest.mark.parametrize("subnet,says", [
    (replace(GOOD_SUBNET, availability_zone_id="use1-az1"), "is in use1-az1"),
    (replace(GOOD_SUBNET, vpc_id="vpc-00000000"), "is in vpc-00000000, not vpc-0a1b2c3d4e5f60718"),
    (replace(GOOD_SUBNET, free_addresses=71), "has 71 free addresses"),  # the example needs 72
])
def test_the_subnet_must_be_in_the_vpc_and_az_with_room(plan, subnet, says):
    assert checks(plan, subnet=subnet)["subnet"] == ("blocker", says)


@pytest.mark.parametrize("route,s3,ecr,status", [
    (None, True, True, "ok"),  # endpoints only: S3's gateway and ECR's interfaces
    (None, True, False, "blocker"),  # S3 but no way to ECR
    (None, False, True, "blocker"),  # ECR's layers come from S3
    ("igw-0123456789abcdef0", False, False, "blocker"),  # the nodes have no public address
    ("tgw-0123456789abcdef0", False, False, "ok"),
])
def test_nodes_need_a_way_to_s3_and_ecr(plan, route, s3, ecr, status):
    subnet = replace(GOOD_SUBNET, default_route=route, s3_gateway_endpoint=s3, ecr_endpoints=ecr)
    assert checks(plan, subnet=subnet)["route"][0] == status


@pytest.mark.parametrize("group,status", [
    (replace(EFA_GROUP, self_egress=False), "blocker"),
    (replace(EFA_GROUP, self_ingress=False), "blocker"),
    (replace(EFA_GROUP, vpc_id="vpc-00000000"), "blocker"),
    (None, "blocker"),
    (ApiError("ec2:DescribeSecurityGroups", "denied", denied=True), "unknown"),
])
def test_a_group_must_allow_all_traffic_to_and_from_itself(plan, group, status):
    assert checks(plan, group=group)["security"][0] == status


def test_a_created_network_has_no_such_checks(tmp_path, demo):
    from rackform.pipeline import load_plan
    from tests.conftest import dump

    assert check_existing_network(load_plan(dump(tmp_path, demo)), None) == []


@mock_aws
def test_the_reads_on_moto(plan):
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]
    sg = ec2.create_security_group(GroupName="efa", Description="efa", VpcId=vpc)["GroupId"]
    bare = fetch_security_group(ec2, sg)
    assert isinstance(bare, SecurityGroupState) and (bare.vpc_id, bare.self_ingress) == (vpc, False)
    pair = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]}]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=pair)
    ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=pair)
    assert fetch_security_group(ec2, sg) == SecurityGroupState(vpc, True, True)
    assert fetch_security_group(ec2, "sg-00000000000000000") is None

    found = fetch_subnet(ec2, subnet["SubnetId"], "us-east-1")
    assert isinstance(found, SubnetState)
    assert (found.vpc_id, found.availability_zone, found.default_route) == (vpc, "us-east-1a", None)
    assert found.free_addresses == 251 and not found.s3_gateway_endpoint  # a /24 less AWS's 5
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet["SubnetId"])
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3", VpcEndpointType="Gateway",
                            RouteTableIds=[table])
    routed = fetch_subnet(ec2, subnet["SubnetId"], "us-east-1")
    assert isinstance(routed, SubnetState) and (routed.default_route, routed.s3_gateway_endpoint) == (igw, True)
    assert fetch_subnet(ec2, "subnet-00000000000000000", "us-east-1") is None
    assert fetch_existing_network(ec2, plan.model_copy(update={"network": plan.network.model_copy(
        update={"existing": None})})) is None
