"""Issue 23 items 2 and 4, the store's side: a run is read with a bounded number of GETs in flight, a bounded number of
bodies held ahead of the reader, every checksum still verified; `keep` makes a poll GET only what is new; the run
summary is a verified kind like any other."""

from __future__ import annotations

import datetime as dt
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import moto_aws, versioned_bucket
from workloads import store as st
from workloads.layout import legacy_record_key, log_key, record_key, summary_key
from workloads.objects import RunSummary
from workloads.results import Metric, ResultRecord

BUCKET = "rackform-store-reads"
T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def record(run_id: str, rack: str) -> ResultRecord:
    return ResultRecord(run_id=run_id, benchmark="cpu", tool="sysbench", rack=rack, node_group="head",
                        tier="graviton", instance_type="m7g.xlarge", node_count=1, status="succeeded",
                        metrics=(Metric(name="events_per_second", value=1000.0, unit="events/s"),), started_at=T0,
                        ended_at=T0 + dt.timedelta(seconds=5))


class SlowGets:
    """The S3 client, with each GetObject taking `delay` seconds: counts the GETs started and the most in flight."""

    def __init__(self, client: Any, delay: float = 0.02) -> None:
        self.client, self.delay = client, delay
        self.lock = threading.Lock()
        self.started = self.in_flight = self.most = 0

    def get_object(self, **kwargs: Any) -> Any:
        with self.lock:
            self.started += 1
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(self.delay)
            return self.client.get_object(**kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def s3(monkeypatch):
    with moto_aws(monkeypatch, "us-east-1"):
        yield versioned_bucket(BUCKET)


def test_a_run_is_read_with_bounded_parallel_gets_and_every_checksum_checked(s3):
    writer = st.ResultStore(BUCKET, s3)
    for i in range(40):
        writer.put_record(record("big", f"r{i:02d}"))
    # one record replaced behind rackform's back: a second version, which the reader must still refuse
    s3.put_object(Bucket=BUCKET, Key=record_key("big", "r07", "head", "cpu"), Body=b"{}")
    slow = SlowGets(s3)
    reader = st.ResultStore(BUCKET, slow)  # type: ignore[arg-type]
    records = reader.records("big")
    assert sorted(r.rack for r in records) == [f"r{i:02d}" for i in range(40) if i != 7]
    assert [p.key for p in reader.problems] == [record_key("big", "r07", "head", "cpu")]
    assert 1 < slow.most <= st.READERS  # parallel, and never more than the stated bound


def test_a_slow_reader_holds_at_most_twice_the_bound_ahead(s3):
    writer = st.ResultStore(BUCKET, s3)
    for i in range(60):
        writer.put_record(record("big", f"r{i:02d}"))
    slow = SlowGets(s3, delay=0.0)
    records = st.ResultStore(BUCKET, slow).iter_records("big")  # type: ignore[arg-type]
    first = next(records)
    time.sleep(0.2)  # the reader dawdles: the GETs must not run on to the end of the run
    assert first.rack == "r00" and slow.started <= 2 * st.READERS
    assert [r.rack for r in records] == [f"r{i:02d}" for i in range(1, 60)]  # in key order, none lost
    assert slow.started == 60


def test_keep_gets_only_what_is_new_on_the_next_read(s3):
    writer = st.ResultStore(BUCKET, s3)
    for i in range(5):
        writer.put_record(record("poll", f"r{i}"))
    slow = SlowGets(s3, delay=0.0)
    reader = st.ResultStore(BUCKET, slow)  # type: ignore[arg-type]
    reader.keep()
    assert len(reader.records("poll")) == 5 and slow.started == 5
    assert len(reader.records("poll")) == 5 and slow.started == 5  # the same keys and versions: no GET
    writer.put_record(record("poll", "r5"))
    assert len(reader.records("poll")) == 6 and slow.started == 6  # only the new one


def summary(run_id: str, seq: int, jobs: int = 2) -> RunSummary:
    return RunSummary(run_id=run_id, seq=seq, written_at="2026-11-24T08:00:00+00:00",
                      started="2026-11-24T08:00:00+00:00", clusters=["demo"], jobs=jobs, records=jobs,
                      succeeded=jobs, failed=0, skipped=0)


def test_the_latest_summary_is_the_highest_seq_and_a_misfiled_one_is_a_problem(s3):
    store = st.ResultStore(BUCKET, s3)
    assert store.latest_summary("r1") is None
    for seq in (0, 1, 12):
        store.put_summary(summary("r1", seq, jobs=seq + 1))
    latest = store.latest_summary("r1")
    assert latest is not None and (latest.seq, latest.jobs, latest.final) == (12, 13, True)
    # a summary claiming another seq than its key's: not believed, named
    body = summary("r1", 3).model_dump_json().encode()
    store.put_once(summary_key("r1", 99), body, "application/json")
    assert store.latest_summary("r1") is None
    assert [(p.key, p.kind) for p in store.problems] == [(summary_key("r1", 99), "tampered")]


def test_a_record_is_parsed_and_validated_in_one_pass_from_its_body(s3, monkeypatch):
    writer = st.ResultStore(BUCKET, s3)
    for i in range(3):
        writer.put_record(record("one", f"r{i}"))
    s3.put_object(Bucket=BUCKET, Key=record_key("one", "r9", "head", "cpu"), Body=b"{not json",
                  ChecksumAlgorithm="SHA256")

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a record's body went through json.loads before its model")

    # pydantic's JSON parser validates the body itself: half the CPU of json.loads and then model_validate
    monkeypatch.setattr(st, "json", SimpleNamespace(loads=refuse))
    reader = st.ResultStore(BUCKET, s3)
    assert [r.rack for r in reader.records("one")] == ["r0", "r1", "r2"]
    # a body that is not JSON is still said to be so
    assert [(p.kind, p.why.startswith("not JSON (")) for p in reader.problems] == [("unreadable", True)]


def test_records_are_listed_from_their_folder_and_a_run_of_the_old_layout_whole(s3, monkeypatch):
    writer = st.ResultStore(BUCKET, s3)
    for i in range(3):
        writer.put_record(record("new", f"r{i}"))
        writer.put_log(log_key("new", f"r{i}", "head", "cpu", 0), "log\n")
        old = record("old", f"r{i}")
        writer.put_once(legacy_record_key("old", old.rack, old.node_group, old.benchmark),
                        old.model_dump_json().encode(), "application/json")
    listed: list[str] = []
    real = st.ResultStore._versions
    monkeypatch.setattr(st.ResultStore, "_versions", lambda self, prefix: listed.append(prefix) or real(self, prefix))
    reader = st.ResultStore(BUCKET, s3)
    assert [r.rack for r in reader.iter_records("new")] == ["r0", "r1", "r2"]
    assert listed == ["results/new/Records/"]  # never the node logs, health records and markers beside them
    listed.clear()
    assert [r.rack for r in reader.iter_records("old")] == ["r0", "r1", "r2"] and not reader.problems
    assert listed == ["results/old/Records/", "results/old/"]
