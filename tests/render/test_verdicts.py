"""Issue 25 item 5: the report and `rackform advise` open with the verdict per class of work, saying by how much
per dollar the chosen tier beats which other, and because of which measured figures."""

from __future__ import annotations

from tests.render.conftest import cli


def test_the_report_opens_with_a_verdict_per_class(s3, capsys):
    code, out, _ = cli(capsys, "report", "cur")
    head = out.split("\n\n")[0].splitlines()
    verdicts = [line for line in head if line.startswith("verdict  ")]
    # run_records("cur"): gpu 225 GB/s at 110.08 $/h against trainium 50 GB/s at 43 $/h; gemm on gpu, inference
    # cheapest on graviton
    assert [v.split(" ->")[0].split(":")[0] for v in verdicts] == [
        "verdict  training", "verdict  inference", "verdict  general CPU work"]
    assert verdicts[0].startswith("verdict  training -> gpu (gpu/h100): ") and " per dollar of trainium " in verdicts[0]
    assert "because it measured" in verdicts[0] and verdicts[1].startswith("verdict  inference -> graviton")
    assert head.index(verdicts[0]) > 0 and out.index("verdict  training") < out.index("benchmark ")


def test_advise_opens_with_the_verdicts_then_the_evidence(s3, capsys):
    code, out, _ = cli(capsys, "advise", "cur")
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("training"))
    assert code == 0 and lines[first].startswith("training -> gpu (gpu/h100): ")
    assert lines[first + 1].startswith("inference -> graviton") and lines[first + 2].startswith("general CPU work")
    assert lines[first + 3] == "" and lines[first + 4] == "training:"


def test_report_and_advise_fit_80_columns_with_no_figure_cut(s3, capsys, monkeypatch):
    from rackform.render import text

    # What an 80-column terminal gives (tests/cli/test_narrow.py drives a real pseudo-terminal for plan, cost and
    # preflight; these read moto in this process).
    monkeypatch.setattr(text, "terminal_width", lambda stream=None: 80)
    for argv in (("report", "cur"), ("advise", "cur")):
        code, out, _ = cli(capsys, *argv)
        too_long = [line for line in out.splitlines() if len(line) > 80]
        assert too_long == [], (argv, too_long[:2])
    report = cli(capsys, "report", "cur")[1]
    for figure in ("110.08", "43.00", "55.04", "0.1632"):  # every $/hour whole
        assert f" {figure}" in report


def test_place_explain_fits_80_columns_with_its_prices_whole(monkeypatch):
    from rackform.cli.placement import _explain
    from rackform.pipeline import load_plan, parse_workload
    from rackform.placement import QueueState, place
    from rackform.reference.peaks import limits_for
    from rackform.render import text

    monkeypatch.setattr(text, "terminal_width", lambda stream=None: 80)
    plan = load_plan("examples/demo.yaml")
    work = parse_workload({"name": "w", "class": "general", "max_wait": "1h",
                           "tiers": {"graviton": {"image": "img", "command": ["true"]}}})
    decision = place(work, plan, [], {g.job_queue: QueueState(0) for g in plan.node_groups()}, limits_of=limits_for)
    lines = _explain(decision, []).splitlines()
    assert [line for line in lines if len(line) > 80] == []
    assert any(" 0.1632" in line and "m7g.xlarge" in line for line in lines)
