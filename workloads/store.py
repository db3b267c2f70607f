"""Results in S3: write-once objects with SHA256 checksums, and reading a run back.

Layout (workloads/layout.py): results/<run_id>/Records/<benchmark>/<rack>/<node_group>/record.json, apart from the
job's folder results/<run_id>/<rack>/<node_group>/<benchmark>/ of node-<i>.log (the raw output), and
results/<run_id>/_jobs/<job name>.json for each submitted job. Nothing is ever overwritten: every PUT carries
If-None-Match: *, so a retried or duplicated write cannot replace what landed first.

Reading back, every kind of object (KINDS) goes through one reader (`read`, `read_one`): its size from the listing
against the kind's limit, its one version, its SHA-256, its schema, its key. What fails is a named BadObject. A
run's records, job markers and health records may also come from their folder's pack (workloads/pack.py), object by
object only where the pack's bytes are those of the one version listed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError
from pydantic import BaseModel, ValidationError

from .layout import (
    ACCEPT_OBJECT,
    ACCEPT_SCHEDULE,
    HEALTH_FOLDER,
    HEALTH_OBJECT,
    NOT_RUN_FOLDERS,
    PACK_OBJECT,
    RECORDS_FOLDER,
    REPAIR_OBJECT,
    REPAIR_STAMP,
    REPAIRS_PREFIX,
    RUN_ID,
    SUMMARY_FOLDER,
    SUMMARY_OBJECT,
    BenchmarkMarker,
    WorkloadMarker,
    accept_key,
    accept_schedule_key,
    certificate_key,
    check_run_id,
    claim_key,
    health_key,
    health_prefix,
    job_prefix,
    jobs_prefix,
    legacy_health_key,
    legacy_record_key,
    pack_key,
    placement_key,
    record_key,
    records_prefix,
    repair_key,
    run_prefix,
    submission_key,
    summary_key,
    workload_job_key,
    workload_jobs_prefix,
)
from .layout import (
    RESULTS_PREFIX as PREFIX,
)
from .objects import Claim, Placement, RepairRecord, RunSummary
from .pack import PACK_AT, PACK_LIMIT, PackError, PackReader, PackWriter, packed_bound
from .results import AcceptRecord, CertificateHead, FabricSchedule, HealthRecord, ResultRecord

if TYPE_CHECKING:  # types only (mypy-boto3-s3, a dev requirement): the job images do not install it
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

M = TypeVar("M", bound=BaseModel)
# A marker, claim or placement as read back: the JSON object its model accepted, kept as written (a claim is written
# again as it was read). JSON values are whatever the model allowed, hence Any inside.
Document = dict[str, Any]
# What a reader believes: the records as models, the operator-side objects as their documents.
Verified = ResultRecord | HealthRecord | AcceptRecord | FabricSchedule | RepairRecord | RunSummary | Document
PACK = "pack"  # a BadObject's `what` for a folder's pack (workloads/pack.py)


class Found(TypedDict, total=False):
    """What `read` returns: the verified objects of each kind asked for (a key of KINDS), by kind."""

    record: list[ResultRecord]
    health: list[HealthRecord]
    accept: list[AcceptRecord]
    schedule: list[FabricSchedule]
    certificate: list[Document]
    marker: list[Document]
    workload: list[Document]
    placement: list[Document]
    claim: list[Document]
    summary: list[RunSummary]

# Standard mode retries throttling, 5xx and connection errors with backoff; conditional writes make them safe.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=30)
CONFLICT_ATTEMPTS = 6
# GETs in flight at once when reading a run: enough to hide S3's per-request latency (tens of ms), few enough for
# botocore's default pool of 10 connections per client (https://botocore.amazonaws.com/v1/documentation/api/latest/
# reference/config.html, max_pool_connections), so no request waits for a connection.
READERS = 8
CONFLICT_BACKOFF_S = 0.1


class AlreadyExists(Exception):
    """A different object already sits at the key: the first write wins and is never replaced."""


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    client: S3Client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=RETRY_CONFIG)
    return client


CLAIM_OBJECT = re.compile(r"(\d+)(\.failed)?\.json")


def sha256_b64(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


class ResultStore:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.s3 = client or s3_client()
        self._problems: dict[str, BadObject] = {}  # objects reads left out, by key: see `problems`
        self._kept: dict[tuple[str, str, int], Verified] | None = None  # see `keep`
        self._earliest: dict[str, dt.datetime] = {}  # the first LastModified each listing saw, by prefix
        self._etags: dict[tuple[str, str], str] = {}  # (key, version id) -> ETag, from the listings
        self._packs_read: set[tuple[str, tuple[tuple[str, int], ...]]] = set()  # by `keep`: (key, versions)
        self._listed: set[str] = set()  # the prefixes listed, empty or not

    def put_once(self, key: str, body: bytes, content_type: str) -> bool:
        """Write `body` at `key` unless something is there. True if this call wrote it.

        A retry after a lost response finds its own first attempt at the key: same checksum -> the write
        happened, exactly once. A different object at the key raises AlreadyExists.
        """
        digest = sha256_b64(body)
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                # If-None-Match on every PUT: the bucket policy refuses any PUT under results/ without it.
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                                   ChecksumAlgorithm="SHA256", ChecksumSHA256=digest, IfNoneMatch="*")
                return True
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code")
                # 409: another conditional write to the key was in flight and nothing may have landed yet; S3 says
                # to retry (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html, If-None-Match);
                # botocore's retry modes leave 409 to the caller.
                if code == "ConditionalRequestConflict" and attempt < CONFLICT_ATTEMPTS - 1:
                    time.sleep(CONFLICT_BACKOFF_S * 2 ** attempt)
                    continue
                if code not in ("PreconditionFailed", "412"):
                    raise
                break
        existing = self.s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        if existing.get("ChecksumSHA256") == digest:
            return False
        raise AlreadyExists(f"s3://{self.bucket}/{key} already holds a different object; results are never "
                            "overwritten (use a new run id)")

    def put_record(self, record: ResultRecord) -> str:
        key = record_key(record.run_id, record.rack, record.node_group, record.benchmark)
        # One line: Athena's JSON SerDe reads one document per line (a pretty-printed record reads as nulls).
        self.put_once(key, record.model_dump_json().encode(), "application/json")
        return key

    def put_health(self, record: HealthRecord) -> str:
        key = health_key(record.run_id, record.rack, record.node_group, record.benchmark, record.node_index)
        self.put_once(key, record.model_dump_json().encode(), "application/json")
        return key

    def put_accept(self, record: AcceptRecord | FabricSchedule) -> str:
        """An acceptance record, or node 0's schedule of a fabric round (workloads/accept.py)."""
        if isinstance(record, FabricSchedule):
            key = accept_schedule_key(record.run_id, record.rack, record.node_group, record.benchmark, record.round)
        else:
            key = accept_key(record.run_id, record.rack, record.node_group, record.benchmark, record.part,
                             record.node_index, record.round)
        self.put_once(key, record.model_dump_json().encode(), "application/json")
        return key

    def listed(self, prefix: str) -> set[str]:
        """The keys under `prefix`, from ListObjectVersions: what a job role may list (s3:ListBucketVersions, below
        results/; it has no s3:ListBucket for ListObjectsV2). A listing only: nothing in it is verified yet."""
        return {key for key, _, _ in self._versions(prefix)}

    def put_log(self, key: str, text: str) -> str:
        self.put_once(key, text.encode("utf-8", errors="replace"), "text/plain; charset=utf-8")
        return key

    def latest_claim(self, run_id: str, job_name: str) -> tuple[int, bool] | None:
        """(the highest attempt claimed for the job, whether it failed), or None when no one has claimed it."""
        prefix = claim_key(run_id, job_name, 0).rsplit("/", 1)[0] + "/"
        claimed: set[int] = set()
        failed: set[int] = set()
        for key in self.keys(prefix):  # a listing only guides: the conditional PUT of a claim decides who wins
            if m := CLAIM_OBJECT.fullmatch(key[len(prefix):]):
                (failed if m[2] else claimed).add(int(m[1]))
        if not claimed:
            return None
        return max(claimed), max(claimed) in failed

    def put_summary(self, summary: RunSummary) -> str:
        key = summary_key(summary.run_id, summary.seq)
        self.put_once(key, summary.model_dump_json().encode(), "application/json")
        return key

    def latest_summary(self, run_id: str) -> RunSummary | None:
        """The run's summary with the highest seq (one listing of `_summary/`, one GET), None when it has none. One
        that cannot be believed is None too, and kept in `self.problems`."""
        folder = f"{run_prefix(run_id)}{SUMMARY_FOLDER}/"
        listed = [(key, versions, deleted) for key, versions, deleted in self._versions(folder)
                  if SUMMARY_OBJECT.fullmatch(key[len(folder):])]
        if not listed:
            return None
        key, versions, deleted = max(listed, key=lambda kvd: int(kvd[0][len(folder):-len(".json")]))
        try:
            return cast(RunSummary, self._believe(key, "summary", versions, deleted, run_id))
        except Refused:
            return None

    def run_ids(self) -> list[str]:
        """The names of the folders under results/, from a listing by delimiter: one request per 1,000 runs, however
        many objects each holds (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-prefixes.html)."""
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{PREFIX}/",
                                                                      Delimiter="/"):
            names += [p["Prefix"][len(PREFIX) + 1:-1] for p in page.get("CommonPrefixes", [])]
        return [name for name in names if name not in NOT_RUN_FOLDERS]

    def count(self, prefix: str) -> int:
        """How many objects are under `prefix`, packs aside (a listing: one request per 1,000)."""
        return sum(not PACK_OBJECT.fullmatch(key.rsplit("/", 1)[-1]) for key in self.keys(prefix))

    def first_written(self, run_id: str) -> dt.datetime | None:
        """When the run's first job was submitted: its first job marker as S3 lists it (`submit` and `run` write a
        job's marker within a second of SubmitJob, before the job can write anything), benchmark jobs' else workload
        jobs', from this store's listing of their folder, else from a new one; a run with neither, from its whole
        listing. Never the whole run where a folder answers: it is mostly node logs and health records."""
        for prefix in (jobs_prefix(run_id), workload_jobs_prefix(run_id), run_prefix(run_id)):
            if prefix not in self._earliest and prefix not in self._listed:
                self._versions(prefix)
            if prefix in self._earliest:
                return self._earliest[prefix]
        return None

    def keys(self, prefix: str) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    # --- reading back: an object is believed only once it is verified ------------------------------------------

    def records(self, run_id: str) -> list[ResultRecord]:
        """The run's verified records; every object left out is in `self.problems`, for the caller to show."""
        return list(self.iter_records(run_id))

    def health(self, run_id: str, job: tuple[str, str, str] | None = None) -> list[HealthRecord]:
        """The run's verified health records (one per node of each job), or one job's, `job` being (rack, node
        group, benchmark): listed from their folder (`Health/`, or the job's in it) alone. A run with no health record
        there was written before health records had a folder of their own, and is listed as it was: whole, or the job's
        folder. Objects left out are in `self.problems`."""
        listed = self._in_folder(run_id, "health", health_prefix(run_id, job),
                                 run_prefix(run_id) if job is None else f"{job_prefix(run_id, *job)}/")
        return [cast(HealthRecord, h) for _, _, h in self._read_listed(run_id, listed, ("health",))]

    def submissions(self, run_id: str) -> list[Document]:
        """The run's verified job markers, listed from their folder alone (`_jobs/`; the whole run is mostly node logs
        and health records); every object left out is in `self.problems`."""
        return self.read(run_id, "marker", within=jobs_prefix(run_id))["marker"]

    def repairs(self, prefix: str = REPAIRS_PREFIX + "/", since: dt.datetime | None = None) -> list[RepairRecord]:
        """The verified repair records under `prefix` (layout.repairs_prefix: every rack's, a rack's or a node
        group's), oldest first, only those whose key says the attempt stopped at `since` or later when given (a
        record filed under another time than its own is refused when read); every object left out is in
        `self.problems`."""
        out: list[RepairRecord] = []
        after = since.strftime(REPAIR_STAMP) if since is not None else ""
        for key, versions, deleted in self._versions(prefix):
            if REPAIR_OBJECT.fullmatch(key) and key.rsplit("/", 1)[1] >= after:
                try:
                    out.append(cast(RepairRecord, self._believe(key, "repair", versions, deleted, "")))
                except Refused:
                    pass  # kept in self.problems
        return out

    @property
    def problems(self) -> list[BadObject]:
        """Every object the reads so far left out (unreadable or tampered), once each, by key."""
        return sorted(self._problems.values(), key=lambda p: (p.kind, p.key))

    def read(self, run_id: str, *kinds: str, within: str | None = None) -> Found:
        """Every verified object of each kind (a key of KINDS) under the run's prefix, or under `within`, a prefix
        inside it, from one listing (`rackform status --wait` polls markers and records)."""
        out: dict[str, list[Verified]] = {k: [] for k in kinds}
        for what, value in self.stream_read(run_id, *kinds, within=within):
            out[what].append(value)
        return cast(Found, out)  # each kind's list holds what KINDS[kind].believe returns

    def iter_records(self, run_id: str) -> Iterator[ResultRecord]:
        """The run's verified records one at a time, in key order, never all in memory at once (`report`,
        `results`); every object left out is in `self.problems` once the iteration ends.

        Listed from the run's records folder alone: a quarter of a benchmark run's objects (its job markers, health
        records and node logs are elsewhere). A run with no record there was written before records had a folder of
        their own, and is listed whole (its records lie beside the node logs); a run's jobs all write one layout,
        the one of the job definition they were submitted with. Records come from the folder's pack where it holds
        them (`_read_listed`)."""
        listed = self._in_folder(run_id, "record", records_prefix(run_id), run_prefix(run_id))
        for _, _, record in self._read_listed(run_id, listed, ("record",)):
            yield cast(ResultRecord, record)

    def _in_folder(self, run_id: str, what: str, folder: str,
                   before: str) -> list[tuple[str, list[tuple[str, int]], bool]]:
        """The listing of `folder`, where a run keeps its objects of kind `what`, or of `before`, where a run written
        before that folder existed kept them, when the folder lists none of them: a pack or anything else put there
        (whoever writes under results/ can) is none, and must not hide such a run's objects."""
        listed = self._versions(folder)
        return listed if any(_kind(run_prefix(run_id), key) == what for key, _, _ in listed) else \
            self._versions(before)

    def keep(self) -> None:
        """From now on keep what is read, by key, version and size, and never GET it again: `status --wait` polls
        a run whose objects are write-once, so each poll reads only what is new. What is kept is what `status`
        needs: a record or an acceptance record without its figures (10,000 records kept whole are gigabytes)."""
        if self._kept is None:
            self._kept = {}

    def stream_read(self, run_id: str, *kinds: str, within: str | None = None) -> Iterator[tuple[str, Verified]]:
        """(kind, verified object) for each object of `kinds` under the run's prefix (or `within`), in key order, from
        one listing; up to READERS GETs in flight at once and at most 2 x READERS bodies held ahead of the caller.
        Objects that cannot be believed are left out and kept in `self.problems`."""
        for _, what, value in self._read_listed(run_id, self._versions(within or run_prefix(run_id)), kinds):
            yield what, value

    def _read_listed(self, run_id: str, listed: list[tuple[str, list[tuple[str, int]], bool]],
                     kinds: tuple[str, ...]) -> Iterator[tuple[str, str, Verified]]:
        """stream_read's reading, of the objects of `kinds` among those `listed` under the run's prefix: (key, kind,
        value). Records, job markers and health records come from their folder's pack where it holds the listed
        version's bytes (workloads/pack.py); a reading that GETs at least PACK_AT of them, and at least as many as the
        pack holds, all believed, writes the folder's next pack (a reader who may not write still reads)."""
        prefix = run_prefix(run_id)
        wanted = [(key, versions, deleted, what) for key, versions, deleted in listed
                  if (what := _kind(prefix, key)) in kinds]
        if not wanted:
            return
        packs = {what: _Packing(self, run_id, listed, wanted, what, folder(run_id), keep=self._kept is not None)
                 for what, folder in PACKED.items() if what in kinds}
        # boto3 clients are thread-safe (resources are not): the threads share self.s3 and only GET and verify;
        # the problems are recorded here, in the caller's thread, as are the packs' reading and making (key order).
        with ThreadPoolExecutor(READERS, thread_name_prefix="rackform-read") as pool:
            ahead: deque[tuple[str, str, Future[tuple[Verified, bytes, bool]]]] = deque()
            for key, versions, deleted, what in wanted:
                packing = packs.get(what)
                kept = self._kept is not None and not deleted and len(versions) == 1 and \
                    (key, *versions[0]) in self._kept
                if not kept and packing is not None and (body := packing.take(key, versions, deleted)) is not None:
                    ahead.append((key, what, _done(partial(self._unpacked, key, versions[0], what, body, run_id))))
                else:
                    ahead.append((key, what, pool.submit(self._verified_kept, key, versions, deleted, run_id, what)))
                if len(ahead) >= 2 * READERS:
                    if (got := self._settled(packs, *ahead.popleft())) is not None:
                        yield got
            while ahead:
                if (got := self._settled(packs, *ahead.popleft())) is not None:
                    yield got
        for packing in packs.values():
            packing.close()

    def _settled(self, packs: dict[str, _Packing], key: str, what: str,
                 future: Future[tuple[Verified, bytes, bool]]) -> tuple[str, str, Verified] | None:
        try:
            value, body, packed = future.result()
        except _Bad as e:
            self._refuse(key, what, e.kind, e.why)
            return None
        self._problems.pop(key, None)
        if (packing := packs.get(what)) is not None:
            packing.add(key, body, packed)
        return key, what, value

    def _verified_kept(self, key: str, versions: list[tuple[str, int]], deleted: bool, run_id: str,
                       what: str) -> tuple[Verified, bytes, bool]:
        if self._kept is None or deleted or len(versions) != 1:
            return *self._fetched(key, versions, deleted, run_id, what), False
        seen = (key, *versions[0])
        if (value := self._kept.get(seen)) is None:
            value = self._kept[seen] = _lean(self._verified(key, versions, deleted, run_id, what))
        return value, b"", False  # only a records pack needs the bytes, and it is made without `keep`

    def _unpacked(self, key: str, version: tuple[str, int], what: str, body: bytes,
                  run_id: str) -> tuple[Verified, bytes, bool]:
        value = KINDS[what].believe(key, body, run_id)
        if self._kept is not None:
            value = self._kept[(key, *version)] = _lean(value)
        return value, body, True

    def read_one(self, key: str) -> Verified | None:
        """The verified object at `key` (its kind taken from the key), None when there is none. One that cannot be
        believed raises Refused, and stays in `self.problems` for the caller to show beside the rest."""
        run_id, prefix, what = _where(key)
        for listed, versions, deleted in self._versions(key):
            if listed == key:
                return self._believe(key, what, versions, deleted, run_id)
        return None

    def check(self, key: str, data: object, *, source: str) -> Verified:
        """`data`, made from the object at `source` and about to be written at `key`, held to what a reader of `key`
        will hold it to: Refused, as a problem of `source`, when it falls short."""
        run_id, _, what = _where(key)
        try:
            return KINDS[what].believe(key, data, run_id)
        except _Bad as e:
            raise self._refuse(source, _where(source)[2], e.kind, f"would make {key}, but {e.why}") from None

    def stream(self, key: str, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """A node log, chunk by chunk, never whole in memory (`rackform logs`). Refused before the first chunk when
        the key is not the one version rackform wrote or has no SHA-256 stored with it, and after the last chunk
        when the bytes do not hash to it: the caller has shown them by then and must say so."""
        listed = [(versions, deleted) for k, versions, deleted in self._versions(key) if k == key]
        try:
            if not listed:
                raise _Bad("unreadable", "not in the bucket's listing")
            version, _ = _one_version(*listed[0])
            got = self._get(key, None if version == "null" else version)
            if (stored := got.get("ChecksumSHA256")) is None:
                raise _Bad("tampered", NO_CHECKSUM)
            digest = hashlib.sha256()
            try:
                for chunk in got["Body"].iter_chunks(chunk_bytes):
                    digest.update(chunk)
                    yield chunk
            except FlexibleChecksumError as e:  # botocore hashed the stream against the stored SHA-256 itself
                raise _Bad("tampered", f"SHA-256 mismatch: {e}") from None
            if stored != base64.b64encode(digest.digest()).decode():
                raise _Bad("tampered", f"SHA-256 mismatch: stored {stored}, the body hashes to "
                           f"{base64.b64encode(digest.digest()).decode()}")
        except _Bad as e:
            raise self._refuse(key, "log", e.kind, e.why) from None

    def _refuse(self, key: str, what: str, kind: Literal["unreadable", "tampered"], why: str) -> Refused:
        problem = self._problems[key] = BadObject(key, what, kind, why)
        return Refused(problem)

    def _believe(self, key: str, what: str, versions: list[tuple[str, int]], deleted: bool,
                 run_id: str) -> Verified:
        try:
            value = self._verified(key, versions, deleted, run_id, what)
        except _Bad as e:
            raise self._refuse(key, what, e.kind, e.why) from None
        self._problems.pop(key, None)
        return value

    def _versions(self, prefix: str) -> list[tuple[str, list[tuple[str, int]], bool]]:
        """(key, (version id, size) of each version, latest is a delete marker) for every key under the prefix,
        from one listing.

        Needs s3:ListBucketVersions (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html);
        an unversioned bucket lists each key once, version id "null"."""
        versions: dict[str, list[tuple[str, int]]] = {}
        deleted: set[str] = set()
        self._listed.add(prefix)
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for v in page.get("Versions", []):
                versions.setdefault(v["Key"], []).append((v["VersionId"], v.get("Size", 0)))
                self._etags[(v["Key"], v["VersionId"])] = v.get("ETag", "")
                if (at := v.get("LastModified")) is not None and at < self._earliest.get(prefix, at + _SECOND):
                    self._earliest[prefix] = at
            for d in page.get("DeleteMarkers", []):
                versions.setdefault(d["Key"], [])
                if d.get("IsLatest"):
                    deleted.add(d["Key"])
        return [(k, versions[k], k in deleted) for k in sorted(versions)]

    def verified_body(self, key: str, version_id: str | None, limit: int) -> bytes:
        """The object's body, checked against the SHA-256 stored with it, which is the one S3 checked the body
        against on upload (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html);
        Tampered when it is missing or does not match. At most `limit` bytes are ever held."""
        try:
            got = self._get(key, version_id)
            body: bytes = got["Body"].read(limit + 1)
        except FlexibleChecksumError as e:  # botocore checked the body against the stored checksum itself
            raise Tampered(f"SHA-256 mismatch: {e}") from None
        if len(body) > limit:
            raise Tampered(f"more than the {limit:,} bytes the listing gave for this version")
        stored = got.get("ChecksumSHA256")
        if stored is None:
            raise Tampered(NO_CHECKSUM)
        if stored != sha256_b64(body):
            raise Tampered(f"SHA-256 mismatch: stored {stored}, the body hashes to {sha256_b64(body)}")
        return body

    def _get(self, key: str, version_id: str | None) -> GetObjectOutputTypeDef:
        """GET with S3 checking the stored SHA-256; the latest version when version_id is None."""
        if version_id is None:
            return self.s3.get_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        return self.s3.get_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", VersionId=version_id)

    def _verified(self, key: str, versions: list[tuple[str, int]], deleted: bool, run_id: str,
                  what: str) -> Verified:
        return self._fetched(key, versions, deleted, run_id, what)[0]

    def _fetched(self, key: str, versions: list[tuple[str, int]], deleted: bool, run_id: str,
                 what: str) -> tuple[Verified, bytes]:
        version, size = _one_version(versions, deleted)
        kind = KINDS[what]
        # From the listing's size, before any GET: a forged object of any size costs a listing entry, no memory.
        if size > kind.limit:
            raise _Bad("unreadable", f"{size:,} bytes; {kind.noun}s are limited to {kind.limit:,} bytes (not read)")
        # The version listed, not one PUT since (s3:GetObjectVersion).
        try:
            body = self.verified_body(key, None if version == "null" else version, kind.limit)
        except Tampered as e:
            raise _Bad("tampered", str(e)) from None
        return kind.believe(key, body, run_id), body


# The kinds read from a pack (workloads/pack.py), by the folder their pack lies in: the ones a run has one or more of
# per job, each in a folder of its own.
PACKED: dict[str, Callable[[str], str]] = {"record": records_prefix, "marker": jobs_prefix, "health": health_prefix}
_PACK_FAILS = (PackError, OSError, EOFError, zlib.error)


class _Packing:
    """One folder's pack during one reading: the largest listed, read along the listing (`take`), and the next one,
    made as the objects are believed (`add`) and written at `close` when this reading GOT enough of them."""

    def __init__(self, store: ResultStore, run_id: str, listed: list[tuple[str, list[tuple[str, int]], bool]],
                 wanted: list[tuple[str, list[tuple[str, int]], bool, str]], what: str, folder: str, *,
                 keep: bool) -> None:
        self.store, self.run_id, self.what, self.folder, self.listed = store, run_id, what, folder, listed
        packs = [(key, versions, deleted) for key, versions, deleted in listed
                 if key.startswith(folder) and PACK_OBJECT.fullmatch(key[len(folder):])]
        # What a pack of this folder may hold: the objects of its kind listed in it, at their listed sizes.
        self.sizes = {key: {size for _, size in versions} for key, versions, _, w in wanted
                      if w == what and key.startswith(folder) and versions}
        # Opened at the first object this reading asks it for (`take`): a `status --wait` poll (`keep`) asks for
        # none it kept, and never opens a pack again (write-once: what it held was kept when it was read).
        self.pending = max(packs) if packs else None
        named = PACK_OBJECT.fullmatch(self.pending[0][len(folder):]) if self.pending else None
        self.packed = int(named[1]) if named else 0  # the count in its name
        self.keep = keep
        self.old: tuple[str, PackReader] | None = None
        objects = sum(w == what and key.startswith(folder) for key, _, _, w in wanted)
        # Made only when this reading can GET enough to be worth a new pack, and never by `status --wait`, which
        # keeps what it read but not its bytes (`keep`).
        self.new = PackWriter(run_id) if not keep and objects - self.packed >= max(PACK_AT, self.packed) else None
        self.fetched = 0

    def _open(self, key: str, versions: list[tuple[str, int]], deleted: bool) -> tuple[str, PackReader] | None:
        try:
            version, size = _one_version(versions, deleted)
            if size > (limit := min(PACK_LIMIT, packed_bound(self.sizes))):
                raise _Bad("unreadable", f"{size:,} bytes; a pack of the {len(self.sizes):,} objects listed beside "
                           f"it is at most {limit:,} bytes (not read)")
            # Read whole and checked against its SHA-256 before any of it is used (compressed, a few MB for 10,000
            # records), then unpacked entry by entry.
            body = self.store.verified_body(key, None if version == "null" else version, limit)
            return key, PackReader(body, self.run_id, self.packed, KINDS[self.what].limit, self.folder,
                                   self.sizes)
        except _Bad as e:
            self.store._refuse(key, PACK, e.kind, e.why)
        except Tampered as e:
            self.store._refuse(key, PACK, "tampered", str(e))
        except _PACK_FAILS as e:
            self._bad(key, e)
        return None

    def take(self, key: str, versions: list[tuple[str, int]], deleted: bool) -> bytes | None:
        """The pack's bytes for `key` when they are those of its one listed version; None (GET it) otherwise, and
        for every key once the pack turns out not to be one rackform wrote."""
        if not key.startswith(self.folder):
            return None
        if self.pending is not None:
            read = (self.pending[0], tuple(self.pending[1]))
            if not (self.keep and read in self.store._packs_read):
                self.old = self._open(*self.pending)
            if self.keep:
                self.store._packs_read.add(read)
            self.pending = None
        if self.old is None:
            return None
        try:
            return self.old[1].take(key, None if deleted or len(versions) != 1 else
                                    self.store._etags.get((key, versions[0][0])))
        except _PACK_FAILS as e:
            self._bad(self.old[0], e)
            return None

    def add(self, key: str, body: bytes, packed: bool) -> None:
        self.fetched += not packed
        if self.new is not None and key.startswith(self.folder):
            self.new.add(key, body)

    def close(self) -> None:
        """Read the old pack to its end, name each object it holds that the bucket no longer does, and write the next
        pack when it is worth it and nothing in the folder was refused."""
        if self.old is not None:
            key, reader = self.old
            try:
                reader.finish()
                # Listed, but not of the pack's kind: whoever writes under results/ can put any object in a folder.
                listed = {k for k, _, _ in self.listed} if reader.unlisted else set()
                if other := next((k for k in reader.unlisted if k in listed), None):
                    raise PackError(f"it holds {other}, which is not a {KINDS[self.what].noun}")
            except _PACK_FAILS as e:
                self._bad(key, e)
            else:
                for gone in reader.unlisted:
                    self.store._refuse(gone, self.what, "tampered",
                                       f"gone: the pack {key} holds it and the bucket no longer does (rackform "
                                       "never deletes results)")
        if self.new is None or self.fetched < max(PACK_AT, self.packed) or \
                any(key.startswith(self.folder) for key in self.store._problems):
            return
        try:
            self.store.put_once(pack_key(self.folder, self.new.records), self.new.finish(), "application/gzip")
        except (AlreadyExists, ClientError, BotoCoreError):
            # Another reader packed the same objects first, or this one may not write, or the write failed: the
            # reading itself succeeded, and a pack only spares later readings their GETs (the next one tries again).
            pass

    def _bad(self, key: str, e: Exception) -> None:
        self.old = None
        self.store._refuse(key, PACK, "tampered", f"not a pack rackform wrote: {e}")


# --- what a reader makes of an object it cannot believe ----------------------------------------------------------

NO_CHECKSUM = "no SHA-256 checksum stored with it; every rackform write carries one"


@dataclass(frozen=True)
class BadObject:
    """An object under a run's prefix that is shown as a problem, never as data."""

    key: str
    what: str  # a key of KINDS, or "log"
    kind: Literal["unreadable", "tampered"]  # malformed, or not what rackform wrote where it wrote it
    why: str

    @property
    def noun(self) -> str:
        return KINDS[self.what].noun if self.what in KINDS else self.what


class Refused(Exception):
    """An object a reader cannot believe; `problem` says which and why (also kept in the store's `problems`)."""

    def __init__(self, problem: BadObject) -> None:
        super().__init__(f"{problem.noun} {problem.kind}: {problem.key}: {problem.why}")
        self.problem = problem


class Tampered(ValueError):
    """An object whose body is not what rackform wrote: no SHA-256 stored with it, or one that does not match."""


class _Bad(Exception):
    def __init__(self, kind: Literal["unreadable", "tampered"], why: str) -> None:
        self.kind, self.why = kind, why


def _lean(value: Verified) -> Verified:
    """What `keep` keeps of an object: a record's or an acceptance record's outcome without its figures."""
    if isinstance(value, ResultRecord):
        return value.model_copy(update={"metrics": ()})
    if isinstance(value, AcceptRecord):
        return value.model_copy(update={"figures": ()})
    return value


def _done(fn: Callable[[], tuple[Verified, bytes, bool]]) -> Future[tuple[Verified, bytes, bool]]:
    """fn() run now, as a settled future beside the GETs in flight: what a pack holds is believed in the caller's
    thread (validation holds the GIL, so a reader thread would add only its hand-over)."""
    future: Future[tuple[Verified, bytes, bool]] = Future()
    try:
        future.set_result(fn())
    except _Bad as e:
        future.set_exception(e)
    return future


def _one_version(versions: list[tuple[str, int]], deleted: bool) -> tuple[str, int]:
    """The one (version id, size) of a key rackform wrote: every rackform write is a single conditional PUT with a
    SHA-256 (put_once), never deleted."""
    if deleted:
        raise _Bad("tampered", f"deleted (a delete marker hides {len(versions)} version(s)); rackform never "
                   "deletes results")
    if len(versions) != 1:
        raise _Bad("tampered", f"{len(versions)} versions: written over after the first write, which rackform "
                   "never does (every write is If-None-Match: *)")
    return versions[0]


# The run's folders of operator-side objects (workloads/objects.py), by the kind of object each holds.
FOLDERS = {"_jobs": "marker", "_workloads": "workload", "_placements": "placement", SUMMARY_FOLDER: "summary"}
_SECOND = dt.timedelta(seconds=1)


def _kind(prefix: str, key: str) -> str | None:
    rest = key[len(prefix):]
    folder, _, name = rest.partition("/")
    if folder in FOLDERS:
        return FOLDERS[folder] if name.endswith(".json") else None
    if folder == "_acceptance":
        return "certificate" if name == "certificate.json" else None
    if folder == "_claims":  # a failed attempt's note is only ever listed (latest_claim), never read
        m = CLAIM_OBJECT.fullmatch(name.rsplit("/", 1)[-1])
        return "claim" if m and not m[2] else None
    if folder == HEALTH_FOLDER:
        return "health" if HEALTH_OBJECT.fullmatch(rest.rsplit("/", 1)[-1]) else None
    if folder == RECORDS_FOLDER:
        return "record" if name.endswith("/record.json") else None
    last = rest.rsplit("/", 1)[-1]
    if HEALTH_OBJECT.fullmatch(last):
        return "health"
    if ACCEPT_OBJECT.fullmatch(last):
        return "accept"
    if ACCEPT_SCHEDULE.fullmatch(last):
        return "schedule"
    return "record" if last == "record.json" else None


def _where(key: str) -> tuple[str, str, str]:
    """(run id, the run's prefix, kind) of a key rackform reads one at a time."""
    parts = key.split("/")
    prefix = f"{PREFIX}/{check_run_id(parts[1] if len(parts) > 2 else '')}/"
    if (what := _kind(prefix, key)) is None:
        raise ValueError(f"{key} is not a kind of object rackform reads")
    return parts[1], prefix, what


def _first_error(e: ValidationError) -> str:
    errors = e.errors()
    if missing := [".".join(str(p) for p in err["loc"]) for err in errors if err["type"] == "missing"]:
        return f"missing {', '.join(missing)}"
    err = errors[0]
    where = ".".join(str(p) for p in err["loc"])
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where + ': ' if where else ''}{err['msg']}{more}"


def _validated(model: type[M], data: object, noun: str) -> M:
    """`data` as `model`: an object's body (bytes), parsed and validated in one pass by pydantic's JSON parser (half
    the CPU of json.loads and then model_validate: 0.3 ms of a 17 KB record), or JSON already parsed."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as e:
        if (err := e.errors()[0])["type"] == "json_invalid":
            raise _Bad("unreadable", f"not JSON ({err['msg']})") from None
        raise _Bad("unreadable", f"not a {noun}: {_first_error(e)}") from None


def _filed(key: str, expected: str | None, says: str) -> None:
    if key != expected:
        raise _Bad("tampered", f"filed under this key, but {says}")


def _health(key: str, data: object, run_id: str) -> HealthRecord:
    record = _validated(HealthRecord, data, "health record")
    parts = key.split("/")  # as for records: its own folder, or beside the node logs in a run written before
    filed_as = health_key if len(parts) == 7 and parts[2] == HEALTH_FOLDER else \
        legacy_health_key if len(parts) == 6 else None
    _filed(key, filed_as(record.run_id, record.rack, record.node_group, record.benchmark, record.node_index)
           if filed_as is not None and RUN_ID.fullmatch(record.run_id) else None,
           f"it is node {record.node_index} of run {record.run_id!r}, "
           f"{record.rack}/{record.node_group}/{record.benchmark}")
    return record


def _accept(key: str, data: object, run_id: str) -> AcceptRecord:
    record = _validated(AcceptRecord, data, "acceptance record")
    _filed(key, accept_key(record.run_id, record.rack, record.node_group, record.benchmark, record.part,
                           record.node_index, record.round) if RUN_ID.fullmatch(record.run_id) else None,
           f"it is the {record.part} record of node {record.node_index} (round {record.round}) of run "
           f"{record.run_id!r}, {record.rack}/{record.node_group}/{record.benchmark}")
    return record


def _schedule(key: str, data: object, run_id: str) -> FabricSchedule:
    schedule = _validated(FabricSchedule, data, "fabric round schedule")
    _filed(key, accept_schedule_key(schedule.run_id, schedule.rack, schedule.node_group, schedule.benchmark,
                                    schedule.round) if RUN_ID.fullmatch(schedule.run_id) else None,
           f"it is round {schedule.round} of run {schedule.run_id!r}, "
           f"{schedule.rack}/{schedule.node_group}/{schedule.benchmark}")
    return schedule


def _certificate(key: str, data: object, run_id: str) -> Document:
    head = _validated(CertificateHead, data, "acceptance certificate")
    _filed(key, certificate_key(run_id) if head.run_id == run_id else None,
           f"it is the certificate of run {head.run_id!r}")
    return _as_written(data)


def _record(key: str, data: object, run_id: str) -> ResultRecord:
    record = _validated(ResultRecord, data, "result record")
    # A run written before the records had a folder of their own keeps them at the legacy key: both are read. The
    # part count keeps a name with a "/" in it from passing for a deeper key.
    parts = key.split("/")
    filed_as = record_key if len(parts) == 7 and parts[2] == RECORDS_FOLDER else \
        legacy_record_key if len(parts) == 6 else None
    expected = filed_as(record.run_id, record.rack, record.node_group, record.benchmark) \
        if filed_as is not None and RUN_ID.fullmatch(record.run_id) else None
    _filed(key, expected, f"the record is run {record.run_id!r}, rack {record.rack!r}, node group "
           f"{record.node_group!r}, benchmark {record.benchmark!r}")
    return record


def _marker(key: str, data: object, run_id: str) -> Document:
    m = _validated(BenchmarkMarker, data, "job marker")
    expected = str(m.name_in(run_id))
    _filed(key, submission_key(run_id, m.job_name) if m.job_name == expected else None,
           f"it names job {m.job_name!r} of rack {m.rack!r}, node group {m.node_group!r}, benchmark "
           f"{m.benchmark!r} (run {run_id} would name it {expected!r})")
    return _as_written(data)


def _workload_marker(key: str, data: object, run_id: str) -> Document:
    m = _validated(WorkloadMarker, data, "workload job marker")
    expected = str(m.name_in(run_id))
    _filed(key, workload_job_key(run_id, m.workload) if m.job_name == expected else None,
           f"it names job {m.job_name!r} of workload {m.workload!r} on {m.rack!r}/{m.node_group!r} (run {run_id} "
           f"would name it {expected!r})")
    return _as_written(data)


def _placement(key: str, data: object, run_id: str) -> Document:
    d = _validated(Placement, data, "placement decision")
    _filed(key, placement_key(run_id, d.workload) if d.run_id == run_id else None,
           f"it is the decision of run {d.run_id!r} for workload {d.workload!r}")
    return _as_written(data)


def _repair(key: str, data: object, run_id: str) -> RepairRecord:
    r = _validated(RepairRecord, data, "repair record")
    try:
        expected = repair_key(r.rack, r.node_group, dt.datetime.fromisoformat(r.stopped_at), r.job_id, r.attempt)
    except ValueError:
        expected = None
    _filed(key, expected, f"it is attempt {r.attempt} of job {r.job_id!r} on {r.rack!r}/{r.node_group!r}, stopped "
           f"at {r.stopped_at}")
    return r


def _summary(key: str, data: object, run_id: str) -> RunSummary:
    summary = _validated(RunSummary, data, "run summary")
    _filed(key, summary_key(run_id, summary.seq) if summary.run_id == run_id else None,
           f"it is update {summary.seq} of run {summary.run_id!r}")
    return summary


def _as_written(data: object) -> Document:
    """A document its model has just accepted (from its body, or from JSON already parsed): a JSON object, as written
    (a model validates from nothing else read from JSON)."""
    return cast(Document, json.loads(data) if isinstance(data, bytes) else data)


def _claim(key: str, data: object, run_id: str) -> Document:
    c = _validated(Claim, data, "submission claim")
    job = key.split("/")[-2]
    _filed(key, key if c.submission.job_name == job else None,
           f"it claims job {c.submission.job_name!r}, not {job!r}")
    return _as_written(data)


@dataclass(frozen=True)
class Kind:
    noun: str
    limit: int  # bytes: a larger object is refused from the listing's size, never read
    # (key, the object's body or its parsed JSON, run id) -> the value; _Bad when it is not one
    believe: Callable[[str, object, str], Verified]


# Limits far above what rackform writes (a record of 10 repeats of a 30-size sweep of two metrics is 76 KB, a marker
# or a claim under 1 KB, a decision about 1 KB a candidate): room for any genuine object, too little to hurt a reader.
KINDS: dict[str, Kind] = {
    "record": Kind("record", 4 << 20, _record),
    "health": Kind("health record", 1 << 20, _health),
    "accept": Kind("acceptance record", 1 << 20, _accept),
    "schedule": Kind("fabric round schedule", 64 << 10, _schedule),
    "certificate": Kind("acceptance certificate", 4 << 20, _certificate),
    "marker": Kind("job marker", 64 << 10, _marker),
    "workload": Kind("workload job marker", 64 << 10, _workload_marker),
    "placement": Kind("placement decision", 1 << 20, _placement),
    "claim": Kind("submission claim", 64 << 10, _claim),
    "summary": Kind("run summary", 64 << 10, _summary),
    "repair": Kind("repair record", 64 << 10, _repair),
}
