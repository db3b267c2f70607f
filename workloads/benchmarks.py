"""The benchmark catalog: what each benchmark runs on which tier, on how many nodes, and which parser reads it.

Data plus pure functions: the rack stacks read it to create one Batch job definition per (node group, benchmark),
the runner reads it inside the job to build the command. Commands are argv lists, never shell strings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

# The job image carries workloads/ alone, so the tiers are spelled out here (a test holds them equal to
# rackform.catalog.TIERS) rather than imported from the core.
ALL_TIERS = ("graviton", "trainium", "gpu", "cpu")
TORCH_DEVICE = {"gpu": "cuda", "trainium": "xla", "graviton": "cpu", "cpu": "cpu"}


@dataclass(frozen=True)
class NodeContext:
    """Where one node of a job runs: what the runner knows from the environment Batch (or the local executor) gives."""

    tier: str
    node_index: int = 0
    num_nodes: int = 1
    main_address: str = "127.0.0.1"
    gpus: int = 0
    neuron_devices: int = 0
    neuron_ranks: int = 0  # NeuronCores the collectives see: physical cores / NEURON_LOGICAL_NC_CONFIG
    efa: bool = False
    work_dir: str = "/tmp/rackform-scratch"  # scratch space, or the FSx mount for the storage benchmark
    fsx_mount: str | None = None  # where FSx for Lustre should be mounted, when the cluster has one
    local: bool = False  # the local executor: small sizes, software fabric provider
    master_port: int = 29500  # torch rendezvous on the main node
    fabric_port: int = 47592  # fi_pingpong's control port (its default)
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    @property
    def is_main(self) -> bool:
        return self.node_index == 0


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]
    tool: str  # parser key: workloads.parsers.TOOLS or "torch"
    labels: tuple[tuple[str, str], ...] = ()  # added to every metric of this step, e.g. (("test", "seq-read"),)
    retries: int = 0  # tries again after a failure, one second apart (a client racing its server's start)


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    tiers: tuple[str, ...]
    nodes: int  # default node count; multi-node benchmarks run as Batch multi-node parallel jobs
    max_nodes: int
    steps: Callable[[NodeContext], tuple[Step, ...]]
    needs: tuple[tuple[str, str], ...] = ()  # (command, Debian package) that must be on PATH
    min_nodes: int = 1
    # Why this node cannot give an honest result (None: it can). Checked before any step runs.
    precheck: Callable[[NodeContext], str | None] = lambda ctx: None
    # Measures the cluster's FSx for Lustre file system: its scratch directory is on the mount, not the root volume.
    on_fsx: bool = False

    @property
    def multi_node(self) -> bool:
        return self.max_nodes > 1


def _torch(bench: str, ctx: NodeContext, *extra: str) -> tuple[str, ...]:
    # torch.distributed.run spawns one process per local device and rendezvouses on the main node: the same
    # command on every node of a Batch multi-node job, and as N local processes in the local executor.
    # One rank per accelerator on a real node; one per "node" locally, where every node shares this machine's CPUs.
    per_node = max(ctx.gpus, ctx.neuron_ranks, 1) if bench == "allreduce" and not ctx.local else 1
    device = "cpu" if ctx.local else TORCH_DEVICE[ctx.tier]
    return (sys.executable, "-m", "torch.distributed.run", f"--nnodes={ctx.num_nodes}",
            f"--node-rank={ctx.node_index}", f"--nproc-per-node={per_node}", f"--master-addr={ctx.main_address}",
            f"--master-port={ctx.master_port}", "-m", "workloads.torchbench", bench, f"--device={device}", *extra)


def _allreduce(ctx: NodeContext) -> tuple[Step, ...]:
    extra = ("--max-bytes=4194304", "--iters=5") if ctx.local else ()
    return (Step(_torch("allreduce", ctx, *extra), "torch"),)


def _gemm(ctx: NodeContext) -> tuple[Step, ...]:
    extra = ("--sizes", "256", "512", "1024") if ctx.local else ()
    return (Step(_torch("gemm", ctx, *extra), "torch"),)


def _inference(ctx: NodeContext) -> tuple[Step, ...]:
    return (Step(_torch("inference", ctx), "torch"),)


def _nccl_tests(ctx: NodeContext) -> tuple[Step, ...]:
    return (Step(("all_reduce_perf", "-b", "8", "-e", "8G", "-f", "2", "-g", str(max(ctx.gpus, 1))), "nccl-tests"),)


def _nccom(ctx: NodeContext) -> tuple[Step, ...]:
    ranks = max(ctx.neuron_ranks, 1)
    return (Step(("nccom-test", "-r", str(ranks), "--minbytes", "8", "--maxbytes", "8G", "--stepfactor", "2",
                  "--datatype", "fp32", "allr"), "nccom-test"),)


def _fio(ctx: NodeContext) -> tuple[Step, ...]:
    size, runtime = ("64M", "3") if ctx.local else ("16G", "30")
    jobs = "1" if ctx.local else str(min(ctx.cpus, 16))
    common = ("fio", "--output-format=json", f"--directory={ctx.work_dir}", f"--size={size}", f"--numjobs={jobs}",
              f"--runtime={runtime}", "--ioengine=libaio" if not ctx.local else "--ioengine=psync",
              "--direct=0" if ctx.local else "--direct=1", "--group_reporting")
    return (
        Step((*common, "--name=seq-write", "--rw=write", "--bs=1M"), "fio", (("test", "seq-write"),)),
        Step((*common, "--name=seq-read", "--rw=read", "--bs=1M"), "fio", (("test", "seq-read"),)),
        Step((*common, "--name=rand-read", "--rw=randread", "--bs=4k", "--time_based"), "fio",
             (("test", "rand-read"),)),
    )


def lustre_mounted(path: str, mounts: str = "/proc/mounts") -> bool:
    try:
        lines = open(mounts).read().splitlines()
    except OSError:
        return False
    return any(len(f := line.split()) >= 3 and f[1] == path.rstrip("/") and f[2] == "lustre" for line in lines)


def _fsx_precheck(ctx: NodeContext) -> str | None:
    # A node whose boot-time mount failed still joins Batch; fio would then measure the root volume under /fsx.
    if ctx.fsx_mount and not ctx.local and not lustre_mounted(ctx.fsx_mount):
        return (f"FSx for Lustre is not mounted at {ctx.fsx_mount} on this node (see the mount log in the node's "
                "user data output): not measuring the root volume in its place")
    return None


def _sysbench(ctx: NodeContext) -> tuple[Step, ...]:
    t = "3" if ctx.local else "30"
    threads = str(ctx.cpus)
    return (
        Step(("sysbench", "cpu", f"--threads={threads}", f"--time={t}", "run"), "sysbench-cpu"),
        Step(("sysbench", "memory", f"--threads={threads}", f"--time={t}", "--memory-block-size=1M",
              "--memory-total-size=1024T", "run"), "sysbench-memory"),
    )


def _fabric(ctx: NodeContext) -> tuple[Step, ...]:
    provider = "efa" if ctx.efa and not ctx.local else "tcp"
    iters = "100" if ctx.local else "10000"
    argv = ("fi_pingpong", "-p", provider, "-e", "rdm", "-I", iters, "-S", "all")
    # The main node serves; the other node connects to it. Both print the same table.
    if ctx.is_main:
        return (Step((*argv, "-B", str(ctx.fabric_port)), "fi_pingpong"),)
    return (Step((*argv, "-P", str(ctx.fabric_port), ctx.main_address), "fi_pingpong", retries=30),)


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("allreduce", "torch.distributed all-reduce bus bandwidth by message size (gloo on CPU, NCCL on "
              "CUDA, XLA on Trainium)", ALL_TIERS, nodes=2, max_nodes=1000, steps=_allreduce),
    Benchmark("allreduce-nccl", "nccl-tests all_reduce_perf on every GPU of one node", ("gpu",), nodes=1,
              max_nodes=1, steps=_nccl_tests, needs=(("all_reduce_perf", "nccl-tests (in the GPU image)"),)),
    Benchmark("allreduce-nccom", "nccom-test all-reduce on every NeuronCore of one node", ("trainium",), nodes=1,
              max_nodes=1, steps=_nccom, needs=(("nccom-test", "aws-neuronx-tools (in the Neuron image)"),)),
    Benchmark("gemm", "matrix-multiply throughput, bf16 where the hardware has it", ALL_TIERS, nodes=1,
              max_nodes=1, steps=_gemm),
    Benchmark("inference", "a small transformer with random weights: tokens/s and latency p50/p99", ALL_TIERS,
              nodes=1, max_nodes=1, steps=_inference),
    Benchmark("storage", "fio sequential read/write bandwidth, random-read IOPS and latency on FSx (or a local "
              "directory)", ALL_TIERS, nodes=1, max_nodes=1, steps=_fio, needs=(("fio", "fio"),),
              precheck=_fsx_precheck, on_fsx=True),
    Benchmark("cpu", "sysbench cpu and memory", ALL_TIERS, nodes=1, max_nodes=1, steps=_sysbench,
              needs=(("sysbench", "sysbench"),)),
    Benchmark("fabric", "fi_pingpong latency and bandwidth by size between two nodes (libfabric: efa on AWS)",
              ALL_TIERS, nodes=2, max_nodes=2, min_nodes=2, steps=_fabric,
              needs=(("fi_pingpong", "libfabric-bin"),)),
)}


def benchmarks_for(tier: str, node_count: int) -> list[Benchmark]:
    """The benchmarks a node group of this tier and size gets job definitions for."""
    return [b for b in BENCHMARKS.values() if tier in b.tiers and node_count >= b.min_nodes]


def default_nodes(benchmark: Benchmark, node_count: int) -> int:
    return max(benchmark.min_nodes, min(benchmark.nodes, node_count))
