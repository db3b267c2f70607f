"""The repair function: what a rack does, on its own, when a job ends on a broken node (docs/self-healing.md).

An EventBridge rule sends AWS Batch "Job State Change" events of the rack's job queues here (AWS Lambda,
cdk_constructs/repair.py). When a job attempt ended on a health failure, the function marks the ECS container
instance DRAINING (no new job is placed on it), terminates the EC2 instance (the compute environment launches a
replacement), writes a write-once repair record under the results bucket and notifies the rack's SNS topic. A job's
own failure is never a health failure: nothing is done for it.

Two halves: `decide` is pure (the event, the group, the group's recent repairs -> what to do and why), `handle` is the
thin AWS layer around it. The Lambda Python runtime has boto3 but not pydantic, so this module uses the standard
library and boto3 only and imports nothing else from the package: the function's asset is this file and
`workloads/__init__.py` alone. Its record's reader schema is `workloads.objects.RepairRecord`, its key
`workloads.layout.repair_key` (tests/workloads/test_repair.py holds the writer to both).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# The runner's exit code when this node failed its own health step (workloads/run.py): EX_TEMPFAIL of sysexits.h,
# "try again later", which is what the job definitions' retry strategy does (rackform/jobs/jobdefs.py), on another
# node. No benchmark tool and no shell exits 75 for its own reasons.
HEALTH_STEP_FAILED_EXIT = 75

# An attempt whose instance went away under it: AWS Batch's status reason "Host EC2 (instance i-...) terminated."
# (the `Host EC2*` pattern of AWS's retry example, https://aws.amazon.com/blogs/compute/introducing-retry-strategies-
# for-aws-batch/; failure scenarios in https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html). Image
# pulls (CannotPullContainerError), a job's own exit code, a timeout or a user's TerminateJob are not host faults.
HOST_FAULT_REASON = "Host EC2*"
HOST_FAULT = re.compile(r"^Host EC2 \(instance (i-[0-9a-f]+)\)")

# At most this fraction of a node group is replaced per hour, then the function only alerts: Karpenter's node
# auto-repair blocks repairs once more than 20% of a NodePool is unhealthy (NodeRepairBlocked, "more than 20% nodes
# are unhealthy in the nodepool"; https://docs.aws.amazon.com/eks/latest/userguide/node-repair.html). Many nodes
# failing at once is more likely a bad AMI, driver or image than bad hardware, and replacing them all empties a rack.
DEFAULT_MAX_FRACTION_PER_HOUR = 0.2
WINDOW = dt.timedelta(hours=1)

RESULTS = "results"  # workloads.layout.RESULTS_PREFIX, which this module cannot import (pydantic)
REPAIRS_FOLDER = "_repairs"  # no run id starts with "_": nothing of a run's can sit here
STAMP = "%Y%m%dT%H%M%SZ"

Action = Literal["replace", "alert", "nothing"]


@dataclass(frozen=True)
class Group:
    """What the function knows of one node group of its rack (the CDK app writes it into its environment)."""

    rack: str
    node_group: str
    nodes: int


@dataclass(frozen=True)
class Attempt:
    """The attempt a Job State Change event reports ended: the latest of the job's attempts."""

    job_id: str
    job_name: str
    job_queue: str  # the queue's name
    attempt: int  # 1 for the first
    stopped_at: dt.datetime
    exit_code: int | None
    status_reason: str
    container_instance_arn: str | None
    instance_id: str | None  # from a host fault's status reason, where Batch names it
    log_stream: str | None  # the attempt's CloudWatch Logs stream (the runner's health lines)


@dataclass(frozen=True)
class RepairDecision:
    action: Action
    reason: str
    failure: Literal["health-step", "host-fault"] | None = None


def budget(nodes: int, max_fraction: float) -> int:
    """Replacements a group of `nodes` may have in one hour: the fraction, rounded down, but at least one, so a group
    of fewer than 1/fraction nodes can still heal one node an hour."""
    return max(1, math.floor(nodes * max_fraction + 1e-9))


def attempt_of(detail: Mapping[str, object]) -> Attempt | None:
    """The attempt that just ended, from a "Batch Job State Change" event's detail (the DescribeJobs shape,
    https://docs.aws.amazon.com/batch/latest/userguide/batch_job_events.html); None while no attempt has ended."""
    attempts = detail.get("attempts")
    if not isinstance(attempts, list) or not attempts or not isinstance(attempts[-1], dict):
        return None
    last = attempts[-1]
    container = last.get("container") if isinstance(last.get("container"), dict) else {}
    assert isinstance(container, dict)
    reason = str(last.get("statusReason") or detail.get("statusReason") or "")
    stopped = last.get("stoppedAt")
    if not isinstance(stopped, int):
        return None
    exit_code = container.get("exitCode")
    host = HOST_FAULT.match(reason)
    arn = container.get("containerInstanceArn")
    stream = container.get("logStreamName")
    return Attempt(
        job_id=str(detail.get("jobId", "")), job_name=str(detail.get("jobName", "")),
        job_queue=str(detail.get("jobQueue", "")).rsplit("/", 1)[-1], attempt=len(attempts),
        stopped_at=dt.datetime.fromtimestamp(stopped / 1000, dt.UTC),
        exit_code=exit_code if isinstance(exit_code, int) else None, status_reason=reason,
        container_instance_arn=arn if isinstance(arn, str) and arn else None,
        instance_id=host[1] if host else None, log_stream=stream if isinstance(stream, str) and stream else None)


def decide(attempt: Attempt | None, group: Group | None, recent: int, max_fraction: float) -> RepairDecision:
    """What to do about an ended attempt: replace its node, only alert (the group's hourly budget is spent), or
    nothing (not a health failure, or not this rack's). `recent`: the group's replacements in the past hour."""
    if attempt is None:
        return RepairDecision("nothing", "no attempt has ended")
    if group is None:
        return RepairDecision("nothing", f"job queue {attempt.job_queue!r} is not one of this rack's")
    if attempt.instance_id is not None:
        failure: Literal["health-step", "host-fault"] = "host-fault"
        why = f"the instance went away under the job ({attempt.status_reason[:200]})"
    elif attempt.exit_code == HEALTH_STEP_FAILED_EXIT:
        failure = "health-step"
        why = f"the node failed its health step (exit {HEALTH_STEP_FAILED_EXIT})"
    else:
        return RepairDecision("nothing", "the job's own failure, not the node's" if attempt.exit_code else
                        f"not a health failure ({attempt.status_reason[:200] or 'no status reason'})")
    if attempt.container_instance_arn is None and attempt.instance_id is None:
        return RepairDecision("alert", f"{why}, but Batch named no container instance", failure)
    allowed = budget(group.nodes, max_fraction)
    if recent >= allowed:
        return RepairDecision("alert", f"{why}; not replaced: {recent} of {group.node_group}'s {group.nodes} nodes "
                        f"replaced in the past hour, the most its limit ({max_fraction:g} of the group) allows",
                        failure)
    return RepairDecision("replace", why, failure)


def record_key(rack: str, node_group: str, stopped_at: dt.datetime, job_id: str, attempt: int) -> str:
    """Where the repair of one job attempt is recorded: the same attempt (EventBridge delivers at least once, and
    later events of the job repeat it) always names the same key. workloads.layout.repair_key is the reader's."""
    job = job_id.replace("#", "-node-")  # a multi-node job's node: <job id>#<node index>
    return f"{RESULTS}/{REPAIRS_FOLDER}/{rack}/{node_group}/{stopped_at.strftime(STAMP)}-{job}-{attempt}.json"


def window_start_key(rack: str, node_group: str, now: dt.datetime) -> str:
    """Keys sort by time: the group's repairs of the past hour are the keys listed after this one."""
    return f"{RESULTS}/{REPAIRS_FOLDER}/{rack}/{node_group}/{(now - WINDOW).strftime(STAMP)}"


def record(attempt: Attempt, group: Group, decision: RepairDecision, *, instance_id: str | None,
           steps: Mapping[str, str], decided_at: dt.datetime) -> dict[str, object]:
    """The repair record (workloads.objects.RepairRecord reads it back)."""
    return {"rack": group.rack, "node_group": group.node_group, "job_id": attempt.job_id,
            "job_name": attempt.job_name, "job_queue": attempt.job_queue, "attempt": attempt.attempt,
            "failure": decision.failure, "action": decision.action, "reason": decision.reason[:1000],
            "status_reason": attempt.status_reason[:1000], "exit_code": attempt.exit_code,
            "container_instance_arn": attempt.container_instance_arn, "instance_id": instance_id,
            "log_stream": attempt.log_stream,
            "stopped_at": attempt.stopped_at.isoformat(), "decided_at": decided_at.isoformat(),
            "steps": dict(steps)}


# --- the AWS layer -------------------------------------------------------------------------------------------------

Response = Mapping[str, Any]  # a boto3 response: JSON-shaped, as botocore parsed it


class Ecs(Protocol):
    def update_container_instances_state(self, **kwargs: object) -> Response: ...
    def describe_container_instances(self, **kwargs: object) -> Response: ...


class Ec2(Protocol):
    def terminate_instances(self, **kwargs: object) -> Response: ...


class S3(Protocol):
    def put_object(self, **kwargs: object) -> Response: ...
    def list_objects_v2(self, **kwargs: object) -> Response: ...
    def get_object(self, **kwargs: object) -> Response: ...
    def get_paginator(self, operation: str) -> ListingPaginator: ...


class ListingPaginator(Protocol):
    def paginate(self, **kwargs: object) -> Iterable[Response]: ...


class Sns(Protocol):
    def publish(self, **kwargs: object) -> Response: ...


@dataclass(frozen=True)
class Clients:
    """The four clients `handle` calls: boto3's in Lambda, moto's in the tests."""

    ecs: Ecs
    ec2: Ec2
    s3: S3
    sns: Sns


@dataclass(frozen=True)
class Config:
    bucket: str
    topic_arn: str
    groups: Mapping[str, Group]  # by job queue name
    max_fraction: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Read back what `environment` wrote."""
        rack, groups = env["RACKFORM_REPAIR_RACK"], json.loads(env["RACKFORM_REPAIR_GROUPS"])
        return cls(bucket=env["RACKFORM_REPAIR_BUCKET"], topic_arn=env["RACKFORM_REPAIR_TOPIC"],
                   groups={q: Group(rack=rack, node_group=name, nodes=nodes) for q, (name, nodes) in groups.items()},
                   max_fraction=float(env.get("RACKFORM_REPAIR_MAX_FRACTION", DEFAULT_MAX_FRACTION_PER_HOUR)))


def environment(*, bucket: str, topic_arn: str, rack: str, groups: Mapping[str, tuple[str, int]],
                max_fraction: float) -> dict[str, str]:
    """The function's environment (the CDK app writes it, `Config.from_env` reads it): `groups` by job queue name,
    (node group, nodes). Compact: Lambda allows 4 KB of environment in all
    (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html), for up to the ceiling of node groups a
    rack holds (rackform/plan/stack_limits.py)."""
    return {"RACKFORM_REPAIR_BUCKET": bucket, "RACKFORM_REPAIR_TOPIC": topic_arn, "RACKFORM_REPAIR_RACK": rack,
            "RACKFORM_REPAIR_MAX_FRACTION": repr(max_fraction),
            "RACKFORM_REPAIR_GROUPS": json.dumps({q: list(g) for q, g in groups.items()}, separators=(",", ":"))}


def recent_repairs(s3: S3, bucket: str, group: Group, now: dt.datetime) -> int:
    """The group's replacements recorded in the past hour, from one listing of its keys after the window's start
    (no table to keep: the keys sort by time)."""
    prefix = f"{RESULTS}/{REPAIRS_FOLDER}/{group.rack}/{group.node_group}/"
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, StartAfter=window_start_key(group.rack, group.node_group, now))
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    # Only replacements count against the budget: an alert replaced nothing. The action is in the body, so the
    # few keys of one hour are read (a group's budget is a handful).
    return sum(1 for k in keys if _action(s3, bucket, k) == "replace")


def _action(s3: S3, bucket: str, key: str) -> str | None:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read(64 << 10)
    try:
        value = json.loads(body).get("action")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _error(e: Exception) -> str:
    response = getattr(e, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return f"failed: {code or type(e).__name__}: {e}"[:300]


def _instance_of(ecs: Ecs, arn: str) -> str | None:
    cluster = arn.split("/")[1] if arn.count("/") >= 2 else None
    if cluster is None:
        return None
    got = ecs.describe_container_instances(cluster=cluster, containerInstances=[arn])
    found = got.get("containerInstances", [])
    return found[0].get("ec2InstanceId") if found else None


def replace(clients: Clients, attempt: Attempt) -> tuple[str | None, dict[str, str]]:
    """Drain then terminate the attempt's node; (its instance id, what each step did). Each step runs whatever the
    one before did: a drain refused (the agent already gone) must not keep a broken node alive."""
    steps: dict[str, str] = {}
    instance_id = attempt.instance_id
    arn = attempt.container_instance_arn
    if arn is not None:
        try:
            cluster = arn.split("/")[1]
            got = clients.ecs.update_container_instances_state(
                cluster=cluster, containerInstances=[arn], status="DRAINING")
            failures = got.get("failures", [])
            steps["drain"] = f"failed: {failures[0].get('reason')}"[:300] if failures else "DRAINING"
            instance_id = instance_id or _instance_of(clients.ecs, arn)
        except Exception as e:  # noqa: BLE001 - recorded; the terminate step still runs
            steps["drain"] = _error(e)
    if instance_id is None:
        steps["terminate"] = "failed: no EC2 instance id for the container instance"
        return None, steps
    try:
        clients.ec2.terminate_instances(InstanceIds=[instance_id])
        steps["terminate"] = "terminating"
    except Exception as e:  # noqa: BLE001 - recorded and notified
        steps["terminate"] = _error(e)
    return instance_id, steps


def put_once(s3: S3, bucket: str, key: str, body: bytes) -> bool:
    """Write the record unless the key holds one (the bucket refuses any PUT under results/ without If-None-Match);
    False when an earlier delivery of the same event wrote it. The SHA-256 travels with it, as every rackform object's
    does (workloads.store.ResultStore reads nothing without it)."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                      ChecksumAlgorithm="SHA256", ChecksumSHA256=digest, IfNoneMatch="*")
    except Exception as e:
        if (getattr(e, "response", None) or {}).get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return False
        raise
    return True


def exists(s3: S3, bucket: str, key: str) -> bool:
    """Whether the key holds an object, from a listing: the function may list its rack's repairs (s3:ListBucket under
    its prefix) but not the bucket, and without s3:ListBucket a HEAD of a missing key is 403, not 404."""
    got = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(o["Key"] == key for o in got.get("Contents", []))


def handle(event: Mapping[str, object], config: Config, clients: Clients,
           now: dt.datetime | None = None) -> dict[str, object]:
    """One event, end to end: decide, act, record, notify. Returns what was done (the function's result, logged)."""
    now = now or dt.datetime.now(dt.UTC)
    detail = event.get("detail")
    attempt = attempt_of(detail if isinstance(detail, dict) else {})
    group = config.groups.get(attempt.job_queue) if attempt else None
    if attempt is None or group is None:
        return {"action": "nothing", "reason": decide(attempt, group, 0, config.max_fraction).reason}
    first = decide(attempt, group, 0, config.max_fraction)
    if first.action == "nothing":
        return {"action": "nothing", "reason": first.reason}
    key = record_key(group.rack, group.node_group, attempt.stopped_at, attempt.job_id, attempt.attempt)
    if exists(clients.s3, config.bucket, key):  # a repeated delivery, or a later event repeating the attempt
        return {"action": "nothing", "reason": f"already handled: {key}"}
    decision = decide(attempt, group, recent_repairs(clients.s3, config.bucket, group, now), config.max_fraction)
    instance_id, steps = (replace(clients, attempt) if decision.action == "replace"
                          else (attempt.instance_id, {}))
    body = record(attempt, group, decision, instance_id=instance_id, steps=steps, decided_at=now)
    if not put_once(clients.s3, config.bucket, key, json.dumps(body, separators=(",", ":")).encode()):
        return {"action": "nothing", "reason": f"already handled: {key}"}
    subject = (f"rackform {group.rack}/{group.node_group}: "
               f"{'node replaced' if decision.action == 'replace' else 'repair needed, not done'}")
    clients.sns.publish(TopicArn=config.topic_arn, Subject=subject[:100],
                        Message=json.dumps({**body, "record": f"s3://{config.bucket}/{key}"}, indent=1))
    return {**body, "record": key}


def lambda_handler(event: Mapping[str, object], context: object) -> dict[str, object]:
    import boto3  # the Lambda runtime's; imported here so the pure half loads without it

    return handle(event, Config.from_env(os.environ), Clients(
        ecs=boto3.client("ecs"), ec2=boto3.client("ec2"), s3=boto3.client("s3"), sns=boto3.client("sns")))
