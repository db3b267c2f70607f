"""The embedded AWS's ListObjectVersions at the cost of the page asked for, not of the whole bucket.

moto 5.2 answers every ListObjectVersions page by deep-copying every version of every key in the bucket, bodies
included (`S3Backend.list_object_versions`), and only then filters by prefix and marker: one page of a run's records
in a bucket of 40,000 objects copies all 40,000 bodies (measured on 2 cores: 2.3 s a page with 12,000 objects of
about 5 KB, so a 10,000-record run's listing took longer than reading its records). On AWS a page costs a page. The
copies exist only so that moto can mark each version listed as latest or not without touching the stored keys.

While `versions_listed_per_page()` is entered, that one call copies only the keys under the request's prefix and
at or past its key marker (moto skips every other one), and copies each as its listed attributes alone, sharing the
stored key's body instead of copying it. The response is the same, element for element
(tests/jobs/test_moto_listing.py holds it to moto's own on versions, delete markers, delimiters and pages).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
import types
from collections.abc import Iterator

_request = threading.local()  # (prefix, key marker) of the listing this thread is answering


class _NoBody:
    """Stands in for a listed copy's body buffer: the copy is dropped after the response is written, and moto's
    FakeKey closes its buffer when it is collected, which must not close the stored key's."""

    def close(self) -> None:
        pass


_NO_BODY = _NoBody()


def _listed(versions: object, memo: dict[int, object] | None = None) -> object:
    """copy.deepcopy as moto.s3.models calls it: of one key's list of versions, inside list_object_versions."""
    from moto.s3.models import FakeKey

    request = getattr(_request, "current", None)
    if request is None or not isinstance(versions, list) or not versions:
        return copy.deepcopy(versions, memo)
    prefix, marker = request
    name = versions[0].name
    if not name.startswith(prefix) or (marker and name < marker):
        return []  # moto skips it: outside the prefix, or before the page's key marker
    out: list[object] = []
    for version in versions:
        if type(version) is FakeKey:
            listed = object.__new__(FakeKey)
            listed.__dict__.update(version.__dict__)
            listed._value_buffer, listed.multipart, listed.disposed = _NO_BODY, None, True
            if version._etag is None:
                # Its PUT's response has not computed it yet. From the body read under the key's lock, as moto's deep
                # copy reads it: `etag` seeks and reads the one buffer unlocked, under a GET reading it (locked).
                listed._etag = hashlib.md5(version.value, usedforsecurity=False).hexdigest()
            out.append(listed)
        else:  # a delete marker: no body
            out.append(copy.copy(version))
    return out


@contextlib.contextmanager
def versions_listed_per_page() -> Iterator[None]:
    import moto.s3.models as models

    real_list, real_copy = models.S3Backend.list_object_versions, models.copy

    def list_object_versions(self: models.S3Backend, bucket_name: str, delimiter: str | None = None,
                             key_marker: str | None = None, max_keys: int | None = 1000, prefix: str = "",
                             version_id_marker: str | None = None) -> object:
        _request.current = (prefix or "", key_marker)
        try:
            return real_list(self, bucket_name, delimiter=delimiter, key_marker=key_marker, max_keys=max_keys,
                             prefix=prefix, version_id_marker=version_id_marker)
        finally:
            _request.current = None

    models.copy = types.SimpleNamespace(copy=copy.copy, deepcopy=_listed)
    models.S3Backend.list_object_versions = list_object_versions
    try:
        yield
    finally:
        models.S3Backend.list_object_versions = real_list
        models.copy = real_copy
