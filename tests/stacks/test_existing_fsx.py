"""An existing FSx for Lustre file system (issue 24 item 2, file_system_id): mounted, not created, in the existing
network it lives in; planned and priced at 0 as existing; read by preflight (DescribeFileSystems)."""

from __future__ import annotations

import json

import boto3
import pytest
import yaml
from moto import mock_aws

from rackform.pipeline import load_plan
from rackform.plan import cost
from rackform.preflight.checks import check_existing_file_system
from rackform.preflight.fetch import fetch_file_system
from rackform.preflight.state import ApiError, FileSystemState
from rackform.reference.prices import load_prices
from rackform.render.plan import render_plan
from rackform.spec.models import parse_spec
from rackform.validate import validate_spec
from tests.conftest import ROOT, dump, synth

FS = "fs-0123456789abcdef0"
VPC = "vpc-0a1b2c3d4e5f60718"


def existing_fsx_spec() -> dict:
    spec = yaml.safe_load((ROOT / "examples" / "existing-network.yaml").read_text())
    spec["storage"]["fsx_lustre"] = {"file_system_id": FS, "mount_name": "abcdefgh", "storage_capacity_gib": 2400,
                                     "per_unit_storage_throughput": 125}
    return spec


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return load_plan(dump(tmp_path_factory.mktemp("fsx"), existing_fsx_spec()))


@pytest.mark.parametrize("edit,path,says", [
    ({"mount_name": None}, "storage.fsx_lustre.mount_name", "needs its mount name"),
    ({"mount_name": "much-too-long"}, "storage.fsx_lustre.mount_name", "is not a mount name"),
    ({"file_system_id": "fs-XY"}, "storage.fsx_lustre.file_system_id", "is not a file system id"),
    ({"data_compression": "LZ4"}, "storage.fsx_lustre.data_compression", "a setting of a file system rackform"),
    ({"data_repository_path": "s3://b/p"}, "storage.fsx_lustre.data_repository_path", "a setting of a file"),
])
def test_an_existing_file_system_is_named_not_configured(catalog, edit, path, says):
    spec = existing_fsx_spec()
    spec["storage"]["fsx_lustre"].update(edit)
    spec["storage"]["fsx_lustre"] = {k: v for k, v in spec["storage"]["fsx_lustre"].items() if v is not None}
    found = [(p.path, p.message) for p in validate_spec(parse_spec(spec), catalog) if p.rule == "fsx-existing"]
    assert [p for p, m in found if says in m] == [path], found


def test_an_existing_file_system_needs_the_existing_network_it_lives_in(catalog):
    spec = existing_fsx_spec()
    spec["network"] = {"vpc_cidr": "10.40.0.0/16"}
    found = [p.message for p in validate_spec(parse_spec(spec), catalog) if p.rule == "fsx-existing"]
    assert len(found) == 1 and "set network.vpc_id" in found[0]
    assert [p for p in validate_spec(parse_spec(existing_fsx_spec()), catalog) if p.level == "error"] == []


def test_plan_and_cost_say_it_is_existing_and_price_it_at_zero(plan):
    assert f"storage  existing FSx for Lustre {FS} (mount name abcdefgh; stated PERSISTENT_2 2,400 GiB" \
        in render_plan(plan)
    assert plan.storage.fsx_ips == 0  # its addresses are taken already
    [line] = [ln for ln in cost.cost_plan(plan, load_prices()).lines if ln.category == "storage"]
    assert (line.name, line.usd_per_hour) == (f"FSx for Lustre {FS} (existing)", 0.0)
    assert "billed to its owner" in line.source


def test_it_is_mounted_not_created(plan, tmp_path):
    s = synth(plan, tmp_path)
    resources = [r for t in s.raw.values() for r in t["Resources"].values()]
    assert not [r for r in resources if r["Type"].startswith("AWS::FSx::")]
    published = {r["Properties"]["Name"]: r["Properties"]["Value"] for r in resources
                 if r["Type"] == "AWS::SSM::Parameter"}
    assert published["/rackform/corp/storage/lustre-mount-name"] == "abcdefgh"
    dns = json.dumps(published["/rackform/corp/storage/lustre-dns-name"])
    assert FS in dns and "AWS::Region" in dns and "AWS::URLSuffix" in dns


FOUND = FileSystemState(file_system_type="LUSTRE", lifecycle="AVAILABLE", vpc_id=VPC, storage_capacity_gib=2400,
                        deployment_type="PERSISTENT_2", per_unit_storage_throughput=125, mount_name="abcdefgh")


@pytest.mark.parametrize("found,status,says", [
    (FOUND, "ok", "LUSTRE PERSISTENT_2 2,400 GiB, AVAILABLE"),
    (FileSystemState("LUSTRE", "AVAILABLE", "vpc-00000000", 2400, "PERSISTENT_2", 125, "abcdefgh"), "blocker",
     "in vpc-00000000"),
    (FileSystemState("LUSTRE", "AVAILABLE", VPC, 2400, "PERSISTENT_2", 125, "zzzzzzzz"), "blocker",
     "mount name zzzzzzzz"),
    (FileSystemState("LUSTRE", "AVAILABLE", VPC, 4800, "PERSISTENT_2", 250, "abcdefgh"), "warning",
     "storage_capacity_gib 2400 (it has 4800)"),
    (None, "blocker", f"no file system {FS}"),
    (ApiError("fsx:DescribeFileSystems", "denied", denied=True), "unknown", "cannot read"),
])
def test_preflight_compares_it_with_describe_file_systems(plan, found, status, says):
    checks = check_existing_file_system(plan, found)
    assert any(c.status == status and says in c.found for c in checks), checks


@mock_aws
def test_fetch_reads_describe_file_systems():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    fsx = boto3.client("fsx", region_name="us-east-1")
    made = fsx.create_file_system(FileSystemType="LUSTRE", StorageCapacity=1200, SubnetIds=[subnet],
                                  LustreConfiguration={"DeploymentType": "PERSISTENT_2",
                                                       "PerUnitStorageThroughput": 125})["FileSystem"]
    found = fetch_file_system(fsx, made["FileSystemId"])
    assert isinstance(found, FileSystemState)
    assert (found.file_system_type, found.storage_capacity_gib) == ("LUSTRE", 1200)
    assert fetch_file_system(fsx, "fs-00000000000000000") is None
