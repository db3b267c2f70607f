"""Validation rules: pure functions of (spec, catalog), or of a workload, in one table, like cdk-nag's packs.

One module per area; each holds its rules and its `RULES`. Every rule yields Problems that name the field path, the
bad value and what would be valid. Rules never raise on a bad input and never stop each other: `validate_spec` and
`validate_workload` run them all and return every problem at once.
"""

from __future__ import annotations

from ..reference.catalog import Catalog
from ..spec.models import Spec
from ..spec.problems import Problem
from ..spec.workload import Workload
from . import capacity, efa, healing, instances, limits, names, network, storage, workload
from .core import Rule, SpecRule, WorkloadRule

__all__ = ["RULES", "WORKLOAD_RULES", "Rule", "validate_spec", "validate_workload"]

RULES: tuple[SpecRule, ...] = (*instances.RULES, *names.RULES, *efa.RULES, *capacity.RULES, *storage.RULES,
                               *network.RULES, *limits.RULES, *healing.RULES)
WORKLOAD_RULES: tuple[WorkloadRule, ...] = workload.RULES


def validate_spec(spec: Spec, catalog: Catalog, lines: dict[str, int] | None = None) -> list[Problem]:
    lines = lines or {}
    problems = []
    for rule in RULES:
        for path, message in rule.check(spec, catalog):
            line = lines.get(path) or lines.get(path.rsplit(".", 1)[0])
            problems.append(Problem(rule.level, path, message, rule=rule.id, line=line))
    return problems


def validate_workload(w: Workload, lines: dict[str, int] | None = None) -> list[Problem]:
    lines = lines or {}
    return [Problem(rule.level, path, message, rule=rule.id, line=lines.get(path))
            for rule in WORKLOAD_RULES for path, message in rule.check(w)]
