"""A workload's rules across fields, what its schema cannot say: each names the field, the value and what is allowed."""

from __future__ import annotations

from workloads.contract import PREFIX

from ..spec.workload import WORK_UNIT, Workload
from .core import Found, Rule, WorkloadRule

_OWN = "docs/allocation.md"  # rackform's own placement rules: documented there, no AWS fact behind them


def budget_needs_work(w: Workload) -> Found:
    if w.budget_usd is not None and w.work is None:
        yield "budget_usd", (f"{w.budget_usd:g} needs `work` (the job's {WORK_UNIT[w.workload_class]}) to estimate a "
                             "cost to hold against it")


def pin_has_image(w: Workload) -> Found:
    pin = w.placement.pin
    if pin is not None and pin not in w.tiers:
        yield "placement.pin", f"{pin!r} has no entry under tiers; pin one of {', '.join(w.tiers)}"


def not_all_excluded(w: Workload) -> Found:
    left = [t for t in w.tiers if t not in w.placement.exclude]
    if not left:
        yield "placement.exclude", (f"{', '.join(w.placement.exclude)} excludes every tier the workload has an image "
                                    f"for ({', '.join(w.tiers)})")
    elif w.placement.pin in w.placement.exclude:
        yield "placement.pin", f"{w.placement.pin!r} is both pinned and excluded"


def gpus_only_on_gpu(w: Workload) -> Found:
    for tier in w.tiers:
        if tier != "gpu" and w.resources_on(tier).gpus:
            own = w.job_for(tier)
            where = f"tiers.{tier}.resources.gpus" if own and own.resources else "resources.gpus"
            yield where, (f"{w.resources_on(tier).gpus} GPUs on tier {tier}: only the gpu tier has GPUs; set gpus "
                          "under tiers.gpu.resources")


def checkpoint_within_duration(w: Workload) -> Found:
    every, duration = w.checkpoint_every_s, w.expected_duration_s
    if every is not None and duration is not None and every > duration:
        yield "checkpoint_every", (f"{w.checkpoint_every} is longer than expected_duration {w.expected_duration}: "
                                   "the job would end before its first checkpoint; shorten it or leave it out")


def slo_needs_inference(w: Workload) -> Found:
    if w.slo is not None and w.workload_class != "inference":
        yield "slo", (f"a latency SLO is measured by the inference benchmark only; class {w.workload_class} has no "
                      "p99 latency to hold it against: remove slo or use class inference")


def utilization_needs_work(w: Workload) -> Found:
    if w.utilization is not None and w.work is None:
        yield "utilization", (f"{w.utilization:g} scales the expected cost, which needs `work` (the job's "
                              f"{WORK_UNIT[w.workload_class]}): without it there is no cost to scale")


def _env_name_problem(name: str) -> str | None:
    # Batch reserves AWS_BATCH* for the variables it sets ("environment",
    # https://docs.aws.amazon.com/batch/latest/APIReference/API_ContainerProperties.html); RACKFORM_* is the job
    # contract rackform writes into the same list (workloads/contract.py), which a workload's entry would replace.
    if not name:
        return "an empty name is no environment variable"
    if "=" in name or "\0" in name:
        return f"contains {'=' if '=' in name else 'a NUL'}, which cannot be part of an environment variable's name"
    for prefix, owner in (("AWS_BATCH", "AWS Batch reserves for the variables it sets"),
                          (PREFIX, "rackform reserves for the job environment it writes")):
        if name.startswith(prefix):
            return f"starts with {prefix}, which {owner}"
    return None


def environment_names(w: Workload) -> Found:
    for tier, job in w.tiers.items():
        for name in job.environment:
            if why := _env_name_problem(name):
                yield f"tiers.{tier}.environment", f"{name!r} {why}; rename it"


RULES: tuple[WorkloadRule, ...] = (
    Rule(budget_needs_work, "error", "a budget comes with the work to price against it", _OWN),
    Rule(pin_has_image, "error", "a pinned tier has an image", _OWN),
    Rule(not_all_excluded, "error", "exclusions leave a tier, and the pinned tier is not excluded", _OWN),
    Rule(gpus_only_on_gpu, "error", "GPUs are asked only on the gpu tier",
         "https://docs.aws.amazon.com/batch/latest/APIReference/API_ResourceRequirement.html"),
    Rule(checkpoint_within_duration, "error", "a checkpoint interval fits inside the expected duration", _OWN),
    Rule(slo_needs_inference, "error", "a latency SLO only on inference workloads", _OWN),
    Rule(utilization_needs_work, "warning", "utilization comes with the work whose cost it scales", _OWN),
    Rule(environment_names, "error", "environment names are neither AWS Batch's nor rackform's",
         "https://docs.aws.amazon.com/batch/latest/APIReference/API_ContainerProperties.html"),
)
