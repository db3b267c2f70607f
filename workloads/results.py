"""Result records: what every benchmark job writes to S3, one JSON document per job, with a schema version."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# 2: validity, invalid_reason, fabric, efa_devices (defaults keep version-1 records readable), and health records.
SCHEMA_VERSION = 2
Status = Literal["succeeded", "failed", "skipped"]
Validity = Literal["valid", "invalid"]
# What carried a collective: "efa" (libfabric's efa provider), "socket" (TCP sockets: NCCL's NET/Socket, libfabric's
# tcp/sockets providers), "local" (one machine's processes, the local executor), "unknown" (a collective whose
# transport the log does not say); None for benchmarks that are not collectives.
Fabric = Literal["efa", "socket", "local", "unknown"]
CheckStatus = Literal["passed", "failed", "not applicable here"]


# The label that tells the repeats of one figure apart ("1", "2", ...) rather than name a different figure: the
# runner measures every benchmark several times and the report takes the median, min and max over this label.
REPEAT_LABEL = "repeat"


class Metric(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str  # e.g. busbw, algbw, tflops, tokens_per_second, read_bw
    value: float  # NaN or infinite: a failed measurement (the report shows it as one, never as a number)
    unit: str  # e.g. GB/s (decimal), TFLOP/s, tokens/s, ms, us, MB/s, IOPS, events/s, MiB/s
    size_bytes: int | None = None  # message or block size, for sweeps
    labels: dict[str, str] = Field(default_factory=dict)  # e.g. {"dtype": "bf16", "op": "read"}

    @field_validator("value", mode="before")
    @classmethod
    def _null_is_nan(cls, value: object) -> object:
        # JSON has no NaN: pydantic writes a NaN or infinite value as null, so null reads back as the NaN it was.
        return float("nan") if value is None else value


def with_labels(metrics: Iterable[Metric], labels: Mapping[str, str]) -> list[Metric]:
    """The metrics with `labels` added to each (a step's own labels, a repeat's number)."""
    return [m.model_copy(update={"labels": {**m.labels, **labels}}) for m in metrics]


class Parsed(BaseModel):
    """What a parser makes of a tool's raw output. Output it cannot read is ok=False with a reason, never a number."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    ok: bool
    reason: str | None = None
    metrics: tuple[Metric, ...] = ()
    details: dict[str, str] = Field(default_factory=dict)  # e.g. {"datatype": "float", "ranks": "16"}


class ResultRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    benchmark: str
    tool: str
    rack: str
    node_group: str
    tier: str
    instance_type: str
    node_count: int
    status: Status
    reason: str | None = None
    metrics: tuple[Metric, ...] = ()
    # With a time zone: a naive time cannot be compared with an aware one, nor placed in time at all.
    started_at: AwareDatetime
    ended_at: AwareDatetime
    environment: dict[str, str] = Field(default_factory=dict)  # versions, AMI and instance ids, AZ
    price_usd_per_hour: float | None = None  # hourly price of the nodes the job used, when known
    raw_log_key: str | None = None
    job_id: str | None = None
    # "invalid": a node of the job failed its health step; the figures are kept for the record but never enter a
    # report's figures or `advise`. invalid_reason names the node and the check.
    validity: Validity = "valid"
    invalid_reason: str | None = None
    fabric: Fabric | None = None
    efa_devices: int | None = None  # EFA devices the collective used (per node), when the log says

    def metric(self, name: str, **labels: str) -> list[Metric]:
        return [m for m in self.metrics if m.name == name and all(m.labels.get(k) == v for k, v in labels.items())]


class HealthCheck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str  # e.g. accelerators, ecc, nvlink, efa, fsx, clock
    status: CheckStatus
    detail: str  # what was seen, against what was planned; or why the check does not apply here


class HealthRecord(BaseModel):
    """One node's health step, written beside the job's record before any benchmark step runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    benchmark: str
    rack: str
    node_group: str
    instance_type: str
    node_index: int
    hostname: str
    checked_at: AwareDatetime
    checks: tuple[HealthCheck, ...]
    versions: dict[str, str] = Field(default_factory=dict)  # driver, runtime and library versions found

    @property
    def healthy(self) -> bool:
        return all(c.status != "failed" for c in self.checks)

    @property
    def failures(self) -> list[HealthCheck]:
        return [c for c in self.checks if c.status == "failed"]


# --- rack acceptance (workloads/accept.py): figures tied to the node that measured them ---------------------------

# "node": one node's single-node tests; "round": one node's side of a pairwise fabric round; "group": the whole
# group's collective and the fabric rounds' finding, written last by node 0 (the job's end).
AcceptPart = Literal["node", "round", "group"]


class AcceptFigure(BaseModel):
    """One figure of an acceptance job, tied to the node that measured it (its index in the job, its instance and
    host); a fabric round's figure also names the other node of the pair and the round."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_index: int  # AWS_BATCH_JOB_NODE_INDEX (main node 0); the slot of a single-node job on a Spot group
    instance_id: str | None  # from the node's identity file; None in the local executor, which has no instance
    host: str
    test: str  # a benchmark of workloads/benchmarks.py (gemm, cpu, storage, ...), "fabric" or "group-collective"
    metric: str  # a headline metric of the test, e.g. tflops_max, events_per_second, bandwidth_max, busbw_max
    value: float  # NaN: a failed measurement
    unit: str
    labels: dict[str, str] = Field(default_factory=dict)  # the headline's labels, e.g. {"dtype": "bf16"}
    headline: str  # the headline's label (workloads.benchmarks.Headline.label), e.g. "bf16", "cpu", "bandwidth"
    node_b: int | None = None  # a fabric pair: the other node (this node is node a)
    round: int | None = None  # a fabric pair: its round, from 1

    @field_validator("value", mode="before")
    @classmethod
    def _null_is_nan(cls, value: object) -> object:
        return float("nan") if value is None else value


class AcceptRecord(BaseModel):
    """One object of an acceptance job (layout.accept_key): a node's single-node figures, its side of one fabric
    round, or node 0's group record, which ends the job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    rack: str
    node_group: str
    benchmark: str  # the job's name segment: layout.ACCEPT_JOB ("accept"), or "accept-<slot>" for a single node
    instance_type: str
    tier: str
    part: AcceptPart
    node_index: int  # who wrote it: the node ("node", "round"), node 0 ("group")
    round: int = 0  # "round": which fabric round, from 1
    nodes: int  # nodes in the job
    status: Status
    reason: str | None = None
    written_at: AwareDatetime
    figures: tuple[AcceptFigure, ...] = ()
    # "group" only: what the pairwise rounds found (workloads.accept.bisect): the nodes and links they isolate as
    # slow, and how many rounds it took.
    rounds: int = 0
    slow_nodes: tuple[int, ...] = ()
    slow_links: tuple[tuple[int, int], ...] = ()
    price_usd_per_hour: float | None = None  # per node, when known


class CertificateHead(BaseModel):
    """What the store can check of an acceptance certificate (layout.certificate_key) before anything reads it:
    whose run it is and its version. rackform/acceptance validates the whole document against its own model."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    run_id: str
    certificate_version: int


class FabricPair(BaseModel):
    """Two nodes measured against each other in a round: node a serves at `address`, node b calls it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    a: int
    b: int
    address: str  # node a's address as the launch rendezvous saw it (authenticated: workloads/launch.py)
    ports: list[int]  # node a serves one measurement on each, in turn
    # Pairs of a round start together (turn 0); a pair of a later turn once the earlier turns' round records are
    # written. The rehearsal's local nodes share one machine's CPUs, so there its pairs take turns.
    turn: int = 0


class FabricSchedule(BaseModel):
    """Node 0's word to every node of an acceptance job (layout.accept_schedule_key): the pairs of fabric round
    `round`, or, when `final`, no more rounds: run the group's collective."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    run_id: str
    rack: str
    node_group: str
    benchmark: str
    round: int
    pairs: list[FabricPair] = []  # a list: strict validation of parsed JSON takes no list as a tuple
    final: bool = False
