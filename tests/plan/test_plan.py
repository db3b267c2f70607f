"""NIC layouts against the catalog, and the plan's arithmetic."""

from __future__ import annotations

import json

import pytest

from rackform.reference.catalog import load_catalog
from rackform.plan.netmath import smallest_prefix
from rackform.plan.models import build_plan, card0_free_slots, default_efa_layout, nic_layout
from rackform.plan.diff import GROUP_EFFECTS, GROUP_FIELDS
from rackform.spec.models import parse_spec

# cards / max EFA / interfaces per card, from AWS's network specifications
# (https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html#ac_network); the catalog must agree.
EXPECTED = {
    "p4d.24xlarge": (4, 4, 15),
    "p5.48xlarge": (32, 32, 2),
    "p5en.48xlarge": (16, 16, 4),
    "trn1.32xlarge": (8, 8, 5),
    "trn1n.32xlarge": (16, 16, 5),
    "trn2.48xlarge": (16, 16, 2),
    "c7gn.16xlarge": (1, 1, 15),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_catalog_matches_published_network_figures(catalog, name):
    it = catalog.get(name)
    cards, max_efa, per_card = EXPECTED[name]
    assert len(it.network_cards) == cards and it.max_efa_interfaces == max_efa
    assert {c.max_interfaces for c in it.network_cards} == {per_card}


EFA_TYPES = sorted(name for name, it in load_catalog().instance_types.items() if it.efa_supported)


def test_every_efa_type_is_laid_out():
    # The layout rule is checked on the whole catalog, not a hand-picked list: a new family with another card
    # layout (p6-b300's ENA-only card 0) is covered the day the catalog is refreshed.
    assert {"p5.48xlarge", "p6-b300.48xlarge", "trn2.48xlarge", "c7gn.16xlarge"} <= set(EFA_TYPES)


@pytest.mark.parametrize("layout", ["efa", "efa-only"])
@pytest.mark.parametrize("name", EFA_TYPES)
def test_efa_layout_uses_every_efa_and_keeps_card_limits(catalog, name, layout):
    it = catalog.get(name)
    nics = nic_layout(it, layout)
    efa = [n for n in nics if n.is_efa]
    assert len(efa) == it.max_efa_interfaces and {n.interface_type for n in efa} == {layout}
    per_card = {}
    for n in nics:
        per_card[n.network_card_index] = per_card.get(n.network_card_index, 0) + 1
    cards = {c.index: c for c in it.network_cards}
    for card, used in per_card.items():
        assert used <= cards[card].max_interfaces
    assert len({n.network_card_index for n in efa}) == len(efa), "at most one EFA per card"
    primary = [n for n in nics if n.network_card_index == 0 and n.device_index == 0]
    assert len(primary) == 1 and primary[0].interface_type != "efa-only"
    assert all(n.interface_type in cards[n.network_card_index].interface_kinds for n in nics)
    if layout == "efa":
        assert all(n.device_index == 1 for n in nics if n.network_card_index != 0)
        assert card0_free_slots(it, nics) >= 1  # the awsvpc task ENI of a multi-node Batch job
    else:  # AWS's recommended layout: ENA primary, efa-only on card 0 device 1 and on device 0 of every other card
        assert primary[0].interface_type == "interface" and sum(n.has_ip for n in nics) == 1
        assert all(n.device_index == 0 for n in nics if n.network_card_index != 0)
        card0_takes_efa = "efa-only" in cards[0].interface_kinds
        assert [(n.device_index, n.interface_type) for n in nics if n.network_card_index == 0] == \
            [(0, "interface")] + [(1, "efa-only")] * card0_takes_efa


@pytest.mark.parametrize("name", EFA_TYPES)
def test_default_layout_is_efa_only_wherever_card_0_keeps_the_task_eni_slot(catalog, name):
    it = catalog.get(name)
    layout = default_efa_layout(it)
    assert card0_free_slots(it, nic_layout(it, layout)) >= 1
    assert (layout == "efa") == (card0_free_slots(it, nic_layout(it, "efa-only")) == 0)


def test_efa_only_cannot_keep_the_task_eni_slot_only_on_two_interface_card_0(catalog):
    assert {n for n in EFA_TYPES if default_efa_layout(catalog.get(n)) == "efa"} == {
        "p5.48xlarge", "p5e.48xlarge", "trn2.3xlarge", "trn2.48xlarge", "trn2u.48xlarge",
        "hpc6a.48xlarge", "hpc7a.12xlarge", "hpc7a.24xlarge", "hpc7a.48xlarge", "hpc7a.96xlarge"}


def test_p5_efa_only_is_aws_recommended_layout(catalog):
    nics = nic_layout(catalog.get("p5.48xlarge"), "efa-only")
    assert [(n.network_card_index, n.device_index, n.interface_type) for n in nics] == [
        (0, 0, "interface"), (0, 1, "efa-only"), *((card, 0, "efa-only") for card in range(1, 32))]


@pytest.mark.parametrize("layout,types", [("efa", {"efa"}), ("efa-only", {"efa-only"})])
def test_p6_b300_keeps_an_ena_primary_on_card_0_and_efa_on_cards_1_to_16(catalog, layout, types):
    nics = nic_layout(catalog.get("p6-b300.48xlarge"), layout)
    assert (nics[0].network_card_index, nics[0].device_index, nics[0].interface_type) == (0, 0, "interface")
    assert [n.network_card_index for n in nics[1:]] == list(range(1, 17))
    assert {n.interface_type for n in nics[1:]} == types


def test_efa_off_gives_one_plain_interface(catalog):
    nics = nic_layout(catalog.get("p5.48xlarge"), None)
    assert [(n.network_card_index, n.device_index, n.interface_type) for n in nics] == [(0, 0, "interface")]


def _group_plan(catalog, instance_type, count=2, **group):
    spec = parse_spec({"name": "ips", "region": "us-east-2", "availability_zone": "use2-az1",
                       "racks": [{"name": "r", "node_groups": [
                           {"name": "g", "instance_type": instance_type, "count": count, **group}]}]})
    return build_plan(spec, catalog).racks[0].node_groups[0]


@pytest.mark.parametrize("instance_type,count,layout,ips_per_node", [
    # efa: one IP per EFA interface (the primary is one of them where card 0 takes EFA), plus the task ENI
    ("p5.48xlarge", 2, "efa", 32 + 1),
    ("p4d.24xlarge", 2, "efa", 4 + 1),
    ("trn1.32xlarge", 2, "efa", 8 + 1),
    ("p6-b300.48xlarge", 2, "efa", 1 + 16 + 1),  # ENA-only card 0: the primary is an extra IP
    # efa-only: the ENA primary's IP and the task ENI, whatever the number of EFA interfaces
    ("p5.48xlarge", 1, "efa-only", 2),
    ("p4d.24xlarge", 2, "efa-only", 2),
    ("trn1n.32xlarge", 2, "efa-only", 2),
    ("p6-b300.48xlarge", 2, "efa-only", 2),
])
def test_ips_per_node_follow_the_layout(catalog, instance_type, count, layout, ips_per_node):
    g = _group_plan(catalog, instance_type, count, efa_interfaces=layout)
    assert g.efa_layout == layout and g.efa_interfaces == catalog.get(instance_type).max_efa_interfaces
    assert (g.ips_per_node, g.ips) == (ips_per_node, ips_per_node * count)
    assert g.devices[:g.efa_interfaces] == tuple(f"/dev/infiniband/uverbs{i}" for i in range(g.efa_interfaces))


def test_default_layout_in_the_plan(catalog):
    assert (_group_plan(catalog, "trn1.32xlarge").efa_layout, _group_plan(catalog, "trn1.32xlarge").ips_per_node) \
        == ("efa-only", 2)
    assert (_group_plan(catalog, "p5.48xlarge").efa_layout, _group_plan(catalog, "p5.48xlarge").ips_per_node) \
        == ("efa", 33)
    plain = _group_plan(catalog, "c8g.4xlarge")
    assert (plain.efa_layout, plain.efa_interfaces, plain.ips_per_node) == (None, 0, 2)


def test_demo_plan(demo, catalog):
    plan = build_plan(parse_spec(demo), catalog)
    trn = plan.rack("trn2-train").node_groups[0]
    assert trn.tier == "trainium" and trn.efa_interfaces == 16
    assert trn.devices == tuple([f"/dev/infiniband/uverbs{i}" for i in range(16)]
                                + [f"/dev/neuron{i}" for i in range(16)])
    assert trn.ips_per_node == 16 + 1 and trn.ips == 68
    assert trn.neuron_cores_per_node == 16 * 8  # Trainium2: 8 physical NeuronCores per device
    assert trn.quota.code == "L-2C3B7624" and trn.quota.vcpus == 4 * 192
    # A Capacity Block: AWS places its instances, so no placement group of rackform's
    assert trn.placement_group is None and not trn.creates_placement_group
    assert trn.capacity.type == "capacity-block" and trn.ami_ssm_parameter.endswith("/neuron/recommended/image_id")
    gpu = plan.rack("gpu").node_groups[0]
    assert gpu.gpus_per_node == 8 and gpu.quota.code == "L-417A185B"
    assert gpu.devices == tuple(f"/dev/infiniband/uverbs{i}" for i in range(32))
    assert gpu.batch_image_type == "ECS_AL2023_NVIDIA"
    head = plan.rack("graviton").node_groups[0]
    assert head.tier == "graviton" and head.architecture == "arm64" and head.placement_group is None
    assert head.devices == () and head.quota.code == "L-1216C47A"
    # 2 + 2*2 + 4*17 + 2*33 node IPs, FSx 4800/1200+2, 3 endpoints
    assert plan.network.ips_needed == 2 + 4 + 68 + 66 + 6 + 3
    assert plan.network.private_subnet.cidr_mask == 17  # half the /16 VPC, whatever the racks need


def test_plan_is_deterministic_and_json_serialisable(demo, catalog):
    a = build_plan(parse_spec(demo), catalog).model_dump_json()
    b = build_plan(parse_spec(demo), catalog).model_dump_json()
    assert a == b and json.loads(a)["racks"][0]["node_groups"][0]["name"] == "head"


@pytest.mark.parametrize("addresses,prefix", [(1, 28), (11, 28), (12, 27), (251, 24), (252, 23), (4000, 20)])
def test_smallest_prefix_counts_reserved_addresses(addresses, prefix):
    assert smallest_prefix(addresses) == prefix


def test_the_plan_prices_only_what_it_is_given(catalog):
    # The plan reads no files: prices come in as an argument (rackform.pipeline passes the bundled snapshot).
    from rackform.reference.prices import load_prices
    from rackform.spec.models import load_spec

    from tests.conftest import ROOT

    spec, _ = load_spec(ROOT / "examples" / "demo.yaml")  # us-east-1, where the snapshot has prices
    assert {g.on_demand_usd_per_hour for g in build_plan(spec, catalog).node_groups()} == {None}
    priced = {g.instance_type: g.on_demand_usd_per_hour for g in build_plan(spec, catalog, load_prices()).node_groups()}
    assert priced["p5.48xlarge"] == 55.04


def test_the_pipeline_plans_with_the_bundled_prices():
    from rackform import pipeline

    from tests.conftest import ROOT

    plan = pipeline.load_plan(ROOT / "examples" / "demo.yaml")
    assert {g.instance_type: g.on_demand_usd_per_hour for g in plan.node_groups()}["p5.48xlarge"] == 55.04


def test_a_new_efa_layout_is_a_plan_change(catalog):
    """p4d keeps 4 EFA interfaces either way: only the layout says the launch template changes."""
    before, after = _group_plan(catalog, "p4d.24xlarge", efa_interfaces="efa"), _group_plan(
        catalog, "p4d.24xlarge", efa_interfaces="efa-only")
    assert before.efa_interfaces == after.efa_interfaces
    changed = [f for f in GROUP_FIELDS if getattr(before, f) != getattr(after, f)]
    assert changed == ["efa_layout"] and "network interfaces" in GROUP_EFFECTS["efa_layout"]
