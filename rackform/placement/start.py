"""When a job would start on a node group, from the queue as AWS Batch reports it, the way Slurm estimates a start:
the RUNNING jobs end at their start plus how long the queue's jobs take, the RUNNABLE and STARTING jobs ahead take
the vCPUs that frees in their order, and the job starts once its own vCPUs are free, within the compute
environment's maximum vCPUs. The basis is said in words; what cannot be estimated is said so, never guessed.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from ..plan.models import NodeGroupPlan
from .state import QueueState


@dataclass(frozen=True)
class Start:
    wait_s: float | None  # None: cannot be estimated; inf: can never start
    basis: str


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if not math.isfinite(seconds):
        return "never"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else (f"{minutes}m" if minutes else
                                                                        f"{seconds:.0f}s")


def _walk(state: QueueState, need: int, max_vcpus: int, job_s: float) -> tuple[float, int]:
    """Seconds until `need` vCPUs are free for the job, and how many jobs ahead can never start (they are passed
    over: they need more than the maximum)."""
    assert state.running is not None and state.ahead is not None and state.read_at is not None
    ends = [(max(0.0, (r.started_at - state.read_at).total_seconds() + job_s), r.vcpus) for r in state.running]
    heapq.heapify(ends)
    free = max_vcpus - sum(r.vcpus for r in state.running)
    now, stuck = 0.0, 0
    for vcpus in [*(q.vcpus for q in state.ahead), need]:
        if vcpus > max_vcpus:
            stuck += 1
            continue
        while free < vcpus and ends:
            end, freed = heapq.heappop(ends)
            now, free = max(now, end), free + freed
        free -= vcpus
        heapq.heappush(ends, (now + job_s, vcpus))
    return now, stuck


def estimate(g: NodeGroupPlan, state: QueueState | None, *, need_vcpus: int, job_s: float | None,
             job_basis: str) -> Start:
    """`need_vcpus`: the job's vCPUs over all its nodes; `job_s`: how long the queue's jobs take (None: unknown),
    `job_basis` where that figure comes from."""
    max_vcpus = (state.max_vcpus if state is not None and state.max_vcpus else None) or g.count * g.vcpus_per_node
    of_max = f"{max_vcpus} max vCPUs ({'the compute environment' if state and state.max_vcpus else 'the plan'})"
    if need_vcpus > max_vcpus:
        return Start(math.inf, f"needs {need_vcpus} vCPUs; {of_max}: it can never start")
    if state is None:
        return Start(None, "cannot estimate: the queue was not read")
    took = f"a job takes {duration_text(job_s)} ({job_basis})" if job_s is not None else ""
    if state.running is not None and state.ahead is not None and state.read_at is not None:
        running, ahead = state.running, state.ahead
        busy = f"{len(running)} running ({sum(r.vcpus for r in running)} vCPUs), {len(ahead)} queued ahead " \
               f"({sum(q.vcpus for q in ahead)} vCPUs), {of_max}"
        if job_s is None:
            if not running and not ahead:
                return Start(0.0, f"{busy}: starts now")
            return Start(None, f"cannot estimate: {busy}, and how long its jobs take is unknown (no recent "
                               "SUCCEEDED jobs in the queue, no expected_duration)")
        wait, stuck = _walk(state, need_vcpus, max_vcpus, job_s)
        skipped = f"; {stuck} queued job(s) need more than the maximum and never start" if stuck else ""
        return Start(wait, f"{busy}; {took}{skipped}: starts in about {duration_text(wait)}")
    if state.backlog_vcpus is None:
        return Start(None, "cannot estimate: the queue's jobs were not read")
    # Only the backlog was read (no RUNNING jobs): the backlog's share of the maximum, times a job's duration.
    if state.backlog_vcpus == 0:
        return Start(0.0, f"nothing queued of {of_max} (running jobs not read): starts when a slot is free")
    if job_s is None:
        return Start(None, f"cannot estimate: {state.backlog_vcpus} vCPUs queued of {of_max}, and how long its "
                           "jobs take is unknown")
    wait = state.backlog_vcpus / max_vcpus * job_s
    return Start(wait, f"{state.backlog_vcpus} vCPUs queued of {of_max} (running jobs not read); {took}: about "
                       f"{duration_text(wait)}")
