"""`rackform health RUN`: every node's health step, and what carried each collective (issue 11 items 1 and 2)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..render.text import table
from ..textsafe import visible
from .common import EXIT_OK, EXIT_PROBLEM, Subparsers, aws_options, json_option, problem_lines, run_records
from .jobs import store_for_run

CELL = {"passed": "ok", "failed": "FAILED", "not applicable here": "n/a"}


def health_rows(records: Sequence[Any]) -> tuple[list[list[Any]], list[str]]:
    """One row per node of each job (the check names as columns, in the order the nodes ran them), and the header."""
    from ..render.text import red

    names: list[str] = []
    for h in records:
        names += [c.name for c in h.checks if c.name not in names]
    rows = []
    for h in sorted(records, key=lambda h: (h.rack, h.node_group, h.benchmark, h.node_index)):
        by = {c.name: c.status for c in h.checks}
        rows.append([f"{h.rack}/{h.node_group}", h.benchmark, h.node_index, h.hostname,
                     "healthy" if h.healthy else red("FAILED"),
                     *[red(CELL[by[n]]) if by.get(n) == "failed" else CELL.get(by.get(n, ""), "-") for n in names]])
    return rows, ["rack/node group", "benchmark", "node", "host", "health", *names]


def fabric_rows(records: Sequence[Any]) -> list[list[Any]]:
    """The collectives of the run: what carried each one; socket across nodes in red (never an EFA figure)."""
    from ..render.text import red

    rows = []
    for r in sorted((r for r in records if r.fabric is not None), key=lambda r: (r.rack, r.node_group, r.benchmark)):
        fabric = red(r.fabric) if r.fabric in ("socket", "unknown") and r.node_count > 1 else r.fabric
        rows.append([f"{r.rack}/{r.node_group}", r.benchmark, r.node_count, fabric,
                     "-" if r.efa_devices is None else r.efa_devices,
                     red(f"invalid: {r.invalid_reason}") if r.validity == "invalid" else "valid"])
    return rows


def notes(records: Sequence[Any]) -> list[str]:
    """Why each check that does not apply here does not, once per distinct reason; and every failure in full."""
    seen: dict[tuple[str, str], None] = {}
    failures = []
    for h in records:
        for c in h.checks:
            if c.status == "not applicable here":
                seen.setdefault((c.name, c.detail), None)
            elif c.status == "failed":
                failures.append(f"FAILED {h.rack}/{h.node_group} {h.benchmark} node {h.node_index} ({h.hostname}): "
                                f"{c.name}: {c.detail}")
    return failures + [f"n/a {name}: {detail}" for name, detail in seen]


def cmd_health(args: argparse.Namespace) -> int:
    store = store_for_run(args, [args.run_id])
    records = run_records(store, args.run_id, store.health, "health records")
    if records is None:
        return EXIT_PROBLEM
    # Only the collectives' transport is shown of the records: each is kept without its metrics as it streams in,
    # so memory does not grow with the sweeps of a large run (issue 23).
    results = [r.model_copy(update={"metrics": ()}) for r in store.iter_records(args.run_id) if r.fabric is not None]
    unhealthy = any(not h.healthy for h in records)
    if args.json:
        from ..render.jsonout import json_text
        from ..render.problems import problem_dicts

        print(json_text({"run_id": args.run_id, "health": [h.model_dump(mode="json") for h in records],
                         "fabric": [{"rack": r.rack, "node_group": r.node_group, "benchmark": r.benchmark,
                                     "nodes": r.node_count, "fabric": r.fabric, "efa_devices": r.efa_devices,
                                     "validity": r.validity, "invalid_reason": r.invalid_reason}
                                    for r in results if r.fabric is not None],
                         "problems": problem_dicts(store.problems)}))
        return EXIT_PROBLEM if unhealthy or store.problems else EXIT_OK
    rows, header = health_rows(records)
    print(table(rows, header))
    print("\n".join(visible(note) for note in notes(records)))  # hosts and details from the bucket, one line each
    if fabric := fabric_rows(results):
        print()
        print(table(fabric, ["rack/node group", "collective", "nodes", "fabric", "EFA devices", "validity"]))
        if any(r.fabric == "socket" and r.node_count > 1 for r in results):
            print("note: a collective across nodes over sockets did not use EFA: its figures are never held "
                  "against the EFA line rate")
    if problems := problem_lines(store):
        print("\n".join(problems))
    return EXIT_PROBLEM if unhealthy or problems else EXIT_OK


def register(sub: Subparsers) -> None:
    p = sub.add_parser("health", help="each node's health step (accelerators, EFA, FSx, clock) and the transport "
                       "of each collective in a run",
                       epilog="example:\n  rackform health $RUN   # exit 1 when a node failed its health step")
    p.add_argument("run_id", metavar="RUN", nargs="?", help="run id, as `rackform submit` printed it; default: "
                   "the bucket's newest run")
    json_option(p, "the health records and each collective's transport")
    aws_options(p)
    p.set_defaults(func=cmd_health)
