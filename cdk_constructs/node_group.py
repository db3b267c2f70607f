"""A node group as AWS Batch sees it: launch template, cluster placement group, compute environment, job queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import CfnResource, Fn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from rackform.capacity import of as capacity_kind
from rackform.plan.models import NetworkInterfacePlan, NodeGroupPlan

from .nag import acknowledge, skip_checkov
from .user_data import TELEMETRY_NAMESPACE

# 1: a response to a container on a docker bridge (one hop further than the host) never arrives, one of the ways the
# ECS guide keeps containers from the node role ("Amazon EC2 instance metadata",
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html); user_data.node_setup_script
# sets the others. Nothing in rackform's jobs reads instance metadata (workloads.contract.NODE_IDENTITY_FILE).
IMDS_HOP_LIMIT = 1
# What Session Manager needs on the instance and nothing more (the Systems Manager guide's custom-role policy without
# session logging), not AmazonSSMManagedInstanceCore: a host-mode container may do whatever the node role may.
# Why: docs/decisions/0007-containers-blocked-from-imds.md
SESSION_MANAGER_ACTIONS = ("ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
                           "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
                           "ssmmessages:OpenDataChannel")
# The root device of the ECS-optimized AL2023 AMIs Batch uses.
ROOT_DEVICE = "/dev/xvda"
# What the CloudWatch agent calls to ship a file to a log group that exists: CreateLogStream for the node's stream,
# then PutLogEvents. It calls CreateLogGroup only when the group is missing, and DescribeLogGroups and
# PutRetentionPolicy only for a `retention_in_days` in its configuration (aws/amazon-cloudwatch-agent,
# plugins/outputs/cloudwatchlogs/internal/pusher/target.go): rackform's stacks make the group and set its retention,
# so the node may do neither. AWS's CloudWatchAgentServerPolicy grants all of them, and more, on *
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/create-iam-roles-for-cloudwatch-agent-commandline.html).
AGENT_LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")


class EfaLaunchTemplate(Construct):
    """Launch template that lays out network interfaces explicitly, as EFA needs.

    With NetworkInterfaces present, the template-level SecurityGroupIds may not be used, so `security_group_ids` go
    on every interface. No interface has a SubnetId (the Batch compute environment supplies subnets) or a public
    IP (impossible with more than one interface; nodes reach out through NAT).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        launch_template_name: str,
        network_interfaces: Sequence[NetworkInterfacePlan],
        security_group_ids: Sequence[str],
        root_volume_gib: int = 100,
        capacity_reservation_id: str | None = None,
        market_type: str | None = None,
        user_data: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """`capacity_reservation_id` targets an On-Demand Capacity Reservation, or with a `market_type` (the capacity
        kind's `launch_market_type`) a Capacity Block; `user_data` must already be a MIME multi-part archive (Batch
        merges it with its own)."""
        super().__init__(scope, id)
        if market_type is not None and capacity_reservation_id is None:
            raise ValueError(f"a {market_type} launch template needs capacity_reservation_id")
        # CloudFormation's own property names, in one plain mapping: the typed CfnLaunchTemplate structs cost a
        # runtime type check and a jsii conversion per field, per interface (33 on p5), the largest share of a
        # rack's synth time; cfn-lint checks the result against the resource schema in the tests.
        group_ids = list(security_group_ids)
        data: dict[str, Any] = {
            "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "required",
                                "HttpPutResponseHopLimit": IMDS_HOP_LIMIT},
            "BlockDeviceMappings": [{"DeviceName": ROOT_DEVICE, "Ebs": {
                "VolumeSize": root_volume_gib, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}],
            "NetworkInterfaces": [{"NetworkCardIndex": nic.network_card_index, "DeviceIndex": nic.device_index,
                                   "InterfaceType": nic.interface_type, "Groups": group_ids,
                                   "DeleteOnTermination": True} for nic in network_interfaces],
        }
        if capacity_reservation_id is not None:
            data["CapacityReservationSpecification"] = {
                "CapacityReservationTarget": {"CapacityReservationId": capacity_reservation_id}}
        if market_type is not None:
            data["InstanceMarketOptions"] = {"MarketType": market_type}
        if user_data is not None:
            data["UserData"] = Fn.base64(user_data)
        if tags:
            tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
            data["TagSpecifications"] = [{"ResourceType": kind, "Tags": tag_list} for kind in ("instance", "volume")]
        self.launch_template = CfnResource(self, "LaunchTemplate", type="AWS::EC2::LaunchTemplate", properties={
            "LaunchTemplateName": launch_template_name, "LaunchTemplateData": data})
        self.launch_template_id: str = self.launch_template.ref
        self.version: str = self.launch_template.get_att("LatestVersionNumber").to_string()


class NodeInstanceRole(Construct):
    """Instance role and profile shared by a rack's nodes: what the ECS agent, Session Manager and the CloudWatch agent
    need, nothing else.

    AmazonEC2ContainerServiceforEC2Role is the container instance role the ECS guide gives the agent (register with
    ECS, pull from ECR, write logs); SESSION_MANAGER_ACTIONS give shell access without SSH or public IPs. No S3 access:
    results are written by the benchmark containers under the job role (cdk_constructs/jobs.py JobRole).
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEC2ContainerServiceforEC2Role"),
            ],
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=list(SESSION_MANAGER_ACTIONS), resources=["*"]))
        # The CloudWatch agent's metrics (cdk_constructs/user_data.py telemetry_script), into rackform's namespace
        # only: PutMetricData takes no resource, and its cloudwatch:namespace condition key is how IAM narrows it
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html).
        self.role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                                                    conditions={"StringEquals": {
                                                        "cloudwatch:namespace": TELEMETRY_NAMESPACE}}))
        self.instance_profile = iam.InstanceProfile(self, "InstanceProfile", role=self.role)
        cfn_role = self.role.node.default_child
        session_manager = self.role.node.find_child("DefaultPolicy")
        why = ("Session Manager's instance actions on *, as the Systems Manager guide's Session Manager-only policy "
               "grants them (the ssmmessages actions take no resource type); cloudwatch:PutMetricData takes none "
               "either, and is held to rackform's namespace by its condition")
        acknowledge(session_manager, "AwsSolutions-IAM5[Resource::*]", why)
        skip_checkov(session_manager.node.default_child, "CKV_AWS_111", why)
        managed = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{}]"
        acknowledge(cfn_role, managed.format("service-role/AmazonEC2ContainerServiceforEC2Role"),
                    "the instance role AWS Batch documents for ECS container instances (register with ECS, pull from "
                    "ECR, write logs); AWS keeps it in step with the ECS agent")

    def ship_logs_to(self, log_group: logs.ILogGroup) -> None:
        """Let the nodes' CloudWatch agent write `log_group` (user_data.agent_config's `logs`), that group alone, and
        not through AmazonEC2ContainerServiceforEC2Role's logs actions, which are the ECS agent's and AWS's to
        change."""
        self.role.add_to_policy(iam.PolicyStatement(actions=list(AGENT_LOG_ACTIONS),
                                                    resources=[log_group.log_group_arn]))


class RackNodeGroup(Construct):
    """One node group: its launch template, a cluster placement group when the plan gives it one, a managed EC2
    compute environment and a job queue, all named by the plan.

    The compute environment is the L1 resource: the L2 always writes SecurityGroupIds (which Batch rejects next to
    launch-template network interfaces), appends the `optimal` instance class (aws-cdk #25562) and writes no launch
    template version.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        group: NodeGroupPlan,
        subnet: ec2.ISubnet,
        security_group_ids: Sequence[str],
        instance_profile_arn: str,
        user_data: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        capacity = group.capacity
        kind = capacity_kind(capacity.type)
        self.launch_template = EfaLaunchTemplate(
            self,
            "Template",
            launch_template_name=group.launch_template,
            network_interfaces=group.network_interfaces,
            security_group_ids=security_group_ids,
            root_volume_gib=group.root_volume_gib,
            capacity_reservation_id=capacity.reservation_id,
            market_type=kind.launch_market_type,
            user_data=user_data,
            tags={"Name": group.resource_name, "rackform:rack": group.rack, "rackform:node-group": group.name},
        )

        # CloudFormation cannot name a placement group (GroupName is read-only), so AWS generates the name and
        # the plan's name goes on the Name tag; the compute environment takes the real name from Ref. An existing
        # group (e.g. the one a Capacity Reservation was created in) is passed by the name the spec gave.
        self.placement_group: CfnResource | None = None
        placement_group_name: str | None = None
        if group.creates_placement_group:
            self.placement_group = CfnResource(self, "PlacementGroup", type="AWS::EC2::PlacementGroup", properties={
                "Strategy": "cluster", "Tags": [{"Key": "Name", "Value": group.placement_group}]})
            placement_group_name = self.placement_group.ref
        elif group.placement_group is not None:
            placement_group_name = group.placement_group

        image_id = group.image_id or ssm.StringParameter.value_for_typed_string_parameter_v2(
            self, group.ami_ssm_parameter, ssm.ParameterValueType.AWS_EC2_IMAGE_ID)
        # Plain CloudFormation properties, as for the launch template: the typed Batch structs cost a runtime type
        # check and a jsii conversion per field, per node group.
        resources: dict[str, Any] = {
            "Type": kind.batch_type,
            "AllocationStrategy": capacity.batch_allocation_strategy,
            "InstanceTypes": [group.instance_type],
            "MinvCpus": group.min_vcpus,
            "MaxvCpus": group.count * group.vcpus_per_node,
            "Subnets": [subnet.subnet_id],
            "InstanceRole": instance_profile_arn,
            "LaunchTemplate": {"LaunchTemplateId": self.launch_template.launch_template_id,
                               "Version": self.launch_template.version},
            "Ec2Configuration": [{"ImageType": group.batch_image_type, "ImageIdOverride": image_id}],
        }
        if placement_group_name is not None:
            resources["PlacementGroup"] = placement_group_name
        self.compute_environment = CfnResource(self, "ComputeEnvironment", type="AWS::Batch::ComputeEnvironment",
                                               properties={
            "Type": "MANAGED",
            "ComputeEnvironmentName": group.compute_environment,
            "State": "ENABLED",
            # A named resource cannot be replaced in place; with this false, instance-level changes (template
            # version, AMI) roll out as Batch infrastructure updates instead of a replacement CloudFormation
            # would refuse.
            "ReplaceComputeEnvironment": False,
            "ComputeResources": resources,
        })
        self.job_queue = CfnResource(self, "JobQueue", type="AWS::Batch::JobQueue", properties={
            "JobQueueName": group.job_queue,
            "Priority": 1,
            "State": "ENABLED",
            "ComputeEnvironmentOrder": [{"ComputeEnvironment": self.compute_environment.get_att(
                "ComputeEnvironmentArn").to_string(), "Order": 1}],
        })
