"""A run folder's objects packed into one object, which readers take them from instead of one GET each.

S3 has no batch read: a run of 10,000 jobs costs 10,000 GETs of records to report and as many of job markers for
`status`, tens of seconds on S3 with READERS in flight and minutes against the embedded AWS. So the first reading
that GETs at least PACK_AT of a folder's objects (a run's records, or its job markers: workloads/store.py PACKED),
each believed, writes them into one gzip object in that folder (workloads/layout.py `pack_key`), write-once like
every object under results/; a later reading that GETs at least as many again writes the next, larger pack.

A pack changes nothing a reader believes, whoever wrote it, but for the writer of an object itself (below). Readers
still list the folder, and take an object from the pack only when the pack's bytes for its key hash (MD5) to the
ETag listed for the key's one version: S3 sets the ETag of an object written by one PUT under SSE-S3 or no
encryption to the MD5 of its bytes
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html, ETag), and rackform writes each object with one
PUT into a bucket encrypted with SSE-S3 (cdk_constructs/storage.py). An object without such a match (a bucket under
SSE-KMS has none) is read from its own key as before; the object's own checks (its model, the key it is filed at)
run on the pack's bytes as on a GET's; an object the pack holds and the bucket no longer does is a problem. No
second preimage of MD5 for a given object is known, so no one can forge an entry for an object another wrote; MD5
collisions are known (both inputs chosen), so the writer of an object could write one of a colliding pair and pack
the other, both valid JSON of its model: a record only it could have written anyway (docs/security.md, Packs).

Format, gzip-compressed: one JSON line {"run_id": ...}, then for each object, in key order, "<key> <size>\n", its
`size` bytes and "\n". The count of objects is in the pack's key.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Collection, Mapping

# Objects read one by one before a pack is worth writing: below this a folder reads in a second or two.
PACK_AT = 256
# A pack larger than this is never read (from the listing's size); it is held whole while read, compressed: 10,000
# records of a 24-size all-reduce sweep x 3 repeats (17 KB each) pack into 2.1 MB.
PACK_LIMIT = 256 << 20
_HEADER_LIMIT = 4096


def _frame(key: str, size: int) -> int:
    """The bytes an object takes in a pack: its line, its body and the newline after it."""
    return len(key.encode()) + len(str(size)) + 3 + size


def unpacked_bound(listed: Mapping[str, Collection[int]]) -> int:
    """The most bytes a pack of these listed objects (key -> the sizes of its versions) holds once decompressed: a
    pack rackform wrote holds only objects its folder lists, each at a listed size, and the header line."""
    return _HEADER_LIMIT + sum(_frame(key, max(sizes)) for key, sizes in listed.items())


def packed_bound(listed: Mapping[str, Collection[int]]) -> int:
    """The most bytes such a pack is compressed: zlib's deflateBound for incompressible input (compressBound in
    https://github.com/madler/zlib/blob/develop/compress.c) and gzip's 18 bytes of header and trailer."""
    n = unpacked_bound(listed)
    return n + (n >> 12) + (n >> 14) + (n >> 25) + 13 + 18


class PackError(ValueError):
    """A pack that is not one rackform wrote: cut short, badly framed, out of order or of another run."""


def etag(body: bytes) -> str:
    """The ETag S3 lists for an object of these bytes written by one PUT (SSE-S3 or none)."""
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


class PackReader:
    """A pack's records, taken in key order as a reader walks the run's listing (`take`). `listed`: key -> sizes of
    its versions, of each object of the pack's kind that its folder lists; the pack is read no further than those
    objects could fill (`unpacked_bound`), so what it makes a reader do is bounded by the listing, not by its
    compression ratio or the count in its name."""

    def __init__(self, body: bytes, run_id: str, records: int, record_limit: int, key_prefix: str,
                 listed: Mapping[str, Collection[int]]) -> None:
        self._gz = gzip.GzipFile(fileobj=io.BytesIO(body), mode="rb")  # `body`: read whole and checked by its reader
        self.records, self._limit, self._prefix, self._listed = records, record_limit, key_prefix, listed
        self._left = unpacked_bound(listed)
        self._read = 0
        self._next: tuple[str, bytes] | None = None
        self.unlisted: list[str] = []  # keys the pack holds that the folder does not list
        header = self._line(_HEADER_LIMIT)
        self._left -= len(header)
        try:
            said = json.loads(header)
        except (ValueError, RecursionError):  # RecursionError: a line of 4,000 "[" nests deeper than json recurses
            raise PackError("its first line is not JSON") from None
        if not isinstance(said, dict) or said.get("run_id") != run_id:
            raise PackError(f"it is not a pack of run {run_id!r}")
        self._advance(None)

    def take(self, key: str, listed_etag: str | None) -> bytes | None:
        """The pack's bytes for `key` when they are those of the version listed (`listed_etag`), else None. Keys
        before `key` that the pack holds were not asked for: those the folder does not list are kept in
        `unlisted`."""
        while self._next is not None and self._next[0] < key:
            self._skip()
        if self._next is None or self._next[0] != key:
            return None
        body = self._next[1]
        self._advance(key)
        return body if listed_etag is not None and etag(body) == listed_etag else None

    def finish(self) -> None:
        """Read what is left and check the pack ends where its count says."""
        while self._next is not None:
            self._skip()

    def _skip(self) -> None:
        assert self._next is not None
        if self._next[0] not in self._listed:
            self.unlisted.append(self._next[0])
        self._advance(self._next[0])

    def _advance(self, after: str | None) -> None:
        line = self._line(len(self._prefix) + 512)
        if not line:
            if self._read != self.records:
                raise PackError(f"it holds {self._read:,} records, its name says {self.records:,}")
            self._next = None
            return
        key, _, size = line.decode("utf-8", "replace").rstrip("\n").rpartition(" ")
        # isascii: str.isdigit() holds for "²", which int() refuses
        if not key.startswith(self._prefix) or not (size.isascii() and size.isdigit()) or \
                (after is not None and key <= after):
            raise PackError(f"record {self._read + 1} is framed as {line[:200]!r}")
        n = int(size)
        if (sizes := self._listed.get(key)) is not None and n not in sizes:
            raise PackError(f"record {key} is {n:,} bytes; the listing says {max(sizes):,}")
        if n > self._limit:
            raise PackError(f"record {key} is {n:,} bytes, over the {self._limit:,} a record may be")
        if (left := self._left - len(line) - n - 1) < 0:
            raise PackError(f"it holds more than the {len(self._listed):,} objects its folder's listing holds")
        self._left = left
        body = self._gz.read(n + 1)
        if len(body) != n + 1 or body[-1:] != b"\n":
            raise PackError(f"record {key} is cut short")
        self._read += 1
        if self._read > self.records:
            raise PackError(f"it holds more records than its name says ({self.records:,})")
        self._next = (key, body[:-1])

    def _line(self, limit: int) -> bytes:
        line: bytes = self._gz.readline(limit + 1)
        if len(line) > limit:
            raise PackError(f"a line is longer than {limit:,} bytes")
        return line


class PackWriter:
    """The next pack, compressed as its records are added in key order."""

    def __init__(self, run_id: str) -> None:
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip's framing
        self._parts = [self._z.compress(json.dumps({"run_id": run_id}).encode() + b"\n")]
        self.records = 0

    def add(self, key: str, body: bytes) -> None:
        self._parts.append(self._z.compress(f"{key} {len(body)}\n".encode() + body + b"\n"))
        self.records += 1

    def finish(self) -> bytes:
        """The pack's bytes; nothing can be added after."""
        return b"".join([*self._parts, self._z.flush()])

