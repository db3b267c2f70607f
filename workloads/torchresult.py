"""torchbench's result line, written in the benchmark's process and read back by the runner: no torch here.

The runner parses every torch step on the node that ran it; importing torch there only to read a line of JSON cost
about 1.4 s of CPU a job (the whole of `import torch`), on top of the benchmark's own process importing it.
"""

from __future__ import annotations

import json
import math

from .results import Metric, Parsed

MARKER = "RACKFORM_RESULT "
BENCHMARKS = ("allreduce", "gemm", "inference")  # workloads.torchbench.BENCHMARKS' names (a test holds them equal)


def _failed(reason: str) -> Parsed:
    return Parsed(tool="torch", ok=False, reason=reason)


def _last_payload(text: str) -> str | None:
    # Launchers prefix lines ("[rank0]: ", "0: "): take whatever follows the marker.
    for line in reversed(text.splitlines()):
        _, marker, payload = line.partition(MARKER)
        if marker:
            return payload
    return None


def _from_document(doc: object) -> Parsed:
    if not isinstance(doc, dict) or doc.get("benchmark") not in BENCHMARKS:
        raise ValueError("not an object with a known 'benchmark'")
    if not isinstance(doc.get("metrics"), list) or not doc["metrics"]:
        raise ValueError("'metrics' is not a non-empty list")
    metrics = tuple(Metric.model_validate(m) for m in doc["metrics"])
    if not all(math.isfinite(m.value) for m in metrics):
        raise ValueError("a metric value is not finite")
    details = doc.get("details", {})
    if not isinstance(details, dict):
        raise ValueError("'details' is not an object")
    return Parsed(tool="torch", ok=True, metrics=metrics, details={**details, "benchmark": doc["benchmark"]})


def parse_torch_result(text: str) -> Parsed:
    """Read the last RACKFORM_RESULT line of a torchbench log; ok=False with a reason, never an exception."""
    payload = _last_payload(text)
    if payload is None:
        return _failed(f"no {MARKER.strip()} line in the output")
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        return _failed(f"{MARKER.strip()} line is not valid JSON: {exc}")
    try:
        return _from_document(doc)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return _failed(f"{MARKER.strip()} document is malformed: {exc}")
