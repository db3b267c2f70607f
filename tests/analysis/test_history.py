"""Issue 23 items 3 and 4, the pure side of `rackform history`: the SQL filters the benchmark (and the runs, when
named) as partitions, never needs a run list, escapes every value it puts in SQL, selects each headline's values
by its exact labels, and a result row becomes the same history row a record read from S3 does."""

from __future__ import annotations

import datetime as dt

import pytest

from rackform.analysis.history import COLUMNS, athena_row, history_sql, numbers, record_row
from workloads.results import Metric, ResultRecord

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def test_the_query_filters_the_benchmark_partition_and_the_headline_by_its_exact_labels():
    sql = history_sql("demo_storage.results", "allreduce", ["gpu"], ["h100", "h200"])
    assert 'FROM "demo_storage"."results"' in sql
    assert "WHERE benchmark = 'allreduce'" in sql and "run_id" not in sql.split("FROM")[1]  # every run: no list
    assert "AND rack IN ('gpu')" in sql and "AND node_group IN ('h100', 'h200')" in sql and "status IS NOT NULL" in sql
    # allreduce's headline: busbw_max with exactly placement=in-place (a repeat label aside)
    assert ("transform(filter(metrics, m -> m.name = 'busbw_max' AND cardinality(map_filter(m.labels, (k, v) -> "
            "k <> 'repeat')) = 1 AND element_at(m.labels, 'placement') = 'in-place'), m -> m.value)") in sql
    assert sql.splitlines()[0].startswith("SELECT " + ", ".join(COLUMNS))


def test_runs_named_are_a_partition_filter():
    assert "AND run_id IN ('r1', 'r2')" in history_sql("db.t", "cpu", ["gpu"], ["h100"], run_ids=["r2", "r1", "r1"])


@pytest.mark.parametrize("value", ["a'b", "x') OR 1=1 --", "'", "''", "a\\'b"])
@pytest.mark.parametrize("where", ["rack", "node_group", "run_id"])
def test_a_value_cannot_end_its_literal(value, where):
    given = {"rack": ["gpu"], "node_group": ["h100"], "run_id": ["r1"], where: [value]}
    sql = history_sql("db.t", "cpu", given["rack"], given["node_group"], run_ids=given["run_id"])
    assert f"{where} IN ('{value.replace(chr(39), chr(39) * 2)}')" in sql
    # every quote in the statement is paired: the literal ends where it began
    between = sql.split(f"{where} IN (", 1)[1].split(")\n", 1)[0]
    assert between.startswith("'") and between.endswith("'") and between[1:-1].replace("''", "").count("'") == 0


@pytest.mark.parametrize("table", ['db.t"; DROP TABLE x; --', "db", "a.b.c", "db.t x", ""])
def test_a_table_name_that_is_not_database_dot_table_is_refused(table):
    with pytest.raises(ValueError, match="DATABASE.TABLE"):
        history_sql(table, "cpu", ["gpu"], ["h100"])


def test_a_query_without_a_rack_or_node_group_is_refused():
    with pytest.raises(ValueError, match="no value of node_group"):
        history_sql("db.t", "cpu", ["gpu"], [])


def test_athena_arrays_parse_and_a_row_takes_the_median_of_its_repeats():
    assert numbers("[1.5, 2.0, NaN]")[:2] == [1.5, 2.0] and numbers("[]") == [] and numbers(None) == []
    row = athena_row(["r1", "gpu", "h100", "p5.48xlarge", "2", "succeeded", "2026-11-24T08:00:00+00:00",
                      "[30.0, 36.0, 33.0]"])
    assert (row.run_id, row.node_count, row.figures) == ("r1", 2, (33.0,))
    assert athena_row(["r1", "gpu", "h100", "p5", "2", "failed", "t", None]).figures == (None,)


def test_a_record_from_s3_is_the_same_row():
    record = ResultRecord(run_id="r1", benchmark="cpu", tool="sysbench", rack="graviton", node_group="head",
                          tier="graviton", instance_type="m7g.xlarge", node_count=1, status="succeeded",
                          metrics=tuple(Metric(name="events_per_second", value=v, unit="events/s",
                                               labels={"repeat": str(i)}) for i, v in enumerate((90.0, 100.0, 95.0))),
                          started_at=T0, ended_at=T0 + dt.timedelta(seconds=5))
    cells = ["r1", "graviton", "head", "m7g.xlarge", "1", "succeeded", T0.isoformat(), "[90.0, 100.0, 95.0]", "[]"]
    assert record_row(record) == athena_row(cells)
