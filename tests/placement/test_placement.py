"""The placement policy (rackform/placement.py): a pure function of the workload, the plan, the records and the
queues' state. One test per rule."""

from __future__ import annotations

import math

import pytest

from rackform.reference.peaks import limits_for
from rackform.pipeline import load_plan
from rackform.placement import QueueState, healthy, place
from rackform.placement.pricing import SpotGuide, node_price
from rackform.reference.prices import load_prices, spot
from rackform.render.placement import explain_rows
from rackform.spec.problems import SpecError
from rackform.pipeline import load_workload, parse_workload
from rackform.spec.workload import duration_seconds

from tests.conftest import workload
from tests.records import rec

HOUR = 3600.0


@pytest.fixture(scope="module")
def plan():
    return load_plan("examples/demo.yaml")


def queues(plan, **backlog: int) -> dict[str, QueueState]:
    return {g.job_queue: QueueState(backlog.get(g.tier, 0)) for g in plan.node_groups()}


def test_the_best_measured_figure_per_dollar_wins(plan):
    # trn1: 16 chips x 100 tokens/s for $21.50/h; p5: 8 GPUs x 1000 tokens/s for $55.04/h: the GPU's tokens are cheaper
    records = [rec("inference", "trainium", 100, price=21.5), rec("inference", "gpu", 1000, price=55.04)]
    d = place(workload(), plan, records, queues(plan), limits_of=limits_for)
    assert d.line() == "placed serve (inference) on gpu/h100 [gpu]"
    assert d.basis == "measured" and "lowest measured cost per unit of work (inference" in d.reason
    assert [c.tier for c in d.candidates] == ["gpu", "trainium"]


def test_no_measurements_fall_back_to_the_seed_order_and_say_so(plan):
    for cls, tier in (("inference", "trainium"), ("training", "gpu"), ("general", "graviton")):
        d = place(workload(cls, tiers=("graviton", "trainium", "gpu")), plan, [], queues(plan), limits_of=limits_for)
        assert d.chosen.tier == tier and d.basis == "seed order"
        assert "no healthy priced" in d.reason and "seed order" in d.reason


def test_an_unknown_price_is_never_a_price_of_zero(plan):
    # Without a price trainium's figure is unknown: it must not rank first as if it were free.
    records = [rec("inference", "trainium", 1e6, price=None), rec("inference", "gpu", 10, price=55.04)]
    d = place(workload(), plan, records, queues(plan), limits_of=limits_for)
    assert d.chosen.tier == "gpu"
    trn = next(c for c in d.candidates if c.tier == "trainium")
    assert trn.per_dollar is None and any("price is unknown" in n for n in trn.notes)
    assert trn.usd_per_hour is not None  # the plan's price is shown; the figure's is what was missing
    # with a budget, an unknown cost cannot be kept within it: refused, and said
    d = place(workload(work=1e6, budget_usd=100), plan, records, queues(plan), limits_of=limits_for)
    assert "price unknown" in next(c for c in d.candidates if c.tier == "trainium").refused


def test_unhealthy_and_failed_results_are_ignored(plan):
    records = [rec("inference", "trainium", 1e9, price=21.5, status="failed"),
               rec("inference", "trainium", 1e9, price=21.5).model_copy(
                   update={"validity": "invalid", "invalid_reason": "node 1: /dev/neuron0 missing"}),
               rec("inference", "gpu", 10, price=55.04)]
    assert [healthy(r) for r in records] == [False, False, True]
    d = place(workload(), plan, records, queues(plan), limits_of=limits_for)
    assert d.chosen.tier == "gpu"
    assert next(c for c in d.candidates if c.tier == "trainium").per_dollar is None


def test_ties_go_to_the_seed_order(plan):
    # the same tokens per dollar on both: inference's seed order puts trainium first
    records = [rec("inference", "trainium", 8 * 21.5, price=21.5), rec("inference", "gpu", 16 * 55.04, price=55.04)]
    d = place(workload(), plan, records, queues(plan), limits_of=limits_for)
    fig = [c.per_dollar for c in d.candidates]
    assert fig[0] == pytest.approx(fig[1])
    assert d.chosen.tier == "trainium"
    d = place(workload("training"), plan, [], queues(plan), limits_of=limits_for)
    assert d.chosen.tier == "gpu"


def test_a_saturated_queue_spills_to_the_next_candidate(plan):
    w = workload(max_wait="30m", expected_duration="1h")
    d = place(w, plan, [], queues(plan, trainium=256), limits_of=limits_for)  # 256 of 256 vCPUs queued: 1 h
    assert d.outcome == "spilled" and d.chosen.tier == "gpu" and d.preferred.tier == "trainium"
    assert d.line().startswith("spilled serve from trainium to gpu: trainium/workers would wait about 1h00m")
    assert "over max_wait 30m" in d.line()
    # half the maximum queued: 30 minutes, within max_wait: no spill
    assert place(w, plan, [], queues(plan, trainium=128), limits_of=limits_for).outcome == "placed"
    # no max_wait: the job waits where it is best
    assert place(workload(expected_duration="1h"), plan, [], queues(plan, trainium=10_000),
                 limits_of=limits_for).chosen.tier == "trainium"


def test_when_every_queue_is_over_max_wait_the_shortest_wait_takes_it(plan):
    d = place(workload(max_wait="10m", expected_duration="1h"), plan, [], queues(plan, trainium=512, gpu=384 // 2),
              limits_of=limits_for)
    assert d.outcome == "spilled" and d.chosen.tier == "gpu"
    assert "every candidate is over max_wait" in d.reason


def test_an_unknown_queue_state_is_shown_and_never_spills(plan):
    d = place(workload(max_wait="1m"), plan, [], {}, limits_of=limits_for)
    assert d.outcome == "placed" and d.chosen.wait_s is None
    assert d.chosen.start_basis == "cannot estimate: the queue was not read"


def test_measured_job_durations_set_the_wait(plan):
    records = [rec("cpu", "trainium", 1, price=21.5, seconds=600)]  # a 10-minute job on trainium/workers
    d = place(workload(max_wait="30m"), plan, records, queues(plan, trainium=512), limits_of=limits_for)
    assert d.outcome == "placed" and d.chosen.wait_s == pytest.approx(2 * 600)
    local = [rec("cpu", "trainium", 1, price=21.5, seconds=600, env={"executor": "local"})]
    d = place(workload(), plan, local, queues(plan, trainium=256), limits_of=limits_for, include_rehearsal=True)
    assert d.chosen.job_duration_s is None and d.chosen.wait_s is None  # a rehearsal's times are this machine's
    assert "how long its jobs take is unknown" in d.chosen.start_basis


def test_the_budget_guard_refuses_a_candidate_over_budget(plan):
    # cost = work / measured work per $: 1e9 tokens at 100 tokens/s x 16 chips for $21.50/h is $3,733
    records = [rec("inference", "trainium", 100, price=21.5), rec("inference", "gpu", 10, price=55.04)]
    w = workload(work=1e9, budget_usd=5000)
    d = place(w, plan, records, queues(plan), limits_of=limits_for)
    costs = {c.tier: c.expected_cost_usd for c in d.candidates}
    assert costs["trainium"] == pytest.approx(1e9 / (100 * 16 * 3600 / 21.5))
    assert costs["gpu"] > 5000
    assert d.chosen.tier == "trainium"
    assert "over the budget $5,000.00" in next(c for c in d.candidates if c.tier == "gpu").refused
    d = place(workload(work=1e9, budget_usd=1000), plan, records, queues(plan), limits_of=limits_for)
    assert d.outcome == "unplaced" and d.line().startswith("unplaced serve (inference): trainium/workers: expected")
    with pytest.raises(SpecError, match="budget_usd: 10 needs `work`"):
        workload(budget_usd=10)


def test_pin_and_exclude_override_the_policy(plan):
    records = [rec("inference", "trainium", 100, price=21.5), rec("inference", "gpu", 1000, price=55.04)]
    pinned = place(workload(), plan, records, queues(plan), limits_of=limits_for, pin="trainium")
    assert pinned.chosen.tier == "trainium"
    d = place(workload(), plan, records, queues(plan), limits_of=limits_for, exclude=["gpu"])
    assert d.chosen.tier == "trainium"
    assert next(c for c in d.candidates if c.tier == "gpu").refused == "tier gpu excluded"
    w = workload(placement={"pin": "trainium"})
    assert place(w, plan, records, queues(plan), limits_of=limits_for).chosen.tier == "trainium"
    with pytest.raises(SpecError, match="placement.pin: 'graviton' has no entry under tiers"):
        workload(placement={"pin": "graviton"})
    with pytest.raises(SpecError, match="excludes every tier"):
        workload(placement={"exclude": ["trainium", "gpu"]})


def test_candidates_must_fit_the_job(plan):
    d = place(workload(nodes=3), plan, [], queues(plan), limits_of=limits_for)
    assert d.outcome == "unplaced" and "needs 3 nodes; one job here spans at most 2" in d.reason
    d = place(workload(resources={"vcpus": 192}), plan, [], queues(plan), limits_of=limits_for)
    assert d.chosen.tier == "gpu"  # p5 has 192 vCPUs, trn1.32xlarge 128
    assert "needs 192 vCPUs a node; trn1.32xlarge has 128" in d.candidates[-1].refused
    # tiers without an image are no candidates at all
    assert {c.tier for c in place(workload(tiers=("gpu",)), plan, [], {}, limits_of=limits_for).candidates} == {"gpu"}


def capacity_plan(tmp_path, capacity: str):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""name: cap
region: us-east-1
availability_zone: use1-az6
racks:
  - name: trainium
    node_groups:
      - name: workers
        instance_type: trn1.32xlarge
        count: 2
        capacity: {capacity}
        placement_group: {{create: false}}
  - name: gpu
    node_groups:
      - name: h100
        instance_type: p5.48xlarge
        count: 2
""")
    return load_plan(spec)


def test_reservations_and_spot_interruptions_weigh_on_the_wait(tmp_path):
    plan = capacity_plan(tmp_path, "{type: capacity-block, reservation_id: cr-0123456789abcdef0}")
    q = queues(plan)
    trn = next(g for g in plan.node_groups() if g.tier == "trainium").job_queue
    w = workload(max_wait="30m", expected_duration="1h")
    d = place(w, plan, [], {**q, trn: QueueState(0, reservation_state="scheduled")}, limits_of=limits_for)
    assert d.outcome == "placed" and d.chosen.tier == "gpu"  # a block not active refuses the job, never queues it
    assert "a Capacity Block cr-0123456789abcdef0 is scheduled, not active" in d.candidates[-1].refused
    d = place(w, plan, [], {**q, trn: QueueState(0, reservation_state="active", reservation_free=0)},
              limits_of=limits_for)
    assert d.outcome == "spilled" and d.preferred.wait_s == HOUR
    d = place(w, plan, [], {**q, trn: QueueState(0, reservation_state="active", reservation_free=2)},
              limits_of=limits_for)
    assert d.outcome == "placed" and d.chosen.tier == "trainium"
    plan = capacity_plan(tmp_path, "{type: spot}")
    trn = next(g for g in plan.node_groups() if g.tier == "trainium").job_queue
    d = place(w, plan, [], {**queues(plan), trn: QueueState(0, spot_interruptions=2)}, limits_of=limits_for)
    assert "2 Spot reclaim(s) recently, but not how many jobs ran" in d.preferred.interruption


def test_spot_is_priced_at_the_dated_snapshot_unless_read_live(tmp_path):
    plan = capacity_plan(tmp_path, "{type: spot}")
    g = next(g for g in plan.node_groups() if g.tier == "trainium")
    snap = spot(load_prices(), plan.region, plan.availability_zone_id, g.instance_type)
    assert snap is not None  # the shipped Spot snapshot prices trn1.32xlarge in use1-az6
    w = workload(expected_duration="1h")
    c = next(c for c in place(w, plan, [], queues(plan), limits_of=limits_for).candidates if c.tier == "trainium")
    assert c.usd_per_hour == pytest.approx(snap.usd * c.nodes)
    # The basis names the snapshot and its date: a Spot price moves, so an undated one would mislead.
    assert snap.source == "Spot snapshot after 2025-06, skypilot-catalog"  # the newer seed's: it lists trn1 there
    assert f"({snap.source};" in c.price_basis and "--live" in c.price_basis
    live = {**queues(plan), g.job_queue: QueueState(0, spot_usd_per_hour=9.0)}
    c = next(c for c in place(w, plan, [], live, limits_of=limits_for).candidates if c.tier == "trainium")
    assert c.usd_per_hour == pytest.approx(9.0 * c.nodes) and c.price_basis.startswith("live Spot price")


def test_spot_missing_from_the_snapshot_is_unknown_and_says_why(tmp_path):
    plan = capacity_plan(tmp_path, "{type: spot}")
    g = next(g for g in plan.node_groups() if g.tier == "trainium")
    price = node_price(g, None, 2, SpotGuide(None, "trn1.32xlarge is not in the us-east-1 Spot snapshot"))
    assert price.usd_per_node_hour is None
    assert price.basis.startswith("trn1.32xlarge is not in the us-east-1 Spot snapshot; ") and "--live" in price.basis


def test_explain_names_every_candidate_and_why(plan):
    d = place(workload(max_wait="30m", expected_duration="1h"), plan, [], queues(plan, trainium=256), limits_of=limits_for)
    rows, header = explain_rows(d)
    assert header[:3] == ["#", "rack/node group", "tier"]
    assert rows[0][1] == "trainium/workers" and rows[0][-1].startswith("preferred, over max_wait")
    assert rows[1][-1].startswith("chosen (spill-over)") and rows[1][6] == "0/384"
    assert d.to_dict()["outcome"] == "spilled"


def test_workload_files_report_problems_like_specs(tmp_path):
    assert duration_seconds("1h30m") == 5400 and duration_seconds("2d") == 172800
    bad = tmp_path / "w.yaml"
    bad.write_text("name: serve\nclass: inference\nmax_wiat: 30m\ntiers:\n  tpu: {image: x, command: [y]}\n")
    with pytest.raises(SpecError) as e:
        load_workload(bad)
    text = str(e.value)
    assert "unknown key 'max_wiat'; did you mean 'max_wait'?" in text
    assert "'tpu' is not one of graviton | trainium | gpu | cpu" in text
    bad.write_text("name: serve\nclass: inference\nmax_wait: soon\ntiers: {gpu: {image: x, command: [y]}}\n")
    with pytest.raises(SpecError, match="max_wait"):
        load_workload(bad)
    with pytest.raises(SpecError, match="does not exist; see examples/workloads/"):
        load_workload(tmp_path / "missing.yaml")
    for example in ("general", "training", "inference"):
        assert load_workload(f"examples/workloads/{example}.yaml").workload_class == example


def test_the_workload_json_schema_names_class_and_tiers():
    from rackform.spec.workload import json_schema

    schema = json_schema()
    assert schema["title"] == "rackform workload" and {"name", "class", "tiers"} <= set(schema["required"])
    assert schema["properties"]["max_wait"]["anyOf"][0]["pattern"] == "^([0-9]{1,6}[dhms]){1,4}$"


def test_the_workload_schema_has_the_placement_fields_with_unit_and_default():
    from rackform.spec.workload import json_schema

    props = json_schema()["properties"]
    assert props["objective"]["default"] == "cost" and props["objective"]["enum"] == ["cost", "time"]
    for name, words in (("expected_duration", "e.g. 6h"), ("checkpoint_every", "default: none"),
                        ("utilization", "lower bound"), ("slo", "p99_latency_ms")):
        assert words in props[name]["description"] and props[name].get("default", "absent") is None
    defs = json_schema()["$defs"]
    assert "GiB" in defs["Resources"]["properties"]["accelerator_memory_gib"]["description"]
    assert "linux/arm64" in defs["TierJob"]["properties"]["platform"]["description"]
    assert "milliseconds" in defs["Slo"]["properties"]["p99_latency_ms"]["description"]
    w = workload(tiers=("gpu",), expected_duration="6h", checkpoint_every="20m", utilization=0.4, work=1e9,
                 objective="time", slo={"p99_latency_ms": 200})
    assert (w.expected_duration_s, w.checkpoint_every_s, w.objective) == (21600, 1200, "time")
    for bad, field in (({"objective": "speed"}, "objective"), ({"utilization": 1.5}, "utilization"),
                       ({"expected_duration": "soon"}, "expected_duration"), ({"slo": {"p99": 3}}, "slo"),
                       ({"tiers": {"gpu": {"image": "i", "command": ["r"], "platform": "linux/386"}}},
                        "tiers.gpu.platform")):
        with pytest.raises(SpecError, match=field):
            parse_workload({"name": "w", "class": "inference", "tiers": {"gpu": {"image": "i", "command": ["r"]}},
                            **bad})


def test_the_stored_candidate_schema_has_every_field_a_decision_writes():
    # PlacementCandidate (operator side) and workloads.objects.Candidate (what a recorded decision is checked against)
    # are kept apart: workloads/ imports nothing from rackform, and the stored form differs (wait_s "never", lists,
    # defaults for decisions recorded before a field existed). The field names are what must not drift.
    from dataclasses import fields

    from rackform.placement import PlacementCandidate
    from workloads.objects import Candidate

    assert [f.name for f in fields(PlacementCandidate)] == list(Candidate.model_fields)
