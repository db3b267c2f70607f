"""CDK entry point: `cdk synth -c spec=path/to/spec.yaml` (default examples/demo.yaml)."""

import sys

import aws_cdk as cdk

from rackform import pipeline
from rackform.spec.problems import SpecError
from stacks import build_app

# A throwaway App only reads the context: the plan must exist before build_app creates the real one.
spec_path = cdk.App().node.try_get_context("spec") or "examples/demo.yaml"
try:
    checked = pipeline.check(spec_path)
except SpecError as e:
    sys.exit("\n".join(p.render(spec_path) for p in e.problems))
for problem in checked.problems:  # warnings: synth goes on, but the user should see them
    print(problem.render(spec_path), file=sys.stderr)
build_app(checked.plan()).synth()
