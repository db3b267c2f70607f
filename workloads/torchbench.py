"""Cross-tier PyTorch benchmarks: all-reduce bandwidth, GEMM throughput and small-transformer inference.

One script for every tier so the numbers compare: CPU (gloo), NVIDIA GPU (cuda + nccl) and Trainium
(torch-neuronx / torch_xla, device and backend `xla`). Launch it plainly for one process or under torchrun
for many; rank 0 prints exactly one `RACKFORM_RESULT {json}` line, which `workloads.torchresult` reads back.

    python -m workloads.torchbench allreduce [--device auto|cpu|cuda|xla] [--min-bytes N --max-bytes N ...]
    python -m workloads.torchbench gemm [--sizes 1024 2048 ...]
    python -m workloads.torchbench inference [--d-model 256 --layers 4 --heads 4 ...]
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.distributed as dist
from torch import nn

from workloads.results import REPEAT_LABEL, Metric, with_labels
from workloads.torchresult import MARKER

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
BACKENDS = {"cpu": "gloo", "cuda": "nccl", "xla": "xla"}
NO_GROUP = "none"
FP32_BYTES = 4
# torch.distributed.all_reduce reduces into its input on every backend (ProcessGroupNCCL passes the same
# buffer as send and receive), so these rows compare with nccl-tests' in-place columns, not out-of-place.
PLACEMENT = "in-place"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _xla_model() -> ModuleType:
    # Imported on first use only: torch_xla exists on Trainium images alone.
    return importlib.import_module("torch_xla.core.xla_model")


@dataclass(frozen=True)
class Runtime:
    kind: str  # cpu | cuda | xla
    device: torch.device
    rank: int
    world_size: int
    backend: str  # NO_GROUP when no process group was started

    @property
    def grouped(self) -> bool:
        return self.backend != NO_GROUP

    def step(self) -> None:
        """End the lazy XLA graph after each iteration: one small graph, compiled once in warm-up and replayed,
        instead of a new graph for every iteration count."""
        if self.kind == "xla":
            _xla_model().mark_step()

    def sync(self) -> None:
        """Wait until the device has finished everything queued, so a host clock can time it."""
        if self.kind == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.kind == "xla":
            xm = _xla_model()
            xm.mark_step()
            xm.wait_device_ops()

    def barrier(self) -> None:
        """Start every rank's timed region together."""
        if self.kind == "xla":
            # ProcessGroupXla.barrier returns at once without waiting for anyone.
            _xla_model().rendezvous("rackform-torchbench")
        elif self.kind == "cuda" and self.grouped:
            dist.barrier(device_ids=[self.device.index])
        elif self.grouped:
            dist.barrier()


def detect_device(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "cuda"
    if importlib.util.find_spec("torch_xla") is not None and glob.glob("/dev/neuron*"):
        return "xla"
    return "cpu"


def _launched() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _device(kind: str) -> torch.device:
    if kind == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if kind == "xla":
        return _xla_model().xla_device()
    return torch.device("cpu")


def open_runtime(kind: str, *, need_group: bool) -> Runtime:
    """Join the torchrun world when launched by it; otherwise a process group only if the benchmark needs one."""
    device = _device(kind)
    if not (_launched() or need_group):
        return Runtime(kind, device, 0, 1, NO_GROUP)
    backend = BACKENDS[kind]
    if kind == "xla":
        importlib.import_module("torch_xla.distributed.xla_backend")  # registers the "xla" backend
    if _launched():
        dist.init_process_group(backend, init_method="env://")
    else:
        # A world of one needs no rendezvous: an in-memory store avoids picking a port.
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    return Runtime(kind, device, dist.get_rank(), dist.get_world_size(), backend)


def close_runtime(rt: Runtime) -> None:
    if rt.grouped:
        dist.destroy_process_group()


def sum_over_ranks(rt: Runtime, values: Sequence[float]) -> list[float]:
    if not rt.grouped:
        return list(values)
    # float32: Neuron devices have no float64, and a relative error of 1e-7 is far below run-to-run noise.
    totals = torch.tensor(values, dtype=torch.float32, device=rt.device)
    dist.all_reduce(totals)
    summed: list[float] = totals.cpu().tolist()
    return summed


def mean_over_ranks(rt: Runtime, value: float) -> float:
    return sum_over_ranks(rt, [value])[0] / rt.world_size


def native_bf16(rt: Runtime) -> bool:
    if rt.kind == "cuda":
        # Pre-Ampere GPUs report bf16 as supported through emulation, which would time the emulation.
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    return True


def _versions(*packages: str) -> dict[str, str]:
    found = {}
    for package in packages:
        try:
            found[package.replace("-", "_")] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def environment(rt: Runtime, dtype: str) -> dict[str, str]:
    details = {
        "device": rt.kind,
        "backend": rt.backend,
        "world_size": str(rt.world_size),
        "torch": torch.__version__,
        "dtype": dtype,
        "threads": str(torch.get_num_threads()),
    }
    if rt.kind == "cuda":
        details["cuda"] = str(torch.version.cuda)
        details["nccl"] = ".".join(str(part) for part in torch.cuda.nccl.version())
        details["gpu"] = torch.cuda.get_device_name(rt.device)
        details["tf32"] = str(torch.backends.cuda.matmul.allow_tf32).lower()
    if rt.kind == "xla":
        details.update(_versions("torch-xla", "torch-neuronx", "neuronx-cc"))
        # neuronx-cc may auto-cast fp32 matmuls to bf16; the flags say whether "fp32" really ran as fp32.
        details["neuron_cc_flags"] = os.environ.get("NEURON_CC_FLAGS", "")
    return details


def log(rt: Runtime, message: str) -> None:
    if rt.rank == 0:
        print(message, file=sys.stderr, flush=True)


def emit(rt: Runtime, benchmark: str, metrics: Sequence[Metric], details: dict[str, str]) -> None:
    if rt.rank == 0:
        doc = {"benchmark": benchmark, "metrics": [m.model_dump() for m in metrics], "details": details}
        print(MARKER + json.dumps(doc), flush=True)


def timed(rt: Runtime, work: Callable[[int], None], iters: int, warmup: int) -> float:
    """Seconds per iteration of `work`, after warm-up (XLA compiles then) and with every rank starting together."""
    work(warmup)
    rt.sync()
    rt.barrier()
    start = time.perf_counter()
    work(iters)
    rt.sync()
    return (time.perf_counter() - start) / iters


# ---------------------------------------------------------------------------------------------- all-reduce


def message_sizes(min_bytes: int, max_bytes: int, factor: int) -> list[int]:
    """Sizes in bytes, rounded down to whole float32 elements like nccl-tests' count = size / sizeof(type)."""
    sizes, size = [], min_bytes
    while size <= max_bytes:
        sizes.append(max(FP32_BYTES, size - size % FP32_BYTES))
        size *= factor
    return sizes


def bus_factor(world_size: int) -> float:
    return 2 * (world_size - 1) / world_size


def allreduce_seconds(rt: Runtime, size: int, iters: int, warmup: int) -> float:
    """Seconds per all-reduce averaged over ranks, as nccl-tests reports it."""
    # Zeros stay zeros under summation: no overflow to inf, no denormals, whatever the iteration count.
    buffer = torch.zeros(size // FP32_BYTES, dtype=torch.float32, device=rt.device)

    def work(n: int) -> None:
        for _ in range(n):
            dist.all_reduce(buffer)
            rt.step()

    return mean_over_ranks(rt, timed(rt, work, iters, warmup))


def allreduce_rows(size: int, seconds: float, world_size: int) -> list[Metric]:
    algbw = size / seconds / 1e9
    labels = {"placement": PLACEMENT}
    return [
        Metric(name="algbw", value=algbw, unit="GB/s", size_bytes=size, labels=labels),
        Metric(name="busbw", value=algbw * bus_factor(world_size), unit="GB/s", size_bytes=size, labels=labels),
        Metric(name="time_us", value=seconds * 1e6, unit="us", size_bytes=size, labels=labels),
    ]


def run_allreduce(rt: Runtime, args: argparse.Namespace) -> tuple[list[Metric], dict[str, str]]:
    metrics: list[Metric] = []
    for size in message_sizes(args.min_bytes, args.max_bytes, args.factor):
        rows = allreduce_rows(size, allreduce_seconds(rt, size, args.iters, args.warmup), rt.world_size)
        log(rt, " ".join(f"{m.name}={m.value:.4g}{m.unit}" for m in rows) + f" size={size}")
        metrics += rows
    best = max((m for m in metrics if m.name == "busbw"), key=lambda m: m.value)
    metrics.append(best.model_copy(update={"name": "busbw_max"}))
    details = environment(rt, "fp32") | {"iters": str(args.iters), "warmup": str(args.warmup), "op": "sum"}
    if rt.world_size == 1:
        details["note"] = (
            "world_size 1: the all-reduce moves no data between ranks, so busbw = algbw*2(n-1)/n = 0; "
            "algbw times the local call only"
        )
    return metrics, details


# ---------------------------------------------------------------------------------------------------- GEMM


def gemm_dtypes(rt: Runtime) -> list[str]:
    return ["bf16", "fp32"] if native_bf16(rt) else ["fp32"]


def gemm_seconds(rt: Runtime, n: int, dtype: torch.dtype, iters: int, warmup: int) -> float:
    a = torch.randn(n, n, dtype=dtype, device=rt.device)
    b = torch.randn(n, n, dtype=dtype, device=rt.device)
    # A preallocated, still-referenced output: XLA drops lazy results nobody holds, and cuda skips allocator churn.
    c = torch.empty(n, n, dtype=dtype, device=rt.device)

    def work(count: int) -> None:
        for _ in range(count):
            torch.mm(a, b, out=c)
            rt.step()

    return timed(rt, work, iters, warmup)


def gemm_rows(rt: Runtime, n: int, dtype: str, tflops: float) -> list[Metric]:
    """Per-device mean over ranks; with several ranks also their sum, told apart by the `scope` label."""
    total = sum_over_ranks(rt, [tflops])[0]
    shape = {"dtype": dtype, "m": str(n), "n": str(n), "k": str(n)}
    rows = [Metric(name="tflops", value=total / rt.world_size, unit="TFLOP/s", labels=shape | {"scope": "device"})]
    if rt.world_size > 1:
        rows.append(Metric(name="tflops", value=total, unit="TFLOP/s", labels=shape | {"scope": "all_ranks"}))
    return rows


def run_gemm(rt: Runtime, args: argparse.Namespace) -> tuple[list[Metric], dict[str, str]]:
    dtypes = gemm_dtypes(rt)
    metrics: list[Metric] = []
    for dtype in dtypes:
        for n in args.sizes:
            seconds = gemm_seconds(rt, n, DTYPES[dtype], args.iters, args.warmup)
            rows = gemm_rows(rt, n, dtype, 2 * n**3 / seconds / 1e12)
            log(rt, f"gemm {dtype} {n}x{n}x{n}: {rows[0].value:.4g} TFLOP/s per device")
            metrics += rows
    for dtype in dtypes:
        device_rows = [m for m in metrics if m.labels["dtype"] == dtype and m.labels["scope"] == "device"]
        best = max(m.value for m in device_rows)
        metrics.append(Metric(name="tflops_max", value=best, unit="TFLOP/s", labels={"dtype": dtype}))
    details = environment(rt, ",".join(dtypes)) | {"iters": str(args.iters), "warmup": str(args.warmup)}
    return metrics, details


# ----------------------------------------------------------------------------------------------- inference


class TinyDecoder(nn.Module):  # type: ignore[misc]  # torch is not followed (pyproject.toml): nn.Module is Any
    """Decoder-only transformer: causal self-attention blocks, pre-norm, greedy next-token head.

    Every forward pass sees the whole fixed-length buffer (prompt + generated), so shapes never change:
    XLA would otherwise compile a new graph per token, and the same work then runs on every tier.
    """

    def __init__(self, vocab: int, d_model: int, layers: int, heads: int, length: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(length, d_model)
        block = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=4 * d_model, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        # Bool masks survive .to(bfloat16) unchanged; True marks the future positions a token may not see.
        self.register_buffer("causal", torch.ones(length, length, dtype=torch.bool).triu(1), persistent=False)
        self.register_buffer("positions", torch.arange(length), persistent=False)

    def forward(self, tokens: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Logits for the token after position `last` (a 1-element device tensor, not a Python int,
        so that XLA sees data rather than a new constant each step)."""
        x = self.embed(tokens) + self.position(self.positions)
        x = self.blocks(x, mask=self.causal, is_causal=True)
        return self.head(self.norm(x.index_select(1, last))).squeeze(1)


def generate(rt: Runtime, model: TinyDecoder, prompt: torch.Tensor, new_tokens: int) -> tuple[float, list[float]]:
    """Greedy decoding without a KV cache; returns the wall time and each token's latency in seconds."""
    batch, prompt_len = prompt.shape
    tokens = torch.zeros(batch, prompt_len + new_tokens, dtype=torch.long, device=rt.device)
    tokens[:, :prompt_len] = prompt
    last = torch.tensor([prompt_len - 1], device=rt.device)
    rt.sync()
    latencies = []
    start = time.perf_counter()
    for _ in range(new_tokens):
        begin = time.perf_counter()
        next_token = model(tokens, last).argmax(-1)
        last += 1
        tokens.index_copy_(1, last, next_token.unsqueeze(1))
        rt.sync()
        latencies.append(time.perf_counter() - begin)
    return time.perf_counter() - start, latencies


def inference_dtype(rt: Runtime) -> str:
    return "bf16" if rt.kind != "cpu" and native_bf16(rt) else "fp32"


def build_model(rt: Runtime, args: argparse.Namespace, dtype: str) -> tuple[TinyDecoder, torch.Tensor]:
    torch.manual_seed(args.seed)
    model = TinyDecoder(args.vocab, args.d_model, args.layers, args.heads, args.prompt + args.generate)
    model = model.eval().to(device=rt.device, dtype=DTYPES[dtype])
    prompt = torch.randint(0, args.vocab, (args.batch, args.prompt)).to(rt.device)
    return model, prompt


def percentiles_ms(seconds: Sequence[float], quantiles: Sequence[float]) -> list[float]:
    """Linear interpolation between samples, as numpy's default percentile (numpy is no dependency here)."""
    samples = torch.tensor(seconds, dtype=torch.float64) * 1e3
    values: list[float] = samples.quantile(torch.tensor(quantiles, dtype=torch.float64)).tolist()
    return values


def run_inference(rt: Runtime, args: argparse.Namespace) -> tuple[list[Metric], dict[str, str]]:
    dtype = inference_dtype(rt)
    model, prompt = build_model(rt, args, dtype)
    with torch.inference_mode():
        for _ in range(args.warmup):
            generate(rt, model, prompt, args.generate)
        rt.barrier()
        wall, latencies = generate(rt, model, prompt, args.generate)
    # The first token is time to first token; the per-token percentiles cover the tokens after it.
    p50, p99 = percentiles_ms(latencies[1:], (0.5, 0.99))
    metrics = [
        Metric(name="tokens_per_second", value=args.batch * args.generate / wall, unit="tokens/s"),
        Metric(name="latency_p50_ms", value=p50, unit="ms"),
        Metric(name="latency_p99_ms", value=p99, unit="ms"),
        Metric(name="ttft_ms", value=latencies[0] * 1e3, unit="ms"),
    ]
    log(rt, " ".join(f"{m.name}={m.value:.4g}" for m in metrics))
    config = {k: str(getattr(args, k)) for k in ("d_model", "layers", "heads", "vocab", "batch", "prompt", "generate")}
    details = environment(rt, dtype) | config | {
        "measured_on": "rank 0",
        "kv_cache": "none: every step reruns the full prompt+generate buffer, so ttft is close to per-token latency",
    }
    return metrics, details


# ------------------------------------------------------------------------------------------- command line

BENCHMARKS = {"allreduce": run_allreduce, "gemm": run_gemm, "inference": run_inference}
# Defaults that depend on the tier: (cpu, accelerator). CPU sizes stay small so a laptop run takes seconds.
# A flag's default on CPU and on accelerators, per benchmark.
TIER_DEFAULTS: dict[str, dict[str, tuple[object, object]]] = {
    "allreduce": {"min_bytes": (KIB, 8), "max_bytes": (64 * MIB, 8 * GIB), "factor": (4, 2)},
    "gemm": {"sizes": ([512, 1024, 2048], [4096, 8192, 16384]), "iters": (5, 20), "warmup": (1, 5)},
}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", choices=["auto", "cpu", "cuda", "xla"], default="auto")
    common.add_argument("--repeats", type=_positive, default=1,
                        help="measure this many times in one process group; each repeat's metrics are labelled "
                             "repeat=1..N (the runner passes the job's repeat count)")
    parser = argparse.ArgumentParser(prog="python -m workloads.torchbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)

    allreduce = sub.add_parser("allreduce", parents=[common], help="torch.distributed all-reduce bandwidth sweep")
    allreduce.add_argument("--min-bytes", type=_positive, help="default 1 KiB on CPU, 8 B on accelerators")
    allreduce.add_argument("--max-bytes", type=_positive, help="default 64 MiB on CPU, 8 GiB on accelerators")
    allreduce.add_argument("--factor", type=_positive, help="size multiplier per step; default 4 on CPU, else 2")
    allreduce.add_argument("--iters", type=_positive, default=20)
    allreduce.add_argument("--warmup", type=_count, default=5)

    gemm = sub.add_parser("gemm", parents=[common], help="square matmul throughput, bf16 and fp32")
    gemm.add_argument("--sizes", type=_positive, nargs="+", help="M=N=K; default 512 1024 2048 on CPU")
    gemm.add_argument("--iters", type=_positive, help="default 5 on CPU, 20 on accelerators")
    gemm.add_argument("--warmup", type=_count, help="default 1 on CPU, 5 on accelerators")

    inference = sub.add_parser("inference", parents=[common], help="greedy decoding with a small transformer")
    for flag, default in (("--d-model", 256), ("--layers", 4), ("--heads", 4), ("--vocab", 8000), ("--batch", 4),
                          ("--prompt", 64), ("--warmup", 1), ("--seed", 0)):
        inference.add_argument(flag, type=_count if flag in ("--warmup", "--seed") else _positive, default=default)
    inference.add_argument("--generate", type=_positive, default=32, help="new tokens per sequence, at least 2")
    return parser


def resolve_defaults(args: argparse.Namespace, kind: str) -> None:
    tier = 0 if kind == "cpu" else 1
    for name, choices in TIER_DEFAULTS.get(args.benchmark, {}).items():
        if getattr(args, name) is None:
            setattr(args, name, choices[tier])


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.benchmark == "allreduce" and (args.factor < 2 or not FP32_BYTES <= args.min_bytes <= args.max_bytes):
        parser.error("allreduce needs --factor >= 2 and 4 <= --min-bytes <= --max-bytes")
    if args.benchmark == "inference" and (args.generate < 2 or args.d_model % args.heads):
        parser.error("inference needs --generate >= 2 and --d-model divisible by --heads")


def repeated(rt: Runtime, args: argparse.Namespace) -> tuple[list[Metric], dict[str, str]]:
    """The benchmark `args.repeats` times over, in this process group: one rendezvous, not one per repeat (ranks
    on other nodes cannot race a rendezvous that is still closing). With more than one, every metric carries its
    repeat's number, the label the report takes the median, min and max over."""
    if args.repeats == 1:
        return BENCHMARKS[args.benchmark](rt, args)
    metrics: list[Metric] = []
    details: dict[str, str] = {}
    for i in range(1, args.repeats + 1):
        log(rt, f"repeat {i}/{args.repeats}")
        found, details = BENCHMARKS[args.benchmark](rt, args)
        metrics += with_labels(found, {REPEAT_LABEL: str(i)})
    return metrics, details


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    kind = detect_device(args.device)
    resolve_defaults(args, kind)
    check_args(parser, args)
    rt = open_runtime(kind, need_group=args.benchmark == "allreduce")
    try:
        metrics, details = repeated(rt, args)
        emit(rt, args.benchmark, metrics, details)
    finally:
        close_runtime(rt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
