"""AWS service limits: EC2 vCPU quotas (Service Quotas, service code `ec2`) by instance family, and the fixed
Batch, EC2 and CloudFormation limits a spec is held to.

Codes and names as AWS's EC2 User Guide lists them, each linking its Service Quotas console page: On-Demand
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-on-demand-instances.html#ec2-on-demand-instances-limits)
and Spot (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html). EC2 counts running instances
against one quota per family group, in vCPUs, separately for On-Demand and Spot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    code: str | None  # None where the code is not confirmed: preflight then says so instead of guessing
    name: str


# family prefix -> (on-demand, spot). Longest prefix wins ("hpc" before "h").
_QUOTAS: dict[str, tuple[Quota, Quota]] = {
    "p": (Quota("L-417A185B", "Running On-Demand P instances"), Quota("L-7212CCBC", "All P Spot Instance Requests")),
    "g": (Quota("L-DB2E81BA", "Running On-Demand G and VT instances"),
          Quota("L-3819A6DF", "All G and VT Spot Instance Requests")),
    "vt": (Quota("L-DB2E81BA", "Running On-Demand G and VT instances"),
           Quota("L-3819A6DF", "All G and VT Spot Instance Requests")),
    "trn": (Quota("L-2C3B7624", "Running On-Demand Trn instances"),
            Quota("L-6B0D517C", "All Trn Spot Instance Requests")),
    "inf": (Quota("L-1945791B", "Running On-Demand Inf instances"), Quota(None, "All Inf Spot Instance Requests")),
    "hpc": (Quota("L-F7808C92", "Running On-Demand HPC instances"), Quota(None, "HPC instances have no Spot")),
}
_STANDARD = (Quota("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"),
             # The name is AWS's; its code is not in our reference, so preflight reports it unchecked, not guessed.
             Quota(None, "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"))


def vcpu_quota(instance_type: str, *, spot: bool = False) -> Quota:
    family = instance_type.split(".", 1)[0]
    for prefix in sorted(_QUOTAS, key=len, reverse=True):
        if family.startswith(prefix):
            return _QUOTAS[prefix][1 if spot else 0]
    return _STANDARD[1 if spot else 0]


# --- other AWS service limits the checks hold a spec to -----------------------------------------------------------

# AWS Batch per-Region quotas that cannot be changed (https://docs.aws.amazon.com/batch/latest/userguide/
# service_limits.html): every node group has one compute environment and one job queue. preflight counts the
# account's existing ones against the same figures.
BATCH_MAX_COMPUTE_ENVIRONMENTS = 50
BATCH_MAX_JOB_QUEUES = 50
# EC2 CreatePlacementGroup: "Up to 255 ASCII characters".
PLACEMENT_GROUP_NAME_MAX = 255
# CloudFormation, per stack (the template body and its resource count).
TEMPLATE_BODY_MAX_BYTES = 1_000_000  # exclusive: CloudFormation accepts at most 999,999
STACK_MAX_RESOURCES = 500
# CloudFormation's default stacks per account and Region
# (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html): preflight counts
# against it only where DescribeAccountLimits lists no StackLimit.
DEFAULT_STACK_LIMIT = 2000
