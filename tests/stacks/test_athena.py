"""The Glue table Athena reads the results through: columns that match ResultRecord, run and benchmark as partitions
that are registered (rackform/cli/athena.py), not projected, so no query has to name every run (issue 23 item 4).
One synth of the demo's storage stack for the whole module."""

from __future__ import annotations

from typing import Any

import pytest

from workloads.results import ResultRecord

PARTITIONS = ["run_id", "benchmark"]


@pytest.fixture(scope="module")
def storage(demo_synth) -> tuple[str, dict[str, Any]]:
    name = demo_synth.plan.storage.stack_name
    return name, demo_synth.templates[name].to_json()


def only(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, v) for k, v in template["Resources"].items() if v["Type"] == kind]
    return found


def joined(value: Any) -> str:
    """An Fn::Join of literals and a bucket Ref, as text with the Ref written <bucket>."""
    if isinstance(value, str):
        return value
    sep, parts = value["Fn::Join"]
    return sep.join(p if isinstance(p, str) else "<bucket>" for p in parts)


def test_glue_table_columns_match_the_result_record(storage):
    stack_name, t = storage
    db_id, db = only(t, "AWS::Glue::Database")
    assert db["Properties"]["DatabaseInput"]["Name"] == stack_name.replace("-", "_") == "demo_storage"
    _, table = only(t, "AWS::Glue::Table")
    assert table["DependsOn"] == [db_id]
    p = table["Properties"]
    assert p["DatabaseName"] == "demo_storage"
    ti = p["TableInput"]
    assert ti["TableType"] == "EXTERNAL_TABLE"
    assert [k["Name"] for k in ti["PartitionKeys"]] == PARTITIONS
    assert {k["Type"] for k in ti["PartitionKeys"]} == {"string"}
    columns = {c["Name"]: c["Type"] for c in ti["StorageDescriptor"]["Columns"]}
    # Every record field is a column or a partition key, never both (Hive refuses a duplicate name).
    assert set(columns) | set(PARTITIONS) == set(ResultRecord.model_fields) and not set(columns) & set(PARTITIONS)
    assert columns["metrics"] == ("array<struct<name:string,value:double,unit:string,size_bytes:bigint,"
                                  "labels:map<string,string>>>")
    assert columns["environment"] == "map<string,string>"
    assert columns["started_at"] == columns["ended_at"] == "string"
    assert columns["price_usd_per_hour"] == "double" and columns["node_count"] == "bigint"
    assert columns["validity"] == columns["fabric"] == "string"  # schema 2 fields: columns from the model itself


def test_glue_table_reads_json_under_the_results_prefix_without_projection(storage):
    _, t = storage
    bucket_id, _ = only(t, "AWS::S3::Bucket")
    _, table = only(t, "AWS::Glue::Table")
    ti = table["Properties"]["TableInput"]
    sd = ti["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    # a damaged object must read as a null row, not fail every query
    assert sd["SerdeInfo"]["Parameters"] == {"ignore.malformed.json": "true"}
    assert sd["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert joined(sd["Location"]) == "s3://<bucket>/results/"
    assert {"Ref": bucket_id} in sd["Location"]["Fn::Join"][1]
    # no projection: an injected run id would make every query name its runs with = or IN
    assert ti["Parameters"] == {"classification": "json"}
    assert t["Outputs"]["ResultsTableName"]["Value"] == "demo_storage.results_by_run_id_benchmark"


def test_a_change_of_partition_keys_replaces_the_table(storage):
    """CloudFormation changes PartitionKeys and Name in place alike and would leave partitions registered under the
    old keys: the table's name is made of its keys, in order, and its logical ID of its name, whose change is a
    replacement (a new resource, the old one deleted)."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_s3 as s3

    from cdk_constructs.athena import ResultsTable

    _, t = storage
    _, table = only(t, "AWS::Glue::Table")
    ti = table["Properties"]["TableInput"]
    assert ti["Name"] == "_".join(["results_by", *[k["Name"] for k in ti["PartitionKeys"]]])

    def logical_id(table_name: str) -> str:
        stack = Stack(App(), "S")
        ResultsTable(stack, "Athena", bucket=s3.Bucket(stack, "B"), database_name="d", table_name=table_name)
        return only(App.of(stack).synth().get_stack_by_name("S").template, "AWS::Glue::Table")[0]

    assert logical_id("results_by_run_id_benchmark") == logical_id("results_by_run_id_benchmark")
    assert logical_id("results_by_run_id_benchmark") != logical_id("results_by_run_id_rack_benchmark")
