"""The shipped price and limits snapshots, and the AWS clients that refresh prices (driven through Stubber)."""

from __future__ import annotations

import datetime as dt
import json

import botocore.session
import pytest
from botocore.stub import Stubber

from rackform.reference.catalog import load_catalog
from rackform.reference.peaks import limits_for, load_limits, network_gbps
from rackform.reference.prices import (
    Quote,
    capacity_block_gap,
    capacity_block_rate,
    load_price_file,
    load_prices,
    on_demand,
    on_demand_gap,
    parse_price,
    spot,
    spot_gap,
)
from rackform.reference.refresh import (
    fetch_on_demand,
    network_rates,
    on_demand_from_skypilot_csv,
    on_demand_usd,
    price_list_filters,
    skypilot_region_block,
    spot_from_skypilot_csv,
    spot_prices,
    stale_families,
)
from tests.conftest import ROOT, load_script, run_cli
from tests.price_list import ENDPOINT_PAGE, NAT_PAGE, network_product, network_request

# The shipped us-east-1 block: Linux On-Demand USD/hour read from AWS's Price List as of 2026-07-20.
AWS_FACTS_US_EAST_1 = {
    "trn1.2xlarge": 1.34375, "trn1.32xlarge": 21.50, "trn1n.32xlarge": 24.78, "inf2.48xlarge": 12.98,
    "p4d.24xlarge": 21.96, "p5.48xlarge": 55.04, "p5en.48xlarge": 63.30, "p6-b200.48xlarge": 113.93,
    "g6.48xlarge": 13.35, "c7g.16xlarge": 2.32, "c7gn.16xlarge": 3.99, "c8g.48xlarge": 7.66,
    "hpc7g.16xlarge": 1.68, "m7g.xlarge": 0.1632,
}


def _client(service: str):
    # Dummy keys: Stubber answers every call, so nothing is ever signed for or sent to AWS.
    return botocore.session.get_session().create_client(
        service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def _product(instance_type: str, usd: str, region: str = "us-east-1") -> str:
    """One PriceList entry shaped like the Price List API's (a JSON string, not an object)."""
    sku = f"SKU{instance_type.replace('.', '').upper()}"
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
            "preInstalledSw": "NA", "capacitystatus": "Used", "marketoption": "OnDemand", "servicecode": "AmazonEC2"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": "2026-07-01T00:00:00Z",
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7", "unit": "Hrs", "beginRange": "0", "endRange": "Inf",
                "description": f"${usd} per On Demand Linux {instance_type} Instance Hour",
                "pricePerUnit": {"USD": usd}, "appliesTo": []}},
            "termAttributes": {}}}},
        "version": "20260720000000", "publicationDate": "2026-07-20T00:00:00Z",
    })


def _products_request(region: str, instance_type: str, token: str | None = None) -> dict:
    req = {"ServiceCode": "AmazonEC2", "Filters": price_list_filters(region, instance_type)}
    return req | ({"NextToken": token} if token else {})


# --- the snapshot ----------------------------------------------------------------------------------------------

def test_snapshot_holds_exactly_the_aws_facts_prices():
    block = load_prices().ec2_on_demand.regions
    assert block["us-east-1"].prices == AWS_FACTS_US_EAST_1
    assert block["us-east-1"].as_of == "2026-07-20" and "Price List API" in block["us-east-1"].source
    # Every other Region is seeded from skypilot-catalog, named as such in every quote.
    seeded = {r: b for r, b in block.items() if r != "us-east-1"}
    assert len(seeded) >= 10 and "us-east-2" in seeded
    assert all(b.label == "skypilot-catalog" and "skypilot-catalog" in b.source and "commit" in b.source
               for b in seeded.values())
    assert on_demand(load_prices(), "us-east-2", "c8g.4xlarge").source.startswith("skypilot-catalog ")


def test_missing_prices_are_unknown_not_zero():
    book = load_prices()
    # The older seed's P5 rate (98.32 in us-east-1) predates AWS's June 2025 cut: never used; the newer seed's is.
    assert on_demand(book, "us-east-2", "p5.48xlarge") == Quote(55.04, "skypilot-catalog after 2025-06")
    older = book.ec2_on_demand.seed_regions["us-east-2"][-1]
    assert older.as_of == "before 2025-06" and "out of date" in older.notes["p5.48xlarge"]
    assert on_demand(book, "mx-central-1", "c8g.4xlarge") is None
    assert "no EC2 prices for mx-central-1" in on_demand_gap(book, "mx-central-1", "c8g.4xlarge")
    assert on_demand(book, "us-east-1", "trn2.48xlarge") is None
    assert "not offered" in on_demand_gap(book, "us-east-1", "trn2.48xlarge")
    assert on_demand(book, "us-east-1", "p5.48xlarge").usd == 55.04


def test_capacity_block_rates_are_published_per_region_and_type():
    book = load_prices()
    quote = capacity_block_rate(book, "us-east-2", "trn2.48xlarge")
    # The rate AWS's page published on 2026-07-22, as a dated secondary copy: labelled a rate, never the block's fee.
    assert quote is not None and quote.usd == 35.7608
    assert quote.source == "Capacity Block published rate 2026-07-22 (secondary)"
    assert book.capacity_block.source.startswith("https://aws.amazon.com/ec2/capacityblocks/pricing/")
    assert "b3a54aee92b6ef6b3c50ea6cacbcc03536675c7e" in book.capacity_block.source
    # trn2 blocks are published only in us-east-2: elsewhere unknown, naming where they are.
    assert capacity_block_rate(book, "us-east-1", "trn2.48xlarge") is None
    gap = capacity_block_gap(book, "us-east-1", "trn2.48xlarge")
    assert "trn2.48xlarge in us-east-1" in gap and "published for us-east-2" in gap
    # A type Capacity Blocks do not sell has no rate anywhere.
    assert capacity_block_rate(book, "us-east-2", "c8g.4xlarge") is None
    assert "published for" not in capacity_block_gap(book, "us-east-2", "c8g.4xlarge")
    # Only Regions the catalog knows: the page's Local Zone rows (us-east-1-atl-2a) are not Regions a spec can name.
    assert set(book.capacity_block.regions) <= set(load_catalog().offerings)
    assert "us-east-1-atl-2a" not in book.capacity_block.regions


def test_every_hand_maintained_price_names_its_source_and_date():
    book = load_prices()
    fsx = book.fsx_lustre.regions["us-east-1"]
    rates = [fsx.SCRATCH_2, *fsx.PERSISTENT_1.values(), *fsx.PERSISTENT_2.values(),
             *book.nat_gateway.regions.values(), *book.vpc_interface_endpoint.regions.values()]
    known = [r for r in rates if r is not None]
    assert known and all(r.source.startswith("http") and r.page_date for r in known)
    # Tiers nobody could source stay null rather than guessed.
    assert fsx.PERSISTENT_2["250"] is None and fsx.PERSISTENT_1 == {"50": None, "100": None, "200": None}


# --- the Price List API ----------------------------------------------------------------------------------------

def test_filters_select_plain_linux_on_demand():
    assert price_list_filters("us-east-1", "p5.48xlarge") == [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "p5.48xlarge"},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        {"Type": "TERM_MATCH", "Field": "marketoption", "Value": "OnDemand"},
    ]


def test_parse_one_price_list_entry():
    assert on_demand_usd(_product("p5.48xlarge", "55.0400000000")) == [55.04]
    assert on_demand_usd(json.dumps({"terms": {}})) == []


def test_fetch_follows_next_token_and_sends_the_filters():
    client = _client("pricing")
    with Stubber(client) as stub:
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [], "NextToken": "page2"},
                          _products_request("us-east-1", "p5.48xlarge"))
        stub.add_response("get_products", {"FormatVersion": "aws_v1",
                                           "PriceList": [_product("p5.48xlarge", "55.0400000000")]},
                          _products_request("us-east-1", "p5.48xlarge", "page2"))
        assert fetch_on_demand(client, "us-east-1", "p5.48xlarge") == 55.04
        stub.assert_no_pending_responses()


def test_fetch_refuses_to_pick_between_two_prices():
    client = _client("pricing")
    with Stubber(client) as stub:
        stub.add_response("get_products", {"PriceList": [_product("p5.48xlarge", "55.04"),
                                                         _product("p5.48xlarge", "98.32")]},
                          _products_request("us-east-1", "p5.48xlarge"))
        with pytest.raises(ValueError, match="several on-demand prices"):
            fetch_on_demand(client, "us-east-1", "p5.48xlarge")


def test_refresh_script_rewrites_one_region_and_keeps_the_rest(tmp_path, monkeypatch):
    import boto3

    client = _client("pricing")
    stub = Stubber(client)
    stub.add_response("get_products", {"PriceList": [_product("p5.48xlarge", "50.00", "us-east-2")],
                                       "NextToken": "t"}, _products_request("us-east-2", "p5.48xlarge"))
    stub.add_response("get_products", {"PriceList": []}, _products_request("us-east-2", "p5.48xlarge", "t"))
    stub.add_response("get_products", {"PriceList": []}, _products_request("us-east-2", "trn2.48xlarge"))
    stub.activate()
    monkeypatch.setattr(boto3, "client", lambda service, region_name=None: client)
    script = load_script("refresh_prices")
    out = tmp_path / "prices.json"
    assert script.main(["--regions", "us-east-2", "--instance-types", "trn2.48xlarge", "p5.48xlarge",
                        "-o", str(out)]) == 0
    stub.assert_no_pending_responses()
    regions = json.loads(out.read_text())["ec2_on_demand"]["regions"]
    assert regions["us-east-2"]["prices"] == {"p5.48xlarge": 50.0}
    assert "no on-demand" in regions["us-east-2"]["notes"]["trn2.48xlarge"]
    assert regions["us-east-2"]["as_of"] == dt.date.today().isoformat()
    assert regions["us-east-1"]["prices"] == AWS_FACTS_US_EAST_1
    # The seed block the refresh replaced stays as the Region's seed, for the types the refresh did not ask about.
    seeds = json.loads(out.read_text())["ec2_on_demand"]["seed_regions"]["us-east-2"]
    assert [s["label"] for s in seeds] == ["skypilot-catalog"] * len(seeds)
    assert seeds[0]["prices"]["p5.48xlarge"] == 55.04 and seeds[-1]["prices"]["c8g.4xlarge"] == 0.63584


# --- the skypilot-catalog seed ---------------------------------------------------------------------------------

_HEADER = ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
           "AvailabilityZone\n")
_P5_INFO = '"{\'Gpus\': [{\'Name\': \'H100\', \'Count\': 8}]}"'
SEED = _HEADER + "".join(f"{row}\n" for row in (
    "c8g.4xlarge,,,16.0,32.0,,0.63808,0.210200,us-east-1,use1-az1",
    "c8g.4xlarge,,,16.0,32.0,,0.63584,0.297600,us-east-2,use2-az1",
    "c8g.4xlarge,,,16.0,32.0,,0.63584,0.275300,us-east-2,use2-az2",
    "c8g.48xlarge,,,192.0,384.0,,7.63008,1.854600,us-east-2,use2-az1",
    "c7gn.16xlarge,,,64.0,128.0,,3.9936,1.046600,us-east-1,use1-az1",
    "c7gn.16xlarge,,,64.0,128.0,,3.9936,3.129800,us-east-2,use2-az1",
    f"p5.48xlarge,H100,8.0,192.0,2048.0,{_P5_INFO},98.32,30.326000,us-east-1,use1-az1",
    f"p5.48xlarge,H100,8.0,192.0,2048.0,{_P5_INFO},98.32,14.377300,us-east-2,use2-az1",
    f"p5e.48xlarge,H200,8.0,192.0,2048.0,{_P5_INFO},,13.440700,us-east-2,use2-az1",
))


def test_skypilot_csv_gives_one_on_demand_price_per_type_and_region():
    prices = on_demand_from_skypilot_csv(SEED)
    assert prices["us-east-2"] == {"c8g.4xlarge": 0.63584, "c8g.48xlarge": 7.63008, "c7gn.16xlarge": 3.9936,
                                   "p5.48xlarge": 98.32}  # p5e has no Price: left out, never 0
    assert prices["us-east-1"]["c8g.4xlarge"] == 0.63808


def test_skypilot_csv_on_demand_leaves_local_zones_out():
    # A Local Zone is priced apart from its Region (and rackform never deploys there): its row neither prices the
    # Region nor contradicts it.
    text = _HEADER + ("p5.48xlarge,H100,8.0,192.0,2048.0,,61.0,,us-east-1,use1-atl2-az1\n"
                      "p5.48xlarge,H100,8.0,192.0,2048.0,,55.04,,us-east-1,use1-az1\n"
                      "c8g.4xlarge,,,16.0,32.0,,0.7,,us-east-1,use1-wl1-bos-wlz1\n")
    assert on_demand_from_skypilot_csv(text) == {"us-east-1": {"p5.48xlarge": 55.04}}


@pytest.mark.parametrize(("text", "fragment"), [
    (_HEADER + "c8g.4xlarge,,,16.0,32.0,,0.63584,,us-east-2,use2-az1\n"
     "c8g.4xlarge,,,16.0,32.0,,0.7,,us-east-2,use2-az2\n",
     "two On-Demand prices"),
    (_HEADER + "c8g.4xlarge,,,16.0,32.0,,free,,us-east-2,use2-az1\n", "line 2: Price 'free'"),
    (_HEADER + "c8g.4xlarge,,,16.0,32.0,,-1,,us-east-2,use2-az1\n", "not a positive USD"),
    ("InstanceType,Region\nc8g.4xlarge,us-east-2\n", "no Price column"),
])
def test_skypilot_csv_refuses_what_it_cannot_trust(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        on_demand_from_skypilot_csv(text)


def test_a_family_the_price_list_contradicts_is_stale_everywhere():
    seed = on_demand_from_skypilot_csv(SEED)
    stale = stale_families(seed, {"us-east-1": {"p5.48xlarge": 55.04, "c7gn.16xlarge": 3.99}})
    assert set(stale) == {"p5"} and "98.32" in stale["p5"] and "55.04" in stale["p5"]
    block = skypilot_region_block(seed["us-east-2"], "us-east-2", ["p5.48xlarge", "c8g.4xlarge", "trn2.48xlarge"],
                                  source="seed", as_of="2025-01-01", stale=stale)
    assert block["prices"] == {"c8g.4xlarge": 0.63584}
    assert "out of date" in block["notes"]["p5.48xlarge"] and "trn2.48xlarge" not in block["notes"]


def _seeded_book():
    """us-east-1 as the Price List priced it (c7gn.16xlarge, p5.48xlarge; trn2.48xlarge noted not offered) with the
    seed's block beside it, built as the importer builds it (stale families checked against the Price List)."""
    seed = on_demand_from_skypilot_csv(SEED + "p5.4xlarge,H100,1.0,16.0,256.0,,6.88,,us-east-1,use1-az1\n"
                                       "trn2.48xlarge,,,192.0,2048.0,,44.7,,us-east-1,use1-az1\n")
    primary = {"c7gn.16xlarge": 3.99, "p5.48xlarge": 55.04}
    stale = stale_families(seed, {"us-east-1": primary})
    block = skypilot_region_block(seed["us-east-1"], "us-east-1", seed["us-east-1"], source="seed", as_of="2025-01-01",
                                  stale=stale)
    book = load_prices()
    return book.model_copy(update={"ec2_on_demand": book.ec2_on_demand.model_validate({
        "unit": "u", "seed_regions": {"us-east-1": [block]},
        "regions": {"us-east-1": {"source": "Price List", "as_of": "2026-07-20", "prices": primary,
                                  "notes": {"trn2.48xlarge": "not offered in us-east-1"}}}})})


def test_a_type_the_price_list_prices_or_notes_is_never_taken_from_the_seed():
    book = _seeded_book()
    assert on_demand(book, "us-east-1", "c7gn.16xlarge") == Quote(3.99, "Price List API 2026-07-20")
    # The Price List says the type has no price there: an older seed's row does not overrule it.
    assert on_demand(book, "us-east-1", "trn2.48xlarge") is None
    assert on_demand_gap(book, "us-east-1", "trn2.48xlarge") == "not offered in us-east-1"


def test_a_type_only_the_seed_prices_is_quoted_with_the_seeds_own_label_and_date():
    book = _seeded_book()
    assert on_demand(book, "us-east-1", "c8g.4xlarge") == Quote(0.63808, "skypilot-catalog 2025-01-01")
    assert on_demand(book, "us-east-1", "m7g.large") is None
    assert on_demand_gap(book, "us-east-1", "m7g.large") == \
        "m7g.large is not in the us-east-1 snapshot (Price List API 2026-07-20; skypilot-catalog 2025-01-01)"


def test_a_stale_family_stays_unknown_though_the_seed_lists_the_type():
    book = _seeded_book()
    # The Price List prices p5.48xlarge apart from the seed, so the seed's p5.4xlarge row is out of date too.
    assert on_demand(book, "us-east-1", "p5.4xlarge") is None
    assert "its p5 rates are out of date" in on_demand_gap(book, "us-east-1", "p5.4xlarge")


def test_shipped_snapshot_fills_the_price_lists_gaps_from_the_seed():
    book = load_prices()
    quote = on_demand(book, "us-east-1", "c6i.xlarge")
    assert quote is not None and quote.source == "skypilot-catalog before 2025-06"
    assert on_demand(book, "us-east-1", "p5.48xlarge") == Quote(55.04, "Price List API 2026-07-20")
    # Types only the newer seed lists, in the Regions it lists them.
    assert on_demand(book, "us-west-2", "p6-b300.48xlarge") == Quote(142.416, "skypilot-catalog after 2025-06")
    assert on_demand(book, "us-east-2", "p5.4xlarge") == Quote(6.88, "skypilot-catalog after 2025-06")
    # The newer seed lists trn2.48xlarge in us-east-2 without an On-Demand rate: the older seed's 85.964 is not used.
    assert on_demand(book, "us-east-2", "trn2.48xlarge") is None
    assert book.ec2_on_demand.seed_regions["us-east-2"][-1].prices["trn2.48xlarge"] == 85.964
    assert "lists trn2.48xlarge there without a price" in on_demand_gap(book, "us-east-2", "trn2.48xlarge")


def test_skypilot_csv_gives_spot_prices_per_az_id():
    spot_prices_ = spot_from_skypilot_csv(SEED)
    assert spot_prices_["us-east-2"]["c8g.4xlarge"] == {"use2-az1": 0.2976, "use2-az2": 0.2753}
    # p5e has no On-Demand Price but a SpotPrice: its Spot price stands on its own
    assert spot_prices_["us-east-2"]["p5e.48xlarge"] == {"use2-az1": 13.4407}
    assert spot_prices_["us-east-1"]["p5.48xlarge"] == {"use1-az1": 30.326}


@pytest.mark.parametrize(("row", "fragment"), [
    ("c8g.4xlarge,,,16.0,32.0,,0.63584,-0.5,us-east-2,use2-az1", "line 2: SpotPrice '-0.5' is not a positive USD"),
    ("c8g.4xlarge,,,16.0,32.0,,0.63584,0,us-east-2,use2-az1", "SpotPrice '0' is not a positive USD"),
    ("c8g.4xlarge,,,16.0,32.0,,0.63584,cheap,us-east-2,use2-az1", "SpotPrice 'cheap'"),
    ("c8g.4xlarge,,,16.0,32.0,,0.63584,nan,us-east-2,use2-az1", "SpotPrice 'nan'"),
    ("c8g.4xlarge,,,16.0,32.0,,0.63584,inf,us-east-2,use2-az1", "SpotPrice 'inf'"),
    ("c8g.4xlarge,,,16.0,32.0,,0.63584,0.2,us-east-2,us-east-2a", "'us-east-2a' is not an AZ ID"),
    ("c8g.4xlarge,,,16.0,32.0,,0.63584,0.2,us-east-2,use2-az1\n"
     "c8g.4xlarge,,,16.0,32.0,,0.63584,0.3,us-east-2,use2-az1", "line 3: c8g.4xlarge in use2-az1 has two Spot prices"),
])
def test_skypilot_spot_refuses_what_it_cannot_trust(row, fragment):
    with pytest.raises(ValueError, match=fragment):
        spot_from_skypilot_csv(_HEADER + row + "\n")


def test_skypilot_spot_leaves_out_local_and_wavelength_zones_rather_than_refuse_the_file():
    rows = ("c8g.4xlarge,,,16.0,32.0,,0.63584,0.2,us-east-1,use1-az1\n"
            "c8g.4xlarge,,,16.0,32.0,,0.7,0.3,us-east-1,use1-qro1-az1\n"
            "c8g.4xlarge,,,16.0,32.0,,0.7,0.3,us-east-1,use1-wl1-bos-wlz1\n")
    assert spot_from_skypilot_csv(_HEADER + rows) == {"us-east-1": {"c8g.4xlarge": {"use1-az1": 0.2}}}


def test_skypilot_spot_blank_is_unknown_and_the_columns_are_required():
    assert spot_from_skypilot_csv(_HEADER + "c8g.4xlarge,,,16.0,32.0,,0.63584,,us-east-2,use2-az1\n") == {}
    with pytest.raises(ValueError, match="no AvailabilityZone, SpotPrice column"):
        spot_from_skypilot_csv("InstanceType,Price,Region\nc8g.4xlarge,0.6,us-east-2\n")


def _spot_book(**regions: dict) -> object:
    book = load_prices()
    return book.model_copy(update={"ec2_spot": book.ec2_spot.model_validate({"unit": "u", "regions": regions})})


def test_spot_snapshot_is_per_az_id_and_dated():
    book = _spot_book(**{"us-east-2": {"source": "s", "as_of": "2025-01-01", "label": "seed",
                                       "prices": {"c8g.4xlarge": {"use2-az1": 0.2976}},
                                       "notes": {"p5.48xlarge": "unknown in us-east-2: out of date"}}})
    quote = spot(book, "us-east-2", "use2-az1", "c8g.4xlarge")
    assert (quote.usd, quote.source) == (0.2976, "Spot snapshot 2025-01-01, seed")
    # Unknown, never 0, each saying why in words a user can act on.
    assert spot(book, "us-east-2", "use2-az2", "c8g.4xlarge") is None
    assert "no Spot price for use2-az2" in spot_gap(book, "us-east-2", "use2-az2", "c8g.4xlarge")
    assert "(only use2-az1)" in spot_gap(book, "us-east-2", "use2-az2", "c8g.4xlarge")
    assert spot(book, "us-east-2", None, "c8g.4xlarge") is None
    assert "name the AZ by its ID" in spot_gap(book, "us-east-2", None, "c8g.4xlarge")
    assert spot_gap(book, "us-east-2", "use2-az1", "p5.48xlarge") == "unknown in us-east-2: out of date"
    assert "not in the us-east-2 Spot snapshot of 2025-01-01" in spot_gap(book, "us-east-2", "use2-az1", "m7g.large")
    assert "no Spot prices for eu-west-1 in the snapshot (Regions priced: us-east-2)" == \
        spot_gap(book, "eu-west-1", "euw1-az1", "c8g.4xlarge")


def test_shipped_spot_snapshot_is_dated_sourced_and_leaves_stale_families_out():
    blocks = load_prices().ec2_spot.regions
    assert "us-east-2" in blocks and len(blocks) >= 10
    assert all(b.label == "skypilot-catalog" and "SpotPrice" in b.source and "commit" in b.source and b.as_of
               for b in blocks.values())
    # The older file's P5 Spot rates were read under On-Demand rates AWS has since cut: never used; the newer's are.
    older = load_prices().ec2_spot.seed_regions["us-east-2"][-1]
    assert older.as_of == "before 2025-06" and "out of date" in older.notes["p5.48xlarge"]
    assert spot(load_prices(), "us-east-2", "use2-az1", "p5.48xlarge") == \
        Quote(11.2543, "Spot snapshot after 2025-06, skypilot-catalog")
    assert all(0 < usd for b in blocks.values() for zones in b.prices.values() for usd in zones.values())


def test_shipped_seed_covers_every_catalog_type_or_says_why(catalog):
    # Each catalog type is priced in some seeded Region, or its family is noted out of date there, or the seed's
    # source names it as a type the file does not list or that was left out: never silently absent.
    book = load_prices()
    for section, sold in ((book.ec2_on_demand, lambda t: True),
                          (book.ec2_spot, lambda t: "spot" in catalog.instance_types[t].usage_classes)):
        seeded = [b for b in (*section.regions.values(), *(b for bs in section.seed_regions.values() for b in bs))
                  if b.label == "skypilot-catalog"]
        covered = {t for b in seeded for t in (*b.prices, *b.notes)}
        named = {t for t in catalog.instance_types
                 if any(f" {t}" in b.source or f" {t.split('.')[0]} left out" in b.source for b in seeded)}
        silent = sorted(t for t in catalog.instance_types if sold(t) and t not in covered | named)
        assert not silent, f"{section.unit}: {silent}"
    # A seeded Region prices only what the catalog offers there (a row elsewhere is no offering).
    for region, blocks in (*((r, [b]) for r, b in book.ec2_on_demand.regions.items()),
                           *book.ec2_on_demand.seed_regions.items()):
        assert all(set(b.prices) <= set(catalog.offerings.get(region, {})) for b in blocks), region


def test_refresh_from_skypilot_seeds_other_regions_and_keeps_the_price_list(tmp_path, capsys):
    csv_file, out = tmp_path / "vms.csv", tmp_path / "prices.json"
    csv_file.write_text(SEED)
    script = load_script("refresh_prices")
    assert script.main(["--from-skypilot-csv", str(csv_file), "-o", str(out)]) == 2
    assert "needs --commit" in capsys.readouterr().err
    assert script.main(["--from-skypilot-csv", str(csv_file), "--commit", "abc123", "--as-of", "2025-01-01",
                        "-o", str(out)]) == 0
    regions = json.loads(out.read_text())["ec2_on_demand"]["regions"]
    assert regions["us-east-1"]["prices"] == AWS_FACTS_US_EAST_1  # the primary source is never overwritten
    seed_east1 = json.loads(out.read_text())["ec2_on_demand"]["seed_regions"]["us-east-1"][0]
    assert seed_east1["prices"] == {"c7gn.16xlarge": 3.9936, "c8g.4xlarge": 0.63808}  # beside it, for its gaps
    assert "out of date" in seed_east1["notes"]["p5.48xlarge"] and seed_east1["label"] == "skypilot-catalog"
    east2 = regions["us-east-2"]
    assert east2["prices"] == {"c7gn.16xlarge": 3.9936, "c8g.48xlarge": 7.63008, "c8g.4xlarge": 0.63584}
    assert "out of date" in east2["notes"]["p5.48xlarge"]
    assert (east2["as_of"], east2["label"]) == ("2025-01-01", "skypilot-catalog") and "abc123" in east2["source"]
    spot_east2 = json.loads(out.read_text())["ec2_spot"]["regions"]["us-east-2"]
    assert spot_east2["prices"]["c8g.4xlarge"] == {"use2-az1": 0.2976, "use2-az2": 0.2753}
    assert "out of date" in spot_east2["notes"]["p5.48xlarge"] and spot_east2["as_of"] == "2025-01-01"
    assert "SpotPrice" in spot_east2["source"] and "abc123" in spot_east2["source"]


def test_refresh_from_skypilot_stacks_a_newer_extract_over_the_older_seed(tmp_path):
    # A newer file holding only the P5 rows (at the post-cut rate the Price List gives) goes in front of the older
    # seed, On-Demand and Spot: it prices P5, the older seed still prices the rest; importing the older file again
    # replaces its own blocks where they stand instead of moving them in front.
    older, newer, out = tmp_path / "v7.csv", tmp_path / "v8.csv", tmp_path / "prices.json"
    older.write_text(SEED)
    newer.write_text(_HEADER + f"p5.48xlarge,H100,8.0,192.0,2048.0,{_P5_INFO},55.04,15.06,us-east-2,use2-az1\n"
                     "c7gn.16xlarge,,,64.0,128.0,,,,us-east-2,use2-az1\n")
    script, sky = load_script("refresh_prices"), "skypilot-catalog"
    old_args = ["--from-skypilot-csv", str(older), "--commit", "c7", "--as-of", "2025-01-01", "--regions", "us-east-2"]
    new_args = ["--from-skypilot-csv", str(newer), "--commit", "c8", "--as-of", "2025-09-01", "--regions", "us-east-2",
                "--path", "catalogs/v8/aws/vms.csv"]
    for args in (old_args, new_args, old_args):
        assert script.main([*args, "-o", str(out)]) == 0
    book = load_prices(out)
    assert [b.as_of for b in (book.ec2_on_demand.regions["us-east-2"], *book.ec2_on_demand.seed_regions["us-east-2"])
            ][:2] == ["2025-09-01", "2025-01-01"]
    assert "catalogs/v8/aws/vms.csv at commit c8" in book.ec2_on_demand.regions["us-east-2"].source
    assert on_demand(book, "us-east-2", "p5.48xlarge") == Quote(55.04, "skypilot-catalog 2025-09-01")
    assert on_demand(book, "us-east-2", "c8g.4xlarge") == Quote(0.63584, "skypilot-catalog 2025-01-01")
    assert spot(book, "us-east-2", "use2-az1", "p5.48xlarge") == Quote(15.06, "Spot snapshot 2025-09-01, " + sky)
    assert spot(book, "us-east-2", "use2-az2", "c8g.4xlarge") == Quote(0.2753, "Spot snapshot 2025-01-01, " + sky)
    # The newer file lists P5 in use2-az1 only: another AZ's Spot price is unknown, never the older file's.
    assert spot(book, "us-east-2", "use2-az2", "p5.48xlarge") is None
    assert "only use2-az1" in spot_gap(book, "us-east-2", "use2-az2", "p5.48xlarge")
    # The newer file lists c7gn.16xlarge there without a price: unknown, not the older file's 3.9936.
    c7gn = ("us-east-2", "c7gn.16xlarge")
    for quote, gap in ((on_demand(book, *c7gn), on_demand_gap(book, *c7gn)),
                       (spot(book, "us-east-2", "use2-az1", "c7gn.16xlarge"),
                        spot_gap(book, "us-east-2", "use2-az1", "c7gn.16xlarge"))):
        assert quote is None and gap == ("unknown in us-east-2: the skypilot-catalog snapshot (2025-09-01) lists "
                                         "c7gn.16xlarge there without a price (an older seed's rate is not used)")


def test_refresh_from_skypilot_refuses_a_region_it_cannot_price_and_writes_nothing(tmp_path, capsys):
    csv_file, out = tmp_path / "vms.csv", tmp_path / "prices.json"
    csv_file.write_text(SEED)
    args = ["--from-skypilot-csv", str(csv_file), "--commit", "abc123", "--as-of", "2025-01-01", "-o", str(out)]
    assert load_script("refresh_prices").main([*args, "--regions", "us-east-2", "eu-north-1"]) == 2
    assert "prices nothing in eu-north-1" in capsys.readouterr().err and not out.exists()
    assert load_script("refresh_prices").main([*args, "--regions", "us-east-2"]) == 0
    assert json.loads(out.read_text())["ec2_on_demand"]["regions"]["us-east-2"]["prices"]  # the Region it can price


def test_cost_prices_the_trn2_example_in_us_east_2(capsys):
    code, out, _ = run_cli(capsys, "cost", ROOT / "examples" / "trn2-capacity-block.yaml", "--json",
                           "--price", "trn2.48xlarge=40")
    assert code == 0
    lines = {ln["name"]: ln for ln in json.loads(out)["node_groups"]}
    assert lines["graviton/head"]["usd_per_hour_each"] == 0.63584
    assert lines["graviton/cpu"]["usd_per_hour"] == pytest.approx(2 * 3.9936)
    # The older seed's P5 rate is out of date; the newer seed's, read after AWS's June 2025 cut, prices the H100s.
    assert (lines["gpu/h100"]["usd_per_hour"], lines["gpu/h100"]["price_source"]) == \
        (2 * 55.04, "skypilot-catalog after 2025-06")


# --- the network's rates (cost --live) --------------------------------------------------------------------------

def test_network_rates_read_the_usage_types_rackform_creates():
    client = _client("pricing")
    with Stubber(client) as stub:
        for key, page in (("nat_gateway", NAT_PAGE), ("nat_gateway", NAT_PAGE),
                          ("vpc_interface_endpoint", ENDPOINT_PAGE), ("vpc_interface_endpoint", ENDPOINT_PAGE)):
            stub.add_response("get_products", page, network_request(key))
        rates = network_rates(client, "us-east-2", dt.date(2026, 12, 6))
        stub.assert_no_pending_responses()
    assert rates["nat_gateway"]["usd_per_hour"] == 0.045 and rates["nat_gateway"]["usd_per_gb_processed"] == 0.045
    endpoint = rates["vpc_interface_endpoint"]
    assert endpoint["usd_per_hour_per_az"] == 0.01 and endpoint["usd_per_gb_processed"] == 0.01
    assert endpoint["page_date"] == "Price List API (live) 2026-12-06" and "AmazonVPC" in endpoint["source"]


def test_network_rates_leave_out_what_the_api_does_not_list_and_refuse_to_guess():
    client = _client("pricing")
    with Stubber(client) as stub:
        stub.add_response("get_products", {"PriceList": []}, network_request("nat_gateway", "us-east-1"))
        stub.add_response("get_products", {"PriceList": [
            network_product("VpcEndpoint-Hours", "Hrs", ("0", "0.01")),
            network_product("VpcEndpoint-Hours", "Hrs", ("0", "0.02"))]},
            network_request("vpc_interface_endpoint", "us-east-1"))
        with pytest.raises(ValueError, match=r"VpcEndpoint-Hours in us-east-1: .*several rates \[0.01, 0.02\]"):
            network_rates(client, "us-east-1", dt.date(2026, 12, 6))


# --- Spot ------------------------------------------------------------------------------------------------------

def test_spot_prices_take_the_latest_record_per_type():
    client = _client("ec2")
    now = dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.timezone.utc)
    older, newer = now - dt.timedelta(hours=3), now - dt.timedelta(minutes=20)

    def record(instance_type: str, usd: str, ts: dt.datetime) -> dict:
        return {"AvailabilityZone": "us-east-1c", "InstanceType": instance_type,
                "ProductDescription": "Linux/UNIX", "SpotPrice": usd, "Timestamp": ts}

    with Stubber(client) as stub:
        stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [record("c7g.16xlarge", "0.9000", older), record("c7g.16xlarge", "0.8123", newer),
                                  record("p5.48xlarge", "31.4600", older)], "NextToken": ""},
            {"InstanceTypes": ["c7g.16xlarge", "p5.48xlarge"], "ProductDescriptions": ["Linux/UNIX"],
             "AvailabilityZone": "us-east-1c", "StartTime": now})
        quotes = spot_prices(client, ["p5.48xlarge", "c7g.16xlarge"], "us-east-1c", now=now)
    assert {t: q.usd for t, q in quotes.items()} == {"c7g.16xlarge": 0.8123, "p5.48xlarge": 31.46}
    assert quotes["c7g.16xlarge"].source == "Spot us-east-1c 2026-11-24 06:40Z"


# --- user-given prices -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("p5.48xlarge=31.46", ("p5.48xlarge", 31.46)),
    (" gpu/h100 = 40 ", ("gpu/h100", 40.0)),
])
def test_parse_price(text, expected):
    assert parse_price(text) == expected


@pytest.mark.parametrize("text,fragment", [
    ("p5.48xlarge", "KEY=USD_PER_HOUR"), ("=3", "KEY=USD_PER_HOUR"), ("p5.48xlarge=cheap", "not a number"),
    ("p5.48xlarge=-1", "0 or more"), ("p5.48xlarge=nan", "finite"),
])
def test_parse_price_rejects(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_price(text)


def test_price_file(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("trn2.48xlarge: 40.5\ntrn2-train/workers: 38\n")
    assert load_price_file(path) == {"trn2.48xlarge": 40.5, "trn2-train/workers": 38.0}
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must map KEY"):
        load_price_file(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_price_file(tmp_path / "missing.yaml")


# --- physical limits -------------------------------------------------------------------------------------------

# Accelerators, dense BF16 TFLOPS each (limits.json, each figure citing its page), network Gbps and EFA (EC2's data).
FACTS_TABLE = {
    "trn1.32xlarge": (16, 190, 800, 8), "trn1n.32xlarge": (16, 190, 1600, 16), "trn2.48xlarge": (16, 667, 3200, 16),
    "p4d.24xlarge": (8, 312, 400, 4), "p5.48xlarge": (8, 989, 3200, 32), "p5en.48xlarge": (8, 989, 3200, 16),
    "p6-b200.48xlarge": (8, 2250, 3200, 8), "g6.48xlarge": (8, 121, 100, 1),
}


@pytest.mark.parametrize("name", sorted(FACTS_TABLE))
def test_limits_match_the_reference_table(name):
    accelerators, tflops, gbps, efa = FACTS_TABLE[name]
    lim = limits_for(name)
    assert (lim.accelerators, lim.bf16_dense_tflops_per_accelerator, lim.network_gbps, lim.efa_interfaces) == \
        (accelerators, tflops, gbps, efa)
    assert lim.bf16_dense_tflops == accelerators * tflops
    assert {"bf16_dense_tflops_per_accelerator", "network_gbps", "efa_interfaces"} <= set(lim.sources)


def test_graviton_memory_bandwidth_and_unknowns():
    assert limits_for("c8g.48xlarge").cpu_memory_bandwidth_gb_s == 2 * 537.6
    assert limits_for("c7g.16xlarge").cpu_memory_bandwidth_gb_s == 307.2
    m7g = limits_for("m7g.xlarge")  # in the catalog, not in limits.json: network only
    assert m7g.bf16_dense_tflops is None and m7g.cpu_memory_bandwidth_gb_s is None
    assert (m7g.network_gbps, m7g.network_is_burst) == (12.5, True)
    assert limits_for("x9z.nonexistent") is None
    g6 = limits_for("g6.48xlarge")
    assert g6.intra_node_link_gb_s_per_accelerator is None and "intra_node_link_gb_s_per_accelerator" in g6.unconfirmed


def test_every_limits_entry_is_a_catalog_type_with_dated_sources(catalog):
    data = load_limits()
    assert set(data.instance_types) <= set(catalog.instance_types)
    assert all(s.date and s.url for s in data.sources.values())


@pytest.mark.parametrize("text,expected", [
    ("3200 Gigabit", (3200.0, False)), ("16x 200 Gigabit", (3200.0, False)),
    ("Up to 12.5 Gigabit", (12.5, True)), ("Low to Moderate", (None, False)),
])
def test_network_performance_strings(text, expected):
    assert network_gbps(text) == expected


def test_spot_prices_in_an_az_given_by_id_ask_ec2_by_id():
    # An AZ ID names the same zone in every account; EC2 takes it as AvailabilityZoneId, never as a name.
    client = _client("ec2")
    now = dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.timezone.utc)
    with Stubber(client) as stub:
        stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [{"AvailabilityZone": "us-east-1c", "AvailabilityZoneId": "use1-az6",
                                   "InstanceType": "c7g.16xlarge", "ProductDescription": "Linux/UNIX",
                                   "SpotPrice": "0.8123", "Timestamp": now}], "NextToken": ""},
            {"InstanceTypes": ["c7g.16xlarge"], "ProductDescriptions": ["Linux/UNIX"],
             "AvailabilityZoneId": "use1-az6", "StartTime": now})
        quotes = spot_prices(client, ["c7g.16xlarge"], "use1-az6", now=now)
    assert quotes["c7g.16xlarge"].usd == 0.8123 and "use1-az6" in quotes["c7g.16xlarge"].source
