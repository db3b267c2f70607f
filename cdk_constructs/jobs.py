"""Benchmark job definitions and the images and role they run with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnResource
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from rackform.plan.naming import construct_id
from workloads.layout import RESULTS_PREFIX

from .nag import acknowledge_wildcard_resource

WORKLOADS_DIR = Path(__file__).resolve().parents[1] / "workloads"
# tier -> (Dockerfile under workloads/docker/, platform): Graviton runs the CPU image built for arm64.
TIER_IMAGES: dict[str, tuple[str, ecr_assets.Platform]] = {
    "graviton": ("cpu", ecr_assets.Platform.LINUX_ARM64),
    "cpu": ("cpu", ecr_assets.Platform.LINUX_AMD64),
    "gpu": ("gpu", ecr_assets.Platform.LINUX_AMD64),
    "trainium": ("neuron", ecr_assets.Platform.LINUX_AMD64),
}
# Batch API field names are camelCase, CloudFormation's PascalCase; tag maps hold user data and keep their keys.
_VERBATIM = {"tags"}


def cfn_properties(api: Any) -> Any:
    """RegisterJobDefinition arguments -> AWS::Batch::JobDefinition properties."""
    if isinstance(api, Mapping):
        return {k[:1].upper() + k[1:]: (v if k in _VERBATIM else cfn_properties(v)) for k, v in api.items()}
    if isinstance(api, list):
        return [cfn_properties(v) for v in api]
    return api


class TierImage(Construct):
    """The benchmark image for one tier, built from workloads/docker/<kind>.Dockerfile at deploy time by
    cdk-assets (synth only stages the build context, so it needs no Docker)."""

    def __init__(self, scope: Construct, id: str, *, tier: str) -> None:
        super().__init__(scope, id)
        kind, platform = TIER_IMAGES[tier]
        self.asset = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(WORKLOADS_DIR), file=f"docker/{kind}.Dockerfile", platform=platform,
            exclude=["**/__pycache__", "**/*.pyc"])
        self.image_uri: str = self.asset.image_uri


class JobRole(Construct):
    """The role benchmark containers run as: write and read back their own results, nothing else.

    Read-back serves the write-once protocol and the main node reading its peers' health records, always by listed
    version (s3:ListBucketVersions below results/, s3:GetObjectVersion).
    Why: docs/decisions/0014-job-role-reads-versions.md
    """

    def __init__(self, scope: Construct, id: str, *, results_objects_arn: str, results_bucket_arn: str) -> None:
        super().__init__(scope, id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                             description="rackform benchmark jobs: results/ in the results bucket only")
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
                                                    resources=[results_objects_arn]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucketVersions"], resources=[results_bucket_arn],
                                                    conditions={"StringLike": {"s3:prefix": f"{RESULTS_PREFIX}/*"}}))
        acknowledge_wildcard_resource(
            self.role.node.find_child("DefaultPolicy"), results_objects_arn,
            "jobs write their records and logs, and read them back, below results/ of the results bucket only: keys "
            "are results/<run>/<rack>/..., and run ids are chosen at submit time, so the prefix is the narrowest ARN")


# Workload roles live under this IAM path. A role's path is part of its ARN, and so of the aws:PrincipalArn condition
# key, so the results bucket's policy refuses every workload role results/ by pattern without knowing the rack stacks
# that create them (cdk_constructs/storage.py).
WORKLOAD_ROLE_PATH = "/rackform/workloads/"


class WorkloadRole(Construct):
    """The role `rackform run` jobs run as: third-party images, so no benchmark record or marker under results/ (the
    bucket policy refuses them that prefix too), only their own outputs under workloads/ of the results bucket."""

    def __init__(self, scope: Construct, id: str, *, workload_objects_arn: str) -> None:
        super().__init__(scope, id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                             path=WORKLOAD_ROLE_PATH,
                             description="rackform workload jobs: workloads/ of the results bucket, never results/")
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:GetObject"],
                                                    resources=[workload_objects_arn]))
        acknowledge_wildcard_resource(
            self.role.node.find_child("DefaultPolicy"), workload_objects_arn,
            "workload jobs write and read their own outputs below workloads/ of the results bucket only: keys are "
            "workloads/<run>/<workload>/..., and run ids are chosen at run time, so the prefix is the narrowest ARN")


class BenchmarkJobDefinitions(Construct):
    """One AWS::Batch::JobDefinition per entry of `definitions` (Batch API shape, from rackform.jobs.jobdefs), with
    construct ids from the definitions' kinds (single, multinode)."""

    def __init__(self, scope: Construct, id: str, *, definitions: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(scope, id)
        self.job_definitions: dict[str, CfnResource] = {}
        for d in definitions:
            kind = d["tags"]["rackform:job-kind"]
            self.job_definitions[kind] = CfnResource(
                self, construct_id(kind), type="AWS::Batch::JobDefinition", properties=cfn_properties(d))
