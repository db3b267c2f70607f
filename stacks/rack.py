"""RackStack: one rack's node groups, each a Batch compute environment and job queue of its own."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_constructs import (
    BenchmarkJobDefinitions,
    JobRole,
    LustreMount,
    NodeInstanceRole,
    RackNodeGroup,
    TierImage,
    WorkloadRole,
)
from cdk_constructs.repair import RackRepair
from cdk_constructs.storage import results_objects_arn, workload_objects_arn
from cdk_constructs.telemetry import RackTelemetry
from cdk_constructs.user_data import node_user_data
from rackform.capacity import of as capacity_kind
from rackform.jobs.jobdefs import job_definitions
from rackform.plan import naming
from rackform.plan.models import ExistingNetworkPlan, RackPlan

from . import handoff


class RackStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        spec_name: str,
        rack: RackPlan,
        lustre_mount_path: str | None,
        env: Environment,
        existing: ExistingNetworkPlan | None = None,
    ) -> None:
        """`lustre_mount_path`: where nodes mount the storage stack's FSx for Lustre, None without one; `existing`:
        the spec's own VPC, subnet and security groups, used as they are."""
        super().__init__(scope, id, stack_name=rack.stack_name, env=env,
                         description=f"rackform rack {rack.name}: AWS Batch node groups")
        # What the network and storage stacks made, read from their SSM parameters at each deploy of this stack
        # (stacks/handoff.py): a replaced subnet, security group or file system reaches the node groups at the
        # rack's next deploy, and no export holds the other stacks' updates back.
        subnet_id, sg_id, bucket_id = naming.HANDOFF_IDS
        subnet_value, node_security_groups = handoff.subnet_and_groups(
            self, spec_name, existing, group=handoff.NODE_SECURITY_GROUP, group_construct_id=sg_id)
        subnet = ec2.Subnet.from_subnet_id(self, subnet_id, subnet_value)
        results_bucket = s3.Bucket.from_bucket_name(
            self, bucket_id, handoff.read(self, spec_name, handoff.RESULTS_BUCKET))
        lustre_mount = None if lustre_mount_path is None else LustreMount(
            dns_name=handoff.read(self, spec_name, handoff.LUSTRE_DNS_NAME),
            mount_name=handoff.read(self, spec_name, handoff.LUSTRE_MOUNT_NAME), mount_path=lustre_mount_path)
        # Every id below comes from rackform.plan.naming, whose rack_construct_ids `rackform validate` checks for
        # collisions: a name clash is a validation error, never a jsii error halfway through synth.
        role = NodeInstanceRole(self, naming.NODE_ROLE_ID)
        job_role = JobRole(self, naming.JOB_ROLE_ID, results_objects_arn=results_objects_arn(results_bucket),
                           results_bucket_arn=results_bucket.bucket_arn)
        # `rackform run` jobs take this role (it travels on the benchmark job definitions, see jobdefs).
        workload_role = WorkloadRole(self, naming.WORKLOAD_ROLE_ID,
                                     workload_objects_arn=workload_objects_arn(results_bucket))
        images = {tier: TierImage(self, naming.tier_image_id(tier), tier=tier)
                  for tier in sorted({g.tier for g in rack.node_groups})}
        self.node_groups: dict[str, RackNodeGroup] = {}
        xid_log_group = None
        if rack.healing is not None:
            # Jobs retry on host faults whether or not the rack repairs itself: the retry strategy is the job
            # definitions' (rackform.jobs.jobdefs.RETRY_STRATEGY).
            self.repair = RackRepair(self, naming.REPAIR_ID, spec_name=spec_name, rack=rack.name,
                                     healing=rack.healing, groups=rack.node_groups, results_bucket=results_bucket)
            self.telemetry = RackTelemetry(self, naming.TELEMETRY_ID, spec_name=spec_name, rack=rack.name,
                                           groups=rack.node_groups, topic=self.repair.topic,
                                           repair_function=self.repair.function,
                                           stuck_runnable_minutes=rack.healing.stuck_runnable_minutes)
            # made before the node groups: GPU nodes ship their XID lines to it (user_data.agent_config)
            if self.telemetry.xid is not None:
                xid_log_group = self.telemetry.xid.log_group.log_group_name
                role.ship_logs_to(self.telemetry.xid.log_group)
        for group in rack.node_groups:
            ids = naming.node_group_ids(group.name)
            self.node_groups[group.name] = RackNodeGroup(
                self,
                ids["node group"],
                group=group,
                subnet=subnet,
                security_group_ids=node_security_groups,
                instance_profile_arn=role.instance_profile.instance_profile_arn,
                user_data=node_user_data(group, lustre_mount, xid_log_group=xid_log_group),
            )
            # The price travels with the job so its record can say what the run cost; only On-Demand is known here.
            on_demand = capacity_kind(group.capacity.type).price == "on-demand-snapshot"
            price = group.on_demand_usd_per_hour if on_demand else None
            BenchmarkJobDefinitions(self, ids["job definitions"], definitions=job_definitions(
                spec_name, group, image=images[group.tier].image_uri, bucket=results_bucket.bucket_name,
                job_role_arn=job_role.role.role_arn, workload_role_arn=workload_role.role.role_arn,
                fsx_mount=None if lustre_mount is None else lustre_mount.mount_path, price_usd_per_hour=price))
            CfnOutput(self, ids["job queue output"], value=group.job_queue,
                      description=f"AWS Batch job queue of node group {group.name}")
