"""`plan NEW --against OLD` (rackform.plan.diff): per change, what CloudFormation does to each stack, whether the
deploy can succeed at all, and the exact steps the user runs, in order."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from rackform.reference.catalog import load_catalog
from rackform.plan.models import Plan, build_plan
from rackform.plan.diff import PlanDiff, diff_plans
from rackform.render.plandiff import render_diff
from rackform.spec.problems import errors
from rackform.spec.models import Spec
from rackform.validate import validate_spec

SPEC: dict[str, Any] = {
    "name": "pd",
    "region": "us-east-2",
    "availability_zone": "use2-az1",
    "network": {"vpc_cidr": "10.40.0.0/16"},
    "storage": {"fsx_lustre": {"storage_capacity_gib": 2400, "per_unit_storage_throughput": 250,
                               "data_repository_path": "s3://datasets/train"}},
    "racks": [{"name": "cpu", "node_groups": [{"name": "head", "instance_type": "m7g.large", "count": 1}]},
              {"name": "net", "node_groups": [{"name": "efa", "instance_type": "c7gn.16xlarge", "count": 2}]}],
}
RACKS = {"pd-rack-cpu", "pd-rack-net"}


def plan(data: dict[str, Any]) -> Plan:
    spec = Spec.model_validate(data)
    catalog = load_catalog()
    assert not errors(validate_spec(spec, catalog))
    return build_plan(spec, catalog)


def diff(**edits: Any) -> PlanDiff:
    """The diff from SPEC to SPEC with `edits` applied ('storage.fsx_lustre.x' style keys)."""
    new = copy.deepcopy(SPEC)
    for path, value in edits.items():
        *parents, leaf = path.split(".")
        node = new
        for p in parents:
            node = node[p]
        node[leaf] = value
    return diff_plans(plan(SPEC), plan(new))


def actions(d: PlanDiff) -> dict[str, str]:
    return {s.stack: s.action for s in d.stacks if s.action != "unchanged"}


def notes(d: PlanDiff, stack: str) -> str:
    return " ".join(next(s.notes for s in d.stacks if s.stack == stack))


def deploy_order(d: PlanDiff) -> list[str]:
    (step,) = [s for s in d.steps if s.startswith("cdk deploy --all")]
    return step.split("CDK deploys ")[1].split(" in that order")[0].split(", ")


def test_a_new_vpc_deploys_in_order_and_says_what_is_left_behind():
    d = diff(**{"network.vpc_cidr": "10.50.0.0/16"})
    assert d.deployable
    assert actions(d) == {"pd-network": "replace", "pd-storage": "replace", **{r: "update" for r in RACKS}}
    assert deploy_order(d) == ["pd-network", "pd-storage", "pd-rack-cpu", "pd-rack-net"]
    # Before: nothing may hold the old subnet; after: the retained file system and what it kept in use, by hand.
    assert d.steps[0].startswith("wait until no job runs")
    assert "aws fsx delete-file-system" in d.steps[2]
    assert "delete-subnet" in d.steps[3] and "delete-vpc" in d.steps[3]
    assert "DELETE_FAILED" in notes(d, "pd-network") and "/rackform/pd/network/*" in notes(d, "pd-network")
    assert "SubnetIds" in notes(d, "pd-storage")


def test_a_new_vpc_without_fsx_leaves_nothing_behind():
    old = {**SPEC, "storage": {}}
    d = diff_plans(plan(old), plan({**old, "network": {"vpc_cidr": "10.50.0.0/16"}}))
    assert actions(d) == {"pd-network": "replace", **{r: "update" for r in RACKS}}
    assert "DELETE_FAILED" not in notes(d, "pd-network")
    assert len(d.steps) == 2 and d.steps[0].startswith("wait until") and d.steps[1].startswith("cdk deploy")


def test_a_new_vpc_with_a_first_file_system_creates_it_there():
    old = {**SPEC, "storage": {}}
    d = diff_plans(plan(old), plan({**SPEC, "network": {"vpc_cidr": "10.50.0.0/16"}}))
    assert actions(d) == {"pd-network": "replace", "pd-storage": "update", **{r: "update" for r in RACKS}}
    assert notes(d, "pd-storage").startswith("FSx file system created") and "replaced" not in notes(d, "pd-storage")
    assert not any("old file system" in step for step in d.steps)


@pytest.mark.parametrize("az", ["use2-az2", "us-east-2b"])
def test_a_new_az_in_the_same_vpc_is_refused_not_called_a_replacement(az):
    # New subnets would take the old ones' CIDR blocks in the same VPC before the old ones are deleted.
    d = diff(availability_zone=az)
    assert not d.deployable
    assert actions(d) == {"pd-network": "fails"}
    assert d.steps == ("not deployable as written: a new availability zone needs a new vpc_cidr too (pd-network)",)
    assert "CreateSubnet" in notes(d, "pd-network")
    assert "refused:\n  1. not deployable" in render_diff(d, "old.yaml", "new.yaml")
    both = diff(availability_zone=az, **{"network.vpc_cidr": "10.50.0.0/16"})
    assert both.deployable and actions(both)["pd-network"] == "replace"


def test_a_new_file_system_reaches_the_racks_at_their_deploy():
    d = diff(**{"storage.fsx_lustre.deployment_type": "PERSISTENT_1",
                "storage.fsx_lustre.per_unit_storage_throughput": 200})
    assert d.deployable
    # The racks' templates do not change, but their launch templates take the new file system's DNS and mount
    # names from the SSM parameters at their deploy.
    assert actions(d) == {"pd-storage": "replace", **{r: "update" for r in RACKS}}
    assert deploy_order(d) == ["pd-storage", "pd-rack-cpu", "pd-rack-net"]
    assert "the new file system" in notes(d, "pd-rack-cpu")
    assert d.steps[-1].startswith("copy what you still need from the old file system")
    assert "data repository association replaced" in notes(d, "pd-storage")


def test_a_smaller_file_system_is_refused_and_a_bigger_one_grows_in_place():
    smaller = diff(**{"storage.fsx_lustre.storage_capacity_gib": 1200})
    assert not smaller.deployable and actions(smaller) == {"pd-storage": "fails"}
    bigger = diff(**{"storage.fsx_lustre.storage_capacity_gib": 4800})
    assert bigger.deployable and actions(bigger) == {"pd-storage": "update"}
    assert "grows in place" in notes(bigger, "pd-storage")


def test_a_new_mount_path_changes_the_racks_only():
    d = diff(**{"storage.fsx_lustre.mount_path": "/mnt/fsx"})
    assert actions(d) == {r: "update" for r in RACKS}
    assert "mount path" in notes(d, "pd-rack-net")


def test_adding_or_removing_the_file_system_changes_the_racks_user_data():
    added = diff_plans(plan({**SPEC, "storage": {}}), plan(SPEC))
    assert actions(added) == {"pd-storage": "update", **{r: "update" for r in RACKS}}
    removed = diff(storage={})
    assert actions(removed) == {"pd-storage": "update", **{r: "update" for r in RACKS}}
    assert "retained" in notes(removed, "pd-storage")


def test_a_removed_rack_is_deleted_by_hand_since_cdk_deploy_leaves_it():
    d = diff(racks=SPEC["racks"][:1])
    assert actions(d) == {"pd-rack-net": "delete"}
    assert d.steps == ("aws cloudformation delete-stack --stack-name pd-rack-net: cdk deploy leaves a stack that left "
                       "the spec in place",)


def test_the_rendered_diff_numbers_the_steps_and_the_json_carries_them():
    d = diff(**{"racks": [{**SPEC["racks"][0], "node_groups": [{**SPEC["racks"][0]["node_groups"][0], "count": 2}]},
                          SPEC["racks"][1]]})
    text = render_diff(d, "old.yaml", "new.yaml")
    assert text.endswith("steps:\n  1. " + d.steps[0])
    assert d.steps[0].startswith("cdk deploy --all -c spec=<new spec>: CDK deploys pd-rack-cpu in that order")
    assert d.to_dict()["steps"] == list(d.steps) and d.to_dict()["deployable"] is True


def test_a_renamed_cluster_is_new_stacks_and_the_old_ones_destroyed_with_the_old_spec():
    d = diff(name="pe")
    assert d.steps[0].startswith("cdk deploy --all") and "cdk destroy --all -c spec=<old spec>" in d.steps[1]
    assert "update-termination-protection" in d.steps[1] and "pd-storage" in d.steps[1]


def test_plan_against_exits_1_when_cloudformation_would_refuse_the_deploy(tmp_path, capsys):
    from rackform.cli import main

    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(SPEC))
    new.write_text(json.dumps({**SPEC, "availability_zone": "use2-az2"}))
    assert main(["plan", str(new), "--against", str(old), "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["deployable"] is False
    assert err.strip() == f"rackform plan: {new} cannot be deployed over {old} as written (see 'refused')"
    assert main(["plan", str(new), "--against", str(new)]) == 0
