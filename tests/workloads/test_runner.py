"""The in-job runner against moto's S3: records and logs land once, checksummed; failures still leave a record."""

from __future__ import annotations

import json
import sys

import boto3
import pytest
from moto import mock_aws

from workloads import run as runner
from workloads.benchmarks import Benchmark, NodeContext, Step
from workloads.layout import record_key
from workloads.results import ResultRecord
from workloads.store import AlreadyExists, ResultStore, sha256_b64

BUCKET = "rackform-test-results"
RESULT_LINE = ('RACKFORM_RESULT {"benchmark": "gemm", "metrics": [{"name": "tflops_max", "value": 1.5, '
               '"unit": "TFLOP/s", "size_bytes": null, "labels": {"dtype": "fp32"}}], "details": {"device": "cpu"}}')


def fake(name: str, argv: tuple[str, ...], tool: str = "torch", needs=()) -> Benchmark:
    return Benchmark(name, "test", ("cpu",), nodes=1, max_nodes=1, steps=lambda ctx: (Step(argv, tool),),
                     needs=needs)


@pytest.fixture
def store(monkeypatch):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield ResultStore(BUCKET, s3)


@pytest.fixture
def bench(monkeypatch):
    def install(b: Benchmark):
        monkeypatch.setitem(runner.BENCHMARKS, b.name, b)
        return b
    return install


def job(name: str) -> runner.JobIdentity:
    return runner.JobIdentity(run_id="run-1", benchmark=name, rack="r", node_group="g", tier="cpu",
                              instance_type="c7g.16xlarge", price_usd_per_hour=2.32)


CTX = NodeContext(tier="cpu", local=True, work_dir="/tmp/rackform-test")


def test_success_writes_record_and_log_with_checksums(store, bench):
    bench(fake("ok", (sys.executable, "-c", f"print('warming up'); print({RESULT_LINE!r})")))
    record = runner.run_job(job("ok"), CTX, store, echo=False)
    assert record.status == "succeeded" and record.metric("tflops_max")[0].value == 1.5
    assert record.price_usd_per_hour == 2.32 and record.environment["executor"] == "local"
    key = record_key("run-1", "r", "g", "ok")
    head = store.s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    body = store.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert head["ChecksumSHA256"] == sha256_b64(body)
    assert ResultRecord.model_validate(json.loads(body)) == record
    assert b"\n" not in body.strip()  # one JSON document per line: what Athena's JSON SerDe reads
    log = store.s3.get_object(Bucket=BUCKET, Key=record.raw_log_key)["Body"].read().decode()
    assert "warming up" in log and record.raw_log_key.endswith("/ok/node-0.log")


def test_a_second_write_is_refused(store, bench):
    bench(fake("ok", (sys.executable, "-c", f"print({RESULT_LINE!r})")))
    first = runner.run_job(job("ok"), CTX, store, echo=False)
    with pytest.raises(AlreadyExists):
        runner.run_job(job("ok"), CTX, store, echo=False)  # new timestamps: a different record, same key
    landed = store.records("run-1")
    assert landed == [first]


def test_identical_retry_is_not_a_second_write(store):
    assert store.put_once("results/run-1/x", b"same", "text/plain") is True
    assert store.put_once("results/run-1/x", b"same", "text/plain") is False
    versions = store.s3.list_object_versions(Bucket=BUCKET, Prefix="results/run-1/x").get("Versions", [])
    assert len(versions) == 1


def test_failing_command_writes_a_failed_record(store, bench):
    bench(fake("boom", (sys.executable, "-c", "import sys; print('NCCL WARN oops'); sys.exit(3)")))
    record = runner.run_job(job("boom"), CTX, store, echo=False)
    assert record.status == "failed" and "exited 3" in record.reason and "NCCL WARN oops" in record.reason
    assert record.metrics == () and store.records("run-1")[0].status == "failed"


def test_unreadable_output_is_a_failure_never_a_number(store, bench):
    bench(fake("garbage", (sys.executable, "-c", "print('no result here')")))
    record = runner.run_job(job("garbage"), CTX, store, echo=False)
    assert record.status == "failed" and "output not understood" in record.reason and record.metrics == ()


def test_missing_tool_writes_a_skipped_record_naming_the_package(store, bench):
    bench(fake("nofio", ("fio-that-does-not-exist",), needs=(("fio-that-does-not-exist", "fio"),)))
    record = runner.run_job(job("nofio"), CTX, store, echo=False)
    assert record.status == "skipped" and "install fio" in record.reason


def test_other_nodes_upload_logs_but_no_record(store, bench):
    bench(fake("ok", (sys.executable, "-c", f"print({RESULT_LINE!r})")))
    node1 = NodeContext(tier="cpu", local=True, node_index=1, num_nodes=2, work_dir="/tmp/rackform-test")
    record = runner.run_job(job("ok"), node1, store, echo=False)
    assert store.records("run-1") == [] and record.raw_log_key in set(store.keys(record.raw_log_key))


def test_main_requires_a_run_id(capsys):
    with pytest.raises(SystemExit) as e:
        runner.main(["cpu"], env={})
    assert e.value.code == 2 and "RACKFORM_RUN_ID" in capsys.readouterr().err


def test_node_context_from_batch_environment():
    env = {"AWS_BATCH_JOB_NUM_NODES": "4", "AWS_BATCH_JOB_NODE_INDEX": "2", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
           "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.0.7", "RACKFORM_GPUS": "8", "RACKFORM_EFA": "1"}
    ctx = runner.node_context(env, "gpu")
    assert (ctx.num_nodes, ctx.node_index, ctx.main_address, ctx.gpus, ctx.efa) == (4, 2, "10.0.0.7", 8, True)


def test_record_lands_even_when_the_log_upload_fails(store, bench, monkeypatch):
    bench(fake("ok", (sys.executable, "-c", f"print({RESULT_LINE!r})")))

    def broken(*_a, **_k):
        raise ConnectionError("reset by peer")
    monkeypatch.setattr(store, "put_log", broken)
    record = runner.run_job(job("ok"), CTX, store, echo=False)
    [landed] = store.records("run-1")
    assert landed == record and record.raw_log_key is None and "reset by peer" in record.environment["raw_log_error"]


def test_neuron_ranks_follow_logical_core_grouping():
    env = {"RACKFORM_NEURON_CORES": "128", "RACKFORM_NEURON_DEVICES": "16"}
    assert runner.node_context(env, "trainium").neuron_ranks == 128
    assert runner.node_context({**env, "NEURON_LOGICAL_NC_CONFIG": "2"}, "trainium").neuron_ranks == 64
    nccom = runner.BENCHMARKS["allreduce-nccom"].steps(runner.node_context(env, "trainium"))[0]
    assert nccom.argv[nccom.argv.index("-r") + 1] == "128"


def test_storage_refuses_to_measure_when_fsx_is_not_mounted(store, tmp_path):
    ctx = NodeContext(tier="cpu", fsx_mount=str(tmp_path / "fsx"), work_dir=str(tmp_path / "fsx" / "scratch"))
    record = runner.run_job(runner.JobIdentity(run_id="run-1", benchmark="storage", rack="r", node_group="g",
                                               tier="cpu", instance_type="c7g.16xlarge"), ctx, store, echo=False)
    assert record.status == "failed" and "not mounted" in record.reason and record.metrics == ()


def test_lustre_mount_detection(tmp_path):
    from workloads.benchmarks import lustre_mounted

    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/nvme0n1p1 / xfs rw 0 0\n10.0.0.5@tcp:/abcd /fsx lustre rw,flock 0 0\n")
    assert lustre_mounted("/fsx", str(mounts)) and lustre_mounted("/fsx/", str(mounts))
    assert not lustre_mounted("/scratch", str(mounts))


def test_the_job_image_needs_only_workloads():
    # the Dockerfiles copy workloads/ alone: the runner must not import the rackform core
    import subprocess

    code = ("import sys; import workloads.run; "
            "print(sorted(m for m in sys.modules if m == 'rackform' or m.startswith('rackform.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from rackform.spec.models import TIERS
    from workloads.benchmarks import ALL_TIERS
    assert ALL_TIERS == TIERS


def test_storage_jobs_work_on_the_fsx_mount_and_other_jobs_on_scratch():
    # One job definition serves every benchmark of a node group, so the runner, not the definition, puts the
    # storage benchmark's files on FSx.
    from workloads.benchmarks import BENCHMARKS

    env = {"RACKFORM_FSX_MOUNT": "/fsx", "RACKFORM_WORK_DIR": "/scratch"}
    assert runner.node_context(env, "cpu", BENCHMARKS["storage"]).work_dir == "/fsx/rackform-scratch"
    assert runner.node_context(env, "cpu", BENCHMARKS["gemm"]).work_dir == "/scratch"
    assert runner.node_context({**env, "RACKFORM_LOCAL": "1"}, "cpu", BENCHMARKS["storage"]).work_dir == "/scratch"


def test_the_job_environment_round_trips_through_the_variables():
    from workloads.contract import JobEnvironment

    job = JobEnvironment(spec="demo", rack="gpu", node_group="h100", tier="gpu", instance_type="p5.48xlarge",
                         bucket="b", run_id="r1", gpus=8, efa=True, efa_device_rdma=True, fsx_mount="/fsx",
                         price_usd_per_hour=55.04)
    env = job.to_env()
    assert env["RACKFORM_GPUS"] == "8" and env["FI_PROVIDER"] == "efa" and env["FI_EFA_USE_DEVICE_RDMA"] == "1"
    assert "RACKFORM_NEURON_DEVICES" in env and "RACKFORM_SPEC" in env
    assert JobEnvironment.from_env(env) == job
    local = job.with_(local=True)
    assert "FI_PROVIDER" not in local.to_env() and JobEnvironment.from_env(local.to_env()) == local
    # The local executor's switch travels to a local job only, never into a job definition for AWS.
    quiet = local.with_(local_collective=False)
    assert JobEnvironment.from_env(quiet.to_env()) == quiet
    assert "RACKFORM_LOCAL_COLLECTIVE" not in env and "RACKFORM_LOCAL_COLLECTIVE" in local.to_env()


def test_a_malformed_job_variable_is_a_usage_error_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as e:
        runner.main(["cpu", "--run-id", "r1"], env={"RACKFORM_GPUS": "eight"})
    assert e.value.code == 2 and "RACKFORM_GPUS='eight' is not a int" in capsys.readouterr().err


# --- repeats: every benchmark measured several times in one job ------------------------------------------------

def counting(name: str, fail_on: int | None = None) -> Benchmark:
    """A benchmark whose step prints a figure that is its own run count (1, 2, 3...), and exits 3 on run `fail_on`."""
    script = ("import pathlib, sys; p = pathlib.Path(sys.argv[1]); n = int(p.read_text()) + 1 if p.exists() else 1; "
              f"p.write_text(str(n)); sys.exit(3) if n == {fail_on!r} else None; "
              "print('RACKFORM_RESULT {\"benchmark\": \"gemm\", \"metrics\": [{\"name\": \"tflops_max\", \"value\": '"
              " + str(n) + ', \"unit\": \"TFLOP/s\", \"labels\": {\"dtype\": \"fp32\"}}]}')")
    return Benchmark(name, "test", ("cpu",), nodes=1, max_nodes=1, steps=lambda ctx: (
        Step((sys.executable, "-c", script, f"{ctx.work_dir}/count"), "torch", labels=(("dtype", "fp32"),)),))


def test_the_runner_repeats_the_steps_and_labels_each_repeat(store, bench, tmp_path):
    bench(counting("thrice"))
    ctx = NodeContext(tier="cpu", local=True, work_dir=str(tmp_path), repeats=3)
    record = runner.run_job(job("thrice"), ctx, store, echo=False)
    assert record.status == "succeeded" and record.environment["repeats"] == "3"
    assert sorted((m.labels["repeat"], m.value) for m in record.metrics) == [("1", 1.0), ("2", 2.0), ("3", 3.0)]
    # what the report reads back: the median over the three, min and max, a spread of 100% is unstable
    from rackform.analysis.summary import figure
    from workloads.benchmarks import Headline

    f = figure(store.records("run-1")[0], Headline("tflops_max", "fp32", (("dtype", "fp32"),)))
    assert (f.value, f.low, f.high, f.repeats, f.unstable) == (2.0, 1.0, 3.0, 3, True)


def test_a_repeat_that_fails_fails_the_job_naming_the_repeat(store, bench, tmp_path):
    bench(counting("second-fails", fail_on=2))
    ctx = NodeContext(tier="cpu", local=True, work_dir=str(tmp_path), repeats=3)
    record = runner.run_job(job("second-fails"), ctx, store, echo=False)
    # never the median of the repeats that happened to work
    assert record.status == "failed" and "exited 3 (repeat 2/3)" in record.reason
    assert (tmp_path / "count").read_text() == "2"  # the third repeat never ran


def test_benchmarks_that_repeat_in_process_are_exactly_the_torch_ones_and_get_the_count():
    """torchbench repeats inside one rendezvous (ranks on other nodes cannot race a closing one); every other tool is
    run again by the runner. A benchmark in the wrong group would be measured once, or N x N times."""
    from workloads.benchmarks import BENCHMARKS

    for b in BENCHMARKS.values():
        for tier in b.tiers:
            ctx = NodeContext(tier=tier, num_nodes=b.min_nodes, gpus=8 if tier == "gpu" else 0, repeats=4,
                              neuron_ranks=8 if tier == "trainium" else 0, hosts=("10.0.0.1", "10.0.0.2"))
            steps = b.steps(ctx)
            assert b.repeats_in_process == all(s.tool == "torch" for s in steps) and steps, (b.name, tier)
            if b.repeats_in_process:
                assert all("--repeats=4" in s.argv for s in steps)


def test_servers_started_again_per_repeat_take_a_port_per_repeat():
    """fi_pingpong (both nodes) and nccom-test's root communicator: a client of the next repeat must never reach the
    server of the last one while it closes."""
    from dataclasses import replace

    from workloads.benchmarks import BENCHMARKS

    ctx = NodeContext(tier="cpu", num_nodes=2, fabric_port=47592, repeats=3)
    trn = NodeContext(tier="trainium", num_nodes=2, master_port=29500, neuron_ranks=64, repeats=3,
                      hosts=("10.0.0.1", "10.0.0.2"))
    for repeat in range(3):
        [server] = BENCHMARKS["fabric"].steps(replace(ctx, repeat=repeat))
        [client] = BENCHMARKS["fabric"].steps(replace(ctx, repeat=repeat, node_index=1))
        port = str(47592 + repeat)
        assert server.argv[server.argv.index("-B") + 1] == port and client.argv[client.argv.index("-P") + 1] == port
        [nccom] = BENCHMARKS["allreduce-nccom"].steps(replace(trn, repeat=repeat))
        assert dict(nccom.env)["NEURON_RT_ROOT_COMM_ID"] == f"10.0.0.1:{29501 + repeat}"


@pytest.mark.parametrize("value", ["0", "11", "three"])
def test_a_repeat_count_out_of_range_is_a_job_environment_error(value):
    from workloads.contract import JobEnvironment, JobEnvironmentError

    with pytest.raises(JobEnvironmentError, match="RACKFORM_REPEATS"):
        JobEnvironment.from_env({"RACKFORM_REPEATS": value})
    assert JobEnvironment.from_env({}).repeats == 3
