"""Spec file -> validated plan: the one path every entry point takes (the CLI, app.py, scripts/demo.py, tests).

Each step is a pure module (spec, validate, plan); this module only chains them and loads the bundled data, so
`app.py` and `rackform synth` cannot drift apart in how a spec becomes a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .plan.models import Plan, build_plan
from .reference.catalog import Catalog, load_catalog
from .reference.prices import PriceBook, load_prices
from .spec.models import Spec, load_spec, read_document
from .spec.problems import Problem, SpecError, errors
from .spec.workload import Workload, workload_from_data
from .spec.yamlsafe import load_yaml
from .validate import validate_spec, validate_workload


@dataclass(frozen=True)
class Checked:
    spec: Spec
    lines: dict[str, int]
    catalog: Catalog
    problems: list[Problem]  # warnings only: errors raise

    def plan(self, prices: PriceBook | None = None) -> Plan:
        """The plan, priced from `prices` (default: the bundled snapshot)."""
        return build_plan(self.spec, self.catalog, load_prices() if prices is None else prices)


def check(path: str | Path, catalog: Catalog | None = None) -> Checked:
    """Load and validate; every error in one SpecError, warnings kept for the caller to show."""
    spec, lines = load_spec(path)
    catalog = catalog or load_catalog()
    problems = validate_spec(spec, catalog, lines)
    if errors(problems):
        raise SpecError(problems)
    return Checked(spec, lines, catalog, problems)


def load_plan(path: str | Path, *, catalog: Catalog | None = None, prices: PriceBook | None = None) -> Plan:
    return check(path, catalog).plan(prices)


def parse_workload(data: object, lines: dict[str, int] | None = None) -> Workload:
    """A workload from its data: the schema, then every rule across fields (one SpecError with all problems)."""
    workload = workload_from_data(data, lines)
    if problems := validate_workload(workload, lines):
        raise SpecError(problems)
    return workload


def load_workload(path: str | Path) -> Workload:
    data, lines = load_yaml(read_document(path, "workload", "examples/workloads/"), str(path))
    return parse_workload(data, lines)
