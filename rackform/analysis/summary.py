"""The few numbers that sum up each benchmark's record, for tables and reports."""

from __future__ import annotations

import math

from workloads.results import Metric, ResultRecord

# benchmark -> [(metric name, labels to match, short label)], in display order; the first found is the headline.
HEADLINES: dict[str, list[tuple[str, dict[str, str], str]]] = {
    "allreduce": [("busbw_max", {}, "busbw")],
    "allreduce-nccl": [("busbw_max", {}, "busbw")],
    "allreduce-nccom": [("busbw_max", {}, "busbw")],
    "gemm": [("tflops_max", {"dtype": "bf16"}, "bf16"), ("tflops_max", {"dtype": "fp32"}, "fp32")],
    "inference": [("tokens_per_second", {}, "tokens/s"), ("latency_p50_ms", {}, "p50"),
                  ("latency_p99_ms", {}, "p99")],
    "storage": [("read_bw", {"test": "seq-read"}, "seq read"), ("write_bw", {"test": "seq-write"}, "seq write"),
                ("read_iops", {"test": "rand-read"}, "rand read")],
    "cpu": [("events_per_second", {}, "cpu"), ("transfer_mib_per_s", {}, "memory")],
    "fabric": [("latency_min_us", {}, "latency"), ("bandwidth_max", {}, "bandwidth")],
}


def find(record: ResultRecord, name: str, labels: dict[str, str]) -> Metric | None:
    found = [m for m in record.metrics if m.name == name and all(m.labels.get(k) == v for k, v in labels.items())]
    return found[0] if found else None


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def headline_text(record: ResultRecord) -> str:
    if record.status != "succeeded":
        return (record.reason or record.status)[:90]
    parts = []
    for name, labels, short in HEADLINES.get(record.benchmark, []):
        if (m := find(record, name, labels)) is not None:
            # NaN or infinite: the tool gave no number, a failed measurement (rackform/analysis/report.py says the same)
            parts.append(f"{short} {fmt(m.value)} {m.unit}" if math.isfinite(m.value) else
                         f"{short} failed measurement ({m.value})")
    return "; ".join(parts) or f"{len(record.metrics)} metrics"
