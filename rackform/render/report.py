"""The run report as a terminal table, CSV and JSON (the HTML page is rackform/render/html.py). Only formatting: every
figure comes from rackform.analysis.report."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from ..analysis.advise import CLASSES, advise, class_verdict
from ..analysis.report import LOCAL_CAVEAT, Report, ResultChange, Row
from ..numbers import UNKNOWN, num, pct, usd
from ..textsafe import visible
from .jsonout import json_text
from .problems import problem_dicts, problem_lines
from .text import Styled, red

NOT_APPLICABLE = "n/a"
NOT_RECORDED = "-"
# Kept when a terminal is too narrow for the whole table (`--wide` shows every column).
ESSENTIAL = ("benchmark", "rack/node group", "health", "metric", "value", "% of limit", "per $", "per $ unit")


def limit_text(row: Row) -> str:
    return NOT_APPLICABLE if row.limit_basis is None else num(row.limit)


def pct_text(row: Row) -> str:
    return NOT_APPLICABLE if row.limit_basis is None else pct(row.pct_of_limit)


def per_dollar_text(row: Row) -> str:
    return NOT_APPLICABLE if row.per_dollar_unit is None else num(row.per_dollar)


def change_text(change: ResultChange | None) -> str:
    if change is None:
        return ""
    if change.metric == "status":
        return "REGRESSION: " + (change.note or "")
    text = f"{change.change_pct:+.1f}%" if change.change_pct is not None else (change.note or UNKNOWN)
    return f"{text} REGRESSION" if change.regression else text


def instance_text(row: Row, mark_local: bool = True) -> str:
    return row.instance_type + (" [local]" if row.local and mark_local else "")


def metric_text(row: Row) -> str:
    """The metric and its unit: the unit is said once here, not in the value, limit and per-$ cells."""
    if row.status != "succeeded":
        return row.status
    return f"{row.metric} ({row.unit})" if row.unit and row.unit != row.metric else str(row.metric)


def value_text(row: Row) -> str:
    if row.status != "succeeded":
        return row.reason or ""  # whole, as --json has it: the table wraps it in its cell
    return num(row.value)


def spread_text(row: Row) -> str:
    """min-max over repeats as a % of the median, with the repeat count; '-' for a single measurement."""
    if row.repeats is None or row.repeats < 2:
        return NOT_RECORDED
    return f"{pct(row.spread_pct) if row.spread_pct is not None else UNKNOWN} (n={row.repeats})"


def health_text(row: Row) -> str:
    """The node health check before the run: ok, failed (the figure is invalid), or - where not recorded."""
    return {True: "ok", False: "failed", None: NOT_RECORDED}[row.healthy]


def notes_index(report: Report) -> dict[str, int]:
    return {note: i for i, note in enumerate(dict.fromkeys(n for r in report.rows for n in r.notes), 1)}


def mark_local_rows(report: Report) -> bool:
    """Mark rows [local] only when the report mixes local and real rows: otherwise the caveat says it once."""
    return report.local and not all(r.local for r in report.rows)


# Validity columns the records may not carry yet (older runners): left out where no row has them, and named once.
VALIDITY_COLUMNS = {"ranks": "ranks", "transport": "transport", "health": "node health", "spread": "repeats"}


def unrecorded(report: Report) -> list[str]:
    """The validity facts no row of the report carries."""
    has = {"ranks": any(r.ranks is not None for r in report.rows),
           "transport": any(r.transport for r in report.rows),
           "health": any(r.healthy is not None for r in report.rows),
           "spread": any((r.repeats or 0) > 1 for r in report.rows)}
    return [column for column, present in has.items() if not present]


def without_unrecorded(report: Report, rows: list[list[Any]], header: list[str]
                       ) -> tuple[list[list[Any]], list[str]]:
    keep = [i for i, h in enumerate(header) if h not in unrecorded(report)]
    return [[r[i] for i in keep] for r in rows], [header[i] for i in keep]


def unrecorded_line(report: Report) -> list[str]:
    missing = [VALIDITY_COLUMNS[c] for c in unrecorded(report)]
    return [f"not recorded by these runs: {', '.join(missing)}"] if missing else []


def summary_table(report: Report) -> tuple[list[list[Any]], list[str]]:
    """(rows, header) for the terminal table; cells that need attention are red on a terminal."""
    index = notes_index(report)
    mark = mark_local_rows(report)
    header = ["benchmark", "rack/node group", "instance", "nodes", "ranks", "transport", "health", "metric", "value",
              "limit", "% of limit", "spread", "$/hour", "per $", "per $ unit"]
    if report.baseline_run_id is not None:
        header.append(f"vs {report.baseline_run_id}")
    header.append("notes")
    rows: list[list[Any]] = []
    for r in report.rows:
        bad = r.status != "succeeded" or r.healthy is False
        cells: list[Any] = [
            r.benchmark, f"{r.rack}/{r.node_group}", instance_text(r, mark), str(r.node_count),
            str(r.ranks) if r.ranks is not None else NOT_RECORDED,
            red(r.transport or "") if r.flagged else r.transport or NOT_RECORDED,
            red(health_text(r)) if r.healthy is False else health_text(r),
            red(metric_text(r)) if bad else metric_text(r), red(value_text(r)) if bad else value_text(r),
            limit_text(r), red(pct_text(r)) if r.flagged else pct_text(r),
            Styled(spread_text(r), "yellow") if r.unstable else spread_text(r), usd(r.usd_per_hour),
            per_dollar_text(r), r.per_dollar_unit or NOT_APPLICABLE]
        if report.baseline_run_id is not None:
            change = report.change_for(r)
            cells.append(red(change_text(change)) if change and change.regression else change_text(change))
        cells.append(",".join(f"[{i}]" for i in sorted(index[n] for n in r.notes)))
        rows.append(cells)
    return without_unrecorded(report, rows, header)


def note_rows(report: Report, note: str) -> str:
    """The rows a note is about, named in the note itself: a narrow terminal may leave the notes column out."""
    rows = list(dict.fromkeys(f"{r.benchmark} on {r.rack}/{r.node_group}" for r in report.rows if note in r.notes))
    return ", ".join(rows) if len(rows) <= 3 else f"{len(rows)} rows"


def text_lines(report: Report) -> tuple[list[str], list[str]]:
    """Lines printed before and after the table: the rehearsal caveat, the notes, the verdict."""
    before = [f"report for run {report.run_id}" + (f" against baseline {report.baseline_run_id} "
                                                   f"(threshold {report.threshold_pct:g}%)"
                                                   if report.baseline_run_id else "")]
    if report.local:
        before.append(LOCAL_CAVEAT)
    # The verdict first, per class of work, as `rackform advise` opens with it; the table below is the evidence.
    # One line each: the command folds the text to the terminal, under the label (folded here, the line breaks
    # would reach the user as visible() escapes).
    advice = advise(report.rows)
    before += [f"verdict  {class_verdict(cls, advice)}" for cls in CLASSES]
    after = [*unrecorded_line(report), *(f"[{i}] {note_rows(report, note)}: {note}"
                                         for note, i in notes_index(report).items())]
    bases = dict.fromkeys(f"{r.benchmark} {r.metric} on {r.instance_type}: {r.limit_basis}"
                          for r in report.rows if r.limit_basis)
    after += [f"limit  {b}" for b in bases]
    failed = [r for r in report.rows if r.status not in ("succeeded", "error")]
    if failed:
        after.append(f"{len(failed)} record(s) did not succeed: "
                     + ", ".join(f"{r.benchmark} on {r.rack}/{r.node_group} ({r.status})" for r in failed))
    for r in report.errors:
        after.append(f"error: {r.benchmark} on {r.rack}/{r.node_group}: {r.reason}")
    if report.baseline_run_id is not None:
        regs = report.regressions
        after.append(f"{len(regs)} regression(s) beyond {report.threshold_pct:g}% against {report.baseline_run_id}")
        after += [f"  {c.benchmark} {c.rack}/{c.node_group} {c.metric}: {change_text(c)}" for c in regs]
    after += problem_lines(report.problems)
    if report.local:
        after.append(LOCAL_CAVEAT)
    # Every line quotes names and reasons from the bucket: one line each, control characters shown, never sent.
    return [visible(line) for line in before], [visible(line) for line in after]


# --- workloads `rackform run` placed ---------------------------------------------------------------------------

PLACED_HEADER = ["workload", "class", "rack/node group", "tier", "spilled from", "$/hour", "expected cost $"]


def placed_rows(states: list[Any]) -> list[list[str]]:
    """Where each workload went and what it cost (rackform.jobs.workload_jobs.WorkloadState); unknown, never 0."""
    return [[s.workload, s.workload_class, s.where, s.tier, s.spilled_from or NOT_RECORDED, usd(s.usd_per_hour),
             usd(s.expected_cost_usd)] for s in states]


def placed_dicts(states: list[Any]) -> list[dict[str, Any]]:
    return [{"workload": s.workload, "class": s.workload_class, "outcome": s.outcome, "where": s.where,
             "tier": s.tier, "spilled_from": s.spilled_from, "usd_per_hour": s.usd_per_hour,
             "expected_cost_usd": s.expected_cost_usd} for s in states]


# --- CSV and JSON ----------------------------------------------------------------------------------------------

CSV_COLUMNS = ["run_id", "benchmark", "rack", "node_group", "tier", "instance_type", "node_count", "ranks",
               "transport", "healthy", "status", "measured_on", "metric", "metric_key", "value", "low", "high",
               "repeats", "spread_pct", "unstable", "unit", "limit", "limit_unit", "limit_basis", "pct_of_limit",
               "usd_per_hour", "per_dollar", "per_dollar_unit", "per_dollar_basis", "baseline_value", "change_pct",
               "regression", "notes", "reason"]


def measured_on(row: Row) -> str:
    return f"local rehearsal (this machine, not {row.instance_type})" if row.local else row.instance_type


def row_dict(report: Report, row: Row) -> dict[str, Any]:
    change = report.change_for(row)
    return {**asdict(row), "notes": list(row.notes), "measured_on": measured_on(row), "valid": row.valid,
            "baseline_value": change.baseline if change else None,
            "change_pct": change.change_pct if change else None,
            "regression": change.regression if change else None}


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV Injection): `=HYPERLINK(...)` in a
# node group name or a reason would run when the CSV is opened. Such text cells get a leading apostrophe, which
# the spreadsheet shows as text. Numbers are written as numbers and never escaped, so -3.5 stays a number.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def render_csv(report: Report) -> str:
    """Unknown figures are empty cells; the *_basis columns say why. Text cells cannot start a formula."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        d = row_dict(report, row)
        d["notes"] = "; ".join(row.notes)
        writer.writerow({k: csv_cell(v) for k, v in d.items()})
    return out.getvalue()


def bar_label(r: Row) -> str:
    return f"{r.tier} {r.rack}/{r.node_group}" + (" [local]" if r.local else "")


def per_dollar_chart_data(report: Report) -> dict[str, list[dict[str, Any]]]:
    """benchmark -> one bar per valid job, from the headline the benchmark is priced by; unknown stays None."""
    data: dict[str, list[dict[str, Any]]] = {}
    for r in report.rows:
        if r.priced and r.valid:
            data.setdefault(r.benchmark, []).append({"label": bar_label(r), "tier": r.tier, "value": r.per_dollar,
                                                     "unit": r.per_dollar_unit, "local": r.local})
    return data


def pct_chart_data(report: Report) -> list[dict[str, Any]]:
    return [{"label": f"{r.benchmark} {r.metric} {bar_label(r)}", "pct": r.pct_of_limit, "local": r.local,
             "tier": r.tier}
            for r in report.rows if r.limit_basis is not None and r.valid]


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "baseline_run_id": report.baseline_run_id,
        "threshold_pct": report.threshold_pct,
        "local_rehearsal": report.local,
        "caveat": LOCAL_CAVEAT if report.local else None,
        "rows": [row_dict(report, r) for r in report.rows],
        "changes": [asdict(c) for c in report.changes],
        "regressions": len(report.regressions),
        "errors": [{"benchmark": r.benchmark, "rack": r.rack, "node_group": r.node_group, "reason": r.reason}
                   for r in report.errors],
        "problems": problem_dicts(report.problems),
        "charts": {
            "busbw_by_size": [asdict(s) for s in report.series],
            "per_dollar": per_dollar_chart_data(report),
            "pct_of_limit": pct_chart_data(report),
        },
    }


def render_json(report: Report) -> str:
    return json_text(report_dict(report))
