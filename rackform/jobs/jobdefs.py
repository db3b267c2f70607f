"""AWS Batch job definitions for a node group's benchmarks, as Batch API data.

One pure function serves both worlds: the rack stacks turn its output into AWS::Batch::JobDefinition resources,
and the embedded AWS of `make demo` registers it with moto, so a job definition cannot differ between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from workloads.benchmarks import Benchmark, benchmarks_for
from workloads.contract import CONTAINER_WORK_DIR, FSX_SCRATCH_DIR, NODE_IDENTITY_FILE, JobEnvironment
from workloads.repair import HEALTH_STEP_FAILED_EXIT, HOST_FAULT_REASON

from ..plan import naming
from ..plan.models import NodeGroupPlan

JobKind = Literal["single", "multinode"]  # rackform.plan.naming.JOB_KINDS, which validate checks names with

# EFA devices with RDMA read (GPUDirect / Neuron direct transfers). Forcing FI_EFA_USE_DEVICE_RDMA on an EFA device
# without it (c7gn, g5, g6...) makes libfabric refuse to open the domain, so it is set only here. (List from AWS's
# EFA docs as we read them; unconfirmed on hardware.)
EFA_RDMA_FAMILIES = ("p4d.", "p4de.", "p5.", "p5e.", "p5en.", "p6-", "trn1.", "trn1n.", "trn2.", "trn2u.")


def container_memory_mib(group: NodeGroupPlan) -> int:
    return group.job_memory_mib  # the ECS reserve is the plan's (placement checks workloads against the same)


def job_environment(spec_name: str, group: NodeGroupPlan, *, bucket: str, fsx_mount: str | None,
                    price_usd_per_hour: float | None) -> dict[str, str]:
    """What every job of the node group is told; the benchmark itself arrives as the job's `benchmark` parameter."""
    store = group.instance_store
    return JobEnvironment(
        spec=spec_name, bucket=bucket, rack=group.rack, node_group=group.name, tier=group.tier,
        instance_type=group.instance_type, gpus=group.gpus_per_node, neuron_devices=group.neuron_devices_per_node,
        neuron_cores=group.neuron_cores_per_node, efa=group.efa_interfaces > 0,
        efa_device_rdma=group.instance_type.startswith(EFA_RDMA_FAMILIES), work_dir=work_dir(group),
        fsx_mount=fsx_mount or None, price_usd_per_hour=price_usd_per_hour, instance_store=store.mount_path,
        instance_store_gb=store.size_gb if store.mount_path else 0,
    ).to_env()


# The node's directory behind its jobs' work directory where the group uses no instance store.
HOST_WORK_DIR = "/tmp/rackform-scratch"


def work_dir(group: NodeGroupPlan) -> str:
    """The jobs' work directory: the instance store's mount path where the group uses one (the node mounts it there,
    cdk_constructs/user_data.py instance_store_script), else CONTAINER_WORK_DIR over the node's HOST_WORK_DIR."""
    return group.instance_store.mount_path or CONTAINER_WORK_DIR


WORKLOAD_ROLE_TAG = "rackform:workload-role"

# Batch substitutes `Ref::benchmark` in the command with the `benchmark` parameter of SubmitJob
# (https://docs.aws.amazon.com/batch/latest/userguide/job_definition_parameters.html#parameters), so one definition
# serves every benchmark of the node group. No default: a job submitted without it fails in the runner's argument
# check, naming the benchmarks, instead of running one nobody asked for.
BENCHMARK_PARAMETER = "benchmark"
COMMAND = ("python3", "-m", "workloads.job", f"Ref::{BENCHMARK_PARAMETER}")


def container_properties(spec_name: str, group: NodeGroupPlan, *, image: str, bucket: str, job_role_arn: str,
                         fsx_mount: str | None, price_usd_per_hour: float | None,
                         fsx_write: bool = False) -> dict[str, Any]:
    """The container of a node group's jobs; the FSx file system, when there is one, mounted read-only unless
    `fsx_write`: through a writable mount a job could change or delete <mount>/data, which the data repository
    association links to the user's bucket."""
    env = job_environment(spec_name, group, bucket=bucket, fsx_mount=fsx_mount,
                          price_usd_per_hour=price_usd_per_hour)
    resources = [{"type": "VCPU", "value": str(group.vcpus_per_node)},
                 {"type": "MEMORY", "value": str(container_memory_mib(group))}]
    if group.gpus_per_node:
        resources.append({"type": "GPU", "value": str(group.gpus_per_node)})
    props: dict[str, Any] = {
        "image": image,
        "command": list(COMMAND),
        "jobRoleArn": job_role_arn,
        "resourceRequirements": resources,
        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        # EFA registers memory for RDMA: without an unlimited memlock, libfabric fails on the first large buffer.
        "ulimits": [{"name": "memlock", "softLimit": -1, "hardLimit": -1}],
        "linuxParameters": {
            # containerPath defaults to hostPath and permissions to read, write and mknod
            # (https://docs.aws.amazon.com/batch/latest/APIReference/API_Device.html): writing either out again
            # would double what 32 devices cost in each job definition of a p5 group.
            "devices": [{"hostPath": d} for d in group.devices],
            "sharedMemorySize": 16384 if group.gpus_per_node or group.neuron_devices_per_node else 1024,
        },
        "volumes": [{"name": "scratch", "host": {"sourcePath": group.instance_store.mount_path or HOST_WORK_DIR}},
                    {"name": "node", "host": {"sourcePath": NODE_IDENTITY_FILE}}],
        "mountPoints": [{"sourceVolume": "scratch", "containerPath": work_dir(group), "readOnly": False},
                        {"sourceVolume": "node", "containerPath": NODE_IDENTITY_FILE, "readOnly": True}],
    }
    if fsx_mount:
        props["volumes"].append({"name": "fsx", "host": {"sourcePath": fsx_mount}})
        props["mountPoints"].append({"sourceVolume": "fsx", "containerPath": fsx_mount, "readOnly": not fsx_write})
    return props


def multi_node_jobs(group: NodeGroupPlan) -> bool:
    """Whether the group gets a multi-node definition: some benchmark of its tier spans nodes, and it has them."""
    return group.max_job_nodes >= 2 and any(b.multi_node for b in benchmarks_for(group.tier, group.max_job_nodes))


def job_kind(benchmark: Benchmark, nodes: int) -> JobKind:
    return "multinode" if benchmark.multi_node and nodes >= 2 else "single"


def job_definition(spec_name: str, group: NodeGroupPlan, kind: JobKind, *, image: str, bucket: str,
                   job_role_arn: str, workload_role_arn: str | None = None, fsx_mount: str | None = None,
                   price_usd_per_hour: float | None = None) -> dict[str, Any]:
    """RegisterJobDefinition arguments for the node group's single-node or multi-node jobs.

    `workload_role_arn`, the role `rackform run` gives its jobs, rides along as a tag (WORKLOAD_ROLE_TAG): `run`
    registers workload definitions at run time and finds the rack's role, bucket and mount on the node group's
    deployed benchmark definition.

    Two definitions per node group, whatever the number of benchmarks: a rack template lists every container
    device once per definition (32 uverbs devices on p5), and one definition per benchmark made the heaviest racks
    outgrow CloudFormation's 1,000,000-byte template limit.
    """
    container = container_properties(spec_name, group, image=image, bucket=bucket, job_role_arn=job_role_arn,
                                     fsx_mount=fsx_mount, price_usd_per_hour=price_usd_per_hour)
    if fsx_mount:
        # The storage benchmark's directory, writable inside the read-only mount: Docker mounts a parent before its
        # children, and creates a host path that does not exist yet
        # (https://docs.aws.amazon.com/batch/latest/APIReference/API_Host.html).
        scratch = f"{fsx_mount}/{FSX_SCRATCH_DIR}"
        container["volumes"].append({"name": "fsx-scratch", "host": {"sourcePath": scratch}})
        container["mountPoints"].append({"sourceVolume": "fsx-scratch", "containerPath": scratch, "readOnly": False})
    # numNodes is a default only: every submission overrides it with the benchmark's node count.
    return registration(naming.job_definition(spec_name, group.rack, group.name, kind), container,
                        nodes=group.max_job_nodes if kind == "multinode" else None,
                        timeout={"attemptDurationSeconds": 4 * 3600},
                        tags={"rackform:spec": spec_name, "rackform:job-kind": kind,
                              **({WORKLOAD_ROLE_TAG: workload_role_arn} if workload_role_arn else {})})


# Retried on the node's failures only, so the job lands on a healthy node: an instance gone under the job (Batch's
# "Host EC2 (instance i-...) terminated." status reason) or a node failing the runner's own health step (its exit
# code); anything else, the job's own failure included, ends the job (the final EXIT on any reason: without it, a
# failure no entry matches is retried). Up to 10 attempts and 5 entries, matched in order, globs with a trailing *
# (https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html,
# https://docs.aws.amazon.com/batch/latest/APIReference/API_EvaluateOnExit.html). Three attempts: a job meeting
# three bad nodes in a row says more about the rack than about the nodes, and the repair function
# (workloads/repair.py) has replaced the first two by then.
RETRY_ATTEMPTS = 3
RETRY_STRATEGY: dict[str, Any] = {"attempts": RETRY_ATTEMPTS, "evaluateOnExit": [
    {"onStatusReason": HOST_FAULT_REASON, "action": "RETRY"},
    {"onExitCode": str(HEALTH_STEP_FAILED_EXIT), "action": "RETRY"},
    {"onReason": "*", "action": "EXIT"},
]}


def retry_action(strategy: Mapping[str, Any], *, attempt: int, exit_code: int | None, status_reason: str,
                 reason: str) -> Literal["RETRY", "EXIT"]:
    """What Batch does after a failed attempt under `strategy` (a job definition's retryStrategy): the first
    evaluateOnExit entry whose every given condition matches decides, none matching retries, and no attempt past
    `attempts` is made. A pattern matches exactly, or its start when it ends with * (API_EvaluateOnExit). The local
    executor plays Batch with it."""
    if attempt >= strategy.get("attempts", 1):
        return "EXIT"

    def matches(pattern: str | None, value: str) -> bool:
        return pattern is None or (value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern)

    for entry in strategy.get("evaluateOnExit", []):
        if (matches(entry.get("onStatusReason"), status_reason) and matches(entry.get("onReason"), reason)
                and matches(entry.get("onExitCode"), "" if exit_code is None else str(exit_code))):
            return "RETRY" if entry["action"].upper() == "RETRY" else "EXIT"
    return "RETRY"


def registration(name: str, container: dict[str, Any], *, nodes: int | None, **fields: object) -> dict[str, Any]:
    """RegisterJobDefinition arguments around one container: on EC2, retried on host faults only (RETRY_STRATEGY),
    tags propagated; a multi-node definition (every node the same container) when `nodes` is given. `fields` adds
    the rest (timeout, tags)."""
    base: dict[str, Any] = {"jobDefinitionName": name, "platformCapabilities": ["EC2"],
                            "retryStrategy": RETRY_STRATEGY, "propagateTags": True, **fields}
    if nodes is not None:
        return {**base, "type": "multinode", "nodeProperties": {
            "numNodes": nodes,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        }}
    return {**base, "type": "container", "containerProperties": container}


def job_definitions(spec_name: str, group: NodeGroupPlan, *, image: str, bucket: str, job_role_arn: str,
                    workload_role_arn: str | None = None, fsx_mount: str | None = None,
                    price_usd_per_hour: float | None = None) -> list[dict[str, Any]]:
    kinds = naming.JOB_KINDS if multi_node_jobs(group) else naming.JOB_KINDS[:1]
    return [job_definition(spec_name, group, kind, image=image, bucket=bucket, job_role_arn=job_role_arn,
                           workload_role_arn=workload_role_arn, fsx_mount=fsx_mount,
                           price_usd_per_hour=price_usd_per_hour) for kind in kinds]


__all__ = ["BENCHMARK_PARAMETER", "RETRY_STRATEGY", "WORKLOAD_ROLE_TAG", "job_definition", "job_definitions",
           "job_kind", "registration", "retry_action"]
