"""The one table function and the one number and price rule every command prints through."""

from __future__ import annotations

import io

import pytest

from rackform.numbers import num, pct, usd
from rackform.render.text import FoldedLines, colour_on, red, table, terminal_width

HEADER = ["benchmark", "rack/node group", "metric", "value", "$/hour", "notes"]
ROWS = [["allreduce", "gpu/h100", "busbw (GB/s)", "421.88", "110.08", "[1] a long note that makes the row wide"],
        ["gemm", "graviton/head", "bf16 (TFLOP/s)", "0.5", "0.1632", ""],
        ["cpu", "graviton/head", "cpu (events/s)", "1,000", "unknown", ""]]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("value", "text"), [(0.1632, "0.1632"), (0.045, "0.045"), (0.5, "0.50"), (110.08, "110.08"),
                                             (1234.5, "1,234.50"), (None, "unknown")])
def test_one_price_rule(value, text):
    # plan printed 0.16 where cost printed 0.1632 for the same m7g.xlarge
    assert usd(value) == text


@pytest.mark.parametrize(("value", "text"), [(0.02, "0.02%"), (0.000123, "0.000123%"), (98.4375, "98.44%"),
                                             (105.46875, "105%"), (None, "unknown")])
def test_one_significant_figures_rule_for_percentages(value, text):
    assert pct(value) == text  # 0.02% is not 0.0%


def test_numbers_keep_three_significant_figures():
    assert [num(v) for v in (0, 0.5, 0.01234, 9.0, 12.345, 421.875, 366279.1)] == [
        "0", "0.5", "0.0123", "9.00", "12.35", "422", "366,279"]


def test_numbers_align_on_the_decimal_point_and_the_header_has_the_unit():
    lines = table(ROWS, HEADER, width=None, colour=False).splitlines()
    cells = [line for line in lines if "graviton" in line or "gpu/h100" in line]
    points = {line_point(cells[0], "110.08"), line_point(cells[1], "0.1632")}
    assert len(points) == 1  # 110.08 and 0.1632 share the decimal point's column
    assert all("$" not in c for c in cells)  # the unit is in the header, not the cells


def line_point(line: str, number: str) -> int:
    return line.index(number) + number.index(".")


def test_a_table_fits_the_terminal_by_dropping_what_is_not_essential_and_says_so():
    text = table(ROWS, HEADER, width=60, essential={"benchmark", "metric", "value", "$/hour"}, colour=False)
    assert all(len(line) <= 60 for line in text.splitlines())
    footer = " ".join(line.strip() for line in text[text.index("\n("):].splitlines())
    assert "notes" not in text.splitlines()[0] and footer.endswith("notes; --wide shows every column)")
    assert "110.08" in text and "0.1632" in text


def test_a_table_wraps_essential_columns_rather_than_overflow():
    text = table(ROWS, HEADER, width=72, essential=set(HEADER), colour=False)
    assert all(len(line) <= 72 for line in text.splitlines()) and "left out" not in text
    assert "421.88" in text and "0.1632" in text  # numbers are never cut
    assert "[1] a long" in text and "note" in text  # text wraps


def test_columns_that_cannot_fit_even_at_their_narrowest_turn_the_table_vertical():
    # Leaving out the metric, its value or the price would leave a row that says nothing: one block per row instead.
    text = table(ROWS, HEADER, width=40, essential=set(HEADER), colour=False)
    assert all(len(line) <= 40 for line in text.splitlines()) and "left out" not in text
    block = text.split("\n\n")[0].splitlines()
    assert block[0] == "allreduce" and "  value:           421.88" in block and "  $/hour:          110.08" in block
    assert "a long note that" in text and "makes the row wide" in text  # folded at spaces, never cut


def test_a_narrow_table_leaves_out_ids_and_architecture_before_prices_and_names_none_cut():
    header = ["rack/node group", "arch", "instance", "count", "quota", "$/hour"]
    rows = [["trainium/workers", "x86_64", "trn1.32xlarge", "2", "L-2C3B7624 (Running On-Demand Trn instances)",
             "43.00"]]
    text = table(rows, header, width=50, colour=False).splitlines()
    assert all(len(line) <= 50 for line in text)
    assert "trainium/workers" in text[2] and "trn1.32xlarge" in text[2] and text[2].endswith("43.00")
    assert " ".join(line.strip() for line in text[3:]) == ("(2 column(s) left out to fit the terminal: arch, quota; "
                                                          "--wide shows every column)")


def test_an_essential_column_is_never_left_out_the_table_turns_vertical_instead():
    # "notes" is essential but ranked with the text columns: at 60 characters it was left out (said so below)
    # although the caller named it; the columns cannot share the width with every word whole.
    text = table(ROWS, HEADER, width=60, essential={"notes"}, colour=False)
    assert "left out" not in text and all(len(line) <= 60 for line in text.splitlines())
    assert "  notes:" in text and "a long note that" in text and "  value:           421.88" in text


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rackform/nccl-tests:2.13.8-cuda12.4-efa1.32-ofi1.11"


@pytest.mark.parametrize("essential", [None, {"reason"}])
def test_a_long_word_is_folded_in_its_column_rather_than_the_column_left_out(essential):
    header = ["rack/node group", "instance", "count", "arch", "reason"]
    rows = [["gpu/h100", "p5.48xlarge", "2", "x86_64", f"CannotPullContainerError: {IMAGE} not found"]]
    text = table(rows, header, width=80, essential=essential, colour=False)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines) and "reason" in lines[0] and "reason" not in lines[-1]
    assert lines[2].split()[:3] == ["gpu/h100", "p5.48xlarge", "2"]  # names and counts whole on the row
    row = lines[2:next((i for i, line in enumerate(lines) if line.startswith("(")), len(lines))]
    assert "".join(line[lines[0].index("reason"):] for line in row).replace(" ", "") == (
        f"CannotPullContainerError:{IMAGE}notfound")  # every character of the reason, folded, none cut


def test_a_long_word_folds_in_the_vertical_layout_too():
    header = ["rack/node group", "instance", "count", "$/hour", "reason"]
    rows = [["gpu/h100", "p5.48xlarge", "2", "110.08", f"CannotPullContainerError: {IMAGE} not found"]]
    lines = table(rows, header, width=40, essential={"reason"}, colour=False).splitlines()
    assert lines[0] == "gpu/h100" and all(len(line) <= 40 for line in lines)  # the URI ran past the edge
    reason = next(i for i, line in enumerate(lines) if line.startswith("  reason:"))
    assert "".join(line[len("  reason:   "):] for line in lines[reason:]).replace(" ", "") == (
        f"CannotPullContainerError:{IMAGE}notfound")


def test_folded_lines_fold_prose_and_leave_a_progress_bar_as_it_is():
    out = io.StringIO()
    stream = FoldedLines(out, 20)
    print("error: a message of more than twenty characters", file=stream)
    stream.write("\r[#####.....] 1/2 jobs done, ETA 1m")  # redrawn in place: flushed before its line ends
    stream.flush()
    stream.write("\r\033[K  job a: RUNNING -> SUCCEEDED\n")
    print("a line the bar follows", file=stream)
    assert out.getvalue().split("\n") == [
        "error: a message of", "more than twenty", "characters", "\r[#####.....] 1/2 jobs done, ETA 1m\r\033[K  job a: "
        "RUNNING -> SUCCEEDED", "a line the bar", "follows", ""]


def test_wide_keeps_every_column_whatever_the_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    text = table(ROWS, HEADER, wide=True, essential={"benchmark"}, colour=False)
    assert "a long note that makes the row wide" in text and "left out" not in text


def test_width_is_the_terminals_and_unlimited_when_piped(monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")  # what a shell or a test runner exports
    assert terminal_width(Tty()) == 72
    assert terminal_width(io.StringIO()) is None  # piped: COLUMNS describes no terminal here


def test_control_characters_are_shown_never_sent():
    text = table([["a\x1b[2Jb", "x\ny"]], ["h1", "h2"], colour=False)
    assert "\x1b" not in text and "\\x1b[2J" in text and "x\\ny" in text


def test_rich_markup_in_a_cell_is_text():
    assert "[bold]x[/bold]" in table([["[bold]x[/bold]"]], ["h"], colour=False)


def test_colour_on_a_terminal_only_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert colour_on(Tty()) and not colour_on(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_on(Tty())
    coloured = table([[red("REGRESSION")]], ["vs base"], colour=True)
    plain = table([[red("REGRESSION")]], ["vs base"], colour=False)
    assert "\x1b[" in coloured and "\x1b[" not in plain and "REGRESSION" in plain


def test_plan_and_cost_print_a_price_by_the_same_rule(capsys):
    from rackform.cli import main

    from tests.conftest import ROOT

    spec = str(ROOT / "examples" / "demo.yaml")
    for command in ("plan", "cost"):
        assert main([command, spec]) == 0
        line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("graviton/head"))
        assert "0.1632" in line.split() and "0.16" not in line.split(), (command, line)


def test_an_html_error_page_never_lands_in_a_cell():
    page = ("An error occurred (502) when calling the PutObject operation: <!DOCTYPE html>\n<html><head>"
            "<title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>")
    text = table([["storage", page]], ["benchmark", "reason"], colour=False)
    assert "<" not in text and "nginx" not in text
    assert "PutObject operation: [an HTML page of" in text and ": 502 Bad Gateway]" in text


def test_place_explains_prices_by_the_same_rule():
    from rackform.reference.peaks import limits_for
    from rackform.pipeline import load_plan
    from rackform.placement import QueueState, place
    from rackform.render.placement import explain_rows
    from rackform.pipeline import parse_workload

    plan = load_plan("examples/demo.yaml")
    work = parse_workload({"name": "w", "class": "general", "max_wait": "1h",
                           "tiers": {"graviton": {"image": "img", "command": ["true"]}}})
    d = place(work, plan, [], {g.job_queue: QueueState(0) for g in plan.node_groups()}, limits_of=limits_for)
    rows, header = explain_rows(d)
    head = next(r for r in rows if r[header.index("instance")] == "m7g.xlarge")
    assert head[header.index("$/hour")] == "0.1632"  # not 0.16
