from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rackform.reference.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "trn2-capacity-block.yaml"


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(scope="session")
def demo_assembly(tmp_path_factory) -> Path:
    """examples/demo.yaml synthesized once per session: the embedded AWS takes its job roles' policies from it."""
    from rackform.cli import checked_plan
    from stacks import build_app

    out = tmp_path_factory.mktemp("demo-assembly")
    build_app(checked_plan(str(ROOT / "examples" / "demo.yaml")), outdir=str(out)).synth()
    return out


@pytest.fixture
def demo() -> dict[str, Any]:
    """The example spec as plain data, for tests to break one field at a time."""
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """`rackform ARGV` in-process: (exit code, stdout, stderr). argparse's usage errors and --help exit through
    SystemExit; its code is the exit code. A traceback, on either stream, is never an answer to a user."""
    from rackform.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def dump(tmp_path: Path, data: Any, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


# --- counts the gate, fuzz and fault tests report ----------------------------------------------------------------
# Printed in the terminal summary of every run (`make test` included): under pytest-xdist a worker's stdout never
# reaches the terminal, but a report's user_properties do.
REPORT_KEY = "rackform-report"


@pytest.fixture
def gate_report(record_property):
    """`gate_report("fuzz", "2000 specs tried, ...")`: a line for the terminal summary, under its heading."""
    def add(heading: str, line: str) -> None:
        record_property(REPORT_KEY, f"{heading}: {line}")
    return add


def pytest_terminal_summary(terminalreporter):
    lines = [value for reports in terminalreporter.stats.values() for rep in reports
             if getattr(rep, "when", None) == "call"
             for key, value in getattr(rep, "user_properties", ()) if key == REPORT_KEY]
    if lines:
        terminalreporter.section("rackform gates, fuzz and faults")
        for line in lines:
            terminalreporter.write_line(line)
