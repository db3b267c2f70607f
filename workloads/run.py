"""The in-job benchmark runner: run one benchmark, parse it, write the record and raw log to S3.

    python -m workloads.job BENCHMARK [--run-id ID] [--bucket B] ...   (the container entry point, workloads/job.py)

Everything else comes from the environment the job definition and AWS Batch give every node (RACKFORM_* and
AWS_BATCH_JOB_*); the local executor gives the same variables to local processes. Every node uploads its raw log;
the main node writes the record. A benchmark that fails still writes a record saying why, and one whose tool is
not installed writes a skipped record naming the package to install.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Unpack

from . import health, launch, transport
from .benchmarks import BENCHMARKS, NCCL_DEBUG_ENV, Benchmark, NodeContext, Step
from .contract import FSX_SCRATCH_DIR, NODE_IDENTITY_FILE, PREFIX, JobEnvironment, JobEnvironmentError
from .layout import check_run_id, log_key
from .repair import HEALTH_STEP_FAILED_EXIT
from .results import REPEAT_LABEL, HealthCheck, HealthRecord, Metric, Parsed, ResultRecord, Status, with_labels
from .store import ResultStore, s3_client

# What running a benchmark comes to: (status, reason, metrics, details, raw log).
Outcome = tuple[Status, str | None, list[Metric], dict[str, str], str]


@dataclass(frozen=True)
class JobIdentity:
    run_id: str
    benchmark: str
    rack: str
    node_group: str
    tier: str
    instance_type: str
    job_id: str | None = None
    price_usd_per_hour: float | None = None  # per node
    neuron_cores: int = 0  # physical NeuronCores the plan gives a node (the health step counts them)


def node_context(env: Mapping[str, str], tier: str, benchmark: Benchmark | None = None) -> NodeContext:
    job = JobEnvironment.from_env(env)
    num = int(env.get("AWS_BATCH_JOB_NUM_NODES", "1"))
    index = int(env.get("AWS_BATCH_JOB_NODE_INDEX", "0"))
    main = int(env.get("AWS_BATCH_JOB_MAIN_NODE_INDEX", "0"))
    work_dir = job.work_dir
    if benchmark is not None and benchmark.on_fsx and job.fsx_mount and not job.local:
        work_dir = f"{job.fsx_mount}/{FSX_SCRATCH_DIR}"
    # Batch sets the main node's address on the other nodes only; the main node listens on its own interfaces.
    address = env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS") or (
        "127.0.0.1" if job.local else socket.gethostbyname(socket.gethostname()))
    return NodeContext(
        tier=tier, node_index=index - main if index >= main else index + 1, num_nodes=num, main_address=address,
        gpus=job.gpus, neuron_devices=job.neuron_devices,
        # With logical NeuronCores (LNC=2 groups two physical cores), collectives see half as many ranks.
        neuron_ranks=job.neuron_cores // max(1, int(env.get("NEURON_LOGICAL_NC_CONFIG", "1"))),
        efa=job.efa, work_dir=work_dir, fsx_mount=job.fsx_mount, local=job.local, master_port=job.master_port,
        fabric_port=job.fabric_port, repeats=job.repeats,
    )


def parse_step(step: Step, text: str) -> Parsed:
    if step.tool == "torch":
        from .torchresult import parse_torch_result  # not torchbench: that would import torch on this node

        return parse_torch_result(text)
    from .parsers import parse

    return parse(step.tool, text)


def run_step(step: Step, timeout_s: float, log: list[str]) -> tuple[int, str]:
    log.append(f"$ {' '.join(step.argv)}\n")
    started = time.monotonic()
    try:
        proc = subprocess.run(step.argv, capture_output=True, text=True, timeout=timeout_s,
                              env={**dict(NCCL_DEBUG_ENV), **os.environ, "PYTHONUNBUFFERED": "1", **dict(step.env)})
        code, out = proc.returncode, proc.stdout + (proc.stderr and f"\n[stderr]\n{proc.stderr}")
    except subprocess.TimeoutExpired as e:
        # run() hands back a timed-out child's output as bytes even with text=True (CPython's POSIX communicate).
        partial = (e.stdout or b"").decode(errors="replace")
        code, out = 124, f"{partial}\n[timed out after {timeout_s:.0f} s]\n"
    except OSError as e:
        code, out = 127, f"[cannot start {step.argv[0]}: {e}]\n"
    log.append(out)
    log.append(f"[exit {code} after {time.monotonic() - started:.1f} s]\n")
    return code, out


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[:400]


def execute(benchmark: Benchmark, ctx: NodeContext, timeout_s: float, *,
            launch_env: MutableMapping[str, str] | None = None) -> Outcome:
    """Run every step; return (status, reason, metrics, details, raw log). `launch_env`: where the launch secret
    was put aside (None: still in os.environ)."""
    log: list[str] = []
    # The node's own state first: a node that cannot give an honest figure has failed, whatever tools it has.
    if (why := benchmark.precheck(ctx)) is not None:
        return "failed", why, [], {}, f"[not run: {why}]\n"
    missing = [(cmd, pkg) for cmd, pkg in benchmark.needs if shutil.which(cmd) is None]
    if missing:
        what = ", ".join(f"{cmd} (install {pkg})" for cmd, pkg in missing)
        return "skipped", f"not installed on this node: {what}", [], {}, f"[skipped: {what}]\n"
    Path(ctx.work_dir).mkdir(parents=True, exist_ok=True)
    if benchmark.ssh_launch and ctx.num_nodes > 1:
        return launched(benchmark, ctx, timeout_s, log, launch_env=launch_env)
    return run_steps(benchmark, ctx, timeout_s, log)


def run_steps(benchmark: Benchmark, ctx: NodeContext, timeout_s: float, log: list[str]) -> Outcome:
    """Every step, ctx.repeats times over (the whole sequence each time, so a drift shows as spread rather than
    hiding in one test), each repeat's metrics labelled with its number; or once, where the steps repeat
    themselves (Benchmark.repeats_in_process). A repeat that fails fails the job: a median of the repeats that
    happened to work would hide the one that did not."""
    metrics: list[Metric] = []
    details: dict[str, str] = {}
    rounds = 1 if benchmark.repeats_in_process else ctx.repeats
    for r in range(rounds):
        if rounds > 1:
            log.append(f"[repeat {r + 1}/{rounds}]\n")
        for step in benchmark.steps(replace(ctx, repeat=r)):
            code, out = run_step(step, timeout_s, log)
            for _ in range(step.retries if code != 0 else 0):
                time.sleep(step.retry_s)
                code, out = run_step(step, timeout_s, log)
                if code == 0:
                    break
            where = f" (repeat {r + 1}/{rounds})" if rounds > 1 else ""
            if code != 0:
                return ("failed", f"{step.argv[0]} exited {code}{where}: {_tail(out)}", metrics, details,
                        "".join(log))
            if not ctx.is_main:
                continue
            parsed = parse_step(step, out)
            if not parsed.ok:
                return ("failed", f"{step.tool} output not understood{where}: {parsed.reason}", metrics, details,
                        "".join(log))
            extra = dict(step.labels) | ({REPEAT_LABEL: str(r + 1)} if rounds > 1 else {})
            metrics += with_labels(parsed.metrics, extra)
            details.update(parsed.details)
    return "succeeded", None, metrics, details, "".join(log)


def launched(benchmark: Benchmark, ctx: NodeContext, timeout_s: float, log: list[str], *,
             batch_job_id: str | None = None, launch_env: MutableMapping[str, str] | None = None) -> Outcome:
    """A benchmark launched across nodes: the main node gathers the others (workloads/launch.py), writes the host
    file and runs the steps, which start the program on every node; the others run sshd until it is over."""
    token = launch.job_token(batch_job_id or os.environ.get("AWS_BATCH_JOB_ID"))
    # Container-private and made per job: the job's keys never land on the host's scratch volume.
    setup = launch.SshSetup(Path(tempfile.mkdtemp(prefix="rackform-ssh-")))
    sshd: subprocess.Popen[bytes] | None = None

    def ready(public_key: str) -> str:
        nonlocal sshd
        if ctx.local:  # locally every "node" is this machine: Open MPI starts local ranks without SSH
            return ""
        sshd = launch.start_sshd(setup, public_key)
        return setup.host_public_key()

    try:
        secret = launch.take_secret(os.environ if launch_env is None else launch_env)
        if not ctx.is_main:
            log.append(f"[launch] node {ctx.node_index} calling the main node {ctx.main_address}:{ctx.master_port}\n")
            code = launch.join(ctx.main_address, ctx.master_port, index=ctx.node_index, job=token, secret=secret,
                               get_ready=ready, timeout_s=timeout_s)
            log.append(f"[launch] the main node's launch ended with exit {code}\n")
            return ("succeeded" if code == 0 else "failed", None if code == 0 else
                    f"the main node's launch exited {code}", [], {}, "".join(log))
        public_key = "" if ctx.local else launch.make_job_key(setup, token)
        host_key = ready(public_key)  # the main node's own ranks may be reached over SSH too (nccom-test does)
        gathered = launch.gather(ctx.master_port, num_nodes=ctx.num_nodes, job=token, secret=secret,
                                 public_key=public_key, host_key=host_key, timeout_s=timeout_s,
                                 bind="127.0.0.1" if ctx.local else "0.0.0.0",
                                 # locally every node calls from 127.0.0.1
                                 **({"peer_connections": ctx.num_nodes} if ctx.local else {}))
        if not ctx.local:
            launch.install_client_config(setup, gathered.nodes)
        hostfile = Path(ctx.work_dir) / "hostfile"
        hosts = launch.hostfile(gathered.nodes, ctx.ranks_per_node)
        hostfile.write_text(hosts)
        log.append(f"[launch] nodes: {', '.join(f'{n.index}={n.address}' for n in gathered.nodes)}\n"
                   + "".join(f"[launch] turned away {why}\n" for why in gathered.refused)
                   + f"[launch] host file:\n{hosts}")
        result = None
        try:
            result = run_steps(benchmark, replace(ctx, hosts=tuple(n.address for n in gathered.nodes),
                                                  hostfile=str(hostfile)), timeout_s, log)
        finally:
            gathered.release(0 if result is not None and result[0] == "succeeded" else 1)
        return result
    except launch.LaunchError as e:
        return "failed", f"launch across {ctx.num_nodes} nodes: {e}", [], {}, "".join(log)
    finally:
        if sshd is not None:
            sshd.terminate()


def _probe(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        return out.splitlines()[0] if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def node_identity(path: str = NODE_IDENTITY_FILE) -> dict[str, str]:
    """instance_id, ami_id and availability_zone as the node's user data wrote them (containers cannot reach instance
    metadata: docs/security.md); the fields it has, none when it is missing."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.partition("=") for line in lines)
    return {k: v[:200] for k, sep, v in pairs if sep and v and k in ("instance_id", "ami_id", "availability_zone")}


def collect_environment(local: bool, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the record says the job ran on. `known`: the versions this node's health step already read (the same
    tools and file), taken as they are rather than run again."""
    known = {k: v for k, v in (known or {}).items() if v and not v.startswith("[")}  # "[exit N]": the tool failed
    env = {"python": platform.python_version(), "machine": platform.machine(), "kernel": platform.release(),
           "host_cpus": str(os.cpu_count())}
    if local:
        env["executor"] = "local"  # a rehearsal on this machine, not the instance type named in the record
    probes = {
        "nvidia_driver": ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
        "neuron_tools": ["neuron-ls", "--version"],
        "libfabric": ["fi_info", "--version"],
        "fio": ["fio", "--version"],
        "sysbench": ["sysbench", "--version"],
    }
    for name, argv in probes.items():
        if (v := known.get(name) or _probe(argv)) is not None:
            env[name] = v
    efa = Path("/opt/amazon/efa_installed_packages")
    if "efa_installer" in known:
        env["efa_installer"] = known["efa_installer"]
    elif efa.exists():
        env["efa_installer"] = (efa.read_text().splitlines() or ["present"])[0][:200]
    for ofi in ("/opt/amazon/ofi-nccl", "/opt/aws-ofi-nccl"):
        if Path(ofi).exists():
            env["aws_ofi_nccl"] = ofi
    if not local:
        env.update(node_identity())
    return env


def health_lines(record: HealthRecord) -> str:
    return "".join(f"[health node {record.node_index}] {c.name}: {c.status}: {c.detail}\n" for c in record.checks)


def health_step(job: JobIdentity, ctx: NodeContext, store: ResultStore | None, *, write_failed: bool = True,
                **probes: Unpack[health.Probes]) -> tuple[HealthRecord, str]:
    """Check this node and write its health record before any benchmark step; (record, log lines). Without
    `write_failed`, a failed record is not written: its key is the retry's (run_job's `leave_unhealthy`)."""
    try:
        record = health.health_record(ctx, neuron_cores=job.neuron_cores, run_id=job.run_id, benchmark=job.benchmark,
                                      rack=job.rack, node_group=job.node_group, instance_type=job.instance_type,
                                      **probes)
    except Exception as e:  # a check that breaks proves nothing about the node: it fails, and the job still runs
        record = HealthRecord(run_id=job.run_id, benchmark=job.benchmark, rack=job.rack, node_group=job.node_group,
                              instance_type=job.instance_type, node_index=ctx.node_index,
                              hostname=socket.gethostname(), checked_at=dt.datetime.now(dt.UTC), checks=(HealthCheck(
                                  name="health-step", status="failed", detail=f"{type(e).__name__}: {e}"[:300]),))
    log = health_lines(record)
    if store is not None and (write_failed or not record.failures):
        try:
            store.put_health(record)
        except Exception as e:  # the benchmark still runs; the main node then finds this node's health missing
            log += f"[health node {ctx.node_index}] not written: {type(e).__name__}: {e}\n"[:400]
    return record, log


def job_health(job: JobIdentity, ctx: NodeContext, own: HealthRecord, store: ResultStore | None) -> str | None:
    """Why the job's figures are invalid (a node failed its health step, or left no health record), or None."""
    records = [own]
    if store is not None and ctx.num_nodes > 1:
        try:
            found = store.health(job.run_id, (job.rack, job.node_group, job.benchmark))
        except Exception as e:  # unread is unproven: the figures cannot count as healthy
            return f"the other nodes' health records could not be read: {type(e).__name__}: {e}"[:400]
        others = {h.node_index: h for h in found if h.node_index != own.node_index}
        records += list(others.values())
    missing = sorted(set(range(ctx.num_nodes)) - {r.node_index for r in records}) if store is not None else []
    reasons = [health.invalid_reason(records)] + [f"node {i}: no health record (its health step never reported)"
                                                  for i in missing]
    return "; ".join(r for r in reasons if r) or None


class NodeUnhealthy(Exception):
    """This node failed its own health step and leaves before writing anything (run_job's `leave_unhealthy`)."""


def run_job(job: JobIdentity, ctx: NodeContext, store: ResultStore | None, *, timeout_s: float = 3600,
            echo: bool = True, health_kwargs: health.Probes | None = None,
            leave_unhealthy: bool = False) -> ResultRecord:
    """Run the benchmark on this node. `leave_unhealthy` (the container entry point): a node that fails its health
    step raises NodeUnhealthy before the benchmark, writing nothing, so the job's retry on another node
    (rackform/jobs/jobdefs.py's retry strategy, on HEALTH_STEP_FAILED_EXIT) finds every key of the job free."""
    benchmark = BENCHMARKS[job.benchmark]
    # Out of the environment before the first tool starts: the health step's, then the benchmark's.
    launch_env = launch.withhold_secret(os.environ)
    own_health, health_log = health_step(job, ctx, store, write_failed=not leave_unhealthy,
                                         **(health_kwargs or {}))
    if echo:
        sys.stdout.write(health_log)
    if leave_unhealthy and own_health.failures:
        raise NodeUnhealthy(health.invalid_reason([own_health]) or "health step failed")
    started = dt.datetime.now(dt.UTC)
    try:
        status, reason, metrics, details, log = execute(benchmark, ctx, timeout_s, launch_env=launch_env)
    except Exception as e:  # a bug or a broken node must still leave a record behind
        status, reason, metrics, details, log = "failed", f"runner error: {type(e).__name__}: {e}", [], {}, ""
    ended = dt.datetime.now(dt.UTC)
    if echo:
        sys.stdout.write(log)
    log = health_log + log
    key = log_key(job.run_id, job.rack, job.node_group, job.benchmark, ctx.node_index)
    environment = {**collect_environment(ctx.local, own_health.versions), "repeats": str(ctx.repeats),
                   **{f"tool_{k}": v for k, v in details.items()}}
    price = job.price_usd_per_hour * ctx.num_nodes if job.price_usd_per_hour is not None else None
    tool = ",".join(sorted({s.tool for s in benchmark.steps(ctx)}))
    fabric, efa_devices = (transport.detect(log, nodes=ctx.num_nodes, backend=details.get("backend"))
                           if benchmark.multi_node else (None, None))
    why_invalid = job_health(job, ctx, own_health, store) if ctx.is_main else None
    record = ResultRecord(
        run_id=job.run_id, benchmark=job.benchmark, tool=tool, rack=job.rack, node_group=job.node_group,
        tier=job.tier, instance_type=job.instance_type, node_count=ctx.num_nodes, status=status, reason=reason,
        metrics=tuple(metrics), started_at=started, ended_at=ended, environment=environment,
        price_usd_per_hour=price, raw_log_key=key, job_id=job.job_id, fabric=fabric, efa_devices=efa_devices,
        validity="invalid" if why_invalid else "valid", invalid_reason=why_invalid)
    if store is not None:
        try:
            store.put_log(key, log)
        except Exception as e:  # the record matters more than the log: write it anyway, saying why the log is missing
            record = record.model_copy(update={"raw_log_key": None, "environment": {
                **record.environment, "raw_log_error": f"{type(e).__name__}: {e}"[:300]}})
        if ctx.is_main:
            store.put_record(record)
    return record


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="python -m workloads.job", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        given = JobEnvironment.from_env(env)
    except JobEnvironmentError as e:
        p.error(str(e))
    p.add_argument("benchmark", choices=sorted(BENCHMARKS))
    p.add_argument("--run-id", default=given.run_id)
    p.add_argument("--bucket", default=given.bucket, help="results bucket (omit: print only)")
    p.add_argument("--rack", default=given.rack)
    p.add_argument("--node-group", default=given.node_group)
    p.add_argument("--tier", default=given.tier)
    p.add_argument("--instance-type", default=given.instance_type)
    p.add_argument("--endpoint-url", default=env.get("AWS_ENDPOINT_URL"))
    p.add_argument("--timeout", type=float, default=given.timeout_s)
    args = p.parse_args(argv)
    if not args.run_id:
        p.error(f"no run id: pass --run-id or set {PREFIX}RUN_ID (rackform submit sets it)")
    try:
        check_run_id(args.run_id)
    except ValueError as e:
        p.error(str(e))
    job = JobIdentity(run_id=args.run_id, benchmark=args.benchmark, rack=args.rack, node_group=args.node_group,
                      tier=args.tier, instance_type=args.instance_type, job_id=env.get("AWS_BATCH_JOB_ID"),
                      price_usd_per_hour=given.price_usd_per_hour, neuron_cores=given.neuron_cores)
    store = ResultStore(args.bucket, s3_client(args.endpoint_url)) if args.bucket else None
    try:
        record = run_job(job, node_context(env, args.tier, BENCHMARKS[args.benchmark]), store,
                         timeout_s=args.timeout, leave_unhealthy=True)
    except NodeUnhealthy as e:
        # The exit code the repair function (workloads/repair.py) and the retry strategy read as "this node is bad".
        print(f"[rackform] {args.benchmark}: this node failed its health step, leaving for a healthy one: {e}",
              file=sys.stderr)
        return HEALTH_STEP_FAILED_EXIT
    summary = f"{record.benchmark}: {record.status}" + (f" ({record.reason})" if record.reason else "")
    if record.validity == "invalid":
        summary += f"; INVALID: {record.invalid_reason}"
    print(f"[rackform] {summary}; {len(record.metrics)} metrics", file=sys.stderr)
    return 1 if record.status == "failed" else 0


if __name__ == "__main__":
    raise SystemExit(main())
