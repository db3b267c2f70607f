"""The Athena engine of the commands that read across runs (`history`, `advise`, `report --baseline`): which engine a
command line asks for, the storage stack's table, the Glue partitions of the runs, and one query's result rows.

The SQL is built by pure functions (rackform/analysis/history.py); this is the thin layer that sends it. The table's
partitions are registered here, not projected (cdk_constructs/athena.py says why): before a query, the runs listed
in the bucket whose partitions Glue lacks get theirs, one per run and benchmark
(https://docs.aws.amazon.com/athena/latest/ug/partitions.html: partitions of a layout that is not Hive style are
added by hand), once their records folder holds a record: a run with none (a mistyped id, a run still in progress)
gets no empty partitions, and a run the command was given by name is then an error, before anything is written.
That takes glue:GetTable, glue:GetPartitions and glue:BatchCreatePartition on the table besides Athena's own
permissions (docs/security.md).

Calls, for R runs of which N are new: GetTable 1, GetPartitions 1 per 1,000 partitions (125 runs: a partition per
benchmark), S3 ListObjectsV2 1 per new run (the first page of its records folder, READERS at once),
BatchCreatePartition 1 per PARTITIONS_PER_CALL // benchmarks new runs (12 today); then StartQueryExecution 1,
GetQueryExecution 1 per POLL_S, GetQueryResults 1 per 1,000 rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .common import aws_target, checked_plan, no_such_run

if TYPE_CHECKING:
    from workloads.results import ResultRecord
    from workloads.store import ResultStore

    from .. import aws

# With --engine left out: S3 below this many runs, Athena from it. Reading from S3 costs a listing per run and a GET
# per record; a query costs its bytes scanned (docs/results.md), whatever the number of runs.
ATHENA_FROM_RUNS = 50
ATHENA_OUTPUT = "athena-query-results"  # beside results/, which Athena's writes could never satisfy (write-once)
POLL_S = 0.5
FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")
# BatchCreatePartition takes up to 100 partitions a call
# (https://docs.aws.amazon.com/glue/latest/webapi/API_BatchCreatePartition.html); a run's are sent in one call.
PARTITIONS_PER_CALL = 100
PARTITIONS_PAGE = 1000  # GetPartitions' MaxResults
GlueTable = Mapping[str, Any]  # GetTable's Table, AWS's JSON


def engine_options(p: argparse.ArgumentParser) -> None:
    """--engine and where the Athena engine's query runs: every command that reads across runs takes the same."""
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=("s3", "athena"), help=f"where to read: s3 (the records themselves) or "
                   f"athena (one query over the Glue table); default: s3 below {ATHENA_FROM_RUNS} runs, else athena")
    g.add_argument("--table", metavar="DB.TABLE", type=table_arg, help="the Glue table (default: the "
                   "ResultsTableName output of --spec's storage stack)")
    g.add_argument("--workgroup", default="primary", help="the Athena workgroup that runs the query")
    g.add_argument("--output-location", metavar="S3URI", help=f"where Athena writes the query's result (default: "
                   f"s3://BUCKET/{ATHENA_OUTPUT}/)")


def table_arg(text: str) -> str:
    """--table: DATABASE.TABLE in the letters Glue names take, refused here rather than put in SQL."""
    from ..analysis.query import TABLE

    if not TABLE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not DATABASE.TABLE (letters, digits and underscores), e.g. "
                                         "demo_storage.results_by_run_id_benchmark")
    return text


def engine(args: argparse.Namespace, runs: int) -> str:
    """The engine the command line asks for, or the one `runs` runs call for; said on stderr either way."""
    chosen = str(args.engine or ("athena" if runs >= ATHENA_FROM_RUNS else "s3"))
    why = "--engine" if args.engine else f"{runs} runs; Athena from {ATHENA_FROM_RUNS}, or --engine"
    print(f"engine: {chosen} ({why})", file=sys.stderr)
    return chosen


def table_of(args: argparse.Namespace, region: str | None) -> str:
    """`--table`, else the storage stack's ResultsTableName output (`database.table`) of `--spec`."""
    from .. import aws

    if args.table:
        return str(args.table)
    if not getattr(args, "spec", None):
        raise aws.AwsError("the Athena engine needs the results table", "give --table DB.TABLE (the storage "
                           "stack's ResultsTableName output) or --spec")
    target = aws_target(args, region)
    plan = checked_plan(args.spec)
    try:
        stack = aws.client(target, "cloudformation").describe_stacks(StackName=plan.storage.stack_name)["Stacks"][0]
    except Exception as e:  # not deployed: say so, with the Region
        raise aws.explained(e, target) if aws.is_aws_error(e) else e from None
    for out in stack.get("Outputs", []):
        if out["OutputKey"] == "ResultsTableName":
            try:  # held to what --table is: the stack may be another's, or edited
                return table_arg(str(out["OutputValue"]))
            except argparse.ArgumentTypeError as e:
                raise aws.AwsError(f"stack {plan.storage.stack_name}'s ResultsTableName output: {e}",
                                   "give --table DB.TABLE") from None
    raise aws.AwsError(f"stack {plan.storage.stack_name} has no ResultsTableName output", "give --table DB.TABLE")


def register_runs(glue: aws.BotoClient, table: str, described: GlueTable, store: ResultStore,
                  run_ids: Sequence[str], *, named: bool) -> int:
    """Give each run that lacks any its partitions, one per benchmark (workloads/layout.records_prefix), copying the
    table's storage descriptor (`described`: GetTable's) with the partition's location. Returns how many runs were
    registered. A run is known once it has every benchmark's partition: one left half done (a call that failed) is
    sent again whole, its partitions that exist answered AlreadyExists, and a benchmark added later is added to the
    runs before it the same way.

    A new run is registered only once its records folder holds an object: one with none is left out, or, when the
    runs were `named` on the command line, refused (AwsError naming it and the runs nearest it) before any write."""
    from concurrent.futures import ThreadPoolExecutor

    from workloads.benchmarks import BENCHMARKS
    from workloads.layout import records_prefix
    from workloads.store import READERS

    from .. import aws

    database, name = table.split(".")
    descriptor = described["StorageDescriptor"]
    benchmarks = sorted(BENCHMARKS)
    have: dict[str, set[str]] = {}
    # ExcludeColumnSchema: the values are all that is read, not each partition's copy of the columns
    # (https://docs.aws.amazon.com/glue/latest/webapi/API_GetPartitions.html).
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=name,
                                                          ExcludeColumnSchema=True,
                                                          PaginationConfig={"PageSize": PARTITIONS_PAGE})
    for page in pages:
        for p in page.get("Partitions", []):
            have.setdefault(p["Values"][0], set()).add(p["Values"][1])
    new = [r for r in dict.fromkeys(run_ids) if not have.get(r, set()) >= set(benchmarks)]
    # The first page of the records folder, not the run: node logs and markers are no records to query. A run
    # that has none stays new (a run of the old layout, forever): READERS listings at a time, as `runs` reads.
    with ThreadPoolExecutor(READERS) as pool:
        held = dict(zip(new, pool.map(lambda r: next(store.keys(records_prefix(r)), None) is not None, new),
                        strict=True))
    empty = [r for r in new if not held[r]]
    if named and empty:
        raise aws.AwsError(no_such_run(store, empty[0]), "check the run id (`rackform runs` lists them); a run "
                           "written before its records had a folder of their own (Records/) is read with --engine s3")
    new = [r for r in new if held[r]]
    per_call = PARTITIONS_PER_CALL // len(benchmarks)
    for start in range(0, len(new), per_call):
        inputs = [{"Values": [run_id, benchmark],
                   "StorageDescriptor": {**descriptor,
                                         "Location": f"s3://{store.bucket}/{records_prefix(run_id, benchmark)}"}}
                  for run_id in new[start:start + per_call] for benchmark in benchmarks]
        answer = glue.batch_create_partition(DatabaseName=database, TableName=name, PartitionInputList=inputs)
        # Another rackform registering the same run at once is no failure: its partitions are these.
        if failed := [e for e in answer.get("Errors", [])
                      if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"]:
            detail = failed[0].get("ErrorDetail", {})
            raise aws.AwsError(f"Glue refused partition {'/'.join(failed[0].get('PartitionValues', []))} of "
                               f"{table}: {detail.get('ErrorCode')}: {detail.get('ErrorMessage')}",
                               "check glue:BatchCreatePartition on the table (docs/security.md)")
    return len(new)


def query(athena: aws.BotoClient, sql: str, *, workgroup: str, output_location: str) -> Iterator[list[str | None]]:
    """The result rows of one query (each cell a string, or None for null), its pages read with GetQueryResults'
    paginator, the header row left out. Its bytes scanned are said on stderr."""
    from .. import aws

    started = athena.start_query_execution(QueryString=sql, WorkGroup=workgroup,
                                           ResultConfiguration={"OutputLocation": output_location})
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
    for n, page in enumerate(athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)):
        found = page.get("ResultSet", {}).get("Rows", [])
        for row in found[1:] if n == 0 else found:  # the first row of the first page is the header
            yield [cell.get("VarCharValue") for cell in row.get("Data", [])]


def _finished(athena: aws.BotoClient, query_id: str) -> dict[str, Any]:
    """The query's execution once it has ended (AWS's JSON)."""
    while True:
        execution: dict[str, Any] = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        if execution.get("Status", {}).get("State") in FINISHED:
            return execution
        time.sleep(POLL_S)


Columns = Sequence[tuple[str, str]]  # (name, Hive type) of the deployed table, its partition keys first


def rows(args: argparse.Namespace, region: str | None, store: ResultStore, run_ids: Sequence[str],
         sql_for: Callable[[str, Columns], str], *, named: bool) -> list[list[str | None]]:
    """The runs' partitions registered, then the rows of the query `sql_for(table, its columns)` builds. `named`:
    the runs were given on the command line, so one without records is an error (register_runs)."""
    from .. import aws

    target = aws_target(args, region)
    table = table_of(args, region)
    glue = aws.client(target, "glue")
    database, name = table.split(".")
    described = glue.get_table(DatabaseName=database, Name=name)["Table"]
    columns = [(c["Name"], c["Type"]) for c in [*described.get("PartitionKeys", []),
                                                 *described["StorageDescriptor"].get("Columns", [])]]
    sql = sql_for(table, columns)
    if registered := register_runs(glue, table, described, store, run_ids, named=named):
        print(f"registered {registered} run(s) in {table}", file=sys.stderr)
    return list(query(aws.client(target, "athena"), sql, workgroup=args.workgroup,
                      output_location=args.output_location or f"s3://{store.bucket}/{ATHENA_OUTPUT}/"))


def cross_run_records(args: argparse.Namespace, region: str | None, store: ResultStore, run_ids: Sequence[str]
                      ) -> dict[str, list[ResultRecord]] | None:
    """The runs' records by run from one Athena query (rackform/analysis/query.py records_sql) when the engine is
    athena; None when it is s3, for the caller to read them from S3 itself."""
    from .. import aws
    from ..analysis.query import record_of, records_sql

    runs = list(dict.fromkeys(run_ids))
    if engine(args, len(runs)) == "s3":
        return None
    found: dict[str, list[ResultRecord]] = {run_id: [] for run_id in runs}
    for n, cells in enumerate(rows(args, region, store, runs,
                                   lambda table, columns: records_sql(table, columns, runs), named=True), 1):
        try:
            record = record_of(cells[0] if cells else None)
        except ValueError as e:
            raise aws.AwsError(f"row {n} of the Athena query: {e}", "the table's columns may be older than this "
                               "rackform: deploy the storage stack, or use --engine s3") from None
        found.setdefault(record.run_id, []).append(record)
    return found
