from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rackform.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "trn2-capacity-block.yaml"


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture
def demo() -> dict[str, Any]:
    """The example spec as plain data, for tests to break one field at a time."""
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def dump(tmp_path: Path, data: Any, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path
