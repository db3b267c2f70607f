"""What AWS says about a node group now: the live state the policy decides from, filled by rackform/jobs/live.py
(the side that calls AWS) and read here without a call.

Every field is None where it could not be read: unknown, never zero and never empty. A queue whose RUNNING jobs
were not read is not an idle queue, and a Spot price that was not read is not a free instance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

# The states and statuses AWS Batch reports for a job queue and a compute environment (DescribeJobQueues,
# DescribeComputeEnvironments): a job can start only where both are ENABLED and VALID.
# https://docs.aws.amazon.com/batch/latest/APIReference/API_JobQueueDetail.html
# https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeEnvironmentDetail.html
READY_STATE = "ENABLED"
READY_STATUS = "VALID"


@dataclass(frozen=True, kw_only=True)
class RunningJob:
    """A job of the queue in RUNNING now (DescribeJobs: startedAt, its vCPUs over all its nodes, numNodes)."""

    started_at: dt.datetime  # timezone-aware
    vcpus: int  # over all its nodes
    nodes: int = 1


@dataclass(frozen=True, kw_only=True)
class QueuedJob:
    """A job ahead of a new submission: RUNNABLE or STARTING in the queue, in the order Batch lists them."""

    status: str  # RUNNABLE | STARTING
    vcpus: int  # over all its nodes
    nodes: int = 1


@dataclass(frozen=True)
class QueueState:
    """What AWS says about one node group's queue and capacity now; None where it could not be read.

    The first five fields are positional (the callers of issue 19 fill them so); the others are keywords."""

    backlog_vcpus: int | None  # vCPUs of the queue's RUNNABLE and STARTING jobs
    max_vcpus: int | None = None  # the compute environment's maxvCpus; None: take the plan's (count x vCPUs)
    reservation_state: str | None = None  # active, scheduled, expired... (DescribeCapacityReservations State)
    reservation_free: int | None = None  # its AvailableInstanceCount
    spot_interruptions: int | None = None  # jobs of the queue whose Spot host was reclaimed, within reclaim_window_s
    # --- issue 20 -------------------------------------------------------------------------------------------------
    read_at: dt.datetime | None = None  # when the state was read: "now" for the start estimate (timezone-aware)
    queue_state: str | None = None  # ENABLED | DISABLED (DescribeJobQueues state)
    queue_status: str | None = None  # VALID | INVALID | CREATING | UPDATING | DELETING | DELETED
    ce_state: str | None = None  # ENABLED | DISABLED (DescribeComputeEnvironments state)
    ce_status: str | None = None  # VALID | INVALID | CREATING | UPDATING | DELETING | DELETED
    ce_status_reason: str | None = None  # statusReason, shown when the CE is not VALID
    running: tuple[RunningJob, ...] | None = None  # the RUNNING jobs; () read and none
    ahead: tuple[QueuedJob, ...] | None = None  # RUNNABLE and STARTING jobs; () read and none
    succeeded_s: tuple[float, ...] | None = None  # recent SUCCEEDED jobs' durations (startedAt..stoppedAt), seconds
    finished_jobs: int | None = None  # jobs of the queue that ended (SUCCEEDED or FAILED) within reclaim_window_s
    reclaim_window_s: float | None = None  # the window spot_interruptions and finished_jobs were counted over
    reservation_end: dt.datetime | None = None  # the reservation's or block's EndDate; None: unknown or no end
    reservation_end_type: str | None = None  # unlimited | limited (EndDateType); a Capacity Block is limited
    spot_usd_per_hour: float | None = None  # live Spot price of one instance-hour (DescribeSpotPriceHistory)


# Per image reference (as the workload writes it), the platforms its manifest list names ("linux/arm64", ...);
# an image missing from the mapping was not read (rackform place --live reads them).
ImagePlatforms = Mapping[str, frozenset[str]]
