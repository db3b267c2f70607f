"""`rackform use` and `rackform context` (issue 25 item 2): the bucket and Region are remembered in the user's config
dir (written whole, 0600, validated on read), and status, logs, results, report and health default to them and to
the bucket's newest run, saying so. AWS is moto, in process."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import boto3
import pytest

from rackform.pipeline import load_plan
from tests.conftest import ROOT, moto_aws, run_cli

SPEC = ROOT / "examples" / "demo.yaml"  # cluster demo, us-east-1
REGION = "us-east-1"


def context_file() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "rackform" / "context.json"


@pytest.fixture
def aws(demo_deployed, monkeypatch):
    """The demo deployed in moto, its bucket NOT in RACKFORM_BUCKET: only the context can name it."""
    monkeypatch.delenv("RACKFORM_BUCKET")
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # the context's Region is the one the commands use
    return demo_deployed["store"].bucket


def test_use_bucket_remembers_it_privately_and_context_shows_it(capsys):
    code, out, err = run_cli(capsys, "use", "--bucket", "my-results", "--region", "us-east-2")
    assert code == 0, err
    assert "using bucket my-results in us-east-2" in out
    path = context_file()
    assert json.loads(path.read_text()) == {"bucket": "my-results", "region": "us-east-2"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["context.json"]  # no temporary file left beside it
    code, out, _ = run_cli(capsys, "context")
    assert code == 0 and "bucket  my-results" in out and "region  us-east-2" in out
    code, out, _ = run_cli(capsys, "context", "--json")
    assert json.loads(out) == {"context": str(path), "bucket": "my-results", "region": "us-east-2"}


def test_context_without_one_says_how_to_make_it(capsys):
    code, out, _ = run_cli(capsys, "context")
    assert code == 0 and "no context in" in out and "rackform use" in out


@pytest.mark.parametrize("text, why", [
    ("{not json", "Invalid JSON"),
    ('{"bucket": "Bad_Bucket"}', "bucket: String should match pattern"),
    ('{"bucket": "ok-bucket", "profile": "x"}', "profile: Extra inputs are not permitted"),
    ("[]", "Input should be an object"),
])
def test_a_malformed_context_is_a_clear_error_everywhere(capsys, text, why):
    context_file().parent.mkdir(parents=True)
    context_file().write_text(text)
    for argv in (["context"], ["status", "r1"], ["runs"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 1, argv
        assert f"{context_file()} is not a rackform context" in err and why in err and "rackform use" in err


@pytest.mark.parametrize("argv, says", [
    ([], "not both and not neither"),
    ([str(SPEC), "--bucket", "b-1"], "not both and not neither"),
    (["--bucket", "Not_A_Bucket"], "--bucket 'Not_A_Bucket' is not a bucket name"),
    (["--bucket", "ok-bucket", "--region", "mars"], "--region 'mars' is not a Region"),
])
def test_use_refuses_what_it_cannot_remember(capsys, argv, says):
    code, _, err = run_cli(capsys, "use", *argv)
    assert code == 2 and says in err
    assert not context_file().exists()


def test_use_spec_reads_the_storage_stacks_bucket_and_the_specs_region(monkeypatch, capsys):
    with moto_aws(monkeypatch, REGION):
        template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"ResultsBucketName": {"Value": "demo-results-123"}}}
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=load_plan(str(SPEC)).storage.stack_name, TemplateBody=json.dumps(template))
        code, out, err = run_cli(capsys, "use", SPEC)
    assert code == 0, err
    assert json.loads(context_file().read_text()) == {"bucket": "demo-results-123", "region": REGION,
                                                      "spec": str(SPEC.resolve())}


def submit(capsys, run_id: str, benchmark: str = "cpu") -> None:
    code, _, err = run_cli(capsys, "submit", SPEC, "--rack", "graviton", "--node-group", "head", "--benchmark",
                           benchmark, "--run-id", run_id, "--bucket", os.environ["H11_BUCKET"])
    assert code == 0, err


@pytest.mark.parametrize("command", ["status", "results", "logs", "report", "health"])
def test_commands_default_to_the_context_and_the_newest_run(aws, capsys, monkeypatch, command):
    monkeypatch.setenv("H11_BUCKET", aws)
    submit(capsys, "older")
    time.sleep(1.1)  # S3 lists LastModified to the second: the newer run starts a second later
    submit(capsys, "newer")
    assert run_cli(capsys, "use", "--bucket", aws, "--region", REGION)[0] == 0
    code, out, err = run_cli(capsys, command)
    assert f"bucket {aws} ({REGION}): from {context_file()}" in err
    assert f"run newer: the newest in s3://{aws}/results/" in err
    assert "older" not in out + err.replace("older runs", "")
    if command == "status":
        assert code == 1 and "cpu" in out  # moto's Batch ended the job without a record
    else:  # the newest run has no records or logs yet: the error names it, as for `rackform COMMAND newer`
        assert code == 1 and "newer" in err


def test_an_explicit_bucket_or_run_wins_over_the_context(aws, capsys, monkeypatch):
    monkeypatch.setenv("H11_BUCKET", aws)
    submit(capsys, "r1")
    assert run_cli(capsys, "use", "--bucket", "elsewhere-bucket", "--region", "us-west-2")[0] == 0
    code, out, err = run_cli(capsys, "status", "r1", "--bucket", aws, "--region", REGION)
    assert "from " not in err and "newest" not in err and "cpu" in out
    monkeypatch.setenv("RACKFORM_BUCKET", aws)
    code, out, err = run_cli(capsys, "status", "r1", "--region", REGION)
    assert "from " not in err and "cpu" in out


def test_no_runs_yet_is_a_clear_error(aws, capsys):
    assert run_cli(capsys, "use", "--bucket", aws, "--region", REGION)[0] == 0
    code, _, err = run_cli(capsys, "status")
    assert code == 1 and "holds no runs yet" in err and "give RUN" in err
