"""Plain-text tables for the terminal."""

from __future__ import annotations

from typing import Any

from ..textsafe import visible


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[visible(c) for c in r] for r in rows]  # a cell never moves the cursor or breaks a line
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    right = [all(str(r[i]).replace(",", "").isdigit() for r in rows) for i in range(len(header))] if rows else []
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if right and right[i] and k else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
