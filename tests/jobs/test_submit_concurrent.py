"""Exactly one Batch job per submission, however many `rackform submit` processes race for it.

Real processes (the CLI, as a user runs it) against the embedded AWS (moto's server on 127.0.0.1, in this process).
Two things in the server are adjusted so the race is the one AWS would see, every time:
- S3 makes a conditional PUT atomic; moto checks If-None-Match and then writes, unlocked, so two requests could both
  pass the check. Its PUT handler is serialized here, which is the guarantee S3 gives.
- The first lookup of the job's marker waits until every process has made it (a barrier, as if all started at the
  same instant), and SubmitJob takes a second: without a claim, every process would find nothing and submit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from moto.batch.responses import BatchResponse
from moto.s3.responses import S3Response

import rackform.jobs.submit as submit_module
from rackform.jobs.local import EmbeddedAWS, deploy
from rackform.jobs.submit import SubmitError, batch_clients, submit
from rackform.plan.models import build_plan
from rackform.reference.catalog import load_catalog
from rackform.spec.models import load_spec
from tests.conftest import EXAMPLE, ROOT
from tests.conftest import EXAMPLE_REGION as REGION
from workloads.layout import claim_key

PROCESSES = 4
SUBMIT_JOB_S = 1.0


@pytest.fixture
def embedded(monkeypatch):
    plan = build_plan(load_spec(EXAMPLE)[0], load_catalog())
    put_lock = threading.Lock()
    put = S3Response.put_object

    def atomic_put(self, *args, **kwargs):
        with put_lock:
            return put(self, *args, **kwargs)

    lined_up = threading.Barrier(PROCESSES, timeout=60)
    arrived = iter(range(PROCESSES))  # the first PROCESSES marker lookups wait for each other, later ones don't
    listing = S3Response.list_object_versions  # how the store looks for a marker (ResultStore.read_one)

    def first_marker_lookups_together(self):
        if "/_jobs/" in self.querystring.get("prefix", [""])[0] and next(arrived, None) is not None:
            try:
                lined_up.wait()
            except threading.BrokenBarrierError:
                pass
        return listing(self)

    submit_job = BatchResponse.submitjob

    def slow_submit_job(self):
        time.sleep(SUBMIT_JOB_S)
        return submit_job(self)

    monkeypatch.setattr(S3Response, "put_object", atomic_put)
    monkeypatch.setattr(S3Response, "list_object_versions", first_marker_lookups_together)
    monkeypatch.setattr(BatchResponse, "submitjob", slow_submit_job)
    with EmbeddedAWS(plan.region) as aws:
        deployment = deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"))
        yield aws, deployment, lined_up


def rackform_submit(env: dict[str, str], run_id: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rackform", "submit", str(EXAMPLE), "--rack", "gpu", "--benchmark",
                           "gemm", "--run-id", run_id], cwd=ROOT, env=env, text=True, capture_output=True,
                          timeout=180)


def test_parallel_submits_of_one_run_make_one_job_and_all_report_it(embedded):
    aws, deployment, lined_up = embedded
    env = {**os.environ, **aws.env, "RACKFORM_BUCKET": deployment.bucket}
    with ThreadPoolExecutor(PROCESSES) as pool:
        done = list(pool.map(lambda _: rackform_submit(env, "par1"), range(PROCESSES)))
    assert not lined_up.broken  # the processes really did race
    for p in done:
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        assert p.stdout.strip() == "par1"
    job_ids = {m[1] for p in done for m in re.finditer(r"job ([0-9a-f-]{36})", p.stderr)}
    [summary] = aws.client("batch").list_jobs(jobQueue="trn2-gpu-h100-queue", filters=[
        {"name": "JOB_NAME", "values": ["par1-gpu-h100-gemm"]}])["jobSummaryList"]
    assert job_ids == {summary["jobId"]}  # one Batch job, and every process names it
    verbs = sorted(p.stderr.split(" par1-gpu-h100-gemm ")[0].rsplit("\n", 1)[-1] for p in done)
    assert verbs == ["already submitted"] * (PROCESSES - 1) + ["submitted"]


# --- a claim whose submit failed or stopped ------------------------------------------------------------------------

def _gemm(plan, aws, submitter, lookup, **kw):
    return submit(plan, rack="gpu", benchmark="gemm", run_id="cl1", store=aws["store"], submitter=submitter,
                  lookup=lookup, **kw)


def _jobs(aws) -> list[dict]:
    return aws["batch"].list_jobs(jobQueue="trn2-gpu-h100-queue", filters=[
        {"name": "JOB_NAME", "values": ["cl1-gpu-h100-gemm"]}])["jobSummaryList"]


def test_a_failed_submit_job_frees_the_next_attempt(aws, plan):
    submitter, lookup = batch_clients(None, REGION)
    refused = ClientError({"Error": {"Code": "ClientException", "Message": "no such job definition"}}, "SubmitJob")
    broken = type("Broken", (), {"submit_job": lambda self, **_: (_ for _ in ()).throw(refused)})()
    with pytest.raises(ClientError):
        _gemm(plan, aws, broken, lookup)
    failed = json.loads(aws["s3"].get_object(Bucket=aws["store"].bucket, Key=claim_key(
        "cl1", "cl1-gpu-h100-gemm", 0, failed=True))["Body"].read())
    assert "no such job definition" in failed["reason"] and _jobs(aws) == []
    [sub] = _gemm(plan, aws, submitter, lookup)  # the user fixed it and runs the same command again
    assert sub.created and [j["jobId"] for j in _jobs(aws)] == [sub.job_id]
    assert aws["store"].latest_claim("cl1", "cl1-gpu-h100-gemm") == (1, False)


def test_a_claim_whose_submit_stopped_is_reported_with_the_way_out(aws, plan, monkeypatch):
    monkeypatch.setattr(submit_module, "time", type("T", (), {"sleep": staticmethod(lambda s: None)}))
    submitter, lookup = batch_clients(None, REGION)
    claim = {"submission": {"job_name": "cl1-gpu-h100-gemm", "queue": "trn2-gpu-h100-queue", "rack": "gpu",
                            "job_definition": "trn2-gpu-h100-single", "node_group": "h100", "benchmark": "gemm",
                            "nodes": 1}, "claimed_by": "laptop pid 42", "claimed_at": "2026-11-30T10:00:00+00:00",
             "nonce": "0123456789abcdef"}
    key = claim_key("cl1", "cl1-gpu-h100-gemm", 0)
    aws["store"].put_once(key, json.dumps(claim).encode(), "application/json")  # then the process died
    with pytest.raises(SubmitError) as e:
        _gemm(plan, aws, submitter, lookup)
    failed = claim_key("cl1", "cl1-gpu-h100-gemm", 0, failed=True)
    assert "laptop pid 42" in str(e.value) and "stopped before SubmitJob" in str(e.value)
    assert f"--key {failed} --if-none-match '*'" in str(e.value) and _jobs(aws) == []
    aws["store"].put_once(failed, b"", "application/json")  # what the message says to do
    [sub] = _gemm(plan, aws, submitter, lookup)
    assert sub.created and [j["jobId"] for j in _jobs(aws)] == [sub.job_id]
