#!/usr/bin/env bash
# The main job on the embedded default, no AWS account: validate the example spec, print its plan, synthesize it.
# Run through `make demo`, which creates .venv and node_modules first.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=${SPEC:-examples/demo.yaml}
OUT=${OUT:-cdk.out}

step() { printf '\n== %s\n' "$*"; }

step "rackform validate $SPEC"
rackform validate "$SPEC"

step "rackform plan $SPEC"
rackform plan "$SPEC"

step "cdk synth -c spec=$SPEC (AWS CDK CLI $(cdk --version 2>/dev/null | cut -d' ' -f1), no credentials)"
cdk synth -c spec="$SPEC" -o "$OUT" --quiet
for t in "$OUT"/*.template.json; do
    printf '  %-40s %6s resources\n' "$(basename "$t")" \
        "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["Resources"]))' "$t")"
done
printf '\ndemo: templates in %s/. Deploy with `cdk deploy --all -c spec=%s` (see README).\n' "$OUT" "$SPEC"
