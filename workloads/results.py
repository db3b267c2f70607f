"""Result records: what every benchmark job writes to S3, one JSON document per job, with a schema version."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
Status = Literal["succeeded", "failed", "skipped"]


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

    def metric(self, name: str, **labels: str) -> list[Metric]:
        return [m for m in self.metrics if m.name == name and all(m.labels.get(k) == v for k, v in labels.items())]
