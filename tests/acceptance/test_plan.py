"""The acceptance plan before anything runs: the runner's steps for the group, the cost at the group's price, the
budget gate and what a Spot group cannot prove (rackform/acceptance/plan.py)."""

from __future__ import annotations

import pytest
import yaml

from rackform.acceptance.plan import NO_FABRIC, AcceptancePlan, group_plan, over_budget
from rackform.pipeline import load_plan
from tests.conftest import ROOT, dump
from workloads.accept_plan import NODE_TESTS, max_rounds

SPEC = ROOT / "examples" / "demo.yaml"


def group(tmp_path, capacity: str = "on-demand", count: int = 2):
    spec = yaml.safe_load(SPEC.read_text())
    spec["racks"][0]["node_groups"][1].update(capacity={"type": capacity}, count=count)  # graviton/cpu, c7gn.16xlarge
    return load_plan(str(dump(tmp_path, spec))).rack("graviton").node_groups[1]


def test_a_multi_node_group_runs_every_step_in_one_job_and_pays_every_node_for_the_whole_run(tmp_path):
    g = group(tmp_path, count=8)
    p = group_plan(g, fsx=True, repeats=3, usd_per_node_hour=4.0, price_source="test")
    assert p.multi_node and p.jobs == 1 and p.cannot_prove == ()
    assert [s.test for s in p.steps] == [*NODE_TESTS["graviton"], "fabric", "group-collective"]
    assert next(s for s in p.steps if s.test == "fabric").what.endswith(f"up to {max_rounds(8)} pairwise rounds")
    assert p.wall_seconds == pytest.approx(sum(s.seconds for s in p.steps))
    assert p.cost_usd == pytest.approx(p.wall_seconds / 3600 * 4.0 * 8)


def test_a_spot_group_runs_single_node_jobs_and_says_what_it_cannot_prove(tmp_path):
    p = group_plan(group(tmp_path, capacity="spot", count=4), fsx=True, repeats=3, usd_per_node_hour=None,
                   price_source="no Spot price read")
    assert not p.multi_node and p.jobs == 4
    assert "fabric" not in [s.test for s in p.steps] and "group-collective" not in [s.test for s in p.steps]
    assert p.cannot_prove == (NO_FABRIC.format(label="Spot"),) and p.cost_usd is None


def test_the_budget_gate_refuses_over_budget_and_unpriced_plans(tmp_path):
    priced = group_plan(group(tmp_path), fsx=True, repeats=3, usd_per_node_hour=4.0, price_source="test")
    plan = AcceptancePlan(spec="demo", groups=(priced,))
    assert priced.cost_usd is not None
    assert over_budget(plan, priced.cost_usd) is None
    assert "over --budget" in (over_budget(plan, priced.cost_usd - 0.01) or "")
    unpriced = priced.model_copy(update={"node_group": "other", "cost_usd": None, "usd_per_node_hour": None,
                                         "price_source": "a capacity block is priced per offering"})
    both = AcceptancePlan(spec="demo", groups=(priced, unpriced))
    assert both.known_cost_usd == priced.cost_usd
    why = over_budget(both, 1000) or ""
    assert "cannot confirm --budget 1,000.00 USD: no price for graviton/other (a capacity block" in why
    assert "at least" in (over_budget(both, 0.01) or "")
