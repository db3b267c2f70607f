"""Issue 23 item 2: a table of thousands of rows (`results` and `report` of a 10,000-record run) is written directly
where rich would only pad and fold columns, and reads exactly as rich draws it, colour and folded cells included; rich
lays out only a table that holds characters wider than one cell."""

from __future__ import annotations

import random

import pytest

from rackform.render import text
from rackform.render.text import red, table

WORDS = ["gpu", "h100", "allreduce", "graviton/head", "a long note that wraps", "unknown", "n/a", "-", "", "x",
         "succeeded", "failed: node 1 ecc", "421.88", "0.1632", "1,000", "12.5%", "≥ 3", "7", "-0.25", "30s",
         "trn2.48xlarge", "测试", "naïve"]
HEADERS = ["benchmark", "rack/node group", "metric", "value", "$/hour", "notes", "job id", "nodes", "arch"]


def rich_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "_plain", lambda *_: None)


def random_table(rng: random.Random) -> tuple[list[list[object]], list[str]]:
    header = rng.sample(HEADERS, rng.randint(1, len(HEADERS)))
    numeric = {h: rng.random() < 0.4 for h in header}
    rows: list[list[object]] = []
    for _ in range(rng.randint(0, 6)):
        row: list[object] = []
        for h in header:
            cell: object = (rng.choice(["421.88", "0.1632", "1,000", "12.5%", "7", "unknown", "-", "0.5", "10.25"])
                            if numeric[h] else rng.choice(WORDS))
            row.append(red(str(cell)) if rng.random() < 0.05 else cell)
        rows.append(row)
    return rows, header


@pytest.mark.parametrize("seed", range(600))
def test_a_table_written_directly_reads_as_rich_draws_it(monkeypatch, seed):
    rng = random.Random(seed)
    rows, header = random_table(rng)
    width = rng.choice([None, 200, 120, 80, 60, 40, 24])
    kwargs = {"width": width, "wide": rng.random() < 0.1, "colour": rng.random() < 0.5,
              "essential": None if rng.random() < 0.5 else header[:2]}
    direct = table(rows, header, **kwargs)
    rich_only(monkeypatch)
    assert direct == table(rows, header, **kwargs)


def test_a_table_of_ten_thousand_rows_is_not_laid_out_by_rich(monkeypatch):
    import rich.table

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("rich laid out a table that only pads columns")

    monkeypatch.setattr(rich.table.Table, "__init__", refuse)
    rows = [["allreduce", f"rack{i:05d}/h100", "gpu", "p5.48xlarge", 2, "succeeded", "30s", f"{33.0 + i % 7:.2f}"]
            for i in range(10_000)]
    header = ["benchmark", "rack/node group", "tier", "instance", "nodes", "status", "time", "result"]
    lines = table(rows, header, width=None, colour=False).splitlines()
    assert len(lines) == 2 + 10_000
    assert lines[2].split() == ["allreduce", "rack00000/h100", "gpu", "p5.48xlarge", "2", "succeeded", "30s", "33.00"]
    # a terminal wide enough for every column: the same lines
    assert table(rows, header, width=200, colour=False).splitlines() == lines
    # a narrower one, in colour, where a failure's reason folds: each row on two lines
    failed = [[*row[:7], red("failed: a reason long enough to fold")] for row in rows]
    narrow = table(failed, header, width=100, colour=True, essential=header).splitlines()
    assert len(narrow) == 2 + 2 * 10_000 and narrow[3].strip() == "\x1b[1;31mto fold                      \x1b[0m"


def test_only_characters_wider_than_one_cell_are_left_to_rich(monkeypatch):
    drawn: list[int] = []
    real = text._drawn
    monkeypatch.setattr(text, "_drawn", lambda *a: drawn.append(1) or real(*a))
    assert "\x1b[1;31mfailed" in table([["gpu", red("failed")]], ["name", "status"], width=None, colour=True)
    assert table([["a note that must wrap here", "1"]], ["notes", "value"], width=16, colour=False).splitlines() == [
        "notes      value", "---------- -----", "a note         1", "that must", "wrap here"]
    assert not drawn  # colour and wrapping are written directly
    table([["测试", "1"]], ["name", "value"], width=None, colour=False)
    assert len(drawn) == 1
