"""Inside the project a fact cites AWS's (or the maker's) own page, never the team's notes kept outside it."""

import subprocess

from tests.conftest import ROOT

# Spelled in pieces so that this file does not name what it looks for.
OUTSIDE_NOTES = ("shared/" + "reference", "aws" + "-facts")


def project_files() -> list[str]:
    # What git tracks or would track: .gitignore keeps out .venv, node_modules, cdk.out, reports and caches.
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         check=True, capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def test_no_file_cites_the_notes_outside_the_project():
    files = project_files()
    assert len(files) > 100 and "rackform/reference/data/limits.json" in files
    text = {name: (ROOT / name).read_bytes().decode(errors="replace").lower() for name in files}
    cited = sorted(name for name in files if any(note in text[name] for note in OUTSIDE_NOTES))
    assert cited == [], f"cite the AWS (or maker's) page itself, not the notes outside the project: {cited}"
