"""Issue 20's placement rules, one pure test each: hard constraints, the start estimate, prices by capacity kind,
objectives and evidence. No AWS: the live state is built by hand (rackform/placement/state.py)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from rackform.pipeline import load_plan
from rackform.placement import QueuedJob, QueueState, RunningJob, place
from rackform.reference.peaks import limits_for
from rackform.render.placement import explain_details, explain_rows
from tests.conftest import workload
from tests.records import rec
from workloads.results import Metric

T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)  # when rec()'s records start; "now" for the state


@pytest.fixture(scope="module")
def plan():
    return load_plan("examples/demo.yaml")


def spec(tmp_path, racks: str):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: t\nregion: us-east-1\navailability_zone: use1-az6\nracks:\n{racks}")
    return load_plan(path)


def idle(plan, **override: QueueState) -> dict[str, QueueState]:
    """Every queue read, empty and ready; `override` by tier."""
    ready = QueueState(0, read_at=T0, running=(), ahead=(), queue_state="ENABLED", queue_status="VALID",
                       ce_state="ENABLED", ce_status="VALID")
    return {g.job_queue: override.get(g.tier, ready) for g in plan.node_groups()}


def cand(d, tier: str):
    return next(c for c in d.candidates if c.tier == tier)


# --- 1. hard constraints ------------------------------------------------------------------------------------------

def test_memory_is_checked_after_the_ecs_reserve_the_job_definitions_keep(plan):
    # m7g.xlarge has 16,384 MiB; rackform's job definitions give a job 14,336 (10%, at least 2 GiB, kept back)
    w = workload("general", tiers=("graviton",), resources={"memory_mib": 15000})
    head = next(c for c in place(w, plan, [], {}, limits_of=limits_for).candidates if c.instance_type == "m7g.xlarge")
    assert "needs 15,000 MiB a node; m7g.xlarge has 16,384, of which a job gets 14,336" in head.refused
    w = workload("general", tiers=("graviton",), resources={"memory_mib": 14336})
    assert place(w, plan, [], {}, limits_of=limits_for).chosen.instance_type == "m7g.xlarge"


def test_accelerator_memory_per_node_is_checked_against_the_catalog(plan):
    # trn1.32xlarge: 16 Trainium chips x 32 GiB = 512 GiB a node; p5.48xlarge: 8 H100 x 80 GiB = 640 GiB
    d = place(workload(resources={"accelerator_memory_gib": 600}), plan, [], {}, limits_of=limits_for)
    assert d.chosen.tier == "gpu"
    refused = cand(d, "trainium").refused
    assert "needs 600 GiB a node; 16 x" in refused and "512 GiB a node" in refused
    d = place(workload("general", tiers=("graviton",), resources={"accelerator_memory_gib": 1}), plan, [], {},
              limits_of=limits_for)
    assert d.outcome == "unplaced" and "has no accelerators" in d.reason


def test_the_image_platform_must_match_the_node_architecture(plan):
    w = workload(tiers=("gpu",))
    w = w.model_copy(update={"tiers": {"gpu": w.tiers["gpu"].model_copy(update={"platform": "linux/arm64"})}})
    d = place(w, plan, [], {}, limits_of=limits_for)
    assert d.outcome == "unplaced" and "p5.48xlarge runs linux/amd64; tiers.gpu.platform names linux/arm64" in d.reason
    # a manifest read from the registry decides over the stated platform
    d = place(w, plan, [], {}, limits_of=limits_for, images={"img:gpu": frozenset({"linux/amd64"})})
    assert d.outcome == "placed" and "platform ok: linux/amd64 (its manifest list)" in d.chosen.verdicts
    # neither stated nor read: unknown, said, not refused
    d = place(workload(tiers=("gpu",)), plan, [], {}, limits_of=limits_for)
    assert any(v.startswith("platform unknown:") for v in d.chosen.verdicts)


def test_one_image_on_arm64_and_x86_without_a_platform_is_a_warning(plan):
    data = {"image": "python:3.12-slim", "command": ["run"]}
    from rackform.pipeline import parse_workload

    w = parse_workload({"name": "etl", "class": "general", "tiers": {"graviton": data, "cpu": data, "gpu": data}})
    [warning] = place(w, plan, [], {}, limits_of=limits_for).warnings
    assert "python:3.12-slim runs on arm64 and x86_64 node groups (tiers gpu, graviton)" in warning
    stated = {**data, "platform": ["linux/amd64", "linux/arm64"]}
    w = parse_workload({"name": "etl", "class": "general", "tiers": {"graviton": stated, "gpu": stated}})
    assert place(w, plan, [], {}, limits_of=limits_for).warnings == ()


def test_a_multi_node_job_needs_efa_and_a_placement_group(tmp_path):
    plan = spec(tmp_path, """  - name: arm
    node_groups:
      - {name: big, instance_type: m7g.4xlarge, count: 2}
      - {name: fabric, instance_type: c7gn.16xlarge, count: 2}
""")
    d = place(workload("general", tiers=("graviton",), nodes=2), plan, [], {}, limits_of=limits_for)
    big = next(c for c in d.candidates if c.node_group == "big")
    assert "needs 2 nodes; m7g.4xlarge here has no EFA and a cluster placement group" in big.refused
    assert d.chosen.node_group == "fabric" and any(v.startswith("nodes ok: 2 nodes with EFA") for v in
                                                   d.chosen.verdicts)


def test_a_group_failing_its_latest_health_check_is_refused_as_failing(plan):
    bad = rec("inference", "trainium", 1e9, price=21.5).model_copy(
        update={"validity": "invalid", "invalid_reason": "node 1: /dev/neuron0 missing"})
    d = place(workload(), plan, [bad, rec("inference", "gpu", 10, price=55.04)], {}, limits_of=limits_for)
    assert "failing: its latest health check (run r1" in cand(d, "trainium").refused
    assert "/dev/neuron0 missing" in cand(d, "trainium").refused and d.chosen.tier == "gpu"
    # a newer healthy record (a later run on repaired nodes) clears it
    later = rec("inference", "trainium", 100, price=21.5).model_copy(
        update={"run_id": "r2", "ended_at": bad.ended_at + dt.timedelta(hours=1)})
    d = place(workload(), plan, [bad, later], {}, limits_of=limits_for)
    assert cand(d, "trainium").refused is None and "passed its latest health check (run r2" in \
        " ".join(cand(d, "trainium").verdicts)


def test_a_disabled_queue_or_invalid_compute_environment_is_refused(plan):
    off = QueueState(0, queue_state="DISABLED", queue_status="VALID", ce_state="ENABLED", ce_status="VALID")
    d = place(workload(), plan, [], idle(plan, trainium=off), limits_of=limits_for)
    assert "demo-trainium-workers-queue is DISABLED/VALID: Batch starts no job there" in cand(d, "trainium").refused
    bad = QueueState(0, queue_state="ENABLED", queue_status="VALID", ce_state="ENABLED", ce_status="INVALID",
                     ce_status_reason="CLIENT_ERROR - role not found")
    d = place(workload(), plan, [], idle(plan, trainium=bad), limits_of=limits_for)
    assert "is ENABLED/INVALID (CLIENT_ERROR - role not found)" in cand(d, "trainium").refused
    assert d.chosen.tier == "gpu"


def test_a_capacity_block_must_last_until_the_job_ends(tmp_path):
    plan = spec(tmp_path, """  - name: trainium
    node_groups:
      - {name: workers, instance_type: trn1.32xlarge, count: 2,
         capacity: {type: capacity-block, reservation_id: cr-0123456789abcdef0}, placement_group: {create: false}}
""")
    q = next(g.job_queue for g in plan.node_groups())
    block = dict(reservation_state="active", reservation_free=2, read_at=T0, running=(), ahead=(),
                 reservation_end=T0 + dt.timedelta(hours=2))
    w = workload(tiers=("trainium",), expected_duration="2h")
    d = place(w, plan, [], {q: QueueState(0, **block)}, limits_of=limits_for)
    # EC2 stops a block's instances 30 minutes before its end: a 2-hour job cannot fit a block ending in 2 hours
    assert d.outcome == "unplaced" and "its instances stop 30 min before" in d.reason
    d = place(workload(tiers=("trainium",), expected_duration="1h"), plan, [], {q: QueueState(0, **block)},
              limits_of=limits_for)
    assert d.outcome == "placed" and any(v.startswith("reservation ok") for v in d.chosen.verdicts)


def test_a_job_that_can_never_start_is_refused_and_unplaced(plan):
    # trn1.32xlarge's 128 vCPUs a node against a compute environment whose maximum is 64
    d = place(workload(tiers=("trainium",)), plan, [], idle(plan, trainium=QueueState(0, max_vcpus=64)),
              limits_of=limits_for)
    assert d.outcome == "unplaced" and "needs 128 vCPUs; 64 max vCPUs (the compute environment): it can never start" \
        in d.reason


# --- 2. start estimate --------------------------------------------------------------------------------------------

def test_the_start_walks_running_jobs_and_the_jobs_ahead(plan):
    # 256 vCPUs: two 128-vCPU jobs started 30 min ago (jobs take 1 h: the median of the queue's SUCCEEDED ones)
    # end in 30 min; then the 256-vCPU job ahead runs an hour; this job starts after it: 1h30m
    busy = QueueState(256, read_at=T0, running=(RunningJob(started_at=T0 - dt.timedelta(minutes=30), vcpus=128),) * 2,
                      ahead=(QueuedJob(status="RUNNABLE", vcpus=256, nodes=2),), succeeded_s=(3000.0, 3600.0, 4000.0))
    d = place(workload(tiers=("trainium",)), plan, [], {**idle(plan), **idle(plan, trainium=busy)},
              limits_of=limits_for)
    trn = cand(d, "trainium")
    assert trn.wait_s == pytest.approx(5400) and trn.job_duration_s == 3600
    assert "2 running (256 vCPUs), 1 queued ahead (256 vCPUs)" in trn.start_basis
    assert "median of the queue's 3 recent SUCCEEDED jobs" in trn.start_basis and "1h30m" in trn.start_basis


def test_a_start_that_cannot_be_estimated_says_so(plan):
    busy = QueueState(128, read_at=T0, running=(RunningJob(started_at=T0, vcpus=128),), ahead=())
    d = place(workload(tiers=("trainium",)), plan, [], idle(plan, trainium=busy), limits_of=limits_for)
    assert d.chosen.wait_s is None and d.chosen.start_basis.startswith("cannot estimate: 1 running")


# --- 3. prices by capacity kind -----------------------------------------------------------------------------------

def test_a_reservation_with_free_instances_is_sunk_cost(tmp_path):
    plan = spec(tmp_path, """  - name: trainium
    node_groups:
      - {name: workers, instance_type: trn1.32xlarge, count: 2,
         capacity: {type: reservation, reservation_id: cr-0123456789abcdef0}, placement_group: {create: false}}
  - name: gpu
    node_groups:
      - {name: h100, instance_type: p5.48xlarge, count: 2}
""")
    trn = next(g.job_queue for g in plan.node_groups() if g.tier == "trainium")
    records = [rec("inference", "trainium", 100, price=21.5), rec("inference", "gpu", 1000, price=55.04)]
    d = place(workload(work=1e9), plan, records, {trn: QueueState(0, reservation_state="active", reservation_free=2)},
              limits_of=limits_for)
    # the GPU's tokens are cheaper at list prices, but the reservation is paid for already: it costs nothing more
    assert d.chosen.tier == "trainium" and d.chosen.usd_per_hour == 0 and d.chosen.expected_cost_usd == 0
    assert "already paid for: marginal price 0 (sunk cost)" in d.chosen.price_basis
    d = place(workload(work=1e9), plan, records, {trn: QueueState(0, reservation_state="active", reservation_free=0)},
              limits_of=limits_for)
    assert d.chosen.tier == "gpu" and cand(d, "trainium").usd_per_hour is None


def test_spot_reclaims_price_a_long_job_without_checkpoints_as_a_bad_bet(tmp_path):
    plan = spec(tmp_path, """  - name: gpu
    node_groups:
      - {name: spot, instance_type: p5.48xlarge, count: 2, capacity: {type: spot}}
""")
    q = next(g.job_queue for g in plan.node_groups())
    # 5 of 10 jobs of 1 h reclaimed in the last day: 0.5 reclaims a job-hour; a 6-hour run expects 3, each losing
    # half the run (3 h) without checkpoints: +9 h, +150%
    lost = QueueState(0, spot_interruptions=5, finished_jobs=10, reclaim_window_s=86400, succeeded_s=(3600.0,),
                      spot_usd_per_hour=20.0)
    records = [rec("inference", "gpu", 1000, price=55.04)]
    w = workload(tiers=("gpu",), work=1e9, expected_duration="6h")
    c = place(w, plan, records, {q: lost}, limits_of=limits_for).chosen
    assert "5 of 10 jobs reclaimed in the last 24h00m" in c.interruption
    assert "expects 3 reclaim(s), each losing 3h00m" in c.interruption and "+9h00m, +150% run time" in c.interruption
    assert "a bad bet" in c.interruption and c.price_basis == "live Spot price $20 a node-hour"
    # the cost: the run's node-hours at the Spot price, times 2.5 for the reclaims
    per_node_hour = 1000 * 8 * 3600  # tokens: 1000/s on each of 8 GPUs
    assert c.expected_cost_usd == pytest.approx(1e9 / per_node_hour * 20 * 2.5)
    checkpointed = workload(tiers=("gpu",), work=1e9, expected_duration="6h", checkpoint_every="30m")
    c = place(checkpointed, plan, records, {q: lost}, limits_of=limits_for).chosen
    assert "each losing 15m" in c.interruption and "+45m, +12% run time" in c.interruption
    assert "bad bet" not in c.interruption


# --- 4. objectives ------------------------------------------------------------------------------------------------

def test_objective_time_takes_the_earliest_end_and_cost_the_cheapest(plan):
    records = [rec("inference", "trainium", 1000, price=21.5), rec("inference", "gpu", 1000, price=55.04)]
    busy = QueueState(256, read_at=T0, running=(RunningJob(started_at=T0, vcpus=256),), ahead=())
    queues = {**idle(plan), **idle(plan, trainium=busy)}
    w = dict(work=1e9, expected_duration="2h")
    assert place(workload(**w), plan, records, queues, limits_of=limits_for).chosen.tier == "trainium"
    d = place(workload(objective="time", **w), plan, records, queues, limits_of=limits_for)
    assert d.chosen.tier == "gpu" and d.reason.startswith("objective time: the earliest expected end (2h00m")


def test_a_latency_slo_admits_only_tiers_whose_measured_p99_meets_it(plan):
    def inf(tier: str, p99: float):
        r = rec("inference", tier, 1000, price=21.5 if tier == "trainium" else 55.04)
        return r.model_copy(update={"metrics": (*r.metrics, Metric(name="latency_p99_ms", value=p99, unit="ms"))})

    records = [inf("trainium", 450), inf("gpu", 90)]
    d = place(workload(slo={"p99_latency_ms": 200}), plan, records, {}, limits_of=limits_for)
    assert d.chosen.tier == "gpu" and "measured p99 450 ms (median of 1) is over the SLO of 200 ms" in \
        cand(d, "trainium").refused
    d = place(workload(slo={"p99_latency_ms": 200}), plan, records[1:], {}, limits_of=limits_for)
    assert "no measured p99 latency for trn1.32xlarge" in cand(d, "trainium").refused


def test_utilization_scales_the_cost_and_without_it_the_cost_is_a_lower_bound(plan):
    records = [rec("inference", "gpu", 1000, price=55.04)]
    full = place(workload(tiers=("gpu",), work=1e9), plan, records, {}, limits_of=limits_for).chosen
    part = place(workload(tiers=("gpu",), work=1e9, utilization=0.4), plan, records, {}, limits_of=limits_for).chosen
    assert part.expected_cost_usd == pytest.approx(full.expected_cost_usd / 0.4)
    assert full.cost_is_lower_bound and not part.cost_is_lower_bound
    row = explain_rows(place(workload(tiers=("gpu",), work=1e9), plan, records, {}, limits_of=limits_for))[0][0]
    assert row[8].startswith(">= ")
    # the budget holds against the scaled estimate: $1,911.11 at full use is $4,777.78 at 40%
    assert full.expected_cost_usd == pytest.approx(1911.11, abs=0.01)
    d = place(workload(tiers=("gpu",), work=1e9, utilization=0.4, budget_usd=3000), plan, records, {},
              limits_of=limits_for)
    assert d.outcome == "unplaced" and "expected cost $4,777.78 is over the budget $3,000.00" in d.reason
    d = place(workload(tiers=("gpu",), work=1e9, budget_usd=1000), plan, records, {}, limits_of=limits_for)
    assert "expected cost at least $1,911.11 is over the budget" in d.reason


# --- 5. evidence --------------------------------------------------------------------------------------------------

def test_a_difference_inside_the_measured_spread_is_a_tie_broken_by_price(plan):
    # tokens per $: trainium 100 x 16 x 3600 / 21.5 per job; gpu's median 0.5% better, but its two jobs spread 4%:
    # the ranges overlap, a tie, and the cheaper node-hour (trainium, $21.50) takes it, not the name or the 0.5%
    trn = 100 * 16 * 3600 / 21.5
    gpu_rate = trn * 1.005 * 55.04 / 8 / 3600
    records = [rec("inference", "trainium", 100, price=21.5),
               *(rec("inference", "gpu", gpu_rate * f, price=55.04) for f in (0.98, 1.005, 1.02))]
    d = place(workload(), plan, records, {}, limits_of=limits_for)
    assert cand(d, "gpu").per_dollar > cand(d, "trainium").per_dollar
    assert d.chosen.tier == "trainium"
    assert "(3 jobs ±2.0%)" in explain_rows(d)[0][1][4]  # jobs and spread behind the figure
    # outside the spread, the better figure wins
    far = [records[0], *(r.model_copy(update={"metrics": (r.metrics[0].model_copy(
        update={"value": r.metrics[0].value * 1.5}),)}) for r in records[1:])]
    assert place(workload(), plan, far, {}, limits_of=limits_for).chosen.tier == "gpu"


def test_among_unmeasured_groups_of_a_tier_the_cheapest_node_wins(tmp_path):
    plan = spec(tmp_path, """  - name: arm
    node_groups:
      - {name: a-big, instance_type: m7g.4xlarge, count: 1}
      - {name: b-small, instance_type: m7g.xlarge, count: 1}
""")
    d = place(workload("general", tiers=("graviton",)), plan, [], {}, limits_of=limits_for)
    assert d.chosen.instance_type == "m7g.xlarge" and "the cheapest node first" in d.reason


def test_rehearsal_records_rank_no_real_tier_unless_asked_and_labelled(plan):
    local = {"executor": "local"}
    records = [rec("inference", "trainium", 100, price=21.5, env=local), rec("inference", "gpu", 1000, price=55.04,
                                                                            env=local)]
    d = place(workload(), plan, records, {}, limits_of=limits_for)
    assert d.basis == "seed order" and d.chosen.tier == "trainium"
    assert "2 local-rehearsal record(s) left out" in d.warnings[0]
    d = place(workload(), plan, records, {}, limits_of=limits_for, include_rehearsal=True)
    assert d.basis == "measured" and d.chosen.tier == "gpu" and d.chosen.rehearsal
    assert "rehearsal" in explain_rows(d)[0][0][4] and any("local rehearsal" in n for n in d.chosen.notes)


def test_explain_details_show_verdicts_start_and_price_bases(plan):
    d = place(workload(work=1e9), plan, [rec("inference", "gpu", 1000, price=55.04)], idle(plan),
              limits_of=limits_for)
    text = "\n".join(explain_details(d))
    assert "job queue ok: ENABLED/VALID" in text and "start: 0 running (0 vCPUs), 0 queued ahead" in text
    assert "price: On-Demand $55.04 a node-hour (prices snapshot); expected cost $" in text and "a lower bound" in text
    assert math.isfinite(d.chosen.expected_cost_usd)


# --- the command --------------------------------------------------------------------------------------------------

def test_place_explain_shows_every_candidate_and_a_job_that_can_never_start_exits_non_zero(capsys, tmp_path):
    from tests.conftest import run_cli

    code, out, _ = run_cli(capsys, "place", "examples/workloads/training.yaml", "--spec", "examples/demo.yaml",
                           "--no-live", "--explain")
    assert code == 0 and out.startswith("placed finetune (training) on gpu/h100 [gpu]")
    for shown in ("1. gpu/h100 [gpu, on-demand]", "2. trainium/workers [trainium, on-demand]",
                  "nodes ok: 2 nodes with EFA", "start: cannot estimate: the queue was not read",
                  "price: On-Demand $55.04 a node-hour (prices snapshot)", "$ per 1M TFLOP (bf16)",
                  "policy: hard constraints first; the rest ranked by objective cost"):
        assert shown in out
    huge = tmp_path / "w.yaml"
    huge.write_text("name: huge\nclass: training\nresources: {memory_mib: 2000000}\n"
                    "tiers: {gpu: {image: i, command: [r]}}\n")
    code, out, _ = run_cli(capsys, "place", huge, "--spec", "examples/demo.yaml", "--no-live")
    assert code != 0 and out.startswith("unplaced huge (training): gpu/h100: needs 2,000,000 MiB a node")
