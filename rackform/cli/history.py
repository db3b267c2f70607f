"""`rackform history BENCHMARK`: one benchmark's headlines over time, across runs, read from S3 or queried on Athena."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, cast

from ..render.text import table
from ..textsafe import visible
from .athena import ATHENA_FROM_RUNS, engine, engine_options, rows
from .common import (
    EXIT_PROBLEM,
    Subparsers,
    aws_options,
    check_run_ids,
    checked_plan,
    json_option,
    problem_lines,
    results_store,
)

if TYPE_CHECKING:
    from workloads.results import ResultRecord
    from workloads.store import ResultStore

    from ..analysis.history import HistoryRow


def cmd_history(args: argparse.Namespace) -> int:
    from workloads.layout import RUN_ID

    from ..analysis.history import ordered
    from ..analysis.summary import headlines

    if args.run:
        check_run_ids(args.run)
    plan = checked_plan(args.spec)
    groups = [(rack.name, g.name) for rack in plan.racks for g in rack.node_groups
              if args.rack in (None, rack.name) and args.node_group in (None, g.name)]
    if not groups:
        print(visible(f"error: the spec has no node group {args.rack or '*'}/{args.node_group or '*'}"),
              file=sys.stderr)
        return EXIT_PROBLEM
    store = results_store(args, plan)
    runs = list(dict.fromkeys(args.run)) if args.run else [r for r in store.run_ids() if RUN_ID.fullmatch(r)]
    chosen = engine(args, len(runs))
    if not runs:
        print(f"error: no runs in s3://{store.bucket}/results/ yet: `rackform submit` starts one", file=sys.stderr)
        return EXIT_PROBLEM
    found = ordered(_from_s3(store, args.benchmark, runs, groups) if chosen == "s3" else
                    _from_athena(args, plan.region, store, runs, groups))
    labels = [h.label for h in headlines(args.benchmark)]
    if args.json:
        print(json.dumps({"benchmark": args.benchmark, "engine": chosen, "rows": [
            {**{k: v for k, v in r.__dict__.items() if k != "figures"}, "figures": dict(zip(labels, r.figures,
                                                                                           strict=True))}
            for r in found]}, indent=2))
    elif found:
        print(table([[r.started_at[:19].replace("T", " "), r.run_id, f"{r.rack}/{r.node_group}", r.instance_type,
                      r.node_count, r.status, *("unknown" if v is None else f"{v:.4g}" for v in r.figures)]
                     for r in found], ["started", "run", "rack/node group", "instance", "nodes", "status", *labels]))
    else:
        print(f"no {args.benchmark} records in the {len(runs)} run(s) on the node groups asked for", file=sys.stderr)
    if problems := problem_lines(store):
        print("\n".join(problems), file=sys.stderr)
    return EXIT_PROBLEM if problems else 0


def _from_s3(store: ResultStore, benchmark: str, runs: list[str], groups: list[tuple[str, str]]) -> list[HistoryRow]:
    """Each run's records of the benchmark on the node groups asked for: a listing per run (its records of the
    benchmark, workloads/layout.records_prefix) and a GET per record. A run with none there may be one written before
    the records had that folder: its job folders are listed, one per node group."""
    from workloads.layout import job_prefix, records_prefix

    from ..analysis.history import record_row

    def read(run_id: str, within: str) -> list[ResultRecord]:
        return [cast("ResultRecord", r) for _, r in store.stream_read(run_id, "record", within=within)]

    found: list[ResultRecord] = []
    for run_id in runs:
        found += read(run_id, records_prefix(run_id, benchmark)) or [
            r for rack, group in groups for r in read(run_id, f"{job_prefix(run_id, rack, group, benchmark)}/")]
    wanted = set(groups)
    return [record_row(r) for r in found if (r.rack, r.node_group) in wanted]


def _from_athena(args: argparse.Namespace, region: str, store: ResultStore, runs: list[str],
                 groups: list[tuple[str, str]]) -> list[HistoryRow]:
    """One query of the benchmark's partitions (of the runs named with --run, else of every run) on these racks and
    node groups."""
    from ..analysis.history import athena_row, history_sql

    def sql(table_name: str, _columns: object) -> str:
        return history_sql(table_name, args.benchmark, [rack for rack, _ in groups], [group for _, group in groups],
                           run_ids=args.run or ())

    return [athena_row(cells) for cells in rows(args, region, store, runs, sql, named=bool(args.run))]


def register(sub: Subparsers) -> None:
    from workloads.benchmarks import BENCHMARKS

    p = sub.add_parser("history", help="one benchmark's headline figures over time, across every run: from S3, or "
                       f"from Athena with --engine athena or once the bucket holds {ATHENA_FROM_RUNS} runs",
                       epilog="example:\n  rackform history allreduce --spec my-spec.yaml --rack gpu --engine athena")
    p.add_argument("benchmark", choices=sorted(BENCHMARKS), help="the benchmark")
    p.add_argument("--spec", required=True, help="the rack spec: its racks and node groups are what is asked for")
    p.add_argument("--rack", help="one rack of the spec (default: every rack)")
    p.add_argument("--node-group", help="one node group (default: every node group)")
    p.add_argument("--run", action="append", metavar="RUN", help="only this run (repeatable; default: every run)")
    engine_options(p)
    json_option(p, "the rows")
    aws_options(p, region=False)
    p.set_defaults(func=cmd_history)
