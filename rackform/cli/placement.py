"""Commands that place workloads across tiers: place (decide and explain) and run (decide, then submit)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Protocol

from ..render.text import table, wrap
from ..spec.models import TIERS
from ..spec.problems import SpecError
from ..textsafe import visible
from .athena import cross_run_records, engine_options
from .common import (
    EXIT_PROBLEM,
    EXIT_USAGE,
    Subparsers,
    aws_options,
    aws_target,
    checked_plan,
    print_problems,
    problem_lines,
    results_store,
    run_records,
    summary,
)

if TYPE_CHECKING:
    from workloads.results import ResultRecord
    from workloads.store import ResultStore

    from ..aws import PaginatingClient
    from ..placement import Decision, ImagePlatforms, QueueState
    from ..plan.models import Plan
    from ..spec.workload import Workload


POLICY_NOTE = ("policy: hard constraints first; the rest ranked by objective {objective} on measured {benchmark} "
               "(healthy results; overlapping ranges tie, broken by $/hour then seed order), then the first whose "
               "expected start is within max_wait (docs/allocation.md)")


def _workloads(paths: list[str]) -> list[Workload] | None:
    from ..pipeline import load_workload

    loaded: list[Workload] = []
    bad = False
    for path in paths:
        try:
            loaded.append(load_workload(path))
        except SpecError as e:
            print_problems(e.problems, path)
            print(f"{path}: invalid ({summary(e.problems)})", file=sys.stderr)
            bad = True
    names = [w.name for w in loaded]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        print(f"error: workload name {', '.join(dup)} given more than once: each needs its own name", file=sys.stderr)
        bad = True
    return None if bad else loaded


def _records(args: argparse.Namespace, plan: Plan) -> list[ResultRecord] | None:
    """The records of every --run: the measurements placement ranks by."""
    if not args.runs:
        return []
    from .common import check_run_ids

    check_run_ids(args.runs)
    store = results_store(args, plan)
    # the runs from one Athena query when the engine is athena (--engine, or 50 runs and more), else from S3
    found = cross_run_records(args, plan.region, store, args.runs)
    out: list[ResultRecord] = []
    for run_id in args.runs:
        records = run_records(store, run_id, None if found is None else found.__getitem__)
        if records is None:
            return None
        out += records
    return out


def _queues(args: argparse.Namespace, plan: Plan) -> dict[str, QueueState]:
    if args.no_live:
        return {}
    from .. import aws
    from ..jobs.live import queue_states

    target = aws_target(args, plan.region)
    states, notes = queue_states(plan, aws.client(target, "batch"), aws.client(target, "ec2"), spot_live=args.live)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return states


def _job_definition_collisions(plan: Plan, workloads: list[Workload]) -> list[str]:
    """Workload job definitions that would take another definition's name, on any node group they may run on."""
    from ..plan import naming

    groups = list(plan.node_groups())
    return naming.job_definition_collisions(plan.name, [(g.rack, g.name) for g in groups],
                                            [(w.name, g.rack, g.name) for w in workloads for g in groups
                                             if w.job_for(g.tier) is not None])


def _images(args: argparse.Namespace, plan: Plan, workloads: list[Workload]) -> ImagePlatforms:
    """With --live, each image's platforms from its registry; none read otherwise (the policy then goes by the
    workload's stated platforms)."""
    if not args.live:
        return {}
    from .. import aws
    from ..jobs.images import image_platforms

    target = aws_target(args, plan.region)

    def ecr_in(region: str) -> aws.BotoClient:  # an image's registry is in its own Region
        return aws.client(aws.Target(region, target.profile, target.endpoint_url), "ecr")

    found, notes = image_platforms({job.image for w in workloads for job in w.tiers.values()}, ecr_for=ecr_in)
    for note in notes:  # may quote what a registry answered
        print(visible(f"warning: {note}"), file=sys.stderr)
    return found


class Decide(Protocol):
    """Where a workload runs among the plan's node groups (or `among`'s: a re-placement leaves out those tried),
    on the live state read at the start (or `live`)."""

    def __call__(self, w: Workload, among: Plan = ..., live: Mapping[str, QueueState] = ...) -> Decision: ...


def _decide(args: argparse.Namespace) -> tuple[Plan, list[Workload], Decide, list[ResultRecord]] | None:
    """(plan, workloads, a function workload -> Decision) or None after saying what is wrong."""
    from ..placement import place
    from ..reference.peaks import limits_for

    workloads = _workloads(args.workloads)
    if workloads is None:
        return None
    plan = checked_plan(args.spec)
    if clashes := _job_definition_collisions(plan, workloads):
        for line in clashes:
            print(f"error: {line}", file=sys.stderr)
        return None
    records = _records(args, plan)
    if records is None:
        return None
    queues = _queues(args, plan)
    images = _images(args, plan, workloads)

    def decide(w: Workload, among: Plan = plan, live: Mapping[str, QueueState] = queues) -> Decision:
        return place(w, among, records, live, limits_of=limits_for, pin=args.pin, exclude=args.exclude or (),
                     include_rehearsal=args.include_rehearsal, images=images)

    return plan, workloads, decide, records


def _explain(decision: Decision, records: Sequence[ResultRecord]) -> str:
    from ..render.placement import explain_details, explain_rows

    # A decision `rackform run` explains comes from the bucket: table() escapes its cells, visible() the lines.
    lines = [table(*explain_rows(decision))]
    lines += [visible(line) for line in explain_details(decision)]
    lines.append(visible(POLICY_NOTE.format(objective=decision.objective, benchmark=decision.benchmark)))
    if decision.outcome == "unplaced":
        lines.append(visible(f"no candidate can take it: {decision.reason}"))
    else:
        lines.append(visible(f"ranking: {decision.ranking}" + (f"; spilled over: {decision.reason}"
                                                               if decision.outcome == "spilled" else "")))
    if any(r.environment.get("executor") == "local" for r in records):
        lines.append("note: executor=local results: figures measured on this machine, priced as the instance types")
    return wrap("\n".join(lines))  # the prose folded to the terminal, as the table fits it


def cmd_place(args: argparse.Namespace) -> int:
    decided = _decide(args)
    if decided is None:
        return EXIT_PROBLEM
    _, workloads, decide, records = decided
    decisions = [decide(w) for w in workloads]
    if args.json:
        print(json.dumps({"decisions": [d.to_dict() for d in decisions]}, indent=2))
    else:
        for d in decisions:
            print(visible(d.line()))  # names and reasons may quote --run records from the bucket
            if args.explain:
                print(_explain(d, records) + "\n")
    return EXIT_PROBLEM if any(d.outcome == "unplaced" for d in decisions) else 0


def cmd_run(args: argparse.Namespace) -> int:
    from workloads.layout import check_run_id
    from workloads.store import Refused

    from .. import aws
    from ..jobs import submit as sub
    from ..jobs.workload_jobs import PlacementError, run_workload

    decided = _decide(args)
    if decided is None:
        return EXIT_PROBLEM
    plan, workloads, decide, _ = decided
    run_id = args.run_id or sub.new_run_id()
    try:
        check_run_id(run_id)
    except ValueError as e:
        print(f"error: --run-id: {e}", file=sys.stderr)
        return EXIT_USAGE
    store = results_store(args, plan)
    target = aws_target(args, plan.region)
    batch = aws.client(target, "batch")
    submitter, lookup = sub.batch_clients_for(target)
    failed = False
    submitted: list[Workload] = []
    for w in workloads:
        try:
            decision, job = run_workload(plan, w, run_id=run_id, store=store, batch=batch, submitter=submitter,
                                         lookup=lookup, decide=partial(decide, w))
        except PlacementError as e:  # it may name what a decision in the bucket says
            print(f"error: {visible(e)}", file=sys.stderr)
            failed = True
            continue
        except Refused:  # a decision, marker or claim that cannot be believed: named below, the rest still run
            failed = True
            continue
        # The decision and the job as recorded in the bucket (for a run id placed before, the ones made then).
        print(visible(decision["line"]), file=sys.stderr)
        if args.explain:
            from ..placement import decision_from_dict

            print(_explain(decision_from_dict(decision), []), file=sys.stderr)
        verb = "submitted" if job.created else "already submitted"
        print(visible(f"{verb} {job.job_name} ({job.nodes} node{'s' * (job.nodes > 1)}) to {job.queue}: job "
                      f"{job.job_id}"), file=sys.stderr)
        submitted.append(w)
    if args.watch and submitted:
        def decide_now(w: Workload, among: Plan) -> Decision:  # on the queues as they are at this look
            return decide(w, among, _queues(args, plan))

        failed |= _watch(args, plan, submitted, run_id, store=store, batch=batch, submitter=submitter,
                         lookup=lookup, decide=decide_now)
    if problems := problem_lines(store):
        print("\n".join(problems), file=sys.stderr)
    print(run_id)
    return EXIT_PROBLEM if failed else 0


def _watch(args: argparse.Namespace, plan: Plan, workloads: list[Workload], run_id: str, *, store: ResultStore,
           batch: PaginatingClient, submitter: PaginatingClient, lookup: PaginatingClient,
           decide: Callable[[Workload, Plan], Decision]) -> bool:
    """Look at the workloads' jobs every --watch-every seconds, re-placing one that waits past its max_wait
    (jobs/rebalance.py), until none waits. Whether any look failed."""
    import datetime as dt
    import time

    from workloads.store import Refused

    from ..jobs.rebalance import watch_step
    from ..jobs.workload_jobs import PlacementError

    watching, failed = list(workloads), False
    while watching:
        still = []
        for w in watching:
            try:
                step = watch_step(plan, w, run_id, store=store, batch=batch, submitter=submitter, lookup=lookup,
                                  decide=partial(decide, w), now=dt.datetime.now(dt.UTC))
            except PlacementError as e:
                print(f"error: {visible(e)}", file=sys.stderr)
                failed = True
                continue
            except Refused:  # named with the run's other problems
                failed = True
                continue
            if step.said:
                print(visible(step.said), file=sys.stderr)
            if step.watching:
                still.append(w)
            else:
                print(visible(f"watch: {w.name} is {step.status or 'unknown to AWS Batch'} (run {step.run_id}, job "
                              f"{step.job_id}): no longer watched"), file=sys.stderr)
        if watching := still:
            time.sleep(args.watch_every)
    return failed


def workload_lines(run_id: str, store: ResultStore, lookup: PaginatingClient | None) -> tuple[list[str], bool]:
    """The run's workload jobs as a table for `status` and `results` (no lines when it has none), and whether any
    failed. Decisions and markers that cannot be believed are left in store.problems for the command to name."""
    from ..jobs.workload_jobs import workload_states

    if not (states := workload_states(run_id, store, lookup)):
        return [], False
    # Decisions are objects in the bucket, which jobs can write too: table() escapes its cells.
    rows = [[s.workload, s.workload_class, s.outcome, s.where, s.tier, s.batch_status or "-",
             s.batch_reason or ""] for s in states]  # the reason whole, as --json has it: the table wraps it
    # A narrow terminal gives up the class and the tier (the workload and its rack say them) before Batch's reason.
    return (["workload jobs:", table(rows, ["workload", "class", "placement", "rack/node group", "tier", "batch",
                                            "reason"],
                                     essential=("workload", "placement", "rack/node group", "batch", "reason"))],
            any(s.batch_status == "FAILED" for s in states))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("workloads", nargs="+", metavar="WORKLOAD", help="workload YAML file(s)")
    p.add_argument("--spec", required=True, help="the rack spec the cluster was deployed from")
    p.add_argument("--run", dest="runs", action="append", metavar="RUN",
                   help="a run whose results rank the tiers (repeatable); none: the seed order decides")
    p.add_argument("--pin", choices=TIERS, help="place on this tier only, whatever the measurements say")
    p.add_argument("--exclude", action="append", choices=TIERS, help="never place on this tier (repeatable)")
    p.add_argument("--include-rehearsal", action="store_true",
                   help="let local-rehearsal results (executor=local, measured on this machine) rank the tiers, "
                        "labelled as such; without it they rank nothing")
    live = p.add_mutually_exclusive_group()
    live.add_argument("--no-live", action="store_true", help="ignore the queues' live state (no AWS Batch calls)")
    live.add_argument("--live", action="store_true",
                   help="also read the current Spot price of Spot groups and each image's platforms from its registry")
    engine_options(p)
    aws_options(p, region=False)


def register(sub: Subparsers) -> None:
    p = sub.add_parser("place", help="decide, without submitting, which tier and node group each workload runs on")
    _common(p)
    p.add_argument("--explain", action="store_true", help="the candidates, their figures, $/hour, backlog and why")
    p.add_argument("--json", action="store_true", help="print the decisions as JSON")
    p.set_defaults(func=cmd_place)

    p = sub.add_parser("run", help="place each workload and submit it; the same --run-id again submits nothing new")
    _common(p)
    p.add_argument("--run-id", help="the run the jobs belong to (default: a new one, printed)")
    p.add_argument("--explain", action="store_true", help="the candidates of each decision and why (on stderr)")
    p.add_argument("--watch", action="store_true",
                   help="then follow the jobs: one still waiting past its workload's max_wait is cancelled and "
                        "re-placed on the next candidate, as run RUN-ID-r1, -r2... (until no job waits)")
    p.add_argument("--watch-every", type=float, default=60.0, metavar="SECONDS",
                   help="seconds between looks with --watch (default 60)")
    p.set_defaults(func=cmd_run)
