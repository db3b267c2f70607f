"""Workload jobs on AWS: the job definitions of workloads, and submitting a placed workload once per run.

The policy itself is pure (rackform/placement/); everything here, and the live state it reads (jobs/live.py), is an
AWS call around it. Per run, a workload leaves two objects beside the benchmark results, each written once
(If-None-Match: *, as the bucket policy requires):

    results/<run>/_workloads/<workload>.json    the job it became: queue, job definition, job id
    results/<run>/_placements/<workload>.json   the decision: candidates, figures, start and price bases, the reason

The decision is recorded once Batch has accepted the job (after its marker), so a refused submit leaves none behind;
running the same run id again after that reuses it (and finds the job) instead of placing anew on a queue state
that has changed since. A re-placement (jobs/rebalance.py) is the next run of a chain, <run>-r1, never a second
decision of the same run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from workloads.contract import JobEnvironment
from workloads.layout import (
    WorkloadJob,
    WorkloadJobName,
    placement_key,
    placements_prefix,
    workload_job_key,
    workload_jobs_prefix,
    workload_output_prefix,
)
from workloads.store import AlreadyExists, ResultStore

from .. import aws
from ..placement import Decision
from ..plan import naming
from ..plan.models import NodeGroupPlan, Plan
from ..spec.workload import Workload
from .jobdefs import WORKLOAD_ROLE_TAG, container_properties, registration
from .verified import read_verified

# Where a workload job may write its outputs: s3://<bucket>/workloads/<run>/<workload>/.
WORKLOAD_OUTPUT_VARIABLE = "RACKFORM_WORKLOAD_OUTPUT"


class PlacementError(Exception):
    """A workload that cannot run: no candidate, or a node group that was never deployed."""


# --- job definitions -----------------------------------------------------------------------------------------------

def _digest(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]


def job_definition_request(plan: Plan, group: NodeGroupPlan, workload: Workload, *, bucket: str, job_role_arn: str,
                           fsx_mount: str | None) -> dict[str, Any]:
    """RegisterJobDefinition arguments: the node group's container settings (devices, memlock, scratch and FSx
    mounts, its environment) from jobdefs, with the workload's image, command, resources and environment."""
    job = workload.job_for(group.tier)
    if job is None:
        raise PlacementError(f"workload {workload.name} has no image for tier {group.tier}")
    res, nodes = workload.resources_on(group.tier), workload.nodes_on(group.tier)
    container = container_properties(plan.name, group, image=job.image, bucket=bucket, job_role_arn=job_role_arn,
                                     fsx_mount=fsx_mount, price_usd_per_hour=group.on_demand_usd_per_hour,
                                     fsx_write=workload.fsx_write)
    container["command"] = list(job.command)
    wanted = {r["type"]: r["value"] for r in container["resourceRequirements"]}
    for kind, value in (("VCPU", res.vcpus), ("MEMORY", res.memory_mib), ("GPU", res.gpus)):
        if value is not None:
            wanted[kind] = str(value)
    container["resourceRequirements"] = [{"type": k, "value": v} for k, v in wanted.items()
                                         if not (k == "GPU" and v == "0")]
    env = {e["name"]: e["value"] for e in container["environment"]}
    env.update({"RACKFORM_WORKLOAD": workload.name, **job.environment})
    container["environment"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    request = registration(naming.job_definition(plan.name, group.rack, group.name, workload=workload.name), container,
                           nodes=nodes if nodes > 1 else None)
    # The digest tag makes registering idempotent: an unchanged workload reuses its revision.
    request["tags"] = {"rackform:spec": plan.name, "rackform:workload": workload.name,
                       "rackform:digest": _digest(request)}
    return request


def node_group_settings(batch: aws.BotoClient, plan: Plan, group: NodeGroupPlan) -> tuple[str, str, str | None]:
    """(bucket, workload role ARN, FSx mount) from the node group's deployed benchmark definition: the rack stack
    made the role and tagged the definition with it, and wrote the bucket and mount into it. Workload jobs run
    third-party images, so they never take the benchmarks' job role (which writes results/)."""
    name = naming.job_definition(plan.name, group.rack, group.name, "single")
    found = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    if not found:
        raise PlacementError(f"{group.rack}/{group.name} has no job definition {name}: deploy the rack stack "
                             f"{naming.rack_stack(plan.name, group.rack)} first")
    latest = max(found, key=lambda d: d.get("revision", 0))
    if not (role := (latest.get("tags") or {}).get(WORKLOAD_ROLE_TAG)):
        raise PlacementError(f"{name} names no workload role (tag {WORKLOAD_ROLE_TAG}): deploy the rack stack "
                             f"{naming.rack_stack(plan.name, group.rack)} again, then run")
    props = latest.get("containerProperties") or {}
    env = {e["name"]: e["value"] for e in props.get("environment", [])}
    return env.get(JobEnvironment.variable("bucket"), ""), role, env.get(JobEnvironment.variable("fsx_mount"))


def ensure_job_definition(batch: aws.BotoClient, request: dict[str, Any]) -> str:
    """The ARN of an active revision with the request's digest, registering one only when there is none.

    A name whose revisions are anything else's (a benchmark definition, another spec's or another workload's: names
    are unique per account and Region, and place/run check only this spec's) is refused: the new revision would
    become the latest one, which `submit` and that workload run by name."""
    tags = request["tags"]
    name, owner = request["jobDefinitionName"], (tags["rackform:spec"], tags["rackform:workload"])
    for jd in batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]:
        theirs = jd.get("tags") or {}
        if (theirs.get("rackform:spec"), theirs.get("rackform:workload")) != owner:
            what = (f"spec {theirs.get('rackform:spec')!r}'s {theirs['rackform:job-kind']} benchmark definition"
                    if "rackform:job-kind" in theirs else
                    f"workload {theirs['rackform:workload']!r} of spec {theirs.get('rackform:spec')!r}"
                    if "rackform:workload" in theirs else "not registered by rackform")
            raise PlacementError(f"job definition {name} is already {what} (revision {jd.get('revision')}); workload "
                                 f"{owner[1]!r} would add a revision to it: rename the workload")
        if theirs.get("rackform:digest") == tags["rackform:digest"]:
            active: str = jd["jobDefinitionArn"]
            return active
    registered: str = batch.register_job_definition(**request)["jobDefinitionArn"]
    return registered


# --- running a workload --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SubmittedWorkload:
    """A workload's Batch job as `rackform run` submitted (or found) it: its marker, and whether this call made it."""

    workload: str
    job_name: str
    job_id: str
    queue: str
    job_definition: str
    rack: str
    node_group: str
    tier: str
    nodes: int
    created: bool  # False when the run id had already submitted it


def _record(plan: Plan, run_id: str, decision: Decision) -> bytes:
    return json.dumps({"run_id": run_id, "spec": plan.name, "decided_at": dt.datetime.now(dt.UTC)
                       .isoformat(timespec="seconds"), **decision.to_dict()}, indent=2, sort_keys=True).encode()


def _record_decision(store: ResultStore, plan: Plan, run_id: str, decision: Decision) -> dict[str, Any]:
    """Record the run's decision, or keep the one another `run` of the same id recorded first for the same job."""
    key = placement_key(run_id, decision.workload)
    try:
        store.put_once(key, _record(plan, run_id, decision), "application/json")
    except AlreadyExists:
        pass
    return _read_back(store, key)


def _read_back(store: ResultStore, key: str) -> dict[str, Any]:
    """The verified decision at `key`, just written (rackform never deletes one)."""
    if (decision := read_verified(store, key)) is None:
        raise PlacementError(f"s3://{store.bucket}/{key} was written a moment ago and is gone: decisions are never "
                             "deleted")
    return decision


def _wait_for_decision(store: ResultStore, run_id: str, job: SubmittedWorkload, wait_s: float, poll_s: float
                       ) -> dict[str, Any]:
    """The decision of the `run` whose job the marker names: it records it right after the marker."""
    key = placement_key(run_id, job.workload)
    waited = 0.0
    while (decision := read_verified(store, key)) is None:
        if waited >= wait_s:
            raise PlacementError(
                f"run {run_id} submitted {job.job_name} (job {job.job_id}) for {job.workload} but recorded no "
                f"decision after {waited:.0f} s: the `rackform run` that submitted it stopped first. The job stands "
                f"(`rackform status {run_id}` does not show it); to place the workload again, cancel it (aws batch "
                f"terminate-job --job-id {job.job_id} --reason replaced) and use a new run id")
        time.sleep(poll_s)
        waited += poll_s
    return decision


def _group(plan: Plan, run_id: str, workload: Workload, rack_name: str, node_group: str) -> NodeGroupPlan:
    rack = plan.rack(rack_name)
    group = next((g for g in rack.node_groups if g.name == node_group), None) if rack else None
    if group is None:
        raise PlacementError(f"run {run_id} placed {workload.name} on {rack_name}/{node_group}, which spec "
                             f"{plan.name} no longer has; use a new run id")
    return group


def run_workload(plan: Plan, workload: Workload, *, run_id: str, store: ResultStore,
                 batch: aws.BotoClient, submitter: aws.BotoClient, lookup: aws.BotoClient,
                 decide: Callable[[], Decision], wait_s: float | None = None
                 ) -> tuple[dict[str, Any], SubmittedWorkload]:
    """Place and submit one workload, each once per run: (the recorded decision, the job).

    The decision is recorded once Batch has the job (after the job's marker), never before: a submit Batch refuses
    leaves a failed claim and no decision, so the same run id places again. Until then the claim is the decision in
    flight. Two `run`s of one id that decide alike make one job (the claim); that decide differently both submit,
    and the one whose marker lands second cancels its own job and takes the first one's decision (waiting up to
    `wait_s`, default submit's CLAIM_WAIT_S, for it to be recorded)."""
    from . import submit as sub  # boto3 at import: loaded only when a job is submitted

    wait_s = sub.CLAIM_WAIT_S if wait_s is None else wait_s

    if (recorded := read_verified(store, placement_key(run_id, workload.name))) is not None:
        chosen = recorded["chosen"]
        group = _group(plan, run_id, workload, chosen["rack"], chosen["node_group"])
        return recorded, _submit(plan, group, workload, run_id=run_id, store=store, batch=batch,
                                 submitter=submitter, lookup=lookup)
    decision = decide()
    if decision.chosen is None:
        raise PlacementError(decision.line())
    group = _group(plan, run_id, workload, decision.chosen.rack, decision.chosen.node_group)
    try:
        job = _submit(plan, group, workload, run_id=run_id, store=store, batch=batch, submitter=submitter,
                      lookup=lookup)
    except AlreadyExists:  # another run's marker, for a job on another node group, landed first
        name = _job_name(run_id, group, workload)
        if (own := sub.find_job(lookup, group.job_queue, name)) is not None:
            batch.cancel_job(jobId=own, reason=f"rackform: run {run_id} placed {workload.name} elsewhere first")
        if (marker := read_verified(store, workload_job_key(run_id, workload.name))) is None:
            raise
        first = SubmittedWorkload(**marker, created=False)
        return _wait_for_decision(store, run_id, first, wait_s, sub.CLAIM_POLL_S), first
    except ClientError as e:
        if aws.is_retryable(e):
            raise
        raise PlacementError(f"AWS Batch refused {workload.name} on {group.rack}/{group.name} "
                             f"({aws.error_code(e)}: {aws.error_message(e)}); no decision was recorded: fix that, "
                             f"then run again (the same run id places anew)") from None
    if (job.rack, job.node_group) != (group.rack, group.name):  # the marker was there: that run's decision stands
        return _wait_for_decision(store, run_id, job, wait_s, sub.CLAIM_POLL_S), job
    return _record_decision(store, plan, run_id, decision), job


def _job_name(run_id: str, group: NodeGroupPlan, workload: Workload) -> str:
    return str(WorkloadJobName(run_id=run_id, rack=group.rack, node_group=group.name, workload=workload.name))


def _submit(plan: Plan, group: NodeGroupPlan, workload: Workload, *, run_id: str, store: ResultStore,
            batch: aws.BotoClient, submitter: aws.BotoClient, lookup: aws.BotoClient) -> SubmittedWorkload:
    """The run's job of the workload: the one its marker names, else one submitted on `group` now through the
    claim protocol of `rackform submit` (two `run`s of one run id at once still make one job)."""
    from . import submit as sub

    marker = workload_job_key(run_id, workload.name)
    if (job := read_verified(store, marker)) is not None:
        return SubmittedWorkload(**job, created=False)
    bucket, role, fsx = node_group_settings(batch, plan, group)
    arn = ensure_job_definition(batch, job_definition_request(plan, group, workload, bucket=bucket or store.bucket,
                                                              job_role_arn=role, fsx_mount=fsx))
    name = _job_name(run_id, group, workload)
    # The one place the job's role lets it write (cdk_constructs/jobs.py WorkloadRole), told to the job.
    output = f"s3://{bucket or store.bucket}/{workload_output_prefix(run_id, workload.name)}"
    env = {"environment": [{"name": JobEnvironment.variable("run_id"), "value": run_id},
                           {"name": WORKLOAD_OUTPUT_VARIABLE, "value": output}]}
    request: dict[str, Any] = {"jobName": name, "jobQueue": group.job_queue, "jobDefinition": arn,
                               "tags": {"rackform:run": run_id, "rackform:workload": workload.name},
                               "propagateTags": True}
    nodes = workload.nodes_on(group.tier)
    if nodes > 1:
        request["nodeOverrides"] = {"nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": env}]}
    else:
        request["containerOverrides"] = env
    fields = WorkloadJob(workload=workload.name, job_name=name, queue=group.job_queue, job_definition=arn,
                         rack=group.rack, node_group=group.name, tier=group.tier, nodes=nodes).model_dump()
    return sub.submit_exactly_once(store, submitter, lookup, run_id, fields, request, marker=marker,
                                   made=SubmittedWorkload)


# --- reading back --------------------------------------------------------------------------------------------------

def _figure(value: float | None) -> float | None:
    """A figure of a verified decision (a number or None by its schema), or None (unknown) for a NaN or infinity."""
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class WorkloadState:
    workload: str
    workload_class: str
    outcome: str  # placed | spilled
    where: str
    tier: str
    job_id: str | None
    batch_status: str | None
    batch_reason: str | None
    spilled_from: str | None = None  # rack/node group of the preferred candidate a spill-over left
    usd_per_hour: float | None = None  # the chosen node group's, for the job's nodes; None: unknown
    expected_cost_usd: float | None = None  # None: the decision recorded none


def workload_states(run_id: str, store: ResultStore, lookup: aws.BotoClient | None) -> list[WorkloadState]:
    """The run's workload jobs, from their verified decisions and markers (a listing of each one's folder, never
    of the whole run: a run of 10,000 benchmark jobs has 40,000 objects beside them), with Batch's status.
    Objects that cannot be believed are left out and named in store.problems."""
    markers = {m["workload"]: m
               for m in store.read(run_id, "workload", within=workload_jobs_prefix(run_id))["workload"]}
    placed = [(d, markers.get(d["workload"], {}))
              for d in store.read(run_id, "placement", within=placements_prefix(run_id))["placement"]]
    jobs = aws.describe_jobs(lookup, [j["job_id"] for _, j in placed if j]) if lookup is not None else {}
    out = []
    for d, j in placed:
        chosen, preferred = d["chosen"], d["preferred"]
        batch = jobs.get(j.get("job_id", ""), {})
        spilled = f"{preferred['rack']}/{preferred['node_group']}" if d["outcome"] == "spilled" and preferred \
            else None
        out.append(WorkloadState(d["workload"], d["class"], d["outcome"], f"{chosen['rack']}/{chosen['node_group']}",
                                 chosen["tier"], j.get("job_id"), batch.get("status"), batch.get("statusReason"),
                                 spilled, _figure(chosen["usd_per_hour"]), _figure(chosen["expected_cost_usd"])))
    return out
