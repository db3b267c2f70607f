"""The cluster's network: one AZ, nodes in a private subnet, and the security groups EFA and Lustre need."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from rackform.reference.catalog import is_zone_id
from rackform.plan.naming import construct_id

from .nag import skip_checkov

# FSx for Lustre: LNET on 988, and 1018-1023 for the Lustre client's reserved ports.
LUSTRE_PORTS: tuple[ec2.Port, ...] = (ec2.Port.tcp(988), ec2.Port.tcp_range(1018, 1023))
# VPC flow logs are kept a year (the CIS/checkov floor), and outlive the stack like every other audit trail.
FLOW_LOG_RETENTION = logs.RetentionDays.ONE_YEAR


class SingleAzVpc(Construct):
    """A VPC in exactly one AZ: EFA and cluster placement groups do not span AZs, so a second AZ buys nothing.

    Nodes and FSx live in the private subnet; the public subnet holds only the NAT gateway. S3 takes a gateway
    endpoint, each name in `interface_endpoints` (e.g. "ecr.api") an interface endpoint with private DNS; flow logs of
    all traffic are kept a year. `availability_zone` is an AZ name or an AZ ID (use1-az6), which places both subnets
    by `AvailabilityZoneId`. Why: docs/decisions/0013-one-az-by-az-id.md
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cidr: str,
        availability_zone: str,
        private_cidr_mask: int,
        public_cidr_mask: int,
        interface_endpoints: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id)
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            availability_zones=[availability_zone],
            # Largest first, matching how the plan sized the VPC.
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                                        cidr_mask=private_cidr_mask),
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=public_cidr_mask),
            ],
            nat_gateways=1,
            # True would add a Lambda-backed custom resource (an asset to bootstrap and publish) to empty a default
            # group that nothing here uses.
            restrict_default_security_group=False,
        )
        Validations.of(self.vpc).acknowledge(Acknowledgment(
            id="CloudFormation-Validate::W3010",
            reason="the AZ is pinned on purpose: EFA, cluster placement groups and Capacity Blocks are bound to one AZ",
        ))
        if is_zone_id(availability_zone):
            # ec2.Vpc knows only AZ names: it was given the ID in their place, and each subnet is moved from the
            # AvailabilityZone property to AvailabilityZoneId (a subnet takes one or the other, not both).
            for subnet in (*self.vpc.private_subnets, *self.vpc.public_subnets):
                cfn: ec2.CfnSubnet = subnet.node.default_child
                cfn.availability_zone = None
                cfn.availability_zone_id = availability_zone
        self.private_subnet: ec2.ISubnet = self.vpc.private_subnets[0]
        # Every accepted and rejected flow, to CloudWatch Logs (EFA's OS-bypass traffic is not IP and never shows).
        self.flow_log_group = logs.LogGroup(self, "FlowLogs", retention=FLOW_LOG_RETENTION)
        skip_checkov(self.flow_log_group.node.default_child, "CKV_AWS_158",
                     "CloudWatch Logs encrypts all log data at rest already; a customer managed key would add a key "
                     "policy and a monthly charge per cluster to guard flow records, which carry no payload")
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
                              traffic_type=ec2.FlowLogTrafficType.ALL)
        self.vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[private])
        self.endpoint_sg: ec2.SecurityGroup | None = None
        if interface_endpoints:
            # One group for all interface endpoints, HTTPS in from the VPC's CIDR written out (CDK's default rule
            # names the CIDR through Fn::GetAtt, which no template checker can evaluate); endpoints start no
            # connections, so no egress.
            self.endpoint_sg = ec2.SecurityGroup(self, "EndpointSecurityGroup", vpc=self.vpc, allow_all_outbound=False,
                                                 description="rackform interface endpoints: HTTPS from the VPC")
            self.endpoint_sg.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
        for name in interface_endpoints:
            self.vpc.add_interface_endpoint(
                f"{construct_id(name.replace('.', '-'))}Endpoint",
                service=ec2.InterfaceVpcEndpointAwsService(name),
                private_dns_enabled=True,
                subnets=private,
                security_groups=[self.endpoint_sg],
                open=False,
            )


class ClusterSecurityGroups(Construct):
    """The node group and the FSx group, made together so each can name the other before either is used (and the FSx
    group exists before the file system), and the rules multi-node jobs need on the VPC's default group: their task
    ENIs take it, since the compute environments have no security groups of their own.
    Why: docs/decisions/0008-multi-node-default-security-group.md
    """

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc, default_security_group_id: str | None = None) \
            -> None:
        super().__init__(scope, id)
        # allow_all_outbound=False: with it True, CDK folds every egress rule into one 0.0.0.0/0 rule and the
        # self-referencing egress rule EFA requires disappears.
        self.node_sg = ec2.SecurityGroup(self, "Nodes", vpc=vpc, allow_all_outbound=False,
                                         description="rackform nodes: EFA between nodes, Lustre, HTTPS out")
        self.fsx_sg = ec2.SecurityGroup(self, "Lustre", vpc=vpc, allow_all_outbound=True,
                                        description="rackform FSx for Lustre: LNET from nodes and itself")

        # EFA's OS-bypass traffic is not TCP/UDP: it needs all protocols, both directions, within the group.
        self.node_sg.add_ingress_rule(self.node_sg, ec2.Port.all_traffic(), "EFA and MPI between nodes")
        self.node_sg.add_egress_rule(self.node_sg, ec2.Port.all_traffic(), "EFA and MPI between nodes")
        # ECR, S3, ECS/Batch, SSM and CloudWatch are all HTTPS, through the endpoints or the NAT gateway.
        self.node_sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and registries")

        for port in LUSTRE_PORTS:
            self.node_sg.add_egress_rule(self.fsx_sg, port, "Lustre client to FSx")
            # FSx documents these for client groups too: Lustre servers open connections back to clients.
            self.node_sg.add_ingress_rule(self.fsx_sg, port, "Lustre servers to client")
            self.fsx_sg.add_ingress_rule(self.node_sg, port, "Lustre clients")
            self.fsx_sg.add_ingress_rule(self.fsx_sg, port, "Lustre servers among themselves")

        if default_security_group_id is not None:
            sg = default_security_group_id
            for proto in ("tcp", "udp"):
                ec2.CfnSecurityGroupIngress(
                    self, f"JobTasksIn{proto.upper()}", group_id=sg, source_security_group_id=sg, ip_protocol=proto,
                    from_port=0, to_port=65535, description=f"multi-node job tasks: {proto.upper()} between nodes")
            ec2.CfnSecurityGroupEgress(
                self, "JobTasksOut", group_id=sg, destination_security_group_id=sg, ip_protocol="-1",
                description="multi-node job tasks: to the other nodes")
            ec2.CfnSecurityGroupEgress(
                self, "JobTasksHttps", group_id=sg, cidr_ip="0.0.0.0/0", ip_protocol="tcp", from_port=443,
                to_port=443, description="multi-node job tasks: HTTPS to S3 and AWS APIs")
