"""Helpers of the cli tests: a fake clock for `status --wait`; for the Athena engine's tests (`history`, `advise`,
`report --baseline`, `place`), the storage stack's Glue table in moto, and Athena through botocore's Stubber (moto
5.2's Athena cannot parse botocore's rest-json requests)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

TABLE = "demo_storage.results"


class Clock:
    """A clock for `status --wait`'s loop (cli_jobs.wait_for): its sleep moves time on at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def table_columns() -> list[tuple[str, str]]:
    """The table's (name, Hive type), partition keys first: what GetTable says of results_table's table."""
    from cdk_constructs.athena import COLUMNS
    from workloads.layout import PARTITION_KEYS

    return [(k, "string") for k in PARTITION_KEYS] + list(COLUMNS)


def results_table(bucket: str, region: str) -> Any:
    """The storage stack's table as cdk_constructs/athena.py declares it (its partition keys and descriptor), in
    moto's Glue; returns the Glue client."""
    from cdk_constructs.athena import COLUMNS, JSON_SERDE, TEXT_INPUT, TEXT_OUTPUT
    from workloads.layout import PARTITION_KEYS

    glue = boto3.client("glue", region_name=region)
    glue.create_database(DatabaseInput={"Name": "demo_storage"})
    glue.create_table(DatabaseName="demo_storage", TableInput={
        "Name": "results", "PartitionKeys": [{"Name": k, "Type": "string"} for k in PARTITION_KEYS],
        "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t in COLUMNS],
                              "Location": f"s3://{bucket}/results/", "InputFormat": TEXT_INPUT,
                              "OutputFormat": TEXT_OUTPUT, "SerdeInfo": {"SerializationLibrary": JSON_SERDE}}})
    return glue


def partitions(glue: Any) -> dict[tuple[str, ...], str]:
    found = glue.get_partitions(DatabaseName="demo_storage", TableName="results")["Partitions"]
    return {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in found}


def stubbed_athena(monkeypatch: pytest.MonkeyPatch, region: str) -> Stubber:
    """Every Athena client rackform makes is this one, stubbed; the other services are what they were."""
    from rackform import aws
    from rackform.cli import athena as cli_athena

    athena = boto3.client("athena", region_name=region)
    made = aws.client
    monkeypatch.setattr(aws, "client", lambda target, service, **kw: athena if service == "athena"
                        else made(target, service, **kw))
    monkeypatch.setattr(cli_athena, "POLL_S", 0.0)
    return Stubber(athena)


def page(rows: list[list[str | None]], token: str | None = None) -> dict[str, Any]:
    """One GetQueryResults page of these rows (None: a null cell)."""
    out: dict[str, Any] = {"ResultSet": {"Rows": [{"Data": [{} if c is None else {"VarCharValue": c} for c in r]}
                                                  for r in rows]}}
    if token:
        out["NextToken"] = token
    return out


def answer(stub: Stubber, rows: list[list[str | None]], sql: str | None = None, **start: Any) -> None:
    """Queue one query that succeeds with these rows (a header row first) on one page; `sql` and `start`: what
    StartQueryExecution must be sent."""
    expected = None if sql is None else {"QueryString": sql, **start}
    stub.add_response("start_query_execution", {"QueryExecutionId": "q"}, expected)
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"},
                                                                  "Statistics": {"DataScannedInBytes": 10_000}}})
    stub.add_response("get_query_results", page(rows))
