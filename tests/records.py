"""Result records built by hand, for the tests of what reads them (report, advice, placement): every figure a test
checks is worked out from these inputs, never read back from the code under test."""

from __future__ import annotations

import datetime as dt

from workloads.results import Metric, ResultRecord

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
GIB, MIB = 1 << 30, 1 << 20
# 2 nodes x 8 GPUs: busbw = algbw x 2(n-1)/n with n = 16
BUS_16 = 2 * 15 / 16


def record(run_id: str, benchmark: str, rack: str, group: str, tier: str, itype: str, metrics: list[Metric], *,
           nodes: int = 1, price: float | None, status: str = "succeeded", local: bool = False,
           reason: str | None = None) -> ResultRecord:
    return ResultRecord(run_id=run_id, benchmark=benchmark, tool="torch", rack=rack, node_group=group, tier=tier,
                        instance_type=itype, node_count=nodes, status=status, reason=reason, metrics=tuple(metrics),
                        started_at=T0, ended_at=T0 + dt.timedelta(seconds=30),
                        environment={"executor": "local"} if local else {"instance_id": "i-0abc"},
                        price_usd_per_hour=price)


def allreduce_metrics(algbw_by_size: dict[int, float], factor: float) -> list[Metric]:
    labels = {"placement": "in-place"}
    out = []
    for size, algbw in algbw_by_size.items():
        out += [Metric(name="algbw", value=algbw, unit="GB/s", size_bytes=size, labels=labels),
                Metric(name="busbw", value=algbw * factor, unit="GB/s", size_bytes=size, labels=labels)]
    # As torchbench writes it: the best busbw row renamed, its placement label and size kept.
    best = max((x for x in out if x.name == "busbw"), key=lambda x: x.value)
    return out + [best.model_copy(update={"name": "busbw_max"})]


def m(name: str, value: float, unit: str, **labels: str) -> Metric:
    return Metric(name=name, value=value, unit=unit, labels=labels)


def run_records(run_id: str, *, gpu_algbw: float, gemm: float, p50: float, local_cpu: bool = True
                ) -> list[ResultRecord]:
    return [
        record(run_id, "allreduce", "gpu", "h100", "gpu", "p5.48xlarge",
               allreduce_metrics({MIB: 100.0, GIB: gpu_algbw}, BUS_16), nodes=2, price=110.08),
        record(run_id, "allreduce", "trainium", "workers", "trainium", "trn1.32xlarge",
               allreduce_metrics({MIB: 20.0, GIB: 50.0}, 2 * 63 / 64), nodes=2, price=43.0),
        record(run_id, "gemm", "gpu", "h100", "gpu", "p5.48xlarge",
               [m("tflops_max", gemm, "TFLOP/s", dtype="bf16"), m("tflops_max", 400.0, "TFLOP/s", dtype="fp32")],
               price=55.04),
        record(run_id, "gemm", "graviton", "head", "graviton", "m7g.xlarge",
               [m("tflops_max", 0.5, "TFLOP/s", dtype="bf16")], price=0.1632),
        record(run_id, "inference", "gpu", "h100", "gpu", "p5.48xlarge",
               [m("tokens_per_second", 2000.0, "tokens/s"), m("latency_p50_ms", p50, "ms")], price=55.04),
        record(run_id, "inference", "graviton", "head", "graviton", "m7g.xlarge",
               [m("tokens_per_second", 200.0, "tokens/s"), m("latency_p50_ms", 40.0, "ms")], price=0.1632),
        record(run_id, "storage", "graviton", "head", "graviton", "m7g.xlarge",
               [m("read_bw", 250.0, "MB/s", test="seq-read"), m("read_iops", 9000.0, "IOPS", test="rand-read")],
               price=0.1632),
        record(run_id, "cpu", "graviton", "head", "graviton", "m7g.xlarge", [m("events_per_second", 1000.0,
                                                                               "events/s")],
               price=None, local=local_cpu),
        record(run_id, "fabric", "graviton", "cpu", "graviton", "c7gn.16xlarge", [], nodes=2, price=7.98,
               status="failed", reason="fi_pingpong exited 1: no provider"),
    ]


# --- one headline figure per record, on the demo spec's groups (placement's evidence) ------------------------------

PLACED_T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
DEMO_GROUPS = {"graviton": ("graviton", "head", "m7g.xlarge"), "trainium": ("trainium", "workers", "trn1.32xlarge"),
               "gpu": ("gpu", "h100", "p5.48xlarge")}
HEADLINES = {"inference": Metric(name="tokens_per_second", value=0, unit="tokens/s"),
             "gemm": Metric(name="tflops_max", value=0, unit="TFLOP/s", labels={"dtype": "bf16"}),
             "cpu": Metric(name="events_per_second", value=0, unit="events/s")}


def rec(benchmark: str, tier: str, value: float, *, price: float | None, status: str = "succeeded",
        seconds: float = 30, env: dict[str, str] | None = None) -> ResultRecord:
    rack, group, itype = DEMO_GROUPS[tier]
    metric = HEADLINES[benchmark].model_copy(update={"value": value})
    return ResultRecord(run_id="r1", benchmark=benchmark, tool="t", rack=rack, node_group=group, tier=tier,
                        instance_type=itype, node_count=1, status=status, metrics=(metric,), started_at=PLACED_T0,
                        ended_at=PLACED_T0 + dt.timedelta(seconds=seconds),
                        environment=env or {"instance_id": "i-0abc"}, price_usd_per_hour=price)
