"""FSx for Lustre as real clusters configure it (issue 24 item 2): compression, PERSISTENT_2's metadata
configuration and the Lustre version, from the spec through validation, plan, cost and the construct.

AWS's rules: CreateFileSystemLustreMetadataConfiguration (PERSISTENT_2 only; AUTOMATIC, or 1500, 3000, 6000, 12000
and multiples of 12000 up to 192000 IOPS) and CreateFileSystem's FileSystemTypeVersion (2.10: SCRATCH and
PERSISTENT_1; 2.12: not PERSISTENT_2 with a metadata configuration; 2.15: every type).
"""

from __future__ import annotations

import pytest

from rackform.plan import cost
from rackform.plan.models import build_plan
from rackform.reference.prices import load_prices
from rackform.render.plan import render_plan
from rackform.spec.models import FsxMetadata, load_spec_text, parse_spec
from rackform.spec.problems import SpecError
from rackform.validate import validate_spec
from tests.conftest import EXAMPLE
from tests.stacks.conftest import lone_lustre


def problems(demo, catalog, **fsx) -> list[tuple[str, str, str]]:
    demo["storage"]["fsx_lustre"].update(fsx)
    return [(p.rule, p.path, p.message) for p in validate_spec(parse_spec(demo), catalog)
            if p.path.startswith("storage.")]


@pytest.mark.parametrize("iops", [1500, 3000, 6000, 12000, 24000, 192000])
def test_metadata_iops_aws_offers(demo, catalog, iops):
    assert problems(demo, catalog, metadata={"iops": iops}) == []


@pytest.mark.parametrize("iops", [1000, 9000, 18000, 204000])
def test_metadata_iops_aws_does_not_offer(demo, catalog, iops):
    [(rule, path, message)] = problems(demo, catalog, metadata={"iops": iops})
    assert (rule, path) == ("fsx-metadata", "storage.fsx_lustre.metadata.iops")
    assert message == (f"{iops} metadata IOPS is not offered: use 1500, 3000, 6000, 12000 or a multiple of 12000 "
                       "up to 192000")


@pytest.mark.parametrize("meta,fsx,says", [
    ({"mode": "AUTOMATIC", "iops": 3000}, {}, "not both"),
    ({}, {}, "not neither"),
    ({"mode": "AUTOMATIC"}, {"deployment_type": "SCRATCH_2", "per_unit_storage_throughput": None},
     "PERSISTENT_2 file systems only, not SCRATCH_2"),
])
def test_metadata_is_one_choice_on_persistent_2(demo, catalog, meta, fsx, says):
    found = problems(demo, catalog, metadata=meta, **fsx)
    assert [r for r, _, m in found if says in m] == ["fsx-metadata"]


@pytest.mark.parametrize("fsx,says", [
    ({"file_system_type_version": "2.10"}, "Lustre 2.10 is not offered with PERSISTENT_2"),
    ({"file_system_type_version": "2.12", "metadata": {"mode": "AUTOMATIC"}}, "Lustre 2.12 takes no metadata"),
    ({"file_system_type_version": "2.10", "deployment_type": "PERSISTENT_1", "per_unit_storage_throughput": 50},
     "Lustre 2.10 file systems take no data repository association"),
])
def test_the_lustre_version_must_fit_the_file_system(demo, catalog, fsx, says):
    found = problems(demo, catalog, **fsx)
    assert [(r, p) for r, p, m in found if says in m] == [("fsx-lustre-version",
                                                           "storage.fsx_lustre.file_system_type_version")]


def test_defaults_change_nothing_aws_would_see(demo):
    fsx = parse_spec(demo).storage.fsx_lustre
    assert (fsx.data_compression, fsx.metadata, fsx.file_system_type_version) == ("NONE", None, "2.15")


def _lustre(**kwargs) -> dict:
    return lone_lustre("AWS::FSx::FileSystem", storage_capacity_gib=2400, per_unit_storage_throughput_mbps_per_tib=125,
                       **kwargs)


def test_the_construct_writes_compression_metadata_and_version():
    plain = _lustre()
    assert plain["FileSystemTypeVersion"] == "2.15"
    assert {"DataCompressionType", "MetadataConfiguration"}.isdisjoint(plain["LustreConfiguration"])
    tuned = _lustre(data_compression_type="LZ4", metadata=FsxMetadata(iops=24000), file_system_type_version="2.12")
    assert tuned["FileSystemTypeVersion"] == "2.12"
    assert tuned["LustreConfiguration"]["DataCompressionType"] == "LZ4"
    assert tuned["LustreConfiguration"]["MetadataConfiguration"] == {"Mode": "USER_PROVISIONED", "Iops": 24000}
    auto = _lustre(metadata=FsxMetadata(mode="AUTOMATIC"))
    assert auto["LustreConfiguration"]["MetadataConfiguration"] == {"Mode": "AUTOMATIC"}


def test_plan_shows_and_cost_prices_what_it_can(demo, catalog):
    demo["storage"]["fsx_lustre"].update(data_compression="LZ4", metadata={"iops": 6000},
                                         per_unit_storage_throughput=125)
    plan = build_plan(parse_spec(demo), catalog)
    assert "FSx for Lustre 2.15 PERSISTENT_2 4,800 GiB, 125 MB/s/TiB, metadata 6,000 IOPS, LZ4 compressed" \
        in render_plan(plan)
    report = cost.cost_plan(plan.model_copy(update={"region": "us-east-1"}), load_prices())  # FSx priced there
    [fs, meta] = [ln for ln in report.lines if ln.category == "storage"]
    assert fs.usd_per_hour is not None
    [meta] = [ln for ln in report.lines if "metadata" in ln.name]
    assert (meta.category, meta.usd_per_hour) == ("storage", None)  # unknown, never 0
    assert meta in report.of("storage").unknown
    demo["storage"]["fsx_lustre"]["metadata"] = {"mode": "AUTOMATIC"}
    auto = cost.cost_plan(build_plan(parse_spec(demo), catalog), load_prices())  # us-east-2: the rate is unknown
    assert not [ln for ln in auto.lines if "metadata" in ln.name]


def test_an_unquoted_version_is_named_as_a_number_to_quote():
    text = EXAMPLE.read_text().replace("    data_repository_path", "    file_system_type_version: 2.10\n"
                                       "    data_repository_path")
    with pytest.raises(SpecError) as e:
        load_spec_text(text)
    [p] = e.value.problems
    assert p.path == "storage.fsx_lustre.file_system_type_version"
    assert p.message == "2.1 was read as a number: write it in quotes, one of '2.10' | '2.12' | '2.15'"
