"""NetworkStack: the VPC and security groups every other stack builds on."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from cdk_constructs import ClusterSecurityGroups, SingleAzVpc
from rackform.plan.models import NetworkPlan

from . import handoff


class NetworkStack(Stack):
    def __init__(self, scope: Construct, id: str, *, spec_name: str, network: NetworkPlan, env: Environment) -> None:
        super().__init__(scope, id, stack_name=network.stack_name, env=env,
                         description=f"rackform network: single-AZ VPC in {network.availability_zone}")
        self._availability_zone = network.availability_zone
        vpc = SingleAzVpc(
            self,
            "Network",
            cidr=network.vpc_cidr,
            availability_zone=network.availability_zone,
            private_cidr_mask=network.private_subnet.cidr_mask,
            public_cidr_mask=network.public_subnet.cidr_mask,
            interface_endpoints=network.interface_endpoints,
        )
        groups = ClusterSecurityGroups(self, "SecurityGroups", vpc=vpc.vpc,
                                       default_security_group_id=vpc.vpc.vpc_default_security_group)
        self.vpc = vpc.vpc
        self.private_subnet = vpc.private_subnet
        self.node_sg = groups.node_sg
        self.fsx_sg = groups.fsx_sg
        CfnOutput(self, "VpcId", value=self.vpc.vpc_id)
        CfnOutput(self, "PrivateSubnetId", value=self.private_subnet.subnet_id)
        for key, value in ((handoff.SUBNET, self.private_subnet.subnet_id),
                           (handoff.NODE_SECURITY_GROUP, self.node_sg.security_group_id),
                           (handoff.FSX_SECURITY_GROUP, self.fsx_sg.security_group_id)):
            handoff.publish(self, spec_name, key, value)
            handoff.keep_export(self, value)

    @property
    def availability_zones(self) -> list[str]:
        # The plan already names the one AZ. Without this, a stack with a known account asks the CLI for an AZ
        # context lookup (DescribeAvailabilityZones through the bootstrap lookup role) that synth without
        # credentials cannot do, and that would record the Region's AZs in cdk.context.json for no use. An AZ ID
        # stands in for the name here; SingleAzVpc places the subnets by it.
        return [self._availability_zone]
