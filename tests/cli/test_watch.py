"""Watching jobs (issue 25 item 3): `status --wait` shows each job's state as it changes, a job Batch ended without a
record is done (exit 1) with its CloudWatch log stream named, and `logs --follow` streams CloudWatch Logs while a job
runs. AWS is moto in process; the Batch states a job passes through, and CloudWatch Logs' paging, are scripted."""

from __future__ import annotations

import io
import json
import time

import boto3
import pytest
from botocore.stub import Stubber

from rackform.cli import jobs as cli_jobs
from rackform.jobs.submit import BATCH_LOG_GROUP
from tests.cli.conftest import Clock
from tests.conftest import ROOT, run_cli

SPEC = ROOT / "examples" / "demo.yaml"
REGION = "us-east-1"


@pytest.fixture
def aws(demo_deployed):
    return demo_deployed["store"]


def submit(capsys, run_id: str, benchmark: str = "cpu") -> dict:
    code, out, err = run_cli(capsys, "submit", SPEC, "--rack", "graviton", "--node-group", "head", "--benchmark",
                             benchmark, "--run-id", run_id, "--json")
    assert code == 0, err
    return json.loads(out)["jobs"][0]


class Batch:
    """DescribeJobs answering each job's next scripted state at each call (the last one from then on)."""

    def __init__(self, *states: dict) -> None:
        self.states, self.calls = list(states), 0

    def describe_jobs(self, jobs: list[str]) -> dict:
        state = self.states[min(self.calls, len(self.states) - 1)]
        self.calls += 1
        return {"jobs": [{"jobId": j, **state} for j in jobs]}


STREAM = "demo-graviton-head-single/default/4f0c"


def test_wait_shows_each_change_and_ends_on_a_job_batch_ended_without_a_record(aws, capsys):
    submit(capsys, "w1")
    batch = Batch({"status": "RUNNABLE"}, {"status": "RUNNABLE"}, {"status": "RUNNING"},
                  {"status": "SUCCEEDED", "container": {"logStreamName": STREAM}})
    stream, clock = io.StringIO(), Clock()
    states, timed_out = cli_jobs.wait_for("w1", aws, batch, interval_s=10, timeout_s=300, stream=stream,
                                          clock=clock, sleep=clock.sleep)
    assert not timed_out and [s.done for s in states] == [True] and clock.now == 30  # never waited on forever
    lines = stream.getvalue().splitlines()
    assert [line for line in lines if not line.startswith("[")] == [
        "  cpu graviton/head: RUNNABLE",
        "  cpu graviton/head: RUNNABLE -> RUNNING",
        f"  cpu graviton/head: RUNNING -> SUCCEEDED, no record: its output is log stream {STREAM} in "
        f"{BATCH_LOG_GROUP}"]
    assert lines[-1].startswith("[##############################] 1/1 jobs done")


def test_wait_on_a_terminal_writes_changes_above_the_bar(aws, capsys):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    submit(capsys, "w2")
    stream, clock = Tty(), Clock()
    cli_jobs.wait_for("w2", aws, Batch({"status": "RUNNING"}, {"status": "FAILED", "statusReason": "OOM"}),
                      interval_s=5, timeout_s=None, stream=stream, clock=clock, sleep=clock.sleep)
    text = stream.getvalue()
    assert "\r\033[K  cpu graviton/head: RUNNING\n\r[" in text  # the bar cleared, the line, the bar again
    assert "RUNNING -> FAILED, no record: Batch gave no log stream" in text


def test_status_names_the_log_stream_of_a_job_ended_without_a_record_and_exits_1(aws, capsys, monkeypatch):
    job = submit(capsys, "w3")
    ended = Batch({"status": "SUCCEEDED", "attempts": [{"container": {"logStreamName": STREAM}}]})
    monkeypatch.setattr(cli_jobs, "batch_lookup", lambda args, region=None: ended)
    code, out, err = run_cli(capsys, "status", "w3")
    assert code == 1
    assert f"cpu graviton/head: Batch says SUCCEEDED and no record landed; its output is log stream {STREAM} in " \
        f"/aws/batch/job" in out
    code, out, _ = run_cli(capsys, "status", "w3", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["done"] and doc["jobs"][0]["log_stream"] == STREAM
    assert doc["jobs"][0]["job_id"] == job["job_id"]


# --- logs --follow ---------------------------------------------------------------------------------------------------

def test_logs_follow_streams_cloudwatch_while_the_job_runs(monkeypatch):
    """GetLogEvents from the head, then each nextForwardToken; the same token back is "nothing new yet": the next
    poll asks again from it, until Batch has ended the job and the stream has nothing more."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    logs = boto3.client("logs", region_name=REGION)
    running = {"status": "RUNNING", "container": {"logStreamName": STREAM}}
    batch = Batch({"status": "RUNNABLE"}, running, running, {**running, "status": "SUCCEEDED"})
    where = {"logGroupName": "/aws/batch/job", "logStreamName": STREAM, "startFromHead": True}

    def page(messages: list[str], token: str) -> dict:
        return {"events": [{"timestamp": 1, "message": m, "ingestionTime": 2} for m in messages],
                "nextForwardToken": token, "nextBackwardToken": "b"}

    sleeps: list[float] = []
    out = io.StringIO()
    with Stubber(logs) as stub:
        stub.add_response("get_log_events", page(["step 1"], "f/1"), where)
        stub.add_response("get_log_events", page([], "f/1"), {**where, "nextToken": "f/1"})  # nothing new yet
        stub.add_response("get_log_events", page(["step 2", "\x1b]0;owned\x07"], "f/2"), {**where, "nextToken": "f/1"})
        stub.add_response("get_log_events", page([], "f/2"), {**where, "nextToken": "f/2"})
        stub.add_response("get_log_events", page(["done"], "f/3"), {**where, "nextToken": "f/2"})
        stub.add_response("get_log_events", page([], "f/3"), {**where, "nextToken": "f/3"})
        status = cli_jobs.follow(batch, logs, "job-1", out, interval_s=7, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert status == "SUCCEEDED" and sleeps == [7, 7, 7]
    assert out.getvalue() == "step 1\nstep 2\n\\x1b]0;owned\\x07\ndone\n"


def test_logs_follow_in_the_embedded_aws_prints_the_job_stream_and_its_end(aws, capsys):
    job = submit(capsys, "w4")
    batch = boto3.client("batch", region_name=REGION)
    stream = batch.describe_jobs(jobs=[job["job_id"]])["jobs"][0]["container"]["logStreamName"]
    logs = boto3.client("logs", region_name=REGION)
    if not logs.describe_log_groups(logGroupNamePrefix=BATCH_LOG_GROUP)["logGroups"]:
        logs.create_log_group(logGroupName=BATCH_LOG_GROUP)
    if not logs.describe_log_streams(logGroupName=BATCH_LOG_GROUP, logStreamNamePrefix=stream)["logStreams"]:
        logs.create_log_stream(logGroupName=BATCH_LOG_GROUP, logStreamName=stream)
    now_ms = int(time.time() * 1000)  # CloudWatch Logs refuses events older than 14 days
    logs.put_log_events(logGroupName=BATCH_LOG_GROUP, logStreamName=stream,
                        logEvents=[{"timestamp": now_ms + i, "message": f"line {i}"} for i in range(3)])
    code, out, err = run_cli(capsys, "logs", "w4", "--follow", "--interval", "0.01")
    assert code == 0, err
    assert out == "line 0\nline 1\nline 2\n"
    assert f"job {job['job_id']} ended SUCCEEDED" in err
    code, out, _ = run_cli(capsys, "logs", "w4", "--follow", "--json")
    assert code == 0 and [json.loads(line)["message"] for line in out.splitlines()] == ["line 0", "line 1", "line 2"]


def test_logs_follow_exits_1_for_a_failed_job_and_asks_which_job(aws, capsys, monkeypatch):
    submit(capsys, "w5")
    submit(capsys, "w5", "gemm")
    code, _, err = run_cli(capsys, "logs", "w5", "--follow")
    assert code == 2 and "2 jobs of run w5 match" in err
    monkeypatch.setattr(cli_jobs, "batch_lookup", lambda args, region=None: Batch({"status": "FAILED"}))
    code, _, err = run_cli(capsys, "logs", "w5", "--follow", "--benchmark", "gemm")
    assert code == 1 and "ended FAILED" in err
    code, _, err = run_cli(capsys, "logs", "w5", "--follow", "--benchmark", "storage")
    assert code == 1 and "no job of run w5 matches" in err


def test_a_multi_node_job_ended_without_a_record_points_at_its_node_jobs_streams(aws, capsys, monkeypatch):
    code, _, err = run_cli(capsys, "submit", SPEC, "--rack", "graviton", "--node-group", "cpu", "--benchmark",
                           "allreduce", "--nodes", 2, "--run-id", "w6")
    assert code == 0, err
    monkeypatch.setattr(cli_jobs, "batch_lookup", lambda args, region=None: Batch({"status": "FAILED"}))
    code, out, _ = run_cli(capsys, "status", "w6")
    assert code == 1
    assert "each node's output is its node job's log stream in /aws/batch/job (`rackform logs RUN --benchmark " \
        "allreduce --follow --node I`" in out
