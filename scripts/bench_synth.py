#!/usr/bin/env python3
"""How fast validate and synth are, measured the way a user meets them: fresh processes, medians of N runs.

Prints the median wall time of `rackform validate` on the example spec (target: under 1 s) and the synth time of
the example spec as a ratio to an empty CDK app synthesized in the same run (target: at most 1.5): jsii's start
dominates both, so the ratio shows what rackform itself adds. rackform's apps leave CDK's built-in template
validation off (stacks/build_app: its tests run the validator over the templates instead) while an empty app as
`cdk init` makes it runs it, so the pair runs three ways: as shipped; both with the validator (CDK_VALIDATION=true);
both without (CDK_VALIDATION=false). Last, the marginal cost of one more rack: 1 rack against 16 racks of three EFA
node groups, as a fraction of the empty app (target: at most 0.05), as shipped and against the empty app without
the validator.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMPTY_APP = ("import sys, aws_cdk as cdk; app = cdk.App(outdir=sys.argv[1]); cdk.Stack(app, 'Empty'); "
             "app.synth()")


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    # This venv's bin first (jsii then runs its Node 24, as `make` does); CDK_VALIDATION only as a config sets it.
    base = {k: v for k, v in os.environ.items() if k != "CDK_VALIDATION"}
    base["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**base, **(env or {})})
    return time.perf_counter() - start


# Racks of three EFA node groups (GPU, Trainium, Graviton EFA) for the marginal cost of one more rack.
RACK_GROUPS = (("p5", "p5.48xlarge"), ("trn", "trn2.48xlarge"), ("cpu", "c7gn.16xlarge"))


def racks_spec(path: Path, racks: int) -> Path:
    data = {"name": "bench", "region": "us-east-2", "availability_zone": "use2-az3",
            "racks": [{"name": f"rack{r:02d}", "node_groups": [{"name": g, "instance_type": t, "count": 2}
                                                                 for g, t in RACK_GROUPS]}
                      for r in range(racks)]}
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def median_of(n: int, make_argv) -> tuple[float, list[float]]:
    times = [timed(make_argv(i)) for i in range(n)]
    return statistics.median(times), times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="examples/demo.yaml")
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        validate, vt = median_of(args.n, lambda i: [py, "-m", "rackform", "validate", args.spec])
        print(f"rackform validate {args.spec}: median {validate:.3f} s over {args.n} runs (target < 1 s) "
              f"[{', '.join(f'{t:.2f}' for t in vt)}]")
        configs = (("as shipped: rackform without CDK's validator, the empty app with it", {}, {}),
                   ("both with CDK's validator", {"CDK_VALIDATION": "true"}, {}),
                   ("both without CDK's validator", {"CDK_VALIDATION": "false"}, {"CDK_VALIDATION": "false"}))
        empties: dict[str, float] = {}
        for label, spec_env, empty_env in configs:
            # interleave the two synths so machine noise hits both alike
            empty_t, spec_t = [], []
            for i in range(args.n):
                empty_t.append(timed([py, "-c", EMPTY_APP, f"{tmp}/empty-{len(empties)}-{i}"], empty_env))
                spec_t.append(timed([py, "-m", "rackform", "synth", args.spec, "-o", f"{tmp}/spec-{len(empties)}-{i}"],
                                    spec_env))
            empty, synth = statistics.median(empty_t), statistics.median(spec_t)
            empties[empty_env.get("CDK_VALIDATION", "default")] = empty
            print(f"synth {args.spec} ({label}): median {synth:.2f} s; empty CDK app: median {empty:.2f} s; "
                  f"ratio {synth / empty:.2f} (target <= 1.5)")
        # One more rack: 1 rack against 16 racks of 3 EFA groups, as shipped, interleaved with the empty app again.
        one, many = racks_spec(Path(tmp) / "one.yaml", 1), racks_spec(Path(tmp) / "many.yaml", 16)
        empty_t, one_t, many_t = [], [], []
        for i in range(args.n):
            empty_t.append(timed([py, "-c", EMPTY_APP, f"{tmp}/empty-racks-{i}"]))
            one_t.append(timed([py, "-m", "rackform", "synth", str(one), "-o", f"{tmp}/one-{i}"]))
            many_t.append(timed([py, "-m", "rackform", "synth", str(many), "-o", f"{tmp}/many-{i}"]))
        empty = statistics.median(empty_t)
        per_rack = (statistics.median(many_t) - statistics.median(one_t)) / 15
        print(f"one more rack (3 EFA groups, as shipped): {per_rack * 1000:.0f} ms = {per_rack / empty:.3f} x the "
              f"empty app (target <= 0.05), {per_rack / empties['false']:.3f} x the empty app without CDK's validator;"
              f" 1 rack {statistics.median(one_t):.2f} s, 16 racks {statistics.median(many_t):.2f} s, empty "
              f"{empty:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
