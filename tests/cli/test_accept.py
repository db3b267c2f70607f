"""`rackform accept` end to end against the embedded AWS (moto): the plan and budget before anything is submitted,
one job per group exactly once per run id, the verdict from the records in the bucket, the certificate stored
write-once and shown again, Spot groups' single-node jobs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, dump, run_cli
from workloads.layout import certificate_key
from workloads.results import AcceptFigure, AcceptRecord, Metric, ResultRecord
from workloads.store import ResultStore

SPEC = ROOT / "examples" / "demo.yaml"  # graviton/cpu: 2 x c7gn.16xlarge on demand
NOW = dt.datetime(2026, 12, 6, 5, 0, tzinfo=dt.UTC)


@pytest.fixture
def aws(demo_deployed):
    return demo_deployed["store"]


def accept(capsys, *more: object, spec: object = SPEC) -> tuple[int, str, str]:
    return run_cli(capsys, "accept", spec, "--rack", "graviton", "--node-group", "cpu", "--interval", "0.01",
                   *more)


def node_records(store: ResultStore, run_id: str, values: list[float], benchmark: str = "accept",
                 end: bool = True) -> None:
    """What the acceptance job writes: each node's record, then (`end`) node 0's group record, the job's end."""
    n = len(values)
    for i, v in enumerate(values):
        figure = AcceptFigure(node_index=i, instance_id=f"i-0{i}", host=f"ip-10-0-0-{i}", test="cpu",
                              metric="events_per_second", value=v, unit="events/s", headline="cpu")
        store.put_accept(_record(run_id, benchmark if benchmark == "accept" else f"accept-{i}", "node", i,
                                 [figure], n if benchmark == "accept" else 1))
    if benchmark == "accept" and end:
        store.put_accept(_record(run_id, benchmark, "group", 0, [], n, rounds=2, price_usd_per_hour=3.9968))


def _record(run_id: str, benchmark: str, part: str, node: int, figures: list[AcceptFigure], nodes: int,
            **more: object) -> AcceptRecord:
    return AcceptRecord(run_id=run_id, rack="graviton", node_group="cpu", benchmark=benchmark,
                        instance_type="c7gn.16xlarge", tier="graviton", part=part, node_index=node, nodes=nodes,
                        status="succeeded", written_at=NOW, figures=tuple(figures), **more)


def test_plan_first_then_one_job_then_the_verdict_names_the_slow_node(aws, capsys, tmp_path):
    code, out, err = accept(capsys, "--run-id", "acc1", "--no-wait")
    assert code == 0, err
    assert out.startswith("acceptance plan for spec demo:") and "graviton/cpu: 2 x c7gn.16xlarge (on-demand), one " \
        "multi-node job spans the group" in out
    assert "expected wall time" in out and "cannot prove" not in out
    assert "submitted acc1-graviton-cpu-accept (2 node(s))" in err and out.strip().endswith("acc1")
    marker = aws.submissions("acc1")
    assert [(m["benchmark"], m["nodes"]) for m in marker] == [("accept", 2)]

    node_records(aws, "acc1", [1000, 1010, 990, 600])  # the rehearsal ran 4 nodes; node 3 slowed
    code, out, err = accept(capsys, "--run-id", "acc1")
    assert code == 1, err  # a group with an outlier is not accepted
    assert "already submitted acc1-graviton-cpu-accept" in err and len(aws.submissions("acc1")) == 1
    assert "outlier graviton/cpu node 3: cpu 600 events/s, 39.70% below the median of 4 nodes (i-03)" in out
    assert "straggler graviton/cpu: node 3 (i-03) sets the pace at 39.70% below the median cpu: " \
        in out
    assert f"certificate: s3://{aws.bucket}/{certificate_key('acc1')}" in err

    code, shown, err = run_cli(capsys, "accept", "--show", "acc1")
    assert code == 1 and shown.splitlines() == out.splitlines()[-len(shown.splitlines()):]
    code, document, err = run_cli(capsys, "accept", "--show", "acc1", "--json")
    _, schema, _ = run_cli(capsys, "schema", "--certificate")
    cert = json.loads(document)
    jsonschema.validate(cert, json.loads(schema))
    assert cert["spec_sha256"] == hashlib.sha256(SPEC.read_bytes()).hexdigest()
    assert [g["nodes"] for g in cert["groups"]] == [4]

    # the run's HTML report shows the certificate's section above its results
    aws.put_record(ResultRecord(run_id="acc1", benchmark="cpu", tool="sysbench", rack="graviton", node_group="head",
                                tier="graviton", instance_type="m7g.xlarge", node_count=1, status="succeeded",
                                metrics=(Metric(name="events_per_second", value=1000.0, unit="events/s"),),
                                started_at=NOW, ended_at=NOW + dt.timedelta(seconds=5)))
    code, _, err = run_cli(capsys, "report", "acc1", "--html", tmp_path / "report.html")
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    assert "Acceptance: not accepted" in page and "outlier graviton/cpu node 3" in page

    # judged again: the certificate first issued stands (write-once)
    code, _, err = accept(capsys, "--run-id", "acc1")
    assert "was issued before" in err and code == 1


def test_alike_nodes_are_accepted_and_the_html_page_has_the_plot(aws, capsys, tmp_path):
    assert accept(capsys, "--run-id", "acc2", "--no-wait")[0] == 0
    node_records(aws, "acc2", [1000, 1005])
    page = tmp_path / "accept.html"
    code, out, err = accept(capsys, "--run-id", "acc2", "--html", page)
    assert code == 0, err
    assert "accepted graviton/cpu: 2 nodes, cpu median 1,002 events/s, spread 0.499%" in out
    assert "too few for a band" in out and out.splitlines()[-1].startswith("accepted: run acc2")
    html = page.read_text()
    assert "Acceptance: accepted" in html and "data:image/png;base64," in html


def test_no_wait_json_names_the_run_its_jobs_and_plan(aws, capsys):
    code, out, err = accept(capsys, "--run-id", "acc9", "--no-wait", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["run_id"] == "acc9" and data["jobs"] == {"graviton/cpu": ["acc9-graviton-cpu-accept"]}
    assert data["plan"]["groups"][0]["nodes"] == 2 and "acceptance plan for spec demo:" in err


def test_budget_refuses_before_anything_is_submitted(aws, capsys):
    code, out, err = accept(capsys, "--run-id", "acc3", "--budget", "0.01")
    assert code == 1 and "over --budget 0.01 USD; nothing was submitted" in err
    assert "acceptance plan for spec demo:" in out
    assert aws.submissions("acc3") == [] and not list(aws.keys("results/acc3/"))


def test_unpriced_group_cannot_confirm_a_budget_until_given_a_price(aws, capsys, tmp_path):
    spec = yaml.safe_load(SPEC.read_text())
    spec["racks"][0]["node_groups"][1]["capacity"] = {"type": "spot"}
    path = dump(tmp_path, spec)
    code, out, err = accept(capsys, "--run-id", "acc4", "--budget", "100", spec=path)
    assert code == 1 and "cannot confirm --budget 100.00 USD: no price for graviton/cpu" in err
    # Spot: no multi-node job, so one single-node job per node, and the plan says what that cannot prove
    assert "cannot prove: no fabric figure: AWS Batch runs no multi-node job on Spot capacity" in out
    code, out, err = accept(capsys, "--run-id", "acc4", "--budget", "100", "--price", "c7gn.16xlarge=1.2",
                            "--no-wait", spec=path)
    assert code == 0, err
    assert sorted((m["benchmark"], m["nodes"]) for m in aws.submissions("acc4")) == [("accept-0", 1), ("accept-1", 1)]


def test_wrong_rack_and_missing_arguments_are_named(aws, capsys):
    code, _, err = run_cli(capsys, "accept", SPEC, "--rack", "nope")
    assert code == 1 and "no rack 'nope' in spec demo; racks: graviton, trainium, gpu" in err
    code, _, err = run_cli(capsys, "accept", SPEC)
    assert code == 2 and "give SPEC and --rack" in err
    code, _, err = run_cli(capsys, "accept", "--show", "nothing-here")
    assert code == 1 and "no acceptance certificate for run nothing-here" in err


def test_timeout_leaves_the_jobs_running(aws, capsys):
    assert accept(capsys, "--run-id", "acc5", "--no-wait")[0] == 0
    code, _, err = accept(capsys, "--run-id", "acc5", "--timeout", "0.05")
    assert code == 4 and "the jobs keep running" in err


def test_failed_figure_is_named(aws, capsys):
    assert accept(capsys, "--run-id", "acc6", "--no-wait")[0] == 0
    node_records(aws, "acc6", [1000, 1010, math.nan])
    code, out, _ = accept(capsys, "--run-id", "acc6")
    assert code == 1 and "outlier graviton/cpu node 2: cpu failed, no figure (i-02)" in out


def test_a_job_batch_failed_is_named_and_the_group_not_accepted(aws, capsys, monkeypatch):
    from rackform import aws as aws_layer

    assert accept(capsys, "--run-id", "acc7", "--no-wait")[0] == 0
    node_records(aws, "acc7", [1000, 1010], end=False)  # the nodes' records, then the job died: no group record
    job_id = aws.submissions("acc7")[0]["job_id"]
    monkeypatch.setattr(aws_layer, "describe_jobs", lambda lookup, ids: {
        job_id: {"status": "FAILED", "statusReason": "Host EC2 (instance i-0abc) terminated."}})
    code, out, _ = accept(capsys, "--run-id", "acc7")
    assert code == 1
    assert f"failed graviton/cpu: Batch job {job_id} FAILED: Host EC2 (instance i-0abc) terminated." in out
    assert out.splitlines()[-1].startswith("not accepted: run acc7")


def test_a_forged_marker_is_named_not_submitted_over(aws, capsys):
    name = "acc8-graviton-cpu-accept"
    aws.put_once(f"results/acc8/_jobs/{name}.json", json.dumps({"job_name": name}).encode(), "application/json")
    code, _, err = accept(capsys, "--run-id", "acc8")
    assert code == 1 and f"results/acc8/_jobs/{name}.json" in err and "not a job marker" in err
    assert "submitted" not in err


@pytest.mark.parametrize("argv, code, fragment", [
    (["accept", "--show", "../etc"], 1, "run id '../etc' must be"),
    (["accept", SPEC, "--rack", "graviton", "--run-id", "bad id"], 2, "--run-id: run id 'bad id' must be"),
    (["accept", SPEC, "--rack", "graviton", "--budget", "-3"], 2, "is not a budget"),
    (["accept", SPEC, "--rack", "graviton", "--price", "c7gn.16xlarge=free"], 2, "--price"),
])
def test_malformed_arguments_are_refused_before_any_aws_call(capsys, argv, code, fragment):
    got, _, err = run_cli(capsys, *argv)
    assert got == code and fragment in err


def test_status_of_an_acceptance_run_ends_with_its_group_record(aws, capsys):
    # The acceptance job writes no record.json, so `status --wait` waited on it until Batch said it ended: its own
    # last write (node 0's group record; a slot job's node record) is what says it is done, and how.
    from rackform.jobs.submit import run_state

    code, _, err = accept(capsys, "--run-id", "acc3", "--no-wait")
    assert code == 0, err
    node_records(aws, "acc3", [1000, 1010, 990, 1005], end=False)
    [state] = run_state("acc3", aws, None)  # None: what Batch says is left out, only the bucket speaks
    assert not state.done and state.record_status is None
    node_records(aws, "acc3", [1000, 1010, 990, 1005])  # node 0's group record: the job's end
    [state] = run_state("acc3", aws, None)
    assert state.done and state.record_status == "succeeded"

