"""`rackform history BENCHMARK`: one benchmark's headlines over time, across runs, read from S3 or queried on Athena."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any, cast

from ..render.text import table
from ..textsafe import visible
from .common import (
    EXIT_PROBLEM,
    Subparsers,
    aws_options,
    aws_target,
    check_run_ids,
    checked_plan,
    json_option,
    problem_lines,
    results_store,
)

if TYPE_CHECKING:
    from workloads.results import ResultRecord
    from workloads.store import ResultStore

    from .. import aws
    from ..analysis.history import HistoryRow

# With --engine left out: S3 below this many runs, Athena from it. Reading from S3 costs a listing per run and node
# group and a GET per record; a query costs its bytes scanned (docs/results.md), whatever the number of runs.
ATHENA_FROM_RUNS = 50
ATHENA_OUTPUT = "athena-query-results"  # beside results/, which Athena's writes could never satisfy (write-once)
POLL_S = 0.5
FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


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
    engine = args.engine or ("athena" if len(runs) >= ATHENA_FROM_RUNS else "s3")
    why = "--engine" if args.engine else f"{len(runs)} runs; Athena from {ATHENA_FROM_RUNS}, or --engine"
    print(f"engine: {engine} ({why})", file=sys.stderr)
    if not runs:
        print(f"error: no runs in s3://{store.bucket}/results/ yet: `rackform submit` starts one", file=sys.stderr)
        return EXIT_PROBLEM
    rows = ordered(_from_s3(store, args.benchmark, runs, groups) if engine == "s3" else
                   _from_athena(args, plan.region, store, runs, groups))
    labels = [h.label for h in headlines(args.benchmark)]
    if args.json:
        print(json.dumps({"benchmark": args.benchmark, "engine": engine, "rows": [
            {**{k: v for k, v in r.__dict__.items() if k != "figures"}, "figures": dict(zip(labels, r.figures,
                                                                                           strict=True))}
            for r in rows]}, indent=2))
    elif rows:
        print(table([[r.started_at[:19].replace("T", " "), r.run_id, f"{r.rack}/{r.node_group}", r.instance_type,
                      r.node_count, r.status, *("unknown" if v is None else f"{v:.4g}" for v in r.figures)]
                     for r in rows], ["started", "run", "rack/node group", "instance", "nodes", "status", *labels]))
    else:
        print(f"no {args.benchmark} records in the {len(runs)} run(s) on the node groups asked for", file=sys.stderr)
    if problems := problem_lines(store):
        print("\n".join(problems), file=sys.stderr)
    return EXIT_PROBLEM if problems else 0


def _from_s3(store: ResultStore, benchmark: str, runs: list[str], groups: list[tuple[str, str]]) -> list[HistoryRow]:
    """Each run's record of the benchmark on each node group: a listing per (run, node group), a GET per record."""
    from workloads.layout import job_prefix

    from ..analysis.history import record_row

    return [record_row(cast("ResultRecord", record)) for run_id in runs for rack, group in groups
            for _, record in store.stream_read(run_id, "record",
                                               within=f"{job_prefix(run_id, rack, group, benchmark)}/")]


def _from_athena(args: argparse.Namespace, region: str, store: ResultStore, runs: list[str],
                 groups: list[tuple[str, str]]) -> list[HistoryRow]:
    """One query over the table's partitions of these runs, racks, node groups and the benchmark; its result pages
    read with GetQueryResults' paginator."""
    from .. import aws
    from ..analysis.history import athena_row, history_sql

    target = aws_target(args, region)
    athena = aws.client(target, "athena")
    sql = history_sql(args.table or _table_of(args, region), args.benchmark, runs,
                      [rack for rack, _ in groups], [group for _, group in groups])
    started = athena.start_query_execution(
        QueryString=sql, WorkGroup=args.workgroup,
        ResultConfiguration={"OutputLocation": args.output_location or f"s3://{store.bucket}/{ATHENA_OUTPUT}/"})
    query_id = started["QueryExecutionId"]
    execution = _finished(athena, query_id)
    status = execution["Status"]
    if status["State"] != "SUCCEEDED":
        raise aws.AwsError(f"the Athena query {query_id} ended {status['State']}: "
                           f"{status.get('StateChangeReason', 'no reason given')}",
                           "check --workgroup, --table and the output location's permissions")
    scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
    if scanned is not None:
        print(f"Athena scanned {scanned / 1e6:.1f} MB (query {query_id})", file=sys.stderr)
    rows: list[HistoryRow] = []
    for n, page in enumerate(athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)):
        found = page.get("ResultSet", {}).get("Rows", [])
        for row in found[1:] if n == 0 else found:  # the first row of the first page is the header
            rows.append(athena_row([cell.get("VarCharValue") for cell in row.get("Data", [])]))
    return rows


def _finished(athena: aws.BotoClient, query_id: str) -> dict[str, Any]:
    """The query's execution once it has ended (AWS's JSON)."""
    while True:
        execution: dict[str, Any] = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        if execution.get("Status", {}).get("State") in FINISHED:
            return execution
        time.sleep(POLL_S)


def _table_of(args: argparse.Namespace, region: str) -> str:
    """The storage stack's ResultsTableName output (`database.table`)."""
    from .. import aws

    target = aws_target(args, region)
    plan = checked_plan(args.spec)
    try:
        stack = aws.client(target, "cloudformation").describe_stacks(StackName=plan.storage.stack_name)["Stacks"][0]
    except Exception as e:  # not deployed: say so, with the Region
        raise aws.explained(e, target) if aws.is_aws_error(e) else e from None
    for out in stack.get("Outputs", []):
        if out["OutputKey"] == "ResultsTableName":
            return str(out["OutputValue"])
    raise aws.AwsError(f"stack {plan.storage.stack_name} has no ResultsTableName output", "give --table DB.TABLE")


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
    p.add_argument("--engine", choices=("s3", "athena"), help=f"where to read: s3 (the records themselves) or "
                   f"athena (one query over the Glue table); default: s3 below {ATHENA_FROM_RUNS} runs, else athena")
    p.add_argument("--table", metavar="DB.TABLE", help="the Glue table (default: the storage stack's "
                   "ResultsTableName output)")
    p.add_argument("--workgroup", default="primary", help="the Athena workgroup that runs the query")
    p.add_argument("--output-location", metavar="S3URI", help=f"where Athena writes the query's result (default: "
                   f"s3://BUCKET/{ATHENA_OUTPUT}/)")
    json_option(p, "the rows")
    aws_options(p, region=False)
    p.set_defaults(func=cmd_history)
