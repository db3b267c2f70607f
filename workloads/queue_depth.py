"""The queue-depth function: each of a rack's Batch job queues' depth, as CloudWatch metrics (docs/self-healing.md).

AWS Batch publishes no metric of its queues, so a schedule (cdk_constructs/telemetry.py, every
rackform.plan.models.QUEUE_DEPTH_INTERVAL_MINUTES) invokes this function (AWS Lambda), which lists each queue's
unfinished jobs with ListJobs and puts, in the `rackform` namespace, per queue (dimensions Rack and NodeGroup):
JobsWaiting (SUBMITTED and PENDING), JobsRunnable, JobsRunning (STARTING and RUNNING) and OldestRunnableAgeSeconds;
and per rack (dimension Rack alone) OldestRunnableAgeSeconds, the figure the rack's "jobs stuck RUNNABLE" alarm reads.

Two halves, as workloads/repair.py: `metric_data` is pure (the ListJobs pages -> the metric data), `handle` the thin
AWS layer. Standard library and boto3 only (the Lambda Python runtime's): the function's asset is this file alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

NAMESPACE = "rackform"  # the nodes' CloudWatch agent's too (cdk_constructs/user_data.py TELEMETRY_NAMESPACE)
# The metrics and the job states each counts (https://docs.aws.amazon.com/batch/latest/userguide/job_states.html).
COUNTED: dict[str, tuple[str, ...]] = {"JobsWaiting": ("SUBMITTED", "PENDING"), "JobsRunnable": ("RUNNABLE",),
                                       "JobsRunning": ("STARTING", "RUNNING")}
OLDEST_RUNNABLE = "OldestRunnableAgeSeconds"
# ListJobs filtered by a job status returns up to 1,000 jobs a page (maxResults,
# https://docs.aws.amazon.com/batch/latest/APIReference/API_ListJobs.html); the function reads at most MAX_PAGES of
# each queue and state, so an invocation ends inside its timeout however deep a queue grows. Past that bound a count
# is a floor (2,000) and the oldest RUNNABLE age is the oldest of the jobs read; the result names the queues.
PAGE_SIZE = 1000
MAX_PAGES = 2
# PutMetricData takes up to 1,000 metrics a request
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html).
PUT_BATCH = 1000


@dataclass(frozen=True)
class Listing:
    """One queue's unfinished jobs, by state, as ListJobs listed them (its jobSummaryList entries)."""

    queue: str
    node_group: str  # the node group's resource name: the NodeGroup dimension of the nodes' own metrics
    jobs: Mapping[str, Sequence[Mapping[str, object]]]
    truncated: tuple[str, ...] = ()  # the states with more jobs than MAX_PAGES pages


def runnable_since(job: Mapping[str, object]) -> dt.datetime | None:
    """The earliest a RUNNABLE job can have become RUNNABLE: the latest time ListJobs gives of it. ListJobs has no
    time a job entered RUNNABLE; a retried job was RUNNABLE again only after its last attempt stopped, so its
    createdAt alone would count the attempts' time as waiting."""
    times = [t for t in (job.get(k) for k in ("createdAt", "startedAt", "stoppedAt")) if isinstance(t, int)]
    return dt.datetime.fromtimestamp(max(times) / 1000, dt.UTC) if times else None


def figures(listing: Listing, now: dt.datetime) -> dict[str, float]:
    """The queue's metrics: the counts, and how long its oldest RUNNABLE job has waited (0 when none waits, so the
    graph reads 0 and a missing point means the function did not run)."""
    counts = {name: float(sum(len(listing.jobs.get(s, ())) for s in states)) for name, states in COUNTED.items()}
    since = [t for t in map(runnable_since, listing.jobs.get("RUNNABLE", ())) if t is not None]
    age = max(0.0, (now - min(since)).total_seconds()) if since else 0.0
    return {**counts, OLDEST_RUNNABLE: age}


def metric_data(rack: str, listings: Iterable[Listing], now: dt.datetime) -> list[dict[str, object]]:
    """PutMetricData's MetricData for the rack: each queue's figures, and the rack's oldest RUNNABLE age."""
    data: list[dict[str, object]] = []
    oldest = 0.0
    for listing in listings:
        dims = [{"Name": "Rack", "Value": rack}, {"Name": "NodeGroup", "Value": listing.node_group}]
        for name, value in figures(listing, now).items():
            data.append({"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": value,
                         "Unit": "Seconds" if name == OLDEST_RUNNABLE else "Count"})
            if name == OLDEST_RUNNABLE:
                oldest = max(oldest, value)
    data.append({"MetricName": OLDEST_RUNNABLE, "Dimensions": [{"Name": "Rack", "Value": rack}], "Timestamp": now,
                 "Value": oldest, "Unit": "Seconds"})
    return data


# --- the AWS layer -------------------------------------------------------------------------------------------------

Response = Mapping[str, Any]  # a boto3 response: JSON-shaped, as botocore parsed it


class Batch(Protocol):
    def list_jobs(self, **kwargs: object) -> Response: ...


class CloudWatch(Protocol):
    def put_metric_data(self, **kwargs: object) -> Response: ...


@dataclass(frozen=True)
class QueueConfig:
    rack: str  # the Rack dimension: `<spec>-<rack>`, as the nodes' CloudWatch agent writes it
    queues: Mapping[str, str]  # job queue name -> node group resource name

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QueueConfig:
        """Read back what `environment` wrote."""
        return cls(rack=env["RACKFORM_QUEUES_RACK"], queues=json.loads(env["RACKFORM_QUEUES"]))


def environment(*, rack: str, queues: Mapping[str, str]) -> dict[str, str]:
    """The function's environment (the CDK app writes it, `QueueConfig.from_env` reads it); compact, as Lambda allows
    4 KB of environment (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)."""
    return {"RACKFORM_QUEUES_RACK": rack, "RACKFORM_QUEUES": json.dumps(dict(queues), separators=(",", ":"))}


def list_queue(batch: Batch, queue: str, node_group: str, *, max_pages: int = MAX_PAGES) -> Listing:
    """The queue's jobs in each counted state, at most `max_pages` pages of each."""
    jobs: dict[str, list[Mapping[str, object]]] = {}
    truncated = []
    for state in (s for states in COUNTED.values() for s in states):
        found: list[Mapping[str, object]] = []
        token: str | None = None
        for _ in range(max_pages):
            page = batch.list_jobs(jobQueue=queue, jobStatus=state, maxResults=PAGE_SIZE,
                                   **({"nextToken": token} if token else {}))
            found.extend(page.get("jobSummaryList", []))
            token = page.get("nextToken")
            if not token:
                break
        else:
            truncated.append(state)
        jobs[state] = found
    return Listing(queue=queue, node_group=node_group, jobs=jobs, truncated=tuple(truncated))


def handle(config: QueueConfig, batch: Batch, cloudwatch: CloudWatch, now: dt.datetime | None = None,
           *, max_pages: int = MAX_PAGES) -> dict[str, object]:
    """List every queue, put the metrics; returns what was put (the function's result, logged)."""
    listings = [list_queue(batch, q, g, max_pages=max_pages) for q, g in config.queues.items()]
    now = now or dt.datetime.now(dt.UTC)
    data = metric_data(config.rack, listings, now)
    for start in range(0, len(data), PUT_BATCH):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start:start + PUT_BATCH])
    return {"queues": {x.queue: figures(x, now) for x in listings},
            "truncated": {x.queue: list(x.truncated) for x in listings if x.truncated}}


def lambda_handler(event: Mapping[str, object], context: object) -> dict[str, object]:
    import boto3  # the Lambda runtime's; imported here so the pure half loads without it

    return handle(QueueConfig.from_env(os.environ), boto3.client("batch"), boto3.client("cloudwatch"))
