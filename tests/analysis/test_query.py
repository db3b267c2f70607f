"""Issue 23 item 3, the pure side of the Athena engine (rackform/analysis/query.py): whole records selected as JSON
from the table's own column types, the runs and benchmarks as partition filters, every value escaped, and a row
read back as the record it is."""

from __future__ import annotations

import json

import pytest

from rackform.analysis.query import as_json, record_json, record_of, records_sql
from tests.records import run_records
from workloads.layout import table_columns
from workloads.results import ResultRecord

COLUMNS = [("run_id", "string"), *table_columns(ResultRecord)]  # as Glue would describe a table of these


def test_every_column_is_selected_by_its_name():
    keys = record_json(COLUMNS).split("MAP(ARRAY[", 1)[1].split("]", 1)[0]
    assert [k.strip(" '") for k in keys.split(",")] == [name for name, _ in COLUMNS]
    with pytest.raises(ValueError, match="no SQL name"):
        record_json([("a\"b", "string")])


@pytest.mark.parametrize(("hive", "sql"), [
    ("bigint", 'CAST("c" AS JSON)'),
    ("array<double>", 'CAST(transform("c", x0 -> CAST(x0 AS JSON)) AS JSON)'),
    ("map<string,string>", 'CAST(transform_values("c", (k0, v0) -> CAST(v0 AS JSON)) AS JSON)'),
    ("struct<a:string,b:array<bigint>>", """IF("c" IS NULL, NULL, CAST(MAP(ARRAY['a', 'b'], ARRAY[CAST("c"."a" AS \
JSON), CAST(transform("c"."b", x0 -> CAST(x0 AS JSON)) AS JSON)]) AS JSON))"""),
    # nested: each level's lambda has its own name
    ("array<struct<m:map<string,bigint>>>", """CAST(transform("c", x0 -> IF(x0 IS NULL, NULL, CAST(MAP(ARRAY['m'], \
ARRAY[CAST(transform_values(x0."m", (k1, v1) -> CAST(v1 AS JSON)) AS JSON)]) AS JSON))) AS JSON)"""),
])
def test_each_hive_type_becomes_json_through_maps_never_a_row_cast(hive, sql):
    assert as_json('"c"', hive) == sql


@pytest.mark.parametrize("hive", ["map<bigint,string>", "struct<a b:string>", 'struct<a"--:string>'])
def test_a_type_that_cannot_be_a_json_object_is_refused(hive):
    with pytest.raises(ValueError):
        as_json('"c"', hive)


def test_the_runs_and_benchmarks_are_partition_filters_and_their_values_are_escaped():
    sql = records_sql("db.t", COLUMNS, ["r2", "x') OR 1=1 --", "r2"], ["cpu"])
    assert "WHERE run_id IN ('r2', 'x'') OR 1=1 --')\n  AND benchmark IN ('cpu')" in sql
    assert "benchmark IN" not in records_sql("db.t", COLUMNS, ["r1"])  # every benchmark of the runs
    with pytest.raises(ValueError, match="DATABASE.TABLE"):
        records_sql('db.t"; --', COLUMNS, ["r1"])
    with pytest.raises(ValueError, match="no value of run_id"):
        records_sql("db.t", COLUMNS, [])


def test_a_row_is_the_record_it_was_nulls_being_its_defaults():
    for record in run_records("r1", gpu_algbw=250.0, gemm=690.0, p50=10.0):
        assert record_of(json.dumps(record.model_dump(mode="json"))) == record


@pytest.mark.parametrize("cell", [None, "[]", "not json", '{"run_id": "r1"}', '{"run_id": "r1", "extra": 1}'])
def test_a_row_that_is_no_record_says_so(cell):
    with pytest.raises(ValueError, match="not a result record"):
        record_of(cell)
