"""The capacity-kind table (rackform/capacity.py): one row per kind the spec accepts, the AWS facts each row holds,
and that the rules read the row rather than the kind's name (change a row and what rackform says changes)."""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

import pytest

from rackform import capacity
from rackform.capacity import KINDS, CapacityKind, of, of_reservation
from rackform.plan.models import CapacityPlan, build_plan
from rackform.spec.models import Capacity as SpecCapacity
from rackform.spec.models import parse_spec
from rackform.validate import validate_spec

GPU = 2  # racks[2]: the example's p5.48xlarge x 2 (h100), On-Demand, EFA


def test_every_kind_the_spec_accepts_has_one_row():
    kinds = set(get_args(CapacityKind))
    assert set(KINDS) == kinds
    assert all(row.kind == kind for kind, row in KINDS.items())
    # The spec and the plan take their Literal from the table, so a new row is a new accepted kind.
    assert set(get_args(SpecCapacity.model_fields["type"].annotation)) == kinds
    assert set(get_args(CapacityPlan.model_fields["type"].annotation)) == kinds


def test_every_row_cites_aws():
    for row in KINDS.values():
        assert row.sources and all(s.startswith("https://docs.aws.amazon.com/") for s in row.sources), row.kind


def test_the_rows_say_what_aws_documents():
    # Multi-node parallel jobs aren't supported on compute environments that use Spot Instances (mnp-ce.html).
    assert [k for k, c in KINDS.items() if not c.multi_node] == ["spot"]
    assert (of("spot").batch_type, of("on-demand").batch_type) == ("SPOT", "EC2")
    # Capacity Blocks launch with market type capacity-block; EC2 ends their instances 30 minutes before the block.
    assert of("capacity-block").market == "capacity-block" and of("capacity-block").termination_lead is not None
    assert [k for k, c in KINDS.items() if c.needs_reservation_id] == ["reservation", "capacity-block"]
    assert {k: c.placement for k, c in KINDS.items()} == {
        "on-demand": "cluster-group", "spot": "cluster-group", "reservation": "reservation", "capacity-block": "aws"}


@pytest.mark.parametrize("reservation_type,kind", [
    ("capacity-block", "capacity-block"), ("default", "reservation"), (None, "reservation")])
def test_a_described_reservation_maps_to_its_kind(reservation_type, kind):
    assert of_reservation(reservation_type).kind == kind


def _problems(data, catalog, rule):
    return [p for p in validate_spec(parse_spec(data), catalog) if p.rule == rule]


def test_a_kind_whose_row_forbids_multi_node_refuses_more_than_one_node(demo, catalog, monkeypatch):
    i = GPU
    assert _problems(demo, catalog, "spot-multi-node") == []  # On-Demand allows multi-node jobs
    monkeypatch.setitem(capacity.KINDS, "on-demand", replace(of("on-demand"), multi_node=False))
    found = _problems(demo, catalog, "spot-multi-node")  # every On-Demand group of more than one node
    [p] = [p for p in found if p.path == f"racks[{i}].node_groups[0].capacity.type"]
    assert "cannot run on On-Demand" in p.message and len(found) == 2  # and graviton/cpu, c7gn x 2
    [g] = [g for g in build_plan(parse_spec(demo), catalog).node_groups() if g.name == "h100"]
    assert g.count == 2 and g.max_job_nodes == 1


def test_a_kind_whose_row_allows_multi_node_lets_spot_span_nodes(demo, catalog, monkeypatch):
    i = GPU
    demo["racks"][i]["node_groups"][0]["capacity"] = {"type": "spot"}
    assert len(_problems(demo, catalog, "spot-multi-node")) == 1
    monkeypatch.setitem(capacity.KINDS, "spot", replace(of("spot"), multi_node=True))
    assert _problems(demo, catalog, "spot-multi-node") == []


def test_the_row_says_which_kinds_need_a_reservation_id(demo, catalog, monkeypatch):
    i = GPU
    monkeypatch.setitem(capacity.KINDS, "on-demand", replace(of("on-demand"), needs_reservation_id=True))
    [p] = [p for p in _problems(demo, catalog, "reservation-id")
           if p.path == f"racks[{i}].node_groups[0].capacity.reservation_id"]
    assert "capacity type 'on-demand' needs reservation_id" in p.message


def test_the_row_says_which_usage_class_the_type_must_support(demo, catalog, monkeypatch):
    assert _problems(demo, catalog, "usage-class-supported") == []
    monkeypatch.setitem(capacity.KINDS, "on-demand", replace(of("on-demand"), usage_class="no-such-class"))
    found = _problems(demo, catalog, "usage-class-supported")
    assert found and all("cannot be bought as no-such-class" in p.message for p in found)


def test_the_row_decides_the_default_placement_group(demo, catalog, monkeypatch):
    def h100():
        return next(g for g in build_plan(parse_spec(demo), catalog).node_groups() if g.name == "h100")

    assert h100().creates_placement_group  # EFA on On-Demand: a new cluster placement group
    monkeypatch.setitem(capacity.KINDS, "on-demand", replace(of("on-demand"), placement="aws"))
    assert not h100().creates_placement_group
