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
    code: str | None  # None: AWS's quota pages name no quota for the family in that market; preflight says so
    name: str


# family prefix -> quota, one table per market. The longest matching prefix wins; a family in none is Standard.
# HPC has no Spot row: AWS sells HPC instances On-Demand only and lists no Spot quota for them. validate rejects a
# Spot group of an HPC type (its usage classes lack spot), so no checked plan counts one against Standard Spot.
# Spot splits P in two, "All P4, P3 and P2" and "All P5" (P5, P5e, P5en); P6 is sold as Spot but named on neither,
# so its code is left unknown rather than guessed.
_ON_DEMAND: dict[str, Quota] = {
    "p": Quota("L-417A185B", "Running On-Demand P instances"),
    "g": Quota("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "vt": Quota("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "trn": Quota("L-2C3B7624", "Running On-Demand Trn instances"),
    "inf": Quota("L-1945791B", "Running On-Demand Inf instances"),
    "hpc": Quota("L-F7808C92", "Running On-Demand HPC instances"),
}
_SPOT: dict[str, Quota] = {
    "p": Quota("L-7212CCBC", "All P4, P3 and P2 Spot Instance Requests"),
    "p5": Quota("L-C4BD4855", "All P5 Spot Instance Requests"),
    "p6": Quota(None, "the Spot quota P6 instances count against"),
    "g": Quota("L-3819A6DF", "All G and VT Spot Instance Requests"),
    "vt": Quota("L-3819A6DF", "All G and VT Spot Instance Requests"),
    "trn": Quota("L-6B0D517C", "All Trn Spot Instance Requests"),
    "inf": Quota("L-B5D1601B", "All Inf Spot Instance Requests"),
}
_STANDARD_ON_DEMAND = Quota("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances")
_STANDARD_SPOT = Quota("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests")


def vcpu_quota(instance_type: str, *, spot: bool = False) -> Quota:
    family = instance_type.split(".", 1)[0]
    table, standard = (_SPOT, _STANDARD_SPOT) if spot else (_ON_DEMAND, _STANDARD_ON_DEMAND)
    prefix = max((p for p in table if family.startswith(p)), key=len, default=None)
    return standard if prefix is None else table[prefix]


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
