"""`rackform cost`'s output: the cost table and its JSON, from the pure cost report (rackform/plan/cost.py)."""

from __future__ import annotations

from typing import Any

from ..numbers import usd
from ..plan.cost import HOURS_PER_MONTH, CostReport, Line, Sum, Verdict, add
from .text import table, wrap


def _month(x: float | None) -> str:
    return "unknown" if x is None else f"{x * HOURS_PER_MONTH:,.2f}"


def _bounded(s: Sum, month: bool = False) -> str:
    fmt = _month if month else usd
    if not s.unknown:
        return fmt(s.known_usd_per_hour)
    return "unknown" if s.known_usd_per_hour == 0 else f"≥ {fmt(s.known_usd_per_hour)}"


def render_cost(report: CostReport, verdict: Verdict | None = None) -> str:
    groups = [ln for ln in report.lines if ln.category == "instances"]
    header = ["rack/node group", "instance", "count", "capacity", "$/h each", "$/hour", "$/month", "price"]
    rows = [[ln.name, ln.instance_type or "", str(ln.count), ln.capacity or "", usd(ln.usd_per_hour_each),
             usd(ln.usd_per_hour), _month(ln.usd_per_hour),
             ln.source if ln.usd_per_hour is not None else "unknown (give --price)"] for ln in groups]
    items = [ln for ln in report.lines if ln.category != "instances"]
    item_header = ["part", "item", "$/hour", "$/month", "price"]
    item_rows = [[ln.category, ln.name, usd(ln.usd_per_hour), _month(ln.usd_per_hour),
                  ln.source if ln.usd_per_hour is not None else "unknown (see below)"] for ln in items]
    total = report.of()
    idle = add([*(ln for ln in report.lines if ln.category != "instances"), *report.warm])
    parts = ", ".join(f"{c} {_bounded(report.of(c))}" for c in ("instances", "storage", "network"))
    ec2 = (f"{report.ec2_prices.label} snapshot of {report.ec2_prices.as_of}" if report.ec2_prices
           else f"none for {report.region} in the snapshot")
    for seed in report.ec2_seed_prices:
        ec2 += f", then {seed.label} snapshot of {seed.as_of} for types it lacks"
    lines = [
        f"cost {report.name}: {report.region} / {report.availability_zone}  ({HOURS_PER_MONTH} h/month; "
        f"EC2 on-demand prices: {ec2})",
        "",
        table(rows, header),
        "",
        table(item_rows, item_header),
        "",
        "racks    " + "; ".join(f"{r} {_bounded(report.of(rack=r))} $/h" for r in report.racks()),
        f"total    {_bounded(total)} $/hour, {_bounded(total, month=True)} $/month with every node running all "
        f"month  ({parts})",
    ]
    lines += [f"warm     {w.name}: {w.count} x {usd(w.usd_per_hour_each)} $/h x {HOURS_PER_MONTH} h = "
              f"{_month(w.usd_per_hour)} $/month, always on (min_count {w.count})" for w in report.warm]
    # Compute environments scale to zero between jobs, down to the warm nodes: what an idle cluster still costs.
    lines.append(f"idle     {_bounded(idle)} $/hour, {_bounded(idle, month=True)} $/month with "
                 + ("no job running (storage, network and the warm nodes)" if report.warm else
                    "no node running (storage and network only)"))
    lines += [f"unknown  {ln.name}: {ln.source}" for ln in total.unknown]
    lines += [f"included: {note}" for note in report.included]
    lines.append("not included: " + "; ".join(report.not_included))
    if verdict is not None:
        lines.append(f"budget   {verdict.message}")
    return wrap("\n".join(lines))  # prose folded to the terminal, as the tables fit it


def _line_json(ln: Line) -> dict[str, Any]:
    known = ln.usd_per_hour is not None
    out: dict[str, Any] = {"name": ln.name}
    if ln.category == "instances":
        out.update(rack=ln.rack, instance_type=ln.instance_type, count=ln.count, capacity=ln.capacity,
                   usd_per_hour_each=ln.usd_per_hour_each)
    out.update(usd_per_hour=ln.usd_per_hour,
               usd_per_month=None if ln.usd_per_hour is None else round(ln.usd_per_hour * HOURS_PER_MONTH, 6),
               price_source=ln.source if known else None, unknown=None if known else ln.source)
    return out


def report_json(report: CostReport, verdict: Verdict | None = None) -> dict[str, Any]:
    total = report.of()
    out: dict[str, Any] = {
        "name": report.name, "region": report.region, "availability_zone": report.availability_zone,
        "hours_per_month": HOURS_PER_MONTH,
        "ec2_prices": None if report.ec2_prices is None else {"source": report.ec2_prices.source,
                                                              "as_of": report.ec2_prices.as_of},
        "ec2_seed_prices": [{"source": seed.source, "as_of": seed.as_of} for seed in report.ec2_seed_prices],
        "node_groups": [_line_json(ln) for ln in report.lines if ln.category == "instances"],
        "storage": [_line_json(ln) for ln in report.lines if ln.category == "storage"],
        "network": [_line_json(ln) for ln in report.lines if ln.category == "network"],
        "warm_nodes": [_line_json(ln) for ln in report.warm],
        "racks": [{"name": r, "usd_per_hour": s.usd_per_hour, "known_usd_per_hour": s.known_usd_per_hour}
                  for r in report.racks() for s in [report.of(rack=r)]],
    }
    for c in ("instances", "storage", "network"):
        s = report.of(c)
        out[f"{c}_usd_per_hour"], out[f"{c}_known_usd_per_hour"] = s.usd_per_hour, s.known_usd_per_hour
    month = round(total.known_usd_per_hour * HOURS_PER_MONTH, 6)
    out.update(
        total_usd_per_hour=total.usd_per_hour, total_known_usd_per_hour=total.known_usd_per_hour,
        total_usd_per_month=None if total.unknown else month, total_known_usd_per_month=month,
        complete=not total.unknown,
        unknown=[{"item": ln.name, "reason": ln.source} for ln in total.unknown],
        included=list(report.included), not_included=list(report.not_included),
    )
    if verdict is not None:
        out["budget"] = {"usd_per_hour": verdict.budget_usd_per_hour, "ok": verdict.ok, "message": verdict.message,
                         "largest": [{"item": ln.name, "usd_per_hour": ln.usd_per_hour} for ln in verdict.largest]}
    return out
