"""The local executor end to end: a real 2-process gloo all-reduce, submitted to the embedded AWS like any job,
run through the job's entry point, its record landing in the embedded S3."""

from __future__ import annotations

import pytest

from rackform.cli import checked_plan, main
from rackform.jobs.local import EmbeddedAWS, deploy, run_local
from workloads.store import ResultStore

from tests.conftest import ROOT

SPEC = str(ROOT / "examples" / "demo.yaml")


@pytest.fixture(scope="module")
def embedded(demo_assembly):
    plan = checked_plan(SPEC)
    with EmbeddedAWS(plan.region) as aws:
        deployment = deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                            assembly=demo_assembly)
        yield aws, deployment


def test_two_node_allreduce_runs_as_two_processes_and_lands_in_s3(embedded, tmp_path, monkeypatch, capsys):
    aws, deployment = embedded
    for k, v in {**aws.env, "RACKFORM_BUCKET": deployment.bucket}.items():
        monkeypatch.setenv(k, v)
    code = main(["submit", SPEC, "--rack", "graviton", "--node-group", "cpu", "--benchmark", "allreduce",
                 "--run-id", "local-1"])
    assert code == 0 and "multi-node, 2 nodes" in capsys.readouterr().err

    [result] = run_local(aws, deployment, "local-1", log_dir=tmp_path, announce=lambda _: None)
    assert result["exit_codes"] == [0, 0]
    logs = sorted(p.name for p in tmp_path.iterdir())
    assert logs == ["local-1-graviton-cpu-allreduce.node-0.log", "local-1-graviton-cpu-allreduce.node-1.log"]

    store = ResultStore(deployment.bucket, aws.client("s3"))
    [record] = store.records("local-1")
    assert (record.status, record.node_count, record.tier, record.instance_type) == (
        "succeeded", 2, "graviton", "c7gn.16xlarge")
    assert record.environment["executor"] == "local" and record.price_usd_per_hour == pytest.approx(2 * 3.99)
    sizes = {m.size_bytes for m in record.metrics if m.name == "busbw"}
    assert len(sizes) >= 3
    # Three repeats by default, in one rendezvous: every size measured once per repeat, labelled with its number.
    assert record.environment["repeats"] == "3"
    for size in sizes:
        for repeat in ("1", "2", "3"):
            def one(name: str) -> float:
                [value] = [m.value for m in record.metrics if m.name == name and m.size_bytes == size
                           and m.labels["repeat"] == repeat]
                return value
            assert one("busbw") == pytest.approx(one("algbw") * 2 * (2 - 1) / 2)  # nccl-tests' factor, 2 ranks
    peak = max(m.value for m in record.metrics if m.name == "busbw")
    assert 0.001 < peak < 200  # GB/s through loopback on one machine: plausible, not a placeholder
    # both nodes uploaded their raw logs to the job's folder; the record and the health records are apart, each in
    # the run's folder of its kind
    keys = set(store.keys("results/local-1/graviton/cpu/allreduce/"))
    assert {k.rsplit("/", 1)[1] for k in keys} == {"node-0.log", "node-1.log"}
    assert list(store.keys("results/local-1/Records/")) == [
        "results/local-1/Records/allreduce/graviton/cpu/record.json"]
    assert list(store.keys("results/local-1/Health/")) == [
        f"results/local-1/Health/allreduce/graviton/cpu/health-node-{i}.json" for i in range(2)]
    # Each node checked itself first; on this machine the planned hardware checks do not apply, and say why.
    health = store.health("local-1")
    assert sorted(h.node_index for h in health) == [0, 1] and all(h.healthy for h in health)
    assert {c.status for h in health for c in h.checks} <= {"passed", "not applicable here"}
    # gloo between two processes: TCP sockets over loopback, recorded as such, never as EFA.
    assert (record.validity, record.fabric, record.efa_devices) == ("valid", "socket", None)

    code = main(["status", "local-1"])
    assert code == 0 and "succeeded" in capsys.readouterr().out
    code = main(["results", "local-1"])
    out = capsys.readouterr().out
    assert code == 0 and "busbw" in out and "executor=local" in out


def test_each_embedded_aws_starts_from_an_empty_account():
    """moto's state is process-wide: a second embedded AWS in one process (two test modules on one pytest worker, a
    second demo in one interpreter) must deploy into an empty account, not trip over the first one's roles."""
    plan = checked_plan(SPEC)
    for _ in range(2):
        with EmbeddedAWS(plan.region) as aws:
            deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"))
            assert [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]] == [f"{plan.name}-results-embedded"]
