"""The S3 key layout read back: what the operator side parses out of a key comes from workloads/layout.py, the
place that writes it, so a change of the layout cannot leave a reader behind."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import moto_aws, versioned_bucket
from workloads.layout import (
    accept_key,
    health_key,
    job_prefix,
    jobs_prefix,
    legacy_record_key,
    log_key,
    parse_log_key,
    record_key,
    records_prefix,
    submission_key,
)
from workloads.results import ResultRecord
from workloads.store import ResultStore


@pytest.mark.parametrize(("rack", "group", "benchmark", "index"), [
    ("gpu", "h100", "allreduce-nccl", 0), ("graviton", "cpu", "accept", 17), ("a", "b", "c", 1000)])
def test_a_node_logs_key_parses_back_to_what_wrote_it(rack, group, benchmark, index):
    assert parse_log_key(log_key("run-1", rack, group, benchmark, index)) == ("run-1", rack, group, benchmark, index)


@pytest.mark.parametrize("key", [
    "results/run-1/gpu/h100/gemm/record.json", "results/run-1/gpu/h100/gemm/health-node-0.json",
    "results/run-1/gpu/h100/gemm/node-x.log", "results/run-1/gpu/h100/gemm/node-\u0663.log",  # an Arabic-Indic 3
    "results/run-1/gpu/h100/node-0.log", "other/run-1/gpu/h100/gemm/node-0.log",
    "results/run-1/_jobs/run-1-gpu-h100-gemm.json"])
def test_no_other_key_is_taken_for_a_node_log(key):
    assert parse_log_key(key) is None


def test_a_runs_job_markers_are_under_its_jobs_prefix():
    assert submission_key("run-1", "run-1-gpu-h100-gemm").startswith(jobs_prefix("run-1"))


def test_a_record_is_in_a_folder_of_records_apart_from_its_jobs_logs():
    """Issue 23 item 4: the Athena partition of a run and benchmark (records_prefix) holds records only."""
    key = record_key("run-1", "gpu", "h100", "allreduce")
    assert key == "results/run-1/Records/allreduce/gpu/h100/record.json"
    assert key.startswith(records_prefix("run-1", "allreduce")) and key.startswith(records_prefix("run-1"))
    job = job_prefix("run-1", "gpu", "h100", "allreduce") + "/"
    assert not key.startswith(job)
    others = [log_key("run-1", "gpu", "h100", "allreduce", 0), accept_key("run-1", "gpu", "h100", "accept", "group", 0)]
    assert all(k.startswith("results/run-1/gpu/h100/") and not k.startswith(records_prefix("run-1"))
               for k in others)
    assert legacy_record_key("run-1", "gpu", "h100", "allreduce") == job + "record.json"


def test_health_records_are_in_a_folder_of_their_own_apart_from_logs_and_records():
    from workloads.layout import health_prefix, legacy_health_key

    key = health_key("run-1", "gpu", "h100", "allreduce", 1)
    assert key == "results/run-1/Health/allreduce/gpu/h100/health-node-1.json"
    assert key.startswith(health_prefix("run-1", ("gpu", "h100", "allreduce"))) and key.startswith(
        health_prefix("run-1"))
    assert not key.startswith(records_prefix("run-1")) and not key.startswith(job_prefix("run-1", "gpu", "h100",
                                                                                         "allreduce"))
    assert legacy_health_key("run-1", "gpu", "h100", "allreduce", 1) == \
        "results/run-1/gpu/h100/allreduce/health-node-1.json"


@pytest.fixture
def store(monkeypatch):
    with moto_aws(monkeypatch, "us-east-1"):
        s3 = versioned_bucket("rackform-layout-test")
        yield ResultStore("rackform-layout-test", s3)


def _record(rack: str, run_id: str = "run-1") -> ResultRecord:
    at = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    return ResultRecord(run_id=run_id, benchmark="cpu", tool="sysbench", rack=rack, node_group="head",
                        tier="graviton", instance_type="m7g.xlarge", node_count=1, status="succeeded", metrics=(),
                        started_at=at, ended_at=at)


def test_the_store_reads_a_run_of_either_layout_and_refuses_a_record_filed_elsewhere(store):
    """A run's jobs all write one layout (the one their job definition's image carries): a run written before the
    records had their folder is read from beside its logs."""
    new, old, misfiled = _record("new"), _record("old", run_id="run-0"), _record("moved")
    store.put_record(new)
    store.put_once(legacy_record_key("run-0", "old", "head", "cpu"), old.model_dump_json().encode(),
                   "application/json")
    elsewhere = record_key("run-1", "moved", "head", "gemm")  # the record says cpu
    store.put_once(elsewhere, misfiled.model_dump_json().encode(), "application/json")
    assert [r.rack for r in store.records("run-1")] == ["new"]
    assert [(p.key, p.kind) for p in store.problems] == [(elsewhere, "tampered")]
    assert [r.rack for r in store.records("run-0")] == ["old"]
    assert [r.rack for r in store.iter_records("run-0")] == ["old"]
