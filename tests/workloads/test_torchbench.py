"""torchbench on CPU: a real two-process gloo all-reduce, tiny GEMM and inference runs, and the result parser."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, free_port
from workloads import torchbench
from workloads.torchbench import main, message_sizes
from workloads.torchresult import parse_torch_result


def run_inprocess(capsys, *argv: str):
    assert main([*argv, "--device", "cpu"]) == 0
    parsed = parse_torch_result(capsys.readouterr().out)
    assert parsed.ok, parsed.reason
    return parsed


def values(parsed, name: str) -> list[float]:
    return [m.value for m in parsed.metrics if m.name == name]


def test_allreduce_two_gloo_processes_under_torchrun():
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "-m", "workloads.torchbench", "allreduce", "--device", "cpu", "--max-bytes", "1048576",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("RACKFORM_RESULT ") == 1  # rank 0 alone prints

    parsed = parse_torch_result(done.stdout)
    assert parsed.ok, parsed.reason
    assert parsed.details["world_size"] == "2" and parsed.details["backend"] == "gloo"
    algbw = {m.size_bytes: m.value for m in parsed.metrics if m.name == "algbw"}
    busbw = {m.size_bytes: m.value for m in parsed.metrics if m.name == "busbw"}
    assert sorted(algbw) == sorted(busbw) == [1024, 4096, 16384, 65536, 262144, 1048576]
    for size, value in algbw.items():
        assert value > 0 and math.isfinite(value)
        assert busbw[size] == pytest.approx(value * 2 * (2 - 1) / 2, rel=1e-12)
    assert values(parsed, "busbw_max") == [max(busbw.values())]


def test_allreduce_single_process_reports_zero_busbw(capsys):
    parsed = run_inprocess(capsys, "allreduce", "--max-bytes", "4096", "--iters", "2", "--warmup", "1")
    assert parsed.details["world_size"] == "1" and "busbw" in parsed.details["note"]
    assert values(parsed, "busbw") == [0.0, 0.0] and all(v > 0 for v in values(parsed, "algbw"))


def test_gemm_reports_fp32_and_bf16(capsys):
    parsed = run_inprocess(capsys, "gemm", "--sizes", "64", "128", "--iters", "2", "--warmup", "1")
    rows = [m for m in parsed.metrics if m.name == "tflops"]
    assert {(m.labels["dtype"], m.labels["m"]) for m in rows} == {
        ("fp32", "64"), ("fp32", "128"), ("bf16", "64"), ("bf16", "128")
    }
    assert all(m.value > 0 and m.unit == "TFLOP/s" and m.size_bytes is None for m in rows)
    for dtype in ("fp32", "bf16"):
        best = [m.value for m in parsed.metrics if m.name == "tflops_max" and m.labels == {"dtype": dtype}]
        assert best == [max(m.value for m in rows if m.labels["dtype"] == dtype)]


def test_inference_tiny_model(capsys):
    parsed = run_inprocess(
        capsys, "inference", "--d-model", "32", "--layers", "1", "--heads", "2", "--vocab", "100",
        "--batch", "2", "--prompt", "8", "--generate", "6",
    )
    metric = {m.name: m for m in parsed.metrics}
    assert metric["tokens_per_second"].value > 0 and metric["tokens_per_second"].unit == "tokens/s"
    assert metric["latency_p99_ms"].value >= metric["latency_p50_ms"].value > 0
    assert metric["ttft_ms"].value > 0 and parsed.details["dtype"] == "fp32"


def test_inference_workload_is_fixed_by_the_seed():
    rt = torchbench.Runtime("cpu", torch.device("cpu"), 0, 1, torchbench.NO_GROUP)
    args = torchbench.build_parser().parse_args(["inference", "--d-model", "16", "--layers", "1", "--vocab", "50"])
    (first, prompt_a), (second, prompt_b) = (torchbench.build_model(rt, args, "fp32") for _ in range(2))
    assert torch.equal(prompt_a, prompt_b)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=False))


def test_default_sizes_per_tier():
    assert message_sizes(1024, 64 << 20, 4) == [1024 * 4**i for i in range(9)]
    assert message_sizes(8, 8 << 30, 2)[0] == 8 and message_sizes(8, 8 << 30, 2)[-1] == 8 << 30
    assert message_sizes(6, 24, 2) == [4, 12, 24]  # whole float32 elements


def test_auto_device_prefers_neuron_when_torch_xla_and_devices_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torchbench.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(torchbench.glob, "glob", lambda pattern: [])
    assert torchbench.detect_device("auto") == "cpu"  # torch_xla installed but no Neuron device visible
    monkeypatch.setattr(torchbench.glob, "glob", lambda pattern: ["/dev/neuron0"])
    assert torchbench.detect_device("auto") == "xla"
    assert torchbench.detect_device("cpu") == "cpu"


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["allreduce", "--device", "cpu", "--factor", "1"])
    assert exc.value.code == 2


RESULT = {
    "benchmark": "gemm",
    "metrics": [{"name": "tflops_max", "value": 1.5, "unit": "TFLOP/s", "size_bytes": None,
                 "labels": {"dtype": "bf16"}}],
    "details": {"device": "cpu", "world_size": "1"},
}


@pytest.mark.parametrize("prefix", ["", "[rank0]: ", "0: ", "[default0]:"])
def test_parse_tolerates_launcher_prefixes(prefix):
    text = f"{prefix}warming up\n{prefix}RACKFORM_RESULT {json.dumps(RESULT)}\n"
    parsed = parse_torch_result(text)
    assert parsed.ok and parsed.tool == "torch"
    assert parsed.metrics[0].value == 1.5 and parsed.details["benchmark"] == "gemm"


def test_parse_takes_the_last_result_line():
    later = {**RESULT, "metrics": [{**RESULT["metrics"][0], "value": 2.0}]}
    text = f"RACKFORM_RESULT {json.dumps(RESULT)}\nRACKFORM_RESULT {json.dumps(later)}\n"
    assert parse_torch_result(text).metrics[0].value == 2.0


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no RACKFORM_RESULT line"),
        ("\x00\xff garbage \n Traceback (most recent call last):\n", "no RACKFORM_RESULT line"),
        ("RACKFORM_RESULT {\"benchmark\": \"gemm\", \"metrics\": [", "not valid JSON"),
        (f"RACKFORM_RESULT {json.dumps(RESULT)}\nRACKFORM_RESULT {{broken\n", "not valid JSON"),
        ("RACKFORM_RESULT [1, 2]", "malformed"),
        ("RACKFORM_RESULT " + json.dumps({**RESULT, "benchmark": "fio"}), "malformed"),
        ("RACKFORM_RESULT " + json.dumps({**RESULT, "metrics": []}), "malformed"),
        ("RACKFORM_RESULT " + json.dumps({**RESULT, "metrics": [{"name": "x"}]}), "malformed"),
        ("RACKFORM_RESULT " + json.dumps({**RESULT, "details": {"world_size": 2}}), "malformed"),
        ("RACKFORM_RESULT " + json.dumps({**RESULT, "metrics": [{**RESULT["metrics"][0], "value": math.nan}]}),
         "malformed"),
    ],
)
def test_parse_failures_are_reasons_not_exceptions(text, reason):
    parsed = parse_torch_result(text)
    assert not parsed.ok and reason in parsed.reason and parsed.metrics == ()


def test_the_result_reader_knows_every_torchbench_benchmark():
    from workloads import torchresult

    assert set(torchresult.BENCHMARKS) == set(torchbench.BENCHMARKS)
