"""StorageStack: results bucket and FSx for Lustre. Termination-protected: it holds data."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk_constructs import LustreFileSystem, ResultsBucket, ResultsTable
from rackform.plan.models import ExistingNetworkPlan, StoragePlan
from rackform.spec.models import FsxLustre

from . import handoff


class StorageStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        spec_name: str,
        storage: StoragePlan,
        env: Environment,
        existing: ExistingNetworkPlan | None = None,
    ) -> None:
        """`existing`: the spec's own VPC, subnet and security groups, which the file system then uses."""
        super().__init__(scope, id, stack_name=storage.stack_name, env=env, termination_protection=True,
                         description="rackform storage: results bucket and FSx for Lustre")
        results = ResultsBucket(self, "Results", object_lock=storage.results.object_lock,
                                break_glass_role_arn=storage.results.break_glass_role_arn)
        self.bucket = results.bucket
        CfnOutput(self, "ResultsBucketName", value=self.bucket.bucket_name)
        handoff.publish(self, spec_name, handoff.RESULTS_BUCKET, self.bucket.bucket_name)
        # The rack stacks of earlier releases imported the bucket's name and ARN (handoff.keep_export).
        handoff.keep_export(self, self.bucket.bucket_name)
        handoff.keep_export(self, self.bucket.bucket_arn)
        # Glue names allow no hyphens; the stack name is unique per spec and never changes with the racks.
        athena = ResultsTable(self, "Athena", bucket=self.bucket, database_name=storage.stack_name.replace("-", "_"))
        CfnOutput(self, "ResultsTableName", value=f"{athena.database_name}.{athena.table_name}")

        if storage.fsx_lustre is not None:
            cfg = storage.fsx_lustre
            if cfg.file_system_id is None:
                dns_name, mount_name = self._lustre(spec_name, cfg, existing)
            else:
                # An existing file system is mounted, not created: its DNS name is <id>.fsx.<region>.<domain>
                # (DescribeFileSystems' DNSName, https://docs.aws.amazon.com/fsx/latest/APIReference/API_FileSystem.html)
                # and its mount name the spec's, which `rackform preflight` compares with DescribeFileSystems.
                dns_name = f"{cfg.file_system_id}.fsx.{Aws.REGION}.{Aws.URL_SUFFIX}"
                mount_name = cfg.mount_name or ""
            CfnOutput(self, "LustreDnsName", value=dns_name)
            CfnOutput(self, "LustreMountName", value=mount_name)
            for key, value in ((handoff.LUSTRE_DNS_NAME, dns_name), (handoff.LUSTRE_MOUNT_NAME, mount_name)):
                handoff.publish(self, spec_name, key, value)
                if cfg.file_system_id is None:
                    handoff.keep_export(self, value)

    def _lustre(self, spec_name: str, cfg: FsxLustre, existing: ExistingNetworkPlan | None) -> tuple[str, str]:
        """The file system rackform creates: its DNS name and mount name."""
        # From the network stack's parameters: a replaced subnet reaches the file system at this stack's next
        # deploy (SubnetIds: Replacement), with no export holding the network stack back. In an existing network,
        # the spec's subnet and groups, whose self-referencing rules carry Lustre's ports too.
        subnet_id, group_ids = handoff.subnet_and_groups(self, spec_name, existing, group=handoff.FSX_SECURITY_GROUP,
                                                         group_construct_id="LustreSecurityGroup")
        lustre = LustreFileSystem(
            self,
            "Lustre",
            subnet=ec2.Subnet.from_subnet_id(self, "PrivateSubnet", subnet_id),
            security_group_ids=group_ids,
            storage_capacity_gib=cfg.storage_capacity_gib,
            deployment_type=cfg.deployment_type,
            per_unit_storage_throughput_mbps_per_tib=cfg.per_unit_storage_throughput,
            storage_type=cfg.storage_type,
            drive_cache_type=cfg.drive_cache_type,
            data_repository_path=cfg.data_repository_path,
            export_deletions=cfg.export_deletions,
            file_system_type_version=cfg.file_system_type_version,
            data_compression_type=cfg.data_compression,
            metadata=cfg.metadata,
        )
        return lustre.dns_name, lustre.mount_name
