"""`rackform cost`: the arithmetic on hand-computed specs, unknown prices, budgets, JSON, Spot and overrides."""

from __future__ import annotations

import argparse
import datetime as dt
import json

import botocore.session
import pytest
from botocore.stub import Stubber

from rackform.plan import cost
from rackform.cli import cost as cost_cli
from rackform.plan.models import build_plan
from rackform.reference.prices import load_prices, spot
from rackform.reference.refresh import price_list_filters
from rackform.spec.problems import SpecError
from rackform.spec.models import load_spec_text

from tests.conftest import EXAMPLE, dump
from tests.price_list import ENDPOINT_PAGE, NAT_PAGE, network_request

# The acceptance case: one us-east-1 AZ that offers p5, trn1 and c8g (by AZ ID: us-east-1 maps names per account).
ACCEPT = {
    "name": "accept", "region": "us-east-1", "availability_zone": "use1-az6",
    "storage": {"fsx_lustre": {"deployment_type": "PERSISTENT_2", "storage_capacity_gib": 4800,
                               "per_unit_storage_throughput": 125}},
    "racks": [
        {"name": "gpu", "node_groups": [{"name": "h100", "instance_type": "p5.48xlarge", "count": 2}]},
        {"name": "trn", "node_groups": [{"name": "workers", "instance_type": "trn1.32xlarge", "count": 2}]},
        {"name": "graviton", "node_groups": [{"name": "head", "instance_type": "c8g.48xlarge", "count": 1}]},
    ],
}
INSTANCES = 160.74  # 2 x 55.04 + 2 x 21.50 + 7.66
FSX = 4800 * 0.145 / 730  # 4,800 GiB x 0.145 $/GB-month over 730 h
NAT = 0.045
ENDPOINTS = 3 * 0.01  # ecr.api, ecr.dkr, logs in one AZ


def run(capsys, *argv):
    parser = argparse.ArgumentParser(prog="rackform")
    cost_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, "cost", "--json", *argv)
    return code, json.loads(out), err


@pytest.fixture
def accept(tmp_path):
    return dump(tmp_path, ACCEPT)


def with_groups(region: str, az: str, *groups: dict, fsx: dict | None = None) -> dict:
    spec = {"name": "t", "region": region, "availability_zone": az, "network": {"interface_endpoints": False},
            "racks": [{"name": "r", "node_groups": list(groups)}]}
    if fsx:
        spec["storage"] = {"fsx_lustre": fsx}
    return spec


# --- arithmetic --------------------------------------------------------------------------------------------------

def test_acceptance_case_json(capsys, accept):
    code, report, err = run_json(capsys, accept)
    assert code == 0 and err == ""
    assert report["instances_usd_per_hour"] == INSTANCES
    assert report["storage_usd_per_hour"] == pytest.approx(FSX)
    assert report["network_usd_per_hour"] == pytest.approx(NAT + ENDPOINTS)
    assert report["total_usd_per_hour"] == pytest.approx(INSTANCES + FSX + NAT + ENDPOINTS)
    assert report["total_usd_per_month"] == pytest.approx((INSTANCES + FSX + NAT + ENDPOINTS) * 730)
    assert report["complete"] is True and report["unknown"] == []
    groups = {g["name"]: g for g in report["node_groups"]}
    assert groups["gpu/h100"]["usd_per_hour"] == 110.08 and groups["gpu/h100"]["usd_per_month"] == 80358.4
    assert groups["trn/workers"]["usd_per_hour_each"] == 21.5
    assert {r["name"]: r["usd_per_hour"] for r in report["racks"]} == {"gpu": 110.08, "trn": 43.0, "graviton": 7.66}
    assert report["storage"][0]["usd_per_month"] == pytest.approx(4800 * 0.145)
    assert any("data processing" in x for x in report["not_included"])


def test_acceptance_case_table(capsys, accept):
    code, out, _ = run(capsys, "cost", accept)
    assert code == 0
    assert ("total    161.77 $/hour, 118,090.95 $/month with every node running all month  (instances 160.74, "
            "storage 0.9534, network 0.075)") in out
    # idle: FSx 4,800 GiB x 0.145 = 696.00 $/month, + (NAT 0.045 + 3 endpoints x 0.01) x 730 h = 54.75
    assert "idle     1.03 $/hour, 750.75 $/month with no node running" in out
    row = next(line for line in out.splitlines() if line.startswith("gpu/h100"))
    assert row.split()[4:7] == ["55.04", "110.08", "80,358.40"]
    assert "FSx for Lustre PERSISTENT_2 4,800 GiB, 125 MB/s/TiB" in out and "NAT gateway" in out
    assert "racks    gpu 110.08 $/h; trn 43.00 $/h; graviton 7.66 $/h" in out
    assert "not included: NAT gateway data processing, per GB (0.045 $/GB)" in out


def test_cost_plan_is_pure_arithmetic(catalog):
    spec, _ = load_spec_text(json.dumps(with_groups(
        "us-east-1", "us-east-1c", {"name": "small", "instance_type": "trn1.2xlarge", "count": 10},
        fsx={"deployment_type": "SCRATCH_2", "storage_capacity_gib": 1200})))
    report = cost.cost_plan(build_plan(spec, catalog), load_prices())
    assert report.of("instances").usd_per_hour == 13.4375
    assert report.of("storage").usd_per_hour == pytest.approx(1200 * 0.14 / 730)
    assert report.of("network").usd_per_hour == NAT  # endpoints turned off: the NAT gateway only
    assert "0 interface" not in " ".join(ln.name for ln in report.lines)


# --- unknown prices ---------------------------------------------------------------------------------------------

def test_region_without_prices_is_unknown_never_zero(capsys, tmp_path):
    # skypilot-catalog lists p5e.48xlarge in us-east-2 without an On-Demand rate: no seed prices it.
    spec = with_groups("us-east-2", "us-east-2c", {"name": "h100", "instance_type": "p5e.48xlarge", "count": 2})
    code, report, _ = run_json(capsys, dump(tmp_path, spec))
    assert code == 0
    assert report["instances_usd_per_hour"] is None and report["instances_known_usd_per_hour"] == 0
    assert report["total_usd_per_hour"] is None and report["total_usd_per_month"] is None
    assert report["complete"] is False
    assert report["node_groups"][0]["usd_per_hour"] is None
    assert "us-east-2" in report["unknown"][0]["reason"] and "--price p5e.48xlarge=" in report["unknown"][0]["reason"]
    code, out, _ = run(capsys, "cost", dump(tmp_path, spec))
    row = next(line for line in out.splitlines() if line.startswith("r/h100"))
    assert "unknown" in row and "0.00" not in row
    assert "total    ≥ 0.045 $/hour" in out and "instances unknown" in out


def test_unpriced_fsx_tier_is_unknown(capsys, tmp_path):
    spec = with_groups("us-east-1", "us-east-1c", {"name": "c", "instance_type": "c7g.16xlarge", "count": 1},
                       fsx={"deployment_type": "PERSISTENT_2", "storage_capacity_gib": 2400,
                            "per_unit_storage_throughput": 1000})
    code, report, _ = run_json(capsys, dump(tmp_path, spec))
    assert report["storage_usd_per_hour"] is None and report["instances_usd_per_hour"] == 2.32
    assert report["total_known_usd_per_hour"] == pytest.approx(2.32 + NAT)
    assert "1000 MB/s/TiB" in report["unknown"][0]["reason"]


CAPACITY_BLOCK = {"name": "cb", "instance_type": "p5.48xlarge", "count": 2,
                  "capacity": {"type": "capacity-block", "reservation_id": "cr-0123456789abcdef0"}}
RESERVATION = CAPACITY_BLOCK | {"capacity": {"type": "reservation", "reservation_id": "cr-0123456789abcdef0"}}


def test_reservation_is_unknown_without_a_price(capsys, tmp_path):
    code, report, _ = run_json(capsys, dump(tmp_path, with_groups("us-east-1", "us-east-1c", RESERVATION)))
    assert code == 0 and report["instances_usd_per_hour"] is None
    assert "give --price p5.48xlarge=USD_PER_HOUR (or r/cb=USD_PER_HOUR)" in report["unknown"][0]["reason"]
    _, out, _ = run(capsys, "cost", dump(tmp_path, with_groups("us-east-1", "us-east-1c", RESERVATION)))
    assert "unknown (give --price)" in out


def test_capacity_block_is_priced_at_the_published_rate_and_says_so(capsys, tmp_path):
    spec = dump(tmp_path, with_groups("us-east-1", "us-east-1c", CAPACITY_BLOCK))
    code, report, _ = run_json(capsys, spec)
    group = report["node_groups"][0]
    # p5.48xlarge's published us-east-1 rate, not its On-Demand 55.04: a block is bought at the block rate.
    assert code == 0 and group["usd_per_hour_each"] == 41.528 and group["usd_per_hour"] == pytest.approx(2 * 41.528)
    assert group["price_source"] == "Capacity Block published rate 2026-07-22 (secondary)"
    assert any(n.startswith("the true price of the Capacity Block of r/cb") and "upfront fee" in n
               for n in report["not_included"])
    # The user's --price (the fee they paid) wins, and then the published-rate caveat is not said.
    code, report, _ = run_json(capsys, spec, "--price", "r/cb=30")
    assert report["node_groups"][0]["usd_per_hour"] == 60 and report["node_groups"][0]["price_source"] == "--price"
    assert not any("Capacity Block" in n for n in report["not_included"])


def test_capacity_block_without_a_published_rate_stays_unknown(capsys, tmp_path):
    # AWS publishes trn2.48xlarge block rates for us-east-2 only; ap-south-2 offers the type too.
    group = CAPACITY_BLOCK | {"instance_type": "trn2.48xlarge"}
    spec = with_groups("ap-south-2", "aps2-az1", group)
    code, report, _ = run_json(capsys, dump(tmp_path, spec))
    assert code == 0 and report["instances_usd_per_hour"] is None
    reason = report["unknown"][0]["reason"]
    assert "no published Capacity Block rate for trn2.48xlarge in ap-south-2" in reason
    assert "published for us-east-2" in reason and "give --price trn2.48xlarge=USD_PER_HOUR" in reason
    assert not any("Capacity Block" in n for n in report["not_included"])


def test_price_override_by_type_and_by_group(capsys, tmp_path):
    spec = dump(tmp_path, with_groups("us-east-1", "us-east-1c", CAPACITY_BLOCK,
                                      {"name": "od", "instance_type": "p5.48xlarge", "count": 1}))
    _, report, _ = run_json(capsys, spec, "--price", "p5.48xlarge=31.46")
    groups = {g["name"]: g for g in report["node_groups"]}
    # A type price covers every group of that type, the on-demand one included: the user's word wins.
    assert groups["r/cb"]["usd_per_hour"] == 62.92 and groups["r/od"]["usd_per_hour"] == 31.46
    _, report, _ = run_json(capsys, spec, "--price", "r/cb=30", "--price", "p5.48xlarge=31.46")
    groups = {g["name"]: g for g in report["node_groups"]}
    assert groups["r/cb"]["usd_per_hour"] == 60.0 and groups["r/cb"]["price_source"] == "--price"
    assert report["instances_usd_per_hour"] == 91.46


def test_prices_file_and_flag_precedence(capsys, tmp_path):
    spec = dump(tmp_path, with_groups("us-east-1", "us-east-1c", CAPACITY_BLOCK))
    prices = tmp_path / "prices.yaml"
    prices.write_text("p5.48xlarge: 30\n")
    _, report, _ = run_json(capsys, spec, "--prices-file", prices)
    assert report["instances_usd_per_hour"] == 60.0
    assert report["node_groups"][0]["price_source"] == f"prices file {prices}"
    _, report, _ = run_json(capsys, spec, "--prices-file", prices, "--price", "p5.48xlarge=25")
    assert report["instances_usd_per_hour"] == 50.0
    prices.write_text("p5.48xlarge: free\n")
    code, _, err = run(capsys, "cost", spec, "--prices-file", prices)
    assert code == 2 and "not a number" in err


def test_unused_price_keys_warn(capsys, accept):
    code, _, err = run(capsys, "cost", accept, "--price", "p9.huge=1")
    assert code == 0 and "warning: price for 'p9.huge' matches no node group" in err


@pytest.mark.parametrize("argv", [["--price", "p5.48xlarge"], ["--price", "p5.48xlarge=-3"], ["--budget", "x"],
                                  ["--budget", "-1"]])
def test_bad_command_line_exits_2(capsys, accept, argv):
    with pytest.raises(SystemExit) as e:
        run(capsys, "cost", accept, *argv)
    assert e.value.code == 2


def test_invalid_spec_raises_for_the_cli_to_report(capsys, tmp_path):
    bad = ACCEPT | {"availability_zone": "us-east-1z"}
    with pytest.raises(SpecError):
        run(capsys, "cost", dump(tmp_path, bad))


# --- budget -------------------------------------------------------------------------------------------------------

def test_over_budget_exits_1_naming_the_largest(capsys, accept):
    code, out, err = run(capsys, "cost", accept, "--budget", "100")
    assert code == 1
    assert err.strip() == ("error: over budget: 161.77 $/hour > 100.00 $/hour; largest: gpu/h100 110.08 $/h, "
                           "trn/workers 43.00 $/h, graviton/head 7.66 $/h")
    assert "budget   over budget" in out


def test_within_budget_exits_0(capsys, accept):
    code, report, err = run_json(capsys, accept, "--budget", "162")
    assert code == 0 and err == ""
    assert report["budget"]["ok"] is True and report["budget"]["usd_per_hour"] == 162
    assert [x["item"] for x in report["budget"]["largest"]] == ["gpu/h100", "trn/workers", "graviton/head"]


def test_budget_with_unknown_prices_cannot_pass(capsys, tmp_path):
    spec = dump(tmp_path, with_groups("us-east-1", "us-east-1c", RESERVATION))
    code, _, err = run(capsys, "cost", spec, "--budget", "1000")
    assert code == 1 and "cannot confirm the budget" in err and "r/cb" in err
    # ...but a priced part already over the budget is over, unknowns or not.
    code, _, err = run(capsys, "cost", spec, "--budget", "0.01")
    assert code == 1 and "over budget: ≥ 0.045 $/hour" in err


# --- Spot ---------------------------------------------------------------------------------------------------------

def test_spot_groups_unknown_unless_read_live(capsys, tmp_path, monkeypatch):
    spec = dump(tmp_path, with_groups("us-east-1", "us-east-1c", {"name": "s", "instance_type": "c7g.16xlarge",
                                                                  "count": 4, "capacity": {"type": "spot"}}))
    _, report, _ = run_json(capsys, spec)
    assert report["instances_usd_per_hour"] is None and "--spot-live" in report["unknown"][0]["reason"]

    client = botocore.session.get_session().create_client(
        "ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stub = Stubber(client)
    stub.add_response("describe_spot_price_history", {"SpotPriceHistory": [
        {"AvailabilityZone": "us-east-1c", "InstanceType": "c7g.16xlarge", "ProductDescription": "Linux/UNIX",
         "SpotPrice": "0.8000", "Timestamp": dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.timezone.utc)}]})
    stub.activate()
    monkeypatch.setattr(cost_cli, "ec2_client", lambda region, *aws: client)
    _, report, _ = run_json(capsys, spec, "--spot-live")
    assert report["instances_usd_per_hour"] == 3.2
    assert report["node_groups"][0]["price_source"] == "Spot us-east-1c 2026-11-24 06:00Z"


def test_spot_without_live_is_priced_at_the_dated_snapshot_of_the_az(capsys, tmp_path):
    # us-east-2 maps AZ names alike in every account, so us-east-2a is use2-az1, the snapshot's key.
    group = {"name": "s", "instance_type": "c8g.4xlarge", "count": 3, "capacity": {"type": "spot"}}
    spec = dump(tmp_path, with_groups("us-east-2", "us-east-2a", group))
    snap = spot(load_prices(), "us-east-2", "use2-az1", "c8g.4xlarge")
    assert snap is not None and snap.source.startswith("Spot snapshot before 2025-06")
    _, report, _ = run_json(capsys, spec)
    line = report["node_groups"][0]
    assert line["usd_per_hour_each"] == snap.usd and line["usd_per_hour"] == pytest.approx(3 * snap.usd)
    assert line["price_source"] == snap.source
    code, out, _ = run(capsys, "cost", spec)
    assert code == 0 and f"{snap.source}" in out  # the table says the price's date: a Spot price moves


def test_spot_live_failure_is_a_message(capsys, tmp_path, monkeypatch):
    spec = dump(tmp_path, with_groups("us-east-1", "us-east-1c", {"name": "s", "instance_type": "c7g.16xlarge",
                                                                  "count": 1, "capacity": {"type": "spot"}}))

    def no_credentials(region, *aws):
        raise RuntimeError("Unable to locate credentials")

    monkeypatch.setattr(cost_cli, "ec2_client", no_credentials)
    code, out, err = run(capsys, "cost", spec, "--spot-live")
    assert code == 1 and out == "" and "Unable to locate credentials" in err


# --- On-Demand from the Price List API (--live) --------------------------------------------------------------------

def test_live_reads_on_demand_prices_for_the_spec_region(capsys, tmp_path, monkeypatch):
    spec = dump(tmp_path, with_groups("us-east-2", "us-east-2c", {"name": "g", "instance_type": "p5e.48xlarge",
                                                                  "count": 2}))
    _, report, _ = run_json(capsys, spec)
    assert report["instances_usd_per_hour"] is None  # the snapshot has no P5e On-Demand rate for us-east-2

    client = botocore.session.get_session().create_client(
        "pricing", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stub = Stubber(client)
    product = {"terms": {"OnDemand": {"t": {"priceDimensions": {"d": {"pricePerUnit": {"USD": "55.0400000000"}}}}}}}
    stub.add_response("get_products", {"PriceList": [json.dumps(product)]}, {
        "ServiceCode": "AmazonEC2", "Filters": price_list_filters("us-east-2", "p5e.48xlarge")})
    for key in ("nat_gateway", "vpc_interface_endpoint"):  # listed nowhere here: the snapshot's rates stay
        stub.add_response("get_products", {"PriceList": []}, network_request(key))
    stub.activate()
    monkeypatch.setattr(cost_cli, "pricing_client", lambda *aws: client)
    _, report, _ = run_json(capsys, spec, "--live")
    stub.assert_no_pending_responses()
    assert report["instances_usd_per_hour"] == 110.08
    assert report["node_groups"][0]["price_source"] == f"Price List API (live) {dt.date.today().isoformat()}"
    assert report["network"][0]["usd_per_hour"] == NAT and "cloudburn.io" in report["network"][0]["price_source"]


def test_live_prices_the_network_too_leaving_the_trn2_example_one_unknown(capsys, monkeypatch):
    client = botocore.session.get_session().create_client(
        "pricing", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stub = Stubber(client)
    for instance_type, usd in (("c7gn.16xlarge", "3.9936"), ("c8g.4xlarge", "0.63584"), ("p5.48xlarge", "55.04")):
        product = {"terms": {"OnDemand": {"t": {"priceDimensions": {"d": {"pricePerUnit": {"USD": usd}}}}}}}
        stub.add_response("get_products", {"PriceList": [json.dumps(product)]}, {
            "ServiceCode": "AmazonEC2", "Filters": price_list_filters("us-east-2", instance_type)})
    for key, page in (("nat_gateway", NAT_PAGE), ("nat_gateway", NAT_PAGE),
                      ("vpc_interface_endpoint", ENDPOINT_PAGE), ("vpc_interface_endpoint", ENDPOINT_PAGE)):
        stub.add_response("get_products", page, network_request(key))
    stub.activate()
    monkeypatch.setattr(cost_cli, "pricing_client", lambda *aws: client)
    _, report, _ = run_json(capsys, EXAMPLE, "--live")
    stub.assert_no_pending_responses()
    today = dt.date.today().isoformat()
    network = {ln["name"]: ln for ln in report["network"]}
    assert network["3 interface endpoints (ecr.api, ecr.dkr, logs) x 1 AZ"]["usd_per_hour"] == 0.03
    assert network["3 interface endpoints (ecr.api, ecr.dkr, logs) x 1 AZ"]["price_source"] == (
        f"0.01 $/hour per AZ (Price List API (live) {today})")
    assert network["NAT gateway"]["price_source"] == f"0.045 $/hour (Price List API (live) {today})"
    assert "interface endpoint data processing, per GB (0.01 $/GB)" in report["not_included"]
    # What the Price List API cannot give: FSx is read by neither the snapshot nor --live for us-east-2.
    assert [u["item"] for u in report["unknown"]] == ["FSx for Lustre PERSISTENT_2 4,800 GiB, 250 MB/s/TiB"]


def test_live_reads_no_network_rates_for_an_existing_network(capsys, monkeypatch):
    client = botocore.session.get_session().create_client(
        "pricing", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stub = Stubber(client)  # answers the two instance types and nothing else: a network call would fail the run
    for instance_type, usd in (("m7g.xlarge", "0.1632"), ("p5.48xlarge", "55.04")):
        product = {"terms": {"OnDemand": {"t": {"priceDimensions": {"d": {"pricePerUnit": {"USD": usd}}}}}}}
        stub.add_response("get_products", {"PriceList": [json.dumps(product)]}, {
            "ServiceCode": "AmazonEC2", "Filters": price_list_filters("us-east-1", instance_type)})
    stub.activate()
    monkeypatch.setattr(cost_cli, "pricing_client", lambda *aws: client)
    code, report, _ = run_json(capsys, EXAMPLE.with_name("existing-network.yaml"), "--live")
    stub.assert_no_pending_responses()
    assert code == 0 and report["network"] == [] and report["instances_usd_per_hour"] == 0.1632 + 2 * 55.04


def test_live_failure_is_a_message(capsys, tmp_path, monkeypatch):
    spec = dump(tmp_path, with_groups("us-east-2", "us-east-2c", {"name": "g", "instance_type": "c8g.4xlarge",
                                                                  "count": 1}))

    def no_credentials(*aws):
        raise RuntimeError("Unable to locate credentials")

    monkeypatch.setattr(cost_cli, "pricing_client", no_credentials)
    code, out, err = run(capsys, "cost", spec, "--live")
    assert code == 1 and out == "" and "Unable to locate credentials" in err and "pricing:GetProducts" in err


def test_live_price_list_ambiguity_is_a_message_that_does_not_blame_credentials(capsys, tmp_path, monkeypatch):
    spec = dump(tmp_path, with_groups("us-east-2", "us-east-2c", {"name": "g", "instance_type": "c8g.4xlarge",
                                                                  "count": 1}))

    def two_rates(*args, **kwargs):
        raise ValueError("NatGateway-Hours in us-east-2: the Price List API returned several rates [0.045, 0.05]")

    monkeypatch.setattr(cost_cli, "pricing_client", lambda *aws: object())
    monkeypatch.setattr("rackform.reference.refresh.ec2_region_block", two_rates)  # cost imports it when --live
    code, out, err = run(capsys, "cost", spec, "--live")
    assert code == 1 and out == "" and "several rates [0.045, 0.05]" in err
    assert "credentials" not in err and "--price" in err


# --- the example ----------------------------------------------------------------------------------------------------

def test_example_spec_prices_what_it_can(capsys):
    code, report, _ = run_json(capsys, EXAMPLE)
    assert code == 0 and report["region"] == "us-east-2" and report["ec2_prices"]["as_of"] == "after 2025-06"
    # The Graviton groups are priced from the older skypilot-catalog seed, the H100s from the newer one (the older's
    # P5 rate is out of date) and the trn2 Capacity Block at AWS's published us-east-2 rate; FSx and endpoints have
    # no us-east-2 rate.
    graviton = 0.63584 + 2 * 3.9936
    trn2_block = 4 * 35.7608
    h100 = {"usd_per_hour": 2 * 55.04, "price_source": "skypilot-catalog after 2025-06"}
    assert h100.items() <= next(g for g in report["node_groups"] if g["name"] == "gpu/h100").items()
    assert report["total_usd_per_hour"] is None
    assert report["total_known_usd_per_hour"] == pytest.approx(NAT + graviton + trn2_block + 2 * 55.04)
    assert [u["item"] for u in report["unknown"]] == [
        "FSx for Lustre PERSISTENT_2 4,800 GiB, 250 MB/s/TiB", "3 interface endpoints (ecr.api, ecr.dkr, logs) x 1 AZ"]
    assert report["unknown"][1]["reason"] == ("no interface endpoint price for us-east-2 in the snapshot "
                                              "(--live reads it from the AWS Price List API)")



def test_header_names_the_seed_a_group_was_priced_from(capsys, tmp_path):
    # m7i.xlarge is not in us-east-1's Price List block: its price comes from the seed beside it, so the header and
    # the JSON name that seed and its date too, not the Price List's alone.
    spec = dump(tmp_path, {**ACCEPT, "racks": [
        {"name": "cpu", "node_groups": [{"name": "head", "instance_type": "m7i.xlarge", "count": 1}]}]})
    code, report, _ = run_json(capsys, spec)
    newer, older = load_prices().ec2_on_demand.seed_regions["us-east-1"]  # the newer lists no m7i
    assert code == 0 and report["node_groups"][0]["price_source"] == f"{older.label} {older.as_of}"
    assert report["ec2_seed_prices"] == [{"source": b.source, "as_of": b.as_of} for b in (newer, older)]
    code, out, _ = run(capsys, "cost", spec)
    header = out.splitlines()[0]
    assert code == 0 and header.index("Price List API snapshot of") < header.index(f"snapshot of {newer.as_of}") \
        < header.index(f"snapshot of {older.as_of}")
    # A Region with no seed block beside its primary says nothing of one.
    _, lone, _ = run_json(capsys, dump(tmp_path, with_groups("eu-west-3", "eu-west-3a",
                                                             {"name": "c", "instance_type": "c6i.large", "count": 1})))
    assert lone["ec2_seed_prices"] == []
