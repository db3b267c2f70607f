"""Decisions that follow reality: `rackform run --watch` re-places a workload whose job still waits (SUBMITTED,
PENDING or RUNNABLE) past the workload's max_wait, on the next candidate.

A run records one decision and one job per workload, each written once, so a re-placement is the next run of a
chain: run R's job is cancelled (CancelJob, which never stops a job that has started, with a reason naming the next
run) and, once Batch reports it FAILED with that reason, the workload is placed again without the node groups the
chain has tried and submitted as run R-r1 through `run`'s own path (decide, claim, marker, then decision). However
many watchers do this at once they make one job, and a watcher that stopped between the two steps is followed by
the next one, from Batch's reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass

from workloads.layout import RUN_ID, check_run_id, workload_job_key
from workloads.store import ResultStore

from .. import aws
from ..placement import Decision, duration_text
from ..plan.models import Plan
from ..spec.workload import Workload
from .live import batch_time
from .verified import read_verified
from .workload_jobs import PlacementError, run_workload

# The job states before a job starts: what CancelJob cancels
# (https://docs.aws.amazon.com/batch/latest/APIReference/API_CancelJob.html).
WAITING = ("SUBMITTED", "PENDING", "RUNNABLE")


def replaced_as(next_run: str) -> str:
    """How the cancel reason starts: first, so that `rackform status` (which shows its first 60 characters) names the
    run the job moved to."""
    return f"rackform: re-placed as run {next_run}: "


@dataclass(frozen=True)
class WatchStep:
    """Where one workload stands after a look: the run whose job it is now, Batch's status, what this look did."""

    workload: str
    run_id: str
    job_id: str
    status: str | None  # None: Batch no longer knows the job
    watching: bool  # the job may still be re-placed: it waits, or its re-placement is under way
    said: str | None = None  # what this look did or found, one line


def chain_run_id(root: str, n: int) -> str:
    """The run id of the n-th re-placement of run `root` (n = 0: the run itself)."""
    return root if n == 0 else f"{root}-r{n}"


def _chain(store: ResultStore, root: str, workload: str) -> list[tuple[str, dict[str, object]]]:
    """(run id, job marker) of each run of the chain that has a job, in order."""
    found: list[tuple[str, dict[str, object]]] = []
    # a run id too long to be one has no job
    while RUN_ID.fullmatch(run_id := chain_run_id(root, len(found))) and \
            (marker := read_verified(store, workload_job_key(run_id, workload))) is not None:
        found.append((run_id, marker))
    return found


def without(plan: Plan, groups: Collection[tuple[str, str]]) -> Plan:
    """The plan less the (rack, node group)s given: what a re-placement chooses among."""
    racks = tuple(r.model_copy(update={"node_groups": tuple(g for g in r.node_groups
                                                            if (g.rack, g.name) not in groups)}) for r in plan.racks)
    return plan.model_copy(update={"racks": racks})


def watch_step(plan: Plan, workload: Workload, root: str, *, store: ResultStore, batch: aws.BotoClient,
               submitter: aws.BotoClient, lookup: aws.BotoClient, decide: Callable[[Plan], Decision],
               now: dt.datetime) -> WatchStep:
    """One look at the workload's job in the chain of run `root`: cancel it when it has waited past max_wait and
    another node group can take it; once Batch reports it cancelled for that, place and submit the next run.
    `decide(plan)` places the workload among the plan's node groups on the live state of now."""
    chain = _chain(store, root, workload.name)
    if not chain:
        raise PlacementError(f"run {root} has no job for {workload.name}: `rackform run` it first")
    run_id, marker = chain[-1]
    job_id, where = str(marker["job_id"]), f"{marker['rack']}/{marker['node_group']}"
    next_run = chain_run_id(root, len(chain))
    job = aws.describe_jobs(lookup, [job_id]).get(job_id)
    if job is None:
        return WatchStep(workload.name, run_id, job_id, None, False, f"{workload.name}: AWS Batch no longer knows "
                         f"job {job_id} of run {run_id}")
    status, reason = str(job["status"]), str(job.get("statusReason") or "")
    tried = {(str(m["rack"]), str(m["node_group"])) for _, m in chain}
    if status == "FAILED" and reason.startswith(replaced_as(next_run)):
        return _replace(plan, workload, run_id, next_run, tried, reason.removeprefix(replaced_as(next_run)),
                        store=store, batch=batch,
                        submitter=submitter, lookup=lookup, decide=decide)
    limit = workload.max_wait_s
    created = batch_time(job.get("createdAt"))
    if status not in WAITING or created is None:
        return WatchStep(workload.name, run_id, job_id, status, False)
    if limit is None:
        return WatchStep(workload.name, run_id, job_id, status, False,
                         f"{workload.name} states no max_wait: job {job_id} waits where it was placed")
    waited = (now - created).total_seconds()
    if waited <= limit:
        return WatchStep(workload.name, run_id, job_id, status, True)
    try:  # before anything is cancelled
        check_run_id(next_run)
    except ValueError:
        raise PlacementError(f"{workload.name} has waited {duration_text(waited)} on {where}, over max_wait "
                             f"{workload.max_wait}, but its re-placement's run id {next_run!r} would be longer "
                             "than 48 characters: nothing was cancelled; use a shorter --run-id") from None
    elsewhere = decide(without(plan, tried))
    if elsewhere.chosen is None:
        return WatchStep(workload.name, run_id, job_id, status, True,
                         f"{workload.name} has waited {duration_text(waited)} on {where}, over max_wait "
                         f"{workload.max_wait}, and stays: no other node group can take it "
                         f"({elsewhere.reason})")
    why = f"{status} for {duration_text(waited)} on {where}, over max_wait {workload.max_wait}"
    batch.cancel_job(jobId=job_id, reason=replaced_as(next_run) + why)
    return WatchStep(workload.name, run_id, job_id, status, True,
                     f"{workload.name}: cancelled job {job_id} of run {run_id} ({why}); submitted anew as run "
                     f"{next_run} once AWS Batch reports it cancelled")


def _replace(plan: Plan, workload: Workload, run_id: str, next_run: str, tried: Collection[tuple[str, str]],
             why: str, *, store: ResultStore, batch: aws.BotoClient, submitter: aws.BotoClient,
             lookup: aws.BotoClient, decide: Callable[[Plan], Decision]) -> WatchStep:
    def decided() -> Decision:
        # The groups tried first; if none of the others can take it now, every group again (the job was cancelled).
        found = decide(without(plan, tried))
        if found.chosen is None:
            found = decide(plan)
        return dataclasses.replace(found, reason=f"re-placed from run {run_id} ({why}); {found.reason}")

    decision, job = run_workload(plan, workload, run_id=next_run, store=store, batch=batch, submitter=submitter,
                                 lookup=lookup, decide=decided)
    return WatchStep(workload.name, next_run, job.job_id, None, True,
                     f"{decision['line']} (run {next_run}, job {job.job_id})")
