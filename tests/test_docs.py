"""Docs that stay true: every repository path and module that README.md and docs/ name exists.

A reference is an inline code span (`rackform/plan/models.py`, `scripts/`, `rackform.pipeline`,
`workloads.contract.NODE_IDENTITY_FILE`). A path counts when it exists from the
repository root, or, for the short names of a layout tree (`plan/`, `refresh.py`), under one of the repository's
packages; a dotted name counts when its module imports and the rest of the name is an attribute of it. Commands in
code spans (`rackform validate examples/demo.yaml`) have their path-like words checked. Patterns (`<run>`, `*`)
and paths outside the repository (absolute ones: on a node, in a container) are not checked;
NOT_REPOSITORY_PATHS names the rest, each with why.

Links and their anchors resolve from the linking file's own folder, as on GitHub. docs/reference.md is held to the
code: the spec fields to the schema, the command table to the parser, the exit codes to EXIT_CODES; and every
`rackform ...` line in any doc names a command and options the parser has.
"""
from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

# Where a layout tree's short names live: `cli/` under rackform/, `reference/refresh.py` under rackform/,
# `demo.yaml` under examples/; a bare file name (`expected.json`) anywhere below these folders.
FOLDERS = ["rackform", "workloads", "stacks", "cdk_constructs", "scripts", "tests", "examples", "docs"]
BASES = ["", *FOLDERS, *(f"rackform/{p.name}" for p in sorted((ROOT / "rackform").iterdir()) if p.is_dir())]

# Words that look like paths but name nothing in this repository, each with why.
NOT_REPOSITORY_PATHS = {
    # keys in the results bucket (workloads/layout.py spells them), not files here
    "results/", "_claims/", "_jobs/", "_placements/", "_workloads/", "Records/", "workloads/*",
    # units and NCCL's transport names in tool output
    "MB/sec", "NET/IB", "NET/Socket", "NET/AWS", "Libfabric/0",
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
    spans = re.findall(r"`([^`\n]+)`", text)  # links are read from their own file's folder: broken_links below
    words = [w for span in spans for w in span.split()]
    return [w for w in words if (PATHLIKE.match(w) or DOTTED.match(w)) and not w.startswith("/")]


def checked(word: str) -> bool:
    # below an allow-listed folder that is no repository path (results/ in the bucket) nothing is one either
    allowed = NOT_REPOSITORY_PATHS | GENERATED
    below = any(word.startswith(w) for w in allowed if w.endswith("/"))
    return word not in allowed and not below and not CIDR.match(word) and not PATTERN.search(word)


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


# --- links resolve as a reader's browser resolves them: from the folder of the file that holds them

HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but hyphens dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M)
    return {anchor(h) for h in HEADING.findall(text)}


def links(text: str) -> list[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"\w+:", t)]


def broken_links(doc: Path) -> list[str]:
    broken = []
    for link in links(doc.read_text()):
        path, _, fragment = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        if not target.exists() or (fragment and target.suffix == ".md" and fragment not in anchors(target)):
            broken.append(link)
    return broken


def test_a_link_is_read_from_its_own_folder(tmp_path: Path):
    # the check below is not the repository-wide one above: docs/x.md linking docs/y.md is broken on GitHub
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "y.md").write_text("# Y\n\n## Some Part: `a` (b)\n")
    doc = tmp_path / "docs" / "x.md"
    doc.write_text("[y](docs/y.md) [y](y.md) [part](y.md#some-part-a-b) [gone](y.md#other) [self](#nothing)\n")
    assert broken_links(doc) == ["docs/y.md", "y.md#other", "#nothing"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(doc: Path):
    assert broken_links(doc) == [], f"{doc.relative_to(ROOT)} links to what is not there"


# --- the reference is the code's: fields from the schema, commands and options from the parser, exit codes

REFERENCE = ROOT / "docs" / "reference.md"


def section(doc: Path, heading: str) -> str:
    text = doc.read_text()
    start = text.index(f"\n{heading}\n")
    level = heading.split()[0]
    end = re.search(rf"^{level} ", text[start + len(heading) + 2:], re.M)
    return text[start:start + len(heading) + 2 + end.start()] if end else text[start:]


def schema_paths(node: object, defs: dict, prefix: str = "") -> set[str]:
    """Every field path of a JSON Schema (`racks.node_groups.capacity.type`), each alternative of a union."""
    if not isinstance(node, dict):
        return set()
    if "$ref" in node:
        return schema_paths(defs[node["$ref"].rsplit("/", 1)[1]], defs, prefix)
    paths = set()
    for name, sub in node.get("properties", {}).items():
        paths |= {f"{prefix}{name}"} | schema_paths(sub, defs, f"{prefix}{name}.")
    for key in ("items", "additionalProperties"):
        paths |= schema_paths(node.get(key), defs, prefix)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            paths |= schema_paths(sub, defs, prefix)
    return paths


def yaml_paths(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, list):
        return {p for item in value for p in yaml_paths(item, prefix)}
    if not isinstance(value, dict):
        return set()
    return {p for k, v in value.items() for p in {f"{prefix}{k}"} | yaml_paths(v, f"{prefix}{k}.")}


def test_the_reference_spec_holds_every_field_of_the_schema_and_no_other():
    from rackform.spec.models import Spec

    schema = Spec.model_json_schema()
    fields = schema_paths(schema, schema.get("$defs", {}))
    example = re.search(r"```yaml\n(.*?)```", section(REFERENCE, "## The spec"), re.S)[1]
    assert yaml_paths(yaml.safe_load(example)) - fields == set(), "the reference's spec has fields the schema does not"
    assert {f.rsplit(".", 1)[-1] for f in fields} - shown(example) == set(), \
        "the schema has fields the reference's spec lacks"


def shown(example: str) -> set[str]:
    """The field names a YAML example shows: its keys, and those a comment gives where a field cannot sit beside the
    others (a union's other alternative, an HDD-only setting: `{name: existing-group}`, `drive_cache_type: READ`)."""
    commented = set(re.findall(r"(\w+):", " ".join(re.findall(r"#(.*)", example))))
    return {p.rsplit(".", 1)[-1] for p in yaml_paths(yaml.safe_load(example))} | commented


def test_the_allocation_workload_loads_and_shows_every_field_of_the_schema():
    from rackform.pipeline import parse_workload
    from rackform.spec.workload import json_schema

    example = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "allocation.md").read_text(), re.S)[1]
    parse_workload(yaml.safe_load(example))  # a field the models do not have is refused (extra="forbid")
    schema = json_schema()
    fields = {f.rsplit(".", 1)[-1] for f in schema_paths(schema, schema.get("$defs", {}))}
    assert fields - shown(example) == set(), "the workload schema has fields docs/allocation.md's example lacks"


def test_the_reference_lists_every_command():
    table = section(REFERENCE, "## Commands")
    assert set(re.findall(r"^\| `([\w-]+)` \|", table, re.M)) == set(subcommands()) - {""}


def test_the_reference_gives_the_exit_codes_of_the_code():
    from rackform.cli.common import EXIT_CODES

    table = section(REFERENCE, "## Exit codes")
    assert {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)} == set(EXIT_CODES)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    from rackform.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **action.choices}


def command_lines(text: str) -> list[str]:
    """Each `rackform ...` invocation in code: fenced shell lines and inline spans, to a comment, pipe or `&&`."""
    fenced = re.findall(r"^```(?:sh|bash)\n(.*?)^```", text, flags=re.S | re.M)
    spans = re.findall(r"`([^`]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    code = [line.split(" #")[0] for block in fenced for line in block.splitlines()] + [" ".join(s.split())
                                                                                      for s in spans]
    parts = [p for line in code for p in re.split(r"&&|\||;|\)", line)]
    return [m[0] for p in parts if (m := re.search(r"\brackform(?: +[^\s]+)+", p))]


def unknown_options(line: str, commands: dict[str, argparse.ArgumentParser]) -> list[str]:
    words = line.split()[1:]
    name = "" if words[0].startswith("-") else words[0]
    if name.isupper() or PATTERN.search(name):  # `rackform COMMAND --help`, `rackform ...`: placeholders
        return []
    if name not in commands:
        return [name]
    options = [w.strip("[]").split("=")[0] for w in words if re.match(r"\[?--?[a-z]", w)]
    return [o for o in options if o not in commands[name]._option_string_actions]


def test_a_misspelt_command_or_option_is_caught():
    commands = subcommands()
    assert unknown_options("rackform status $RUN --wait --timeout 60", commands) == []
    assert unknown_options("rackform statuss $RUN", commands) == ["statuss"]
    assert unknown_options("rackform report RUN [--baseline RUN] [--html=x] [--colour]", commands) == ["--colour"]
    assert command_lines("a `rackform plan\nx.yaml --against y.yaml` b\n```sh\nrackform runs # rackform nope\n```\n") \
        == ["rackform runs", "rackform plan x.yaml --against y.yaml"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_line_the_docs_show_exists(doc: Path):
    commands = subcommands()
    wrong = {line: bad for line in command_lines(doc.read_text()) if (bad := unknown_options(line, commands))}
    assert wrong == {}, f"{doc.relative_to(ROOT)} shows commands or options rackform does not have"


# --- decision records: what the code points at exists, and the index lists every record

DECISIONS = ROOT / "docs" / "decisions"
POINTER = re.compile(r"docs/decisions/[\w.-]+\.md")


def pointers() -> dict[str, list[str]]:
    folders = ("rackform", "workloads", "stacks", "cdk_constructs")
    code = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    found = {str(p.relative_to(ROOT)): POINTER.findall(p.read_text()) for p in [*code, ROOT / "app.py"]}
    return {path: names for path, names in found.items() if names}


def test_the_code_points_at_decision_records_at_all():
    # the scan finds the pointers: a pattern gone wrong would make the test below pass empty
    assert len({name for names in pointers().values() for name in names}) >= 10


def test_every_decision_pointer_in_the_code_names_a_record():
    missing = {path: [n for n in names if not (ROOT / n).is_file()] for path, names in pointers().items()}
    assert {path: names for path, names in missing.items() if names} == {}


def test_the_decisions_index_lists_every_record():
    records = {p.name for p in DECISIONS.glob("[0-9][0-9][0-9][0-9]-*.md")}
    assert records, "no decision records found"
    assert set(links((DECISIONS / "README.md").read_text())) == records


# --- docs/architecture.md draws the tree as it is and states the contracts .importlinter holds

ARCHITECTURE = ROOT / "docs" / "architecture.md"


def importlinter(contract: str, key: str) -> list[str]:
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    return config[f"importlinter:contract:{contract}"][key].split("\n")


def numbered_rule(n: int) -> str:
    rule = re.search(rf"^{n}\. (.*?)(?=^\d+\. |^\S|\Z)", section(ARCHITECTURE, "## The dependency rule"), re.S | re.M)
    return " ".join(rule[1].split())


def test_the_diagram_names_every_package_and_root_module_of_rackform():
    diagram = re.search(r"```\n(.*?)```", section(ARCHITECTURE, "## Packages and data flow"), re.S)[1]
    parts = {f"{p.name}/" if p.is_dir() else p.name for p in (ROOT / "rackform").iterdir()
             if (p / "__init__.py").is_file() or (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))}
    assert sorted(p for p in parts if not re.search(rf"(?<![\w/]){re.escape(p)}", diagram)) == []


def test_the_layers_are_those_importlinter_checks():
    layers = [set(re.findall(r"`(\w+)`", layer)) for layer in numbered_rule(5).split(":", 1)[1].split("->")]
    checked = importlinter("rackform-layers", "layers")
    assert layers == [{m.strip() for m in line.split("|")} for line in checked if line]


def test_output_has_the_one_home_importlinter_checks():
    named = set(re.findall(r"`(\w+)`", numbered_rule(7).split("import neither")[0]))
    assert named == {m.removeprefix("rackform.") for m in importlinter("output-has-one-home", "source_modules") if m}


def test_the_readme_map_links_every_docs_page():
    # a page nobody links is a page a newcomer never finds
    mapped = {(ROOT / link).resolve() for link in links(section(ROOT / "README.md", "## Documentation"))}
    pages = {p.resolve() for p in [*(ROOT / "docs").glob("*.md"), DECISIONS / "README.md"]}
    assert sorted(str(p.relative_to(ROOT)) for p in pages - mapped) == []


def test_the_offline_quickstart_runs_line_by_line(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch):
    # README's first block needs no account: each line succeeds as written, from the repository root. synth is left
    # to tests/stacks (it is the same pipeline, and costs seconds of the CDK).
    from tests.conftest import run_cli

    monkeypatch.chdir(ROOT)
    block = re.search(r"```sh\n(.*?)```", section(ROOT / "README.md", "## Quickstart"), re.S)[1]
    lines = [shlex.split(line.split(" #")[0]) for line in block.splitlines() if line.startswith("rackform ")]
    assert {words[1] for words in lines} >= {"validate", "cost", "plan"}
    ran = {" ".join(words): run_cli(capsys, *words[1:])[0] for words in lines if words[1] != "synth"}
    assert ran == {line: 0 for line in ran}


def test_every_quickstart_line_parses_and_names_files_that_exist():
    # README's quickstart as a newcomer pastes it on a fresh clone after `make setup`, which puts nothing on the
    # shell's PATH: the block first makes `rackform` and `cdk` found. Then each `rackform` line of both blocks and
    # the prose parses with the CLI's own parser (a missing argument fails here, not only an unknown option), with
    # $RUN a run id and my-spec.yaml the copy of an example the README says to make; a glob names files, and every
    # spec or workload a line reads exists. Running them is the tests of each command (and make demo-serve).
    from rackform.cli import build_parser

    quickstart = section(ROOT / "README.md", "## Quickstart")
    shell = [line.split(" #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", quickstart, re.S)
             for line in block.splitlines()]
    first = next(i for i, line in enumerate(shell) if "rackform " in line)
    assert any(re.fullmatch(r"export PATH=\$PWD/\.venv/bin:\$PWD/node_modules/\.bin:\$PATH", line)
               for line in shell[:first])
    parser, parsed = build_parser(), []
    for line in command_lines(quickstart):
        words = [w.replace("$RUN", "r1") for w in shlex.split(line)[1:]]
        if words[0].isupper():  # `rackform COMMAND --help`
            continue
        words = [w for word in words for w in (sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(word))
                                               if PATTERN.search(word) else [word])]
        words = ["examples/demo.yaml" if w == "my-spec.yaml" else w for w in words]
        try:
            args = parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"README quickstart: `{line}` does not parse")
        read = [v for k, v in vars(args).items() if k != "html" for v in (v if isinstance(v, list) else [v])
                if isinstance(v, str) and v.endswith((".yaml", ".yml"))]
        assert [f for f in read if not (ROOT / f).is_file()] == [], line
        parsed.append(words[0])
    assert {"validate", "cost", "plan", "synth", "preflight", "submit", "status", "report", "place", "run"} <= \
        set(parsed)
