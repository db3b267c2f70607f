"""Submitting benchmark jobs to a rack's Batch queues, and following a run.

Queue and job definition names come from rackform.plan.naming, the code that names them in the stacks. Submitting the
same run id again finds the job it created the first time instead of making a second one.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from workloads.benchmarks import BENCHMARKS, benchmarks_for, default_nodes
from workloads.contract import JobEnvironment, check_repeats
from workloads.launch import new_secret
from workloads.layout import (
    ACCEPT_JOB,
    ACCEPT_JOB_NAME,
    BenchmarkJob,
    BenchmarkJobName,
    claim_key,
    job_prefix,
    submission_key,
)
from workloads.store import AlreadyExists, Refused, ResultStore

from .. import aws
from ..capacity import of as capacity_kind
from ..plan import naming
from ..plan.models import NodeGroupPlan, Plan
from .jobdefs import BENCHMARK_PARAMETER, job_kind
from .verified import read_verified

T = TypeVar("T")  # what submit_exactly_once returns: a Submission, a SubmittedWorkload

# SubmitJob has no idempotency token: an automatic retry after a lost response could start a second job. So the
# call itself is never retried by botocore; `submit_once` retries by hand and looks for its job before each try.
# total_max_attempts counts the first try (1 = no retry); the legacy `max_attempts` counts retries, and 1 there let
# botocore resend a SubmitJob whose response was lost (tests/jobs/test_faults.py caught the duplicate jobs).
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})
LOOKUP_RETRY = Config(retries={"mode": "standard", "max_attempts": 8})
# How long a submit that lost the claim waits for the winner's job before calling the winner stopped: the winner's
# SubmitJob, with submit_once's own retries and backoff, takes seconds.
CLAIM_WAIT_S = 60.0
CLAIM_POLL_S = 0.5


class SubmitError(Exception):
    """A submission the user must fix: unknown rack, node group or benchmark, or a benchmark the group can't run."""


@dataclass(frozen=True)
class Submission:
    job_name: str
    job_id: str
    queue: str
    job_definition: str
    rack: str
    node_group: str
    benchmark: str
    nodes: int
    created: bool  # False when the run id had already submitted this job
    repeats: int | None = None  # measurements per job the submission asked for; None: the job environment's default


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def batch_clients(endpoint_url: str | None, region: str | None,
                  profile: str | None = None) -> tuple[aws.BotoClient, aws.BotoClient]:
    return batch_clients_for(aws.Target(region=region, profile=profile, endpoint_url=endpoint_url))


def batch_clients_for(target: aws.Target) -> tuple[aws.BotoClient, aws.BotoClient]:
    """(submitter, lookup): SubmitJob never retried by botocore (it has no idempotency token: submit_once retries
    by hand), ListJobs/DescribeJobs with standard retries."""
    return aws.client(target, "batch", config=NO_RETRY), aws.client(target, "batch", config=LOOKUP_RETRY)


def find_job(lookup: aws.BotoClient, queue: str, name: str) -> str | None:
    pages = lookup.get_paginator("list_jobs").paginate(jobQueue=queue, filters=[{"name": "JOB_NAME",
                                                                                  "values": [name]}])
    for page in pages:
        for job in page.get("jobSummaryList", []):
            if job["jobName"] == name:
                job_id: str = job["jobId"]
                return job_id
    return None


def submit_once(submitter: aws.BotoClient, lookup: aws.BotoClient, request: dict[str, Any], *, attempts: int = 6,
                backoff_s: float = 0.2) -> str:
    for attempt in range(attempts):
        try:
            job_id: str = submitter.submit_job(**request)["jobId"]
            return job_id
        except Exception as e:  # after a reset or 5xx the job may exist now: look before trying again
            if not aws.is_retryable(e) or attempt == attempts - 1:
                raise
        time.sleep(backoff_s * 2 ** attempt)
        if (found := find_job(lookup, request["jobQueue"], request["jobName"])) is not None:
            return found
    raise AssertionError("unreachable")


def node_groups(plan: Plan, rack: str, node_group: str | None) -> list[NodeGroupPlan]:
    """The rack's node groups that `node_group` names (None: every one); SubmitError names what is there."""
    r = plan.rack(rack)
    if r is None:
        raise SubmitError(f"no rack {rack!r} in spec {plan.name}; racks: {', '.join(x.name for x in plan.racks)}")
    groups = [g for g in r.node_groups if node_group in (None, g.name)]
    if not groups:
        raise SubmitError(f"no node group {node_group!r} in rack {rack!r}; node groups: "
                          f"{', '.join(g.name for g in r.node_groups)}")
    return groups


def targets(plan: Plan, rack: str, node_group: str | None, benchmark: str) -> list[NodeGroupPlan]:
    if benchmark not in BENCHMARKS:
        raise SubmitError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    groups = node_groups(plan, rack, node_group)
    fitting = [g for g in groups if BENCHMARKS[benchmark] in benchmarks_for(g.tier, g.max_job_nodes)]
    if not fitting:
        b = BENCHMARKS[benchmark]
        raise SubmitError(f"benchmark {benchmark!r} runs on {', '.join(b.tiers)} with at least {b.min_nodes} "
                          f"node(s); rack {rack!r} has no such node group")
    return fitting


def job_request(*, name: str, queue: str, job_definition: str, benchmark: str, run_id: str, repeats: int | None,
                multi_nodes: int | None) -> dict[str, Any]:
    """SubmitJob's request for one benchmark job: the run id (and `repeats`) in its environment, tagged with the run
    and benchmark; `multi_nodes`: a multi-node job of that many nodes."""
    env = [{"name": JobEnvironment.variable("run_id"), "value": run_id}]
    if repeats is not None:
        env.append({"name": JobEnvironment.variable("repeats"), "value": str(repeats)})
    request: dict[str, Any] = {"jobName": name, "jobQueue": queue, "jobDefinition": job_definition,
                               "parameters": {BENCHMARK_PARAMETER: benchmark},
                               "tags": {"rackform:run": run_id, "rackform:benchmark": benchmark},
                               "propagateTags": True}
    if multi_nodes is not None:
        # Every node of this job gets it, and only they (and the operators): never the claim or marker, which
        # every job role can read (docs/security.md, the multi-node launcher).
        env.append({"name": JobEnvironment.variable("launch_secret"), "value": new_secret()})
        request["nodeOverrides"] = {"numNodes": multi_nodes, "nodePropertyOverrides": [
            {"targetNodes": "0:", "containerOverrides": {"environment": env}}]}
    else:
        request["containerOverrides"] = {"environment": env}
    return request


def submit(plan: Plan, *, rack: str, benchmark: str, run_id: str, store: ResultStore,
           submitter: aws.BotoClient, lookup: aws.BotoClient, node_group: str | None = None, nodes: int | None = None,
           repeats: int | None = None) -> list[Submission]:
    """Submit the benchmark to every fitting node group of the rack; `repeats`: measurements per job (None: the
    job environment's default). A job whose marker or claim in the bucket cannot be believed is left out and named
    in `store.problems`; the other node groups still submit."""
    if repeats is not None:
        try:
            check_repeats(repeats)
        except ValueError as e:
            raise SubmitError(f"--repeats: {e}") from None
    out = []
    for g in targets(plan, rack, node_group, benchmark):
        b = BENCHMARKS[benchmark]
        n = default_nodes(b, g.max_job_nodes) if nodes is None else nodes
        if not b.min_nodes <= n <= min(b.max_nodes, g.max_job_nodes):
            offered = capacity_kind(g.capacity.type)
            single = "" if offered.multi_node else f", on {offered.label}: one per job"
            raise SubmitError(f"--nodes {n} is out of range for {benchmark} on {g.rack}/{g.name}: between "
                              f"{b.min_nodes} and {min(b.max_nodes, g.max_job_nodes)} (the group has {g.count} nodes"
                              f"{single})")
        name = str(BenchmarkJobName(run_id=run_id, rack=g.rack, node_group=g.name, benchmark=benchmark))
        kind = job_kind(b, n)
        jobdef = naming.job_definition(plan.name, g.rack, g.name, kind)
        request = job_request(name=name, queue=g.job_queue, job_definition=jobdef, benchmark=benchmark,
                              run_id=run_id, repeats=repeats, multi_nodes=n if kind == "multinode" else None)
        # repeats in the marker too (when given): the local executor gives the job what Batch would
        fields = BenchmarkJob(job_name=name, queue=g.job_queue, job_definition=jobdef, rack=g.rack,
                              node_group=g.name, benchmark=benchmark, nodes=n, repeats=repeats
                              ).model_dump(exclude_none=True)
        try:
            out.append(submit_exactly_once(store, submitter, lookup, run_id, fields, request, made=Submission))
        except Refused:
            continue
    return out


def submit_exactly_once(store: ResultStore, submitter: aws.BotoClient, lookup: aws.BotoClient, run_id: str,
                        fields: dict[str, Any], request: dict[str, Any], *, made: Callable[..., T],
                        marker: str | None = None, wait_s: float = CLAIM_WAIT_S, poll_s: float = CLAIM_POLL_S) -> T:
    """One Batch job per run id and job name, however many `rackform submit`s (or `rackform run`s) ask for it, at
    once or later. `marker` is where the job is recorded (default `_jobs/<name>.json`), `made(**fields, job_id=...,
    created=...)` what is returned (a Submission, a SubmittedWorkload).

    The job's marker (`_jobs/<name>.json`) says it was submitted. Until it exists, every contender claims the
    job's next attempt with a conditional PUT (`_claims/<name>/<attempt>.json`), which S3 lets exactly one make.
    The winner submits, unless Batch already has a job by the name (a lost answer, a marker write that failed), and
    writes the marker. The others wait for the marker, or write it themselves, from the claim, once Batch lists the
    winner's job; when the winner's SubmitJob failed (`<attempt>.failed.json`) they claim the next attempt.
    """
    name = fields["job_name"]
    marker = marker or submission_key(run_id, name)
    waited = 0.0
    while True:
        # Every object read here is verified (Refused when it cannot be believed): a forged marker or claim is a
        # named problem, never a job to report or a marker to copy.
        if (found := read_verified(store, marker)) is not None:
            return made(**found, created=False)
        latest = store.latest_claim(run_id, name)
        if latest is None or latest[1]:
            attempt = 0 if latest is None else latest[0] + 1
            claim = {"submission": fields, "claimed_by": f"{socket.gethostname()} pid {os.getpid()}",
                     "claimed_at": _now(), "nonce": secrets.token_hex(8)}  # the nonce makes every claim differ
            try:
                store.put_once(claim_key(run_id, name, attempt), _json(claim), "application/json")
            except AlreadyExists:
                continue  # another submit claimed this attempt first
            return _submit_claimed(store, submitter, lookup, run_id, attempt, fields, request, marker, made)
        key = claim_key(run_id, name, latest[0])
        if (job_id := find_job(lookup, fields["queue"], name)) is not None:
            return _record(store, marker, made, _claim(store, key)["submission"], job_id, created=False, source=key)
        if waited >= wait_s:
            claim = _claim(store, key)
            raise SubmitError(
                f"job {name} was claimed by {claim.get('claimed_by')} at {claim.get('claimed_at')} "
                f"(s3://{store.bucket}/{key}), but after {waited:.0f} s Batch has no job by that name and no marker "
                f"was written: that submit stopped before SubmitJob. If it is no longer running, mark its claim "
                f"failed and submit again: aws s3api put-object --bucket {store.bucket} --key "
                f"{claim_key(run_id, name, latest[0], failed=True)} --if-none-match '*'; or use a new run id")
        time.sleep(poll_s)
        waited += poll_s


def _submit_claimed(store: ResultStore, submitter: aws.BotoClient, lookup: aws.BotoClient, run_id: str, attempt: int,
                    fields: dict[str, Any], request: dict[str, Any], marker: str, made: Callable[..., T]) -> T:
    job_id = find_job(lookup, fields["queue"], fields["job_name"])
    created = job_id is None
    if job_id is None:
        try:
            job_id = submit_once(submitter, lookup, request)
        except Exception as e:
            # Frees the next attempt for a later submit; that one looks for a job by the name before submitting,
            # so a job this call made after all (its answer lost) is found, not doubled.
            reason = {"failed_at": _now(), "reason": f"{type(e).__name__}: {e}"[:1000]}
            try:
                store.put_once(claim_key(run_id, fields["job_name"], attempt, failed=True), _json(reason),
                               "application/json")
            except (ClientError, BotoCoreError, AlreadyExists):
                pass  # the SubmitJob error is the one to show; a later submit reports the claim as stopped
            raise
    return _record(store, marker, made, fields, job_id, created)


def _record(store: ResultStore, marker: str, made: Callable[..., T], fields: dict[str, Any], job_id: str,
            created: bool, source: str | None = None) -> T:
    # Built from the claim's fields by whichever process writes it, so the bytes agree and the second is a no-op;
    # a claim another process wrote (`source`) must make a marker its readers will believe.
    body = {**fields, "job_id": job_id}
    if source is not None:
        store.check(marker, body, source=source)
    store.put_once(marker, _json(body), "application/json")
    return made(**body, created=created)


def _claim(store: ResultStore, key: str) -> dict[str, Any]:
    """The verified claim at `key`, which a listing has just shown (rackform never deletes one)."""
    if (claim := read_verified(store, key)) is None:
        raise SubmitError(f"s3://{store.bucket}/{key} was listed a moment ago and is gone: claims are never deleted")
    return claim


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _json(data: object) -> bytes:
    import json

    return json.dumps(data, indent=2, sort_keys=True).encode()


@dataclass(frozen=True)
class JobState:
    submission: dict[str, Any]
    batch_status: str | None
    batch_reason: str | None
    record_status: str | None  # succeeded / failed / skipped once the runner's record has landed
    record_reason: str | None = None  # why, in the record's words, when it failed or was skipped
    log_stream: str | None = None  # its container's stream in BATCH_LOG_GROUP, once an attempt ran

    @property
    def done(self) -> bool:
        # The record is the truth; a job Batch ended without one (it died before the runner wrote it, or the write
        # failed) is done when Batch says so: its record will never come.
        return self.record_status is not None or self.batch_status in BATCH_ENDED


# Batch's final job states (https://docs.aws.amazon.com/batch/latest/userguide/job_states.html).
BATCH_ENDED = ("SUCCEEDED", "FAILED")
# Where Batch's awslogs driver writes a container's output unless the job definition names a group (rackform's do
# not): "The log group for Batch jobs is /aws/batch/job. Each container attempt receives a log stream name when they
# reach the RUNNING status." (https://docs.aws.amazon.com/batch/latest/APIReference/API_ContainerDetail.html)
BATCH_LOG_GROUP = "/aws/batch/job"


def log_stream(job: Mapping[str, Any]) -> str | None:
    """A DescribeJobs job's latest log stream: its container's, else its last attempt's (a multi-node job's
    parent has neither: each node job, `jobId#N`, has its own)."""
    attempts = job.get("attempts") or [{}]
    for container in (job.get("container"), attempts[-1].get("container")):
        if isinstance(container, dict) and container.get("logStreamName"):
            return str(container["logStreamName"])
    return None


def run_state(run_id: str, store: ResultStore, lookup: aws.BotoClient | None) -> list[JobState]:
    # The markers' and the records' folders, and the folder of each acceptance job, never the whole run (its node
    # logs and health records are most of it); records streamed, keeping of each only its outcome (a run of 10,000
    # records held whole would be gigabytes).
    subs = store.submissions(run_id)
    outcomes = {(r.rack, r.node_group, r.benchmark): (r.status, r.reason) for r in store.iter_records(run_id)}
    for s in subs:
        if ACCEPT_JOB_NAME.fullmatch(s["benchmark"]):
            # An acceptance job writes no record.json: node 0's group record is its last write, and a single node's
            # slot job (accept-<k>) ends with its node record (workloads/accept.py).
            for a in store.read(run_id, "accept", within=job_prefix(run_id, s["rack"], s["node_group"],
                                                                    s["benchmark"]) + "/")["accept"]:
                if a.part == ("group" if a.benchmark == ACCEPT_JOB else "node"):
                    outcomes[(a.rack, a.node_group, a.benchmark)] = (a.status, a.reason)
    batch = aws.describe_jobs(lookup, [s["job_id"] for s in subs]) if lookup is not None else {}
    states = []
    for s in subs:
        status, reason = outcomes.get((s["rack"], s["node_group"], s["benchmark"]), (None, None))
        job = batch.get(s["job_id"], {})
        states.append(JobState(s, job.get("status"), job.get("statusReason"), status, reason, log_stream(job)))
    return states
