"""`rackform parse`: users paste logs from elsewhere and get metrics, or a reason and exit 1."""

from __future__ import annotations

import json

from rackform.cli import main

from .conftest import ROOT

SAMPLES = ROOT / "tests" / "data" / "tool-output"
P5 = SAMPLES / "nccl-tests" / "all_reduce-2xp5-srun-excerpt.txt"  # awsome-distributed-training's 2 x p5 run


def test_parse_prints_metrics_as_json(capsys):
    code = main(["parse", "--tool", "nccl-tests", str(P5)])
    parsed = json.loads(capsys.readouterr().out)
    [peak] = [m for m in parsed["metrics"] if m["name"] == "busbw_max"]
    assert code == 0 and parsed["ok"] and peak["value"] == 487.09 and peak["unit"] == "GB/s"


def test_parse_refuses_another_tools_output(capsys):
    code = main(["parse", "--tool", "sysbench-cpu", str(P5)])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and "is not readable sysbench-cpu output" in err


def test_parse_missing_file(capsys, tmp_path):
    code = main(["parse", "--tool", "fio", str(tmp_path / "none.json")])
    assert code == 1 and "cannot read" in capsys.readouterr().err


def test_parse_exits_1_when_the_figure_is_not_there(capsys):
    # iperf3 3.6 wrote a complete JSON whose receiver got 0 bytes: no bandwidth, not a bandwidth of 0.
    code = main(["parse", "--tool", "iperf3", str(SAMPLES / "iperf3" / "3.6-receiver-measured-nothing.json")])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and "iperf3's receiver measured nothing: 0 bytes received" in err
