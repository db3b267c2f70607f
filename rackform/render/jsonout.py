"""JSON for --json: never NaN or Infinity, which strict parsers refuse."""

from __future__ import annotations

import json
import math


def finite(data: object) -> object:
    """`data` with every NaN and infinity replaced by None: JSON has no NaN, and `NaN` breaks strict parsers."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


def json_text(data: object) -> str:
    """allow_nan=False is the guard if `finite` ever misses one."""
    return json.dumps(finite(data), indent=2, allow_nan=False)
