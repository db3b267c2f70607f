"""Warm nodes (issue 24 item 1): a node group's `min_count` keeps that many nodes running with no job (the compute
environment's MinvCpus), planned, priced all month in `cost`, and checked against the group's count and its
reservation."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from rackform.pipeline import load_plan
from rackform.plan import cost
from rackform.preflight.checks import check_quotas, check_reservations
from rackform.preflight.state import QuotaValue, ReservationState
from rackform.reference.prices import Quote, load_prices
from rackform.render.cost import render_cost, report_json
from rackform.render.plan import render_plan
from rackform.spec.models import parse_spec
from rackform.validate import validate_spec
from tests.conftest import dump

H100 = ("racks", 2, "node_groups", 0)  # the example's 2 x p5.48xlarge on demand
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
CR = "cr-0123456789abcdef0"  # the example's Capacity Block: 4 x trn2.48xlarge


def warm(demo: dict, rack: int, count: int) -> dict:
    demo["racks"][rack]["node_groups"][0]["min_count"] = count
    return demo


def test_min_count_defaults_to_zero_and_is_at_most_count(demo, catalog):
    spec = parse_spec(demo)
    assert spec.racks[2].node_groups[0].min_count == 0
    problems = validate_spec(parse_spec(warm(demo, 2, 3)), catalog)
    [p] = [p for p in problems if p.rule == "min-count-within-count"]
    assert p.path == "racks[2].node_groups[0].min_count" and "lower min_count to at most 2" in p.message


def test_the_plan_keeps_min_count_and_its_vcpus(tmp_path, demo):
    plan = load_plan(dump(tmp_path, warm(demo, 2, 1)))
    g = plan.racks[2].node_groups[0]
    assert (g.min_count, g.min_vcpus) == (1, g.vcpus_per_node)
    out = render_plan(plan)
    assert "2 (1 warm)" in out
    assert f"warm     gpu/h100: 1 of 2 x p5.48xlarge always running, jobs or not (MinvCpus {g.vcpus_per_node})" \
        in out


def test_warm_nodes_are_priced_all_month_and_counted_when_idle(tmp_path, demo):
    book, given = load_prices(), {"p5.48xlarge": Quote(55.04, "--price")}
    cold = cost.cost_plan(load_plan(dump(tmp_path, demo)), book, given)
    report = cost.cost_plan(load_plan(dump(tmp_path, warm(demo, 2, 1))), book, given)
    [line] = [ln for ln in report.lines if ln.name == "gpu/h100"]
    [w] = report.warm
    assert (w.name, w.count, w.usd_per_hour_each, w.usd_per_hour) == ("gpu/h100 warm", 1, 55.04, 55.04)
    assert line.usd_per_hour == 2 * 55.04
    # The group's own line and the totals are unchanged: the warm nodes are part of them, not added twice.
    assert report.of() == cold.of() and cold.warm == ()
    text = render_cost(report)
    assert "warm     gpu/h100 warm: 1 x 55.04 $/h x 730 h = 40,179.20 $/month, always on (min_count 1)" in text
    idle = [ln for ln in text.splitlines() if ln.startswith("idle")]
    assert idle and "the warm nodes" in idle[0]
    assert report_json(report)["warm_nodes"][0]["usd_per_month"] == round(w.usd_per_hour * 730, 6)


def test_a_reservation_must_hold_the_warm_nodes(tmp_path, demo):
    plan = load_plan(dump(tmp_path, warm(demo, 1, 4)))
    block = ReservationState(
        reservation_type="capacity-block", state="scheduled", instance_type="trn2.48xlarge",
        availability_zone="us-east-2c", availability_zone_id="use2-az3", total_instances=4, available_instances=4,
        placement_group=None, start=NOW + dt.timedelta(days=1), end=NOW + dt.timedelta(days=8))
    [ok] = check_reservations(plan, {CR: block}, NOW)
    assert ok.status == "ok" and "(4 always running)" in ok.needed
    [short] = check_reservations(plan, {CR: replace(block, total_instances=3)}, NOW)
    assert short.status == "blocker" and "min_count to at most 3 (the 4 warm nodes alone do not fit)" in short.fix


def test_the_quota_check_names_the_warm_nodes(tmp_path, demo):
    plan = load_plan(dump(tmp_path, warm(demo, 2, 2)))
    checks = [c for c in check_quotas(plan, dict.fromkeys(
        ("L-1216C47A", "L-2C3B7624", "L-417A185B"), QuotaValue(1000, False))) if "L-417A185B" in c.name]
    assert checks and "gpu/h100 2 x p5.48xlarge (2 always running)" in checks[0].needed
