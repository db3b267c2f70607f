"""The rehearsal's repair loop (docs/self-healing.md): the local executor plays AWS Batch's retries and hands the
repair function (workloads/repair.py, the code Lambda runs) the event Batch would send, against the embedded AWS.

A node can be broken for real: the tool its health step reads answers as on a broken node (nvidia-smi missing one of
the planned GPUs; chrony unsynchronised where no GPU is planned), so the runner's own health step fails, it exits
HEALTH_STEP_FAILED_EXIT, the function drains and terminates the node (a container instance and an instance the
rehearsal registers for it) and records the repair, and the job's retry strategy puts it back in the queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads import repair
from workloads.contract import JobEnvironment
from workloads.layout import BenchmarkMarker

from ..aws import BotoClient
from ..plan.models import Plan
from .jobdefs import retry_action

# What the container's end looks like to Batch when its process exits: the status reason of any non-zero exit.
EXITED = "Essential container in task exited"


@dataclass(frozen=True)
class BrokenNode:
    """Node `index` of one job fails its health step on the job's first attempt (the next attempt is another node)."""

    job_name: str
    index: int = 0

    def applies(self, job_name: str, index: int, attempt: int) -> bool:
        return (self.job_name, self.index, 1) == (job_name, index, attempt)

    def environment(self, env: Mapping[str, str], job: JobEnvironment, into: Path) -> tuple[dict[str, str], str]:
        """(the node's environment with the broken tool first on its PATH, what is broken); the tool is written
        under `into`."""
        into.mkdir(parents=True, exist_ok=True)
        if job.gpus:
            tool, what = "nvidia-smi", f"nvidia-smi lists {job.gpus - 1} of its {job.gpus} GPUs"
            rows = "".join(f"{i}, NVIDIA H100 80GB HBM3, 0\\n" for i in range(job.gpus - 1))
            body = f'case "$*" in *query-gpu=index*) printf "{rows}";; *) exit 0;; esac\n'
        else:
            tool, what = "chronyc", "chrony is not synchronised"
            body = 'printf "Leap status     : Not synchronised\\n"\n'
        script = into / tool
        script.write_text(f"#!/bin/sh\n# rackform rehearsal: a broken node's {tool}\n{body}")
        script.chmod(0o755)
        return {**env, "PATH": f"{into}:{env.get('PATH', '')}"}, what


class LocalRepair:
    """The repair function's surroundings in the embedded AWS: the rack's topic, each node group's cluster (named as
    Batch names a compute environment's), and a container instance and an instance for each node that fails."""

    def __init__(self, client: Callable[[str], BotoClient], plan: Plan, bucket: str) -> None:
        self.ec2, self.ecs, s3, sns = (client(s) for s in ("ec2", "ecs", "s3", "sns"))
        self.clients = repair.Clients(ecs=self.ecs, ec2=self.ec2, s3=s3, sns=sns)
        topic: str = sns.create_topic(Name=f"{plan.name}-repairs")["TopicArn"]
        healing = [r.healing for r in plan.racks if r.healing is not None]
        fraction = healing[0].max_fraction_per_hour if healing else repair.DEFAULT_MAX_FRACTION_PER_HOUR
        self.config = repair.Config(bucket=bucket, topic_arn=topic, max_fraction=fraction, groups={
            g.job_queue: repair.Group(rack=g.rack, node_group=g.name, nodes=g.count) for g in plan.node_groups()})
        self.clusters = {g.job_queue: f"{g.compute_environment}_Batch_local" for g in plan.node_groups()}
        self.names = {g.job_queue: g.resource_name for g in plan.node_groups()}
        for cluster in self.clusters.values():
            self.ecs.create_cluster(clusterName=cluster)

    def node(self, queue: str, rack: str) -> tuple[str, str]:
        """An instance tagged as the rack's launch templates tag theirs, registered in the queue's cluster: (its id,
        its container instance ARN)."""
        image = self.ec2.describe_images()["Images"][0]["ImageId"]
        tags = [{"Key": "Name", "Value": self.names[queue]}, {"Key": "rackform:rack", "Value": rack}]
        instance: str = self.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance", "Tags": tags}])["Instances"][0]["InstanceId"]
        arn: str = self.ecs.register_container_instance(
            cluster=self.clusters[queue], instanceIdentityDocument=json.dumps({"instanceId": instance}),
        )["containerInstance"]["containerInstanceArn"]
        return instance, arn

    def attempt_ended(self, m: BenchmarkMarker, *, attempt: int, code: int, status: str) -> Mapping[str, object]:
        """What the function does with the Job State Change event of the ended attempt (Batch's shape)."""
        _, arn = self.node(m.queue, m.rack)
        ended = {"container": {"exitCode": code, "containerInstanceArn": arn}, "statusReason": EXITED,
                 "stoppedAt": int(time.time() * 1000)}
        detail = {"jobId": m.job_id, "jobName": m.job_name, "status": status, "statusReason": EXITED,
                  "jobQueue": f"arn:aws:batch:local:000000000000:job-queue/{m.queue}", "attempts": [ended] * attempt}
        return repair.handle({"detail-type": "Batch Job State Change", "source": "aws.batch", "detail": detail},
                             self.config, self.clients)


def after_attempt(jobdef: Mapping[str, Any], m: BenchmarkMarker, *, attempt: int, codes: list[int],
                  repair_loop: LocalRepair | None, announce: Callable[[str], None]) -> bool:
    """Batch's part when an attempt ends: whether the job runs again (its definition's retry strategy), and the
    event the repair function gets. True: put the job back in the queue."""
    code = max(codes)
    if code == 0:
        return False
    again = retry_action(jobdef.get("retryStrategy", {}), attempt=attempt, exit_code=code, status_reason=EXITED,
                         reason="") == "RETRY"
    if code == repair.HEALTH_STEP_FAILED_EXIT:
        announce(f"      a node failed its health step (exit {code})")
    if repair_loop is not None and code == repair.HEALTH_STEP_FAILED_EXIT:
        done = repair_loop.attempt_ended(m, attempt=attempt, code=code, status="RUNNABLE" if again else "FAILED")
        steps = done.get("steps")
        announce(f"      repair: {done['action']}: {done['reason']}" + (
            f"; {done.get('instance_id')}: {', '.join(f'{k} {v}' for k, v in steps.items())}"
            if isinstance(steps, dict) and steps else "") + (f"; record {done['record']}" if "record" in done else ""))
    if again:
        announce(f"      retry: attempt {attempt + 1} of {jobdef['retryStrategy']['attempts']}, on another node "
                 "(the job definition's retry strategy)")
    return again
