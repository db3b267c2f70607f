"""Fixtures the submission tests share: the example spec's plan, deployed to moto (tests/conftest.py builds both)."""

from __future__ import annotations

from typing import Any

import pytest

from rackform.plan.models import Plan


@pytest.fixture
def plan(example_plan: Plan) -> Plan:
    return example_plan


@pytest.fixture
def aws(example_deployed: dict[str, Any]) -> dict[str, Any]:
    return example_deployed
