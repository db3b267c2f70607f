"""The dependency rule, enforced: import-linter's contracts in .importlinter (in-job package stands alone, the core
never imports the CDK layer, layers, no import cycles; inside rackform: its packages layered, the pure core calling
no AWS, output only from render/ and cli/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "7 kept, 0 broken" in proc.stdout


def test_the_job_image_copies_only_the_in_job_package():
    # The images build with workloads/ as their context (cdk_constructs/jobs.py) and copy that context alone.
    jobs = (ROOT / "cdk_constructs" / "jobs.py").read_text()
    assert 'WORKLOADS_DIR = Path(__file__).resolve().parents[1] / "workloads"' in jobs
    for dockerfile in (ROOT / "workloads" / "docker").glob("*.Dockerfile"):
        copies = [line.split()[1:-1] for line in dockerfile.read_text().splitlines()
                  if line.strip().upper().startswith("COPY") and "--from" not in line]
        assert copies and all(sources == ["."] for sources in copies), (dockerfile.name, copies)


def test_a_plain_install_brings_no_aws_sdk_cdk_torch_or_plots():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    heavy = ("boto3", "botocore", "aws-cdk-lib", "constructs", "torch", "matplotlib", "jinja2")
    assert not [d for d in project["dependencies"] if d.split(">")[0].split("=")[0].split("<")[0] in heavy]
    extras = project["optional-dependencies"]
    assert {"aws", "cdk", "bench", "report"} <= set(extras)
    assert any(d.startswith("aws-cdk-lib") for d in extras["cdk"]) and any(d.startswith("torch") for d in extras["bench"])


def _class_names(package: str) -> dict[str, list[str]]:
    import ast

    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_class_has_one_name_across_both_programs():
    # A name read in a traceback, a grep or a review means one thing: two `Figure`s or two `Capacity`s did not.
    names: dict[str, list[str]] = {}
    for package in ("rackform", "workloads"):
        for name, paths in _class_names(package).items():
            names.setdefault(name, []).extend(paths)
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}


def test_the_operator_package_root_holds_at_most_eight_modules():
    # Everything else lives in a package named for its concern (docs/architecture.md draws them).
    assert len(list((ROOT / "rackform").glob("*.py"))) <= 8


def test_tests_are_grouped_like_the_source():
    # tests/<folder>/ mirrors a package of the source; a test of a root module stays at tests/'s root.
    sources = {p.name for p in (ROOT / "rackform").iterdir() if (p / "__init__.py").is_file()}
    sources |= {"workloads", "stacks"}
    folders = {p.name for p in (ROOT / "tests").iterdir() if (p / "__init__.py").is_file()}
    assert folders <= sources, folders - sources
    assert all((ROOT / "tests" / folder / "__init__.py").is_file() for folder in folders)


def _pure_core_files() -> list[Path]:
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    modules = config["importlinter:contract:pure-core"]["source_modules"].split()
    files: list[Path] = []
    for module in modules:
        path = ROOT.joinpath(*module.split("."))
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return files


def test_the_pure_core_is_handed_no_aws_client():
    # import-linter sees imports only: a module handed a boto3 client calls AWS without importing boto3 (prices.py
    # once paged the Price List and Spot history so). Paging and client Protocols belong to aws.py and the fetchers.
    import ast

    files = _pure_core_files()
    assert ROOT / "rackform" / "reference" / "prices.py" in files and len(files) > 20
    calls = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("get_paginator", "paginate"):
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Name) and node.id.endswith("Client"):
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.id}")
    assert calls == []


def test_no_test_module_imports_another():
    # What tests share lives in a conftest.py (fixtures) or a helper module (tests/records.py): a test module that
    # imports another runs that module's fixtures under a second name and breaks when its neighbour is moved.
    import ast

    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] + [f"{node.module or ''}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            if any(m.rsplit(".", 1)[-1].startswith("test_") for m in modules):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(list((ROOT / "tests").rglob("test_*.py"))) > 40 and found == []


def test_reference_and_preflight_are_pure_but_for_the_one_module_that_reads_aws():
    # The pure-core contract lists these packages module by module (a package would bring its reader in): a module
    # added beside them is pure unless it is made the reader.
    readers = {ROOT / "rackform" / "reference" / "refresh.py", ROOT / "rackform" / "preflight" / "fetch.py"}
    modules = {p for package in ("reference", "preflight") for p in (ROOT / "rackform" / package).glob("*.py")
               if p.name != "__init__.py"}
    assert readers <= modules and modules - readers - set(_pure_core_files()) == set()


def test_no_module_is_imported_by_name_at_run_time():
    # An import of our own code written as a string (importlib, __import__) is an edge import-linter cannot see: a
    # cycle hidden that way is still a cycle. The in-job package chooses its runner in workloads/job.py instead.
    # (torchbench imports torch_xla, a third party's optional module, by name: that is no edge of ours.)
    import re

    own = re.compile(r"""(import_module|__import__)\(\s*(f?["'](\.|rackform|workloads|stacks|cdk_constructs)|__)""")
    for package in ("rackform", "workloads", "stacks", "cdk_constructs"):
        for path in (ROOT / package).rglob("*.py"):
            assert not own.search(path.read_text()), path
