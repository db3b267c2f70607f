"""AZ names and AZ IDs: offerings are kept by AZ ID; an AZ name is trusted offline only where every account maps it
to the same zone, and `validate --live` reads the account's own mapping."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_cdk import App, Environment
from aws_cdk.assertions import Template
from moto import mock_aws

from rackform.reference.catalog import INDEPENDENTLY_MAPPED_REGIONS, is_zone_id
from rackform.cli import main
from rackform.plan.models import build_plan
from rackform.preflight.checks import check_offerings
from rackform.preflight.fetch import fetch_offerings
from rackform.spec.models import Spec, load_spec
from rackform.validate import validate_spec
from stacks import NetworkStack

from tests.conftest import ROOT, dump

DEMO = ROOT / "examples" / "demo.yaml"


def spec_in(region: str, az: str, instance_type: str = "trn1.32xlarge") -> dict:
    return {"name": "az", "region": region, "availability_zone": az,
            "racks": [{"name": "r", "node_groups": [{"name": "g", "instance_type": instance_type, "count": 1}]}]}


def problems(data: dict, catalog):
    return validate_spec(Spec.model_validate(data), catalog)


def test_catalog_keeps_offerings_by_az_id(catalog):
    assert catalog.azs_offering("us-east-1", "trn1.32xlarge") == ("use1-az4", "use1-az5", "use1-az6")
    assert catalog.azs_offering("us-east-2", "trn1.32xlarge") == ("use2-az3",)
    assert all(is_zone_id(z) for types in catalog.offerings.values() for zones in types.values() for z in zones)
    assert catalog.zone_ids["us-east-2"]["us-east-2c"] == "use2-az3"
    assert catalog.zone_id("us-east-2", "us-east-2c") == "use2-az3"  # uniform mapping: the same for everyone
    assert catalog.zone_id("us-east-1", "us-east-1c") is None  # per-account mapping: unknown offline
    assert catalog.zone_id("us-east-1", "use1-az6") == "use1-az6"
    assert {"us-east-1", "us-west-2", "eu-west-1"} <= INDEPENDENTLY_MAPPED_REGIONS
    assert "us-east-2" not in INDEPENDENTLY_MAPPED_REGIONS


def test_az_id_validates_plans_and_places_the_subnets_by_id(catalog, tmp_path):
    spec, _ = load_spec(DEMO)
    assert spec.availability_zone == "use1-az6"
    assert validate_spec(spec, catalog) == []
    plan = build_plan(spec, catalog)
    assert (plan.availability_zone, plan.availability_zone_id) == ("use1-az6", "use1-az6")
    assert plan.network.availability_zone_id == "use1-az6"
    app = App(outdir=str(tmp_path))
    stack = NetworkStack(app, "net", spec_name=plan.name, network=plan.network, env=Environment(region=plan.region))
    subnets = Template.from_stack(stack).find_resources("AWS::EC2::Subnet")
    assert len(subnets) == 2
    assert [r["Properties"]["AvailabilityZoneId"] for r in subnets.values()] == ["use1-az6"] * 2
    template = json.dumps(Template.from_stack(stack).to_json())
    assert '"AvailabilityZone"' not in template  # no AZ ID passed off as a name anywhere


def test_az_name_where_names_map_per_account_warns_naming_az_ids_and_live(catalog):
    found = problems(spec_in("us-east-1", "us-east-1c"), catalog)
    [p] = found
    assert (p.level, p.rule) == ("warning", "instance-offered-in-az-name")
    assert p.path == "racks[0].node_groups[0].instance_type"
    assert "use1-az4, use1-az5, use1-az6" in p.message and "rackform validate --live" in p.message
    # A type in every AZ of the Region is offered whichever zone the name is.
    assert problems(spec_in("us-east-1", "us-east-1c", "p5.48xlarge"), catalog) == []
    # Offered nowhere in the Region: an error whatever the mapping.
    [p] = problems(spec_in("us-east-1", "us-east-1c", "trn2.48xlarge"), catalog)
    assert p.level == "error" and "us-east-2" in p.message


def test_az_name_in_a_uniformly_mapped_region_keeps_the_error(catalog):
    [p] = problems(spec_in("us-east-2", "us-east-2a"), catalog)
    assert (p.level, p.rule) == ("error", "instance-offered-in-az")
    assert "not offered in us-east-2a (use2-az1): in us-east-2 it is offered in us-east-2c (use2-az3)" in p.message


def test_az_id_not_offering_the_type_is_an_error(catalog):
    [p] = problems(spec_in("us-east-1", "use1-az1"), catalog)
    assert (p.level, p.rule) == ("error", "instance-offered-in-az")
    assert "not offered in use1-az1: in us-east-1 it is offered in use1-az4, use1-az5, use1-az6" in p.message


def test_unknown_az_id_is_an_error_with_did_you_mean(catalog):
    [p] = problems(spec_in("us-east-1", "use1-az7", "p5.48xlarge"), catalog)
    assert (p.level, p.rule, p.path) == ("error", "az-in-region", "availability_zone")
    assert "did you mean 'use1-az" in p.message and "use1-az1, use1-az2" in p.message
    [p] = problems(spec_in("us-east-2", "use1-az6", "p5.48xlarge"), catalog)  # an ID of another Region
    assert p.rule == "az-in-region" and "use2-az1, use2-az2, use2-az3" in p.message


def test_validate_live_resolves_names_with_the_accounts_mapping(capsys, tmp_path):
    # moto's account maps us-east-1a to use1-az6 (offers trn1.32xlarge) and us-east-1c to use1-az2 (does not).
    with mock_aws():
        boto3.setup_default_session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        try:
            code = main(["validate", "--live", str(dump(tmp_path, spec_in("us-east-1", "us-east-1a"), "a.yaml"))])
            out, err = capsys.readouterr()
            assert code == 0 and "0 warnings" in out and err == ""
            code = main(["validate", "--live", str(dump(tmp_path, spec_in("us-east-1", "us-east-1c"), "c.yaml"))])
            out, err = capsys.readouterr()
            assert code == 1 and "not offered in us-east-1c (use1-az2)" in err and "--live" not in err
        finally:
            boto3.DEFAULT_SESSION = None


def test_preflight_checks_an_az_id_against_offerings_by_id(catalog):
    spec, _ = load_spec(DEMO)
    plan = build_plan(spec, catalog)
    with mock_aws():
        offered = fetch_offerings(boto3.client("ec2", region_name="us-east-1"), ["trn1.32xlarge", "p5.48xlarge"])
    assert {"use1-az4", "us-east-1b"} <= set(offered["trn1.32xlarge"])  # IDs and this account's names
    checks = check_offerings(plan, {**offered, "m7g.xlarge": ("use1-az1",), "c7gn.16xlarge": ("us-east-1a",)})
    assert {c.name: c.status for c in checks} == {"offering m7g.xlarge": "blocker", "offering c7gn.16xlarge": "blocker",
                                                  "offering trn1.32xlarge": "ok", "offering p5.48xlarge": "ok"}
    [m7g] = [c for c in checks if c.name == "offering m7g.xlarge"]
    assert m7g.found == "not offered in use1-az6; offered in use1-az1"


@pytest.mark.parametrize("region,az,expected", [("us-east-2", "us-east-2c", "use2-az3"),
                                                 ("us-east-1", "us-east-1a", None)])
def test_plan_carries_the_az_id_only_where_it_is_known(catalog, region, az, expected):
    plan = build_plan(Spec.model_validate(spec_in(region, az, "p5.48xlarge")), catalog)
    assert (plan.availability_zone, plan.availability_zone_id) == (az, expected)
