"""Workloads: a user's job, its class of work and, per tier it can run on, the image and command to run there.

A workload file is YAML, read like a spec (bounded, safe, duplicate keys refused) and checked by frozen pydantic
models, so a typo is a problem naming the field, the value and what is allowed, with its line number:

    name: llm-serve
    class: inference            # general | training | inference: which measured benchmark ranks the tiers
    max_wait: 30m               # longer than this in the preferred tier's queue and the job spills to the next one
    objective: cost             # cost (default) | time: what ranks the candidates that can take the job
    expected_duration: 2h       # optional: how long the job runs once started (start estimates, Spot risk, ends)
    checkpoint_every: 20m       # optional: a Spot reclaim loses at most this much; omitted: the whole run so far
    utilization: 0.4            # optional: the fraction of the benchmark's figure the job sustains
    slo: {p99_latency_ms: 200}  # optional, inference: only tiers whose measured p99 meets it compete
    work: 2.0e9                 # optional: the job's work in the class's unit (here tokens), for expected cost
    budget_usd: 40              # optional: refuse a tier whose expected cost is higher (needs work)
    placement: {exclude: [gpu]} # optional: pin: TIER, exclude: [TIER...]
    fsx_write: false            # default: the FSx file system is mounted read-only; true to write it
    tiers:
      trainium: {image: ...:neuron, command: [python, serve.py]}
      gpu: {image: ...:cuda, command: [python, serve.py], resources: {gpus: 1}}
"""

from __future__ import annotations

import re
from typing import Any, Literal, cast

from pydantic import Field, StrictInt, ValidationError

from .base import Frozen
from .models import Name, Tier, problems_from_validation_error
from .problems import Problem, SpecError

WorkloadClass = Literal["general", "training", "inference"]
# The OCI platforms an image is built for, as a manifest list names them; a node group's architecture is one of
# them (arm64 -> linux/arm64, x86_64 -> linux/amd64).
Platform = Literal["linux/amd64", "linux/arm64"]
DURATION_PATTERN = r"^([0-9]{1,6}[dhms]){1,4}$"
DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# The unit a workload's `work` is counted in: what the class's benchmark prices per dollar (rackform.placement).
WORK_UNIT: dict[str, str] = {"general": "sysbench cpu events", "inference": "tokens", "training": "TFLOP (bf16)"}


def duration_seconds(text: str) -> int:
    """'1h30m' -> 5400; the pattern (DURATION_PATTERN) has already refused anything else."""
    return sum(int(n) * DURATION_UNITS[u] for n, u in re.findall(r"(\d+)([dhms])", text))


class Resources(Frozen):
    """Per node; omitted, the job takes the whole node (what the node group's benchmark definitions ask for)."""

    vcpus: StrictInt | None = Field(None, ge=1, description="vCPUs per node")
    memory_mib: StrictInt | None = Field(None, ge=4, description="MiB of memory per node")
    gpus: StrictInt | None = Field(None, ge=0, description="GPUs per node (GPU tier only)")
    accelerator_memory_gib: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="GiB of accelerator memory the job needs per node, over all "
        "its GPUs or Neuron devices (checked against the catalog: count x memory of each); default: not checked")


class TierJob(Frozen):
    image: str = Field(min_length=1, max_length=255, description="container image for this tier (an inference "
                       "server may have a Neuron image for trainium and a CUDA image for gpu)")
    command: list[str] = Field(min_length=1, description="the container's command")
    nodes: StrictInt | None = Field(None, ge=1, le=1000, description="nodes on this tier (default: the workload's)")
    resources: Resources | None = Field(None, description="per node on this tier (default: the workload's)")
    environment: dict[str, str] = Field(default_factory=dict, description="extra environment variables")
    platform: Platform | list[Platform] | None = Field(
        None, description="the platform(s) the image is built for: linux/amd64 | linux/arm64, or a list; a node "
        "group of another architecture is refused. Default: not stated (rackform place --live reads the image's "
        "manifest list)")

    @property
    def platforms(self) -> frozenset[str] | None:
        if self.platform is None:
            return None
        return frozenset([self.platform] if isinstance(self.platform, str) else self.platform)


class PlacementOverride(Frozen):
    pin: Tier | None = Field(None, description="run only on this tier, whatever the measurements say")
    exclude: list[Tier] = Field(default_factory=list, description="never run on these tiers")


class Slo(Frozen):
    p99_latency_ms: float = Field(gt=0, allow_inf_nan=False, description="the largest measured p99 latency a tier "
                                  "may have to compete, in milliseconds (the inference benchmark's latency_p99_ms)")


class Workload(Frozen):
    name: Name
    workload_class: WorkloadClass = Field(alias="class", description="general | training | inference")
    tiers: dict[Tier, TierJob] = Field(min_length=1, description="per tier the workload can run on: image, "
                                       "command, nodes, resources")
    nodes: StrictInt = Field(1, ge=1, le=1000, description="nodes the job spans (default 1)")
    resources: Resources = Resources()
    max_wait: str | None = Field(None, pattern=DURATION_PATTERN, description="how long the job may wait in a "
                                 "queue, e.g. 30m, 2h, 1h30m; longer and it spills to the next tier")
    work: float | None = Field(None, gt=0, allow_inf_nan=False, description="the job's work in the class's "
                               "unit: general sysbench cpu events, inference tokens, training TFLOP (bf16)")
    budget_usd: float | None = Field(None, gt=0, allow_inf_nan=False, description="refuse a tier whose expected "
                                     "cost (work / measured work per dollar) is higher; needs work")
    placement: PlacementOverride = PlacementOverride()
    objective: Literal["cost", "time"] = Field("cost", description="what ranks the candidates that can take the job: "
                                               "cost (default: the lowest expected cost) or time (the earliest "
                                               "expected end: start estimate plus run time)")
    expected_duration: str | None = Field(None, pattern=DURATION_PATTERN, description="how long the job runs once "
                                          "started, e.g. 6h; default: the queue's recent median, else the run "
                                          "time its work implies")
    checkpoint_every: str | None = Field(None, pattern=DURATION_PATTERN, description="how often the job saves a "
                                         "checkpoint it resumes from, e.g. 20m; default: none (a Spot reclaim "
                                         "loses the run so far)")
    utilization: float | None = Field(None, gt=0, le=1, allow_inf_nan=False, description="the fraction of the "
                                      "class benchmark's figure the job sustains (e.g. model FLOPs utilisation "
                                      "0.4); scales the expected cost. Default: none, the cost is a lower bound")
    slo: Slo | None = Field(None, description="inference: {p99_latency_ms: N}; only tiers whose measured p99 "
                            "latency meets it compete")
    fsx_write: bool = Field(False, description="mount the cluster's FSx for Lustre file system writable; default "
                            "false: read-only, so the job can neither change nor delete <mount>/data, which the data "
                            "repository association links to your bucket")

    @property
    def max_wait_s(self) -> int | None:
        return None if self.max_wait is None else duration_seconds(self.max_wait)

    @property
    def expected_duration_s(self) -> int | None:
        return None if self.expected_duration is None else duration_seconds(self.expected_duration)

    @property
    def checkpoint_every_s(self) -> int | None:
        return None if self.checkpoint_every is None else duration_seconds(self.checkpoint_every)

    def job_for(self, tier: str) -> TierJob | None:
        return self.tiers.get(cast(Tier, tier))  # any name: one that is no Tier finds nothing

    def nodes_on(self, tier: str) -> int:
        job = self.job_for(tier)
        return job.nodes if job and job.nodes else self.nodes

    def resources_on(self, tier: str) -> Resources:
        job = self.job_for(tier)
        return job.resources if job and job.resources else self.resources


def json_schema() -> dict[str, Any]:
    schema = Workload.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rackform workload"
    return schema


def workload_from_data(data: object, lines: dict[str, int] | None = None) -> Workload:
    """The schema only: rackform.pipeline.parse_workload adds the rules across fields (validate/workload.py)."""
    if not isinstance(data, dict):
        raise SpecError([Problem("error", "<workload>", "a workload is a mapping with keys name, class, tiers...; "
                                 f"got {type(data).__name__}")])
    try:
        return Workload.model_validate(data)
    except ValidationError as e:
        raise SpecError(problems_from_validation_error(e, lines or {}, Workload)) from None
