"""Docs that stay true: every repository path and module that README.md and docs/ name exists.

A reference is an inline code span (`rackform/plan/models.py`, `scripts/`, `rackform.pipeline`,
`workloads.contract.NODE_IDENTITY_FILE`) or a relative markdown link. A path counts when it exists from the
repository root, or, for the short names of a layout tree (`plan/`, `refresh.py`), under one of the repository's
packages; a dotted name counts when its module imports and the rest of the name is an attribute of it. Commands in
code spans (`rackform validate examples/demo.yaml`) have their path-like words checked. Patterns (`<run>`, `*`)
and paths outside the repository (absolute ones: on a node, in a container) are not checked;
NOT_REPOSITORY_PATHS names the rest, each with why.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

# Where a layout tree's short names live: `cli/` under rackform/, `reference/refresh.py` under rackform/,
# `demo.yaml` under examples/; a bare file name (`expected.json`) anywhere below these folders.
FOLDERS = ["rackform", "workloads", "stacks", "cdk_constructs", "scripts", "tests", "examples", "docs"]
BASES = ["", *FOLDERS, *(f"rackform/{p.name}" for p in sorted((ROOT / "rackform").iterdir()) if p.is_dir())]

# Words that look like paths but name nothing in this repository, each with why.
NOT_REPOSITORY_PATHS = {
    # keys in the results bucket (workloads/layout.py spells them), not files here
    "results/", "_claims/", "_jobs/", "_placements/", "_workloads/", "workloads/*",
    # units and NCCL's transport names in tool output
    "MB/sec", "NET/IB", "NET/Socket",
    # GitHub repositories the docs cite as AWS's own samples
    "aws-samples/awsome-distributed-training", "aws-samples/sample-aws-batch-capacity-block-reservations",
    # AWS's sample repository and the Docker image the README cites, and a sample's file by name
    "tonistiigi/binfmt", "aws-batch-distributed-training-p6.yaml",
    # the object each job writes beside its logs in the results bucket
    "record.json",
    # a cloud assembly's file (cdk.out), written by synth
    "manifest.json",
    # the name the README says the CDK constructs' package does NOT have
    "constructs/",
}
GENERATED = {"reports/demo-report.html"}  # made by `make demo` and not committed: there only after a demo

CIDR = re.compile(r"^[0-9a-f.:]*/\d+$")  # 0.0.0.0/0, ::/0: address ranges in security-group rules
PATTERN = re.compile(r"[<>*{}]|\.\.\.")  # a key or path pattern (results/<run>/..., /fsx/data/*), not one path
DOTTED = re.compile(r"^(rackform|workloads|stacks|cdk_constructs)(\.\w+)+$")
PATHLIKE = re.compile(r"^[\w.-]+(/[\w.-]*)+$|^[\w-]+\.(py|md|json|yaml|yml|toml|txt|png|j2|Dockerfile)$")


def references(text: str) -> list[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # fenced blocks: shell sessions and output
    spans = re.findall(r"`([^`\n]+)`", text)
    links = [t for t in re.findall(r"\]\(([^)\s#]+)[^)]*\)", text) if not re.match(r"\w+:", t)]
    words = [w for span in spans for w in span.split()] + links
    return [w for w in words if (PATHLIKE.match(w) or DOTTED.match(w)) and not w.startswith("/")]


def checked(word: str) -> bool:
    return word not in NOT_REPOSITORY_PATHS | GENERATED and not CIDR.match(word) and not PATTERN.search(word)


def exists(word: str) -> bool:
    if DOTTED.match(word):
        return importable(word)
    path = word.rstrip("/")
    if any((ROOT / base / path).exists() for base in BASES):
        return True
    return "/" not in path and any(next((ROOT / folder).rglob(path), None) for folder in FOLDERS)


def importable(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_docs_name_paths_at_all():
    # the scanner finds what it is meant to check: a regexp gone wrong would make the test below pass empty
    found = {w for doc in DOCS for w in references(doc.read_text())}
    assert {"rackform/aws.py", "docs/architecture.md", "rackform.pipeline", "examples/"} <= found


def test_the_allow_list_holds_no_repository_path():
    # an entry that exists was a path after all, or became one: check it instead
    assert [w for w in NOT_REPOSITORY_PATHS if (ROOT / w.rstrip("/")).exists()] == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_and_module_the_docs_name_exists(doc: Path):
    missing = sorted({w for w in references(doc.read_text()) if checked(w) and not exists(w)})
    assert missing == [], f"{doc.relative_to(ROOT)} names what is not in the repository"
