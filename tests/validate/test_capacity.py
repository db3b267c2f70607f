"""Reservations, Capacity Blocks and placement groups: the spec's choice, the plan's default, and what validate warns.

A Capacity Reservation created in a cluster placement group serves only launches into that group; AWS places
Capacity Block instances itself; AWS Batch does not document Capacity Blocks. `rackform preflight` compares the
reservation's placement group with the spec (tests/preflight/test_preflight.py).
"""

from __future__ import annotations

import pytest

from rackform.plan.models import build_plan
from rackform.spec.problems import SpecError
from rackform.spec.models import parse_spec
from rackform.validate import validate_spec

CR = "cr-0123456789abcdef0"


def groups(demo):
    """The example's node groups by name: head (c8g, no EFA), cpu (c7gn, EFA), workers (trn2 Capacity Block), h100."""
    return {g["name"]: g for r in demo["racks"] for g in r["node_groups"]}


def plan_groups(demo, catalog):
    return {g.name: g for g in build_plan(parse_spec(demo), catalog).node_groups()}


def by_rule(demo, catalog, rule):
    return [p for p in validate_spec(parse_spec(demo), catalog) if p.rule == rule]


# --- the plan's default and the spec's choice --------------------------------------------------------------------

def test_default_creates_a_group_only_for_efa_on_demand_and_spot(demo, catalog):
    groups(demo)["cpu"]["capacity"] = {"type": "spot"}
    g = plan_groups(demo, catalog)
    assert (g["h100"].placement_group, g["h100"].creates_placement_group) == ("trn2-gpu-h100-cluster", True)
    assert (g["cpu"].placement_group, g["cpu"].creates_placement_group) == ("trn2-graviton-cpu-cluster", True)
    assert (g["head"].placement_group, g["head"].creates_placement_group) == (None, False)  # no EFA
    assert (g["workers"].placement_group, g["workers"].creates_placement_group) == (None, False)  # Capacity Block


def test_reservation_groups_get_none_by_default(demo, catalog):
    groups(demo)["h100"]["capacity"] = {"type": "reservation", "reservation_id": CR}
    h100 = plan_groups(demo, catalog)["h100"]
    assert (h100.placement_group, h100.creates_placement_group) == (None, False)


def test_an_existing_group_is_used_by_name_and_never_created(demo, catalog):
    groups(demo)["h100"].update(capacity={"type": "reservation", "reservation_id": CR},
                                placement_group={"name": "my-odcr-pg"})
    h100 = plan_groups(demo, catalog)["h100"]
    assert (h100.placement_group, h100.creates_placement_group) == ("my-odcr-pg", False)


@pytest.mark.parametrize("group,choice,expected", [
    ("h100", {"create": False}, (None, False)),
    ("head", {"create": True}, ("trn2-graviton-head-cluster", True)),
    ("h100", {}, ("trn2-gpu-h100-cluster", True)),  # an empty mapping is the default
])
def test_create_overrides_the_default(demo, catalog, group, choice, expected):
    groups(demo)[group]["placement_group"] = choice
    g = plan_groups(demo, catalog)[group]
    assert (g.placement_group, g.creates_placement_group) == expected


def test_placement_group_is_a_mapping_with_known_keys(demo):
    groups(demo)["h100"]["placement_group"] = {"nmae": "x"}
    with pytest.raises(SpecError) as e:
        parse_spec(demo)
    [p] = e.value.problems
    assert p.path == "racks[2].node_groups[0].placement_group.nmae" and "did you mean 'name'" in p.message


# --- validate ------------------------------------------------------------------------------------------------------

def test_name_and_create_together_is_an_error(demo, catalog):
    groups(demo)["h100"]["placement_group"] = {"name": "pg", "create": True}
    [p] = by_rule(demo, catalog, "placement-group")
    assert p.level == "error" and p.path == "racks[2].node_groups[0].placement_group"
    assert "either name" in p.message and "'pg'" in p.message


@pytest.mark.parametrize("name", ["", "x" * 256, "grüppe", "tab\there"])
def test_placement_group_names_are_1_to_255_printable_ascii(demo, catalog, name):
    groups(demo)["h100"]["placement_group"] = {"name": name}
    [p] = by_rule(demo, catalog, "placement-group")
    assert p.path == "racks[2].node_groups[0].placement_group.name" and "1 to 255 printable ASCII" in p.message


def test_capacity_block_groups_warn_that_batch_does_not_document_them(demo, catalog):
    [p] = by_rule(demo, catalog, "capacity-block-batch")
    assert p.level == "warning" and p.path == "racks[1].node_groups[0].capacity.type"
    assert "instance market options among the settings Batch ignores" in p.message
    assert "unconfirmed" in p.message
    groups(demo)["workers"]["capacity"]["type"] = "reservation"
    assert by_rule(demo, catalog, "capacity-block-batch") == []


@pytest.mark.parametrize("choice,what", [({"name": "pg"}, "placement group 'pg'"),
                                         ({"create": True}, "a new placement group")])
def test_a_placement_group_on_a_capacity_block_warns(demo, catalog, choice, what):
    groups(demo)["workers"]["placement_group"] = choice
    [p] = by_rule(demo, catalog, "capacity-block-placement-group")
    assert p.level == "warning" and p.message.startswith(f"{what} on a Capacity Block")


def test_no_placement_group_on_a_capacity_block_is_quiet(demo, catalog):
    groups(demo)["workers"]["placement_group"] = {"create": False}
    assert by_rule(demo, catalog, "capacity-block-placement-group") == []


def test_reservation_with_a_created_group_warns(demo, catalog):
    groups(demo)["h100"].update(capacity={"type": "reservation", "reservation_id": CR},
                                placement_group={"create": True})
    [p] = by_rule(demo, catalog, "reservation-placement-group")
    assert p.level == "warning" and p.path == "racks[2].node_groups[0].placement_group"
    assert p.message.startswith(f"a new placement group cannot use reservation {CR}")
    assert "serves only launches into that group" in p.message


@pytest.mark.parametrize("unset", [None, {}])
def test_multi_node_efa_reservation_without_a_choice_asks_for_one(demo, catalog, unset):
    groups(demo)["h100"]["capacity"] = {"type": "reservation", "reservation_id": CR}
    if unset is not None:
        groups(demo)["h100"]["placement_group"] = unset
    [p] = by_rule(demo, catalog, "reservation-placement-group")
    assert p.message.startswith("2 x p5.48xlarge with EFA and no placement group")
    for choice in ({"name": "my-odcr-pg"}, {"create": False}):  # either explicit choice silences it
        groups(demo)["h100"]["placement_group"] = choice
        assert by_rule(demo, catalog, "reservation-placement-group") == []
