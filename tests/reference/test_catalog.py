"""The catalog through moto's EC2 (AWS's data), and the committed snapshot's size and freshness."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from rackform.reference.catalog import CATALOG_PATH, SUPPORTED_FAMILIES, Catalog, load_catalog
from rackform.reference.refresh import catalog_from_api

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


# AWS's published figures for every supported family, reviewed against AWS's pages rather than the EC2 API (whose
# data put 512 GiB on each Trainium2 chip and no accelerator on trn2u.48xlarge):
# accelerators and their memory: https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html, for Neuron devices
# https://awsdocs-neuron.readthedocs-hosted.com/en/latest/general/arch/neuron-hardware/ (trn1-arch, trn2-arch,
# inf2-arch, trainium2); EFA support: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa.html#efa-instance-types
# and the maximum EFA count per type from the family pages (p5: 32, p5en: 16, trn1: 8, trn1n and trn2: 16, p6-b200: 8,
# p6-b300: 16); architecture: the Graviton families (https://aws.amazon.com/ec2/graviton/) are arm64, the rest x86_64.
# family -> (accelerator, GiB per accelerator, {size: accelerators}) or None, {EFA size: maximum EFA interfaces}.
_G_SIZES = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "24xlarge": 4,
            "48xlarge": 8}
_G_EFA = {"8xlarge": 1, "12xlarge": 1, "16xlarge": 1, "24xlarge": 1, "48xlarge": 1}
_EIGHT = {"48xlarge": 8}
PUBLISHED = {
    "trn1": (("Trainium", 32, {"2xlarge": 1, "32xlarge": 16}), {"32xlarge": 8}),
    "trn1n": (("Trainium", 32, {"32xlarge": 16}), {"32xlarge": 16}),
    "trn2": (("Trainium2", 96, {"3xlarge": 1, "48xlarge": 16}), {"3xlarge": 1, "48xlarge": 16}),
    "trn2u": (("Trainium2", 96, {"48xlarge": 16}), {"48xlarge": 16}),
    "inf2": (("Inferentia2", 32, {"xlarge": 1, "8xlarge": 1, "24xlarge": 6, "48xlarge": 12}), {}),
    "p4d": (("A100", 40, {"24xlarge": 8}), {"24xlarge": 4}),
    "p4de": (("A100", 80, {"24xlarge": 8}), {"24xlarge": 4}),
    "p5": (("H100", 80, {"4xlarge": 1, "48xlarge": 8}), {"4xlarge": 1, "48xlarge": 32}),
    "p5e": (("H200", 141, _EIGHT), {"48xlarge": 32}),
    "p5en": (("H200", 141, _EIGHT), {"48xlarge": 16}),
    "p6-b200": (("B200", 179, _EIGHT), {"48xlarge": 8}),
    "p6-b300": (("B300", 268, _EIGHT), {"48xlarge": 16}),
    "g5": (("A10G", 24, _G_SIZES), _G_EFA),
    "g6": (("L4", 24, _G_SIZES), _G_EFA),
    "g6e": (("L40S", 48, _G_SIZES), {**_G_EFA, "24xlarge": 2, "48xlarge": 4}),
    "c7g": (None, {"16xlarge": 1, "metal": 1}),
    "c7gn": (None, {"16xlarge": 1, "metal": 1}),
    "m7g": (None, {"16xlarge": 1, "metal": 1}),
    "r7g": (None, {"16xlarge": 1, "metal": 1}),
    "c8g": (None, dict.fromkeys(("24xlarge", "48xlarge", "metal-24xl", "metal-48xl"), 1)),
    "m8g": (None, dict.fromkeys(("24xlarge", "48xlarge", "metal-24xl", "metal-48xl"), 1)),
    "r8g": (None, dict.fromkeys(("24xlarge", "48xlarge", "metal-24xl", "metal-48xl"), 1)),
    "hpc7g": (None, {"4xlarge": 1, "8xlarge": 1, "16xlarge": 1}),
    "c7i": (None, {"48xlarge": 1, "metal-48xl": 1}),
    "m7i": (None, {"48xlarge": 1, "metal-48xl": 1}),
    "r7i": (None, {"48xlarge": 1, "metal-48xl": 1}),
    "c6i": (None, {"32xlarge": 1, "metal": 1}),
    "m6i": (None, {"32xlarge": 1, "metal": 1}),
    # Every hpc7a and hpc6a size has EFA; hpc7a's two network cards take one EFA each.
    "hpc7a": (None, dict.fromkeys(("12xlarge", "24xlarge", "48xlarge", "96xlarge"), 2)),
    "hpc6a": (None, {"48xlarge": 1}),
}
ARM64_FAMILIES = {"c7g", "c7gn", "c8g", "m7g", "m8g", "r7g", "r8g", "hpc7g"}


def test_every_supported_family_has_reviewed_figures(catalog):
    assert set(PUBLISHED) == set(SUPPORTED_FAMILIES)
    assert {it.family for it in catalog.instance_types.values()} == set(SUPPORTED_FAMILIES)


@pytest.mark.parametrize("name", sorted(load_catalog().instance_types))
def test_catalog_matches_aws_published_figures(catalog, name):
    it = catalog.get(name)
    accelerator, efa = PUBLISHED[it.family]
    size = name.partition(".")[2]
    assert it.architecture == ("arm64" if it.family in ARM64_FAMILIES else "x86_64")
    assert (it.efa_supported, it.max_efa_interfaces) == ((True, efa[size]) if size in efa else (False, 0))
    if accelerator is None:
        assert it.accelerator is None and it.tier in ("graviton", "cpu")
        return
    chip, gib_each, counts = accelerator
    assert it.accelerator is not None, f"{name} has {counts[size]} {chip} but the catalog lists no accelerator"
    assert (it.accelerator.name, it.accelerator.count) == (chip, counts[size])
    # EC2 gives some GPUs' memory as the MiB of the decimal GB NVIDIA states (24 GB A10G: 22,888 MiB, 7% under
    # 24 GiB): that much difference is the unit, more is a wrong figure (512 GiB on a 96 GiB Trainium2 chip).
    assert abs(it.accelerator.memory_mib_each / 1024 / gib_each - 1) <= 0.08, it.accelerator.memory_mib_each
    assert it.tier == ("trainium" if it.accelerator.kind == "neuron" else "gpu")


def test_trainium2_types_hold_96_gib_per_chip_and_trn2u_is_trainium(catalog):
    for name in ("trn2.48xlarge", "trn2u.48xlarge"):
        it = catalog.get(name)
        a = it.accelerator
        assert (it.tier, a.name, a.count, a.memory_mib_each, it.neuron_cores) == (
            "trainium", "Trainium2", 16, 96 * 1024, 128)
        assert a.count * a.memory_mib_each == 1536 * 1024  # 1.5 TiB per instance
    assert catalog.get("trn2.3xlarge").accelerator.memory_mib_each == 96 * 1024


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


# vCPUs and memory as AWS's instance type pages publish them (the x86 CPU families of issue 24):
# https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html (m6i, m7i), co.html (c6i, c7i), mo.html (r7i),
# hpc.html (hpc6a, hpc7a: every hpc7a size has 768 GiB, the smaller ones with fewer cores enabled).
# name -> (vCPUs, GiB, instance store disks, GB of instance store)
X86_PUBLISHED = {
    "m6i.32xlarge": (128, 512, 0, 0), "c6i.32xlarge": (128, 256, 0, 0), "r7i.48xlarge": (192, 1536, 0, 0),
    "c7i.48xlarge": (192, 384, 0, 0), "m7i.48xlarge": (192, 768, 0, 0),
    "hpc7a.12xlarge": (24, 768, 0, 0), "hpc7a.96xlarge": (192, 768, 0, 0), "hpc6a.48xlarge": (96, 384, 0, 0),
    # instance store as the accelerated pages list it: p5.48xlarge 8 x 3800 GB NVMe SSD, trn2.48xlarge 4 x 1900 GB
    # (https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html)
    "p5.48xlarge": (192, 2048, 8, 30400), "trn2.48xlarge": (192, 2048, 4, 7600),
}


@pytest.mark.parametrize("name", sorted(X86_PUBLISHED))
def test_sizes_and_instance_store_match_aws_published_figures(catalog, name):
    it = catalog.get(name)
    assert it is not None, f"{name} is missing from the catalog"
    assert (it.vcpus, it.memory_mib // 1024, it.instance_store_disks, it.instance_store_gb) == X86_PUBLISHED[name]
    assert it.instance_store_nvme == (it.instance_store_disks > 0)


def test_hpc_families_are_amd_on_demand_only_in_few_regions(catalog):
    # The EC2 data lists on-demand as their only usage class (no Spot, no Capacity Blocks).
    for name in ("hpc7a.96xlarge", "hpc6a.48xlarge"):
        it = catalog.get(name)
        assert (it.architecture, it.tier, it.usage_classes) == ("x86_64", "cpu", ("on-demand",))
        assert 0 < len(catalog.regions_offering(name)) < 10
    assert "us-east-2" in catalog.regions_offering("hpc7a.96xlarge")
    assert catalog.regions_offering("hpc7a.96xlarge") != catalog.regions_offering("c7i.48xlarge")
