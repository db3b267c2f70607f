"""Submission against moto's Batch, with the queue and job definition names of the synthesized stacks."""

from __future__ import annotations

import pytest

from rackform.cli import main
from rackform.jobs.submit import SubmitError, batch_clients, run_state, submit
from tests.conftest import EXAMPLE
from tests.conftest import EXAMPLE_REGION as REGION


def job_definition_of(aws, job):
    [jd] = aws["batch"].describe_job_definitions(jobDefinitions=[job["jobDefinition"]])["jobDefinitions"]
    return {**aws["registered"][jd["jobDefinitionName"]], **jd}


def test_submit_allreduce_to_trn2_makes_a_multi_node_job_with_the_devices(aws, capsys):
    code = main(["submit", str(EXAMPLE), "--rack", "trn2-train", "--benchmark", "allreduce", "--run-id", "r1"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() == "r1" and "multi-node, 2 nodes" in err
    [summary] = aws["batch"].list_jobs(jobQueue="trn2-trn2-train-workers-queue",
                                       filters=[{"name": "JOB_NAME", "values": ["r1-trn2-train-workers-allreduce"]}]
                                       )["jobSummaryList"]
    job = aws["batch"].describe_jobs(jobs=[summary["jobId"]])["jobs"][0]
    assert job["jobQueue"].endswith("/trn2-trn2-train-workers-queue")
    jd = job_definition_of(aws, job)
    assert jd["type"] == "multinode" and jd["jobDefinitionName"] == "trn2-trn2-train-workers-multinode"
    assert job["parameters"] == {"benchmark": "allreduce"}
    assert jd["nodeProperties"]["nodeRangeProperties"][0]["container"]["command"][-1] == "Ref::benchmark"
    container = jd["nodeProperties"]["nodeRangeProperties"][0]["container"]
    devices = [d["hostPath"] for d in container["linuxParameters"]["devices"]]
    assert sorted(d for d in devices if d.startswith("/dev/neuron")) == sorted(f"/dev/neuron{i}" for i in range(16))
    assert len([d for d in devices if d.startswith("/dev/infiniband/uverbs")]) == 16
    assert {"name": "memlock", "softLimit": -1, "hardLimit": -1} in container["ulimits"]


def test_same_run_id_submits_nothing_new(aws, plan, capsys):
    submitter, lookup = batch_clients(None, REGION)
    args = dict(rack="gpu", benchmark="gemm", run_id="r2", store=aws["store"], submitter=submitter, lookup=lookup)
    [first] = submit(plan, **args)
    [again] = submit(plan, **args)
    assert first.created and not again.created and again.job_id == first.job_id
    jobs = aws["batch"].list_jobs(jobQueue="trn2-gpu-h100-queue", filters=[{"name": "JOB_NAME",
                                                                            "values": [first.job_name]}])
    assert len(jobs["jobSummaryList"]) == 1


def test_a_job_without_its_marker_is_found_not_resubmitted(aws, plan):
    # the marker write failed after SubmitJob succeeded: the next submit finds the job by name
    submitter, lookup = batch_clients(None, REGION)
    args = dict(rack="gpu", benchmark="gemm", run_id="r3", store=aws["store"], submitter=submitter, lookup=lookup)
    [first] = submit(plan, **args)
    key = f"results/r3/_jobs/{first.job_name}.json"  # never written: no version at all (a delete marker is tampering)
    [version] = aws["s3"].list_object_versions(Bucket=aws["store"].bucket, Prefix=key)["Versions"]
    aws["s3"].delete_object(Bucket=aws["store"].bucket, Key=key, VersionId=version["VersionId"])
    [again] = submit(plan, **args)
    assert again.job_id == first.job_id


def test_status_before_any_record(aws, plan):
    submitter, lookup = batch_clients(None, REGION)
    submit(plan, rack="graviton", benchmark="cpu", run_id="r4", store=aws["store"], submitter=submitter,
           lookup=lookup, node_group="head")
    [state] = run_state("r4", aws["store"], lookup)
    assert state.record_status is None and state.submission["benchmark"] == "cpu"


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(rack="nope", benchmark="gemm"), "no rack 'nope'"),
    (dict(rack="gpu", node_group="x", benchmark="gemm"), "no node group 'x'"),
    (dict(rack="gpu", benchmark="allreduce-nccom"), "runs on trainium"),
    (dict(rack="graviton", node_group="head", benchmark="fabric"), "at least 2 node"),
    (dict(rack="gpu", benchmark="allreduce", nodes=3), "out of range"),
])
def test_submission_mistakes(aws, plan, kwargs, fragment):
    submitter, lookup = batch_clients(None, REGION)
    with pytest.raises(SubmitError, match=fragment):
        submit(plan, run_id="r5", store=aws["store"], submitter=submitter, lookup=lookup, **kwargs)


def test_repeats_reach_the_job_and_its_marker(aws, plan):
    submitter, lookup = batch_clients(None, REGION)
    [sub] = submit(plan, rack="gpu", benchmark="gemm", run_id="r7", store=aws["store"], submitter=submitter,
                   lookup=lookup, repeats=5)
    [job] = aws["batch"].describe_jobs(jobs=[sub.job_id])["jobs"]
    assert {"name": "RACKFORM_REPEATS", "value": "5"} in job["container"]["environment"]
    [marker] = aws["store"].submissions("r7")
    assert marker["repeats"] == 5 and sub.repeats == 5


@pytest.mark.parametrize("value", ["2", "11", "x"])
def test_a_repeat_count_out_of_range_is_refused_before_anything_is_submitted(aws, capsys, value):
    with pytest.raises(SystemExit) as exit:
        main(["submit", str(EXAMPLE), "--rack", "gpu", "--benchmark", "gemm", "--run-id", "r8", "--repeats", value])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "argument --repeats" in err and "Traceback" not in err
    assert aws["store"].submissions("r8") == []


def test_cli_submission_mistake_is_a_message(aws, capsys):
    code = main(["submit", str(EXAMPLE), "--rack", "nope", "--benchmark", "gemm"])
    assert code == 1 and "no rack 'nope'" in capsys.readouterr().err


def test_spot_groups_get_no_multi_node_jobs(plan):
    from rackform.jobs.jobdefs import job_definitions

    [gpu] = [g for g in plan.node_groups() if g.name == "h100"]
    spot = gpu.model_copy(update={"capacity": gpu.capacity.model_copy(update={"type": "spot"})})
    defs = {d["jobDefinitionName"]: d for d in job_definitions(plan.name, spot, image="i", bucket="b",
                                                                 job_role_arn="r")}
    assert list(defs) == ["trn2-gpu-h100-single"] and defs["trn2-gpu-h100-single"]["type"] == "container"


def test_two_definitions_per_node_group_serve_every_benchmark(aws, plan):
    # A single-node benchmark on a multi-node group takes the single-node definition; the benchmark is a parameter.
    submitter, lookup = batch_clients(None, REGION)
    for benchmark, kind in (("gemm", "single"), ("allreduce", "multinode")):
        [sub] = submit(plan, rack="trn2-train", benchmark=benchmark, run_id="r6", store=aws["store"],
                       submitter=submitter, lookup=lookup)
        job = aws["batch"].describe_jobs(jobs=[sub.job_id])["jobs"][0]
        assert sub.job_definition == f"trn2-trn2-train-workers-{kind}"
        assert job["parameters"] == {"benchmark": benchmark}
    with pytest.raises(SubmitError, match="at least 2 node"):
        submit(plan, rack="graviton", node_group="head", benchmark="fabric", run_id="r7", store=aws["store"],
               submitter=submitter, lookup=lookup)


def test_waiting_on_a_run_with_no_jobs_returns_at_once(aws):
    from rackform.cli.jobs import wait_for

    assert wait_for("never-submitted", aws["store"], None, interval_s=60, timeout_s=5) == ([], False)


def test_efa_rdma_is_forced_only_where_the_device_has_it(plan):
    from rackform.jobs.jobdefs import job_environment

    env = {g.name: job_environment(plan.name, g, bucket="b", fsx_mount=None, price_usd_per_hour=None)
           for g in plan.node_groups()}
    assert env["h100"]["FI_EFA_USE_DEVICE_RDMA"] == "1" and env["workers"]["FI_EFA_USE_DEVICE_RDMA"] == "1"
    assert env["cpu"]["FI_PROVIDER"] == "efa" and "FI_EFA_USE_DEVICE_RDMA" not in env["cpu"]  # c7gn
    assert "FI_PROVIDER" not in env["head"]  # no EFA at all


def test_job_kinds_are_the_ones_validate_names():
    from typing import get_args

    from rackform.jobs.jobdefs import JobKind
    from rackform.plan.naming import JOB_KINDS

    assert get_args(JobKind) == JOB_KINDS
