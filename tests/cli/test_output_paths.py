"""Output paths (`synth -o`, `report --html`, `report --csv`): checked before any work, never written through a
symlink, never over files rackform did not write. Every refusal is one line on stderr and exit 2."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from rackform.cli.outputs import OutputError, check_output, write_text

from tests.conftest import EXAMPLE, run_cli

NOBODY = 65534


def refused(code: int, err: str, *words: str) -> bool:
    """Exit 2 with one line naming the problem, and no sign that the command went on to work."""
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and all(w in lines[0] for w in words)


def users_files(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {"manifest.json": '{"mine": true}\n', "tree.json": "my tree\n", "notes.txt": "keep me\n"}
    for name, text in files.items():
        (directory / name).write_text(text)
    return files


def test_synth_refuses_a_directory_of_the_users_files(capsys, tmp_path):
    files = users_files(tmp_path / "mine")
    code, out, err = run_cli(capsys, "synth", EXAMPLE, "-o", tmp_path / "mine")
    assert refused(code, err, "not empty and not a previous CDK output", "--force") and out == ""
    assert {p.name: p.read_text() for p in (tmp_path / "mine").iterdir()} == files  # untouched


def test_a_previous_cdk_output_and_force_are_accepted(tmp_path):
    previous = tmp_path / "cdk.out"
    previous.mkdir()
    (previous / "cdk.out").write_text('{"version":"55.0.0"}')
    (previous / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": {}}))
    (previous / "demo-network.template.json").write_text("{}")
    assert check_output(previous, "dir", "-o") == previous
    users_files(tmp_path / "mine")
    assert check_output(tmp_path / "mine", "dir", "-o", force=True) == tmp_path / "mine"
    assert check_output(tmp_path / "new" / "deeper", "dir", "-o") == tmp_path / "new" / "deeper"
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty", "dir", "-o") == tmp_path / "empty"


def test_synth_never_follows_a_symlink_out(capsys, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    files = users_files(elsewhere)
    (tmp_path / "link").symlink_to(elsewhere)
    code, _, err = run_cli(capsys, "synth", EXAMPLE, "-o", tmp_path / "link", "--force")
    assert refused(code, err, "symbolic link")
    out = tmp_path / "out"
    out.mkdir()
    (out / "cdk.out").write_text('{"version":"55.0.0"}')
    (out / "manifest.json").symlink_to(elsewhere / "manifest.json")  # CDK would write the user's file through it
    (out / "tree.json").write_text("{}")
    code, _, err = run_cli(capsys, "synth", EXAMPLE, "-o", out, "--force")
    assert refused(code, err, "symbolic links", "manifest.json")
    assert {p.name: p.read_text() for p in elsewhere.iterdir()} == files


@pytest.mark.parametrize("argv, words", [
    (("synth", EXAMPLE, "-o", "{file}"), ("exists and is not a directory",)),
    (("synth", EXAMPLE, "-o", "{file}/sub"), ("is a file, not a directory",)),
    (("report", "r1", "--html", "{dir}"), ("--html", "is a directory")),
    (("report", "r1", "--csv", "{file}/r.csv"), ("--csv", "is a file, not a directory")),
    (("report", "r1", "--csv", "{link}"), ("--csv", "symbolic link")),
    (("report", "r1", "--csv", "{fifo}"), ("--csv", "is a FIFO (named pipe), not a regular file")),
    (("report", "r1", "--html", "{linkdir}/r.html"), ("--html", "linkdir is a symbolic link")),
    (("report", "r1", "--csv", "{linkdir}/new/r.csv"), ("--csv", "linkdir is a symbolic link")),
    (("synth", EXAMPLE, "-o", "{linkdir}/out"), ("-o/--output", "linkdir is a symbolic link")),
])
def test_unwritable_paths_are_one_line_errors_before_any_work(capsys, tmp_path, monkeypatch, argv, words):
    # No bucket anywhere: a command that got past its output check would stop at "give --bucket" (exit 1).
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    (tmp_path / "f").write_text("mine\n")
    (tmp_path / "target").write_text("not yours\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "target")
    os.mkfifo(tmp_path / "fifo")  # opening it to write would block until someone reads
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "linkdir").symlink_to(tmp_path / "elsewhere")
    paths = {"file": tmp_path / "f", "dir": tmp_path, "link": tmp_path / "link.csv", "fifo": tmp_path / "fifo",
             "linkdir": tmp_path / "linkdir"}
    code, out, err = run_cli(capsys, *(str(a).format(**paths) for a in argv))
    assert refused(code, err, *words) and out == ""
    assert (tmp_path / "f").read_text() == "mine\n" and (tmp_path / "target").read_text() == "not yours\n"
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_read_only_directory_is_refused(capsys, monkeypatch):
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    base = Path(tempfile.mkdtemp(prefix="rackform-ro-"))
    base.chmod(0o755)
    ro = base / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    root = os.geteuid() == 0
    try:
        # Root writes anywhere whatever the mode bits say: as root, the check runs as an unprivileged user, the
        # saved uid (0) kept so that the finally clause can come back.
        if root:
            os.setresuid(NOBODY, NOBODY, 0)
        try:
            code, out, err = run_cli(capsys, "report", "r1", "--csv", ro / "r.csv")
        finally:
            if root:
                os.setresuid(0, 0, 0)
        assert refused(code, err, "--csv", "not writable") and out == ""
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)
        ro.rmdir()
        base.rmdir()


def test_a_symlink_planted_after_the_check_is_not_followed(tmp_path):
    target = tmp_path / "target"
    target.write_text("not yours\n")
    out = tmp_path / "report.csv"
    assert check_output(out, "file", "--csv") == out
    out.symlink_to(target)  # between the check and the write
    with pytest.raises(OSError):
        write_text(out, "a,b\n")
    assert target.read_text() == "not yours\n"
    with pytest.raises(OutputError, match="symbolic link"):
        check_output(out, "file", "--csv")


def test_a_fifo_planted_after_the_check_is_not_written_to_and_does_not_block(tmp_path):
    out = tmp_path / "report.html"
    assert check_output(out, "file", "--html") == out
    os.mkfifo(out)  # between the check and the write, with no reader: the open fails instead of waiting
    with pytest.raises(OSError):
        write_text(out, "<html>")
    reader = os.open(out, os.O_RDONLY | os.O_NONBLOCK)  # with a reader, the open succeeds: the write is refused
    try:
        with pytest.raises(OutputError, match="is a FIFO"):
            write_text(out, "<html>")
        assert os.read(reader, 100) == b""
    finally:
        os.close(reader)


def test_a_directory_linked_after_the_check_is_not_written_through(tmp_path):
    """O_NOFOLLOW guards the last component only: a missing directory of the path, checked as creatable, then
    planted as a link to another directory, led the write to the file of the same name there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "report.csv").write_text("not yours\n")
    out = tmp_path / "reports" / "report.csv"
    assert check_output(out, "file", "--csv") == out
    (tmp_path / "reports").symlink_to(elsewhere)  # between the check and the write
    with pytest.raises(OSError):
        write_text(out, "a,b\n")
    assert (elsewhere / "report.csv").read_text() == "not yours\n"


def test_missing_directories_are_made_and_relative_paths_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert write_text("a/b/report.csv", "x\n") == Path("a/b/report.csv")
    assert write_text("top.csv", "y\n") == Path("top.csv")
    assert write_text(tmp_path / "c" / "r.html", "z") == tmp_path / "c" / "r.html"
    assert (tmp_path / "a/b/report.csv").read_text() == "x\n" and (tmp_path / "top.csv").read_text() == "y\n"
    assert (tmp_path / "c/r.html").read_text() == "z"
