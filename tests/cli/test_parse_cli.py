"""`rackform parse`: users paste logs from elsewhere and get metrics, or a reason and exit 1."""

from __future__ import annotations

import json

from rackform.cli import main

from tests.conftest import ROOT

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


DEBUG = SAMPLES / "nccl-debug"


def test_parse_nccl_debug_prints_the_fabric_and_efa_devices(capsys):
    code = main(["parse", "--tool", "nccl-debug", str(DEBUG / "efa-direct-aws-ofi-nccl-1.17.log")])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[:3] == ["fabric: efa", "EFA devices: 32", "provider: efa (fabric efa-direct)"]


def test_parse_nccl_debug_json_tells_bootstrap_from_data(capsys):
    log = DEBUG / "ib-data-socket-bootstrap-nccl-tests-issue-29.log"
    code = main(["parse", "--tool", "nccl-debug", "--json", str(log)])
    parsed = json.loads(capsys.readouterr().out)
    assert code == 0 and parsed["fabric"] == "unknown" and parsed["efa_devices"] is None
    assert parsed["networks"] == ["IB"] and parsed["bootstrap"] == "[0]enp41s0f1:<0> [1]virbr0:<0>"


def test_parse_nccl_debug_refuses_a_log_that_names_no_transport(capsys):
    code = main(["parse", "--tool", "nccl-debug", str(P5)])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and "names no NCCL transport" in err and "NCCL_DEBUG=INFO" in err


def test_parse_nccl_debug_escapes_what_the_log_says(capsys, tmp_path):
    log = tmp_path / "debug.log"
    log.write_text("x [0] NCCL INFO NET/OFI Selected provider is efa, fabric is \x1b]0;owned\x07 (found 2 nics)\n"
                   "x [0] NCCL INFO NET/Socket : Using [0]eth0\x1b[2J\n")
    assert main(["parse", "--tool", "nccl-debug", str(log)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]0;owned\\x07" in out and "\\x1b[2J" in out and "EFA devices: 2" in out
