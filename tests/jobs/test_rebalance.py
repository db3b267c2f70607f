"""Decisions that follow reality (issue 20 item 6), against moto: a submit Batch refuses records no decision, and
`rackform run --watch` re-places a job still waiting past max_wait on the next candidate, exactly once."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from moto.batch.exceptions import ClientException
from moto.batch.models import BatchBackend, batch_backends
from moto.batch.responses import BatchResponse
from moto.core import DEFAULT_ACCOUNT_ID

from rackform.cli import main
from rackform.jobs.rebalance import watch_step, without
from rackform.jobs.submit import LOOKUP_RETRY, NO_RETRY
from rackform.jobs.verified import read_verified
from rackform.jobs.workload_jobs import PlacementError, run_workload
from rackform.pipeline import load_plan, load_workload
from rackform.placement import place
from rackform.reference.peaks import limits_for
from workloads.layout import claim_key, placement_key, workload_job_key
from workloads.store import ResultStore

from tests.conftest import deploy_to_moto, moto_aws

SPEC = "examples/demo.yaml"
REGION = "us-east-1"
INFERENCE = "examples/workloads/inference.yaml"  # trainium first, then gpu; max_wait 30m
TRN_QUEUE, GPU_QUEUE = "demo-trainium-workers-queue", "demo-gpu-h100-queue"


@pytest.fixture
def aws(monkeypatch):
    with moto_aws(monkeypatch, REGION):
        s3, batch = boto3.client("s3", region_name=REGION), boto3.client("batch", region_name=REGION)
        bucket = deploy_to_moto(load_plan(SPEC), monkeypatch, s3=s3, batch=batch)
        backend = batch_backends[DEFAULT_ACCOUNT_ID][REGION]
        cancel = BatchBackend.cancel_job

        def cancel_as_batch_does(self: BatchBackend, job_id: str, reason: str) -> None:
            # moto keeps the reason but leaves the job RUNNABLE; Batch moves a job it cancels to FAILED
            cancel(self, job_id, reason)
            job = self._jobs[job_id]
            if job.status in ("SUBMITTED", "PENDING", "RUNNABLE"):
                job.status, job.job_stopped, job.job_stopped_at = "FAILED", True, dt.datetime.now(dt.UTC)

        monkeypatch.setattr(BatchBackend, "cancel_job", cancel_as_batch_does)
        yield {"batch": batch, "store": ResultStore(bucket, s3), "backend": backend}


def clients():
    return {"batch": boto3.client("batch", region_name=REGION),
            "submitter": boto3.client("batch", region_name=REGION, config=NO_RETRY),
            "lookup": boto3.client("batch", region_name=REGION, config=LOOKUP_RETRY)}


def decide(w):
    return lambda among: place(w, among, [], {}, limits_of=limits_for)


def hold(aws, job_id: str, *, waited: dt.timedelta, status: str = "RUNNABLE") -> None:
    """The job has been waiting `waited` (moto without Docker ends a job at once)."""
    job = aws["backend"]._jobs[job_id]
    job.status, job.job_stopped, job.job_stopped_reason = status, False, None
    job.job_created_at = dt.datetime.now(dt.UTC) - waited


def named(aws, queue: str, name: str) -> list[dict]:
    return aws["batch"].list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])["jobSummaryList"]


def test_a_submit_batch_refuses_leaves_no_decision_and_the_same_run_id_places_anew(aws, capsys, monkeypatch):
    def refuse(self):
        raise ClientException("Job queue demo-trainium-workers-queue is not in VALID state")

    submitjob = BatchResponse.submitjob
    monkeypatch.setattr(BatchResponse, "submitjob", refuse)
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "x1"]) == 1
    err = capsys.readouterr().err
    assert ("error: AWS Batch refused llm-serve on trainium/workers (ClientException: Job queue "
            "demo-trainium-workers-queue is not in VALID state); no decision was recorded") in err
    assert read_verified(aws["store"], placement_key("x1", "llm-serve")) is None
    assert read_verified(aws["store"], workload_job_key("x1", "llm-serve")) is None
    # the claim's attempt is marked failed, which frees the next one
    failed = claim_key("x1", "x1-trainium-workers-wl-llm-serve", 0, failed=True)
    assert aws["store"].s3.head_object(Bucket=aws["store"].bucket, Key=failed)

    monkeypatch.setattr(BatchResponse, "submitjob", submitjob)
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "x1"]) == 0
    assert "submitted x1-trainium-workers-wl-llm-serve" in capsys.readouterr().err
    assert read_verified(aws["store"], placement_key("x1", "llm-serve"))["chosen"]["node_group"] == "workers"
    assert len(named(aws, TRN_QUEUE, "x1-trainium-workers-wl-llm-serve")) == 1


def test_a_job_waiting_past_max_wait_is_cancelled_then_placed_on_the_next_candidate(aws):
    plan, w = load_plan(SPEC), load_workload(INFERENCE)
    c = clients()
    _, first = run_workload(plan, w, run_id="w7", store=aws["store"], decide=lambda: decide(w)(plan), **c)
    assert (first.rack, first.node_group) == ("trainium", "workers")
    now = dt.datetime.now(dt.UTC)

    hold(aws, first.job_id, waited=dt.timedelta(minutes=20))  # within max_wait: left alone
    step = watch_step(plan, w, "w7", store=aws["store"], decide=decide(w), now=now, **c)
    assert (step.run_id, step.status, step.watching, step.said) == ("w7", "RUNNABLE", True, None)

    hold(aws, first.job_id, waited=dt.timedelta(minutes=45))
    step = watch_step(plan, w, "w7", store=aws["store"], decide=decide(w), now=now, **c)
    assert step.said == (f"llm-serve: cancelled job {first.job_id} of run w7 (RUNNABLE for 45m on trainium/workers, "
                         "over max_wait 30m); submitted anew as run w7-r1 once AWS Batch reports it cancelled")
    cancelled = aws["backend"]._jobs[first.job_id]
    assert cancelled.status == "FAILED" and cancelled.job_stopped_reason == (
        "rackform: re-placed as run w7-r1: RUNNABLE for 45m on trainium/workers, over max_wait 30m")
    assert read_verified(aws["store"], workload_job_key("w7-r1", "llm-serve")) is None

    # the next look (this watcher's, or another's after this one stopped) places and submits run w7-r1, once
    for _ in range(2):
        step = watch_step(plan, w, "w7", store=aws["store"], decide=decide(w), now=now, **c)
    [made] = named(aws, GPU_QUEUE, "w7-r1-gpu-h100-wl-llm-serve")
    assert (step.run_id, step.job_id) == ("w7-r1", made["jobId"])
    decision = read_verified(aws["store"], placement_key("w7-r1", "llm-serve"))
    assert decision["chosen"]["node_group"] == "h100" and decision["reason"].startswith(
        "re-placed from run w7 (RUNNABLE for 45m on trainium/workers, over max_wait 30m); ")
    assert [c["node_group"] for c in decision["candidates"]] == ["h100"]  # the group tried is left out
    # run w7's own decision and job are as they were: written once
    assert read_verified(aws["store"], workload_job_key("w7", "llm-serve"))["job_id"] == first.job_id


def test_a_job_no_other_group_can_take_stays_and_a_started_one_is_left_alone(aws):
    plan, w = load_plan(SPEC), load_workload(INFERENCE)
    c = clients()
    _, first = run_workload(plan, w, run_id="w8", store=aws["store"], decide=lambda: decide(w)(plan), **c)
    hold(aws, first.job_id, waited=dt.timedelta(hours=2))
    trainium_only = without(plan, {("gpu", "h100")})
    step = watch_step(trainium_only, w, "w8", store=aws["store"], decide=decide(w), now=dt.datetime.now(dt.UTC),
                      **c)
    assert step.watching and step.said.startswith("llm-serve has waited 2h00m on trainium/workers, over max_wait "
                                                  "30m, and stays: no other node group can take it")
    assert aws["backend"]._jobs[first.job_id].status == "RUNNABLE"
    patient = w.model_copy(update={"max_wait": None})
    step = watch_step(plan, patient, "w8", store=aws["store"], decide=decide(patient), now=dt.datetime.now(dt.UTC),
                      **c)
    assert (step.watching, step.said) == (False, f"llm-serve states no max_wait: job {first.job_id} waits where it "
                                                 "was placed")
    hold(aws, first.job_id, waited=dt.timedelta(hours=2), status="RUNNING")
    step = watch_step(plan, w, "w8", store=aws["store"], decide=decide(w), now=dt.datetime.now(dt.UTC), **c)
    assert (step.status, step.watching, step.said) == ("RUNNING", False, None)


def test_a_job_submitted_without_its_decision_is_not_doubled(aws):
    """A `run` that stopped between the job's marker and its decision: a later run of the id deciding otherwise
    submits nothing and says what to do."""
    plan, w = load_plan(SPEC), load_workload(INFERENCE)
    c = clients()
    _, first = run_workload(plan, w, run_id="w9", store=aws["store"], decide=lambda: decide(w)(plan), **c)
    # as if the decision were never written: the same run id, another store prefix would be a different run, so
    # the marker is copied to a run with no decision
    marker = aws["store"].s3.get_object(Bucket=aws["store"].bucket, Key=workload_job_key("w9", "llm-serve"))
    body = marker["Body"].read().replace(b"w9-", b"w10-")
    aws["store"].put_once(workload_job_key("w10", "llm-serve"), body, "application/json")
    with pytest.raises(PlacementError, match="run w10 submitted w10-trainium-workers-wl-llm-serve .* but recorded "
                       "no decision after 0 s"):
        run_workload(plan, w, run_id="w10", store=aws["store"], wait_s=0,
                     decide=lambda: decide(w)(without(plan, {("trainium", "workers")})), **c)
    assert named(aws, GPU_QUEUE, "w10-gpu-h100-wl-llm-serve") == []


def test_run_watch_follows_the_jobs_until_none_waits(aws, capsys):
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "w11"]) == 0
    capsys.readouterr()
    [job] = named(aws, TRN_QUEUE, "w11-trainium-workers-wl-llm-serve")
    hold(aws, job["jobId"], waited=dt.timedelta(hours=1))
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "w11", "--watch", "--watch-every", "0"]) == 0
    err = capsys.readouterr().err
    assert "already submitted w11-trainium-workers-wl-llm-serve" in err
    assert f"llm-serve: cancelled job {job['jobId']} of run w11 (RUNNABLE for 1h00m" in err
    assert main(["status", "w11"]) == 1  # its one workload job failed: cancelled, and where it went says so
    assert "rackform: re-placed as run w11-r1: RUNNABLE for 1h" in capsys.readouterr().out
    assert "placed llm-serve (inference) on gpu/h100 [gpu] (run w11-r1, job " in err
    assert "watch: llm-serve is SUCCEEDED (run w11-r1" in err
    assert len(named(aws, GPU_QUEUE, "w11-r1-gpu-h100-wl-llm-serve")) == 1
    # watching again changes nothing: the chain's latest job has finished
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "w11", "--watch", "--watch-every", "0"]) == 0
    assert "watch: llm-serve is SUCCEEDED (run w11-r1" in capsys.readouterr().err
    assert len(named(aws, GPU_QUEUE, "w11-r1-gpu-h100-wl-llm-serve")) == 1


def test_two_runs_deciding_differently_leave_one_job_and_one_decision(aws, monkeypatch):
    """Run A decides trainium and submits; while its SubmitJob is in flight run B (gpu) records its job and its
    decision. A's marker then cannot land: A cancels its own job and takes B's decision and job."""
    import rackform.jobs.submit as sub

    plan, w = load_plan(SPEC), load_workload(INFERENCE)
    c = clients()
    submit_once = sub.submit_once

    def b_lands_first(submitter, lookup, request, **kw):
        job_id = submit_once(submitter, lookup, request, **kw)
        hold(aws, job_id, waited=dt.timedelta(0))  # still RUNNABLE, as on Batch (moto would end it at once)
        monkeypatch.setattr(sub, "submit_once", submit_once)  # B's own submit goes through as usual
        on_gpu = without(plan, {("trainium", "workers")})
        run_workload(plan, w, run_id="w12", store=aws["store"], decide=lambda: decide(w)(on_gpu), **c)
        return job_id

    monkeypatch.setattr(sub, "submit_once", b_lands_first)
    decision, job = run_workload(plan, w, run_id="w12", store=aws["store"], decide=lambda: decide(w)(plan), **c)
    [a_job] = named(aws, TRN_QUEUE, "w12-trainium-workers-wl-llm-serve")
    [b_job] = named(aws, GPU_QUEUE, "w12-gpu-h100-wl-llm-serve")
    assert (job.job_id, job.created) == (b_job["jobId"], False)
    assert decision["chosen"]["node_group"] == "h100"
    assert aws["backend"]._jobs[a_job["jobId"]].status == "FAILED"  # A's own job, cancelled
    assert aws["backend"]._jobs[a_job["jobId"]].job_stopped_reason == "rackform: run w12 placed llm-serve elsewhere first"
    assert read_verified(aws["store"], workload_job_key("w12", "llm-serve"))["job_id"] == b_job["jobId"]


def test_a_run_id_too_long_to_chain_cancels_nothing(aws):
    plan, w = load_plan(SPEC), load_workload(INFERENCE)
    c = clients()
    root = "r" * 47  # the next run id, root + "-r1", would be 50 characters: run ids take 48
    _, first = run_workload(plan, w, run_id=root, store=aws["store"], decide=lambda: decide(w)(plan), **c)
    hold(aws, first.job_id, waited=dt.timedelta(hours=1))
    with pytest.raises(PlacementError, match="would be longer than 48 characters: nothing was cancelled"):
        watch_step(plan, w, root, store=aws["store"], decide=decide(w), now=dt.datetime.now(dt.UTC), **c)
    assert aws["backend"]._jobs[first.job_id].status == "RUNNABLE"
