"""CDK entry point: `cdk synth -c spec=path/to/spec.yaml` (default examples/demo.yaml)."""

import sys

import aws_cdk as cdk

from rackform.catalog import load_catalog
from rackform.plan import build_plan
from rackform.problems import SpecError, errors
from rackform.spec import load_spec
from rackform.validate import validate_spec
from stacks import build_app

# A throwaway App only reads the context: the plan must exist before build_app creates the real one.
spec_path = cdk.App().node.try_get_context("spec") or "examples/demo.yaml"
try:
    spec, lines = load_spec(spec_path)
except SpecError as e:
    sys.exit("\n".join(p.render(spec_path) for p in e.problems))
catalog = load_catalog()
problems = validate_spec(spec, catalog, lines)
for problem in problems:  # warnings too: synth goes on, but the user should see them
    print(problem.render(spec_path), file=sys.stderr)
if errors(problems):
    sys.exit(1)
build_app(build_plan(spec, catalog)).synth()
