"""Issue 23 item 3: `advise`, `report --baseline` and `place` read their runs from one Athena query when asked
(`--engine athena`) or at 50 runs, and say which engine they used; the query's rows are whole records, which give
the same output as the records read from S3. S3 and Glue are moto; Athena is botocore's Stubber (tests/cli/conftest.py).
"""

from __future__ import annotations

import json

import pytest

from rackform.analysis.query import records_sql
from rackform.cli import athena as cli_athena
from tests.cli.conftest import TABLE, answer, partitions, results_table, stubbed_athena, table_columns
from tests.conftest import DEMO_SPEC, INFERENCE, moto_aws, run_cli, versioned_bucket
from tests.records import run_records
from workloads.results import ResultRecord
from workloads.store import ResultStore

BUCKET = "rackform-cross-run-test"
REGION = "us-east-1"
HEADER = [["_col0"]]


@pytest.fixture
def stored(monkeypatch):
    """Runs `base` and `cur` in the bucket, and the storage stack's Glue table."""
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    with moto_aws(monkeypatch, REGION):
        s3 = versioned_bucket(BUCKET, REGION)
        store = ResultStore(BUCKET, s3)
        records = run_records("base", gpu_algbw=250.0, gemm=690.0, p50=10.0, local_cpu=False) + \
            run_records("cur", gpu_algbw=225.0, gemm=700.0, p50=9.0, local_cpu=False)
        for r in records:
            store.put_record(r)
        yield records, results_table(BUCKET, REGION)


def as_rows(records: list[ResultRecord]) -> list[list[str | None]]:
    """What Athena answers records_sql with: each record one JSON document, every column present (null where the
    record has none), in the query's order."""
    ordered = sorted(records, key=lambda r: (r.run_id, r.benchmark, r.rack, r.node_group))
    return HEADER + [[json.dumps(r.model_dump(mode="json"))] for r in ordered]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv, "--bucket", BUCKET, "--region", REGION)


def test_advise_on_athena_is_advise_on_s3(stored, capsys, monkeypatch):
    records, glue = stored
    code, on_s3, err = cli(capsys, "advise", "base", "cur", "--json")
    assert code == 0 and "engine: s3 (2 runs; Athena from 50, or --engine)" in err
    stub = stubbed_athena(monkeypatch, REGION)
    answer(stub, as_rows(records), records_sql(TABLE, table_columns(), ["base", "cur"]), WorkGroup="primary",
           ResultConfiguration={"OutputLocation": f"s3://{BUCKET}/athena-query-results/"})
    with stub:
        code, on_athena, err = cli(capsys, "advise", "base", "cur", "--json", "--engine", "athena", "--table", TABLE,
                                   "--verbose")
    stub.assert_no_pending_responses()
    assert code == 0 and "engine: athena (--engine)" in err and "registered 2 run(s)" in err
    assert json.loads(on_athena) == json.loads(on_s3)
    assert "s3.GetObject" not in err  # no record read from S3
    assert {values[0] for values in partitions(glue)} == {"base", "cur"}


def test_advise_switches_to_athena_at_the_threshold_and_says_so(stored, capsys, monkeypatch):
    records, _ = stored
    monkeypatch.setattr(cli_athena, "ATHENA_FROM_RUNS", 2)
    stub = stubbed_athena(monkeypatch, REGION)
    answer(stub, as_rows(records))
    with stub:
        code, _, err = cli(capsys, "advise", "base", "cur", "--table", TABLE)
    assert code == 0 and "engine: athena (2 runs; Athena from 2, or --engine)" in err


def test_report_baseline_on_athena_is_the_report_on_s3(stored, capsys, monkeypatch):
    records, _ = stored
    code, on_s3, _ = cli(capsys, "report", "cur", "--baseline", "base", "--json")
    stub = stubbed_athena(monkeypatch, REGION)
    answer(stub, as_rows(records), records_sql(TABLE, table_columns(), ["base", "cur"]), WorkGroup="wg",
           ResultConfiguration={"OutputLocation": "s3://elsewhere/q/"})
    with stub:
        again, on_athena, err = cli(capsys, "report", "cur", "--baseline", "base", "--json", "--engine", "athena",
                                    "--table", TABLE, "--workgroup", "wg", "--output-location", "s3://elsewhere/q/")
    stub.assert_no_pending_responses()
    assert again == code == 1  # the baseline is better on all-reduce: a regression, on either engine
    assert json.loads(on_athena) == json.loads(on_s3) and "engine: athena (--engine)" in err


def test_a_run_athena_has_no_rows_of_is_named(stored, capsys, monkeypatch):
    records, _ = stored
    stub = stubbed_athena(monkeypatch, REGION)
    answer(stub, as_rows([r for r in records if r.run_id == "base"]))
    with stub:
        code, _, err = cli(capsys, "advise", "base", "cur", "--engine", "athena", "--table", TABLE)
    assert code == 1 and "cur" in err and "error:" in err


def test_a_mistyped_run_is_named_with_the_runs_near_it_and_nothing_is_registered(stored, capsys, monkeypatch):
    _, glue = stored
    stub = stubbed_athena(monkeypatch, REGION)  # no answer queued: a query would fail the call
    with stub:
        code, _, err = cli(capsys, "advise", "base", "curr", "--engine", "athena", "--table", TABLE)
    assert code == 1 and "no records for run curr" in err and "did you mean cur?" in err and "Traceback" not in err
    assert partitions(glue) == {}  # not even `base`'s: the command wrote nothing


def test_a_row_that_is_no_record_is_one_line_naming_it(stored, capsys, monkeypatch):
    stub = stubbed_athena(monkeypatch, REGION)
    answer(stub, HEADER + [['{"run_id": "base", "benchmark": "cpu"}']])
    with stub:
        code, _, err = cli(capsys, "advise", "base", "--engine", "athena", "--table", TABLE)
    assert code == 1 and "row 1 of the Athena query: not a result record" in err and "hint:" in err


def test_without_a_table_or_spec_athena_is_refused_before_any_call(stored, capsys, monkeypatch):
    stub = stubbed_athena(monkeypatch, REGION)
    with stub:
        code, _, err = cli(capsys, "advise", "base", "--engine", "athena")
    assert code == 1 and "needs the results table" in err and "--table" in err


def test_place_ranks_by_the_runs_athena_returns_as_by_those_on_s3(stored, capsys, monkeypatch):
    records, _ = stored
    place = ("place", INFERENCE, "--spec", DEMO_SPEC, "--no-live", "--run", "base", "--run", "cur", "--json",
             "--bucket", BUCKET)
    code, on_s3, _ = run_cli(capsys, *place)
    stub = stubbed_athena(monkeypatch, REGION)
    answer(stub, as_rows(records), records_sql(TABLE, table_columns(), ["base", "cur"]), WorkGroup="primary",
           ResultConfiguration={"OutputLocation": f"s3://{BUCKET}/athena-query-results/"})
    with stub:
        again, on_athena, err = run_cli(capsys, *place, "--engine", "athena", "--table", TABLE)
    stub.assert_no_pending_responses()
    assert code == again == 0 and "engine: athena (--engine)" in err
    assert json.loads(on_athena) == json.loads(on_s3)
