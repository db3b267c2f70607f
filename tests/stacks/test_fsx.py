"""FSx for Lustre storage types: PERSISTENT_1 HDD (12 and 40 MB/s/TiB, its own capacity steps, a drive cache) next
to SSD, through validation, cost and the construct.

AWS's rules (CreateFileSystem, https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html): HDD
only with PERSISTENT_1; throughput 12 or 40 MB/s/TiB; capacity in multiples of 6,000 GiB at 12 and 1,800 GiB at 40;
DriveCacheType (READ or NONE) required with HDD.
"""

from __future__ import annotations

import pytest

from rackform.plan import cost
from rackform.render.plan import render_plan
from rackform.jobs.jobdefs import job_definitions
from rackform.jobs.workload_jobs import job_definition_request
from rackform.plan.models import build_plan
from rackform.reference.prices import load_prices
from rackform.spec.models import parse_spec
from rackform.validate import validate_spec
from rackform.pipeline import parse_workload
from workloads.benchmarks import BENCHMARKS
from tests.stacks.conftest import lone_lustre
from workloads.run import node_context

HDD = {"deployment_type": "PERSISTENT_1", "storage_type": "HDD", "per_unit_storage_throughput": 12,
       "storage_capacity_gib": 6000, "drive_cache_type": "READ"}


def fsx_problems(demo, catalog, **fsx):
    demo["storage"]["fsx_lustre"] = {**HDD, **fsx}
    return [p for p in validate_spec(parse_spec(demo), catalog) if p.path.startswith("storage.")]


@pytest.mark.parametrize("fsx", [
    {},  # 6,000 GiB at 12
    {"storage_capacity_gib": 18000, "drive_cache_type": "NONE"},
    {"per_unit_storage_throughput": 40, "storage_capacity_gib": 1800},
    {"per_unit_storage_throughput": 40, "storage_capacity_gib": 5400},
])
def test_hdd_sizes_aws_allows(demo, catalog, fsx):
    assert fsx_problems(demo, catalog, **fsx) == []


@pytest.mark.parametrize("throughput,gib,allowed,next_valid", [
    (12, 1200, "a multiple of 6000", 6000),  # an SSD size is not an HDD size
    (12, 7200, "a multiple of 6000", 12000),
    (40, 2400, "a multiple of 1800", 3600),
    (40, 1000, "a multiple of 1800", 1800),
])
def test_hdd_capacity_steps_follow_the_throughput_tier(demo, catalog, throughput, gib, allowed, next_valid):
    [p] = fsx_problems(demo, catalog, per_unit_storage_throughput=throughput, storage_capacity_gib=gib)
    assert (p.rule, p.path) == ("fsx-capacity", "storage.fsx_lustre.storage_capacity_gib")
    assert p.message == (f"{gib} GiB is not a size PERSISTENT_1 HDD at {throughput} MB/s/TiB offers: use {allowed} "
                         f"(the next valid size is {next_valid})")


def test_hdd_throughput_is_12_or_40(demo, catalog):
    [p] = fsx_problems(demo, catalog, per_unit_storage_throughput=50)
    assert (p.rule, p.message) == ("fsx-throughput", "50 MB/s/TiB is not offered for PERSISTENT_1 HDD: choose one "
                                                     "of 12, 40")


def test_ssd_tiers_are_not_hdd_tiers(demo, catalog):
    [p] = fsx_problems(demo, catalog, storage_type="SSD", drive_cache_type=None, storage_capacity_gib=2400)
    assert p.rule == "fsx-throughput" and "PERSISTENT_1 SSD: choose one of 50, 100, 200" in p.message


@pytest.mark.parametrize("deployment", ["PERSISTENT_2", "SCRATCH_2"])
def test_hdd_only_with_persistent_1(demo, catalog, deployment):
    [p] = fsx_problems(demo, catalog, deployment_type=deployment)
    assert (p.rule, p.path) == ("fsx-storage-type", "storage.fsx_lustre.storage_type")
    assert f"only with deployment_type PERSISTENT_1, not {deployment}" in p.message


def test_hdd_needs_a_drive_cache_type(demo, catalog):
    [p] = fsx_problems(demo, catalog, drive_cache_type=None)
    assert (p.rule, p.path) == ("fsx-storage-type", "storage.fsx_lustre.drive_cache_type")
    assert "READ" in p.message and "NONE" in p.message


def test_drive_cache_is_for_hdd_only(demo, catalog):
    demo["storage"]["fsx_lustre"]["drive_cache_type"] = "READ"  # the example's PERSISTENT_2 SSD
    [p] = [p for p in validate_spec(parse_spec(demo), catalog) if p.rule == "fsx-storage-type"]
    assert p.path == "storage.fsx_lustre.drive_cache_type" and "HDD storage only" in p.message


def test_ssd_stays_the_default(demo, catalog):
    fsx = build_plan(parse_spec(demo), catalog).storage.fsx_lustre
    assert fsx.storage_type == "SSD" and fsx.drive_cache_type is None


def test_hdd_cost_is_unknown_never_zero(demo, catalog):
    demo["storage"]["fsx_lustre"] = HDD
    report = cost.cost_plan(build_plan(parse_spec(demo), catalog), load_prices())
    [line] = [ln for ln in report.lines if ln.category == "storage"]
    assert line.usd_per_hour is None
    assert line.name == "FSx for Lustre PERSISTENT_1 HDD (drive cache READ) 6,000 GiB, 12 MB/s/TiB"


def _lustre(**kwargs) -> dict:
    return lone_lustre("AWS::FSx::FileSystem", storage_capacity_gib=6000, **kwargs)


def test_construct_writes_storage_type_and_drive_cache_for_hdd_only():
    hdd = _lustre(deployment_type="PERSISTENT_1", per_unit_storage_throughput_mbps_per_tib=12, storage_type="HDD",
                  drive_cache_type="READ")
    assert hdd["StorageType"] == "HDD"
    assert hdd["LustreConfiguration"] == {"DeploymentType": "PERSISTENT_1", "PerUnitStorageThroughput": 12,
                                          "DriveCacheType": "READ"}
    ssd = _lustre(per_unit_storage_throughput_mbps_per_tib=125)
    assert "StorageType" not in ssd and "DriveCacheType" not in ssd["LustreConfiguration"]


def _export_events(**kwargs) -> list[str]:
    dra = lone_lustre("AWS::FSx::DataRepositoryAssociation", storage_capacity_gib=1200,
                      per_unit_storage_throughput_mbps_per_tib=125, data_repository_path="s3://dataset/train", **kwargs)
    return dra["S3"]["AutoExportPolicy"]["Events"]


def test_deleting_a_file_never_deletes_the_dataset_unless_asked():
    # A job that runs `rm -rf /fsx/data/*` must leave the objects in the user's bucket: DELETED is opt-in.
    assert _export_events() == ["NEW", "CHANGED"]
    assert _export_events(export_deletions=True) == ["NEW", "CHANGED", "DELETED"]


def test_spec_defaults_to_keeping_deletions_and_refuses_them_without_a_repository(demo, catalog):
    assert parse_spec(demo).storage.fsx_lustre.export_deletions is False
    demo["storage"]["fsx_lustre"]["export_deletions"] = True
    assert [p for p in validate_spec(parse_spec(demo), catalog) if p.path.startswith("storage.")] == []
    del demo["storage"]["fsx_lustre"]["data_repository_path"]
    [p] = [p for p in validate_spec(parse_spec(demo), catalog) if p.path.startswith("storage.")]
    assert (p.rule, p.path) == ("fsx-export-deletions", "storage.fsx_lustre.export_deletions")
    assert "set data_repository_path or remove export_deletions" in p.message


# --- what jobs may do to the file system ---------------------------------------------------------------------------

def _mounts(container: dict) -> dict[str, bool]:
    """containerPath -> readOnly, for the FSx volumes of a job definition's container."""
    volumes = {v["name"]: v["host"]["sourcePath"] for v in container["volumes"]}
    return {m["containerPath"]: m["readOnly"] for m in container["mountPoints"]
            if volumes[m["sourceVolume"]].startswith("/fsx")}


def _group_and_plan(demo, catalog):
    plan = build_plan(parse_spec(demo), catalog)
    return plan, next(g for g in plan.node_groups() if g.tier == "gpu")


def test_benchmarks_mount_fsx_read_only_and_write_their_scratch_directory_only(demo, catalog):
    plan, group = _group_and_plan(demo, catalog)
    # the directory the storage benchmark writes on the file system (workloads.run)...
    env = {"RACKFORM_SPEC": "s", "RACKFORM_BUCKET": "b", "RACKFORM_RACK": "r", "RACKFORM_NODE_GROUP": "g",
           "RACKFORM_TIER": "gpu", "RACKFORM_INSTANCE_TYPE": "p5.48xlarge", "RACKFORM_FSX_MOUNT": "/fsx"}
    on_fsx = next(b for b in BENCHMARKS.values() if b.on_fsx)
    scratch = node_context(env, "gpu", on_fsx).work_dir
    assert scratch.startswith("/fsx/") and not scratch.startswith("/fsx/data")
    # ...is the only writable part of it
    for jd in job_definitions(plan.name, group, image="i", bucket="b", job_role_arn="r", fsx_mount="/fsx"):
        container = jd.get("containerProperties") or jd["nodeProperties"]["nodeRangeProperties"][0]["container"]
        assert _mounts(container) == {"/fsx": True, scratch: False}


@pytest.mark.parametrize("fsx_write,read_only", [(None, True), (False, True), (True, False)])
def test_workloads_mount_fsx_read_only_unless_they_ask_to_write(demo, catalog, fsx_write, read_only):
    plan, group = _group_and_plan(demo, catalog)
    data = {"name": "train", "class": "training", "tiers": {"gpu": {"image": "img", "command": ["python", "t.py"]}}}
    if fsx_write is not None:
        data["fsx_write"] = fsx_write
    request = job_definition_request(plan, group, parse_workload(data), bucket="b", job_role_arn="r",
                                     fsx_mount="/fsx")
    assert _mounts(request["containerProperties"]) == {"/fsx": read_only}


def test_plan_states_how_jobs_mount_fsx_and_what_is_exported(demo, catalog):
    text = render_plan(build_plan(parse_spec(demo), catalog))
    assert "fsx      jobs mount /fsx read-only: benchmarks write /fsx/rackform-scratch only, a workload all of it " \
           "with fsx_write: true" in text
    assert "fsx      /fsx/data -> s3://my-datasets/train: new and changed files exported, deletions never " \
           "(export_deletions: false)" in text
    demo["storage"]["fsx_lustre"]["export_deletions"] = True
    assert "deletions too (export_deletions: true)" in render_plan(build_plan(parse_spec(demo), catalog))
