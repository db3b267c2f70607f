"""The everyday loop as a newcomer runs it (issue 12): submit, runs, status (--wait, --json), logs, results, plan
--against, validate --json for every outcome, help that teaches, and every command refusing bad paths and options
with a one-line error and an exit code, never a traceback. AWS is moto, in process."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import re

import pytest
import yaml

from rackform.cli import build_parser
from rackform.cli import jobs as cli_jobs
from rackform.jobs.local import deploy
from rackform.pipeline import load_plan
from tests.cli.conftest import Clock
from tests.conftest import ROOT, dump, load_demo_script, run_cli
from workloads.layout import log_key
from workloads.results import Metric, ResultRecord
from workloads.store import ResultStore

SPEC = ROOT / "examples" / "demo.yaml"  # cluster demo, us-east-1: racks graviton (head, cpu), trainium, gpu

REGION = "us-east-1"


@pytest.fixture
def demo() -> dict:
    return yaml.safe_load(SPEC.read_text())
T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def record(run_id: str, benchmark: str, rack: str, group: str, status: str = "succeeded",
           reason: str | None = None) -> ResultRecord:
    return ResultRecord(run_id=run_id, benchmark=benchmark, tool="sysbench", rack=rack, node_group=group,
                        tier="graviton", instance_type="m7g.xlarge", node_count=1, status=status, reason=reason,
                        metrics=(Metric(name="events_per_second", value=1000.0, unit="events/s"),)
                        if status == "succeeded" else (), started_at=T0, ended_at=T0 + dt.timedelta(seconds=5))


@pytest.fixture
def aws(demo_deployed):
    return demo_deployed["store"]


def submit(capsys, run_id: str, rack: str, group: str, benchmark: str) -> dict:
    code, out, err = run_cli(capsys, "submit", SPEC, "--rack", rack, "--node-group", group, "--benchmark",
                         benchmark, "--run-id", run_id, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def finished(aws, capsys):
    """Run r1: cpu succeeded, storage skipped (fio missing), gemm failed; each job's node log in S3."""
    for bench in ("cpu", "storage", "gemm"):
        submit(capsys, "r1", "graviton", "head", bench)
    aws.put_record(record("r1", "cpu", "graviton", "head"))
    aws.put_record(record("r1", "storage", "graviton", "head", "skipped", "fio is not installed (Debian: fio)"))
    aws.put_record(record("r1", "gemm", "graviton", "head", "failed", "torch: CUDA out of memory"))
    for bench in ("cpu", "storage", "gemm"):
        aws.put_log(log_key("r1", "graviton", "head", bench, 0), f"{bench} says hello\n")
    return aws


# --- item 2: machine output -------------------------------------------------------------------------------------

def test_submit_json_names_the_run_and_its_jobs(aws, capsys):
    doc = submit(capsys, "r0", "graviton", "head", "cpu")
    [job] = doc["jobs"]
    assert doc["run_id"] == "r0" and job["job_name"] == "r0-graviton-head-cpu" and job["created"] is True
    assert submit(capsys, "r0", "graviton", "head", "cpu")["jobs"][0]["created"] is False


@pytest.mark.parametrize("content, fragment", [
    ("name: x\nregion: us-east-1\navailability_zone: use1-az6\nracks: []\nbogus: 1\n", "bogus"),
    ("name: [unclosed\n", "YAML"),
    (None, "does not exist"),
])
def test_validate_json_covers_files_that_do_not_load(capsys, tmp_path, content, fragment):
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    code, out, err = run_cli(capsys, "validate", "--json", path)
    doc = json.loads(out)
    assert code == 1 and doc["valid"] is False and doc["problems"]
    assert any(fragment.lower() in json.dumps(p).lower() for p in doc["problems"]), doc
    assert all(p["level"] in ("error", "warning") for p in doc["problems"]) and "Traceback" not in err
    assert "error" in err  # stdout is the JSON; stderr says why, as for every failure


def test_validate_json_count_zero_is_a_problem_in_json(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "validate", "--json",
                           dump(tmp_path, SPEC.read_text().replace("count: 1", "count: 0")))
    doc = json.loads(out)
    assert code == 1 and doc["valid"] is False and any(p["path"].endswith(".count") for p in doc["problems"])


def test_every_command_has_json(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lacking = [name for name, p in sub.choices.items() if not any("--json" in a.option_strings for a in p._actions)]
    # completion prints a shell script; `run` (issue 13's command, another module) has not taken --json yet
    assert sorted(lacking) == ["completion", "run"]


# --- item 3: runs, logs, status reasons, did you mean -------------------------------------------------------------

def test_runs_lists_newest_first_with_counts_and_cluster(finished, capsys):
    submit(capsys, "r2", "graviton", "head", "cpu")
    code, out, _ = run_cli(capsys, "runs", "--json")
    doc = json.loads(out)
    assert code == 0 and [r["run_id"] for r in doc["runs"]] == ["r2", "r1"]
    r1 = doc["runs"][1]
    assert (r1["clusters"], r1["jobs"], r1["succeeded"], r1["failed"], r1["skipped"], r1["pending"]) == \
        (["demo"], 3, 1, 1, 1, 0)
    code, out, _ = run_cli(capsys, "runs", "--limit", 1)
    assert code == 0 and "r2" in out and "demo" in out and "1 older runs not shown" in out


def test_status_shows_why_jobs_failed_or_were_skipped(finished, capsys):
    code, out, _ = run_cli(capsys, "status", "r1")
    assert code == 1  # a job failed
    assert "fio is not installed (Debian: fio)" in out and "torch: CUDA out of memory" in out
    doc = json.loads(run_cli(capsys, "status", "r1", "--json")[1])
    reasons = {j["benchmark"]: j["reason"] for j in doc["jobs"]}
    assert reasons["storage"] == "fio is not installed (Debian: fio)" and reasons["cpu"] is None
    assert doc["done"] is True and doc["timed_out"] is False


def test_logs_prints_a_jobs_node_log(finished, capsys):
    code, out, _ = run_cli(capsys, "logs", "r1", "--benchmark", "storage")
    assert code == 0 and out == "storage says hello\n"
    code, _, err = run_cli(capsys, "logs", "r1")  # three jobs match: which one?
    assert code == 2 and "3 jobs of run r1 match" in err and "gemm" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "logs", "r1", "--benchmark", "cpu", "--node", 3)
    assert code == 1 and "no node log of run r1 matches" in err


def test_logs_show_control_characters_instead_of_sending_them(finished, capsys):
    finished.put_log(log_key("r1", "graviton", "head", "cpu", 1), "\x1b]0;owned\x07ok\n")
    code, out, _ = run_cli(capsys, "logs", "r1", "--benchmark", "cpu", "--node", 1)
    assert code == 0 and "\x1b" not in out and "\\x1b]0;owned\\x07ok" in out


@pytest.mark.parametrize("command", ["status", "results", "logs", "report"])
def test_a_run_that_does_not_exist_gets_did_you_mean(finished, capsys, command):
    code, _, err = run_cli(capsys, command, "r11")
    assert code == 1 and "did you mean r1?" in err and "Traceback" not in err


# --- item 4: status --wait for CI ---------------------------------------------------------------------------------

def test_wait_prints_plain_lines_off_a_terminal(finished):
    stream, clock = io.StringIO(), Clock()
    states, timed_out = cli_jobs.wait_for("r1", finished, None, interval_s=5, timeout_s=None, stream=stream,
                                          clock=clock, sleep=clock.sleep)
    assert not timed_out and len(states) == 3
    assert "\r" not in stream.getvalue()
    assert stream.getvalue() == "[##############################] 3/3 jobs done, 0m00s elapsed, all done\n"


def test_wait_times_out_with_elapsed_and_eta(aws, capsys):
    submit(capsys, "r3", "graviton", "head", "cpu")
    submit(capsys, "r3", "graviton", "head", "gemm")
    aws.put_record(record("r3", "cpu", "graviton", "head"))
    stream, clock = io.StringIO(), Clock()
    _, timed_out = cli_jobs.wait_for("r3", aws, None, interval_s=60, timeout_s=150, stream=stream, clock=clock,
                                     sleep=clock.sleep)
    # one line per change only: the same 1/2 is not repeated every poll
    assert timed_out and stream.getvalue().splitlines() == [
        "  gemm graviton/head: no record yet",  # each job still to finish, then each change (none here)
        "[###############...............] 1/2 jobs done, 0m00s elapsed, ETA 0m00s"]
    assert clock.now == 150  # the last sleep stops at the timeout, not a whole interval past it
    assert cli_jobs.progress_line(1, 4, 125) == \
        "[#######.......................] 1/4 jobs done, 2m05s elapsed, ETA 6m15s"


def test_status_wait_timeout_exits_4_and_says_how_to_reattach(aws, capsys, monkeypatch):
    submit(capsys, "r4", "graviton", "head", "cpu")
    # moto's Batch ends a job at once (SUCCEEDED, no container ran): unseen by Batch, it is still to finish
    monkeypatch.setattr(cli_jobs, "batch_lookup", lambda args, region=None: None)
    code, out, err = run_cli(capsys, "status", "r4", "--wait", "--timeout", "0.05", "--interval", "0.01")
    assert code == 4 and "1 job(s) not done" in err and "rackform status r4 --wait" in err
    assert "\r" not in err and "0/1 jobs done" in err and "cpu" in out


def test_ctrl_c_says_the_jobs_keep_running(aws, capsys, monkeypatch):
    submit(capsys, "r5", "graviton", "head", "cpu")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_jobs, "wait_for", interrupted)
    code, _, err = run_cli(capsys, "status", "r5", "--wait")
    assert code == 130 and "the jobs keep running in AWS Batch; re-attach with `rackform status r5 --wait`" in err


@pytest.mark.parametrize("option, value", [("--timeout", "0"), ("--timeout", "soon"), ("--interval", "-1"),
                                           ("--interval", "nan")])
def test_wait_options_are_checked(capsys, option, value):
    code, _, err = run_cli(capsys, "status", "r1", "--wait", option, value)
    assert code == 2 and err.splitlines()[-1].startswith("rackform status: error: argument")


# --- item 6: help that teaches ------------------------------------------------------------------------------------

def test_every_command_and_option_teaches(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        text = p.format_help()
        assert p.description, name
        assert "example:\n  rackform" in text or "example:\n  RUN=" in text or "example:\n  eval" in text \
            or "example:\n  git" in text, name
        assert "exit codes:\n  0   success" in text, name
        for action in p._actions:
            assert action.help, (name, action.dest)
    assert "RACKFORM_BUCKET" in sub.choices["status"].format_help()
    assert "(default: 20)" in sub.choices["runs"].format_help()


def test_rackform_alone_prints_help(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0 and "the everyday loop:" in out and "validate" in out


def test_did_you_mean_for_commands_and_options(capsys):
    code, _, err = run_cli(capsys, "valdate", SPEC)
    assert code == 2 and "did you mean 'validate'?" in err
    code, _, err = run_cli(capsys, "status", "r1", "--wiat")
    assert code == 2 and err.splitlines()[-1] == "rackform status: error: unrecognized arguments: --wiat (did you " \
        "mean --wait?)"


def test_version_and_completion(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and re.fullmatch(r"rackform \S+\n", out)
    code, out, _ = run_cli(capsys, "completion", "bash")
    assert code == 0 and "complete -o filenames -F _rackform rackform" in out
    assert re.search(r"status\) opts=\"[^\"]*--wait[^\"]*--timeout", out)
    assert run_cli(capsys, "completion", "zsh")[1].startswith("autoload -U +X bashcompinit")


# --- item 10: plan as a diff --------------------------------------------------------------------------------------

def plan_diff(capsys, tmp_path, demo, new) -> dict:
    old = dump(tmp_path, demo, "old.yaml")
    code, out, err = run_cli(capsys, "plan", dump(tmp_path, new, "new.yaml"), "--against", old, "--json")
    assert code == 0, err
    return json.loads(out)


def stacks(doc: dict) -> dict[str, str]:
    return {s["stack"]: s["action"] for s in doc["stacks"]}


def test_plan_against_itself_changes_nothing(capsys):
    code, out, _ = run_cli(capsys, "plan", SPEC, "--against", SPEC)
    assert code == 0 and "no changes" in out


def test_a_new_vpc_cidr_replaces_the_network_and_the_file_system(capsys, tmp_path, demo):
    new = json.loads(json.dumps(demo))
    new["network"] = {**new.get("network", {}), "vpc_cidr": "10.50.0.0/16"}
    doc = plan_diff(capsys, tmp_path, demo, new)
    assert stacks(doc) == {"demo-network": "replace", "demo-storage": "replace", "demo-rack-graviton": "update",
                           "demo-rack-trainium": "update", "demo-rack-gpu": "update"}
    assert doc["changes"] == [{"change": "changed", "what": "network",
                               "details": ["vpc_cidr: 10.40.0.0/16 -> 10.50.0.0/16"]}]


def test_an_fsx_deployment_type_replaces_the_file_system_and_the_racks_mount_the_new_one(capsys, tmp_path, demo):
    new = json.loads(json.dumps(demo))
    new["storage"]["fsx_lustre"].update(deployment_type="PERSISTENT_1", per_unit_storage_throughput=200)
    doc = plan_diff(capsys, tmp_path, demo, new)
    assert {k: v for k, v in stacks(doc).items() if v != "unchanged"} == {
        "demo-storage": "replace", "demo-rack-graviton": "update", "demo-rack-trainium": "update",
        "demo-rack-gpu": "update"}
    notes = " ".join(n for s in doc["stacks"] for n in s["notes"])
    assert "deployment_type" in notes and "per_unit_storage_throughput" in notes


def test_removed_rack_is_a_deleted_stack_and_nothing_else(capsys, tmp_path, demo):
    new = json.loads(json.dumps(demo))
    new["racks"] = [r for r in new["racks"] if r["name"] != "gpu"]
    new["racks"][0]["node_groups"][0]["count"] = 2
    doc = plan_diff(capsys, tmp_path, demo, new)
    assert {k: v for k, v in stacks(doc).items() if v != "unchanged"} == {"demo-rack-gpu": "delete",
                                                                          "demo-rack-graviton": "update"}
    assert {"change": "removed", "what": "rack gpu", "details": ["1 node groups"]} in doc["changes"]
    assert {"change": "changed", "what": "node group graviton/head", "details": ["count: 1 -> 2"]} in doc["changes"]


def test_plan_against_a_broken_old_spec_names_that_file(capsys, tmp_path, demo):
    old = dump(tmp_path, SPEC.read_text().replace("count: 1", "count: 0"), "old.yaml")
    code, _, err = run_cli(capsys, "plan", SPEC, "--against", old)
    assert code == 1 and f"{old}: invalid" in err


# --- items 1 and done-when: every command, bad paths and options ---------------------------------------------------

def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", sorted(commands()))
def test_every_command_refuses_an_unknown_option_in_one_line(capsys, command):
    code, out, err = run_cli(capsys, command, "--no-such-option")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"rackform {command}: error: ")


SPEC_COMMANDS = ["validate", "plan", "synth", "cost", "preflight"]


@pytest.mark.parametrize("command", SPEC_COMMANDS + ["submit"])
@pytest.mark.parametrize("path", ["missing.yaml", ".", "/dev/null"])
def test_every_spec_command_refuses_a_bad_spec_path(capsys, tmp_path, monkeypatch, command, path):
    monkeypatch.chdir(tmp_path)
    extra = ["--rack", "gpu", "--benchmark", "gemm"] if command == "submit" else []
    code, out, err = run_cli(capsys, command, path, *extra)
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith(("error", path))], err


@pytest.mark.parametrize("argv", [
    ["report", "r1", "--html", "."], ["report", "r1", "--csv", "/proc/nope/x.csv"],
    ["report", "r1", "--html", "{file}/x.html"], ["synth", str(SPEC), "-o", "{file}"],
])
def test_bad_output_paths_fail_before_any_work(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # reached only if the path were not checked first
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, *[a.format(file=tmp_path / "file") for a in argv], "--bucket", "b")[:3] \
        if argv[0] == "report" else run_cli(capsys, *[a.format(file=tmp_path / "file") for a in argv])
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and "127.0.0.1" not in err


# --- item 8: the demo's AWS can stay up -----------------------------------------------------------------------------

def test_demo_serve_prints_exports_that_make_rackform_work(capsys, monkeypatch, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from rackform.jobs.local import EmbeddedAWS

    demo_script = load_demo_script()
    plan = load_plan(str(SPEC))
    with EmbeddedAWS(plan.region) as embedded:
        bucket = deploy(plan, s3=embedded.client("s3"), batch=embedded.client("batch"),
                        iam=embedded.client("iam")).bucket
        store = ResultStore(bucket, embedded.client("s3"))
        store.put_record(record("r9", "cpu", "graviton", "head"))
        store.put_log(log_key("r9", "graviton", "head", "cpu", 0), "sysbench output\n")
        demo_script.explore("r9", "examples/demo.yaml", embedded, bucket, serve_s=0.01)
        out = capsys.readouterr().out
        exports = dict(line.strip()[len("export "):].split("=", 1) for line in out.splitlines()
                       if line.strip().startswith("export "))
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:") and exports["RACKFORM_BUCKET"] == bucket
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} <= set(exports)
        # this start's fresh credentials (the only ones it answers), and a PATH that finds this checkout's rackform
        assert exports["AWS_SECRET_ACCESS_KEY"] == embedded.env["AWS_SECRET_ACCESS_KEY"]
        assert exports["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
        [unset] = [line.split()[1:] for line in out.splitlines() if line.strip().startswith("unset ")]
        assert "rackform logs r9 --rack graviton --node-group head --benchmark cpu" in out and "stops in" in out
        # another shell with nothing but those exports: the listed commands work against the embedded AWS
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RACKFORM_"))}
        env.update(AWS_PROFILE="someone-else", AWS_SESSION_TOKEN="stale")  # what that shell may hold: unset first
        env = {k: v for k, v in env.items() if k not in unset}
        env.update(exports, AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "x"))
        for argv in (["runs"], ["logs", "r9", "--benchmark", "cpu"]):
            proc = subprocess.run([sys.executable, "-m", "rackform", *argv], cwd=ROOT, env=env, text=True,
                                  capture_output=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
        assert "r9" in subprocess.run([sys.executable, "-m", "rackform", "runs"], cwd=ROOT, env=env, text=True,
                                      capture_output=True, timeout=60).stdout
        assert proc.stdout == "sysbench output\n"


def test_demo_without_serve_says_how_to_keep_it_up(capsys):
    demo_script = load_demo_script()
    demo_script.explore("r9", "examples/demo.yaml", None, "b", serve_s=None)
    out = capsys.readouterr().out
    assert "make demo-serve" in out and "rackform status r9" in out and "export AWS" not in out


@pytest.mark.parametrize("minutes", ["0", "241", "soon", "nan"])
def test_demo_serve_is_bounded(minutes):
    with pytest.raises(argparse.ArgumentTypeError):
        load_demo_script().serve_minutes(minutes)


def test_every_option_that_writes_is_checked_before_any_work():
    from rackform.cli.common import OUTPUT_OPTIONS

    for name, p in commands().items():
        for action in p._actions:
            writes = action.dest in ("output", "html", "csv") or (action.metavar or "").upper() in ("PATH", "DIR")
            assert not writes or action.dest in OUTPUT_OPTIONS, (name, action.dest)
    # and nothing in the CLI writes a file but through common.write (cli/outputs.write_text, O_NOFOLLOW)
    for path in (ROOT / "rackform" / "cli").glob("*.py"):
        if path.name == "outputs.py":  # the one module that writes
            continue
        text = path.read_text()
        assert "write_text(" not in text or path.name == "common.py", path.name
        assert ".open(" not in text.replace("os.open(os.devnull", ""), path.name


def test_a_write_that_fails_after_its_check_is_one_line(capsys, monkeypatch, tmp_path):
    from rackform.cli import outputs

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "write_text", full_disk)
    from rackform.cli.common import write

    with pytest.raises(outputs.OutputError, match=r"cannot write .*x.csv: No space left on device"):
        write(str(tmp_path / "x.csv"), "a,b\n")
