"""rackform init, deploy, diff and destroy (issue 25 item 1). No AWS here: deploy, diff and destroy are held to the
exact CDK CLI command line they build and to their refusals; `cdk synth` runs for real through the same runner."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from rackform.cli import lifecycle, preflight
from rackform.plan.stack_limits import CDK_CLI
from tests.conftest import ROOT, run_cli

SHAPES = ("three-tiers", "one-tier", "capacity-block")


class Terminal(io.StringIO):
    """Standard input a person types into."""

    def isatty(self) -> bool:
        return True


class CdkCalls(list):
    """Every CDK CLI command line a command ran; none runs, each answers `reply` (exit code, output)."""

    reply = (0, "")

    def run(self, argv: list[str], *, echo: bool = True) -> tuple[int, str]:
        self.append(argv)
        return self.reply


@pytest.fixture
def cdk_calls(monkeypatch: pytest.MonkeyPatch) -> CdkCalls:
    calls = CdkCalls()
    monkeypatch.setattr(lifecycle, "run_cdk", calls.run)
    return calls


@pytest.fixture
def spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "lab.yaml"
    assert run_cli(capsys, "init", path, "--shape", "one-tier", "--name", "lab")[0] == 0
    return path


# --- init ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_init_writes_a_commented_spec_that_validates(shape, tmp_path, capsys):
    path = tmp_path / "my.yaml"
    code, out, err = run_cli(capsys, "init", path, "--shape", shape, "--name", "lab2")
    assert code == 0, err
    text = path.read_text()
    assert text.startswith("# ") and yaml.safe_load(text)["name"] == "lab2"
    assert f"rackform validate {path}" in out and f"rackform deploy {path}" in out  # the next steps
    assert run_cli(capsys, "validate", path)[0] == 0
    code, out, _ = run_cli(capsys, "init", tmp_path / "b.yaml", "--shape", shape, "--json")
    assert code == 0 and json.loads(out)["name"] == "lab" and (tmp_path / "b.yaml").exists()


def test_init_never_overwrites_a_file(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("my own work\n")
    code, out, err = run_cli(capsys, "init", path)
    assert code == 2 and "exists" in err and "never overwrites" in err
    assert path.read_text() == "my own work\n"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    code, _, err = run_cli(capsys, "init", tmp_path / "link" / "new.yaml")  # checked like every output path
    assert code == 2 and "symbolic link" in err and not (tmp_path / "elsewhere" / "new.yaml").exists()


def test_init_validates_before_it_writes(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    code, out, err = run_cli(capsys, "init", path, "--name", "Not A Name")
    assert code == 1 and "Not A Name" in err and "lowercase" in err
    assert not path.exists()


def test_init_names_a_rule_the_spec_breaks_once_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from rackform.spec.problems import Problem

    broken = [Problem("error", "racks", "a rule this spec breaks"), Problem("warning", "name", "a caution")]
    monkeypatch.setattr(lifecycle, "validate_spec", lambda *_: broken)
    path = tmp_path / "x.yaml"
    code, _, err = run_cli(capsys, "init", path)
    assert code == 1 and err.count("a rule this spec breaks") == 1 and err.count("a caution") == 1
    assert not path.exists()


def test_init_refuses_an_unknown_shape(tmp_path, capsys):
    code, _, err = run_cli(capsys, "init", tmp_path / "x.yaml", "--shape", "one-tiers")
    assert code == 2 and "did you mean 'one-tier'" in err


# --- deploy, diff, destroy: the command line cdk gets, and the refusals ---------------------------------------------

def test_deploy_without_a_terminal_or_yes_refuses_before_anything(spec, cdk_calls, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, err = run_cli(capsys, "deploy", spec)
    assert code == 2 and "--yes" in err and "not a terminal" in err
    assert cdk_calls == [] and out == ""


def test_deploy_shows_cost_preflight_and_plan_then_asks(spec, cdk_calls, monkeypatch, capsys):
    """Preflight's own tests hold its checks; here it answers one line. The user answers no, then yes."""
    monkeypatch.setattr(preflight, "cmd_preflight", lambda args: print("preflight: ready") or 0)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = run_cli(capsys, "deploy", spec)
    assert code == 1 and "not deployed" in err and cdk_calls == []
    assert out.index("== cost") < out.index("preflight: ready") < out.index("== plan")
    assert "c7gn.16xlarge" in out and "5,880.15 $/month" in out  # the cost's total, then the plan
    assert "graviton/cpu" in out[out.index("== plan"):]
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, err = run_cli(capsys, "deploy", spec)
    assert code == 0, err
    assert cdk_calls == [[str(CDK_CLI), "deploy", "--all", "-c", f"spec={spec.resolve()}"]]


def test_deploy_yes_skips_both_prompts(spec, cdk_calls, monkeypatch, capsys):
    monkeypatch.setattr(preflight, "cmd_preflight", lambda args: 3)  # checks that could not run
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, err = run_cli(capsys, "deploy", spec, "--yes")
    assert code == 0, err
    assert "some preflight checks could not run" in err
    assert cdk_calls == [[str(CDK_CLI), "deploy", "--all", "-c", f"spec={spec.resolve()}", "--require-approval",
                          "never"]]


def test_deploy_json_keeps_stdout_for_the_outcome(spec, cdk_calls, monkeypatch, capsys):
    monkeypatch.setattr(preflight, "cmd_preflight", lambda args: print("preflight: ready") or 0)
    code, out, err = run_cli(capsys, "deploy", spec, "--yes", "--json")
    assert code == 0 and "== cost" in err and "preflight: ready" in err and "== plan" in err
    assert json.loads(out) == {"spec": str(spec), "cdk": cdk_calls[0], "exit": 0}


def test_deploy_stops_on_preflight_blockers(spec, cdk_calls, monkeypatch, capsys):
    monkeypatch.setattr(preflight, "cmd_preflight", lambda args: 1)
    code, out, err = run_cli(capsys, "deploy", spec, "--yes")
    assert code == 1 and "blockers" in err and cdk_calls == []


def test_deploy_against_a_spec_it_cannot_update_stops(spec, cdk_calls, monkeypatch, tmp_path, capsys):
    """The plan diff is `plan --against`'s: an update CloudFormation would refuse never reaches cdk."""
    monkeypatch.setattr(preflight, "cmd_preflight", lambda args: 0)
    old = tmp_path / "old.yaml"
    old.write_text(spec.read_text().replace("use1-az6", "use1-az4"))  # a new AZ in the same VPC CIDR
    code, out, err = run_cli(capsys, "deploy", spec, "--against", old, "--yes")
    assert code == 1 and cdk_calls == []
    assert "cannot be deployed over" in err


def test_deploy_refuses_an_invalid_spec_before_aws(tmp_path, cdk_calls, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "examples" / "demo.yaml").read_text().replace("m7g.xlarge", "m7g.huge"))
    code, out, err = run_cli(capsys, "deploy", bad, "--yes")
    assert code == 1 and "m7g.huge" in err and cdk_calls == [] and "== cost" not in out


@pytest.mark.parametrize(("code", "output", "exit"), [
    (0, "\n✨  Number of stacks with differences: 0\n", 0),
    (1, "Stack lab-network\n[+] AWS::EC2::VPC\n\n✨  Number of stacks with differences: 1\n", 2),
    (1, "Unable to resolve AWS account to use. It must be either configured when you define your CDK Stack", 1),
    (1, "\n✨  Number of stacks with differences: 0\n", 1),  # an error after a clean diff is still an error
])
def test_diff_exits_like_terraform(spec, cdk_calls, capsys, code, output, exit):
    cdk_calls.reply = (code, output)
    got, out, err = run_cli(capsys, "diff", spec, "--json")
    assert got == exit, err
    assert cdk_calls == [[str(CDK_CLI), "diff", "--all", "-c", f"spec={spec.resolve()}", "--fail"]]
    assert json.loads(out)["exit"] == exit


def test_destroy_asks_for_the_cluster_name(spec, cdk_calls, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))  # "y" is not the name
    code, _, err = run_cli(capsys, "destroy", spec)
    assert code == 1 and "not destroyed" in err and cdk_calls == []
    monkeypatch.setattr("sys.stdin", Terminal("lab\n"))
    assert run_cli(capsys, "destroy", spec, "--profile", "p")[0] == 0
    assert cdk_calls == [[str(CDK_CLI), "destroy", "--all", "-c", f"spec={spec.resolve()}", "--force", "--profile",
                          "p"]]


def test_destroy_without_a_terminal_or_yes_refuses(spec, cdk_calls, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("lab\n"))
    code, _, err = run_cli(capsys, "destroy", spec)
    assert code == 2 and "--yes" in err and cdk_calls == []


# --- the real CDK CLI ----------------------------------------------------------------------------------------------

def test_the_runner_synthesizes_the_spec_with_the_real_cdk(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CDK_DISABLE_CLI_TELEMETRY", "true")
    out = tmp_path / "cdk.out"
    code, output = lifecycle.run_cdk(lifecycle.cdk_argv("synth", str(spec), extra=("-o", str(out), "--quiet")),
                                     echo=False)
    assert code == 0, output
    assert sorted(p.name for p in out.glob("*.template.json")) == ["lab-network.template.json",
                                                                  "lab-rack-graviton.template.json",
                                                                  "lab-storage.template.json"]
    assert json.loads((out / "manifest.json").read_text())["artifacts"]


def test_cdk_without_a_spec_refuses_instead_of_deploying_the_example(tmp_path, monkeypatch):
    """cdk.json names no spec any more: a forgotten `-c spec=` is an error naming how to pass one."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    argv = [str(CDK_CLI), "synth", "-o", str(tmp_path / "cdk.out"), "--quiet"]
    code, output = lifecycle.run_cdk(argv, echo=False)
    assert code != 0
    assert "no spec given" in output and "-c spec=" in output
    assert not list((tmp_path / "cdk.out").glob("*.template.json"))
