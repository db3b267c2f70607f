"""The live state placement reads (rackform/jobs/live.py): Batch against moto, EC2's reservations and Spot prices
through botocore's Stubber (moto answers neither as EC2 does)."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber
from moto.batch.models import batch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from rackform.jobs import live
from rackform.jobs.live import queue_states
from rackform.pipeline import load_plan
from rackform.placement import QueuedJob, RunningJob
from rackform.plan.models import CapacityPlan
from tests.conftest import deploy_to_moto, moto_aws

SPEC = "examples/demo.yaml"
REGION = "us-east-1"
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
TRN_QUEUE = "demo-trainium-workers-queue"
TRN_DEF = "demo-trainium-workers-single"


@pytest.fixture
def batch(monkeypatch):
    with moto_aws(monkeypatch, REGION):
        s3, client = boto3.client("s3", region_name=REGION), boto3.client("batch", region_name=REGION)
        deploy_to_moto(load_plan(SPEC), monkeypatch, s3=s3, batch=client)
        yield client


def job(batch, status: str, *, started: dt.datetime | None = None, stopped: dt.datetime | None = None,
        reason: str | None = None, attempt_reasons: tuple[str, ...] = ()) -> str:
    """A job of the Trainium queue in `status`, held in moto's own state (moto without Docker ends every job at
    once); times and reasons as Batch would report them."""
    job_id = batch.submit_job(jobName=f"j-{status.lower()}", jobQueue=TRN_QUEUE, jobDefinition=TRN_DEF)["jobId"]
    held = batch_backends[DEFAULT_ACCOUNT_ID][REGION]._jobs[job_id]
    held.status = status
    if started is not None:
        held.job_started_at = started
    if stopped is not None:
        held.job_stopped, held.job_stopped_at = True, stopped
    held.job_stopped_reason = reason
    held.attempts = [{"statusReason": r, "container": {}} for r in attempt_reasons]
    return job_id


def trainium(plan, capacity: str = "on-demand"):
    [g] = [g for g in plan.node_groups() if g.job_queue == TRN_QUEUE]
    return g.model_copy(update={"capacity": CapacityPlan(type=capacity)})


def test_running_jobs_the_jobs_ahead_and_the_recent_hours_of_a_queue(batch):
    plan = load_plan(SPEC)
    job(batch, "RUNNING", started=NOW - dt.timedelta(minutes=30))
    job(batch, "RUNNABLE")
    job(batch, "RUNNABLE")
    job(batch, "STARTING")
    for minutes in (10, 20, 30):
        job(batch, "SUCCEEDED", started=NOW - dt.timedelta(hours=2), stopped=NOW - dt.timedelta(hours=2) +
            dt.timedelta(minutes=minutes))
    # ended two days ago: outside the window (moto lists it: it ignores AFTER_CREATED_AT)
    job(batch, "SUCCEEDED", started=NOW - dt.timedelta(days=2, hours=1), stopped=NOW - dt.timedelta(days=2))
    job(batch, "FAILED", started=NOW - dt.timedelta(hours=3), stopped=NOW - dt.timedelta(hours=2),
        reason="Host EC2 (instance i-0123456789abcdef0) terminated.")
    job(batch, "FAILED", started=NOW - dt.timedelta(hours=3), stopped=NOW - dt.timedelta(hours=2),
        reason="Essential container in task exited")
    # a reclaimed attempt, retried to success: a reclaim all the same
    job(batch, "SUCCEEDED", started=NOW - dt.timedelta(hours=1), stopped=NOW - dt.timedelta(minutes=20),
        attempt_reasons=("Host EC2 (instance i-0fedcba9876543210) terminated.", "Essential container in task exited"))

    states, notes = queue_states(plan, batch, groups=[trainium(plan, "spot")], clock=lambda: NOW)
    s = states[TRN_QUEUE]
    assert notes == []
    assert s.read_at == NOW
    assert s.running == (RunningJob(started_at=NOW - dt.timedelta(minutes=30), vcpus=128, nodes=1),)
    # the STARTING job (it has its instance) first, then the RUNNABLE ones
    assert s.ahead == (QueuedJob(status="STARTING", vcpus=128), QueuedJob(status="RUNNABLE", vcpus=128),
                       QueuedJob(status="RUNNABLE", vcpus=128))
    assert s.backlog_vcpus == 384
    assert sorted(s.succeeded_s or ()) == [600.0, 1200.0, 1800.0, 2400.0]
    assert s.finished_jobs == 6 and s.reclaim_window_s == 24 * 3600
    assert s.spot_interruptions == 2
    assert (s.queue_state, s.queue_status, s.ce_state, s.ce_status) == ("ENABLED", "VALID", "ENABLED", "VALID")
    assert s.max_vcpus is None  # the embedded environment is unmanaged: no maxvCpus

    # On-Demand: no reclaims are counted (None: not a Spot group), the rest as before
    on_demand, _ = queue_states(plan, batch, groups=[trainium(plan)], clock=lambda: NOW)
    assert on_demand[TRN_QUEUE].spot_interruptions is None and on_demand[TRN_QUEUE].finished_jobs == 6


def test_a_disabled_queue_and_environment_are_read_as_such(batch):
    plan = load_plan(SPEC)
    batch.update_job_queue(jobQueue=TRN_QUEUE, state="DISABLED")
    batch.update_compute_environment(computeEnvironment=trainium(plan).compute_environment, state="DISABLED")
    states, _ = queue_states(plan, batch, clock=lambda: NOW)
    assert (states[TRN_QUEUE].queue_state, states[TRN_QUEUE].ce_state) == ("DISABLED", "DISABLED")
    assert states["demo-gpu-h100-queue"].queue_state == "ENABLED"


def test_a_status_with_more_jobs_than_are_read_is_unknown_not_short(batch, monkeypatch):
    plan = load_plan(SPEC)
    monkeypatch.setattr(live, "LISTED_MAX", 2)
    for _ in range(3):
        job(batch, "RUNNABLE")
    states, notes = queue_states(plan, batch, groups=[trainium(plan)], clock=lambda: NOW)
    s = states[TRN_QUEUE]
    assert s.ahead is None and s.backlog_vcpus is None and s.running == ()
    assert f"queue {TRN_QUEUE}: more than 2 RUNNABLE jobs, not read: its start is unknown" in notes
    # the jobs created in the window are more than 2 as well: durations and reclaims unknown, said so
    assert s.succeeded_s is None and s.spot_interruptions is None
    assert any("recent durations and Spot reclaims unknown" in n for n in notes)


def test_a_queue_that_cannot_be_read_is_unknown(batch):
    plan = load_plan(SPEC)
    stub = Stubber(batch)
    stub.add_client_error("describe_job_queues", "AccessDeniedException", "no", 403)
    stub.add_client_error("describe_compute_environments", "AccessDeniedException", "no", 403)
    stub.add_client_error("list_jobs", "AccessDeniedException", "no", 403)
    with stub:
        states, notes = queue_states(plan, batch, groups=[trainium(plan)], clock=lambda: NOW)
    s = states[TRN_QUEUE]
    assert (s.queue_state, s.ce_state, s.running, s.ahead, s.backlog_vcpus, s.succeeded_s) == (None,) * 6
    assert [n.split(" (")[0] for n in notes] == ["job queues not read", "compute environments not read",
                                                 f"queue {TRN_QUEUE} not read"]


def test_reservation_state_free_count_and_end_and_the_live_spot_price(batch):
    plan = load_plan("examples/trn2-capacity-block.yaml")
    block = next(g for g in plan.node_groups() if g.capacity.type == "capacity-block")
    spot = block.model_copy(update={"capacity": CapacityPlan(type="spot"), "instance_type": "c7gn.16xlarge",
                                    "name": "spot", "job_queue": TRN_QUEUE})
    ec2 = boto3.client("ec2", region_name=REGION)
    end = dt.datetime(2026, 12, 8, 11, 30, tzinfo=dt.UTC)
    stub = Stubber(ec2)
    stub.add_response("describe_capacity_reservations", {"CapacityReservations": [{
        "CapacityReservationId": block.capacity.reservation_id, "State": "active", "AvailableInstanceCount": 3,
        "EndDate": end, "EndDateType": "limited", "ReservationType": "capacity-block"}]},
        {"CapacityReservationIds": [block.capacity.reservation_id]})
    stub.add_response("describe_spot_price_history", {"SpotPriceHistory": [
        {"InstanceType": "c7gn.16xlarge", "SpotPrice": "1.2345", "Timestamp": NOW - dt.timedelta(minutes=5),
         "AvailabilityZone": plan.availability_zone, "ProductDescription": "Linux/UNIX"}]})
    with stub:
        states, notes = queue_states(plan, batch, ec2, groups=[block, spot], spot_live=True, clock=lambda: NOW)
    stub.assert_no_pending_responses()
    b = states[block.job_queue]
    assert (b.reservation_state, b.reservation_free, b.reservation_end, b.reservation_end_type) == \
        ("active", 3, end, "limited")
    assert b.spot_usd_per_hour is None and states[TRN_QUEUE].spot_usd_per_hour == 1.2345
    assert not [n for n in notes if "reservation" in n or "Spot" in n]

    # without --live no Spot price is read; a reservation EC2 will not describe is unknown, said so
    stub = Stubber(ec2)
    stub.add_client_error("describe_capacity_reservations", "InvalidCapacityReservationId.NotFound", "gone")
    with stub:
        states, notes = queue_states(plan, batch, ec2, groups=[block, spot], clock=lambda: NOW)
    assert states[block.job_queue].reservation_state is None and states[TRN_QUEUE].spot_usd_per_hour is None
    assert any(n.startswith("capacity reservations not read") for n in notes)

