"""Results in S3: write-once objects with SHA256 checksums, and reading a run back.

Layout: results/<run_id>/<rack>/<node_group>/<benchmark>/record.json beside node-<i>.log (the raw output), and
results/<run_id>/_jobs/<job name>.json for each submitted job. Nothing is ever overwritten: every PUT carries
If-None-Match: *, so a retried or duplicated write cannot replace what landed first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, FlexibleChecksumError
from pydantic import ValidationError

from .layout import (
    HEALTH_OBJECT,
    RESULTS_PREFIX as PREFIX,
    RUN_ID,
    check_run_id,
    claim_key,
    health_key,
    job_prefix,
    record_key,
    submission_key,
)
from .contract import MAX_REPEATS, runnable_repeats
from .results import HealthRecord, ResultRecord

# Standard mode retries throttling, 5xx and connection errors with backoff; conditional writes make them safe.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=30)
CONFLICT_ATTEMPTS = 6
CONFLICT_BACKOFF_S = 0.1


class AlreadyExists(Exception):
    """A different object already sits at the key: the first write wins and is never replaced."""


def s3_client(endpoint_url: str | None = None, region: str | None = None):
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=RETRY_CONFIG)


CLAIM_OBJECT = re.compile(r"(\d+)(\.failed)?\.json")


def sha256_b64(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


class ResultStore:
    def __init__(self, bucket: str, client: Any | None = None):
        self.bucket = bucket
        self.s3 = client or s3_client()
        self._problems: dict[str, BadObject] = {}  # objects reads left out, by key: see `problems`

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

    def get_json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def keys(self, prefix: str) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    # --- reading back: an object is believed only once it is verified ------------------------------------------

    def records(self, run_id: str) -> list[ResultRecord]:
        """The run's verified records; every object left out is in `self.problems`, for the caller to show."""
        return self.read(run_id, "record")["record"]

    def health(self, run_id: str, job: tuple[str, str, str] | None = None) -> list[HealthRecord]:
        """The run's verified health records (one per node of each job), or one job's, `job` being (rack, node
        group, benchmark): listed under that job's prefix alone. Objects left out are in `self.problems`."""
        return self.read(run_id, "health", within=None if job is None else f"{job_prefix(run_id, *job)}/")["health"]

    def submissions(self, run_id: str) -> list[dict[str, Any]]:
        """The run's verified job markers; every object left out is in `self.problems`."""
        return self.read(run_id, "marker")["marker"]

    @property
    def problems(self) -> list[BadObject]:
        """Every object the reads so far left out (unreadable or tampered), once each, by key."""
        return sorted(self._problems.values(), key=lambda p: (p.kind, p.key))

    def read(self, run_id: str, *kinds: str, within: str | None = None) -> dict[str, list[Any]]:
        """Every verified object of each kind ("record", "health", "marker") under the run's prefix, or under
        `within`, a prefix inside it, from one listing (`rackform status --wait` polls markers and records)."""
        prefix = f"{PREFIX}/{check_run_id(run_id)}/"
        out: dict[str, list[Any]] = {k: [] for k in kinds}
        for key, versions, deleted in self._versions(within or prefix):
            if (what := _kind(prefix, key)) not in out:
                continue
            try:
                out[what].append(self._verified(key, versions, deleted, run_id, what))
                self._problems.pop(key, None)
            except _Bad as e:
                self._problems[key] = BadObject(key, what, e.kind, e.why)
        return out

    def _versions(self, prefix: str) -> list[tuple[str, list[str], bool]]:
        """(key, version ids, latest is a delete marker) for every key under the prefix, from one listing.

        Needs s3:ListBucketVersions (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html);
        an unversioned bucket lists each key once, version id "null"."""
        versions: dict[str, list[str]] = {}
        deleted: set[str] = set()
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for v in page.get("Versions", []):
                versions.setdefault(v["Key"], []).append(v["VersionId"])
            for d in page.get("DeleteMarkers", []):
                versions.setdefault(d["Key"], [])
                if d.get("IsLatest"):
                    deleted.add(d["Key"])
        return [(k, versions[k], k in deleted) for k in sorted(versions)]

    def verified_body(self, key: str, version_id: str | None = None) -> bytes:
        """The object's body, checked against the SHA-256 stored with it, which is the one S3 checked the body
        against on upload (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html);
        Tampered when it is missing or does not match."""
        kwargs = {} if version_id is None else {"VersionId": version_id}
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **kwargs)
            body = got["Body"].read()
        except FlexibleChecksumError as e:  # botocore checked the body against the stored checksum itself
            raise Tampered(f"SHA-256 mismatch: {e}") from None
        stored = got.get("ChecksumSHA256")
        if stored is None:
            raise Tampered("no SHA-256 checksum stored with it; every rackform write carries one")
        if stored != sha256_b64(body):
            raise Tampered(f"SHA-256 mismatch: stored {stored}, the body hashes to {sha256_b64(body)}")
        return body

    def _verified(self, key: str, versions: list[str], deleted: bool, run_id: str, what: str) -> Any:
        # Every rackform write is a single conditional PUT with a SHA-256 (put_once): one version, never deleted.
        if deleted:
            raise _Bad("tampered", f"deleted (a delete marker hides {len(versions)} version(s)); rackform never "
                       "deletes results")
        if len(versions) != 1:
            raise _Bad("tampered", f"{len(versions)} versions: written over after the first write, which rackform "
                       "never does (every write is If-None-Match: *)")
        # The version listed, not one PUT since (s3:GetObjectVersion).
        try:
            body = self.verified_body(key, None if versions[0] == "null" else versions[0])
        except Tampered as e:
            raise _Bad("tampered", str(e)) from None
        try:
            data = json.loads(body)
        except ValueError as e:
            raise _Bad("unreadable", f"not JSON ({e})") from None
        if what == "health":
            return _health(key, data)
        return _record(key, data) if what == "record" else _marker(key, data, run_id)


# --- what a reader makes of an object it cannot believe ----------------------------------------------------------

# AWS Batch job names: up to 128 letters, numbers, hyphens and underscores, starting with a letter or number
# (https://docs.aws.amazon.com/batch/latest/APIReference/API_SubmitJob.html, jobName). A marker's job name is also
# a local file name (rackform/jobs/local.py), so nothing else may pass.
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
MARKER_FIELDS: dict[str, type] = {"job_name": str, "job_id": str, "queue": str, "job_definition": str, "rack": str,
                                  "node_group": str, "benchmark": str, "nodes": int}


@dataclass(frozen=True)
class BadObject:
    """An object under a run's prefix that is shown as a problem, never as data."""

    key: str
    what: str  # "record" or "marker"
    kind: Literal["unreadable", "tampered"]  # malformed, or not what rackform wrote where it wrote it
    why: str

    @property
    def noun(self) -> str:
        return "job marker" if self.what == "marker" else self.what


class Tampered(ValueError):
    """An object whose body is not what rackform wrote: no SHA-256 stored with it, or one that does not match."""


class _Bad(Exception):
    def __init__(self, kind: Literal["unreadable", "tampered"], why: str):
        self.kind, self.why = kind, why


def _kind(prefix: str, key: str) -> str | None:
    rest = key[len(prefix):]
    if rest.startswith("_jobs/"):
        return "marker" if rest.endswith(".json") else None
    if HEALTH_OBJECT.fullmatch(rest.rsplit("/", 1)[-1]):
        return "health"
    return "record" if rest == "record.json" or rest.endswith("/record.json") else None


def _health(key: str, data: Any) -> HealthRecord:
    try:
        record = HealthRecord.model_validate(data)
    except ValidationError as e:
        raise _Bad("unreadable", f"not a health record: {_first_error(e)}") from None
    if not RUN_ID.fullmatch(record.run_id) or key != health_key(record.run_id, record.rack, record.node_group,
                                                                 record.benchmark, record.node_index):
        raise _Bad("tampered", f"filed under this key, but it is node {record.node_index} of run {record.run_id!r}, "
                   f"{record.rack}/{record.node_group}/{record.benchmark}")
    return record


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "<record>"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def _record(key: str, data: Any) -> ResultRecord:
    try:
        record = ResultRecord.model_validate(data)
    except ValidationError as e:
        raise _Bad("unreadable", f"not a result record: {_first_error(e)}") from None
    parts = key.split("/")
    expected = record_key(record.run_id, record.rack, record.node_group, record.benchmark) if len(parts) == 6 \
        and RUN_ID.fullmatch(record.run_id) else None
    if key != expected:
        raise _Bad("tampered", f"filed under this key, but the record is run {record.run_id!r}, rack "
                   f"{record.rack!r}, node group {record.node_group!r}, benchmark {record.benchmark!r}")
    return record


def _marker(key: str, data: Any, run_id: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Bad("unreadable", f"a job marker is a JSON object, not {type(data).__name__}")
    missing = [k for k in MARKER_FIELDS if k not in data]
    if missing:
        raise _Bad("unreadable", f"missing {', '.join(missing)}")
    wrong = [k for k, t in MARKER_FIELDS.items() if type(data[k]) is not t]
    if wrong:
        raise _Bad("unreadable", "; ".join(f"{k} is {type(data[k]).__name__}, not {MARKER_FIELDS[k].__name__}"
                                           for k in wrong))
    repeats = data.get("repeats")
    if repeats is not None and not runnable_repeats(repeats):
        raise _Bad("unreadable", f"repeats {repeats!r} is not a whole number from 1 to {MAX_REPEATS}")
    name = data["job_name"]
    if data["nodes"] < 1 or not JOB_NAME.fullmatch(name):
        raise _Bad("unreadable", f"job name {name!r} or nodes {data['nodes']} is not one Batch accepts")
    expected = f"{run_id}-{data['rack']}-{data['node_group']}-{data['benchmark']}"
    if key != submission_key(run_id, name) or name != expected:
        raise _Bad("tampered", f"filed under this key, but it names job {name!r} of rack {data['rack']!r}, node "
                   f"group {data['node_group']!r}, benchmark {data['benchmark']!r} (run {run_id} would name it "
                   f"{expected!r})")
    return data
