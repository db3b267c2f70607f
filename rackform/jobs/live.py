"""What AWS says about each node group now: the live state (rackform.placement.state) `rackform place` and `run`
decide from. Every call is made here; the policy reads the result without one.

The calls, bounded whatever the queues hold (L = LISTED_MAX, 1,000 jobs: ten ListJobs pages of 100):

    DescribeJobQueues                1, and DescribeComputeEnvironments 1 (the plan's, up to 100 a call)
    per queue   ListJobs             RUNNING, RUNNABLE and STARTING, up to L jobs each; and the jobs created within
                                     RECENT (the AFTER_CREATED_AT filter, most recent first), up to L: <= 40 pages
                DescribeJobs         the RUNNING, STARTING and RUNNABLE ones (vCPUs, nodes), and for a Spot group
                                     the recent ended ones (each attempt's status reason), 100 ids a call: <= 40
    DescribeCapacityReservations     1, for every group that names a reservation or Capacity Block
    with --live: DescribeSpotPriceHistory, 1 listing for the plan's Spot types (reference.refresh.spot_prices)

A status with more than L jobs is left unknown (None) and said so, never cut short: a backlog read in part is not a
short one. Anything that cannot be read is None with a note, never zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import aws
from ..capacity import of as capacity_kind
from ..placement import QueuedJob, QueueState, RunningJob
from ..plan.models import NodeGroupPlan, Plan

# ListJobs lists one status per call and RUNNING only when told none; with a filter it ignores the status and lists
# every job, most recently created first; AFTER_CREATED_AT takes milliseconds since the epoch
# (https://docs.aws.amazon.com/batch/latest/APIReference/API_ListJobs.html).
LISTED_MAX = 1000
PAGE = 100
# Ahead of a new job: the STARTING ones (already given an instance) first, then the RUNNABLE ones.
AHEAD_STATUSES = ("STARTING", "RUNNABLE")
# The window recent durations and Spot reclaims are counted over: long enough to hold a day's jobs, short enough
# that a queue's Spot pool then is its pool now.
RECENT = dt.timedelta(hours=24)
# A Spot reclaim fails the attempt with a status reason starting "Host EC2": AWS's retry strategies for Spot match
# it with evaluateOnExit onStatusReason "Host EC2*" (the AWS CDK's Reason.SPOT_INSTANCE_RECLAIMED,
# https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_batch.Reason.html; AWS Compute Blog, "Introducing
# retry strategies for AWS Batch", https://aws.amazon.com/blogs/compute/introducing-retry-strategies-for-aws-batch/).
# A job retried after a reclaim keeps the reclaimed attempt in `attempts`, so every attempt is read, not only the
# job's last status reason.
SPOT_RECLAIM_REASON = "Host EC2"

Job = Mapping[str, Any]


def batch_time(ms: object) -> dt.datetime | None:
    """A Batch timestamp (milliseconds since the epoch) as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC) if isinstance(ms, (int, float)) and ms > 0 else None


def _nodes(job: Job) -> int:
    return int((job.get("nodeProperties") or {}).get("numNodes") or 1)


def job_vcpus(job: Job, group: NodeGroupPlan) -> int:
    """vCPUs a job takes over all its nodes: a multi-node job takes whole nodes (rackform's definitions ask for
    them), a single-node one what its container asks for."""
    if (job.get("nodeProperties") or {}).get("numNodes"):
        return _nodes(job) * group.vcpus_per_node
    container = job.get("container") or {}
    for r in container.get("resourceRequirements") or []:
        if r.get("type") == "VCPU":
            return int(float(r["value"]))
    return int(container.get("vcpus") or group.vcpus_per_node)


def reclaimed(job: Job) -> bool:
    """Whether a Spot reclaim took one of the job's attempts (or the job itself)."""
    reasons = [job.get("statusReason")] + [a.get("statusReason") for a in job.get("attempts") or []]
    return any((r or "").startswith(SPOT_RECLAIM_REASON) for r in reasons)


def _listed(batch: aws.BotoClient, queue: str, **how: object) -> list[dict[str, Any]] | None:
    """Up to LISTED_MAX jobs of the queue (None: more than that)."""
    jobs = aws.paginate(batch, "list_jobs", "jobSummaryList", jobQueue=queue,
                        PaginationConfig={"MaxItems": LISTED_MAX + 1, "PageSize": PAGE}, **how)
    return None if len(jobs) > LISTED_MAX else jobs


def _queue_jobs(batch: aws.BotoClient, group: NodeGroupPlan, now: dt.datetime, notes: list[str]) -> dict[str, Any]:
    """The QueueState fields one queue's jobs give: running, ahead (and the backlog), recent durations, reclaims."""
    queue = group.job_queue
    by_status = {s: _listed(batch, queue, jobStatus=s) for s in ("RUNNING", *AHEAD_STATUSES)}
    since = now - RECENT
    recent = _listed(batch, queue, filters=[{"name": "AFTER_CREATED_AT",
                                             "values": [str(int(since.timestamp() * 1000))]}])
    for status, jobs in by_status.items():
        if jobs is None:
            notes.append(f"queue {queue}: more than {LISTED_MAX} {status} jobs, not read: its start is unknown")
    ended = [j for j in recent or [] if j.get("status") in ("SUCCEEDED", "FAILED")
             and (stopped := batch_time(j.get("stoppedAt"))) is not None and stopped >= since]
    spot = capacity_kind(group.capacity.type).interruptible
    # the ended jobs are described only where reclaims count: a reclaimed attempt shows only in `attempts`
    wanted = [j["jobId"] for jobs in by_status.values() for j in jobs or []] + [j["jobId"] for j in ended if spot]
    described = aws.describe_jobs(batch, list(dict.fromkeys(wanted)))

    def full(j: Job) -> Job:
        return described.get(j["jobId"], j)  # a job Batch has just forgotten: its summary

    out: dict[str, Any] = {}
    if (running := by_status["RUNNING"]) is not None:
        # Without a RUNNING job's start its end cannot be estimated: the whole list is then unknown.
        starts = [batch_time(full(j).get("startedAt")) for j in running]
        out["running"] = None if None in starts else tuple(
            RunningJob(started_at=s, vcpus=job_vcpus(full(j), group), nodes=_nodes(full(j)))
            for j, s in zip(running, starts, strict=True) if s is not None)
        if out["running"] is None:
            notes.append(f"queue {queue}: a RUNNING job has no start time: its start is unknown")
    if all(by_status[s] is not None for s in AHEAD_STATUSES):
        out["ahead"] = tuple(QueuedJob(status=s, vcpus=job_vcpus(full(j), group), nodes=_nodes(full(j)))
                             for s in AHEAD_STATUSES for j in by_status[s] or [])
        out["backlog_vcpus"] = sum(q.vcpus for q in out["ahead"])
    if recent is None:
        notes.append(f"queue {queue}: more than {LISTED_MAX} jobs in the last {RECENT.total_seconds() / 3600:g} h, "
                     "not read: recent durations and Spot reclaims unknown")
        return out
    durations = []
    for j in ended:
        start, stop = batch_time(j.get("startedAt")), batch_time(j.get("stoppedAt"))
        if j.get("status") == "SUCCEEDED" and start and stop:
            durations.append((stop - start).total_seconds())
    out["succeeded_s"] = tuple(durations)
    out["finished_jobs"] = len(ended)
    out["reclaim_window_s"] = RECENT.total_seconds()
    if spot:
        out["spot_interruptions"] = sum(1 for j in ended if reclaimed(full(j)))
    return out


def _environments(batch: aws.BotoClient, groups: Sequence[NodeGroupPlan], notes: list[str]
                  ) -> tuple[dict[str, Job], dict[str, Job]]:
    """(queues by name, compute environments by name) as Batch describes them; empty, with a note, if unreadable."""
    queues: dict[str, Job] = {}
    envs: dict[str, Job] = {}
    try:
        # state ENABLED/DISABLED and status VALID/INVALID/...: both must be ENABLED and VALID for a job to start
        # (https://docs.aws.amazon.com/batch/latest/APIReference/API_JobQueueDetail.html,
        # https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeEnvironmentDetail.html).
        for q in batch.describe_job_queues(jobQueues=[g.job_queue for g in groups])["jobQueues"]:
            queues[q["jobQueueName"]] = q
    except (ClientError, BotoCoreError) as e:
        notes.append(f"job queues not read ({e}): their state is unknown")
    try:
        # maxvCpus of a managed environment (https://docs.aws.amazon.com/batch/latest/APIReference/
        # API_ComputeResource.html); an unmanaged one has none, and the plan's count x vCPUs stands in.
        for ce in batch.describe_compute_environments(
                computeEnvironments=[g.compute_environment for g in groups])["computeEnvironments"]:
            envs[ce["computeEnvironmentName"]] = ce
    except (ClientError, BotoCoreError) as e:
        notes.append(f"compute environments not read ({e}): their state and maximum vCPUs are unknown")
    return queues, envs


def _reservations(ec2: aws.BotoClient | None, groups: Sequence[NodeGroupPlan], notes: list[str]) -> dict[str, Job]:
    ids = sorted({g.capacity.reservation_id for g in groups if g.capacity.reservation_id})
    if not ids or ec2 is None:
        return {}
    try:
        # State, AvailableInstanceCount, EndDate and EndDateType, for ODCRs and Capacity Blocks alike
        # (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CapacityReservation.html)
        found = ec2.describe_capacity_reservations(CapacityReservationIds=ids)["CapacityReservations"]
        return {cr["CapacityReservationId"]: cr for cr in found}
    except (ClientError, BotoCoreError) as e:
        notes.append(f"capacity reservations not read ({e}): their state is unknown")
        return {}


def _spot_prices(ec2: aws.BotoClient | None, plan: Plan, groups: Sequence[NodeGroupPlan], now: dt.datetime,
                 notes: list[str]) -> dict[str, float]:
    from ..reference.refresh import spot_prices

    types = {g.instance_type for g in groups if capacity_kind(g.capacity.type).price == "spot"}
    if not types or ec2 is None:
        return {}
    try:
        quotes = spot_prices(ec2, types, plan.availability_zone, now=now)
    except (ClientError, BotoCoreError) as e:
        notes.append(f"Spot prices not read ({e}): Spot groups are priced from the snapshot")
        return {}
    if missing := sorted(types - set(quotes)):
        notes.append(f"no Spot price in {plan.availability_zone} for {', '.join(missing)}")
    return {t: q.usd for t, q in quotes.items()}


def queue_states(plan: Plan, batch: aws.BotoClient, ec2: aws.BotoClient | None = None,
                 groups: Sequence[NodeGroupPlan] | None = None, *, spot_live: bool = False,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
                 ) -> tuple[dict[str, QueueState], list[str]]:
    """Each node group's state now, keyed by its job queue, and a note for whatever could not be read (then
    unknown, never taken as empty). `spot_live`: read the current Spot price of the Spot groups (else the policy
    prices them from the snapshot). The health verdict is left to the policy, which reads it from the records."""
    groups = list(groups if groups is not None else plan.node_groups())
    notes: list[str] = []
    now = clock()
    queues, envs = _environments(batch, groups, notes)
    reservations = _reservations(ec2, groups, notes)
    spot = _spot_prices(ec2, plan, groups, now, notes) if spot_live else {}
    states: dict[str, QueueState] = {}
    for g in groups:
        try:
            jobs = _queue_jobs(batch, g, now, notes)
        except (ClientError, BotoCoreError) as e:
            notes.append(f"queue {g.job_queue} not read ({e}): its jobs are unknown")
            jobs = {}
        q, ce = queues.get(g.job_queue) or {}, envs.get(g.compute_environment) or {}
        cr = reservations.get(g.capacity.reservation_id or "") or {}
        max_vcpus = (ce.get("computeResources") or {}).get("maxvCpus")
        states[g.job_queue] = QueueState(
            jobs.get("backlog_vcpus"), int(max_vcpus) if max_vcpus is not None else None, cr.get("State"),
            cr.get("AvailableInstanceCount"), jobs.get("spot_interruptions"),
            read_at=now, queue_state=q.get("state"), queue_status=q.get("status"), ce_state=ce.get("state"),
            ce_status=ce.get("status"), ce_status_reason=ce.get("statusReason"), running=jobs.get("running"),
            ahead=jobs.get("ahead"), succeeded_s=jobs.get("succeeded_s"), finished_jobs=jobs.get("finished_jobs"),
            reclaim_window_s=jobs.get("reclaim_window_s"), reservation_end=_end(cr.get("EndDate")),
            reservation_end_type=cr.get("EndDateType"), spot_usd_per_hour=spot.get(g.instance_type))
    return states, notes


def _end(value: object) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

