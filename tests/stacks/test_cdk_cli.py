"""The real CDK CLI runs app.py: `cdk synth -c spec=...` works without AWS credentials and refuses a bad spec."""

from __future__ import annotations

import json
from pathlib import Path

from rackform.plan.stack_limits import cdk_synth

ROOT = Path(__file__).resolve().parents[2]


def test_cdk_synth_writes_every_stack_of_the_demo(tmp_path):
    out = tmp_path / "cdk.out"
    result = cdk_synth("examples/trn2-capacity-block.yaml", out)
    assert result.returncode == 0, result.stderr
    names = {"trn2-network", "trn2-storage", "trn2-rack-graviton", "trn2-rack-trn2-train", "trn2-rack-gpu"}
    assert {p.name.removesuffix(".template.json") for p in out.glob("*.template.json")} == names
    rack = json.loads((out / "trn2-rack-trn2-train.template.json").read_text())
    queues = [r["Properties"]["JobQueueName"] for r in rack["Resources"].values()
              if r["Type"] == "AWS::Batch::JobQueue"]
    assert queues == ["trn2-trn2-train-workers-queue"]


def test_cdk_synth_refuses_an_invalid_spec_with_the_problem(tmp_path):
    spec = (ROOT / "examples" / "trn2-capacity-block.yaml").read_text().replace("trn2.48xlarge", "trn9.48xlarge")
    path = tmp_path / "bad.yaml"
    path.write_text(spec)
    result = cdk_synth(path, tmp_path / "cdk.out")
    assert result.returncode != 0
    assert "trn9.48xlarge" in result.stderr and "instance_type" in result.stderr


def test_rackform_synth_runs_cdks_validator_only_when_asked(tmp_path, monkeypatch, capsys):
    """Off by default (stacks/build_app says why; the gates run it over the examples with no finding allowed);
    `--cdk-validation` or CDK_VALIDATION=true runs it. A one-group spec: the switch is the subject, not the demo."""
    from rackform.cli import main

    from tests.stacks.cdk_validation import validation_findings

    spec = tmp_path / "small.yaml"
    spec.write_text("name: small\nregion: us-east-2\navailability_zone: use2-az3\nracks:\n  - name: cpu\n"
                    "    node_groups:\n      - {name: head, instance_type: m7g.xlarge, count: 1}\n")
    monkeypatch.delenv("CDK_VALIDATION", raising=False)
    assert main(["synth", str(spec), "-o", str(tmp_path / "off")]) == 0
    assert not (tmp_path / "off" / "validation-report.json").exists()
    assert main(["synth", str(spec), "-o", str(tmp_path / "on"), "--cdk-validation"]) == 0
    assert validation_findings(tmp_path / "on") == []
    monkeypatch.setenv("CDK_VALIDATION", "true")
    assert main(["synth", str(spec), "-o", str(tmp_path / "env")]) == 0
    assert (tmp_path / "env" / "validation-report.json").exists()
