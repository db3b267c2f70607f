"""The health step: what every node of a benchmark job checks before any figure is taken.

Each check is a pure function over a tool's output and what the plan promised the node, returning a HealthCheck
that "passed", "failed" or is "not applicable here" (with the reason). `collect` runs the tools that are present
and calls the checks. A node that fails any check makes its job's records invalid (workloads.run): a figure from
a node with 7 of 8 GPUs, a dead NVLink or no EFA is a measurement of a broken node, not of the instance type.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypedDict, Unpack

from .benchmarks import NodeContext, lustre_mounted
from .results import HealthCheck, HealthRecord

NA: Final = "not applicable here"


def _check(name: str, ok: bool, detail: str) -> HealthCheck:
    return HealthCheck(name=name, status="passed" if ok else "failed", detail=detail)


def not_applicable(name: str, why: str) -> HealthCheck:
    return HealthCheck(name=name, status=NA, detail=why)


def check_gpus(csv: str, planned: int) -> list[HealthCheck]:
    """`nvidia-smi --query-gpu=index,name,ecc.errors.uncorrected.volatile.total --format=csv,noheader`: the GPUs
    counted against the plan, and uncorrected ECC errors since the driver loaded (the field is "[N/A]" where ECC
    is off or not supported: that is reported, not failed)."""
    # Only rows that start with a GPU index: a failing nvidia-smi prints its error instead (and the runner appends
    # the exit code), which must count as no GPU, not as one.
    rows = [f for line in csv.splitlines() if (f := [x.strip() for x in line.split(",")])[0].isdigit()]
    names = sorted({r[1] for r in rows if len(r) > 1})
    count = _check("gpus", len(rows) == planned,
                   f"{len(rows)} of {planned} planned GPUs visible ({', '.join(names) or 'none'})")
    bad = {r[0]: r[2] for r in rows if len(r) > 2 and r[2].isdigit() and int(r[2]) > 0}
    unknown = [r[0] for r in rows if len(r) < 3 or not r[2].isdigit()]
    detail = (f"uncorrected volatile ECC errors on GPU {', '.join(f'{i} ({n})' for i, n in bad.items())}" if bad
              else "no uncorrected ECC errors" + (f"; not reported by GPU {', '.join(unknown)}" if unknown else ""))
    return [count, _check("ecc", not bad, detail)]


NVLINK = re.compile(r"^\s*Link (\d+): (.+?)\s*$")


def check_nvlink(status: str) -> HealthCheck:
    """`nvidia-smi nvlink --status`: every link prints `Link N: <speed> GB/s`, or `<inactive>` when it is down. GPUs
    without NVLink (g5, g6: PCIe only) list no links: the check does not apply to them."""
    links = [m.groups() for line in status.splitlines() if (m := NVLINK.match(line))]
    if not links:
        return not_applicable("nvlink", "nvidia-smi lists no NVLink links: GPUs on PCIe only")
    down = [n for n, state in links if "inactive" in state.lower()]
    return _check("nvlink", not down, f"{len(links) - len(down)} of {len(links)} links active"
                  + (f"; inactive: link {', '.join(sorted(set(down), key=int))}" if down else ""))


def check_neuron(neuron_ls_json: str, planned_devices: int, planned_cores: int) -> list[HealthCheck]:
    """`neuron-ls --json-output`: one object per Neuron device with its `nc_count` (NeuronCores)."""
    try:
        devices = json.loads(neuron_ls_json)
        cores = sum(int(d.get("nc_count", 0)) for d in devices)
    except (ValueError, TypeError, AttributeError) as e:
        return [_check("neuron", False, f"neuron-ls --json-output not understood: {e}")]
    return [_check("neuron-devices", len(devices) == planned_devices,
                   f"{len(devices)} of {planned_devices} planned Neuron devices"),
            _check("neuron-cores", cores == planned_cores, f"{cores} of {planned_cores} planned NeuronCores")]


def efa_domains(fi_info: str) -> set[str]:
    """The EFA devices libfabric's efa provider offers: `fi_info -p efa` prints one block per (device, endpoint
    type), each with `domain: rdmapXsY-rdm` (or `-dgrm`); one device, one name before the suffix."""
    return {m[1] for m in re.finditer(r"^\s*domain:\s*(\S+?)(?:-rdm|-dgrm)?\s*$", fi_info, re.M)}


def check_efa(fi_info: str | None, uverbs: int, planned: bool) -> HealthCheck:
    """The job definition maps every planned EFA's /dev/infiniband/uverbsN into the container (a device path
    missing on the host stops the container from starting), so the uverbs count is the plan's; libfabric's efa
    provider must offer as many devices, or collectives fall back to sockets."""
    if not planned:
        return not_applicable("efa", "the node group has no EFA")
    if fi_info is None:
        return _check("efa", False, "fi_info not found: the EFA installer's libfabric is missing from the image")
    found = efa_domains(fi_info)
    return _check("efa", uverbs > 0 and len(found) == uverbs,
                  f"{len(found)} EFA devices from fi_info -p efa, {uverbs} /dev/infiniband/uverbs* in the container")


def check_fsx(mount_path: str | None, mounts: str = "/proc/mounts") -> HealthCheck:
    if not mount_path:
        return not_applicable("fsx", "the cluster has no FSx for Lustre file system")
    mounted = lustre_mounted(mount_path, mounts)
    return _check("fsx", mounted, f"Lustre {'mounted' if mounted else 'not mounted'} at {mount_path}")


def check_clock(tracking: str) -> HealthCheck:
    """`chronyc tracking` (the Amazon Time Sync Service through chrony on AL2023): `Leap status : Normal` once
    synchronised, and `System time : X seconds fast|slow of NTP time`."""
    leap = re.search(r"^Leap status\s*:\s*(.+?)\s*$", tracking, re.M)
    offset = re.search(r"^System time\s*:\s*([0-9.]+) seconds (fast|slow)", tracking, re.M)
    if leap is None:
        return _check("clock", False, "chronyc tracking printed no leap status")
    synced = leap[1] != "Not synchronised"
    # 100 ms: the records' start and end times are compared across nodes; chrony keeps EC2 within microseconds.
    close = offset is None or float(offset[1]) < 0.1
    return _check("clock", synced and close, f"leap status {leap[1]}"
                  + (f", {offset[1]} s {offset[2]} of NTP time" if offset else ""))


Runner = Callable[[list[str]], "str | None"]


def run_tool(argv: list[str], timeout_s: float = 30) -> str | None:
    """A tool's stdout, or None when it is not installed; a tool that fails returns what it printed."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        return proc.stdout if proc.returncode == 0 else f"{proc.stdout}\n[exit {proc.returncode}] {proc.stderr}"
    except (OSError, subprocess.SubprocessError) as e:
        return f"[cannot run {argv[0]}: {e}]"


class Probes(TypedDict, total=False):
    """What `collect` runs and reads, given by the tests instead of this machine's tools, uverbs devices and mounts."""

    run: Runner
    uverbs: int | None
    mounts: str


def collect(ctx: NodeContext, *, neuron_cores: int, run: Runner = run_tool, uverbs: int | None = None,
            mounts: str = "/proc/mounts") -> tuple[list[HealthCheck], dict[str, str]]:
    """Run this node's checks. A tool the plan needs that is missing fails on a real node; under the local executor
    (a rehearsal on this machine, which has none of the planned hardware) the check says it does not apply."""
    checks: list[HealthCheck] = []
    versions: dict[str, str] = {}

    def missing(name: str, tool: str, why: str) -> HealthCheck:
        if ctx.local:
            return not_applicable(name, f"local executor: this machine is not the planned node ({why})")
        return _check(name, False, f"{tool} not found in the image, {why}")

    if ctx.gpus:
        smi = run(["nvidia-smi", "--query-gpu=index,name,ecc.errors.uncorrected.volatile.total",
                   "--format=csv,noheader"])
        if smi is None:
            checks.append(missing("gpus", "nvidia-smi", f"{ctx.gpus} GPUs planned"))
        else:
            checks += check_gpus(smi, ctx.gpus)
            if (links := run(["nvidia-smi", "nvlink", "--status"])) is not None:
                checks.append(check_nvlink(links))
            if (v := run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])) is not None:
                versions["nvidia_driver"] = v.strip().splitlines()[0] if v.strip() else ""
    else:
        checks.append(not_applicable("gpus", "no GPUs planned on this node group"))
    if ctx.neuron_devices:
        out = run(["neuron-ls", "--json-output"])
        checks += [missing("neuron", "neuron-ls", f"{ctx.neuron_devices} Neuron devices planned")] if out is None \
            else check_neuron(out, ctx.neuron_devices, neuron_cores)
    count = len(glob.glob("/dev/infiniband/uverbs*")) if uverbs is None else uverbs
    if ctx.efa and ctx.local:
        checks.append(not_applicable("efa", "local executor: no EFA on this machine, libfabric's tcp provider"))
    else:
        checks.append(check_efa(run(["fi_info", "-p", "efa"]) if ctx.efa else None, count, ctx.efa))
    if ctx.local and ctx.fsx_mount:
        checks.append(not_applicable("fsx", f"local executor: the plan's FSx for Lustre at {ctx.fsx_mount} is not "
                                            "mounted on this machine; scratch is a local directory"))
    else:
        checks.append(check_fsx(ctx.fsx_mount, mounts))
    tracking = run(["chronyc", "tracking"])
    if tracking is None:
        checks.append(not_applicable("clock", "chronyc is not in this image: the host's chrony keeps its clock"))
    elif "Cannot talk to daemon" in tracking:  # chronyc's 506: no chronyd in this container's namespace
        checks.append(not_applicable("clock", "no chronyd reachable from the container: the host's keeps its clock"))
    else:
        checks.append(check_clock(tracking))
    for name, argv in (("libfabric", ["fi_info", "--version"]), ("neuron_tools", ["neuron-ls", "--version"])):
        if (v := run(argv)) and v.strip():
            versions[name] = v.strip().splitlines()[0][:200]
    efa = Path("/opt/amazon/efa_installed_packages")
    if efa.exists():
        versions["efa_installer"] = (efa.read_text().splitlines() or ["present"])[0][:200]
    return checks, versions


def health_record(ctx: NodeContext, *, run_id: str, benchmark: str, rack: str, node_group: str,
                  instance_type: str, neuron_cores: int, **probes: Unpack[Probes]) -> HealthRecord:
    checks, versions = collect(ctx, neuron_cores=neuron_cores, **probes)
    return HealthRecord(run_id=run_id, benchmark=benchmark, rack=rack, node_group=node_group,
                        instance_type=instance_type, node_index=ctx.node_index, hostname=socket.gethostname(),
                        checked_at=dt.datetime.now(dt.UTC), checks=tuple(checks), versions=versions)


def invalid_reason(records: list[HealthRecord]) -> str | None:
    """Why the job's figures cannot stand, naming each failing node and check; None when every node passed."""
    parts = [f"node {r.node_index} ({r.hostname}): {c.name}: {c.detail}" for r in records for c in r.failures]
    return "; ".join(parts)[:1000] or None
