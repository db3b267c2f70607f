"""RackStack: one rack's node groups, each a Batch compute environment and job queue of its own."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk_constructs import LustreMount, NodeInstanceRole, RackNodeGroup, lustre_mount_script, mime_multipart
from rackform.naming import construct_id
from rackform.plan import RackPlan


class RackStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        rack: RackPlan,
        subnet: ec2.ISubnet,
        node_security_group: ec2.ISecurityGroup,
        results_objects_arn: str,
        lustre_mount: LustreMount | None,
        env: Environment,
    ) -> None:
        super().__init__(scope, id, stack_name=rack.stack_name, env=env,
                         description=f"rackform rack {rack.name}: AWS Batch node groups")
        role = NodeInstanceRole(self, "Nodes", results_objects_arn=results_objects_arn)
        user_data = None if lustre_mount is None else mime_multipart(lustre_mount_script(lustre_mount))
        self.node_groups: dict[str, RackNodeGroup] = {}
        for group in rack.node_groups:
            cid = construct_id(group.name)
            self.node_groups[group.name] = RackNodeGroup(
                self,
                cid,
                group=group,
                subnet=subnet,
                security_group=node_security_group,
                instance_profile_arn=role.instance_profile.instance_profile_arn,
                user_data=user_data,
            )
            CfnOutput(self, f"{cid}JobQueue", value=group.job_queue,
                      description=f"AWS Batch job queue of node group {group.name}")
