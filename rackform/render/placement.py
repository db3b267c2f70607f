"""How `rackform place` and `run` explain a decision: every candidate ranked, with why each was or was not chosen,
its constraint verdicts, start estimate and basis, price basis and cost per unit of work."""

from __future__ import annotations

from ..numbers import usd as price
from ..placement import Decision, PlacementCandidate, duration_text, figure_text
from ..spec.workload import WORK_UNIT


def _verdict(d: Decision, c: PlacementCandidate) -> str:
    if c.refused:
        return f"refused: {c.refused}"
    if c is d.chosen:
        return "chosen" + (" (spill-over)" if d.outcome == "spilled" else "")
    if c is d.preferred:
        return "preferred, over max_wait"
    return "ranked lower"


def _per_unit(c: PlacementCandidate) -> str:
    if c.usd_per_unit is None:
        return "unknown"
    # Per million units: a token or a sysbench event costs fractions of a cent.
    return f"{c.usd_per_unit * 1e6:,.4g}" + ("+" if c.cost_is_lower_bound else "")


def explain_rows(d: Decision) -> tuple[list[list[str]], list[str]]:
    """The candidates as a table: rank, where, figure, $/hour, backlog, start, cost, $ per million units of work,
    and why each was or was not chosen."""
    rows = []
    for i, c in enumerate(d.candidates, 1):
        usd, cost = price(c.usd_per_hour), price(c.expected_cost_usd)  # the one price rule of every command
        backlog = "unknown" if c.backlog_vcpus is None else f"{c.backlog_vcpus}/{c.max_vcpus}"
        if cost != "unknown" and c.cost_is_lower_bound:
            cost = f">= {cost}"
        rows.append([str(i), c.where, c.tier, c.instance_type, figure_text(c), usd, backlog,
                     duration_text(c.wait_s), cost, _per_unit(c), "; ".join((_verdict(d, c), *c.notes))])
    unit = WORK_UNIT.get(d.workload_class, "units")
    return rows, ["#", "rack/node group", "tier", "instance", "per $ (jobs, spread)", "$/hour", "vCPUs queued",
                  "starts in", "cost $", f"$ per 1M {unit}", "why"]


def explain_details(d: Decision) -> list[str]:
    """Per candidate, the evidence behind its row: each constraint's verdict, how its start and its price were
    reckoned, the reclaim arithmetic on Spot; then the decision's warnings."""
    lines: list[str] = []
    for i, c in enumerate(d.candidates, 1):
        lines.append(f"{i}. {c.where} [{c.tier}, {c.capacity}]")
        lines += [f"   {v}" for v in c.verdicts]
        lines.append(f"   start: {c.start_basis or 'not estimated'}")
        cost = ("" if c.expected_cost_usd is None else
                f"; expected cost ${c.expected_cost_usd:,.2f}" + (
                    " (a lower bound: the workload states no utilization, or a reclaim cost is unknown)"
                    if c.cost_is_lower_bound else ""))
        lines.append(f"   price: {c.price_basis or 'unknown'}{cost}")
        if c.run_s is not None:
            lines.append(f"   runs about {duration_text(c.run_s)}")
        if c.p99_latency_ms is not None:
            lines.append(f"   measured p99 latency {c.p99_latency_ms:,.4g} ms")
        if c.interruption:
            lines.append(f"   Spot: {c.interruption}")
    lines += [f"warning: {w}" for w in d.warnings]
    return lines
