"""Hard constraints: a node group is a candidate only if the job can run there at all. Each check gives a verdict:
passed, refused (with the reason and what would fix it) or unknown (stated, never taken as passed silently).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..capacity import of as capacity_kind
from ..plan.models import NodeGroupPlan
from ..reference.catalog import load_catalog
from ..spec.workload import Workload
from .evidence import GroupHealth
from .state import READY_STATE, READY_STATUS, ImagePlatforms, QueueState

# The platform an image must offer for a node of each architecture (the OCI image index / Docker manifest list
# names platforms as os/architecture; ECR stores multi-architecture images so:
# https://docs.aws.amazon.com/AmazonECR/latest/userguide/docker-push-multi-architecture-image.html).
NODE_PLATFORM = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}


@dataclass(frozen=True)
class Constraint:
    check: str
    ok: bool | None  # None: could not be checked
    text: str

    def line(self) -> str:
        mark = {True: "ok", False: "REFUSED", None: "unknown"}[self.ok]
        return f"{self.check} {mark}: {self.text}"


def _fit(workload: Workload, g: NodeGroupPlan) -> list[Constraint]:
    nodes, res = workload.nodes_on(g.tier), workload.resources_on(g.tier)
    kind = capacity_kind(g.capacity.type)
    out: list[Constraint] = []
    if nodes > g.max_job_nodes:
        single = "" if kind.multi_node else f", {kind.label}: one node per job"
        out.append(Constraint("nodes", False, f"needs {nodes} nodes; one job here spans at most {g.max_job_nodes}"
                                           f"{single}"))
    elif nodes > 1:
        # A multi-node job's ranks talk over the fabric: Batch runs EFA only on instances in one cluster placement
        # group (https://docs.aws.amazon.com/batch/latest/userguide/efa.html) and asks one for multi-node jobs
        # (https://docs.aws.amazon.com/batch/latest/userguide/mnp-ce.html); a Capacity Block's instances are placed
        # together by AWS (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-capacity-blocks.html).
        grouped = g.placement_group is not None or kind.placement == "aws"
        if not g.efa_interfaces or not grouped:
            missing = " and ".join(w for w, bad in (("EFA", not g.efa_interfaces),
                                                    ("a cluster placement group", not grouped)) if bad)
            out.append(Constraint("nodes", False, f"needs {nodes} nodes; {g.instance_type} here has no {missing}: a "
                                               "multi-node job's ranks would talk over TCP across the zone"))
        else:
            out.append(Constraint("nodes", True, f"{nodes} nodes with EFA x{g.efa_interfaces}"
                                              f"{' in ' + g.placement_group if g.placement_group else ''}"))
    if res.vcpus and res.vcpus > g.vcpus_per_node:
        out.append(Constraint("vcpus", False, f"needs {res.vcpus} vCPUs a node; {g.instance_type} has "
                                           f"{g.vcpus_per_node}"))
    if res.memory_mib and res.memory_mib > g.job_memory_mib:
        out.append(Constraint("memory", False, f"needs {res.memory_mib:,} MiB a node; {g.instance_type} has "
                                            f"{g.memory_mib_per_node:,}, of which a job gets {g.job_memory_mib:,} "
                                            "(the rest is kept for the ECS agent and the system)"))
    elif res.memory_mib:
        out.append(Constraint("memory", True, f"{res.memory_mib:,} of {g.job_memory_mib:,} MiB a job gets"))
    if res.gpus and res.gpus > g.gpus_per_node:
        out.append(Constraint("gpus", False, f"needs {res.gpus} GPUs a node; {g.instance_type} has {g.gpus_per_node}"))
    if res.accelerator_memory_gib:
        out.append(_accelerator_memory(res.accelerator_memory_gib, g))
    return out


def _accelerator_memory(need_gib: float, g: NodeGroupPlan) -> Constraint:
    itype = load_catalog().get(g.instance_type)
    if itype is None:
        return Constraint("accelerator memory", None, f"{g.instance_type} is not in the catalog")
    acc = itype.accelerator
    if acc is None:
        return Constraint("accelerator memory", False, f"needs {need_gib:g} GiB of accelerator memory a node; "
                                                    f"{g.instance_type} has no accelerators")
    have = acc.count * acc.memory_mib_each / 1024
    text = f"{acc.count} x {acc.name} with {acc.memory_mib_each / 1024:g} GiB each: {have:g} GiB a node"
    if need_gib > have:
        return Constraint("accelerator memory", False, f"needs {need_gib:g} GiB a node; {text}")
    return Constraint("accelerator memory", True, f"{need_gib:g} of {have:g} GiB a node")


def _platform(workload: Workload, g: NodeGroupPlan, images: ImagePlatforms) -> Constraint:
    job = workload.job_for(g.tier)
    assert job is not None  # candidates are the groups the workload has a job for
    node = NODE_PLATFORM[g.architecture]
    read = images.get(job.image)
    platforms, source = ((read, "its manifest list") if read is not None else
                         (job.platforms, f"tiers.{g.tier}.platform") if job.platforms is not None else (None, ""))
    if platforms is None:
        return Constraint("platform", None, f"the image's platforms are neither stated (tiers.{g.tier}.platform) nor "
                                         f"read (--live): not checked against {node}")
    if node not in platforms:
        return Constraint("platform", False, f"{g.instance_type} runs {node}; {source} names "
                                          f"{', '.join(sorted(platforms))}: build the image for {node} or leave "
                                          f"this tier out")
    return Constraint("platform", True, f"{node} ({source})")


def _health(newest: GroupHealth | None) -> Constraint | None:
    if newest is None:
        return None
    when = newest.at.strftime("%Y-%m-%d %H:%M UTC")
    if newest.healthy:
        return Constraint("health", True, f"passed its latest health check (run {newest.run_id}, {when})")
    return Constraint("health", False, f"failing: its latest health check (run {newest.run_id}, {when}) failed: "
                                    f"{newest.reason or 'a node failed'}; fix the nodes or run the benchmarks again")


def _ready(state: QueueState | None, g: NodeGroupPlan) -> list[Constraint]:
    out = []
    for what, name, st, status in (("job queue", g.job_queue, state and state.queue_state,
                                    state and state.queue_status),
                                   ("compute environment", g.compute_environment, state and state.ce_state,
                                    state and state.ce_status)):
        if st is None or status is None:
            out.append(Constraint(what, None, f"{name}'s state was not read"))
        elif (st, status) != (READY_STATE, READY_STATUS):
            reason = f" ({state.ce_status_reason})" if state and what != "job queue" and state.ce_status_reason \
                else ""
            out.append(Constraint(what, False, f"{name} is {st}/{status}{reason}: Batch starts no job there until it "
                                            f"is {READY_STATE}/{READY_STATUS}"))
        else:
            out.append(Constraint(what, True, f"{READY_STATE}/{READY_STATUS}"))
    return out


def _reservation(g: NodeGroupPlan, state: QueueState | None, start_s: float | None,
                 expected_s: float | None) -> Constraint | None:
    kind = capacity_kind(g.capacity.type)
    if not kind.needs_reservation_id:
        return None
    rid = g.capacity.reservation_id
    if state is None or state.reservation_state is None:
        return Constraint("reservation", None, f"{rid}'s state was not read")
    if state.reservation_state != "active":
        return Constraint("reservation", False, f"{kind.label} {rid} is {state.reservation_state}, not active: no "
                                             "instance can launch into it")
    if state.reservation_end is None:
        open_ended = state.reservation_end_type == "unlimited"
        return Constraint("reservation", True if open_ended else None,
                       f"{rid} is active" + ("" if open_ended else "; its end was not read"))
    # EC2 ends a Capacity Block's instances before its end time (KindFacts.termination_lead).
    lead = kind.termination_lead or dt.timedelta(0)
    until = state.reservation_end - lead
    ends = f"{rid} ends {state.reservation_end:%Y-%m-%d %H:%M} UTC" + (
        f" (its instances stop {lead.total_seconds() / 60:.0f} min before)" if lead else "")
    if state.read_at is None or expected_s is None or start_s is None:
        missing = "expected_duration" if expected_s is None else "when the job would start"
        return Constraint("reservation", None, f"{ends}; {missing} unknown: cannot tell whether it outlasts the job")
    job_end = state.read_at + dt.timedelta(seconds=start_s + expected_s)
    if job_end > until:
        return Constraint("reservation", False, f"{ends}; the job would run until {job_end:%Y-%m-%d %H:%M} UTC")
    return Constraint("reservation", True, f"{ends}, after the job's expected end {job_end:%H:%M} UTC")


def verdicts(workload: Workload, g: NodeGroupPlan, state: QueueState | None, images: ImagePlatforms,
             health: GroupHealth | None, *, start_s: float | None, expected_s: float | None) -> tuple[Constraint, ...]:
    """Every hard constraint of running `workload` on `g`; `health` is the group's newest verdict (its records),
    `start_s` and `expected_s` when the job would start and how long it runs (None: unknown)."""
    found = [*_fit(workload, g), _platform(workload, g, images), _health(health), *_ready(state, g),
             _reservation(g, state, start_s, expected_s)]
    return tuple(v for v in found if v is not None)


def image_architecture_warnings(workload: Workload, groups: list[NodeGroupPlan]) -> list[str]:
    """One image reference under tiers of both architectures with no platform stated: which one runs where is
    the registry's to say, and a single-architecture image fails on the other one at start."""
    arches: dict[str, set[str]] = {}
    tiers: dict[str, set[str]] = {}
    for g in groups:
        job = workload.job_for(g.tier)
        if job is not None and job.platform is None:
            arches.setdefault(job.image, set()).add(g.architecture)
            tiers.setdefault(job.image, set()).add(g.tier)
    return [f"{image} runs on {' and '.join(sorted(arches[image]))} node groups (tiers "
            f"{', '.join(sorted(tiers[image]))}) and no platform is stated: set tiers.<tier>.platform (or use "
            "--live to read its manifest list)"
            for image in sorted(arches) if len(arches[image]) > 1]
