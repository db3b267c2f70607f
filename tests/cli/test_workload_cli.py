"""`rackform place` and `rackform run` against moto: live queue state, spill-over, the decision in S3, and a run
that is idempotent like `submit`."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from moto.batch.models import batch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from rackform.cli import main
from rackform.jobs.local import hold_runnable
from rackform.jobs.workload_jobs import placement_key, read_verified, workload_job_key
from rackform.pipeline import load_plan

from tests.conftest import DEMO_REGION as REGION
from tests.conftest import DEMO_SPEC as SPEC
from tests.conftest import INFERENCE

TRN_QUEUE = "demo-trainium-workers-queue"


@pytest.fixture
def aws(demo_deployed):
    return demo_deployed


def saturate(batch, queue: str, jobs: int) -> None:
    hold_runnable(batch, REGION, queue, "demo-trainium-workers-single", jobs)


def test_place_reads_the_live_queues_and_spills_when_one_is_full(aws, capsys):
    assert main(["place", INFERENCE, "--spec", SPEC]) == 0
    assert capsys.readouterr().out.strip() == "placed llm-serve (inference) on trainium/workers [trainium]"
    saturate(aws["batch"], TRN_QUEUE, 2)  # 2 x 128 vCPUs queued for trn1's 256: an hour's wait, max_wait 30m
    assert main(["place", INFERENCE, "--spec", SPEC, "--explain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("spilled llm-serve from trainium to gpu: trainium/workers would wait about 1h00m (")
    assert "2 queued ahead (256 vCPUs)" in out and "expected_duration 1h" in out and "over max_wait 30m" in out
    assert "256/256" in out and "preferred, over max_wait" in out and "chosen (spill-over)" in out
    # pinning overrides the spill-over; excluding the only other tier leaves the wait
    assert main(["place", INFERENCE, "--spec", SPEC, "--pin", "trainium"]) == 0
    assert capsys.readouterr().out.startswith("placed llm-serve (inference) on trainium/workers")
    assert main(["place", INFERENCE, "--spec", SPEC, "--json", "--exclude", "trainium"]) == 0
    [d] = json.loads(capsys.readouterr().out)["decisions"]
    assert d["chosen"]["tier"] == "gpu" and d["outcome"] == "placed"


def test_run_records_the_decision_and_is_idempotent(aws, capsys):
    saturate(aws["batch"], TRN_QUEUE, 2)
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "w1"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "w1"
    assert "spilled llm-serve from trainium to gpu" in err and "submitted w1-gpu-h100-wl-llm-serve" in err
    decision = read_verified(aws["store"], placement_key("w1", "llm-serve"))
    assert decision["outcome"] == "spilled" and decision["run_id"] == "w1"
    assert [c["where"] if "where" in c else f"{c['rack']}/{c['node_group']}" for c in decision["candidates"]] == \
        ["trainium/workers", "gpu/h100"]
    assert decision["candidates"][0]["backlog_vcpus"] == 256
    job = read_verified(aws["store"], workload_job_key("w1", "llm-serve"))
    described = aws["batch"].describe_jobs(jobs=[job["job_id"]])["jobs"][0]
    assert described["jobQueue"].endswith("/demo-gpu-h100-queue")
    [jd] = aws["batch"].describe_job_definitions(jobDefinitionName="demo-gpu-h100-wl-llm-serve")["jobDefinitions"]
    assert jd["tags"]["rackform:spec"] == "demo" and jd["tags"]["rackform:workload"] == "llm-serve"
    props = jd["containerProperties"]
    assert props["image"] == "nvcr.io/nvidia/tritonserver:25.01-py3" and props["command"][:2] == ["python3", "serve.py"]
    assert {"type": "GPU", "value": "1"} in props["resourceRequirements"]
    # the queue has drained since: the same run id keeps its decision and submits nothing new
    for job_ in batch_backends[DEFAULT_ACCOUNT_ID][REGION]._jobs.values():
        job_.status = "SUCCEEDED"
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "w1", "--explain"]) == 0
    err = capsys.readouterr().err
    assert "preferred, over max_wait" in err and "chosen (spill-over)" in err  # as decided then, not now
    assert "spilled llm-serve from trainium to gpu" in err and "already submitted w1-gpu-h100-wl-llm-serve" in err
    jobs = aws["batch"].list_jobs(jobQueue="demo-gpu-h100-queue", jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [j["jobName"] for j in jobs] == ["w1-gpu-h100-wl-llm-serve"]
    assert len(aws["batch"].describe_job_definitions(jobDefinitionName="demo-gpu-h100-wl-llm-serve")
               ["jobDefinitions"]) == 1
    # a new run id places again, on the queue state of now
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "w2"]) == 0
    assert "placed llm-serve (inference) on trainium/workers" in capsys.readouterr().err


def test_status_shows_workload_jobs_beside_benchmark_jobs(aws, capsys):
    assert main(["status", "w3"]) == 1  # nothing yet
    capsys.readouterr()
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "w3"]) == 0
    capsys.readouterr()
    assert main(["status", "w3"]) == 0
    out = capsys.readouterr().out
    assert "workload jobs:" in out and "llm-serve" in out and "trainium/workers" in out and "SUCCEEDED" in out


def test_bad_workloads_are_named_problems_not_tracebacks(aws, tmp_path, capsys):
    bad = tmp_path / "w.yaml"
    bad.write_text("name: x\nclass: batch\ntiers: {gpu: {image: i, command: [c]}}\n")
    assert main(["place", str(bad), "--spec", SPEC, "--no-live"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: error: workload_class" in err or f"{bad}:2: error: class" in err
    assert "'batch' is not one of general | training | inference" in err
    assert main(["place", INFERENCE, INFERENCE, "--spec", SPEC, "--no-live"]) == 1
    assert "given more than once" in capsys.readouterr().err


def test_status_shows_a_forged_decision_escaped_and_an_unverified_one_as_a_problem(aws, capsys):
    forged = {"workload": "x\x1b[2Jy", "class": "inference", "outcome": "placed",
              "chosen": {"rack": "gpu", "node_group": "h100", "tier": "gpu"}}
    aws["store"].put_once(placement_key("w4", "forged"), json.dumps(forged).encode(), "application/json")
    aws["s3"].put_object(Bucket=aws["store"].bucket, Key=placement_key("w4", "plain"), Body=b"{}")
    assert main(["status", "w4"]) == 1
    out = "".join(capsys.readouterr())  # no job to show: the problems go to stderr
    # checked against the decision's schema (workloads/objects.py) before use: named, never a row
    assert "1 placement decision unreadable: results/w4/_placements/forged.json: not a placement decision: " \
        "missing run_id" in out and "\x1b" not in out
    assert "1 placement decision tampered: results/w4/_placements/plain.json: no SHA-256" in out


def test_report_shows_where_the_run_placed_its_workloads_and_what_it_cost(aws, capsys, tmp_path):
    from tests.records import rec

    aws["store"].put_record(rec("gemm", "gpu", 900, price=55.04).model_copy(update={"run_id": "w5"}))
    assert main(["report", "w5", "--html", str(tmp_path / "none.html")]) == 0
    assert "workloads placed" not in capsys.readouterr().out  # no placements: no section
    assert "Workloads placed" not in (tmp_path / "none.html").read_text()
    saturate(aws["batch"], TRN_QUEUE, 2)
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "w5"]) == 0
    capsys.readouterr()
    assert main(["report", "w5", "--wide"]) == 0
    section = capsys.readouterr().out.split("workloads placed:\n", 1)[1]
    [row] = [line for line in section.splitlines() if "llm-serve" in line]
    cells = re.split(r"\s{2,}", row.strip())
    # p5.48xlarge at the plan's On-Demand price; no --run measured the work, so the cost is unknown, not 0
    price = load_plan(SPEC).rack("gpu").node_groups[0].on_demand_usd_per_hour
    assert cells == ["llm-serve", "inference", "gpu/h100", "gpu", "trainium/workers", f"{price:,.2f}", "unknown"]
    assert main(["report", "w5", "--json"]) == 0
    [placed] = json.loads(capsys.readouterr().out)["workloads_placed"]
    assert placed["spilled_from"] == "trainium/workers" and placed["usd_per_hour"] == price
    assert placed["expected_cost_usd"] is None and placed["outcome"] == "spilled"
    assert main(["report", "w5", "--html", str(tmp_path / "r.html"), "--json"]) == 0
    page = (tmp_path / "r.html").read_text()
    section = page.split("<h2>Workloads placed</h2>", 1)[1].split("</table>", 1)[0]
    assert "<td>trainium/workers</td>" in section and f"<td>{price:,.2f}</td><td>unknown</td>" in section


def test_concurrent_runs_of_one_run_id_make_one_job(aws, monkeypatch):
    """Like `submit` (tests/jobs/test_submit_concurrent.py): every run finds no job marker at the same instant and
    SubmitJob is slow, so without the claim each would submit; S3's conditional PUT is atomic, as AWS makes it."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from moto.batch.responses import BatchResponse
    from moto.s3.responses import S3Response

    from rackform.jobs.submit import LOOKUP_RETRY, NO_RETRY
    from rackform.jobs.workload_jobs import run_workload
    from rackform.reference.peaks import limits_for
    from rackform.placement import place
    from rackform.pipeline import load_workload

    runs = 3
    put, listing, submit_job = S3Response.put_object, S3Response.list_object_versions, BatchResponse.submitjob
    put_lock, lined_up, arrived = threading.Lock(), threading.Barrier(runs, timeout=30), iter(range(runs))

    def atomic_put(self, *args, **kwargs):
        with put_lock:
            return put(self, *args, **kwargs)

    def marker_lookups_together(self):  # the store looks for a marker with ListObjectVersions (read_one)
        if "/_workloads/" in self.querystring.get("prefix", [""])[0] and next(arrived, None) is not None:
            lined_up.wait()
        return listing(self)

    monkeypatch.setattr(S3Response, "put_object", atomic_put)
    monkeypatch.setattr(S3Response, "list_object_versions", marker_lookups_together)
    monkeypatch.setattr(BatchResponse, "submitjob", lambda self: (time.sleep(0.5), submit_job(self))[1])
    plan, w = load_plan(SPEC), load_workload(INFERENCE)
    submitter = boto3.client("batch", region_name=REGION, config=NO_RETRY)
    lookup = boto3.client("batch", region_name=REGION, config=LOOKUP_RETRY)

    def run(_):
        return run_workload(plan, w, run_id="w6", store=aws["store"], batch=aws["batch"], submitter=submitter,
                            lookup=lookup, decide=lambda: place(w, plan, [], {}, limits_of=limits_for))[1]

    with ThreadPoolExecutor(runs) as pool:
        jobs = list(pool.map(run, range(runs)))
    assert not lined_up.broken  # the runs really did race
    made = aws["batch"].list_jobs(jobQueue=TRN_QUEUE, filters=[
        {"name": "JOB_NAME", "values": ["w6-trainium-workers-wl-llm-serve"]}])["jobSummaryList"]
    assert len(made) == 1 and {j.job_id for j in jobs} == {made[0]["jobId"]}
    assert sorted(j.created for j in jobs) == [False] * (runs - 1) + [True]
    assert read_verified(aws["store"], workload_job_key("w6", "llm-serve"))["job_id"] == made[0]["jobId"]
