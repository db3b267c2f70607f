"""The report's bucket: moto's S3 holding a baseline run and a current one, built from tests/records.py, for the
report's tests in the terminal, CSV, HTML and a real browser."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from workloads.layout import log_key
from workloads.store import ResultStore

from tests.conftest import ROOT, run_cli
from tests.records import run_records

BUCKET = "rackform-report-test"
DEMO = ROOT / "examples" / "demo.yaml"  # FSx PERSISTENT_2, 2,400 GiB at 125 MB/s/TiB


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        store = ResultStore(BUCKET, client)
        for r in run_records("base", gpu_algbw=250.0, gemm=690.0, p50=10.0, local_cpu=False) + \
                run_records("cur", gpu_algbw=225.0, gemm=700.0, p50=9.0):
            store.put_record(r)
            # Raw logs sit beside record.json: the report must read records only.
            store.put_log(log_key(r.run_id, r.rack, r.node_group, r.benchmark, 0), "not json\n")
        yield client


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv, "--bucket", BUCKET, "--region", "us-east-1")
