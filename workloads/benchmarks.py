"""The benchmark catalog: what each benchmark runs on which tier, on how many nodes, and which parser reads it.

Data plus pure functions: the rack stacks read it to create one Batch job definition per (node group, benchmark),
the runner reads it inside the job to build the command. Commands are argv lists, never shell strings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from .contract import FI_PROVIDER

# The job image carries workloads/ alone, so the tiers are spelled out here (a test holds them equal to
# rackform.spec.models.TIERS) rather than imported from the core.
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
    # The CPUs this node may run on (its affinity, which a cpuset or the local executor's pinning narrows; on a
    # whole instance, all of them): what multi-threaded tools are sized by.
    cpus: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    # Benchmarks launched across nodes (Benchmark.ssh_launch): every node's address, the main node's first, and the
    # Open MPI host file the main node wrote from them (workloads/launch.py). Empty on one node.
    hosts: tuple[str, ...] = ()
    hostfile: str | None = None
    repeats: int = 1  # how many times the job measures the benchmark
    repeat: int = 0  # which of them the steps are for (0-based): a repeat may need ports of its own

    @property
    def ranks_per_node(self) -> int:
        """One rank per accelerator (NeuronCores as the collectives see them); one per "node" locally."""
        return 1 if self.local else max(self.gpus, self.neuron_ranks, 1)

    @property
    def is_main(self) -> bool:
        return self.node_index == 0


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]
    tool: str  # parser key: workloads.parsers.TOOLS or "torch"
    labels: tuple[tuple[str, str], ...] = ()  # added to every metric of this step, e.g. (("test", "seq-read"),)
    retries: int = 0  # tries again after a failure, `retry_s` apart (a client racing its server's start)
    retry_s: float = 1.0
    env: tuple[tuple[str, str], ...] = ()  # variables this step needs beyond the job's (e.g. NEURON_RT_ROOT_COMM_ID)


@dataclass(frozen=True)
class Headline:
    """One figure that sums up a benchmark: the metric named `metric` whose labels are exactly `labels` (a `repeat`
    label aside), shown as `label`. `limit` names the physical limit it is held against; rackform/analysis maps the
    kind to a lookup in rackform/reference/peaks.py (plain data here: the job image carries workloads/ alone)."""

    metric: str
    label: str
    labels: tuple[tuple[str, str], ...] = ()
    # "network_line_rate": the network line rate across nodes, the intra-node link per accelerator on one node;
    # "peak_tflops": one accelerator's peak dense TFLOP/s for the metric's dtype label; "fsx_throughput": what the
    # FSx file system's size buys; None: no physical limit applies.
    limit: str | None = None


@dataclass(frozen=True)
class Pricing:
    """How a benchmark is priced: work per dollar = rate x 3600 x `scale` (x accelerators when `per_device`) / $/h."""

    headline: str  # the Headline.label whose row carries the per-dollar figure
    unit: str  # e.g. "TB/$"
    meaning: str  # what one unit of work is, e.g. "TB all-reduced"
    rate: str | None = None  # a metric whose largest finite value is the rate; None: the headline's own value
    rate_unit: str = ""
    scale: float = 1.0  # e.g. 1/1000: MB/s -> GB per second
    per_device: bool = False  # the benchmark measures one device: its rate counts once per accelerator of the job


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
    # Across nodes, the main node gathers the others' addresses and launches one program on all of them over SSH
    # (workloads/launch.py): the other nodes run sshd and wait. One node runs the steps as they are.
    ssh_launch: bool = False
    # What the benchmark means to the report and to `rackform advise`: its headlines in display order, the one it is
    # priced by, and the workload class it informs ("training" | "inference" | "general").
    headlines: tuple[Headline, ...] = ()
    priced_by: Pricing | None = None
    workload_class: str = "general"
    # The steps measure ctx.repeats times themselves and label each repeat's metrics (torchbench: one rendezvous for
    # all repeats); otherwise the runner runs the steps ctx.repeats times and labels them.
    repeats_in_process: bool = False

    @property
    def multi_node(self) -> bool:
        return self.max_nodes > 1


# Every port a job's steps use is one of its two base ports (master_port: torch's rendezvous and the launch's;
# fabric_port) or one of these, a port per repeat above a base: the next repeat must not meet the last one's socket
# while it closes. port_spans derives from them how many ports from each base a job holds.
def nccom_root_port(ctx: NodeContext) -> int:
    return ctx.master_port + 1 + ctx.repeat


def fabric_control_port(ctx: NodeContext) -> int:
    return ctx.fabric_port + ctx.repeat


def port_spans(repeats: int) -> tuple[int, int]:
    """How many consecutive ports from master_port and from fabric_port a job measuring `repeats` times may use,
    whichever benchmark it runs: the local executor reserves them all when it starts the job (side by side with
    others on one machine, a port the job binds later must be no other job's)."""
    last = NodeContext(tier="cpu", master_port=0, fabric_port=0, repeats=repeats, repeat=repeats - 1, cpus=1)
    return nccom_root_port(last) + 1, fabric_control_port(last) + 1


def _torch(bench: str, ctx: NodeContext, *extra: str) -> tuple[str, ...]:
    # torch.distributed.run spawns one process per local device and rendezvouses on the main node: the same
    # command on every node of a Batch multi-node job, and as N local processes in the local executor.
    # One rank per accelerator on a real node; one per "node" locally, where every node shares this machine's CPUs.
    per_node = ctx.ranks_per_node if bench == "allreduce" else 1
    device = "cpu" if ctx.local else TORCH_DEVICE[ctx.tier]
    program = ("-m", "workloads.torchbench", bench, f"--device={device}", f"--repeats={ctx.repeats}", *extra)
    if ctx.local and ctx.num_nodes == 1 and per_node == 1:
        # A local node of one process with no peers (gemm, inference): torchrun would only start it, importing
        # torch a second time (about 1.5 s of CPU a node on the rehearsal's shared cores). The all-reduce keeps it:
        # its rendezvous across nodes is what the rehearsal proves.
        return (sys.executable, *program)
    return (sys.executable, "-m", "torch.distributed.run", f"--nnodes={ctx.num_nodes}",
            f"--node-rank={ctx.node_index}", f"--nproc-per-node={per_node}", f"--master-addr={ctx.main_address}",
            f"--master-port={ctx.master_port}", *program)


def _allreduce(ctx: NodeContext) -> tuple[Step, ...]:
    # Locally up to 4 MiB, 5 timed calls a size after one warm-up call (as GEMM's CPU default), not torchbench's 5:
    # gloo on CPU compiles nothing, and the four further warm-up calls of each size cost the 2-node job (which holds
    # both CPUs) about 0.6 s of its 4.5 s here.
    extra = ("--max-bytes=4194304", "--iters=5", "--warmup=1") if ctx.local else ()
    return (Step(_torch("allreduce", ctx, *extra), "torch"),)


def _gemm(ctx: NodeContext) -> tuple[Step, ...]:
    extra = ("--sizes", "256", "512", "1024") if ctx.local else ()
    return (Step(_torch("gemm", ctx, *extra), "torch"),)


def _inference(ctx: NodeContext) -> tuple[Step, ...]:
    # Locally a quarter of the work (16 tokens after a 32-token prompt, every step over the whole buffer: 16 x 48
    # token positions against 32 x 96), as the local all-reduce and GEMM are smaller: a rehearsal's figures are this
    # machine's, and the record states the sizes.
    extra = ("--prompt=32", "--generate=16") if ctx.local else ()
    return (Step(_torch("inference", ctx, *extra), "torch"),)


# NCCL's INIT and NET lines say which network carried a collective (workloads/transport.py): every step gets them
# (workloads/run.py), and ranks launched over SSH get them again through the launcher.
NCCL_DEBUG_ENV = (("NCCL_DEBUG", "INFO"), ("NCCL_DEBUG_SUBSYS", "INIT,NET"))


def _launch_env(ctx: NodeContext) -> tuple[tuple[str, str], ...]:
    # What every rank needs whichever node it lands on (ranks started over SSH get sshd's environment, not the
    # job's): the NCCL debug lines; EFA through libfabric.
    return NCCL_DEBUG_ENV + (((FI_PROVIDER, "efa"), ("FI_EFA_FORK_SAFE", "1")) if ctx.efa and not ctx.local else ())


def _nccl_tests(ctx: NodeContext) -> tuple[Step, ...]:
    if ctx.num_nodes == 1:
        return (Step(("all_reduce_perf", "-b", "8", "-e", "8G", "-f", "2", "-g", str(max(ctx.gpus, 1))),
                     "nccl-tests"),)
    if not ctx.is_main:
        return ()
    # Across nodes: one MPI rank per GPU (-g 1), as AWS's Batch nccl-tests sample runs it.
    from .launch import mpirun_argv

    program = ("all_reduce_perf", "-b", "8", "-e", "8G", "-f", "2", "-g", "1")
    return (Step(mpirun_argv(program, hostfile_path=ctx.hostfile or "hostfile",
                             ranks=ctx.num_nodes * ctx.ranks_per_node, env_names=("PATH", "LD_LIBRARY_PATH"),
                             env=_launch_env(ctx)), "nccl-tests"),)


def _nccom(ctx: NodeContext) -> tuple[Step, ...]:
    sweep = ("--minbytes", "8", "--maxbytes", "8G", "--stepfactor", "2", "--datatype", "fp32", "allr")
    if ctx.num_nodes == 1:
        return (Step(("nccom-test", "-r", str(max(ctx.neuron_ranks, 1)), *sweep), "nccom-test"),)
    if not ctx.is_main:
        return ()
    # The NCCOM-TEST User Guide's multi-instance form: -r all ranks, -N nodes, --hosts every node (this one first),
    # NEURON_RT_ROOT_COMM_ID the main node's address and a free port; nccom-test reaches the hosts over SSH itself.
    # A port per repeat, as fi_pingpong's: the next run's root must not meet the last one's socket while it closes.
    root = f"{ctx.hosts[0] if ctx.hosts else ctx.main_address}:{nccom_root_port(ctx)}"
    return (Step(("nccom-test", "-r", str(ctx.num_nodes * ctx.ranks_per_node), "-N", str(ctx.num_nodes), *sweep,
                  "--hosts", *ctx.hosts), "nccom-test", env=(("NEURON_RT_ROOT_COMM_ID", root), *_launch_env(ctx))),)


def _fio(ctx: NodeContext) -> tuple[Step, ...]:
    # Locally the sequential tests end with their 64 MiB (a tenth of a second); the random read runs for its runtime,
    # half a second (fio takes a time in ms: https://fio.readthedocs.io/en/latest/fio_doc.html, "Parameter types"),
    # not 1 s: 1.3 s of the storage job's 2 s a repeat went to it.
    size, runtime = ("64M", "500ms") if ctx.local else ("16G", "30")
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


# sysbench stops at its time limit or at a number of events (memory: a total size), whichever comes first
# (https://manpages.ubuntu.com/manpages/noble/en/man1/sysbench.1.html). On AWS each test runs 30 s. The rehearsal
# stops each at a fixed amount of work, 0.16 s and 0.11 s of CPU on this project's machine, or at 1 s (its time limit
# counts in whole seconds, and a second each was the least before): 6 s of sysbench in the demo's cpu job (both
# tests, 3 repeats) and 8 s in the acceptance rehearsal (its four nodes, one after another) came down to about 1 s and
# 3 s. The work ends a healthy node's run; the work or the second ends that of a node slowed to a quarter of a CPU,
# which reports a quarter of the rate as it did over a fixed time.
def _sysbench(ctx: NodeContext) -> tuple[Step, ...]:
    threads = str(ctx.cpus)
    cpu, memory = ((("--time=1", "--events=500"), ("--time=1", "--memory-total-size=4G")) if ctx.local else
                   (("--time=30",), ("--time=30", "--memory-total-size=1024T")))
    return (
        Step(("sysbench", "cpu", f"--threads={threads}", *cpu, "run"), "sysbench-cpu"),
        Step(("sysbench", "memory", f"--threads={threads}", *memory, "--memory-block-size=1M", "run"),
             "sysbench-memory"),
    )


def _fabric(ctx: NodeContext) -> tuple[Step, ...]:
    provider = "efa" if ctx.efa and not ctx.local else "tcp"
    # Locally 10 round trips a size, fi_pingpong's own default (`fi_pingpong -h`): over the tcp provider on loopback
    # every size of the sweep stalls now and then for milliseconds, so 100 took 4 to 20 s a repeat on two shared
    # cores (both nodes busy-polling, every other job held back) against 1 to 3 s for 10.
    iters = "10" if ctx.local else "10000"
    argv = ("fi_pingpong", "-p", provider, "-e", "rdm", "-I", iters, "-S", "all")
    # The main node serves; the other node connects to it. Both print the same table. A port per repeat: the
    # client of the next repeat must not reach the server of the last one while it closes.
    port = str(fabric_control_port(ctx))
    if ctx.is_main:
        return (Step((*argv, "-B", port), "fi_pingpong"),)
    # The server is up within a second or two: trying every 0.2 s (for 30 s, as before) meets it at once rather
    # than up to a second late, once per repeat and per acceptance pair.
    return (Step((*argv, "-P", port, ctx.main_address), "fi_pingpong", retries=150, retry_s=0.2),)


# Bus bandwidth is a per-link figure; the data all-reduced is algbw, the largest over the sweep.
ALLREDUCE_PRICING = Pricing("busbw", "TB/$", "TB all-reduced", rate="algbw", rate_unit="GB/s", scale=1 / 1000)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("allreduce", "torch.distributed all-reduce bus bandwidth by message size (gloo on CPU, NCCL on "
              "CUDA, XLA on Trainium)", ALL_TIERS, nodes=2, max_nodes=1000, steps=_allreduce,
              headlines=(Headline("busbw_max", "busbw", (("placement", "in-place"),), "network_line_rate"),),
              priced_by=ALLREDUCE_PRICING, workload_class="training", repeats_in_process=True),
    Benchmark("allreduce-nccl", "nccl-tests all_reduce_perf on every GPU, across nodes with Open MPI over SSH",
              ("gpu",), nodes=2, max_nodes=1000, steps=_nccl_tests, ssh_launch=True,
              needs=(("all_reduce_perf", "nccl-tests (in the GPU image)"),),
              headlines=(Headline("busbw_max", "busbw", limit="network_line_rate"),), priced_by=ALLREDUCE_PRICING,
              workload_class="training"),
    Benchmark("allreduce-nccom", "nccom-test all-reduce on every NeuronCore, across nodes over SSH", ("trainium",),
              nodes=2, max_nodes=1000, steps=_nccom, ssh_launch=True,
              needs=(("nccom-test", "aws-neuronx-tools (in the Neuron image)"),),
              headlines=(Headline("busbw_max", "busbw", limit="network_line_rate"),), priced_by=ALLREDUCE_PRICING,
              workload_class="training"),
    Benchmark("gemm", "matrix-multiply throughput, bf16 where the hardware has it", ALL_TIERS, nodes=1,
              max_nodes=1, steps=_gemm,
              headlines=(Headline("tflops_max", "bf16", (("dtype", "bf16"),), "peak_tflops"),
                         Headline("tflops_max", "fp32", (("dtype", "fp32"),), "peak_tflops")),
              priced_by=Pricing("bf16", "TFLOP/$", "TFLOP (bf16)", rate_unit="TFLOP/s", per_device=True),
              workload_class="training", repeats_in_process=True),
    Benchmark("inference", "a small transformer with random weights: tokens/s and latency p50/p99", ALL_TIERS,
              nodes=1, max_nodes=1, steps=_inference,
              headlines=(Headline("tokens_per_second", "tokens/s"), Headline("latency_p50_ms", "p50"),
                         Headline("latency_p99_ms", "p99")),
              priced_by=Pricing("tokens/s", "tokens/$", "tokens generated", rate_unit="tokens/s", per_device=True),
              workload_class="inference", repeats_in_process=True),
    Benchmark("storage", "fio sequential read/write bandwidth, random-read IOPS and latency on FSx (or a local "
              "directory)", ALL_TIERS, nodes=1, max_nodes=1, steps=_fio, needs=(("fio", "fio"),),
              precheck=_fsx_precheck, on_fsx=True,
              headlines=(Headline("read_bw", "seq read", (("test", "seq-read"),), "fsx_throughput"),
                         Headline("write_bw", "seq write", (("test", "seq-write"),), "fsx_throughput"),
                         Headline("read_iops", "rand read", (("test", "rand-read"),))),
              priced_by=Pricing("seq read", "GB/$", "GB read", rate_unit="MB/s", scale=1 / 1000),
              workload_class="general"),
    Benchmark("cpu", "sysbench cpu and memory", ALL_TIERS, nodes=1, max_nodes=1, steps=_sysbench,
              needs=(("sysbench", "sysbench"),),
              headlines=(Headline("events_per_second", "cpu"), Headline("transfer_mib_per_s", "memory")),
              priced_by=Pricing("cpu", "events/$", "sysbench cpu events", rate_unit="events/s"),
              workload_class="general"),
    Benchmark("fabric", "fi_pingpong latency and bandwidth by size between two nodes (libfabric: efa on AWS)",
              ALL_TIERS, nodes=2, max_nodes=2, min_nodes=2, steps=_fabric,
              needs=(("fi_pingpong", "libfabric-bin"),),
              headlines=(Headline("latency_min_us", "latency"), Headline("bandwidth_max", "bandwidth"))),
)}


def benchmarks_for(tier: str, node_count: int) -> list[Benchmark]:
    """The benchmarks a node group of this tier and size gets job definitions for."""
    return [b for b in BENCHMARKS.values() if tier in b.tiers and node_count >= b.min_nodes]


def default_nodes(benchmark: Benchmark, node_count: int) -> int:
    return max(benchmark.min_nodes, min(benchmark.nodes, node_count))
