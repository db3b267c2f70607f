"""Where rackform writes files: checked before any work, never through a symlink, never over the user's files.

`check_output` is the one check every output option goes through (`synth -o`, `report --html`, `report --csv`);
the CLI runs it on the parsed arguments before a command starts, so an unwritable path is a one-line error, not a
traceback after minutes of work.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Literal

Kind = Literal["file", "dir"]


class OutputError(Exception):
    """An output path rackform will not or cannot write; the message is one line naming the path and why."""


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of `path` that exists (lexically: `path` itself is not resolved)."""
    for parent in path.parents:
        if os.path.lexists(parent):
            return parent
    return Path(".")


def _check_creatable(path: Path, option: str) -> None:
    """A path that does not exist yet: its nearest existing ancestor must be a writable directory."""
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise OutputError(f"{option} {path}: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: directory {base} is not writable")
    # access() answers yes to root everywhere, /proc and read-only mounts included: create and remove a file there,
    # which is what writing the output will do.
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as e:
        raise OutputError(f"{option} {path}: cannot create files in {base} ({e.strerror})") from None


def is_cdk_output(directory: Path) -> bool:
    """A cloud assembly that CDK wrote: a `cdk.out` version file and a `manifest.json` with a version, both JSON.

    That is what aws-cdk-lib 2's App.synth() writes at the top of every assembly (the cloud assembly schema version,
    e.g. {"version": "55.0.0"}, checked with this repository's pinned aws-cdk-lib), beside tree.json, templates
    and asset manifests; user files rarely come in that pair.
    """
    try:
        marker = json.loads((directory / "cdk.out").read_text())
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and "version" in marker and isinstance(manifest, dict) and "version" in manifest


def check_output(path: str | os.PathLike[str], kind: Kind, option: str, *, force: bool = False) -> Path:
    """The path, if rackform may write a file (kind "file") or a CDK cloud assembly (kind "dir") there.

    Refused, whatever `force` says: a symlink at the path or in a directory above it (writing would follow it out),
    for a file anything but a regular file (a FIFO would block the write), for a directory a symlink inside it (CDK
    rewrites manifest.json, tree.json and templates in place), a file where a directory is expected and the
    reverse, and a path whose directory is not writable. Refused without `force`: a non-empty directory
    that is not a previous CDK output, whose files (a manifest.json, a tree.json) CDK would replace.
    """
    out = Path(path)
    if out.is_symlink():
        raise OutputError(f"{option} {out} is a symbolic link; rackform does not write through links: give the "
                          "real path")
    # A linked directory on the way leads the write elsewhere just as a linked file does.
    if link := next((p for p in out.parents if p.is_symlink()), None):
        raise OutputError(f"{option} {out}: {link} is a symbolic link; rackform does not write through links: give "
                          "the real path")
    if not os.path.lexists(out):
        _check_creatable(out, option)
        return out
    if kind == "file":
        if out.is_dir():
            raise OutputError(f"{option} {out} is a directory; give a file path")
        if not out.is_file():  # a FIFO would block the write forever, a device or socket is no file to keep
            raise OutputError(f"{option} {out} is {_special(out)}, not a regular file; give a file path")
        if not os.access(out, os.W_OK) or not os.access(out.parent, os.W_OK | os.X_OK):
            raise OutputError(f"{option} {out} is not writable")
        return out
    if not out.is_dir():
        raise OutputError(f"{option} {out} exists and is not a directory")
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {out}: directory is not writable")
    entries = list(out.iterdir())
    if links := [e.name for e in entries if e.is_symlink()]:
        raise OutputError(f"{option} {out} holds symbolic links ({', '.join(sorted(links)[:3])}); CDK would write "
                          "through them: use an empty directory")
    if entries and not force and not is_cdk_output(out):
        raise OutputError(f"{option} {out} is not empty and not a previous CDK output (no cdk.out and manifest.json"
                          "); its files could be replaced: use a new directory, or --force")
    return out


def _special(path: Path) -> str:
    mode = path.lstat().st_mode
    return ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")


def _open_directory(directory: Path) -> int:
    """A descriptor on `directory`, reached one component at a time, each made where missing and none followed if
    it is a symlink: a directory on the way swapped for a link after the check fails the open (ELOOP or ENOTDIR)
    instead of leading the write elsewhere."""
    fd = os.open(directory.anchor or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in directory.parts[1 if directory.anchor else 0:]:
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass
            fd, parent = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd), fd
            os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_text(path: str | os.PathLike[str], text: str, *, new: bool = False) -> Path:
    """Write a checked output file. What is planted at the path after the check is not written to: a symlink in
    place of a directory on the way (_open_directory) or of the file (O_NOFOLLOW) is refused, O_NONBLOCK keeps a
    FIFO from blocking the open, and anything but a regular file is refused before it is truncated. `new`: only a
    file that does not exist yet (FileExistsError otherwise, even for one created since the check)."""
    out = Path(path)
    directory = _open_directory(out.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | (os.O_EXCL if new else 0)
    try:
        fd = os.open(out.name, flags, 0o644, dir_fd=directory)
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"{out} is {_special(out)}, not a regular file; rackform did not write it")
    os.ftruncate(fd, 0)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return out


def replace_private(path: Path, text: str) -> None:
    """Write a small private file whole or not at all: a new file (0600, never through a link) in the same
    directory, flushed, then renamed over `path`; the directory is made (0700) where missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
