"""One AWS layer (issue 10 item 5, issue 12 item 7): clients with the profile, Region, endpoint and standard retries
the user chose, one paginate, and each AWS failure the user can fix told apart in one line with its fix. No real
AWS: moto, botocore's Stubber, and a port nothing listens on."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import boto3
import pytest
from botocore import exceptions as bx
from moto import mock_aws

from rackform import aws
from rackform.preflight import fetch as preflight
from rackform.reference import refresh
from rackform.cli import main

from tests.conftest import ROOT, run_cli

SPEC = ROOT / "examples" / "demo.yaml"  # cluster demo in us-east-1
REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


@pytest.fixture
def no_aws_config(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "RACKFORM_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(aws, "RETRIES", {"mode": "standard", "total_max_attempts": 1})  # a refused port fails at once


@pytest.fixture
def fake_credentials(no_aws_config, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")


def cli(capsys, *argv) -> tuple[int, str, list[str]]:
    code, out, err = run_cli(capsys, *argv)
    # warnings about the spec may come first; the failure is the last two lines: what is wrong, what to do
    return code, out, err.splitlines()


# --- the client factory -----------------------------------------------------------------------------------------

def test_clients_carry_region_endpoint_profile_and_standard_retries(fake_credentials, tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.write_text("[profile lab]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    c = aws.client(aws.Target("us-east-2", None, "http://localhost:4566"), "batch")
    assert (c.meta.region_name, c.meta.endpoint_url) == ("us-east-2", "http://localhost:4566")
    assert c.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}  # the test's RETRIES
    assert aws.client(aws.Target(profile="lab"), "s3").meta.region_name == "eu-west-1"
    # a caller's own retries win: SubmitJob is never resent by botocore
    no_retry = aws.client(aws.Target("us-east-1"), "batch", config=__import__(
        "botocore.config", fromlist=["Config"]).Config(retries={"mode": "standard", "total_max_attempts": 1}))
    assert no_retry.meta.config.retries["total_max_attempts"] == 1


def test_the_default_retries_are_standard_mode():
    assert aws.RETRIES == {"mode": "standard", "total_max_attempts": 5}


def test_an_explicit_region_wins_over_the_specs():
    assert aws.Target("eu-west-1").with_region("us-east-1").region == "eu-west-1"
    assert aws.Target().with_region("us-east-1").region == "us-east-1"


def test_paginate_is_one_function_everywhere():
    assert refresh.paginate is aws.paginate and preflight.paginate is aws.paginate
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        zones = aws.paginate(ec2, "describe_instance_type_offerings", "InstanceTypeOfferings",
                             LocationType="availability-zone")
        assert zones and all("InstanceType" in z for z in zones)


def test_only_the_aws_layer_builds_boto3_clients():
    # The embedded AWS (moto on 127.0.0.1 with its fixed fake credentials) is the one other place.
    allowed = {"rackform/aws.py", "rackform/jobs/local.py"}
    offenders = []
    for path in sorted((ROOT / "rackform").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "boto3" \
                    and node.attr in ("client", "Session", "resource") and rel not in allowed:
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


# --- each failure its own message -------------------------------------------------------------------------------

def error(code: str, message: str = "m", op: str = "GetObject", status: int = 400) -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, op)


@pytest.mark.parametrize("exc, message, hint", [
    (bx.NoCredentialsError(), "no usable AWS credentials", "pass --profile"),
    (bx.ProfileNotFound(profile="lab"), "AWS profile 'lab' is not in your AWS config", "--profile"),
    (bx.NoRegionError(), "no AWS Region", "pass --region"),
    (bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/"), "cannot connect to", "--endpoint-url"),
    (error("NoSuchBucket", "The specified bucket does not exist", status=404), "S3 bucket b does not exist",
     "deploy the storage stack first"),
    (error("ValidationError", "Stack with id demo-storage does not exist", "DescribeStacks"),
     "stack demo-storage is not deployed", "deploy first (`cdk deploy --all -c spec=SPEC`) or pass --bucket"),
    (error("ExpiredToken", status=400), "the AWS credentials have expired", "aws sso login"),
    (error("InvalidClientTokenId", "The security token included in the request is invalid"),
     "AWS rejected the credentials", "pass --profile"),
    (error("AccessDenied", "no", status=403), "access denied to GetObject", "needs that permission"),
    (error("ThrottlingException", "Rate exceeded"), "AWS throttled GetObject after retries", "try again"),
    (error("Weird", "something else"), "AWS GetObject failed in us-east-1: Weird: something else", "--region"),
])
def test_each_failure_is_told_apart(exc, message, hint):
    explained = aws.explained(exc, aws.Target("us-east-1"), bucket="b")
    assert explained.message.startswith(message) and hint in explained.hint
    assert "\n" not in explained.message + explained.hint


def test_an_html_error_page_is_cut_to_one_short_line():
    page = "<html>\n" + "x" * 5000 + "\n</html>"
    explained = aws.explained(error("InternalError", page, status=500))
    assert "\n" not in explained.message and len(explained.message) < 300


# --- through the CLI: every command that calls AWS ---------------------------------------------------------------

def test_connection_refused(fake_credentials, capsys):
    code, _, err = cli(capsys, "results", "r1", "--bucket", "b", "--region", "us-east-1", "--endpoint-url", REFUSED)
    assert code == 1 and err[-2].startswith(f"error: cannot connect to {REFUSED} in us-east-1")
    assert err[-1].startswith("hint: check --endpoint-url")


def test_no_such_bucket(fake_credentials, capsys):
    with mock_aws():
        code, _, err = cli(capsys, "runs", "--bucket", "nope", "--region", "us-east-1")
    assert code == 1 and err[-2] == "error: S3 bucket nope does not exist in us-east-1"


def test_storage_stack_not_deployed(fake_credentials, capsys):
    with mock_aws():
        code, _, err = cli(capsys, "submit", SPEC, "--rack", "gpu", "--benchmark", "gemm")
    assert code == 1 and err[-2] == "error: stack demo-storage is not deployed in us-east-1"
    assert err[-1] == "hint: deploy first (`cdk deploy --all -c spec=SPEC`) or pass --bucket (or set RACKFORM_BUCKET)"


def test_no_region(fake_credentials, capsys):
    code, _, err = cli(capsys, "status", "r1", "--bucket", "b", "--endpoint-url", REFUSED)
    assert code == 1 and err[-2:] == ["error: no AWS Region: none was given and none is configured",
                                      "hint: pass --region (or set AWS_REGION, or a region in your AWS profile)"]


@pytest.mark.parametrize("argv", [("status", "r1", "--bucket", "b", "--region", "us-east-1"),
                                  ("preflight", str(SPEC))])
def test_a_malformed_endpoint_is_explained_by_every_client_path(fake_credentials, capsys, argv):
    """preflight builds its clients through the factory: it once let botocore's ValueError out as a traceback."""
    code, _, err = cli(capsys, *argv, "--endpoint-url", "notaurl")
    assert code == 1 and err[-2:] == ["error: invalid endpoint: Invalid endpoint: notaurl",
                                      "hint: give --endpoint-url as http(s)://HOST[:PORT]"]


def test_no_credentials(no_aws_config, capsys):
    code, _, err = cli(capsys, "logs", "r1", "--bucket", "b", "--region", "us-east-1")
    assert code == 1 and err[-2].startswith("error: no usable AWS credentials")


def test_unknown_profile(no_aws_config, capsys):
    code, _, err = cli(capsys, "runs", "--bucket", "b", "--region", "us-east-1", "--profile", "lab")
    assert code == 1 and err[-2:] == ["error: AWS profile 'lab' is not in your AWS config",
                                      "hint: pass --profile with one that `aws configure list-profiles` shows, or "
                                      "drop it"]


@pytest.mark.parametrize("argv", [
    ["submit", SPEC, "--rack", "gpu", "--benchmark", "gemm", "--bucket", "b"],
    ["status", "r1", "--bucket", "b", "--region", "us-east-1"],
    ["results", "r1", "--bucket", "b", "--region", "us-east-1"],
    ["runs", "--bucket", "b", "--region", "us-east-1"],
    ["logs", "r1", "--bucket", "b", "--region", "us-east-1"],
    ["report", "r1", "--bucket", "b", "--region", "us-east-1"],
    ["advise", "r1", "--bucket", "b", "--region", "us-east-1"],
    ["validate", SPEC, "--live"],
    ["preflight", SPEC],
    ["cost", SPEC, "--spot-live"],
])
def test_every_aws_command_takes_profile_and_endpoint(fake_credentials, tmp_path, monkeypatch, capsys, argv):
    config = tmp_path / "config"
    config.write_text("[profile lab]\naws_access_key_id = x\naws_secret_access_key = x\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    code = main([str(a) for a in argv] + ["--profile", "lab", "--endpoint-url", REFUSED])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if argv[0] == "cost":  # no Spot groups in the spec: nothing to ask AWS
        assert code == 0
    elif argv[0] == "preflight":  # every check that could not run is "unknown", saying why
        assert code == 3 and "127.0.0.1:9" in out
    else:
        assert code == 1 and "127.0.0.1:9" in err


def test_preflight_uses_the_layer(fake_credentials):
    factory = preflight.aws_clients("us-east-1", REFUSED)
    ec2 = factory("ec2")
    assert ec2.meta.endpoint_url == REFUSED and ec2.meta.config.retries["mode"] == "standard"


def test_validate_live_explains_its_failure(fake_credentials, capsys):
    code, out, err = cli(capsys, "validate", SPEC, "--live", "--endpoint-url", REFUSED)
    assert code == 1 and out == "" and err[-2].startswith(f"error: cannot read the EC2 API for --live: cannot "
                                                          f"connect to {REFUSED}")
    assert err[-1].endswith("or drop --live to use the bundled catalog")


def test_the_offline_commands_still_load_no_botocore():
    import subprocess
    import sys

    code = ("import sys; from rackform.cli import main; main(['validate', %r]); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))))")
    proc = subprocess.run([sys.executable, "-c", "import json; " + code % str(SPEC)], cwd=ROOT, text=True,
                          capture_output=True, timeout=60)
    assert json.loads(proc.stdout.splitlines()[-1]) == []
    assert Path(ROOT / "rackform" / "aws.py").read_text().count("\nimport boto") == 0
