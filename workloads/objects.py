"""The JSON objects the operator side keeps in the results bucket beside the records, one frozen model each: what
`store.ResultStore` checks every such object against before anything uses it.

    _jobs/<job name>.json                 a benchmark job's marker (`rackform submit`; layout.BenchmarkMarker)
    _workloads/<workload>.json            a workload job's marker (`rackform run`; layout.WorkloadMarker)
    _placements/<workload>.json           the placement decision of a workload (`rackform run`)
    _claims/<job name>/<attempt>.json     who may submit that attempt of the job (submit and run)
    _summary/<seq>.json                   the run's summary as of an update (`rackform status` and `runs`)

and, beside the runs, what the rack's repair function did (workloads/repair.py, layout.repair_key):

    results/_repairs/<rack>/<node group>/<stopped at>-<job id>-<attempt>.json   a repair (RepairRecord)

Any job can write under results/, so these are hostile input like any record: strict types (a "1" is not a node
count, a bool is not a number), no keys rackform never writes, names AWS Batch would accept.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt

# The job models (and their names) are the contract with rackform's submit and run: they live in layout.py.
from .layout import BenchmarkJob, Nodes, StoredObject, WorkloadJob


class Claim(StoredObject):
    submission: BenchmarkJob | WorkloadJob
    claimed_by: str
    claimed_at: str
    nonce: str


class Candidate(StoredObject):
    """A node group a decision weighed (rackform.placement.PlacementCandidate as `Decision.to_dict` writes it)."""

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
    job_duration_s: float | None
    wait_s: float | Literal["never"] | None
    expected_cost_usd: float | None
    refused: str | None
    notes: list[str] = []
    # Issue 20: the constraint verdicts, start and price bases, cost per unit and the evidence behind the figure
    # (absent in decisions recorded before it).
    verdicts: list[str] = []
    start_basis: str = ""
    price_basis: str = ""
    usd_per_unit: float | None = None
    per_dollar_low: float | None = None
    per_dollar_high: float | None = None
    rehearsal: bool = False
    p99_latency_ms: float | None = None
    run_s: float | None = None
    interruption: str = ""
    cost_is_lower_bound: bool = False


class Placement(StoredObject):
    """A recorded decision: only a placed or spilled one is recorded, so it always has a chosen node group."""

    run_id: str
    spec: str
    decided_at: str
    workload: str
    workload_class: str = Field(alias="class")
    benchmark: str
    basis: Literal["measured", "seed order"]
    ranking: str = ""
    objective: Literal["cost", "time"] = "cost"
    warnings: list[str] = []
    outcome: Literal["placed", "spilled"]
    line: str
    reason: str
    chosen: Candidate
    preferred: Candidate | None
    candidates: list[Candidate]


class RepairRecord(StoredObject):
    """What the repair function did about one job attempt that ended on a health failure (workloads/repair.py's
    `record` writes it, in AWS Lambda, without this model)."""

    rack: str
    node_group: str
    job_id: str
    job_name: str
    job_queue: str
    attempt: int = Field(ge=1)
    failure: Literal["health-step", "host-fault"]
    action: Literal["replace", "alert"]  # replaced the node, or only alerted (the group's hourly budget was spent)
    reason: str = Field(max_length=1000)
    status_reason: str = Field(max_length=1000)
    exit_code: int | None
    container_instance_arn: str | None
    instance_id: str | None
    log_stream: str | None  # the attempt's CloudWatch Logs stream: the node's health lines are in it
    stopped_at: str
    decided_at: str
    steps: dict[str, str]  # drain, terminate: what each did ("DRAINING", "terminating" or "failed: ...")


class RunSummary(StoredObject):
    """What `rackform runs` shows of a run, from one small object instead of every marker and record: written by
    whoever has just read the whole run without a problem (`status`, or `runs` itself), as a new object per update.
    `final` once every job it counted has its record: later readers take it as it is unless the run's `_jobs/`
    listing has grown since (more jobs submitted under the same run id)."""

    run_id: str
    seq: NonNegativeInt
    written_at: str
    started: str  # the first object of the run, as S3 listed it (ISO 8601)
    clusters: list[str]
    jobs: NonNegativeInt
    records: NonNegativeInt
    succeeded: NonNegativeInt
    failed: NonNegativeInt
    skipped: NonNegativeInt

    @property
    def pending(self) -> int:
        return max(0, self.jobs - self.records)

    @property
    def final(self) -> bool:
        return self.jobs > 0 and self.pending == 0
