"""The acceptance job's third step, the whole group's collective, run for real: two local node processes of
graviton/cpu through the local executor against the embedded AWS, torch's all-reduce across them by the same
torchrun rendezvous as on AWS; `rackform accept` then judges the group by it. The demo's rehearsal, with a slowed
node, skips it and says so (tests/workloads/test_accept_job.py runs that one)."""

from __future__ import annotations

import json
import math
import re
import time

from rackform.cli import checked_plan, main
from rackform.cli.accept import submit_group
from rackform.jobs.local import EmbeddedAWS, deploy, run_local
from tests.conftest import DEMO_SPEC
from workloads.store import ResultStore


def test_two_local_nodes_run_the_group_collective_and_the_verdict_holds_it(demo_assembly, tmp_path, capsys,
                                                                          monkeypatch):
    plan = checked_plan(DEMO_SPEC)
    [group] = [g for g in plan.node_groups() if (g.rack, g.name) == ("graviton", "cpu")]
    assert group.count == 2
    with EmbeddedAWS(plan.region) as aws:
        deployment = deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                            assembly=demo_assembly)
        for k, v in {**aws.env, "RACKFORM_BUCKET": deployment.bucket}.items():
            monkeypatch.setenv(k, v)
        store = ResultStore(deployment.bucket, aws.client("s3"))
        # As `rackform accept` submits it, measured once (the demo's rehearsal does the same; --repeats asks for 3).
        submit_group(plan, group, multi=True, run_id="acc-1", repeats=1, store=store, submitter=aws.client("batch"),
                     lookup=aws.client("batch"))
        started = time.monotonic()
        [outcome] = run_local(aws, deployment, "acc-1", log_dir=tmp_path, announce=lambda _: None)
        took = time.monotonic() - started
        records = store.read("acc-1", "accept")["accept"]
        logs = "".join(p.read_text() for p in sorted(tmp_path.glob("*.log")))
        assert outcome["exit_codes"] == [0, 0], logs
        capsys.readouterr()
        code = main(["accept", DEMO_SPEC, "--rack", "graviton", "--node-group", "cpu", "--run-id", "acc-1",
                     "--interval", "0.2", "--json"])
        cert = json.loads(capsys.readouterr().out)
        main(["accept", "--show", "acc-1"])  # the stored certificate, as its verdict lines
        shown = capsys.readouterr().out
    [record] = [r for r in records if r.part == "group"]
    assert record.status == "succeeded" and record.reason is None, record.reason
    # Node 0's group record carries the collective's figure: gloo's in-place bus bandwidth across both nodes.
    [figure] = record.figures
    assert (figure.test, figure.headline, figure.node_index, figure.unit) == ("group-collective", "busbw", 0, "GB/s")
    assert math.isfinite(figure.value) and 0.001 < figure.value < 200  # loopback on one machine, not a placeholder
    # Both nodes ran torchrun's rendezvous for it: the other node's log holds its side of the same all-reduce.
    assert logs.count("torch.distributed.run") >= 2 and "--nnodes=2" in logs, logs
    [judged] = cert["groups"]
    [collective] = [v for v in judged["verdicts"] if v["test"] == "group-collective"]
    assert collective["nodes"] == 2 and collective["figures"][0]["value"] == figure.value
    assert "group collective" not in json.dumps(judged)  # no skip named anywhere in the group's part
    assert re.search(r"^accepted graviton/cpu: group-collective busbw [0-9.]+ GB/s across 2 nodes$", shown, re.M), shown
    assert code in (0, 1)  # 1: the two loopback nodes' own figures may be judged apart on a loaded machine
    print(f"acceptance job of two local nodes with the group collective: {took:.1f} s")
