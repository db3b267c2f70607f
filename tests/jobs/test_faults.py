"""Faults between the writers and AWS: the result writer and job submission against moto, with a fraction of calls
throttled (503 SlowDown, 429), failing (500 InternalError), timing out or reset, and, the nasty case, calls that
reached AWS and took effect but whose response was lost.

The faults sit where the network would: around moto's request handler (the `before-send` hook every mocked client
goes through), so a fault decides whether the request reaches "AWS" at all and whether its answer comes back. Every
record must land exactly once (one version per key in the versioned bucket), nothing lost, nothing duplicated; every
submission must make exactly one Batch job. Backoff sleeps are recorded instead of slept, and the fault pattern is
seeded, so the run is quick and the same every time.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import types
from collections import Counter
from collections.abc import Iterator

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

import rackform.jobs.submit as submit_module
from rackform.jobs.local import deploy
from rackform.jobs.submit import LOOKUP_RETRY, NO_RETRY, submit
from rackform.plan.models import build_plan
from rackform.reference.catalog import load_catalog
from rackform.spec.models import load_spec
from tests.conftest import EXAMPLE, moto_aws, versioned_bucket
from workloads.layout import log_key, record_key
from workloads.results import Metric, ResultRecord
from workloads.store import RETRY_CONFIG, AlreadyExists, ResultStore

REGION = "us-east-2"
FAULT_RATE = 0.3
ALL_KINDS = ("slow-down", "internal-error", "throttled", "timeout", "reset", "lost-response")


def s3_error(code: str, message: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>' \
           f"<RequestId>fault</RequestId></Error>".encode()


def json_error(code: str, message: str) -> bytes:
    return json.dumps({"__type": code, "message": message}).encode()


class Faults:
    """Wraps moto's request handler: on a seeded fraction of the chosen operations, inject one kind of fault.

    Kinds: `slow-down` (503 SlowDown), `internal-error` (500), `throttled` (429 TooManyRequestsException, Batch),
    `timeout` and `reset` (the request never reached AWS), and `lost-response` (AWS acted on it, then the answer
    was lost: a read timeout or a reset after the fact).
    """

    def __init__(self, rate: float, seed: int, kinds: dict[str, tuple[str, ...]], limit: int | None = None) -> None:
        self.rate = rate
        self.limit = limit  # inject at most this many faults
        self.rng = random.Random(seed)
        self.kinds = kinds  # operation ("s3.PutObject") -> kinds of fault it may get
        self.injected: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.active = True

    def handle(self, original, stubber, event_name: str, request, **kwargs):
        operation = event_name.split(".", 1)[1]  # before-send.<service>.<Operation>
        kinds = self.kinds.get(operation)
        self.calls[operation] += 1
        if (not self.active or not kinds or self.rng.random() >= self.rate
                or (self.limit is not None and sum(self.injected[k] for k in ALL_KINDS) >= self.limit)):
            return original(stubber, event_name, request, **kwargs)
        kind = self.rng.choice(kinds)
        self.injected[kind] += 1
        self.injected[f"{operation} {kind}"] += 1
        url = request.url
        if kind == "lost-response":
            response = original(stubber, event_name, request, **kwargs)
            if response is not None and response.status_code < 300:  # it took effect: the nasty case
                self.injected[f"{operation} took effect, response lost"] += 1
            raise self.rng.choice([ReadTimeoutError(endpoint_url=url), ConnectionClosedError(endpoint_url=url)])
        if kind == "timeout":
            raise ReadTimeoutError(endpoint_url=url)
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=url)
        status, body, headers = {
            "slow-down": (503, s3_error("SlowDown", "Please reduce your request rate."), {}),
            "internal-error": (500, s3_error("InternalError", "We encountered an internal error."), {}),
            "throttled": (429, json_error("TooManyRequestsException", "Too Many Requests"),
                          {"x-amzn-ErrorType": "TooManyRequestsException"}),
        }[kind]
        return AWSResponse(url, status, headers, MockRawResponse(body))

    def summary(self) -> str:
        kinds = sorted((k, v) for k, v in self.injected.items() if " " not in k)
        return ", ".join(f"{v} {k}" for k, v in kinds) or "none"


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """Backoff sleeps (botocore's retries and submit_once's own), recorded instead of slept."""
    sleeps: list[float] = []
    fake = types.SimpleNamespace(sleep=sleeps.append, monotonic=lambda: 0.0, time=lambda: 0.0)
    monkeypatch.setattr("botocore.endpoint.time", fake)
    monkeypatch.setattr(submit_module, "time", fake)
    return sleeps


def inject(monkeypatch, faults: Faults) -> None:
    original = BotocoreStubber.__call__
    monkeypatch.setattr(BotocoreStubber, "__call__",
                        lambda stubber, event_name, request, **kw: faults.handle(original, stubber, event_name,
                                                                                 request, **kw))


@pytest.fixture
def aws(monkeypatch) -> Iterator[None]:
    with moto_aws(monkeypatch, REGION):
        yield


def make_bucket(name: str = "results") -> str:
    versioned_bucket(name, REGION)
    return name


def versions(bucket: str, prefix: str = "") -> dict[str, list[dict]]:
    s3 = boto3.client("s3", region_name=REGION)
    out: dict[str, list[dict]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            out.setdefault(v["Key"], []).append(v)
        assert not page.get("DeleteMarkers")
    return out


def record(run_id: str, i: int) -> ResultRecord:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return ResultRecord(run_id=run_id, benchmark="gemm", tool="torch", rack="gpu", node_group=f"g{i}", tier="gpu",
                        instance_type="p5.48xlarge", node_count=1, status="succeeded",
                        metrics=(Metric(name="tflops", value=float(i), unit="TFLOP/s"),), started_at=t, ended_at=t,
                        job_id=f"job-{i}")


S3_KINDS = ("slow-down", "internal-error", "timeout", "reset", "lost-response")


def test_every_result_lands_exactly_once_under_s3_faults(aws, monkeypatch, slept, gate_report):
    bucket = make_bucket()
    faults = Faults(FAULT_RATE, seed=5, kinds={"s3.PutObject": S3_KINDS, "s3.HeadObject": S3_KINDS})
    inject(monkeypatch, faults)
    jobs, nodes = 40, 2
    logs: dict[str, bytes] = {}
    records: dict[str, ResultRecord] = {}
    rewrote = Counter()
    for i in range(jobs):
        # One client per job, as each job's runner has: botocore's retry quota is per client.
        store = ResultStore(bucket, boto3.client("s3", region_name=REGION, config=RETRY_CONFIG))
        rec = record("faults", i)
        for node in range(nodes):
            key = log_key("faults", rec.rack, rec.node_group, rec.benchmark, node)
            text = f"node {node} of job {i}\n" * 50
            store.put_log(key, text)
            logs[key] = text.encode()
        records[store.put_record(rec)] = rec
        # The same writes again (a rerun runner, a second node): same bytes, nothing new, no error.
        assert store.put_record(rec) == record_key("faults", rec.rack, rec.node_group, rec.benchmark)
        rewrote[store.put_once(key, logs[key], "text/plain; charset=utf-8")] += 1
    faults.active = False

    landed = versions(bucket, "results/")
    assert set(landed) == set(logs) | set(records), "every key landed, and nothing else"
    assert {k: len(v) for k, v in landed.items() if len(v) != 1} == {}, "exactly one version per key"
    s3 = boto3.client("s3", region_name=REGION)
    for key, body in logs.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    for key, rec in records.items():
        assert ResultRecord.model_validate_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == rec, key
    assert rewrote == {False: jobs}
    assert faults.injected["s3.PutObject took effect, response lost"] > 0
    assert sum(faults.injected[k] for k in S3_KINDS) >= 0.2 * sum(faults.calls.values()) * FAULT_RATE
    injected = sum(faults.injected[k] for k in S3_KINDS)
    landed_blind = faults.injected["s3.PutObject took effect, response lost"]
    gate_report("faults", f"S3 writer: {faults.calls['s3.PutObject']} PUTs and {faults.calls['s3.HeadObject']} "
                          f"HEADs sent, {injected} faults injected ({faults.summary()}; {landed_blind} PUTs landed "
                          f"with the answer lost); {len(landed)} of {len(logs) + len(records)} objects landed, each "
                          f"exactly once (1 version); {len(slept)} backoffs")


def test_a_different_object_at_a_key_is_never_overwritten_even_through_faults(aws, monkeypatch, slept):
    bucket = make_bucket()
    store = ResultStore(bucket, boto3.client("s3", region_name=REGION, config=RETRY_CONFIG))
    assert store.put_once("results/r/x.json", b"first", "application/json") is True
    faults = Faults(1.0, seed=1, kinds={"s3.PutObject": ("lost-response", "slow-down", "reset")}, limit=4)
    inject(monkeypatch, faults)
    with pytest.raises(AlreadyExists):
        store.put_once("results/r/x.json", b"second", "application/json")
    faults.active = False
    [v] = versions(bucket)["results/r/x.json"]
    assert boto3.client("s3", region_name=REGION).get_object(
        Bucket=bucket, Key="results/r/x.json", VersionId=v["VersionId"])["Body"].read() == b"first"


def test_a_write_that_never_gets_through_fails_loudly(aws, monkeypatch, slept):
    bucket = make_bucket()
    store = ResultStore(bucket, boto3.client("s3", region_name=REGION, config=RETRY_CONFIG))
    faults = Faults(1.0, seed=2, kinds={"s3.PutObject": ("slow-down",)})
    inject(monkeypatch, faults)
    with pytest.raises(ClientError, match="SlowDown"):
        store.put_once("results/r/y.json", b"y", "application/json")
    # store.RETRY_CONFIG's max_attempts counts retries (botocore's legacy key): 9 attempts, 8 backoffs, the error.
    assert faults.calls["s3.PutObject"] == 9 and len(slept) == 8


# --- submission ----------------------------------------------------------------------------------------------------

@pytest.fixture
def plan():
    return build_plan(load_spec(EXAMPLE)[0], load_catalog())


def count_jobs(batch, queue: str) -> Counter[str]:
    names: Counter[str] = Counter()
    for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
        for page in batch.get_paginator("list_jobs").paginate(jobQueue=queue, jobStatus=status):
            names.update(j["jobName"] for j in page["jobSummaryList"])
    return names


def test_botocore_never_resends_a_submit_job_whose_response_was_lost(aws, plan, monkeypatch, slept):
    # SubmitJob has no idempotency token: a resend after a lost response is a second job. Only submit_once, which
    # looks for the job first, may try again.
    s3, batch = boto3.client("s3", region_name=REGION), boto3.client("batch", region_name=REGION)
    deploy(plan, s3=s3, batch=batch, iam=boto3.client("iam", region_name=REGION))
    [group] = [g for g in plan.node_groups() if g.rack == "gpu"]
    faults = Faults(1.0, seed=3, kinds={"batch.SubmitJob": ("lost-response",)}, limit=1)
    inject(monkeypatch, faults)
    submitter = boto3.client("batch", region_name=REGION, config=NO_RETRY)
    with pytest.raises((ReadTimeoutError, ConnectionClosedError)):
        submitter.submit_job(jobName="once", jobQueue=group.job_queue, jobDefinition=f"{group.resource_name}-single",
                             parameters={"benchmark": "gemm"})
    assert faults.calls["batch.SubmitJob"] == 1 and slept == []
    assert count_jobs(batch, group.job_queue) == Counter({"once": 1})


def test_n_submissions_make_exactly_n_jobs_under_throttling_and_lost_responses(aws, plan, monkeypatch, slept,
                                                                               gate_report):
    s3, batch = boto3.client("s3", region_name=REGION), boto3.client("batch", region_name=REGION)
    bucket = deploy(plan, s3=s3, batch=batch, iam=boto3.client("iam", region_name=REGION)).bucket
    # The seed only picks which calls fail; it changes whenever the calls a submission makes change. This one
    # gives every kind of fault the assertions below need (a SubmitJob that took effect with its answer lost).
    faults = Faults(FAULT_RATE, seed=13, kinds={
        "batch.SubmitJob": ("throttled", "throttled", "lost-response", "internal-error", "reset"),
        "batch.ListJobs": ("throttled", "timeout"),
        "s3.PutObject": S3_KINDS, "s3.HeadObject": S3_KINDS})
    inject(monkeypatch, faults)
    n = 40
    reruns = 0
    job_ids: dict[str, str] = {}
    for i in range(n):
        run_id = f"fault{i:03d}"
        store = ResultStore(bucket, boto3.client("s3", region_name=REGION, config=RETRY_CONFIG))
        submitter = boto3.client("batch", region_name=REGION, config=NO_RETRY)
        lookup = boto3.client("batch", region_name=REGION, config=LOOKUP_RETRY)
        for attempt in range(5):  # a user whose `rackform submit` failed runs it again with the same run id
            try:
                [sub] = submit(plan, rack="gpu", benchmark="gemm", run_id=run_id, store=store, submitter=submitter,
                               lookup=lookup)
                break
            except (ClientError, ReadTimeoutError, ConnectionClosedError):
                reruns += 1
        else:
            pytest.fail(f"{run_id}: five reruns did not get through")
        job_ids[sub.job_name] = sub.job_id
    faults.active = False

    [group] = [g for g in plan.node_groups() if g.rack == "gpu"]
    jobs = count_jobs(batch, group.job_queue)
    assert len(job_ids) == n
    assert jobs == Counter({name: 1 for name in job_ids}), "exactly one Batch job per submission"
    landed = versions(bucket, "results/")
    markers = [k for k in landed if "/_jobs/" in k]
    claims = [k for k in landed if "/_claims/" in k]  # one per job, more where a SubmitJob failed for good
    assert len(markers) == n and len(claims) >= n and len(markers) + len(claims) == len(landed)
    assert all(len(v) == 1 for v in landed.values())
    assert faults.injected["batch.SubmitJob took effect, response lost"] > 0
    assert faults.injected["batch.SubmitJob throttled"] > 0
    batch_faults = sum(v for k, v in faults.injected.items() if k.startswith("batch.") and k.split()[1] in ALL_KINDS)
    s3_faults = sum(v for k, v in faults.injected.items() if k.startswith("s3.") and k.split()[1] in ALL_KINDS)
    gate_report("faults", f"submission: {n} submissions, {faults.calls['batch.SubmitJob']} SubmitJob calls sent, "
                          f"{batch_faults} Batch faults ({faults.injected['batch.SubmitJob throttled']} SubmitJob "
                          f"throttled, {faults.injected['batch.SubmitJob took effect, response lost']} jobs created "
                          f"with the answer lost), {s3_faults} S3 faults; {sum(jobs.values())} jobs in Batch, "
                          f"{len(markers)} markers and {len(claims)} claims (1 version each); {reruns} user reruns")
