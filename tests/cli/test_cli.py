"""The command line as a user meets it: exit codes, messages on stderr, nothing written on failure."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from rackform.cli import main

from tests.conftest import EXAMPLE, ROOT, dump, run_cli


def test_validate_example(capsys):
    code, out, err = run_cli(capsys, "validate", EXAMPLE)
    # one warning: AWS Batch does not document Capacity Blocks, which the example's trn2 group uses
    assert code == 0 and "valid (3 racks, 4 node groups; 0 errors, 1 warning" in out
    assert err.count("warning:") == 1 and "racks[1].node_groups[0].capacity.type" in err


def test_validate_trn2_in_us_east_1a(capsys, tmp_path, demo):
    demo.update(region="us-east-1", availability_zone="us-east-1a")
    code, out, err = run_cli(capsys, "validate", dump(tmp_path, demo))
    assert code == 1
    line = next(l for l in err.splitlines() if "racks[1].node_groups[0].instance_type" in l)
    assert "trn2.48xlarge is not offered in us-east-1a" in line and "us-east-2" in line
    assert line.startswith(f"{tmp_path / 'spec.yaml'}:")  # file:line: prefix, like a compiler


def test_problems_carry_line_numbers(capsys, tmp_path):
    text = EXAMPLE.read_text().replace("count: 4", "count: 0")
    line_no = next(i for i, l in enumerate(text.splitlines(), 1) if "count: 0" in l)
    code, _, err = run_cli(capsys, "validate", dump(tmp_path, text))
    assert code == 1 and f"spec.yaml:{line_no}: error: racks[1].node_groups[0].count" in err


def test_warnings_do_not_fail(capsys, tmp_path, demo):
    demo["racks"][2]["node_groups"][0]["efa"] = False
    code, out, err = run_cli(capsys, "validate", dump(tmp_path, demo))
    assert code == 0 and "warning: racks[2].node_groups[0].count" in err and "2 warnings" in out


def test_validate_json(capsys, tmp_path, demo):
    demo["storage"]["fsx_lustre"]["storage_capacity_gib"] = 1000
    code, out, _ = run_cli(capsys, "validate", "--json", dump(tmp_path, demo))
    report = json.loads(out)
    assert code == 1 and report["valid"] is False
    [error] = [p for p in report["problems"] if p["level"] == "error"]
    assert error["path"] == "storage.fsx_lustre.storage_capacity_gib"


@pytest.mark.parametrize("content,fragment", [
    ("", "is empty"),
    ("name: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "a spec is a mapping"),
    ("name: a\nname: b\n", "duplicate key 'name'"),
    ("!!python/object/apply:os.system ['echo pwned']", "not valid YAML"),
    ("a: &a [*a, *a]\n", "nested deeper"),
    ("\x00\x01binary", "not valid YAML"),
])
def test_garbage_is_refused_without_traceback(capsys, tmp_path, content, fragment):
    code, out, err = run_cli(capsys, "validate", dump(tmp_path, content))
    assert code == 1 and fragment in err and "Traceback" not in err + out


def test_alias_bomb_is_bounded(capsys, tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, "
              f"*a{i-1}]" for i in range(1, 9)]
    code, _, err = run_cli(capsys, "validate", dump(tmp_path, "\n".join(lines)))
    assert code == 1 and "expands to more than" in err


def test_missing_file_and_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "validate", tmp_path / "nope.yaml")
    assert code == 1 and "does not exist" in err
    code, _, err = run_cli(capsys, "validate", tmp_path)
    assert code == 1 and "is a directory" in err


def test_plan_table(capsys):
    code, out, _ = run_cli(capsys, "plan", EXAMPLE)
    assert code == 0
    row = next(l for l in out.splitlines() if l.startswith("trn2-train/workers"))
    assert "trn2.48xlarge" in row and "16 efa on 16 cards" in row and "L-2C3B7624" in row
    assert "trn2-rack-trn2-train" in out


def test_plan_json_has_the_documented_keys(capsys):
    code, out, _ = run_cli(capsys, "plan", "--json", EXAMPLE)
    plan = json.loads(out)
    group = plan["racks"][1]["node_groups"][0]
    assert code == 0 and {"name", "instance_type", "count", "efa_interfaces", "network_interfaces"} <= set(group)
    assert group["efa_interfaces"] == 16 and len(group["network_interfaces"]) == 16


def test_plan_refuses_an_invalid_spec(capsys, tmp_path, demo):
    demo["racks"][0]["node_groups"][0]["instance_type"] = "c8g.4xlarg"
    code, out, err = run_cli(capsys, "plan", dump(tmp_path, demo))
    assert code == 1 and out == "" and "did you mean 'c8g.4xlarge'" in err


def test_synth_refuses_an_invalid_spec_and_writes_nothing(capsys, tmp_path, demo):
    demo["racks"][0]["node_groups"][0]["count"] = 0
    out_dir = tmp_path / "out"
    code, _, err = run_cli(capsys, "synth", dump(tmp_path, demo), "-o", out_dir)
    assert code == 1 and not out_dir.exists() and "count" in err


def test_schema_is_json_schema_with_every_key(capsys):
    code, out, _ = run_cli(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and set(schema["required"]) == {"name", "region", "availability_zone", "racks"}
    assert "instance_type" in schema["$defs"]["NodeGroup"]["properties"]
    assert schema["$defs"]["NodeGroup"]["additionalProperties"] is False


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["validate"])
    assert e.value.code == 2


def test_validate_live_reads_the_ec2_api(capsys, tmp_path, demo):
    # moto's EC2 stands in for AWS: the same calls the real API answers, no credentials.
    with mock_aws():
        boto3.setup_default_session(region_name="us-east-2", aws_access_key_id="x", aws_secret_access_key="x")
        code, out, _ = run_cli(capsys, "validate", "--live", EXAMPLE)
        assert code == 0 and "read live" in out
        demo.update(availability_zone="us-east-2a")
        demo["racks"][1]["node_groups"][0]["instance_type"] = "trn1.32xlarge"  # us-east-2c only
        demo["racks"][1]["node_groups"][0]["capacity"] = {"type": "on-demand"}
        code, _, err = run_cli(capsys, "validate", "--live", dump(tmp_path, demo))
        assert code == 1 and "offered in us-east-2c" in err
    boto3.DEFAULT_SESSION = None


def test_validate_live_without_credentials_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:9")  # nothing listens: fails fast, offline
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _, err = run_cli(capsys, "validate", "--live", EXAMPLE)
    assert code == 1 and "cannot read the EC2 API" in err and "Traceback" not in err


def test_module_entry_point_runs_in_a_fresh_process():
    proc = subprocess.run([sys.executable, "-m", "rackform", "validate", str(EXAMPLE)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "valid" in proc.stdout


def test_schema_workload_is_the_workload_files_json_schema(capsys):
    code, out, _ = run_cli(capsys, "schema", "--workload")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "rackform workload"
    assert {"name", "class", "tiers"} <= set(schema["required"])
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("argv", [["validate", str(EXAMPLE)], ["plan", str(EXAMPLE)], ["schema"],
                                  ["schema", "--workload"]])
def test_offline_commands_load_no_aws_sdk_cdk_torch_or_matplotlib(argv):
    # validate, plan and schema stay fast and installable without the heavy parts (`pip install rackform`)
    heavy = ("botocore", "boto3", "aws_cdk", "jsii", "torch", "matplotlib", "moto")
    code = ("import sys, contextlib, io\n"
            "from rackform.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main({argv!r}) == 0\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_aws_errors_are_messages_not_tracebacks(capsys, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    code, _, err = run_cli(capsys, "results", "some-run", "--bucket", "b", "--region", "us-east-1")
    assert code == 1 and "Traceback" not in err
    assert err.splitlines() == [
        "error: no usable AWS credentials (Unable to locate credentials)",
        "hint: set AWS_PROFILE or pass --profile, run `aws sso login` or `aws configure`, or export "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"]


def test_status_without_a_bucket_says_how_to_name_it(capsys, monkeypatch):
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    code, _, err = run_cli(capsys, "status", "some-run")
    assert code == 1 and "give --bucket (or set RACKFORM_BUCKET)" in err and "invalid" not in err


@pytest.mark.parametrize("command", ["results", "status"])
def test_malformed_run_ids_are_refused_before_any_aws_call(capsys, command):
    code, _, err = run_cli(capsys, command, "../etc", "--bucket", "b")
    assert code == 1 and "run id '../etc' must be" in err and "Traceback" not in err


def test_submit_typo_is_reported_before_looking_for_the_bucket(capsys, monkeypatch):
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    code, _, err = run_cli(capsys, "submit", EXAMPLE, "--rack", "gpux", "--benchmark", "gemm")
    # the last line is the error; the example's Capacity Block warning comes before it
    assert code == 1 and "no rack 'gpux'" in err and "AWS" not in err.splitlines()[-1]


def test_output_into_a_closed_pipe_is_quiet():
    proc = subprocess.run(f"{sys.executable} -m rackform schema | true", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
