"""The catalog through moto's EC2 (AWS's data), and the committed snapshot's size and freshness."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from rackform.catalog import CATALOG_PATH, SUPPORTED_FAMILIES, Catalog, catalog_from_api

REQUIRED = ("trn1", "trn1n", "trn2", "inf2", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "g5", "g6", "g6e",
            "c7g", "c7gn", "c8g", "m7g", "m8g", "r7g", "r8g", "hpc7g")


@pytest.fixture(scope="module")
def from_moto():
    with mock_aws():
        data = catalog_from_api(lambda r: boto3.client("ec2", region_name=r), regions=["us-east-1", "us-east-2"],
                                families=SUPPORTED_FAMILIES)
    return Catalog.model_validate({**data, "source": "moto", "generated_on": "today"})


def test_snapshot_agrees_with_the_api(from_moto, catalog):
    for name, it in from_moto.instance_types.items():
        assert catalog.get(name) == it, name
    for region in ("us-east-1", "us-east-2"):
        assert from_moto.offerings[region] == catalog.offerings[region]
        assert from_moto.availability_zones[region] == catalog.availability_zones[region]
        assert from_moto.zone_ids[region] == catalog.zone_ids[region]


def test_offerings_differ_by_region(from_moto):
    assert from_moto.azs_offering("us-east-1", "trn2.48xlarge") == ()
    assert from_moto.azs_offering("us-east-2", "trn2.48xlarge") == ("use2-az1", "use2-az2", "use2-az3")
    assert len(from_moto.azs_offering("us-east-1", "p5.48xlarge")) == 6


def test_snapshot_covers_every_required_family_and_every_region(catalog):
    families = {it.family for it in catalog.instance_types.values()}
    assert set(REQUIRED) <= families
    assert len(catalog.offerings) >= 30 and "ap-south-2" in catalog.regions_offering("trn2.48xlarge")


def test_accelerators_and_architectures(catalog):
    trn2 = catalog.get("trn2.48xlarge")
    assert (trn2.tier, trn2.neuron_devices, trn2.vcpus) == ("trainium", 16, 192)
    p5 = catalog.get("p5.48xlarge")
    assert (p5.tier, p5.gpus, p5.accelerator.name) == ("gpu", 8, "H100")
    assert catalog.get("c8g.48xlarge").tier == "graviton" and catalog.get("c7i.48xlarge").tier == "cpu"
    assert catalog.get("inf2.48xlarge").tier == "trainium" and not catalog.get("inf2.48xlarge").efa_supported


def test_snapshot_is_small_and_names_its_source():
    # load time is measured by scripts/bench_synth.py, not asserted here
    assert CATALOG_PATH.stat().st_size < 2 * 1024 * 1024
    data = json.loads(CATALOG_PATH.read_text())
    assert data["source"] and data["generated_on"]


def test_suggestions(catalog):
    assert catalog.suggest_instance_type("p5.48xlarg")[0] == "p5.48xlarge"


@pytest.mark.parametrize("typed,first,listed", [
    ("p5.96xlarge", "p5.48xlarge", {"p5.48xlarge", "p5.4xlarge"}),  # a size the family lacks: nearest sizes
    ("trn1.64xlarge", "trn1.32xlarge", {"trn1.32xlarge", "trn1.2xlarge"}),
    ("g6.49xlarge", "g6.48xlarge", {"g6.48xlarge", "g6.24xlarge", "g6.16xlarge"}),
    ("m7g.xlarg", "m7g.xlarge", None),  # a typo of the size: spelling within the family
    ("trn3.48xlarge", "trn2.48xlarge", None),  # unknown family: closest spellings anywhere
])
def test_suggestions_list_up_to_three_close_types_of_the_family(catalog, typed, first, listed):
    found = catalog.suggest_instance_type(typed)
    assert found[0] == first and len(found) <= 3
    if listed is not None:
        assert set(found) == listed
