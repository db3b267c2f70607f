"""AWS Batch job definitions for a node group's benchmarks, as Batch API data.

One pure function serves both worlds: the rack stacks turn its output into AWS::Batch::JobDefinition resources,
and the embedded AWS of `make demo` registers it with moto, so a job definition cannot differ between them.
"""

from __future__ import annotations

from typing import Any

from rackform import naming
from rackform.plan import NodeGroupPlan

from .benchmarks import BENCHMARKS, Benchmark, benchmarks_for, default_nodes

# ECS and the OS keep some memory for themselves; a job asking for all of it would never be placed.
MEMORY_RESERVED_FRACTION = 0.1
MEMORY_RESERVED_MIN_MIB = 2048
CONTAINER_WORK_DIR = "/scratch"
# EFA devices with RDMA read (GPUDirect / Neuron direct transfers). Forcing FI_EFA_USE_DEVICE_RDMA on an EFA device
# without it (c7gn, g5, g6...) makes libfabric refuse to open the domain, so it is set only here. (List from AWS's
# EFA docs as we read them; unconfirmed on hardware.)
EFA_RDMA_FAMILIES = ("p4d.", "p4de.", "p5.", "p5e.", "p5en.", "p6-", "trn1.", "trn1n.", "trn2.", "trn2u.")


def container_memory_mib(group: NodeGroupPlan) -> int:
    return group.memory_mib_per_node - max(MEMORY_RESERVED_MIN_MIB,
                                           int(group.memory_mib_per_node * MEMORY_RESERVED_FRACTION))


def job_environment(spec_name: str, group: NodeGroupPlan, benchmark: Benchmark, *, bucket: str,
                    fsx_mount: str | None, price_usd_per_hour: float | None) -> dict[str, str]:
    env = {
        "RACKFORM_SPEC": spec_name,
        "RACKFORM_BUCKET": bucket,
        "RACKFORM_RACK": group.rack,
        "RACKFORM_NODE_GROUP": group.name,
        "RACKFORM_TIER": group.tier,
        "RACKFORM_INSTANCE_TYPE": group.instance_type,
        "RACKFORM_GPUS": str(group.gpus_per_node),
        "RACKFORM_NEURON_DEVICES": str(group.neuron_devices_per_node),
        "RACKFORM_NEURON_CORES": str(group.neuron_cores_per_node),
        "RACKFORM_EFA": "1" if group.efa_interfaces else "0",
        "RACKFORM_WORK_DIR": f"{fsx_mount}/rackform-scratch" if benchmark.name == "storage" and fsx_mount
        else CONTAINER_WORK_DIR,
    }
    if fsx_mount:
        env["RACKFORM_FSX_MOUNT"] = fsx_mount
    if price_usd_per_hour is not None:
        env["RACKFORM_PRICE_USD_PER_HOUR"] = repr(price_usd_per_hour)
    if group.efa_interfaces:
        env["FI_PROVIDER"] = "efa"  # libfabric, NCCL's aws-ofi-nccl plugin and Neuron pick EFA, not TCP
        if group.instance_type.startswith(EFA_RDMA_FAMILIES):
            env["FI_EFA_USE_DEVICE_RDMA"] = "1"
    return env


def container_properties(spec_name: str, group: NodeGroupPlan, benchmark: Benchmark, *, image: str, bucket: str,
                         job_role_arn: str, fsx_mount: str | None,
                         price_usd_per_hour: float | None) -> dict[str, Any]:
    env = job_environment(spec_name, group, benchmark, bucket=bucket, fsx_mount=fsx_mount,
                          price_usd_per_hour=price_usd_per_hour)
    resources = [{"type": "VCPU", "value": str(group.vcpus_per_node)},
                 {"type": "MEMORY", "value": str(container_memory_mib(group))}]
    if group.gpus_per_node:
        resources.append({"type": "GPU", "value": str(group.gpus_per_node)})
    props: dict[str, Any] = {
        "image": image,
        "command": ["python3", "-m", "workloads.run", benchmark.name],
        "jobRoleArn": job_role_arn,
        "resourceRequirements": resources,
        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        # EFA registers memory for RDMA: without an unlimited memlock, libfabric fails on the first large buffer.
        "ulimits": [{"name": "memlock", "softLimit": -1, "hardLimit": -1}],
        "linuxParameters": {
            "devices": [{"hostPath": d, "containerPath": d, "permissions": ["READ", "WRITE", "MKNOD"]}
                        for d in group.devices],
            "sharedMemorySize": 16384 if group.gpus_per_node or group.neuron_devices_per_node else 1024,
        },
        "volumes": [{"name": "scratch", "host": {"sourcePath": "/tmp/rackform-scratch"}}],
        "mountPoints": [{"sourceVolume": "scratch", "containerPath": CONTAINER_WORK_DIR, "readOnly": False}],
    }
    if fsx_mount:
        props["volumes"].append({"name": "fsx", "host": {"sourcePath": fsx_mount}})
        props["mountPoints"].append({"sourceVolume": "fsx", "containerPath": fsx_mount, "readOnly": False})
    return props


def job_definition(spec_name: str, group: NodeGroupPlan, benchmark: Benchmark, *, image: str, bucket: str,
                   job_role_arn: str, fsx_mount: str | None = None,
                   price_usd_per_hour: float | None = None) -> dict[str, Any]:
    """RegisterJobDefinition arguments for one benchmark on one node group."""
    container = container_properties(spec_name, group, benchmark, image=image, bucket=bucket,
                                     job_role_arn=job_role_arn, fsx_mount=fsx_mount,
                                     price_usd_per_hour=price_usd_per_hour)
    name = naming.job_definition(spec_name, group.rack, group.name, benchmark.name)
    base: dict[str, Any] = {"jobDefinitionName": name, "platformCapabilities": ["EC2"],
                            "retryStrategy": {"attempts": 1}, "timeout": {"attemptDurationSeconds": 4 * 3600},
                            "propagateTags": True,
                            "tags": {"rackform:spec": spec_name, "rackform:benchmark": benchmark.name}}
    if benchmark.multi_node and group.max_job_nodes >= 2:
        return {**base, "type": "multinode", "nodeProperties": {
            "numNodes": default_nodes(benchmark, group.max_job_nodes),
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        }}
    return {**base, "type": "container", "containerProperties": container}


def job_definitions(spec_name: str, group: NodeGroupPlan, **kwargs: Any) -> list[dict[str, Any]]:
    return [job_definition(spec_name, group, b, **kwargs) for b in benchmarks_for(group.tier, group.max_job_nodes)]


__all__ = ["BENCHMARKS", "job_definition", "job_definitions"]
