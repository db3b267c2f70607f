"""Issue 25 item 6: small things said truthfully. validate --live names the endpoint it read (however it was set),
preflight against the embedded AWS says which checks that endpoint cannot answer (and its console shows no
traceback), and a type missing from the chosen AZ is met with the AZ IDs that offer every type of the spec."""

from __future__ import annotations

import os

import pytest
import yaml

from rackform import aws
from rackform.cli import main
from rackform.jobs.local import EmbeddedAWS, without_credentials
from tests.conftest import ROOT, dump, run_cli

SPEC = str(ROOT / "examples" / "demo.yaml")
REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens


@pytest.fixture(scope="module")
def embedded():
    with EmbeddedAWS("us-east-1") as a:
        yield a


@pytest.fixture
def pointed_at(embedded, monkeypatch):
    """The environment `make demo-serve` prints: AWS_ENDPOINT_URL, not --endpoint-url, names the embedded AWS."""
    for k in set(os.environ) - set(without_credentials(os.environ)):
        monkeypatch.delenv(k)
    for k, v in embedded.env.items():
        monkeypatch.setenv(k, v)
    return embedded


def test_validate_live_names_the_endpoint_set_in_the_environment(pointed_at, capsys):
    code, out, _ = run_cli(capsys, "validate", "--live", SPEC)
    assert code == 0 and f"catalog: EC2 API ({pointed_at.endpoint_url}) read live for us-east-1" in out


def test_validate_live_names_an_unreachable_endpoint_from_the_environment(monkeypatch, capsys):
    monkeypatch.setattr(aws, "RETRIES", {"mode": "standard", "total_max_attempts": 1})
    for k, v in {"AWS_ENDPOINT_URL": REFUSED, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(k, v)
    code, out, err = run_cli(capsys, "validate", "--live", SPEC)
    assert code == 1 and f"cannot connect to {REFUSED}" in err and "cannot connect to AWS" not in err


def test_preflight_on_the_embedded_aws_marks_what_it_cannot_answer(pointed_at, capfd):
    code = main(["preflight", SPEC])
    console = capfd.readouterr()  # the embedded AWS's server logs to this process's stderr
    out = console.out
    assert code == 1  # demo.yaml's data repository bucket does not exist there: a blocker
    unanswered = [line for line in out.splitlines() if "not checkable here" in line]
    # moto implements neither Service Quotas' default quotas nor CloudFormation's account limits
    assert any("CloudFormation stacks" in line and "cloudformation:DescribeAccountLimits" in line
               for line in unanswered)
    assert any(line.startswith("unknown  vCPU quota") for line in unanswered)
    assert "run preflight against AWS itself to check it" in out
    assert "ResponseParserError" not in out and "Traceback" not in console.err + console.out


def test_a_type_missing_from_the_az_names_the_azs_that_offer_every_type(capsys, tmp_path, catalog):
    demo = yaml.safe_load(open(SPEC))
    demo["availability_zone"] = "use1-az1"  # offers p5.48xlarge, not trn1.32xlarge
    code, _, err = run_cli(capsys, "validate", dump(tmp_path, demo))
    assert code == 1 and "trn1.32xlarge is not offered in use1-az1" in err
    every = set.intersection(*(set(catalog.azs_offering("us-east-1", g["instance_type"]))
                               for r in demo["racks"] for g in r["node_groups"]))
    assert "use1-az6" in every and "use1-az1" not in every
    assert f"AZ that offers every type of the spec (EFA does not cross AZs): {', '.join(sorted(every))}\n" in err
    demo["racks"][1]["node_groups"][0]["instance_type"] = "trn2.48xlarge"  # no AZ of us-east-1 offers it
    code, _, err = run_cli(capsys, "validate", dump(tmp_path, demo))
    assert code == 1 and "No AZ of us-east-1 offers every type of the spec" in err
