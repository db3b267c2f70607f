"""A node group's NVMe instance store as scratch (issue 24 item 4): planned from the type's disks (on by default where
it has them), stated in `plan` for every group (or why there is none), told to the jobs, diffed, and in `cost` a line
saying the instance price already pays for it."""

from __future__ import annotations

import pytest

from rackform.jobs.jobdefs import HOST_WORK_DIR, container_properties
from rackform.pipeline import load_plan
from rackform.plan import cost
from rackform.plan.diff import diff_plans
from rackform.reference.prices import load_prices
from rackform.render.cost import render_cost, report_json
from rackform.render.plan import render_plan
from rackform.spec.models import parse_spec
from tests.conftest import dump
from workloads.contract import CONTAINER_WORK_DIR, JobEnvironment

H100 = ("racks", 2, "node_groups", 0)  # p5.48xlarge: 8 NVMe disks of 3,800 GB


def with_store(demo: dict, **store: object) -> dict:
    demo[H100[0]][H100[1]][H100[2]][H100[3]]["instance_store"] = store
    return demo


def flat(text: str) -> str:
    """Text as one line: `plan` and `cost` fold their prose to the terminal's width."""
    return " ".join(text.split())


def groups(tmp_path, demo):
    return {g.name: g for g in load_plan(dump(tmp_path, demo)).node_groups()}


def test_the_plan_takes_every_nvme_disk_of_the_type_by_default(tmp_path, demo):
    g = groups(tmp_path, demo)
    # p5.48xlarge: 8 x 3,800 GB; trn2.48xlarge: 4 x 1,900 GB; c8g and c7gn: none
    assert (g["h100"].instance_store.disks, g["h100"].instance_store.size_gb) == (8, 30400)
    assert g["h100"].instance_store.mount_path == "/scratch"
    assert (g["workers"].instance_store.disks, g["workers"].instance_store.mount_path) == (4, "/scratch")
    assert (g["head"].instance_store.disks, g["head"].instance_store.mount_path) == (0, None)


def test_a_spec_may_turn_it_off_or_move_it(tmp_path, demo):
    assert groups(tmp_path, with_store(demo, enabled=False))["h100"].instance_store.mount_path is None
    assert groups(tmp_path, with_store(demo, mount_path="/mnt/nvme"))["h100"].instance_store.mount_path == "/mnt/nvme"


@pytest.mark.parametrize("store, line", [
    ({}, "scratch  gpu/h100: RAID0 of 8 NVMe disks, 30,400 GB, XFS at /scratch (jobs' work directory); in the "
         "instance price"),
    ({"enabled": False}, "scratch  gpu/h100: off (instance_store.enabled: false): 8 NVMe disks, 30,400 GB unused"),
])
def test_plan_states_every_groups_scratch_or_why_it_has_none(tmp_path, demo, store, line):
    out = flat(render_plan(load_plan(dump(tmp_path, with_store(demo, **store)))))
    assert flat(line) in out
    assert "scratch graviton/head: none: the type has no NVMe instance store" in out


def test_jobs_work_in_the_instance_store_and_are_told_so(tmp_path, demo):
    g = groups(tmp_path, with_store(demo, mount_path="/mnt/nvme"))
    c = container_properties("trn2", g["h100"], image="i", bucket="b", job_role_arn="r", fsx_mount=None,
                             price_usd_per_hour=None)
    assert {"name": "scratch", "host": {"sourcePath": "/mnt/nvme"}} in c["volumes"]
    assert {"sourceVolume": "scratch", "containerPath": "/mnt/nvme", "readOnly": False} in c["mountPoints"]
    job = JobEnvironment.from_env({e["name"]: e["value"] for e in c["environment"]})
    assert (job.work_dir, job.instance_store, job.instance_store_gb) == ("/mnt/nvme", "/mnt/nvme", 30400)
    # a group without: the work directory on the root volume, as before, and nothing said about a store
    head = container_properties("trn2", g["head"], image="i", bucket="b", job_role_arn="r", fsx_mount=None,
                                price_usd_per_hour=None)
    assert {"name": "scratch", "host": {"sourcePath": HOST_WORK_DIR}} in head["volumes"]
    job = JobEnvironment.from_env({e["name"]: e["value"] for e in head["environment"]})
    assert (job.work_dir, job.instance_store, job.instance_store_gb) == (CONTAINER_WORK_DIR, None, 0)


def test_a_change_is_a_new_launch_template_version_and_job_definition_revision(tmp_path, demo):
    old = load_plan(dump(tmp_path, demo, "old.yaml"))
    new = load_plan(dump(tmp_path, with_store(demo, enabled=False), "new.yaml"))
    [change] = diff_plans(old, new).changes
    assert change.what == "node group gpu/h100" and change.details[0].startswith("instance_store: ")
    notes = [n for s in diff_plans(old, new).stacks for n in s.notes]
    assert any("user data: the scratch volume" in n for n in notes)


def test_cost_says_the_instance_price_pays_for_it(tmp_path, demo):
    plan = load_plan(dump(tmp_path, demo))
    report = cost.cost_plan(plan, load_prices())
    note = ("the NVMe instance store scratch of trn2-train/workers (7,600 GB a node), gpu/h100 (30,400 GB a node): "
            "in the instance price, no charge of its own")
    assert report.included == (note,)
    assert report_json(report)["included"] == [note]
    assert f"included: {note}" in flat(render_cost(report))
    off = load_plan(dump(tmp_path, parse_spec(demo).model_dump(mode="json") | {"racks": [
        {"name": "g", "node_groups": [{"name": "c", "instance_type": "c8g.4xlarge", "count": 1}]}]}))
    assert cost.cost_plan(off, load_prices()).included == ()
