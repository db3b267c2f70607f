"""Issue 25 item 7: `make demo-serve` serves the state the demo left (reports/demo-state: the results bucket's
objects and the run), in seconds, where it is current (same spec, same commit, templates present); else it runs the
demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from rackform.jobs.local import EmbeddedAWS, deploy, without_credentials
from rackform.pipeline import load_plan
from tests.conftest import DEMO_SPEC, ROOT, load_demo_script
from tests.records import run_records
from workloads.store import ResultStore


def test_the_demo_state_is_saved_and_served_in_a_fresh_embedded_aws(demo_assembly, tmp_path, monkeypatch):
    demo, state, plan = load_demo_script(), tmp_path / "state", load_plan(DEMO_SPEC)
    records = run_records("r-state", gpu_algbw=225.0, gemm=700.0, p50=9.0)
    with EmbeddedAWS(plan.region) as aws:
        deployment = deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                            assembly=demo_assembly)
        for r in records:
            ResultStore(deployment.bucket, aws.client("s3")).put_record(r)
        assert demo.save_state(aws, deployment.bucket, "r-state", DEMO_SPEC, str(demo_assembly), state) == len(records)

    found = demo.prepared(DEMO_SPEC, str(demo_assembly), state)
    assert found is not None and found["run_id"] == "r-state"
    assert demo.prepared(DEMO_SPEC, str(tmp_path / "no-templates"), state) is None
    monkeypatch.setattr(demo, "state_key", lambda spec: {"spec": spec, "spec_sha256": "x", "commit": "other"})
    assert demo.prepared(DEMO_SPEC, str(demo_assembly), state) is None  # another commit: not current
    monkeypatch.undo()

    served = {}

    def explore(run_id, spec, aws, bucket, serve_s):  # what a user runs in the other shell, instead of waiting
        env = {**without_credentials(os.environ), **aws.env, "RACKFORM_BUCKET": bucket}
        proc = subprocess.run([sys.executable, "-m", "rackform", "results", run_id], env=env, cwd=ROOT, text=True,
                              capture_output=True, timeout=120)
        served.update(code=proc.returncode, out=proc.stdout, err=proc.stderr, serve_s=serve_s)

    monkeypatch.setattr(demo, "explore", explore)
    started = time.monotonic()
    demo.serve_prepared(found, 1, state)
    took = time.monotonic() - started
    assert served["code"] == 0 and "busbw" in served["out"] and served["serve_s"] == 60, served["err"]
    assert "tamper" not in served["out"] + served["err"]  # restored write-once, with their checksums
    assert took < 30  # the embedded AWS, the deployment and the objects: seconds, not the demo's minutes
