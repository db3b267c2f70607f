"""Durable storage: the results bucket and the FSx for Lustre scratch file system."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_fsx as fsx
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from rackform.spec.models import FsxMetadata, ObjectLock
from workloads.layout import REPAIRS_PREFIX, RESULTS_PREFIX, WORKLOADS_PREFIX

from .jobs import WORKLOAD_ROLE_PATH
from .nag import acknowledge, skip_checkov
from .repair import REPAIR_ROLE_PATH

# Where the S3 data repository appears inside the file system (clients see <mount_path>/data).
DATA_REPOSITORY_FILE_SYSTEM_PATH = "/data"
# The spec's default Lustre version: the AL2023 `lustre-client` package is a 2.15 client, and data repository
# associations need 2.12 or later.
LUSTRE_VERSION = "2.15"
ALL_S3_EVENTS = ["NEW", "CHANGED", "DELETED"]
# Without DELETED, a file deleted on the file system leaves its object in the bucket: a job that deletes /fsx/data/*
# cannot delete the user's dataset. The events are independent, any combination is allowed
# (AutoExportPolicy: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-fsx-datarepositoryassociation-autoexportpolicy.html).
EXPORT_WITHOUT_DELETIONS = ["NEW", "CHANGED"]


class ResultsBucket(Construct):
    """Private, versioned, TLS-only bucket that outlives the stack: results are the point of a benchmark run.

    `object_lock`: S3 Object Lock's default retention for every new object version; `break_glass_role_arn`: the one
    principal the bucket policy lets delete object versions, change versioning or bypass governance retention.
    """

    def __init__(self, scope: Construct, id: str, *, object_lock: ObjectLock | None = None,
                 break_glass_role_arn: str | None = None) -> None:
        super().__init__(scope, id)
        retention = None
        if object_lock is not None:
            # Object Lock's default retention: each new version is locked for `retention_days` from its write
            # (COMPLIANCE: for anyone; GOVERNANCE: but s3:BypassGovernanceRetention). Such a bucket takes PUTs with a
            # checksum only, and every rackform PUT sends a SHA-256.
            # Why: docs/decisions/0011-results-bucket-write-once.md
            period = Duration.days(object_lock.retention_days)
            retention = s3.ObjectLockRetention.compliance(period) if object_lock.mode == "COMPLIANCE" else \
                s3.ObjectLockRetention.governance(period)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # S3-managed keys: node roles then need no KMS grants to write results.
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            object_lock_enabled=True if retention else None,
            object_lock_default_retention=retention,
        )
        no_access_logs = (
            "no server access logs: objects are write-once (If-None-Match), versioned and TLS-only, written under "
            "results/ by this cluster's job role alone; access logs would need a second retained bucket per "
            "cluster, and CloudTrail S3 data events give that audit account-wide where it is required")
        acknowledge(self.bucket.node.default_child, "AwsSolutions-S1", no_access_logs)
        skip_checkov(self.bucket.node.default_child, "CKV_AWS_18", no_access_logs)
        # Write-once in S3 itself, for every principal: a PUT under results/ without If-None-Match is refused, in AWS's
        # form ("Enforce conditional writes on Amazon S3 buckets"), without its multipart exemption: every rackform
        # object is one PutObject. Why: docs/decisions/0011-results-bucket-write-once.md
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="ResultsAreWriteOnce", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"], resources=[self.results_objects_arn],
            conditions={"Null": {"s3:if-none-match": "true"}}))
        # Write-once against administrators: deleting a version, bypassing governance retention or changing versioning
        # would let a record be replaced, so only the break-glass role (aws:PrincipalArn, as IAM recommends over
        # NotPrincipal) may. Why: docs/decisions/0011-results-bucket-write-once.md
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="VersionsAreKept", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutBucketVersioning"],
            resources=[self.bucket.bucket_arn, self.bucket.arn_for_objects("*")],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": break_glass_role_arn}} if break_glass_role_arn
            else None))
        # results/ is the benchmarks' (and the operator's markers'): no workload role touches it, whatever else is
        # attached to it later. Workload roles share an IAM path, which their ARNs carry (cdk_constructs/jobs.py).
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="WorkloadsNeverTouchResults", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:*"], resources=[self.results_objects_arn],
            conditions={"ArnLike": {"aws:PrincipalArn":
                                    f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role{WORKLOAD_ROLE_PATH}*"}}))
        # Repair records are the repair functions' alone (docs/self-healing.md): a record a job wrote there would
        # spend its node group's hourly budget. The functions' roles share an IAM path (cdk_constructs/repair.py).
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="OnlyRepairFunctionsWriteRepairs", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{REPAIRS_PREFIX}/*")],
            conditions={"ArnNotLike": {"aws:PrincipalArn":
                                       f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role{REPAIR_ROLE_PATH}*"}}))

    @property
    def results_objects_arn(self) -> str:
        return results_objects_arn(self.bucket)


def results_objects_arn(bucket: s3.IBucket) -> str:
    # Benchmarks write under this prefix, once per key (the bucket policy refuses any other PUT there).
    return bucket.arn_for_objects(f"{RESULTS_PREFIX}/*")


def workload_objects_arn(bucket: s3.IBucket) -> str:
    # `rackform run` workloads write their own outputs under this prefix (their role's only grant).
    return bucket.arn_for_objects(f"{WORKLOADS_PREFIX}/*")


class LustreFileSystem(Construct):
    """FSx for Lustre in one subnet, retained on stack deletion, optionally linked to S3 by a data repository
    association.

    The L1 resource is used because the L2 offers no data repository association (aws-cdk #34649) and
    PERSISTENT_2 rejects the ImportPath/ExportPath the L2 would write instead.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        subnet: ec2.ISubnet,
        security_group_ids: Sequence[str],
        storage_capacity_gib: int,
        deployment_type: str = "PERSISTENT_2",
        per_unit_storage_throughput_mbps_per_tib: int | None = None,
        storage_type: str = "SSD",
        drive_cache_type: str | None = None,
        data_repository_path: str | None = None,
        export_deletions: bool = False,
        file_system_type_version: str = LUSTRE_VERSION,
        data_compression_type: str = "NONE",
        metadata: FsxMetadata | None = None,
    ) -> None:
        """`per_unit_storage_throughput_mbps_per_tib` is required by PERSISTENT_* and must be None for SCRATCH_2;
        `storage_type` HDD (PERSISTENT_1 only) needs `drive_cache_type` READ or NONE; `data_repository_path`
        (s3://bucket[/prefix]) is linked at /data with automatic import and export of new and changed files, and of
        deletions only with `export_deletions`. `data_compression_type` LZ4 compresses file data on the servers;
        `metadata` (PERSISTENT_2 only) is the metadata configuration: AUTOMATIC, or IOPS the user provisions
        (https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystemLustreMetadataConfiguration.html)."""
        super().__init__(scope, id)
        self.file_system = fsx.CfnFileSystem(
            self,
            "FileSystem",
            file_system_type="LUSTRE",
            file_system_type_version=file_system_type_version,
            storage_capacity=storage_capacity_gib,
            # SSD is the API's default; written out only for HDD so SSD file systems' templates stay as they were.
            storage_type=storage_type if storage_type != "SSD" else None,
            subnet_ids=[subnet.subnet_id],
            security_group_ids=list(security_group_ids),
            lustre_configuration=fsx.CfnFileSystem.LustreConfigurationProperty(
                deployment_type=deployment_type,
                per_unit_storage_throughput=per_unit_storage_throughput_mbps_per_tib,
                drive_cache_type=drive_cache_type,
                # NONE is the API's default: written only for LZ4, so existing file systems' templates stay as they are.
                data_compression_type=data_compression_type if data_compression_type != "NONE" else None,
                metadata_configuration=None if metadata is None else fsx.CfnFileSystem.MetadataConfigurationProperty(
                    mode=metadata.mode or "USER_PROVISIONED", iops=metadata.iops),
            ),
        )
        self.file_system.apply_removal_policy(RemovalPolicy.RETAIN)
        self.dns_name: str = self.file_system.attr_dns_name
        self.mount_name: str = self.file_system.attr_lustre_mount_name

        self.data_repository_association: fsx.CfnDataRepositoryAssociation | None = None
        if data_repository_path is not None:
            self.data_repository_association = fsx.CfnDataRepositoryAssociation(
                self,
                "DataRepository",
                file_system_id=self.file_system.ref,
                file_system_path=DATA_REPOSITORY_FILE_SYSTEM_PATH,
                data_repository_path=data_repository_path,
                batch_import_meta_data_on_create=True,
                s3=fsx.CfnDataRepositoryAssociation.S3Property(
                    auto_import_policy=fsx.CfnDataRepositoryAssociation.AutoImportPolicyProperty(
                        events=ALL_S3_EVENTS),
                    auto_export_policy=fsx.CfnDataRepositoryAssociation.AutoExportPolicyProperty(
                        events=ALL_S3_EVENTS if export_deletions else EXPORT_WITHOUT_DELETIONS),
                ),
            )
            # Retained with the file system it links: a deleted stack leaves the file system linked to S3 as it was.
            self.data_repository_association.apply_removal_policy(RemovalPolicy.RETAIN)
