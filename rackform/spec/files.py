"""Reading the files a user names (specs, prices, tool logs): regular files only, and never more than a limit.

`Path.read_bytes()` on /dev/zero reads until memory runs out, and on a FIFO blocks until a writer comes; a log
pasted by mistake can be gigabytes. So: open without blocking, refuse anything fstat does not call a regular file,
and read at most limit + 1 bytes (the one extra byte is how a file that grew since fstat is still caught).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# `rackform parse` input: tool logs and JSON files; fio's JSON for thousands of jobs is a few MB.
LOG_MAX_BYTES = 64 * 1024 * 1024


class FileRefused(ValueError):
    """A one-line reason naming the path; `missing` tells callers that want to add a hint for that case."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def _too_large(path: str, size: str, limit: int, kind: str) -> FileRefused:
    return FileRefused(f"cannot read {path}: it is {size} bytes; {kind} files are limited to {limit:,} bytes")


def read_limited(path: str | os.PathLike[str], limit: int, kind: str) -> bytes:
    """The bytes of the regular file at `path`, refusing (FileRefused) anything else or anything over `limit`."""
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileRefused(f"cannot read {p}: it does not exist", missing=True) from None
    except OSError as e:
        raise FileRefused(f"cannot read {p}: {e.strerror}") from None
    except ValueError:  # a NUL byte: no file system has such a name
        raise FileRefused(f"cannot read {p!r}: a path cannot contain a NUL byte") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileRefused(f"cannot read {p}: it is a directory; give the path of a {kind} file")
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"cannot read {p}: it is not a regular file (a device, FIFO or socket); give the "
                              f"path of a {kind} file")
        if info.st_size > limit:
            raise _too_large(p, f"{info.st_size:,}", limit, kind)
        chunks, got = [], 0
        while got <= limit:
            chunk = os.read(fd, limit + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise _too_large(p, f"more than {limit:,}", limit, kind)
        return b"".join(chunks)
    except OSError as e:
        raise FileRefused(f"cannot read {p}: {e.strerror}") from None
    finally:
        os.close(fd)


def read_limited_text(path: str | Path, limit: int, kind: str) -> str:
    """`read_limited`, decoded as UTF-8 with undecodable bytes replaced (tool logs are not always clean)."""
    return read_limited(path, limit, kind).decode("utf-8", errors="replace")
