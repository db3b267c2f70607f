"""The rehearsal's repair loop (rackform/jobs/heal.py): the local executor plays Batch's retry strategy and hands the
repair function the event of an attempt that ended on a failed health step, against the embedded AWS."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from rackform.cli import checked_plan, main
from rackform.jobs.heal import BrokenNode, LocalRepair, after_attempt
from rackform.jobs.jobdefs import RETRY_STRATEGY
from rackform.jobs.local import EmbeddedAWS, deploy, run_local
from tests.conftest import ROOT
from workloads import health
from workloads.contract import JobEnvironment
from workloads.layout import BenchmarkJobName, BenchmarkMarker
from workloads.repair import HEALTH_STEP_FAILED_EXIT
from workloads.store import ResultStore

SPEC = str(ROOT / "examples" / "demo.yaml")


def tool_output(env: dict[str, str], argv: list[str]) -> str:
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(("gpus", "check"), [(8, "gpus"), (0, "clock")])
def test_a_broken_nodes_tool_fails_the_real_health_check(tmp_path: Path, gpus: int, check: str) -> None:
    env, what = BrokenNode("job").environment({"PATH": "/usr/bin:/bin"}, JobEnvironment(gpus=gpus), tmp_path)
    if gpus:
        [count, _ecc] = health.check_gpus(tool_output(env, ["nvidia-smi", "--query-gpu=index,name,ecc"]), gpus)
        assert count.status == "failed" and "7 of 8" in count.detail and "7 of its 8" in what
    else:
        result = health.check_clock(tool_output(env, ["chronyc", "tracking"]))
        assert result.name == check and result.status == "failed"


def test_a_jobs_own_failure_is_neither_retried_nor_repaired() -> None:
    said: list[str] = []
    marker = BenchmarkMarker(job_name="r-gpu-h100-cpu", queue="q", job_definition="d", rack="gpu", node_group="h100",
                             benchmark="cpu", nodes=1, job_id="j")
    jobdef: dict[str, Any] = {"retryStrategy": RETRY_STRATEGY}
    assert not after_attempt(jobdef, marker, attempt=1, codes=[1], repair_loop=None, announce=said.append)
    assert not after_attempt(jobdef, marker, attempt=1, codes=[0], repair_loop=None, announce=said.append)
    assert said == []
    assert after_attempt(jobdef, marker, attempt=1, codes=[HEALTH_STEP_FAILED_EXIT], repair_loop=None,
                         announce=said.append)
    assert not after_attempt(jobdef, marker, attempt=RETRY_STRATEGY["attempts"], codes=[HEALTH_STEP_FAILED_EXIT],
                             repair_loop=None, announce=said.append)


def test_a_node_failing_its_health_step_is_replaced_and_the_job_retried(demo_assembly: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    plan = checked_plan(SPEC)
    with EmbeddedAWS(plan.region) as aws:
        deployment = deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                            assembly=demo_assembly)
        for k, v in {**aws.env, "RACKFORM_BUCKET": deployment.bucket}.items():
            monkeypatch.setenv(k, v)
        assert main(["submit", SPEC, "--rack", "gpu", "--node-group", "h100", "--benchmark", "cpu",
                     "--run-id", "heal-1"]) == 0
        name = str(BenchmarkJobName(run_id="heal-1", rack="gpu", node_group="h100", benchmark="cpu"))
        said: list[str] = []
        [result] = run_local(aws, deployment, "heal-1", log_dir=tmp_path, announce=said.append,
                             broken=BrokenNode(name), repair=LocalRepair(aws.client, plan, deployment.bucket))
        text = "\n".join(said)
        assert result["exit_codes"] == [0], text
        assert "injected: broken node gpu/h100 node 0: nvidia-smi lists 7 of its 8 GPUs" in text
        assert f"exit {HEALTH_STEP_FAILED_EXIT}" in text and "retry: attempt 2 of 3" in text
        assert "repair: replace: the node failed its health step" in text
        store = ResultStore(deployment.bucket, aws.client("s3"))
        [repaired] = store.repairs()
        assert (repaired.action, repaired.failure, repaired.rack, repaired.node_group) == (
            "replace", "health-step", "gpu", "h100")
        assert repaired.steps == {"drain": "DRAINING", "terminate": "terminating"}
        ec2 = aws.client("ec2")
        state = ec2.describe_instances(InstanceIds=[repaired.instance_id])["Reservations"][0]["Instances"][0]
        assert state["State"]["Name"] in ("shutting-down", "terminated")
        # the failed attempt wrote nothing: the retry's record and health record are the job's
        [record] = store.records("heal-1")
        assert record.status == "succeeded" and record.validity == "valid"
        assert [h.healthy for h in store.health("heal-1")] == [True]
