"""`rackform repairs [RUN | --since 24h]`: what the racks' repair loops did, and why (issue 22 item 5;
docs/self-healing.md). The records are the repair function's (workloads/repair.py), read through the store's one
verified reader."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..textsafe import visible
from .common import EXIT_OK, EXIT_PROBLEM, Subparsers, aws_options, json_option, problem_lines, store_for

if TYPE_CHECKING:
    from workloads.objects import RepairRecord
    from workloads.store import ResultStore

DURATION = re.compile(r"([1-9][0-9]{0,4})([mhd])")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> dt.timedelta:
    if not (m := DURATION.fullmatch(text)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: a whole number of minutes, hours or days, "
                                         "e.g. 30m, 24h, 7d")
    return dt.timedelta(**{UNITS[m[2]]: int(m[1])})


def as_text(since: dt.timedelta) -> str:
    seconds = int(since.total_seconds())
    return next(f"{seconds // n}{unit}" for unit, n in (("d", 86400), ("h", 3600), ("m", 60)) if seconds % n == 0)


def stopped(r: RepairRecord) -> dt.datetime:
    return dt.datetime.fromisoformat(r.stopped_at)


def recent(store: ResultStore, *, since: dt.timedelta, now: dt.datetime, rack: str | None = None,
           node_group: str | None = None) -> list[RepairRecord]:
    """The repairs of the past `since`, oldest first (a rack's or a node group's only, when given)."""
    from workloads.layout import repairs_prefix

    return sorted((r for r in store.repairs(repairs_prefix(rack, node_group), since=now - since)
                   if stopped(r) >= now - since), key=stopped)


def of_run(store: ResultStore, run_id: str) -> list[RepairRecord]:
    """The repairs of the run's jobs: those whose job id a marker of the run (benchmark or workload) names."""
    found = store.read(run_id, "marker", "workload")
    job_ids = {str(m["job_id"]) for kind in ("marker", "workload") for m in found[kind]}
    return sorted((r for r in store.repairs() if r.job_id.split("#")[0] in job_ids), key=stopped)


def rows(records: Sequence[RepairRecord]) -> list[list[str]]:
    return [[r.stopped_at[:19].replace("T", " "), f"{r.rack}/{r.node_group}",
             "replaced" if r.action == "replace" else "ALERT ONLY", r.failure, r.instance_id or "-",
             f"{r.job_name} #{r.attempt}", r.reason] for r in records]  # why whole, as --json has it


HEADER = ["stopped (UTC)", "rack/node group", "action", "failure", "instance", "job #attempt", "why"]


# Node groups whose repairs `status` lists one group at a time (each listing the group's repairs alone).
GROUPS_LISTED_APART = 8


def in_flight(store: ResultStore, groups: Sequence[tuple[str, str]], now: dt.datetime) -> list[RepairRecord]:
    """`rackform status`'s repairs: each node group's of the past hour, the repair function's budget window (while
    they count, the replacements may still be booting, and the group heals fewer more)."""
    from workloads.repair import WINDOW

    wanted = sorted(set(groups))
    if len(wanted) > GROUPS_LISTED_APART:
        # One listing of every rack's repairs instead of one per group: a repair record is written only when a
        # node fails, so the bucket holds far fewer of them than a run spanning this many groups costs listings.
        chosen = set(wanted)
        return sorted((r for r in recent(store, since=WINDOW, now=now) if (r.rack, r.node_group) in chosen),
                      key=lambda r: (r.rack, r.node_group, stopped(r)))
    return [r for rack, group in wanted for r in recent(store, since=WINDOW, now=now, rack=rack, node_group=group)]


def in_flight_line(r: RepairRecord) -> str:
    what = "node replaced" if r.action == "replace" else "repair needed, NOT done (hourly limit)"
    return visible(f"repair {r.rack}/{r.node_group}: {what} at {r.stopped_at[11:19]} UTC: {r.instance_id or '-'} "
                   f"({r.failure}; job {r.job_name} attempt {r.attempt}); `rackform repairs` has why")


def cmd_repairs(args: argparse.Namespace) -> int:
    store = store_for(args, [args.run_id] if args.run_id else [])
    now = dt.datetime.now(dt.UTC)
    records = of_run(store, args.run_id) if args.run_id else recent(store, since=args.since, now=now,
                                                                     rack=args.rack)
    if args.run_id and args.rack:
        records = [r for r in records if r.rack == args.rack]
    if args.json:
        from ..render.jsonout import json_text
        from ..render.problems import problem_dicts

        print(json_text({"run_id": args.run_id, "since": None if args.run_id else args.since.total_seconds(),
                         "repairs": [r.model_dump(mode="json") for r in records],
                         "problems": problem_dicts(store.problems)}))
        return EXIT_PROBLEM if store.problems else EXIT_OK
    from ..render.text import table

    where = f"run {args.run_id}" if args.run_id else f"the past {as_text(args.since)}"
    if records:
        # the command's point is why: a narrow terminal gives up the time, failure and job first (--wide has them)
        print(table(rows(records), HEADER, essential=["rack/node group", "action", "instance", "why"]))
    else:
        print(visible(f"no repairs in {where}" + (f" on rack {args.rack}" if args.rack else "")))
    if problems := problem_lines(store):
        print("\n".join(problems))
        return EXIT_PROBLEM
    return EXIT_OK


def register(sub: Subparsers) -> None:
    p = sub.add_parser("repairs", help="what the racks' repair loops did and why: nodes drained and replaced, "
                       "and repairs the hourly limit held back",
                       epilog="example:\n  rackform repairs --since 7d --rack gpu   # RUN instead: that run's jobs' "
                              "repairs")
    p.add_argument("run_id", metavar="RUN", nargs="?", help="a run id: the repairs of that run's jobs")
    p.add_argument("--since", type=duration, default=duration("24h"), metavar="DURATION",
                   help="how far back, without RUN: 30m, 24h (default), 7d")
    p.add_argument("--rack", help="one rack's repairs only")
    json_option(p, "the repair records")
    aws_options(p)
    p.set_defaults(func=cmd_repairs)
