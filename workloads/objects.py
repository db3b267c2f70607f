"""The JSON objects the operator side keeps in the results bucket beside the records, one frozen model each: what
`store.ResultStore` checks every such object against before anything uses it.

    _jobs/<job name>.json                 a benchmark job's marker (`rackform submit`)
    _workloads/<workload>.json            a workload job's marker (`rackform run`)
    _placements/<workload>.json           the placement decision of a workload (`rackform run`)
    _claims/<job name>/<attempt>.json     who may submit that attempt of the job (submit and run)

Any job can write under results/, so these are hostile input like any record: strict types (a "1" is not a node
count, a bool is not a number), no keys rackform never writes, names AWS Batch would accept.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .contract import MAX_REPEATS, runnable_repeats

# AWS Batch job names: up to 128 letters, numbers, hyphens and underscores, starting with a letter or number
# (https://docs.aws.amazon.com/batch/latest/APIReference/API_SubmitJob.html, jobName). A marker's job name is also
# a local file name (rackform/jobs/local.py), so nothing else may pass.
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def _job_name(name: str) -> str:
    if not JOB_NAME.fullmatch(name):
        raise ValueError("not a job name AWS Batch accepts (1-128 letters, digits, '-' or '_')")
    return name


def _repeats(repeats: int | None) -> int | None:
    if repeats is not None and not runnable_repeats(repeats):
        raise ValueError(f"not a whole number from 1 to {MAX_REPEATS}")
    return repeats


JobName = Annotated[str, AfterValidator(_job_name)]
Nodes = Annotated[int, Field(ge=1)]


class _Object(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class BenchmarkJob(_Object):
    """What `rackform submit` asks Batch for: a claim carries it, the marker adds the job id."""

    job_name: JobName
    queue: str
    job_definition: str
    rack: str
    node_group: str
    benchmark: str
    nodes: Nodes
    repeats: Annotated[int | None, AfterValidator(_repeats)] = None


class BenchmarkMarker(BenchmarkJob):
    job_id: str


class WorkloadJob(_Object):
    """What `rackform run` asks Batch for, for one placed workload."""

    workload: str
    job_name: JobName
    queue: str
    job_definition: str
    rack: str
    node_group: str
    tier: str
    nodes: Nodes


class WorkloadMarker(WorkloadJob):
    job_id: str


class Claim(_Object):
    submission: BenchmarkJob | WorkloadJob
    claimed_by: str
    claimed_at: str
    nonce: str


class Candidate(_Object):
    """A node group a decision weighed (rackform.placement.Candidate as `Decision.to_dict` writes it)."""

    rack: str
    node_group: str
    tier: str
    instance_type: str
    capacity: str
    queue: str
    nodes: Nodes
    per_dollar: float | None
    per_dollar_unit: str | None
    measured_jobs: int
    usd_per_hour: float | None
    backlog_vcpus: int | None
    max_vcpus: int | None
    job_duration_s: float
    wait_s: float | Literal["never"] | None
    expected_cost_usd: float | None
    refused: str | None
    notes: list[str] = []


class Placement(_Object):
    """A recorded decision: only a placed or spilled one is recorded, so it always has a chosen node group."""

    run_id: str
    spec: str
    decided_at: str
    workload: str
    workload_class: str = Field(alias="class")
    benchmark: str
    basis: Literal["measured", "seed order"]
    ranking: str = ""
    outcome: Literal["placed", "spilled"]
    line: str
    reason: str
    chosen: Candidate
    preferred: Candidate | None
    candidates: list[Candidate]
