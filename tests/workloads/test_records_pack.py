"""A run's records pack (workloads/pack.py): written once a reader has read enough records one by one, then read
instead of a GET per record, and never able to change what a reader believes. AWS is moto, in process."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from collections import Counter

import pytest

from tests.conftest import moto_aws, versioned_bucket
from workloads.layout import pack_key, record_key, records_prefix
from workloads.pack import PackError, PackReader, PackWriter, etag
from workloads.results import Metric, ResultRecord
from workloads.store import PACK, ResultStore

BUCKET = "rackform-pack-test"
REGION = "us-east-1"
T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
AT = 4  # PACK_AT in these tests


def record(run_id: str, i: int, value: float = 1000.0) -> ResultRecord:
    return ResultRecord(run_id=run_id, benchmark="cpu", tool="sysbench", rack=f"rack{i:03d}", node_group="head",
                        tier="graviton", instance_type="m7g.xlarge", node_count=1, status="succeeded",
                        metrics=(Metric(name="events_per_second", value=value + i, unit="events/s"),),
                        started_at=T0, ended_at=T0 + dt.timedelta(seconds=5))


@pytest.fixture
def store(monkeypatch):
    monkeypatch.setattr("workloads.store.PACK_AT", AT)
    with moto_aws(monkeypatch, REGION):
        s3 = versioned_bucket(BUCKET, REGION)
        yield ResultStore(BUCKET, s3)


def calls(store: ResultStore) -> Counter[str]:
    counted: Counter[str] = Counter()
    store.s3.meta.events.register("before-call.s3", lambda model, **_: counted.update([model.name]))
    return counted


def packs(store: ResultStore, run_id: str) -> list[str]:
    listed = store.s3.list_objects_v2(Bucket=BUCKET, Prefix=records_prefix(run_id) + "_pack-")
    return [o["Key"] for o in listed.get("Contents", [])]


def read(store: ResultStore, run_id: str) -> list[ResultRecord]:
    return list(store.iter_records(run_id))


def put_pack(store: ResultStore, run_id: str, entries: list[tuple[str, bytes]], count: int | None = None) -> str:
    writer = PackWriter(run_id)
    for key, body in entries:
        writer.add(key, body)
    key = pack_key(records_prefix(run_id), len(entries) if count is None else count)
    store.put_once(key, writer.finish(), "application/gzip")
    return key


def body_of(store: ResultStore, key: str) -> bytes:
    return store.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_a_run_read_one_by_one_is_packed_and_then_read_from_its_pack(store):
    written = [record("r1", i) for i in range(6)]
    for r in written:
        store.put_record(r)
    counted = calls(store)
    assert read(store, "r1") == written
    assert counted == Counter({"ListObjectVersions": 1, "GetObject": 6, "PutObject": 1})
    assert packs(store, "r1") == [pack_key(records_prefix("r1"), 6)]
    counted.clear()
    assert read(store, "r1") == written and store.problems == []
    assert counted == Counter({"ListObjectVersions": 1, "GetObject": 1})  # the pack, not a record
    assert packs(store, "r1") == [pack_key(records_prefix("r1"), 6)]  # nothing new to pack


def test_a_small_run_is_never_packed(store):
    for i in range(AT - 1):
        store.put_record(record("r1", i))
    read(store, "r1")
    assert packs(store, "r1") == []


def test_records_written_after_the_pack_are_read_one_by_one_until_there_are_enough_for_a_larger_pack(store):
    first = [record("r1", i) for i in range(AT)]
    for r in first:
        store.put_record(r)
    read(store, "r1")
    later = [record("r1", i) for i in range(AT, AT + 2)]
    for r in later:
        store.put_record(r)
    counted = calls(store)
    assert read(store, "r1") == first + later
    assert counted["GetObject"] == 1 + 2 and packs(store, "r1") == [pack_key(records_prefix("r1"), AT)]
    for r in (more := [record("r1", i) for i in range(AT + 2, 2 * AT)]):
        store.put_record(r)
    assert read(store, "r1") == first + later + more  # AT read one by one: the next pack holds them all
    assert packs(store, "r1") == [pack_key(records_prefix("r1"), AT), pack_key(records_prefix("r1"), 2 * AT)]
    counted.clear()
    assert read(store, "r1") == first + later + more and counted["GetObject"] == 1


def test_a_pack_entry_that_is_not_the_listed_version_is_never_believed(store):
    """Whoever writes a pack cannot change a record: an entry is taken only when its bytes hash to the record's
    listed ETag. A forged one is read from the record's object instead."""
    written = [record("r1", i) for i in range(AT)]
    for r in written:
        store.put_record(r)
    keys = [record_key("r1", r.rack, r.node_group, r.benchmark) for r in written]
    forged = record("r1", 0, value=2000.0).model_dump_json().encode()  # the same size: only its ETag tells
    assert len(forged) == len(body_of(store, keys[0]))
    put_pack(store, "r1", [(keys[0], forged), *((k, body_of(store, k)) for k in keys[1:])])
    counted = calls(store)
    assert read(store, "r1") == written and store.problems == []
    assert counted["GetObject"] == 1 + 1  # the pack, and the one record its entry could not stand for


def test_a_record_the_pack_holds_and_the_bucket_no_longer_does_is_a_problem(store):
    written = [record("r1", i) for i in range(AT)]
    for r in written:
        store.put_record(r)
    read(store, "r1")
    gone = record_key("r1", "rack001", "head", "cpu")
    for v in store.s3.list_object_versions(Bucket=BUCKET, Prefix=gone)["Versions"]:
        store.s3.delete_object(Bucket=BUCKET, Key=gone, VersionId=v["VersionId"])
    assert [r.rack for r in read(store, "r1")] == ["rack000", "rack002", "rack003"]
    assert [(p.key, p.kind) for p in store.problems] == [(gone, "tampered")]
    assert "pack" in store.problems[0].why


@pytest.mark.parametrize("bad", ["garbage", "other run", "too few", "out of order", "oversized", "nested header",
                                 "unicode digits"])
def test_a_pack_rackform_did_not_write_is_a_problem_and_every_record_is_still_read(store, bad):
    written = [record("r1", i) for i in range(AT)]
    for r in written:
        store.put_record(r)
    keys = [record_key("r1", r.rack, r.node_group, r.benchmark) for r in written]
    entries = [(k, body_of(store, k)) for k in keys]
    if bad == "garbage":
        key = pack_key(records_prefix("r1"), AT)
        store.put_once(key, b"not gzip at all", "application/gzip")
    elif bad == "other run":
        key = put_pack(store, "r2", [])
        key = put_pack_as(store, key, "r1", AT)
    elif bad == "too few":
        key = put_pack(store, "r1", entries[:2], count=AT)
    elif bad == "out of order":
        key = put_pack(store, "r1", [entries[1], entries[0], *entries[2:]])
    elif bad == "oversized":
        raw = gzip.compress(json.dumps({"run_id": "r1"}).encode() + b"\n" + f"{keys[0]} {8 << 20}\n".encode())
        key = pack_key(records_prefix("r1"), AT)
        store.put_once(key, raw, "application/gzip")
    else:  # what json.loads and int() raise on, inside the limits a pack's lines are read to: not ValueErrors
        raw = b"[" * 4000 + b"\n" if bad == "nested header" else \
            json.dumps({"run_id": "r1"}).encode() + b"\n" + f"{keys[0]} \u00b2\n".encode()  # '²'.isdigit()
        key = pack_key(records_prefix("r1"), AT)
        store.put_once(key, gzip.compress(raw), "application/gzip")
    assert read(store, "r1") == written
    assert [(p.key, p.what, p.kind) for p in store.problems] == [(key, PACK, "tampered")]


def test_a_pack_entry_of_another_size_than_its_key_lists_is_a_problem_and_not_read(store):
    """A pack reads no more than the folder's listing accounts for: an entry for a listed key is that key's listed
    size, so a decompression bomb in one (4 MiB of zeros, within a record's limit) is refused at its line."""
    written = [record("r1", i) for i in range(AT)]
    for r in written:
        store.put_record(r)
    keys = [record_key("r1", r.rack, r.node_group, r.benchmark) for r in written]
    key = put_pack(store, "r1", [(keys[0], b"0" * (4 << 20)), *((k, body_of(store, k)) for k in keys[1:])])
    assert read(store, "r1") == written
    assert [(p.key, p.what, p.kind) for p in store.problems] == [(key, PACK, "tampered")]
    assert "listing" in store.problems[0].why


def test_a_pack_of_more_than_the_folder_lists_is_a_problem_not_thousands(store):
    """Entries for keys the bucket does not list (each would be named gone) are read only within the bytes the
    listing accounts for: 2,000 tiny ones after the real records (5 KB compressed, within what 4 records could
    pack into) are one problem, the pack."""
    written = [record("r1", i) for i in range(AT)]
    for r in written:
        store.put_record(r)
    keys = [record_key("r1", r.rack, r.node_group, r.benchmark) for r in written]
    extra = [(f"{records_prefix('r1')}zz/{i:05d}", b"{}") for i in range(2000)]
    key = put_pack(store, "r1", [*((k, body_of(store, k)) for k in keys), *extra])
    counted = calls(store)
    assert read(store, "r1") == written and counted["GetObject"] == 1  # every real record from the pack
    assert [(p.key, p.what, p.kind) for p in store.problems] == [(key, PACK, "tampered")]


def test_a_pack_listed_larger_than_the_folder_could_pack_is_refused_unread(store):
    written = [record("r1", i) for i in range(AT)]
    for r in written:
        store.put_record(r)
    key = pack_key(records_prefix("r1"), AT)
    store.put_once(key, hashlib.sha256(b"x").digest() * 4096, "application/gzip")  # 128 KiB, the records 2 KiB
    counted = calls(store)
    assert read(store, "r1") == written and counted["GetObject"] == AT
    assert [(p.key, p.what, p.kind) for p in store.problems] == [(key, PACK, "unreadable")]


def put_pack_as(store: ResultStore, other_key: str, run_id: str, count: int) -> str:
    key = pack_key(records_prefix(run_id), count)
    store.put_once(key, body_of(store, other_key), "application/gzip")
    return key


@pytest.mark.parametrize("failure", ["AccessDenied", "ConditionalRequestConflict", "connection"])
def test_a_reader_who_may_not_write_or_whose_write_fails_still_reads(store, monkeypatch, failure):
    from botocore.exceptions import ClientError, EndpointConnectionError

    def denied(*_args, **_kwargs):
        if failure == "connection":
            raise EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")
        raise ClientError({"Error": {"Code": failure, "Message": "no"}}, "PutObject")

    for i in range(AT):
        store.put_record(record("r1", i))
    monkeypatch.setattr(store, "put_once", denied)
    assert len(read(store, "r1")) == AT and store.problems == [] and packs(store, "r1") == []


def test_a_run_with_a_problem_is_not_packed(store):
    for i in range(AT + 1):
        store.put_record(record("r1", i))
    store.put_once(record_key("r1", "rackx", "head", "cpu"), b"{not json", "application/json")
    read(store, "r1")
    assert packs(store, "r1") == [] and len(store.problems) == 1


def test_the_reader_takes_entries_in_key_order_and_checks_each_against_its_etag():
    writer = PackWriter("r1")
    writer.add("p/a", b"one")
    writer.add("p/b", b"two\nlines")
    body = writer.finish()
    reader = PackReader(body, "r1", 2, 100, "p/", {"p/a": {3}, "p/b": {9}})
    assert reader.take("p/a", etag(b"one")) == b"one"
    assert reader.take("p/b", f'"{hashlib.md5(b"other").hexdigest()}"') is None
    reader.finish()
    assert reader.unlisted == []
    with pytest.raises(PackError, match="not a pack of run"):
        PackReader(body, "r2", 2, 100, "p/", {})



def test_status_reading_packs_job_markers_and_records_and_then_reads_two_packs(store):
    """`status` reads a run's markers and records (store.read): each folder gets its pack, and `runs` still counts
    the jobs, not the pack beside their markers."""
    from workloads.layout import BenchmarkJobName, BenchmarkMarker, jobs_prefix, submission_key

    for i in range(AT):
        name = str(BenchmarkJobName(run_id="r1", rack=f"rack{i:03d}", node_group="head", benchmark="cpu"))
        marker = BenchmarkMarker(job_name=name, queue=f"demo-rack{i:03d}-head-queue", job_definition="demo-cpu",
                                 rack=f"rack{i:03d}", node_group="head", benchmark="cpu", nodes=1, job_id=f"j{i}")
        store.put_once(submission_key("r1", name), marker.model_dump_json().encode(), "application/json")
        store.put_record(record("r1", i))
    first = store.read("r1", "marker", "record")
    counted = calls(store)
    assert store.read("r1", "marker", "record") == first and store.problems == []
    assert counted == Counter({"ListObjectVersions": 1, "GetObject": 2})
    assert len(first["marker"]) == len(first["record"]) == AT
    assert store.count(jobs_prefix("r1")) == AT


def test_health_records_are_packed_in_their_folder(store):
    from workloads.layout import health_prefix
    from workloads.results import HealthCheck, HealthRecord

    for i in range(AT):
        store.put_health(HealthRecord(run_id="r1", benchmark="cpu", rack=f"rack{i:03d}", node_group="head",
                                      instance_type="m7g.xlarge", node_index=0, hostname=f"h{i}", checked_at=T0,
                                      checks=(HealthCheck(name="cpu", status="passed", detail="ok"),)))
    first = store.health("r1")
    listed = store.s3.list_objects_v2(Bucket=BUCKET, Prefix=health_prefix("r1") + "_pack-")["Contents"]
    assert [o["Key"] for o in listed] == [pack_key(health_prefix("r1"), AT)]
    counted = calls(store)
    assert store.health("r1") == first and len(first) == AT and store.problems == []
    assert counted == Counter({"ListObjectVersions": 1, "GetObject": 1})
    assert len(store.health("r1", job=("rack001", "head", "cpu"))) == 1  # a job's folder: no pack in its listing



def test_a_pack_holding_a_listed_object_of_another_kind_is_the_problem_not_that_object(store):
    """A folder may list objects that are not of its pack's kind (whoever writes under results/ can put one there):
    a pack that holds one is not one rackform wrote, and that object, which the bucket does hold, is never named
    gone."""
    written = [record("r1", i) for i in range(AT)]
    for r in written:
        store.put_record(r)
    keys = [record_key("r1", r.rack, r.node_group, r.benchmark) for r in written]
    other = records_prefix("r1") + "notes.json"
    store.put_once(other, b"{}", "application/json")
    key = put_pack(store, "r1", [*((k, body_of(store, k)) for k in keys), (other, b"{}")])
    assert read(store, "r1") == written
    assert [(p.key, p.what, p.kind) for p in store.problems] == [(key, PACK, "tampered")]


def test_status_wait_keeps_what_a_pack_gave_and_reads_no_pack_it_has_read(store):
    """`status --wait` (`keep`) reads each object once: after the poll that took them from the pack, a poll reads
    neither the pack nor its objects, and a record written since costs its own GET alone."""
    written = [record("r1", i) for i in range(AT)]
    for r in written:
        store.put_record(r)
    read(store, "r1")  # packs them
    store.keep()
    counted = calls(store)
    # what status needs of each: its outcome, not its figures (`keep`)
    outcomes = [r.model_copy(update={"metrics": ()}) for r in written]
    assert read(store, "r1") == outcomes and counted["GetObject"] == 1  # the pack
    counted.clear()
    assert read(store, "r1") == outcomes and counted == Counter({"ListObjectVersions": 1})
    store.put_record(new := record("r1", AT))
    counted.clear()
    assert read(store, "r1") == [*outcomes, new.model_copy(update={"metrics": ()})]
    assert counted == Counter({"ListObjectVersions": 1, "GetObject": 1}) and store.problems == []


@pytest.mark.parametrize("what", ["record", "health"])
def test_a_pack_in_the_folder_of_a_run_written_before_it_hides_none_of_its_objects(store, what):
    """A run written before records (or health records) had a folder of their own is read whole when that folder
    lists none of them: a pack put there (whoever writes under results/ can) holds no record, and must not make the
    run's records vanish as if it were a run of the new layout with none."""
    from workloads.layout import health_prefix, legacy_health_key, legacy_record_key
    from workloads.results import HealthCheck, HealthRecord

    for i in range(AT):
        if what == "record":
            r: ResultRecord | HealthRecord = record("old", i)
            key = legacy_record_key("old", r.rack, r.node_group, r.benchmark)
        else:
            r = HealthRecord(run_id="old", benchmark="cpu", rack=f"rack{i:03d}", node_group="head",
                             instance_type="m7g.xlarge", node_index=0, hostname=f"h{i}", checked_at=T0,
                             checks=(HealthCheck(name="cpu", status="passed", detail="ok"),))
            key = legacy_health_key("old", r.rack, r.node_group, r.benchmark, 0)
        store.put_once(key, r.model_dump_json().encode(), "application/json")
    folder = records_prefix("old") if what == "record" else health_prefix("old")
    store.put_once(pack_key(folder, AT), gzip.compress(b'{"run_id": "old"}\n'), "application/gzip")
    found = read(store, "old") if what == "record" else store.health("old")
    assert [x.rack for x in found] == [f"rack{i:03d}" for i in range(AT)]
