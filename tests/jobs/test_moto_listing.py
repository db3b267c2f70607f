"""The embedded AWS's ListObjectVersions (rackform/jobs/moto_listing.py): the same pages as moto's own, without a
copy of every body in the bucket for each page."""

from __future__ import annotations

import gc
import itertools

import pytest
from moto.s3.models import FakeKey

from rackform.jobs.moto_listing import versions_listed_per_page
from tests.conftest import moto_aws, versioned_bucket

BUCKET = "rackform-listing-test"
REGION = "us-east-1"


@pytest.fixture
def s3(monkeypatch):
    with moto_aws(monkeypatch, REGION):
        s3 = versioned_bucket(BUCKET, REGION)
        for run, folder, n in itertools.product(("r1", "r2", "r10"), ("Records", "_jobs", "logs"), range(4)):
            key = f"results/{run}/{folder}/k{n}.json"
            s3.put_object(Bucket=BUCKET, Key=key, Body=f"{key} first".encode())
            if n % 2:
                s3.put_object(Bucket=BUCKET, Key=key, Body=f"{key} again, longer".encode())
            if n == 3:
                s3.delete_object(Bucket=BUCKET, Key=key)
        s3.put_object(Bucket=BUCKET, Key="other/x", Body=b"x")
        yield s3


def pages(s3, **kwargs) -> list[dict]:
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, **kwargs):
        page.pop("ResponseMetadata")
        out.append(page)
    return out


LISTINGS = [{}, {"Prefix": "results/r1/"}, {"Prefix": "results/r1/Records/"}, {"Prefix": "results/r"},
            {"Prefix": "results/", "Delimiter": "/"}, {"Prefix": "results/r1/", "Delimiter": "/"},
            {"Prefix": "nothing/"}]


@pytest.mark.parametrize("page_size", [1, 2, 3, 5, 1000])
@pytest.mark.parametrize("listing", LISTINGS, ids=[str(listing) for listing in LISTINGS])
def test_every_page_is_the_one_moto_gives(s3, listing, page_size):
    kwargs = {**listing, "PaginationConfig": {"PageSize": page_size}}
    expected = pages(s3, **kwargs)
    with versions_listed_per_page():
        assert pages(s3, **kwargs) == expected
    listed = sum(len(p.get(k, [])) for p in expected for k in ("Versions", "DeleteMarkers", "CommonPrefixes"))
    assert listed > 0 or listing.get("Prefix") == "nothing/"


def test_a_page_copies_no_body_and_every_body_stays_readable(s3, monkeypatch):
    copied: list[str] = []
    real = FakeKey.__getstate__
    monkeypatch.setattr(FakeKey, "__getstate__", lambda self: copied.append(self.name) or real(self))
    pages(s3, Prefix="results/r1/Records/")
    assert copied  # moto's own copies every version in the bucket, bodies included
    copied.clear()
    with versions_listed_per_page():
        listed = pages(s3, Prefix="results/r1/Records/", PaginationConfig={"PageSize": 2})
        gc.collect()  # the listed copies are gone: the stored keys' bodies must not have gone with them
    assert copied == [] and listed
    for key in ("results/r1/Records/k0.json", "results/r1/Records/k1.json"):
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().startswith(key)


def test_leaving_restores_motos_own():
    import moto.s3.models as models

    real_list, real_copy = models.S3Backend.list_object_versions, models.copy
    with versions_listed_per_page():
        assert models.S3Backend.list_object_versions is not real_list
    assert models.S3Backend.list_object_versions is real_list and models.copy is real_copy


def test_a_key_whose_etag_moto_has_not_computed_is_read_under_its_lock_as_a_get_reads_it():
    """moto computes a new key's ETag in its PUT's response, after the key is stored, by seeking and reading the
    key's one buffer; a listing in between must read the body as moto's own deep copy does, under the key's lock
    (`FakeKey.value`), or a GET reading the buffer at that moment (under the lock) can be handed b""."""
    import hashlib
    import threading

    from rackform.jobs import moto_listing

    key = FakeKey("results/r1/k", b"body", "123456789012", REGION)
    assert key._etag is None
    listed: list[FakeKey] = []

    def listing() -> None:
        moto_listing._request.current = ("results/", None)
        listed.extend(moto_listing._listed([key]))

    with key.lock:  # a GET in the middle of its seek and read
        thread = threading.Thread(target=listing)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()
    thread.join(10)
    assert [k.etag for k in listed] == [f'"{hashlib.md5(b"body").hexdigest()}"'] and key.value == b"body"
    key.dispose()
