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
from .spec.models import Spec, load_spec
from .spec.problems import Problem, SpecError, errors
from .validate.rules import validate_spec


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
