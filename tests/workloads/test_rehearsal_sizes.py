"""What a local node (the demo's rehearsal) runs differs from a node on AWS only where it says so: smaller sizes,
and no torchrun where it would only start one process with no peers."""

from __future__ import annotations

import pytest

from workloads.benchmarks import BENCHMARKS, NodeContext

TORCHRUN = "torch.distributed.run"


@pytest.mark.parametrize("bench", ["gemm", "inference"])
def test_a_local_single_process_torch_node_starts_torchbench_itself(bench: str) -> None:
    [local] = BENCHMARKS[bench].steps(NodeContext(tier="graviton", local=True, repeats=3))
    assert TORCHRUN not in local.argv and local.argv[1:4] == ("-m", "workloads.torchbench", bench)
    assert "--repeats=3" in local.argv and "--device=cpu" in local.argv
    # on AWS the command is unchanged: torchrun, one process per node
    [aws] = BENCHMARKS[bench].steps(NodeContext(tier="gpu", gpus=8, repeats=3))
    assert TORCHRUN in aws.argv and "--nproc-per-node=1" in aws.argv and "--device=cuda" in aws.argv


def test_the_local_all_reduce_keeps_its_rendezvous_across_nodes() -> None:
    for index in (0, 1):
        [step] = BENCHMARKS["allreduce"].steps(NodeContext(tier="cpu", local=True, num_nodes=2, node_index=index))
        assert TORCHRUN in step.argv and "--nnodes=2" in step.argv and f"--node-rank={index}" in step.argv


def test_the_local_all_reduce_warms_up_once_a_size_and_aws_keeps_torchbenchs_default() -> None:
    [local] = BENCHMARKS["allreduce"].steps(NodeContext(tier="cpu", local=True, num_nodes=2))
    [aws] = BENCHMARKS["allreduce"].steps(NodeContext(tier="gpu", gpus=8, num_nodes=2))
    assert {"--max-bytes=4194304", "--iters=5", "--warmup=1"} <= set(local.argv)
    assert not any(a.startswith(("--warmup", "--iters", "--max-bytes")) for a in aws.argv)


def test_local_inference_is_smaller_and_says_so_in_its_arguments() -> None:
    [local] = BENCHMARKS["inference"].steps(NodeContext(tier="cpu", local=True))
    [aws] = BENCHMARKS["inference"].steps(NodeContext(tier="cpu"))
    assert {"--prompt=32", "--generate=16"} <= set(local.argv)
    assert not any(a.startswith(("--prompt", "--generate")) for a in aws.argv)  # torchbench's defaults, 64 and 32


def test_a_node_sizes_its_tools_by_the_cpus_it_may_run_on() -> None:
    """A node pinned to one CPU (the local executor's, or a cpuset's) runs sysbench with one thread, not one per CPU
    of the machine: more threads than CPUs only take turns, and take them from the other jobs."""
    import os
    import subprocess
    import sys

    cpu = min(os.sched_getaffinity(0))
    code = (f"import os; os.sched_setaffinity(0, {{{cpu}}}); from workloads.benchmarks import BENCHMARKS, NodeContext; "
            "print(*BENCHMARKS['cpu'].steps(NodeContext(tier='cpu', local=True))[0].argv)")
    argv = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "--threads=1" in argv
    assert NodeContext(tier="cpu").cpus == len(os.sched_getaffinity(0))


def test_the_fabric_client_tries_its_server_five_times_a_second_for_as_long_as_before() -> None:
    [client] = BENCHMARKS["fabric"].steps(NodeContext(tier="cpu", local=True, num_nodes=2, node_index=1))
    assert client.retry_s <= 0.2 and client.retries * client.retry_s == pytest.approx(30)


def test_a_step_is_tried_again_after_its_own_retry_interval(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner waits the step's retry_s between tries, not a fixed second."""
    import sys

    from workloads import run as runner
    from workloads.benchmarks import Benchmark, Step

    waited: list[float] = []
    monkeypatch.setattr(runner.time, "sleep", waited.append)
    # fails until it has run once: the second try succeeds
    script = "import os, sys; p = sys.argv[1]; ok = os.path.exists(p); open(p, 'w').close(); sys.exit(0 if ok else 1)"
    step = Step((sys.executable, "-c", script, str(tmp_path / "tried")), "torch", retries=5, retry_s=0.2)
    bench = Benchmark("flaky", "test", ("cpu",), nodes=1, max_nodes=1, steps=lambda ctx: (step,))
    log: list[str] = []
    runner.run_steps(bench, NodeContext(tier="cpu", local=True, work_dir=str(tmp_path)), 30, log)
    # one retry, 0.2 s after the failure (time.sleep is the module's: subprocess's wait with a timeout polls in
    # sleeps of 0.5 to 50 ms, recorded too when the step's process is still running, as on a loaded machine)
    assert [w for w in waited if w >= 0.1] == [0.2] and sum(line.startswith("$ ") for line in log) == 2


def test_the_runner_reads_a_torch_result_without_importing_torch() -> None:
    """The node's runner parses its torchbench step's output; torch is the benchmark process's import, not the
    runner's (about 1.4 s of CPU a job on the demo's machine)."""
    import json
    import subprocess
    import sys

    line = "RACKFORM_RESULT " + json.dumps({"benchmark": "gemm", "metrics": [
        {"name": "tflops_max", "value": 1.5, "unit": "TFLOP/s", "labels": {"dtype": "bf16"}}]})
    code = ("import sys; from workloads.benchmarks import Step; from workloads.run import parse_step; "
            f"parsed = parse_step(Step(('x',), 'torch'), {line!r}); "
            "print(parsed.ok, parsed.metrics[0].value, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "1.5", "False"]


def test_local_sysbench_runs_a_fixed_amount_of_work_and_aws_a_fixed_time() -> None:
    """sysbench's time limit counts in whole seconds; the rehearsal's runs also stop at a fixed number of events (a
    total size for memory), a fraction of a second each, or at 1 s where that work takes longer; on AWS each test
    runs 30 s."""
    local = [s.argv for s in BENCHMARKS["cpu"].steps(NodeContext(tier="cpu", local=True, cpus=1))]
    aws = [s.argv for s in BENCHMARKS["cpu"].steps(NodeContext(tier="cpu", cpus=64))]
    assert [a[1] for a in local] == [a[1] for a in aws] == ["cpu", "memory"]
    assert all("--time=1" in a for a in local) and "--events=500" in local[0] and "--memory-total-size=4G" in local[1]
    assert all("--time=30" in a and "--threads=64" in a for a in aws) and "--memory-total-size=1024T" in aws[1]


def test_the_local_fabric_pair_runs_fi_pingpongs_default_iterations_and_aws_ten_thousand() -> None:
    local = BENCHMARKS["fabric"].steps(NodeContext(tier="cpu", local=True, num_nodes=2))[0].argv
    aws = BENCHMARKS["fabric"].steps(NodeContext(tier="cpu", num_nodes=2, efa=True))[0].argv
    assert local[local.index("-I") + 1] == "10" and aws[aws.index("-I") + 1] == "10000"
    assert local[local.index("-S") + 1] == aws[aws.index("-S") + 1] == "all"  # the whole sweep of sizes, both


def test_the_local_random_read_runs_half_a_second_and_fio_reads_that_as_500_ms(tmp_path) -> None:
    """fio's time options take a unit; the local storage test's random read is time-based, half a second."""
    import json
    import shutil
    import subprocess

    [_, _, rand] = BENCHMARKS["storage"].steps(NodeContext(tier="cpu", local=True, work_dir=str(tmp_path)))
    assert "--time_based" in rand.argv and "--runtime=500ms" in rand.argv
    [aws] = [s.argv for s in BENCHMARKS["storage"].steps(NodeContext(tier="cpu"))][2:]
    assert "--runtime=30" in aws
    if shutil.which("fio"):  # the demo's machine has it; the suite needs no fio (docs/demo.md)
        done = json.loads(subprocess.run(rand.argv, capture_output=True, text=True, check=True).stdout)
        assert done["jobs"][0]["job_runtime"] == 500  # milliseconds
