"""The repair function (workloads/repair.py): the pure decision, and Batch job-state events driven through the handler
against moto (the instance drained and terminated, the record written and readable by the store, the hourly limit
held, nothing done for a job's own failure)."""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import ROOT, moto_aws
from workloads import layout, repair
from workloads.objects import RepairRecord
from workloads.repair import HEALTH_STEP_FAILED_EXIT, Attempt, Config, Group, attempt_of, budget, decide
from workloads.store import ResultStore

REGION = "us-east-1"
NOW = dt.datetime(2026, 12, 6, 5, 0, tzinfo=dt.UTC)
GROUP = Group(rack="gpu", node_group="h100", nodes=10)
QUEUE = "demo-gpu-h100-queue"


def event(*, exit_code: int | None = HEALTH_STEP_FAILED_EXIT, status: str = "FAILED", reason: str = "",
          instance_arn: str | None = "arn:aws:ecs:us-east-1:123456789012:container-instance/ce_Batch_1/abc",
          job_id: str = "job-1", attempts: int = 1, stopped: dt.datetime = NOW) -> dict[str, Any]:
    container: dict[str, Any] = {"logStreamName": "demo/default/abc"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if instance_arn is not None:
        container["containerInstanceArn"] = instance_arn
    ended = {"container": container, "startedAt": int(stopped.timestamp() * 1000) - 60_000,
             "stoppedAt": int(stopped.timestamp() * 1000),
             "statusReason": reason or "Essential container in task exited"}
    return {"detail-type": "Batch Job State Change", "source": "aws.batch", "detail": {
        "jobName": "run-1-gpu-h100-gemm", "jobId": job_id, "status": status,
        "jobQueue": f"arn:aws:batch:{REGION}:123456789012:job-queue/{QUEUE}",
        "statusReason": ended["statusReason"], "attempts": [ended] * attempts}}


def attempt(**kw: Any) -> Attempt | None:
    return attempt_of(event(**kw)["detail"])


# --- the pure decision ---------------------------------------------------------------------------------------------

def test_a_health_step_failure_replaces_the_node() -> None:
    d = decide(attempt(), GROUP, recent=0, max_fraction=0.2)
    assert (d.action, d.failure) == ("replace", "health-step")


def test_a_host_fault_replaces_the_node_it_names() -> None:
    a = attempt(exit_code=None, instance_arn=None, reason="Host EC2 (instance i-0123456789abcdef0) terminated.")
    assert a is not None and a.instance_id == "i-0123456789abcdef0"
    assert (decide(a, GROUP, 0, 0.2).action, decide(a, GROUP, 0, 0.2).failure) == ("replace", "host-fault")


@pytest.mark.parametrize("kw", [
    {"exit_code": 1},  # the benchmark's own failure
    {"exit_code": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"},
    {"exit_code": None, "reason": "CannotPullContainerError: pull image manifest has been retried 1 time(s)"},
    {"exit_code": None, "reason": "Job attempt duration exceeded timeout"},
    {"exit_code": 0, "status": "SUCCEEDED"},
])
def test_a_jobs_own_failure_is_never_repaired(kw: dict[str, Any]) -> None:
    assert decide(attempt(**kw), GROUP, 0, 0.2).action == "nothing"


def test_a_queue_of_another_rack_or_no_ended_attempt_is_left_alone() -> None:
    assert decide(attempt(), None, 0, 0.2).action == "nothing"
    assert attempt(attempts=0) is None and decide(None, GROUP, 0, 0.2).action == "nothing"


@pytest.mark.parametrize(("nodes", "fraction", "allowed"), [(10, 0.2, 2), (16, 0.2, 3), (4, 0.2, 1), (1, 0.2, 1),
                                                          (10, 0.5, 5), (3, 1.0, 3)])
def test_the_hourly_budget_is_the_fraction_of_the_group_at_least_one(nodes: int, fraction: float,
                                                                      allowed: int) -> None:
    assert budget(nodes, fraction) == allowed
    group = Group(rack="gpu", node_group="h100", nodes=nodes)
    assert decide(attempt(), group, allowed - 1, fraction).action == "replace"
    spent = decide(attempt(), group, allowed, fraction)
    assert spent.action == "alert" and "past hour" in spent.reason


# --- the module runs in Lambda: standard library and boto3 only --------------------------------------------------

@pytest.mark.parametrize("module", ["repair.py", "queue_depth.py"])  # the rack's two functions
def test_the_function_imports_only_the_standard_library_and_boto3(module: str) -> None:
    import sys

    tree = ast.parse((ROOT / "workloads" / module).read_text())
    imported = {(n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
                for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                for a in (n.names if isinstance(n, ast.Import) else [n.names[0]])}
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)), "no package imports"
    assert imported - sys.stdlib_module_names == {"boto3"}


def test_the_writers_key_is_the_readers() -> None:
    key = repair.record_key("gpu", "h100", NOW, "abc#3", 2)
    assert key.startswith(layout.repairs_prefix("gpu", "h100")) and layout.REPAIR_OBJECT.fullmatch(key)
    assert layout.repairs_prefix().startswith(f"{layout.RESULTS_PREFIX}/")
    assert not layout.RUN_ID.fullmatch(key.split("/")[1]), "no run can share the folder"


def test_the_runner_exits_with_the_functions_code_when_its_node_fails(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    from workloads import health, run
    from workloads.results import HealthCheck

    failed = [HealthCheck(name="gpus", status="failed", detail="7 of 8 planned GPUs visible")]
    monkeypatch.setattr(health, "collect", lambda ctx, **kw: (failed, {}))
    env = {"RACKFORM_RUN_ID": "run-1", "RACKFORM_RACK": "gpu", "RACKFORM_NODE_GROUP": "h100",
           "RACKFORM_TIER": "cpu", "RACKFORM_INSTANCE_TYPE": "m7g.xlarge", "RACKFORM_WORK_DIR": str(tmp_path),
           "RACKFORM_LOCAL": "1"}
    assert run.main(["cpu"], env) == HEALTH_STEP_FAILED_EXIT


# --- the handler against the embedded AWS --------------------------------------------------------------------------

class Aws:
    def __init__(self) -> None:
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.ecs = boto3.client("ecs", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.bucket = "results"
        self.s3.create_bucket(Bucket=self.bucket)
        self.s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        self.topic = self.sns.create_topic(Name="repairs")["TopicArn"]
        queue = self.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        self.inbox = queue
        arn = self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn,
                           Attributes={"RawMessageDelivery": "true"})
        self.cluster = "demo-gpu-h100-ce_Batch_0123"
        self.ecs.create_cluster(clusterName=self.cluster)
        self.config = Config(bucket=self.bucket, topic_arn=self.topic, groups={QUEUE: GROUP}, max_fraction=0.2)
        self.clients = repair.Clients(ecs=self.ecs, ec2=self.ec2, s3=self.s3, sns=self.sns)

    def node(self) -> tuple[str, str]:
        """A running instance registered as a container instance of the group's cluster: (instance id, its ARN)."""
        image = self.ec2.describe_images()["Images"][0]["ImageId"]
        instance = self.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        document = json.dumps({"instanceId": instance, "region": REGION})
        arn = self.ecs.register_container_instance(
            cluster=self.cluster, instanceIdentityDocument=document)["containerInstance"]["containerInstanceArn"]
        return instance, arn

    def state(self, instance: str) -> str:
        return self.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]

    def status(self, arn: str) -> str:
        got = self.ecs.describe_container_instances(cluster=self.cluster, containerInstances=[arn])
        return str(got["containerInstances"][0]["status"])

    def messages(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]

    def handle(self, e: dict[str, Any], now: dt.datetime = NOW) -> dict[str, object]:
        return repair.handle(e, self.config, self.clients, now=now)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with moto_aws(monkeypatch, REGION):
        yield Aws()


def test_a_health_failure_drains_terminates_records_and_notifies(aws: Aws) -> None:
    instance, arn = aws.node()
    done = aws.handle(event(instance_arn=arn))
    assert done["action"] == "replace" and done["instance_id"] == instance
    assert aws.status(arn) == "DRAINING"
    assert aws.state(instance) in ("shutting-down", "terminated")
    records = ResultStore(aws.bucket, aws.s3).repairs(layout.repairs_prefix("gpu"))
    assert [(r.action, r.failure, r.instance_id, r.job_id) for r in records] == [
        ("replace", "health-step", instance, "job-1")]
    assert records[0].steps == {"drain": "DRAINING", "terminate": "terminating"}
    assert ResultStore(aws.bucket, aws.s3).run_ids() == []  # results/_repairs/ is no run (`runs` called it one)
    [message] = aws.messages()
    assert message["instance_id"] == instance and message["record"].endswith(str(done["record"]))


def test_the_written_record_passes_the_readers_schema(aws: Aws) -> None:
    _, arn = aws.node()
    key = str(aws.handle(event(instance_arn=arn))["record"])
    body = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read())
    assert RepairRecord.model_validate(body).action == "replace"
    assert key == layout.repair_key("gpu", "h100", NOW, "job-1", 1)


def test_a_jobs_own_failure_touches_nothing(aws: Aws) -> None:
    instance, arn = aws.node()
    assert aws.handle(event(exit_code=1, instance_arn=arn))["action"] == "nothing"
    assert aws.status(arn) == "ACTIVE" and aws.state(instance) == "running"
    assert ResultStore(aws.bucket, aws.s3).repairs() == [] and aws.messages() == []


def test_the_hourly_limit_holds_then_only_alerts(aws: Aws) -> None:
    nodes = [aws.node() for _ in range(3)]  # GROUP: 10 nodes at 0.2 -> 2 an hour
    for i, (_, arn) in enumerate(nodes):
        aws.handle(event(instance_arn=arn, job_id=f"job-{i}", stopped=NOW + dt.timedelta(minutes=i)),
                   now=NOW + dt.timedelta(minutes=i))
    assert [aws.state(i) != "running" for i, _ in nodes] == [True, True, False]
    assert aws.state(nodes[2][0]) == "running" and aws.status(nodes[2][1]) == "ACTIVE"
    records = ResultStore(aws.bucket, aws.s3).repairs()
    assert [r.action for r in records] == ["replace", "replace", "alert"]
    assert len(aws.messages()) == 3
    # An hour after the first two, the group may heal again.
    later = NOW + dt.timedelta(minutes=62)
    _, arn = aws.node()
    assert aws.handle(event(instance_arn=arn, job_id="job-9", stopped=later), now=later)["action"] == "replace"


def test_a_repeated_event_acts_once(aws: Aws) -> None:
    _, arn = aws.node()
    aws.handle(event(instance_arn=arn))
    again = aws.handle(event(instance_arn=arn, status="FAILED"))
    assert again["action"] == "nothing" and "already handled" in str(again["reason"])
    assert len(ResultStore(aws.bucket, aws.s3).repairs()) == 1 and len(aws.messages()) == 1


def test_a_drain_refused_still_terminates(aws: Aws) -> None:
    instance, _ = aws.node()
    gone = f"arn:aws:ecs:{REGION}:123456789012:container-instance/{aws.cluster}/missing"
    e = event(exit_code=None, instance_arn=gone, reason=f"Host EC2 (instance {instance}) terminated.")
    done = aws.handle(e)
    assert done["action"] == "replace" and aws.state(instance) in ("shutting-down", "terminated")
    steps = ResultStore(aws.bucket, aws.s3).repairs()[0].steps
    assert steps["drain"].startswith("failed") and steps["terminate"] == "terminating"


def test_a_tampered_record_is_refused_by_the_reader(aws: Aws) -> None:
    _, arn = aws.node()
    key = str(aws.handle(event(instance_arn=arn))["record"])
    body = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read())
    moved = key.replace("job-1-1", "job-2-1")
    data = json.dumps(body).encode()
    import base64
    import hashlib
    aws.s3.put_object(Bucket=aws.bucket, Key=moved, Body=data, ChecksumAlgorithm="SHA256",
                      ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode())
    store = ResultStore(aws.bucket, aws.s3)
    assert [r.job_id for r in store.repairs()] == ["job-1"]
    assert [p.key for p in store.problems] == [moved]
