"""Results in S3: write-once objects with SHA256 checksums, and reading a run back.

Layout: results/<run_id>/<rack>/<node_group>/<benchmark>/record.json beside node-<i>.log (the raw output), and
results/<run_id>/_jobs/<job name>.json for each submitted job. Nothing is ever overwritten: every PUT carries
If-None-Match: *, so a retried or duplicated write cannot replace what landed first.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .results import ResultRecord

PREFIX = "results"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
# Standard mode retries throttling, 5xx and connection errors with backoff; conditional writes make them safe.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=30)
CONFLICT_ATTEMPTS = 6
CONFLICT_BACKOFF_S = 0.1


class AlreadyExists(Exception):
    """A different object already sits at the key: the first write wins and is never replaced."""


def s3_client(endpoint_url: str | None = None, region: str | None = None):
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=RETRY_CONFIG)


def check_run_id(run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-48 letters, digits, '-' or '_', starting with a letter or "
                         "digit (it becomes part of S3 keys and Batch job names)")
    return run_id


def job_prefix(run_id: str, rack: str, node_group: str, benchmark: str) -> str:
    return f"{PREFIX}/{check_run_id(run_id)}/{rack}/{node_group}/{benchmark}"


def record_key(run_id: str, rack: str, node_group: str, benchmark: str) -> str:
    return f"{job_prefix(run_id, rack, node_group, benchmark)}/record.json"


def log_key(run_id: str, rack: str, node_group: str, benchmark: str, node_index: int) -> str:
    return f"{job_prefix(run_id, rack, node_group, benchmark)}/node-{node_index}.log"


def submission_key(run_id: str, job_name: str) -> str:
    return f"{PREFIX}/{check_run_id(run_id)}/_jobs/{job_name}.json"


def sha256_b64(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


class ResultStore:
    def __init__(self, bucket: str, client: Any | None = None):
        self.bucket = bucket
        self.s3 = client or s3_client()

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

    def put_log(self, key: str, text: str) -> str:
        self.put_once(key, text.encode("utf-8", errors="replace"), "text/plain; charset=utf-8")
        return key

    def get_json(self, key: str) -> Any:
        import json

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

    def records(self, run_id: str) -> list[ResultRecord]:
        keys = sorted(k for k in self.keys(f"{PREFIX}/{check_run_id(run_id)}/") if k.endswith("/record.json"))
        return [ResultRecord.model_validate(self.get_json(k)) for k in keys]

    def submissions(self, run_id: str) -> list[dict[str, Any]]:
        keys = sorted(self.keys(f"{PREFIX}/{check_run_id(run_id)}/_jobs/"))
        return [self.get_json(k) for k in keys]
