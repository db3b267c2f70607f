"""The JSON objects the operator side keeps in the results bucket beside the records, one frozen model each: what
`store.ResultStore` checks every such object against before anything uses it.

    _jobs/<job name>.json                 a benchmark job's marker (`rackform submit`; layout.BenchmarkMarker)
    _workloads/<workload>.json            a workload job's marker (`rackform run`; layout.WorkloadMarker)
    _placements/<workload>.json           the placement decision of a workload (`rackform run`)
    _claims/<job name>/<attempt>.json     who may submit that attempt of the job (submit and run)

Any job can write under results/, so these are hostile input like any record: strict types (a "1" is not a node
count, a bool is not a number), no keys rackform never writes, names AWS Batch would accept.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
    job_duration_s: float
    wait_s: float | Literal["never"] | None
    expected_cost_usd: float | None
    refused: str | None
    notes: list[str] = []


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
    outcome: Literal["placed", "spilled"]
    line: str
    reason: str
    chosen: Candidate
    preferred: Candidate | None
    candidates: list[Candidate]
