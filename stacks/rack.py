"""RackStack: one rack's node groups, each a Batch compute environment and job queue of its own."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk_constructs import (
    BenchmarkJobDefinitions,
    JobRole,
    LustreMount,
    NodeInstanceRole,
    RackNodeGroup,
    TierImage,
)
from cdk_constructs.user_data import node_user_data
from rackform import naming
from rackform.plan import RackPlan
from rackform.jobs.jobdefs import job_definitions


class RackStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        spec_name: str,
        rack: RackPlan,
        subnet: ec2.ISubnet,
        node_security_group: ec2.ISecurityGroup,
        results_bucket_name: str,
        results_objects_arn: str,
        lustre_mount: LustreMount | None,
        env: Environment,
    ) -> None:
        super().__init__(scope, id, stack_name=rack.stack_name, env=env,
                         description=f"rackform rack {rack.name}: AWS Batch node groups")
        # Every id below comes from rackform.naming, whose rack_construct_ids `rackform validate` checks for
        # collisions: a name clash is a validation error, never a jsii error halfway through synth.
        role = NodeInstanceRole(self, naming.NODE_ROLE_ID)
        job_role = JobRole(self, naming.JOB_ROLE_ID, results_objects_arn=results_objects_arn)
        images = {tier: TierImage(self, naming.tier_image_id(tier), tier=tier)
                  for tier in sorted({g.tier for g in rack.node_groups})}
        self.node_groups: dict[str, RackNodeGroup] = {}
        for group in rack.node_groups:
            ids = naming.node_group_ids(group.name)
            self.node_groups[group.name] = RackNodeGroup(
                self,
                ids["node group"],
                group=group,
                subnet=subnet,
                security_group=node_security_group,
                instance_profile_arn=role.instance_profile.instance_profile_arn,
                user_data=node_user_data(group, lustre_mount),
            )
            # The price travels with the job so its record can say what the run cost; only On-Demand is known here.
            price = group.on_demand_usd_per_hour if group.capacity.type == "on-demand" else None
            BenchmarkJobDefinitions(self, ids["job definitions"], definitions=job_definitions(
                spec_name, group, image=images[group.tier].image_uri, bucket=results_bucket_name,
                job_role_arn=job_role.role.role_arn,
                fsx_mount=None if lustre_mount is None else lustre_mount.mount_path, price_usd_per_hour=price))
            CfnOutput(self, ids["job queue output"], value=group.job_queue,
                      description=f"AWS Batch job queue of node group {group.name}")
