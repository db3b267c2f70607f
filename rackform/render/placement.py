"""How `rackform place` and `run` explain a decision: every candidate ranked, with why each was or was not chosen."""

from __future__ import annotations

from ..numbers import usd as price
from ..placement import Decision, duration_text, figure_text


def explain_rows(d: Decision) -> tuple[list[list[str]], list[str]]:
    """The candidates as a table: rank, where, figure, $/hour, backlog, wait, cost, and why each was or was not
    chosen."""
    rows = []
    for i, c in enumerate(d.candidates, 1):
        if c.refused:
            verdict = f"refused: {c.refused}"
        elif c is d.chosen:
            verdict = "chosen" + (" (spill-over)" if d.outcome == "spilled" else "")
        elif c is d.preferred:
            verdict = "preferred, over max_wait"
        else:
            verdict = "ranked lower"
        usd, cost = price(c.usd_per_hour), price(c.expected_cost_usd)  # the one price rule of every command
        backlog = "unknown" if c.backlog_vcpus is None else f"{c.backlog_vcpus}/{c.max_vcpus}"
        rows.append([str(i), c.where, c.tier, c.instance_type, figure_text(c), usd, backlog,
                     duration_text(c.wait_s), cost, "; ".join((verdict, *c.notes))])
    return rows, ["#", "rack/node group", "tier", "instance", "per $", "$/hour", "vCPUs queued", "wait",
                  "cost $", "why"]
