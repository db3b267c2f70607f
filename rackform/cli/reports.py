"""Commands that read results: report, advise, and parse for logs from elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..render.text import table, terminal_width, wrap
from ..textsafe import visible
from .athena import cross_run_records, engine_options
from .common import (
    Subparsers,
    aws_options,
    checked_plan,
    problem_lines,
    say_no_records,
    store_for,
    threshold,
    write,
)
from .jobs import store_for_run

if TYPE_CHECKING:
    from workloads.results import ResultRecord


def _wide(args: argparse.Namespace) -> bool:
    """--wide: every column, however narrow the terminal."""
    return getattr(args, "wide", False) is True


def cmd_report(args: argparse.Namespace) -> int:
    from ..analysis.report import build_report
    from ..jobs.workload_jobs import workload_states
    from ..reference.peaks import limits_for
    from ..render.jsonout import json_text
    from ..render.report import (
        ESSENTIAL,
        PLACED_HEADER,
        placed_dicts,
        placed_rows,
        render_csv,
        report_dict,
        summary_table,
        text_lines,
    )

    plan = checked_plan(args.spec) if args.spec else None
    fsx = plan.storage.fsx_lustre if plan else None
    store = store_for_run(args, [args.run_id, *([args.baseline] if args.baseline else [])])
    # With a baseline, both runs from one Athena query when the engine is athena (--engine athena), else from S3.
    queried = cross_run_records(args, plan.region if plan else None, store, [args.run_id, args.baseline]) \
        if args.baseline else None
    # Decisions `rackform run` recorded for the run (none: no section); no Batch calls, the decision is the record.
    # Read before the report is built, so a decision that cannot be believed is among the report's problems.
    placed = workload_states(args.run_id, store, None)
    # The records stream in (bounded parallel reads) and become rows as they come: none is held whole, so memory
    # stays flat however many a run has; the counts and zones are all that is kept of them.
    counts: dict[str, int] = {}
    zones: set[str] = set()

    def streamed(run_id: str) -> Iterator[ResultRecord]:
        counts.setdefault(run_id, 0)
        for record in store.iter_records(run_id) if queried is None else queried[run_id]:
            counts[run_id] += 1
            if run_id == args.run_id and (zone := record.environment.get("availability_zone")):
                zones.add(zone)
            yield record

    report = build_report(streamed(args.run_id), limits_of=limits_for, fsx=fsx,
                          baseline=streamed(args.baseline) if args.baseline else None,
                          baseline_run_id=args.baseline, threshold_pct=args.threshold,
                          problems=lambda: store.problems, series=bool(args.json or args.html))
    if empty := next((run for run, n in counts.items() if n == 0), None):
        say_no_records(store, empty)
        return 1
    if args.csv:
        write(args.csv, render_csv(report))
    if args.html:
        from ..render.html import context_for, render_html
        from .accept import acceptance_section

        write(args.html, render_html(report, context_for(report, plan, zones), placed,
                                     acceptance_section(store, args.run_id)))
    if args.json:
        data = report_dict(report)
        if placed:
            data.update(workloads_placed=placed_dicts(placed))
        print(json_text(data))
    else:
        before, after = text_lines(report)
        if placed:  # table() escapes its cells (from the bucket)
            after += ["", "workloads placed:", table(placed_rows(placed), PLACED_HEADER)]
        text = "\n".join([*before, "", table(*summary_table(report), wide=_wide(args),
                                             essential=(*ESSENTIAL, f"vs {args.baseline}")), "", *after])
        print(text if _wide(args) else wrap(text))  # the prose folded to the terminal, as the table fits it
    # A succeeded benchmark with no headline is an error of the report, as a regression or a tampered object is.
    return 1 if report.regressions or report.problems or report.errors else 0


def cmd_advise(args: argparse.Namespace) -> int:
    from ..analysis.advise import CLASSES, MEANING, advice_dict, advise, class_verdict, evidence_table
    from ..analysis.report import LOCAL_CAVEAT, report_rows
    from ..reference.peaks import limits_for

    store = store_for(args, args.run_ids)
    # the runs from one Athena query when the engine is athena (--engine, or 50 runs and more), else from S3
    queried = cross_run_records(args, None, store, args.run_ids)
    rows = []
    for run_id in dict.fromkeys(args.run_ids):  # each run's records become rows as they stream in
        if not (found := report_rows(store.iter_records(run_id) if queried is None else queried[run_id],
                                     limits_for)):
            say_no_records(store, run_id)
            return 1
        rows += found
    advice = advise(rows)
    if args.json:
        print(json.dumps(advice_dict(advice), indent=2))
        return 0
    local = any(a.local for a in advice)
    # Text quoting the bucket goes through visible(); tables have made their cells visible themselves (and may
    # carry colour, which visible() would show as escapes).
    lines = [LOCAL_CAVEAT, ""] if local else []
    # The verdicts open the output, one per class of work; each class's evidence follows under it.
    lines += [visible(class_verdict(cls, advice)) for cls in CLASSES] + [""]  # folded with the rest, or --wide
    # An evidence table is indented under its verdict: it gets the terminal's width less the indent, so it fits as
    # drawn (drawn full width, the fold at the end would break its rows and its footer).
    indent, width = "    ", terminal_width()
    for cls in CLASSES:
        lines.append(f"{cls}:")
        for a in (a for a in advice if a.workload_class == cls):
            lines.append(visible(f"  {a.benchmark} ({MEANING[a.benchmark]} per $): {a.verdict}"))
            if a.evidence:
                lines += [indent + line for line in table(*evidence_table(a), wide=_wide(args), width=None
                                                          if width is None else width - len(indent)).splitlines()]
        lines.append("")
    if local:
        lines.append(LOCAL_CAVEAT)
    lines += [visible(line) for line in problem_lines(store)]
    text = "\n".join(lines).rstrip()
    print(text if _wide(args) else wrap(text))
    return 0


def cmd_parse(args: argparse.Namespace) -> int:
    from workloads.parsers import parse

    from ..spec.files import LOG_MAX_BYTES, FileRefused, read_limited_text

    try:
        if args.file == "-":
            raw = sys.stdin.buffer.read(LOG_MAX_BYTES + 1)
            if len(raw) > LOG_MAX_BYTES:
                raise FileRefused(f"cannot read standard input: it is more than {LOG_MAX_BYTES:,} bytes; log files are "
                                  f"limited to {LOG_MAX_BYTES:,} bytes")
            text = raw.decode("utf-8", errors="replace")
        else:
            text = read_limited_text(args.file, LOG_MAX_BYTES, "log")
    except FileRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.tool == NCCL_DEBUG:
        return _print_transport(args, text)
    parsed = parse(args.tool, text)
    if not parsed.ok:
        print(visible(f"error: {args.file} is not readable {args.tool} output: {parsed.reason}"), file=sys.stderr)
        return 1
    print(parsed.model_dump_json(indent=2))
    return 0


# Not a benchmark tool: a log's NCCL_DEBUG=INFO lines, read for the transport that carried the data.
NCCL_DEBUG = "nccl-debug"


def _print_transport(args: argparse.Namespace, text: str) -> int:
    from workloads.transport import read

    found = read(text)
    if found.fabric == "unknown" and not (found.providers or found.networks):
        print(visible(f"error: {args.file} names no NCCL transport: no 'NET/OFI Selected provider', 'Using network', "
                      "'via NET/' or 'NET/Socket' line (was it run with NCCL_DEBUG=INFO?)"), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found._asdict(), indent=2))
        return 0
    fabrics = f" (fabric {', '.join(found.fabrics)})" if found.fabrics else ""
    lines = [f"fabric: {found.fabric}",
             f"EFA devices: {'unknown' if found.efa_devices is None else found.efa_devices}",
             f"provider: {', '.join(found.providers) or 'not named'}{fabrics}",
             f"data network: {', '.join(found.networks) or 'not named'}"]
    if found.bootstrap:
        lines.append(f"bootstrap (not data): NET/Socket {found.bootstrap}")
    print("\n".join(visible(line) for line in lines))
    return 0



def register(sub: Subparsers) -> None:
    from workloads.parsers import TOOLS

    p = sub.add_parser("report", help="a run against physical limits and prices, optionally against a baseline "
                       "run: table, CSV, JSON, HTML (exit 1 on a regression)")
    p.add_argument("run_id", metavar="RUN", nargs="?", help="run id, as `rackform submit` printed it; default: the "
                   "bucket's newest run")
    p.add_argument("--baseline", metavar="RUN", help="compare with this run; regressions beyond --threshold exit 1")
    p.add_argument("--threshold", type=threshold, default=5.0, metavar="PCT",
                   help="%% change in the worse direction that counts as a regression (default 5)")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with plots")
    p.add_argument("--csv", metavar="PATH", help="write the rows as CSV")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--wide", action="store_true", help="every column, however narrow the terminal (by default "
                   "columns that are not essential are left out, and named, until the table fits)")
    p.add_argument("--spec", help="the run's spec: its FSx size and throughput are the storage limit")
    engine_options(p)
    aws_options(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("advise", help="the tier with the best measured performance per dollar for each workload "
                       "class, across one or more runs")
    p.add_argument("run_ids", metavar="RUN", nargs="+")
    p.add_argument("--json", action="store_true")
    p.add_argument("--wide", action="store_true", help="evidence tables at full width, however narrow the terminal")
    p.add_argument("--spec", help="the spec whose storage stack holds the Athena table (--engine athena)")
    engine_options(p)
    aws_options(p)
    p.set_defaults(func=cmd_advise)

    p = sub.add_parser("parse", help="parse a benchmark tool's raw output into metrics (JSON), or an NCCL debug "
                       "log into the transport that carried the data")
    p.add_argument("--tool", required=True, choices=(*TOOLS, NCCL_DEBUG),
                   help=f"the tool that wrote FILE; {NCCL_DEBUG}: a log with NCCL_DEBUG=INFO lines, read for its "
                   "fabric, libfabric provider and EFA device count")
    p.add_argument("file", help="the tool's output, or - for standard input")
    p.add_argument("--json", action="store_true", help=f"print JSON (the benchmark tools' metrics are JSON either "
                   f"way; {NCCL_DEBUG} prints text without it)")
    p.set_defaults(func=cmd_parse)
