"""Issue 23 items 3 and 4: `rackform history BENCHMARK` across runs, from S3 (a listing per run, a GET per record;
runs of the legacy layout read too) or from Athena (the runs' Glue partitions registered once, then one query of the
benchmark's partitions; its pages read through the paginator), the engine stated on stderr. moto 5.2's Athena cannot
parse botocore's rest-json Athena requests, so the Athena calls are botocore's Stubber; S3 and Glue are moto, in
process."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from rackform.analysis.history import history_sql
from rackform.cli import athena as cli_athena
from tests.cli.conftest import page, partitions, results_table, stubbed_athena
from tests.conftest import ROOT, moto_aws, run_cli, versioned_bucket
from workloads.benchmarks import BENCHMARKS
from workloads.layout import legacy_record_key, log_key, records_prefix
from workloads.results import Metric, ResultRecord
from workloads.store import ResultStore

SPEC = ROOT / "examples" / "demo.yaml"  # us-east-1; racks graviton (head, cpu), trainium (workers), gpu (h100)
BUCKET = "rackform-history-test"
REGION = "us-east-1"
T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def record(run_id: str, day: int, events: float) -> ResultRecord:
    start = T0 + dt.timedelta(days=day)
    return ResultRecord(run_id=run_id, benchmark="cpu", tool="sysbench", rack="graviton", node_group="head",
                        tier="graviton", instance_type="m7g.xlarge", node_count=1, status="succeeded",
                        metrics=(Metric(name="events_per_second", value=events, unit="events/s"),), started_at=start,
                        ended_at=start + dt.timedelta(seconds=5))


@pytest.fixture
def store(monkeypatch):
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    with moto_aws(monkeypatch, REGION):
        s3 = versioned_bucket(BUCKET, REGION)
        store = ResultStore(BUCKET, s3)
        store.put_record(record("r2", 1, 1100.0))
        store.put_record(record("r1", 0, 1000.0))
        yield store


def history(capsys, *argv: object) -> tuple[int, str, str]:
    return run_cli(capsys, "history", "cpu", "--spec", SPEC, "--bucket", BUCKET, *argv)


def test_from_s3_one_listing_per_run_and_node_group_and_a_get_per_record(store, capsys):
    code, out, err = history(capsys, "--rack", "graviton", "--node-group", "head", "--json", "--verbose")
    assert code == 0 and "engine: s3 (2 runs; Athena from 50, or --engine)" in err
    rows = json.loads(out)["rows"]
    assert [(r["run_id"], r["figures"]["cpu"]) for r in rows] == [("r1", 1000.0), ("r2", 1100.0)]  # oldest first
    assert "AWS requests: 5 (s3.ListObjectVersions 2, s3.GetObject 2, s3.ListObjectsV2 1)" in err


@pytest.fixture
def glue_table(store):
    return results_table(BUCKET, REGION)


GROUPS = (["graviton", "graviton", "trainium", "gpu"], ["head", "cpu", "workers", "h100"])


@pytest.mark.parametrize(("argv", "why"), [(["--engine", "athena"], "--engine"),
                                           ([], "2 runs; Athena from 2, or --engine")])  # asked, or the runs
def test_on_athena_the_runs_are_registered_and_one_query_reads_every_page(glue_table, capsys, monkeypatch, argv,
                                                                          why):
    stub = stubbed_athena(monkeypatch, REGION)
    monkeypatch.setattr(cli_athena, "ATHENA_FROM_RUNS", 2)
    sql = history_sql("demo_storage.results", "cpu", *GROUPS)  # no run list: the benchmark is the partition
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"}, {
        "QueryString": sql, "WorkGroup": "primary",
        "ResultConfiguration": {"OutputLocation": f"s3://{BUCKET}/athena-query-results/"}})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "RUNNING"}}},
                      {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_execution", {"QueryExecution": {
        "Status": {"State": "SUCCEEDED"}, "Statistics": {"DataScannedInBytes": 2_500_000}}},
        {"QueryExecutionId": "q-1"})
    header = ["run_id", "rack", "node_group", "instance_type", "node_count", "status", "started_at", "cpu", "memory"]
    first = ["r1", "graviton", "head", "m7g.xlarge", "1", "succeeded", "2026-11-24T08:00:00+00:00", "[1000.0]", None]
    second = ["r2", "graviton", "head", "m7g.xlarge", "1", "succeeded", "2026-11-25T08:00:00+00:00", "[1100.0]", "[]"]
    stub.add_response("get_query_results", page([header, first], "t1"), {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_results", page([second]), {"QueryExecutionId": "q-1", "NextToken": "t1"})
    with stub:
        code, out, err = history(capsys, *argv, "--table", "demo_storage.results", "--json", "--verbose")
    stub.assert_no_pending_responses()
    assert code == 0 and f"engine: athena ({why})" in err and "Athena scanned 2.5 MB (query q-1)" in err
    rows = json.loads(out)["rows"]
    # the second page's first row is data, not a header
    assert [(r["run_id"], r["figures"]) for r in rows] == [("r1", {"cpu": 1000.0, "memory": None}),
                                                          ("r2", {"cpu": 1100.0, "memory": None})]
    # each run's partitions, one per benchmark, at its records of that benchmark: one call for both runs
    assert "registered 2 run(s) in demo_storage.results" in err
    assert partitions(glue_table) == {(run, b): f"s3://{BUCKET}/{records_prefix(run, b)}"
                                      for run in ("r1", "r2") for b in BENCHMARKS}
    assert "glue.BatchCreatePartition 1" in err and "glue.GetPartitions 1" in err and "glue.GetTable 1" in err


def history_on_athena(capsys, monkeypatch, *args: str) -> tuple[int, str]:
    """`history --engine athena` against a stubbed Athena whose one query succeeds with no rows: (exit code, stderr)."""
    stub = stubbed_athena(monkeypatch, REGION)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q"})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}})
    stub.add_response("get_query_results", page([["run_id"]]))
    with stub:
        code, _, err = history(capsys, "--engine", "athena", "--table", "demo_storage.results", *args)
    return code, err


def test_a_run_is_registered_once_and_a_new_one_after_it(glue_table, store, capsys, monkeypatch):
    def once() -> str:
        code, err = history_on_athena(capsys, monkeypatch, "--verbose")
        assert code == 0
        return err

    assert "registered 2 run(s)" in once()
    again = once()
    assert "registered" not in again and "BatchCreatePartition" not in again
    store.put_record(record("r3", 2, 1200.0))
    assert "registered 1 run(s)" in once()
    assert {values[0] for values in partitions(glue_table)} == {"r1", "r2", "r3"}


def test_a_run_left_half_registered_is_sent_again_whole(glue_table, capsys, monkeypatch):
    FIRST = sorted(BENCHMARKS)[0]  # whichever one partition a failed call left, the run is not taken as known
    described = glue_table.get_table(DatabaseName="demo_storage", Name="results")["Table"]
    glue_table.create_partition(DatabaseName="demo_storage", TableName="results", PartitionInput={
        "Values": ["r1", FIRST], "StorageDescriptor": {**described["StorageDescriptor"], "Location": "s3://x/"}})
    code, err = history_on_athena(capsys, monkeypatch)
    assert code == 0 and "registered 2 run(s)" in err
    found = partitions(glue_table)
    assert {b for run, b in found if run == "r1"} == set(BENCHMARKS)  # the rest added; the one there answered
    assert found[("r1", FIRST)] == "s3://x/"  # AlreadyExists, and left as it was


def test_a_run_without_records_gets_no_partitions_and_named_is_an_error(glue_table, store, capsys, monkeypatch):
    store.put_log(log_key("r3", "graviton", "head", "cpu", 0), "started\n")  # in progress: no record yet
    code, err = history_on_athena(capsys, monkeypatch)
    assert code == 0 and "registered 2 run(s)" in err
    assert {values[0] for values in partitions(glue_table)} == {"r1", "r2"}
    with stubbed_athena(monkeypatch, REGION):  # no answer queued: a query would fail the call
        code, _, err = history(capsys, "--engine", "athena", "--table", "demo_storage.results", "--run", "r3")
        assert code == 1 and "no records for run r3 in s3://" in err and "Traceback" not in err
        code, _, err = history(capsys, "--engine", "athena", "--table", "demo_storage.results", "--run", "r22")
        assert code == 1 and "did you mean r2?" in err
    assert {values[0] for values in partitions(glue_table)} == {"r1", "r2"}


def test_a_run_named_with_run_is_a_partition_filter(glue_table, capsys, monkeypatch):
    stub = stubbed_athena(monkeypatch, REGION)
    sql = history_sql("demo_storage.results", "cpu", *GROUPS, run_ids=["r2"])
    stub.add_response("start_query_execution", {"QueryExecutionId": "q"}, {
        "QueryString": sql, "WorkGroup": "wg", "ResultConfiguration": {"OutputLocation": "s3://out/q/"}})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}})
    stub.add_response("get_query_results", page([["run_id"]]))
    with stub:
        code, _, err = history(capsys, "--engine", "athena", "--table", "demo_storage.results", "--run", "r2",
                               "--workgroup", "wg", "--output-location", "s3://out/q/")
    stub.assert_no_pending_responses()
    assert code == 0 and "registered 1 run(s)" in err


def test_a_malformed_table_is_refused_before_any_aws_call(store, capsys, monkeypatch):
    stub = stubbed_athena(monkeypatch, REGION)
    with stub:  # no response queued: any Athena call would fail the test
        code, _, err = history(capsys, "--engine", "athena", "--table", 'x.results" --')
    assert code == 2 and "is not DATABASE.TABLE" in err and "Traceback" not in err


def test_a_run_of_the_legacy_layout_is_read_from_s3(store, capsys):
    old = record("r0", -1, 900.0)
    key = legacy_record_key(old.run_id, old.rack, old.node_group, old.benchmark)
    store.put_once(key, old.model_dump_json().encode(), "application/json")
    code, out, _ = history(capsys, "--rack", "graviton", "--node-group", "head", "--json")
    assert code == 0
    assert [(r["run_id"], r["figures"]["cpu"]) for r in json.loads(out)["rows"]] == [
        ("r0", 900.0), ("r1", 1000.0), ("r2", 1100.0)]


def test_a_failed_query_is_one_line_with_its_reason(glue_table, capsys, monkeypatch):
    stub = stubbed_athena(monkeypatch, REGION)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-2"})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {
        "State": "FAILED", "StateChangeReason": "TABLE_NOT_FOUND: line 2:6: Table 'x.results' does not exist"}}})
    with stub:
        code, _, err = history(capsys, "--engine", "athena", "--table", "demo_storage.results")
    assert code == 1 and "the Athena query q-2 ended FAILED: TABLE_NOT_FOUND" in err and "hint:" in err


def test_an_unknown_node_group_is_named(store, capsys):
    code, _, err = history(capsys, "--rack", "gpu", "--node-group", "head")
    assert code == 1 and "no node group gpu/head" in err


@pytest.mark.parametrize("output", ["results", "demo_storage.results; DROP", "a.b.c"])
def test_a_storage_stack_output_that_is_no_table_is_an_error_not_a_traceback(store, capsys, output):
    """The table named by the storage stack's ResultsTableName output (no --table) is held to DATABASE.TABLE as
    --table is: a stack of another make, or edited by hand, gets a one-line error, never a traceback or its value in
    SQL."""
    import boto3

    template = {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {"ResultsTableName": {"Value": output}}}
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName="demo-storage",
                                                                     TemplateBody=json.dumps(template))
    code, _, err = history(capsys, "--engine", "athena")
    assert code == 1 and "Traceback" not in err
    assert "ResultsTableName" in err and "is not DATABASE.TABLE" in err and "--table" in err
