"""CDK entry point: `cdk synth -c spec=path/to/spec.yaml`, or `rackform deploy|diff|destroy SPEC` which pass it."""

import sys

import aws_cdk as cdk

from rackform import pipeline
from rackform.spec.problems import SpecError
from stacks import build_app

# A throwaway App only reads the context: the plan must exist before build_app creates the real one.
spec_path = cdk.App().node.try_get_context("spec")
if not spec_path:  # never a default spec: a forgotten -c spec= must not deploy (or destroy) a cluster of the example's
    sys.exit("error: no spec given: pass it as `-c spec=path/to/spec.yaml` (e.g. `cdk deploy --all -c "
             "spec=my-spec.yaml`), or run `rackform deploy|diff|destroy|synth my-spec.yaml`")
try:
    checked = pipeline.check(spec_path)
except SpecError as e:
    sys.exit("\n".join(p.render(spec_path) for p in e.problems))
for problem in checked.problems:  # warnings: synth goes on, but the user should see them
    print(problem.render(spec_path), file=sys.stderr)
build_app(checked.plan()).synth()
