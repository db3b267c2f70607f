"""`rackform preflight`'s output: the checks as a table, the fixes and the verdict."""

from __future__ import annotations

import datetime as dt

from ..plan.models import Plan
from ..preflight.checks import Check, utc_text
from .text import table, wrap


def check_counts(checks: list[Check]) -> dict[str, int]:
    return {s: sum(c.status == s for c in checks) for s in ("blocker", "warning", "unknown", "ok")}


def render(plan: Plan, checks: list[Check], now: dt.datetime) -> str:

    n = check_counts(checks)
    lines = [f"preflight {plan.name}: {plan.region} / {plan.availability_zone}  (account read {utc_text(now)})", "",
             table([[c.status, c.name, c.found, c.needed] for c in checks], ["status", "check", "found", "needed"])]
    fixes = [c for c in checks if c.fix]
    if fixes:
        lines += ["", "fixes:"] + [f"  {c.status}  {c.name}: {c.fix}" for c in fixes]
    verdict = ("not ready to deploy" if n["blocker"] else
               "no blockers found, but some checks could not run" if n["unknown"] else "ready to deploy")
    tally = ", ".join(f"{v} {k}{'s' * (v != 1 and k in ('blocker', 'warning'))}" for k, v in n.items())
    lines += ["", f"{plan.name}: {verdict} ({tally})"]
    return wrap("\n".join(lines))  # prose folded to the terminal, as the tables fit it
