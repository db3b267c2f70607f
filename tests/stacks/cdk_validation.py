"""CDK's built-in CloudFormation template validation as a test gate.

rackform's apps leave the validator off at a user's synth (stacks/build_app explains why); the tests that synthesize
the examples, the heaviest rack validation admits and a sample of random valid specs turn it on and allow no
finding: the check moves from every user's synth to every change of the code that writes the templates.
"""

from __future__ import annotations

import json
from pathlib import Path

PLUGIN = "CloudFormation Validate"


def validation_findings(outdir: Path) -> list[str]:
    """Every finding of CDK's CloudFormation validator in a cloud assembly, as `rule severity path: description`.
    Acknowledged findings (Validations.of(...).acknowledge) are not reported by CDK and so are not here."""
    report = outdir / "validation-report.json"
    assert report.is_file(), f"no {report.name} in {outdir}: was the app built with cdk_validation=True?"
    doc = json.loads(report.read_text())  # CDK lists only the plugins that found something
    return [f"{v['ruleName']} {v['severity']} {c['constructPath']}: {v['description'][:300]}"
            for r in doc["pluginReports"] if r["pluginName"] == PLUGIN
            for v in r["violations"] for c in v["violatingConstructs"]]
