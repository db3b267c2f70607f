"""plan --against into and out of an existing network (issue 24 item 3): the network stack created or deleted, the
file system replaced (its subnet and groups), the racks updated, never a 'network: update'."""

from __future__ import annotations

import yaml

from rackform.pipeline import load_plan
from rackform.plan.diff import diff_plans
from tests.conftest import ROOT, dump

EXISTING = ROOT / "examples" / "existing-network.yaml"


def created(tmp_path):
    spec = yaml.safe_load(EXISTING.read_text())
    spec["network"] = {"vpc_cidr": "10.40.0.0/16"}
    return load_plan(dump(tmp_path, spec))


def actions(old, new) -> dict[str, tuple[str, list[str]]]:
    return {s.stack: (s.action, s.notes) for s in diff_plans(old, new).stacks}


def test_moving_into_an_existing_network(tmp_path):
    got = actions(created(tmp_path), load_plan(EXISTING))
    assert got["corp-network"][0] == "delete" and "delete that file system first" in got["corp-network"][1][0]
    assert got["corp-storage"][0] == "replace"
    assert {got[r][0] for r in ("corp-rack-gpu", "corp-rack-graviton")} == {"update"}


def test_moving_out_of_an_existing_network(tmp_path):
    got = actions(load_plan(EXISTING), created(tmp_path))
    assert got["corp-network"] == ("create", ["a VPC of rackform's, in place of the existing network"])
    assert got["corp-storage"][0] == "replace"


def test_other_groups_in_the_same_network_replace_the_file_system(tmp_path):
    spec = yaml.safe_load(EXISTING.read_text())
    spec["network"]["security_group_ids"] = ["sg-0a1b2c3d4e5f60719"]
    got = actions(load_plan(EXISTING), load_plan(dump(tmp_path, spec)))
    assert "corp-network" not in got and got["corp-storage"][0] == "replace"
    assert got["corp-rack-gpu"][0] == "update"


def test_the_same_existing_network_changes_nothing(tmp_path):
    assert {a for a, _ in actions(load_plan(EXISTING), load_plan(EXISTING)).values()} == {"unchanged"}
