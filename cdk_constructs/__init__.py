"""CDK constructs that turn parts of a rackform plan into CloudFormation.

Named `cdk_constructs` because a top-level `constructs` package would shadow the `constructs` library that
aws-cdk-lib imports.
"""

from .athena import ResultsTable
from .jobs import WORKLOAD_ROLE_PATH, BenchmarkJobDefinitions, JobRole, TierImage, WorkloadRole, cfn_properties
from .network import LUSTRE_PORTS, ClusterSecurityGroups, SingleAzVpc
from .node_group import EfaLaunchTemplate, NodeInstanceRole, RackNodeGroup
from .storage import DATA_REPOSITORY_FILE_SYSTEM_PATH, LustreFileSystem, ResultsBucket
from .user_data import LustreMount, lustre_mount_script, mime_multipart

__all__ = [
    "BenchmarkJobDefinitions",
    "JobRole",
    "TierImage",
    "WORKLOAD_ROLE_PATH",
    "WorkloadRole",
    "cfn_properties",
    "DATA_REPOSITORY_FILE_SYSTEM_PATH",
    "LUSTRE_PORTS",
    "ClusterSecurityGroups",
    "EfaLaunchTemplate",
    "LustreFileSystem",
    "LustreMount",
    "NodeInstanceRole",
    "RackNodeGroup",
    "ResultsBucket",
    "ResultsTable",
    "SingleAzVpc",
    "lustre_mount_script",
    "mime_multipart",
]
