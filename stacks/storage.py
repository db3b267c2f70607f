"""StorageStack: results bucket and FSx for Lustre. Termination-protected: it holds data."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk_constructs import LustreFileSystem, LustreMount, ResultsBucket, ResultsTable
from rackform.plan import StoragePlan
from workloads.benchmarks import BENCHMARKS


class StorageStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        storage: StoragePlan,
        subnet: ec2.ISubnet,
        fsx_security_group: ec2.ISecurityGroup,
        env: Environment,
    ) -> None:
        super().__init__(scope, id, stack_name=storage.stack_name, env=env, termination_protection=True,
                         description="rackform storage: results bucket and FSx for Lustre")
        results = ResultsBucket(self, "Results", object_lock=storage.results.object_lock,
                                break_glass_role_arn=storage.results.break_glass_role_arn)
        self.bucket = results.bucket
        self.results_objects_arn = results.results_objects_arn
        CfnOutput(self, "ResultsBucketName", value=self.bucket.bucket_name)
        # Glue names allow no hyphens; the stack name is unique per spec and never changes with the racks.
        athena = ResultsTable(self, "Athena", bucket=self.bucket, database_name=storage.stack_name.replace("-", "_"),
                              benchmarks=sorted(BENCHMARKS))
        CfnOutput(self, "ResultsTableName", value=f"{athena.database_name}.{athena.table_name}")

        self.lustre_mount: LustreMount | None = None
        if storage.fsx_lustre is not None:
            cfg = storage.fsx_lustre
            lustre = LustreFileSystem(
                self,
                "Lustre",
                subnet=subnet,
                security_group=fsx_security_group,
                storage_capacity_gib=cfg.storage_capacity_gib,
                deployment_type=cfg.deployment_type,
                per_unit_storage_throughput_mbps_per_tib=cfg.per_unit_storage_throughput,
                storage_type=cfg.storage_type,
                drive_cache_type=cfg.drive_cache_type,
                data_repository_path=cfg.data_repository_path,
                export_deletions=cfg.export_deletions,
            )
            self.lustre_mount = LustreMount(dns_name=lustre.dns_name, mount_name=lustre.mount_name,
                                            mount_path=cfg.mount_path)
            CfnOutput(self, "LustreDnsName", value=lustre.dns_name)
            CfnOutput(self, "LustreMountName", value=lustre.mount_name)
