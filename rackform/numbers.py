"""How every command writes numbers and prices: one rule each, so a figure reads the same in plan, cost, report and
advise. Units go in column headers, not in cells."""

from __future__ import annotations

import math

UNKNOWN = "unknown"


def num(value: float | None) -> str:
    """Three significant figures at least: whole numbers with thousands separators from 100 up, two decimals from
    1, three significant figures below (0.02 stays 0.02, 0.000123 stays 0.000123); None is unknown."""
    if value is None:
        return UNKNOWN
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def pct(value: float | None) -> str:
    """A percentage by the same rule as num(): 0.02% is `0.02%`, never `0.0%`."""
    return UNKNOWN if value is None else f"{num(value)}%"


def usd(value: float | None) -> str:
    """Dollars without the sign (the header says $/hour): cents from $1 up; below, up to four decimals and at least
    two, so m7g.xlarge's 0.1632 does not read as 0.16 and 0.045 does not read as 0.05."""
    if value is None:
        return UNKNOWN
    if abs(value) >= 1:
        return f"{value:,.2f}"
    s = f"{value:.4f}".rstrip("0")
    return s + "0" * (2 - len(s.partition(".")[2]))
