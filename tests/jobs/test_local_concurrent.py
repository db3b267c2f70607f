"""The local executor runs independent jobs side by side, as many nodes at once as it has CPUs, and announces each
job's lines as one block, in the order the jobs started (the widest first)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from rackform.cli import main
from rackform.jobs.local import Deployment, deploy, run_local
from rackform.pipeline import load_plan
from tests.conftest import DEMO_REGION, DEMO_SPEC, S3Only, moto_aws
from workloads.benchmarks import port_spans
from workloads.contract import JobEnvironment

RUN = "concurrent-1"
NODE = ("import os, sys, time\nprint('start', time.time(), flush=True)\ntime.sleep(1)\nprint('end', time.time())\n"
        "print('cpus', *sorted(os.sched_getaffinity(0)))\nsys.exit({code})\n")


def span(logs: Path, benchmark: str) -> tuple[float, float]:
    """When the benchmark's nodes (NODE) started and ended, from their logs."""
    times = [float(t) for log in logs.glob(f"*-{benchmark}.node-*.log")
             for t in re.findall(r"^(?:start|end) (\S+)$", log.read_text(), re.M)]
    return min(times), max(times)


def overlap(logs: Path, a: str, b: str) -> bool:
    """Whether benchmarks a and b ran at once, from their nodes' logs."""
    (a0, a1), (b0, b1) = span(logs, a), span(logs, b)
    return a0 < b1 and b0 < a1


class Embedded(S3Only):
    """The embedded AWS as the executor uses it: the results bucket, and a job role's credentials (none here: the
    nodes below call no AWS)."""

    def role_env(self, role_arn: str, session: str) -> dict[str, str]:
        return {}


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Deployment]]:
    with moto_aws(monkeypatch, DEMO_REGION):
        s3 = boto3.client("s3", region_name=DEMO_REGION)
        deployment = deploy(load_plan(DEMO_SPEC), s3=s3, batch=boto3.client("batch", region_name=DEMO_REGION),
                            iam=boto3.client("iam", region_name=DEMO_REGION))
        monkeypatch.setenv("RACKFORM_BUCKET", deployment.bucket)
        yield s3, deployment


def test_independent_jobs_overlap_and_each_jobs_lines_stay_together(deployed, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    s3, deployment = deployed
    for group, benchmark in (("cpu", "allreduce"), ("head", "cpu"), ("head", "gemm"), ("head", "inference")):
        assert main(["submit", DEMO_SPEC, "--rack", "graviton", "--node-group", group, "--benchmark", benchmark,
                     "--run-id", RUN]) == 0
    real, threads = subprocess.Popen, []

    def node(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Each node a real process that takes a second; the inference job's fails."""
        threads.append(kwargs["env"]["OMP_NUM_THREADS"])
        return real([sys.executable, "-c", NODE.format(code=int(argv[-1] == "inference"))], **kwargs)

    monkeypatch.setattr("rackform.jobs.local.subprocess.Popen", node)
    said: list[str] = []
    results = run_local(Embedded(s3), deployment, RUN, log_dir=tmp_path, announce=said.append, cpus=2)

    benchmarks = [r["benchmark"] for r in results]
    assert sorted(benchmarks) == ["allreduce", "cpu", "gemm", "inference"]
    assert {r["benchmark"]: r["exit_codes"] for r in results} == {
        "allreduce": [0, 0], "cpu": [0], "gemm": [0], "inference": [1]}  # the failed job is reported too

    singles = [b for b in benchmarks if b != "allreduce"]
    # Two single-node jobs on two CPUs run at once; the third waits for one of them; the 2-node job runs alone.
    assert overlap(tmp_path, singles[0], singles[1]) and not overlap(tmp_path, singles[0], singles[2])
    assert not any(overlap(tmp_path, "allreduce", b) for b in singles)
    # Each node runs on a CPU of its own, one OpenMP thread, not on every CPU the machine has.
    assert threads == ["1"] * 5

    def cpus(benchmark: str) -> list[str]:
        return [re.search(r"^cpus (.*)$", log.read_text(), re.M)[1]
                for log in sorted(tmp_path.glob(f"*-{benchmark}.node-*.log"))]

    mine = sorted(os.sched_getaffinity(0))
    assert all(len(cpus(b)) == 1 and cpus(b)[0] in {str(c) for c in mine} for b in singles)
    if len(mine) >= 2:
        assert cpus(singles[0]) != cpus(singles[1]) and len(set(cpus("allreduce"))) == 2

    # One block per job, in the order submitted: its header, then its end, never another job's line between.
    assert len(said) == 8
    for i, benchmark in enumerate(benchmarks):
        header, end = said[2 * i], said[2 * i + 1]
        assert header.startswith(f"[{i + 1}/4] {benchmark} on graviton/")
        assert re.fullmatch(rf"\s+exit {int(benchmark == 'inference')} in \d+\.\d s", end)


def test_jobs_side_by_side_hold_port_ranges_apart(deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  few_ports: range) -> None:
    """Every port a job's steps may use (a port per repeat above its master and fabric ports) is free when the job
    starts and no other running job's, even with few ports to choose from."""
    s3, deployment = deployed
    for benchmark in ("cpu", "gemm", "inference"):
        assert main(["submit", DEMO_SPEC, "--rack", "graviton", "--node-group", "head", "--benchmark", benchmark,
                     "--run-id", RUN, "--repeats", "3"]) == 0
    real, given = subprocess.Popen, {}

    def node(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        job = JobEnvironment.from_env(kwargs["env"])
        master, fabric = port_spans(job.repeats)
        given[argv[-1]] = (range(job.master_port, job.master_port + master),
                           range(job.fabric_port, job.fabric_port + fabric))
        return real([sys.executable, "-c", NODE.format(code=0)], **kwargs)

    monkeypatch.setattr("rackform.jobs.local.subprocess.Popen", node)
    run_local(Embedded(s3), deployment, RUN, log_dir=tmp_path, announce=lambda _: None, cpus=2)

    assert all(len(r) == n for r, n in zip(given["cpu"], port_spans(3), strict=True))
    side_by_side = [(a, b) for a, b in itertools.combinations(given, 2) if overlap(tmp_path, a, b)]
    assert side_by_side, "two of the jobs ran at once"
    for a, b in side_by_side:
        ports = [p for r in (*given[a], *given[b]) for p in r]
        assert len(ports) == len(set(ports)), f"{a} and {b} share ports: {given[a]} {given[b]}"


def test_a_node_that_cannot_start_is_an_error_not_a_hang(deployed, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's nodes start on a thread of their own: a failure there (a node's process that cannot start) reaches
    the caller, as it did when jobs ran one at a time, instead of leaving it waiting for a job that never ends."""
    s3, deployment = deployed
    assert main(["submit", DEMO_SPEC, "--rack", "graviton", "--node-group", "head", "--benchmark", "cpu",
                 "--run-id", RUN]) == 0

    def node(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        raise OSError("no such interpreter")

    monkeypatch.setattr("rackform.jobs.local.subprocess.Popen", node)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            run_local(Embedded(s3), deployment, RUN, log_dir=tmp_path, announce=lambda _: None, cpus=2)
            outcome.append(None)
        except Exception as e:
            outcome.append(e)

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive(), "run_local never returned"
    [error] = outcome
    assert isinstance(error, OSError) and "no such interpreter" in str(error)


def test_a_job_that_needs_every_cpu_goes_before_smaller_jobs_listed_ahead_of_it(
        deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gpu/h100's single-node jobs are listed before graviton/cpu's 2-node all-reduce; had they gone first, the
    all-reduce would wait for the last of them with the other CPU idle. It runs first, then the two side by side."""
    s3, deployment = deployed
    for group, benchmark in (("gpu/h100", "gemm"), ("gpu/h100", "inference"), ("graviton/cpu", "allreduce")):
        rack, node_group = group.split("/")
        assert main(["submit", DEMO_SPEC, "--rack", rack, "--node-group", node_group, "--benchmark", benchmark,
                     "--run-id", RUN]) == 0
    real = subprocess.Popen
    monkeypatch.setattr("rackform.jobs.local.subprocess.Popen",
                        lambda argv, **kwargs: real([sys.executable, "-c", NODE.format(code=0)], **kwargs))
    results = run_local(Embedded(s3), deployment, RUN, log_dir=tmp_path, announce=lambda line: None, cpus=2)

    assert [r["benchmark"] for r in results] == ["allreduce", "gemm", "inference"]
    (a0, a1), (g0, g1), (i0, i1) = (span(tmp_path, b) for b in ("allreduce", "gemm", "inference"))
    assert a1 <= min(g0, i0) and g0 < i1 and i0 < g1  # the all-reduce first, then the two side by side
