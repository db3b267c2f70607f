"""The queue-depth function (workloads/queue_depth.py): the pure step from ListJobs pages to metric data, the bound
on pages, and the handler against moto (Batch queues and jobs in moto, the metrics landing in moto's CloudWatch)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from moto.batch.models import batch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from rackform.pipeline import load_plan
from tests.conftest import DEMO_REGION, DEMO_SPEC, deploy_to_moto, moto_aws
from workloads.queue_depth import (
    MAX_PAGES,
    OLDEST_RUNNABLE,
    PAGE_SIZE,
    Listing,
    QueueConfig,
    environment,
    figures,
    handle,
    list_queue,
    metric_data,
)

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
RACK = "demo-gpu"


def ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def summary(created: dt.datetime, **times: dt.datetime) -> dict[str, Any]:
    return {"jobId": "j", "createdAt": ms(created), **{k: ms(v) for k, v in times.items()}}


# --- the pure step -------------------------------------------------------------------------------------------------

def test_each_state_is_counted_once_and_the_oldest_runnable_wait_is_measured() -> None:
    listing = Listing(queue="q", node_group="demo-gpu-h100", jobs={
        "SUBMITTED": [summary(NOW)], "PENDING": [summary(NOW), summary(NOW)],
        "RUNNABLE": [summary(NOW - dt.timedelta(minutes=5)), summary(NOW - dt.timedelta(minutes=42))],
        "STARTING": [summary(NOW)], "RUNNING": [summary(NOW, startedAt=NOW)] * 4})
    assert figures(listing, NOW) == {"JobsWaiting": 3.0, "JobsRunnable": 2.0, "JobsRunning": 5.0,
                                     OLDEST_RUNNABLE: 42 * 60.0}


def test_a_retried_job_waits_from_its_last_attempt_not_its_submission() -> None:
    retried = summary(NOW - dt.timedelta(hours=3), startedAt=NOW - dt.timedelta(hours=2),
                      stoppedAt=NOW - dt.timedelta(minutes=10))
    listing = Listing(queue="q", node_group="g", jobs={"RUNNABLE": [retried]})
    assert figures(listing, NOW)[OLDEST_RUNNABLE] == 600.0


def test_an_empty_queue_reads_zero_not_missing() -> None:
    assert figures(Listing(queue="q", node_group="g", jobs={}), NOW) == {
        "JobsWaiting": 0.0, "JobsRunnable": 0.0, "JobsRunning": 0.0, OLDEST_RUNNABLE: 0.0}


def test_the_metrics_carry_the_nodes_dimensions_and_the_rack_gets_its_oldest_wait() -> None:
    old = Listing(queue="a", node_group="demo-gpu-a", jobs={"RUNNABLE": [summary(NOW - dt.timedelta(hours=1))]})
    new = Listing(queue="b", node_group="demo-gpu-b", jobs={"RUNNABLE": [summary(NOW - dt.timedelta(minutes=1))]})
    data = metric_data(RACK, [old, new], NOW)
    per_group = {(d["MetricName"], d["Dimensions"][1]["Value"]): d["Value"]  # type: ignore[index]
                 for d in data if len(d["Dimensions"]) == 2}  # type: ignore[arg-type]
    assert per_group[(OLDEST_RUNNABLE, "demo-gpu-a")] == 3600.0 and per_group[("JobsRunnable", "demo-gpu-b")] == 1.0
    [rack] = [d for d in data if d["Dimensions"] == [{"Name": "Rack", "Value": RACK}]]
    assert (rack["MetricName"], rack["Value"], rack["Unit"]) == (OLDEST_RUNNABLE, 3600.0, "Seconds")
    assert all(d["Dimensions"][0] == {"Name": "Rack", "Value": RACK} for d in data)  # type: ignore[index]


class Pages:
    """A Batch client whose every queue and state holds `jobs` jobs, PAGE_SIZE a page, as ListJobs pages them."""

    def __init__(self, jobs: int) -> None:
        self.jobs, self.calls = jobs, 0

    def list_jobs(self, **kw: Any) -> dict[str, Any]:
        self.calls += 1
        assert kw["maxResults"] == PAGE_SIZE
        start = int(kw.get("nextToken", 0))
        page = [summary(NOW) for _ in range(start, min(start + PAGE_SIZE, self.jobs))]
        return {"jobSummaryList": page, **({"nextToken": str(start + PAGE_SIZE)} if start + PAGE_SIZE < self.jobs
                                           else {})}


def test_pages_are_read_to_the_end_within_the_bound() -> None:
    batch = Pages(PAGE_SIZE + 50)
    listing = list_queue(batch, "q", "g")
    assert len(listing.jobs["RUNNABLE"]) == PAGE_SIZE + 50 and listing.truncated == () and batch.calls == 5 * 2


def test_past_the_bound_the_count_is_a_floor_and_the_result_says_so() -> None:
    batch = Pages(MAX_PAGES * PAGE_SIZE + 1)
    listing = list_queue(batch, "q", "g")
    assert len(listing.jobs["RUNNABLE"]) == MAX_PAGES * PAGE_SIZE and batch.calls == 5 * MAX_PAGES
    assert listing.truncated == ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


def test_the_environment_reads_back() -> None:
    queues = {"demo-gpu-h100-queue": "demo-gpu-h100"}
    assert QueueConfig.from_env(environment(rack=RACK, queues=queues)) == QueueConfig(rack=RACK, queues=queues)


# --- against moto --------------------------------------------------------------------------------------------------

QUEUE, DEFINITION = "demo-gpu-h100-queue", "demo-gpu-h100-single"


def test_the_handler_puts_each_queues_depth_into_cloudwatch(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_aws(monkeypatch, DEMO_REGION):
        batch, cloudwatch = boto3.client("batch"), boto3.client("cloudwatch")
        deploy_to_moto(load_plan(DEMO_SPEC), monkeypatch, s3=boto3.client("s3"), batch=batch)
        for status, age in (("RUNNABLE", 45), ("RUNNABLE", 2), ("RUNNING", 0), ("PENDING", 0), ("SUCCEEDED", 0)):
            job_id = batch.submit_job(jobName=f"j-{status}", jobQueue=QUEUE, jobDefinition=DEFINITION)["jobId"]
            held = batch_backends[DEFAULT_ACCOUNT_ID][DEMO_REGION]._jobs[job_id]  # moto without Docker ends jobs
            held.status = status
            held.job_created_at = (NOW - dt.timedelta(minutes=age)).replace(tzinfo=None)
            held.job_started_at = held.job_created_at
            # moto ended the job (no Docker) at the machine's clock; a job held RUNNABLE has not stopped since it was
            # created (left at the clock, the test failed from NOW - 45 minutes of the day NOW names on)
            held.job_stopped_at = held.job_created_at
        config = QueueConfig(rack=RACK, queues={QUEUE: "demo-gpu-h100",
                                                "demo-trainium-workers-queue": "demo-trainium-w"})
        result = handle(config, batch, cloudwatch, now=NOW)

        assert result["queues"][QUEUE] == {"JobsWaiting": 1.0, "JobsRunnable": 2.0,  # type: ignore[index]
                                           "JobsRunning": 1.0, OLDEST_RUNNABLE: 45 * 60.0}

        def read(name: str, dims: dict[str, str]) -> list[float]:
            got = cloudwatch.get_metric_statistics(
                Namespace="rackform", MetricName=name, StartTime=NOW - dt.timedelta(minutes=5),
                EndTime=NOW + dt.timedelta(minutes=5), Period=300, Statistics=["Maximum"],
                Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()])
            return [p["Maximum"] for p in got["Datapoints"]]

        assert read("JobsRunnable", {"Rack": RACK, "NodeGroup": "demo-gpu-h100"}) == [2.0]
        assert read(OLDEST_RUNNABLE, {"Rack": RACK, "NodeGroup": "demo-trainium-w"}) == [0.0]
        assert read(OLDEST_RUNNABLE, {"Rack": RACK}) == [45 * 60.0]
