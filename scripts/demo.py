#!/usr/bin/env python3
"""`make demo`: the whole rackform loop on the embedded default, with no AWS account.

validate -> plan -> cdk synth -> embedded AWS (moto server on 127.0.0.1) holding the results bucket, Batch queues
and job definitions of the plan -> submit the suite with `rackform submit` -> run each job here through the job's
own entry point (the local executor plays Batch) -> `rackform status --wait` -> `rackform results` ->
`rackform report --html` (against the physical limits and prices of the instances the jobs name) -> `rackform place`
of three workloads, one per class, from those results -> the inference workload's queue held full and `rackform run`
spilling it over to the next tier.
Every rackform step is the real CLI as a user would type it (its `main`, called in this process with the argv and
environment a shell would give it: the same output and exit code, without a Python start and its imports each time);
every job's node is a process of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rackform.cli import checked_plan  # noqa: E402
from rackform.cli import main as rackform_main  # noqa: E402
from rackform.jobs.local import (  # noqa: E402
    CREDENTIAL_VARIABLES,
    Deployment,
    EmbeddedAWS,
    deploy,
    job_role_arn,
    run_local,
    without_credentials,
)
from rackform.jobs.submit import new_run_id  # noqa: E402
from rackform.plan.models import Plan  # noqa: E402

WORKLOADS = ("examples/workloads/general.yaml", "examples/workloads/training.yaml",
             "examples/workloads/inference.yaml")

# (benchmark, rack, node group): one job each. Every tier gets the cross-tier torch benchmarks; the CPU-side tools
# run on the Graviton rack.
SUITE = [
    ("allreduce", "graviton", "cpu"), ("allreduce", "trainium", "workers"), ("allreduce", "gpu", "h100"),
    ("gemm", "graviton", "head"), ("gemm", "trainium", "workers"), ("gemm", "gpu", "h100"),
    ("inference", "graviton", "head"), ("inference", "trainium", "workers"), ("inference", "gpu", "h100"),
    ("storage", "graviton", "head"), ("cpu", "graviton", "head"), ("fabric", "graviton", "cpu"),
]


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def explore(run_id: str, spec: str, aws: EmbeddedAWS, bucket: str, serve_s: float | None) -> None:
    """The commands to explore the run; with `serve_s`, keep the embedded AWS up that long (Ctrl-C: sooner) and
    print the exports that point rackform at it from another shell."""
    commands = ["rackform runs", f"rackform status {run_id}", f"rackform results {run_id}",
                f"rackform logs {run_id} --rack graviton --node-group head --benchmark cpu",
                f"rackform report {run_id} --spec {spec}"]
    step("explore the results")
    if serve_s is None:
        print("  the embedded AWS stops with the demo: `make demo-serve` (scripts/demo.py --serve) keeps it up "
              "and prints the exports under which these work:")
        print("\n".join(f"    {c}" for c in commands))
        return
    # moto listens on 127.0.0.1 only and answers only requests signed with the credentials it made at this start
    # (an administrator of the embedded account; nothing here reaches or signs for real AWS). PATH: where the
    # `rackform` of this checkout is.
    exports = {**aws.env, "RACKFORM_BUCKET": bucket,
               "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    print("  in another shell, from this directory:")
    # A profile or session token left in that shell would override or spoil the exported key.
    print(f"    unset {' '.join(k for k in CREDENTIAL_VARIABLES if k not in exports)}")
    print("\n".join(f"    export {k}={shlex.quote(v)}" for k, v in exports.items()))
    print("\n".join(f"    {c}" for c in commands))
    print(f"\n  the embedded AWS at {aws.endpoint_url} stops in {serve_s / 60:g} minutes, or at Ctrl-C",
          flush=True)
    try:
        time.sleep(serve_s)
    except KeyboardInterrupt:
        print("\n  stopped at Ctrl-C")


def iam_line(deployment: Deployment) -> str:
    roles = sorted({job_role_arn(jd).rsplit("/", 1)[1] for jd in deployment.job_definitions.values()})
    return (f"  IAM enforced: only requests signed with this start's fresh credentials get in, each checked against "
            f"its principal's policies; jobs run as {', '.join(roles)}, with exactly the policies the synthesized "
            "templates give them")


def serve_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 240:  # bounded: a forgotten demo-serve must not hold a port for days
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 to 240 minutes")
    return value


@contextlib.contextmanager
def environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """os.environ as `env` (None: as it is) while the block runs, then as before."""
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def rackform(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """`rackform ARGS` under `env`: the CLI's own main in this process, its stdout captured (not a terminal, as
    through a pipe) and echoed, its stderr as it comes. A Python start and its imports each time cost about 0.7 s
    of CPU, 20 times over."""
    out = io.StringIO()
    with environment(env), contextlib.redirect_stdout(out):
        try:
            code = rackform_main(list(args))
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 1
    sys.stdout.write(out.getvalue())
    sys.stdout.flush()
    if check and code != 0:
        sys.exit(f"demo: `rackform {' '.join(args)}` exited {code}")
    return out.getvalue()


def cpu_seconds() -> float:
    """User+system CPU of this process (the embedded AWS serving every request included) and of every process it
    started and waited for (the jobs' nodes and their tools, cdk synth)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Phases:
    """Wall and CPU seconds per phase of the demo, for its last line: where the time goes, on this machine."""

    def __init__(self) -> None:
        self.spent: dict[str, tuple[float, float]] = {}
        self.started, self.cpu = time.monotonic(), cpu_seconds()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.monotonic(), cpu_seconds()
        try:
            yield
        finally:
            w, c = self.spent.get(name, (0.0, 0.0))
            self.spent[name] = (w + time.monotonic() - wall, c + cpu_seconds() - cpu)

    def line(self) -> str:
        def each(i: int) -> str:
            return ", ".join(f"{name} {spent[i]:.0f}" for name, spent in self.spent.items())
        return (f"done in {time.monotonic() - self.started:.0f} s ({each(0)}), CPU {cpu_seconds() - self.cpu:.0f} s "
                f"user+sys ({each(1)})")


def saturate(aws: EmbeddedAWS, plan: Plan, tier: str, history: int = 5) -> str:
    """Make a tier's first queue busy as another team's work would: one whole-node job per node held RUNNABLE
    (the queue at its maximum vCPUs), behind a recent history of `history` jobs of an hour each, which is how long
    placement expects each of them to take. moto ends every job the moment it starts, so the history's times are set
    in its own state (its in-process backend, as hold_runnable holds the jobs). Returns what it staged."""
    import datetime as dt

    from moto.batch.models import batch_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    from rackform.jobs.local import hold_runnable
    from rackform.plan import naming

    group = next(g for g in plan.node_groups() if g.tier == tier)
    definition = naming.job_definition(plan.name, group.rack, group.name, "single")
    batch, now = aws.client("batch"), dt.datetime.now(dt.UTC)
    for i in range(history):
        job_id = batch.submit_job(jobName=f"done-{i}", jobQueue=group.job_queue, jobDefinition=definition)["jobId"]
        job = batch_backends[DEFAULT_ACCOUNT_ID][aws.region]._jobs[job_id]
        job.status, job.job_stopped = "SUCCEEDED", True
        job.job_started_at, job.job_stopped_at = now - dt.timedelta(hours=i + 2), now - dt.timedelta(hours=i + 1)
    hold_runnable(batch, aws.region, group.job_queue, definition, group.count)
    return (f"{group.count} jobs held RUNNABLE behind {history} that took 1 h each (times set in the embedded AWS: "
            "moto ends jobs at once)")


def accept_rehearsal(aws: EmbeddedAWS, deployment: Deployment, plan: Plan, spec: str, env: dict[str, str],
                     logs: Path, rack: str = "graviton", group: str = "cpu", nodes: int = 4,
                     announce: Callable[[str], None] = print, slowed_to: tuple[float, int] | None = None) -> str:
    """Rack acceptance rehearsed on `nodes` local node processes of one node group, one of them slowed for real (to
    a quarter of one CPU, or to `slowed_to`: a share of one CPU and the nice that gives it beside a busy process,
    rackform.jobs.local.SlowNode); `rackform accept` then judges the records and must name it. Returns the run id."""
    import random

    from rackform.cli.accept import submit_group
    from rackform.jobs.local import SlowNode
    from rackform.plan import naming
    from workloads.store import ResultStore

    run_id = new_run_id()
    # demo.yaml's groups have 2 nodes; the rehearsal needs more to tell one slow node from the rest: the group's
    # multi-node definition gets a revision spanning `nodes` in the embedded AWS (the local executor allows no more
    # nodes than a deployed definition spans).
    definition = naming.job_definition(plan.name, rack, group, "multinode")
    jd = deployment.job_definitions[definition]
    jd = deployment.job_definitions[definition] = {**jd, "nodeProperties": {**jd["nodeProperties"], "numNodes": nodes}}
    batch = aws.client("batch")
    batch.register_job_definition(**jd)
    # Submitted as `rackform accept` submits a group's job, measured once, on the group as the revision spans it.
    [node_group] = [g for g in plan.node_groups() if (g.rack, g.name) == (rack, group)]
    [name] = submit_group(plan, node_group.model_copy(update={"count": nodes}), multi=True, run_id=run_id, repeats=1,
                          store=ResultStore(deployment.bucket, aws.client("s3")), submitter=batch, lookup=batch)
    index = random.randrange(1, nodes)  # any node but the main one, which runs the rounds
    slow = SlowNode(name, index) if slowed_to is None else SlowNode(name, index, share=slowed_to[0], nice=slowed_to[1])
    step(f"rack acceptance rehearsed: {rack}/{group} as {nodes} local node processes, one slowed (run {run_id})")
    started = time.monotonic()
    run_local(aws, deployment, run_id, log_dir=logs, slow=slow, announce=announce)
    print(f"  acceptance job: {time.monotonic() - started:.1f} s")
    step(f"rackform accept {spec} --rack {rack} --node-group {group} --run-id {run_id}: the verdict")
    # Exit 1 when the group is not accepted, which a slowed node makes it.
    rackform("accept", spec, "--rack", rack, "--node-group", group, "--run-id", run_id, "--interval", "0.2",
             env=env, check=False)
    return run_id


def repair_rehearsal(aws: EmbeddedAWS, deployment: Deployment, plan: Plan, spec: str, env: dict[str, str],
                     logs: Path) -> None:
    """Issue 22: one repair. A cpu job on gpu/h100 meets a node whose nvidia-smi lists one GPU too few: the
    runner's own health step fails it, it exits 75, the repair function (the code Lambda runs) drains and terminates
    the node in the embedded AWS and records it, and the job's retry strategy runs it again on another node."""
    from rackform.jobs.heal import BrokenNode, LocalRepair
    from workloads.layout import BenchmarkJobName

    run_id, rack, group = new_run_id(), "gpu", "h100"
    step(f"the repair loop: a node whose health step fails is replaced and its job retried (run {run_id})")
    started = time.monotonic()
    # cpu: the cheapest job here, its sysbench a fixed amount of work locally (about 1.4 s of CPU for its 3 repeats,
    # the node's start included, against 2.6 s for gemm, whose torch import alone is 1.4 s).
    rackform("submit", spec, "--rack", rack, "--node-group", group, "--benchmark", "cpu", "--run-id", run_id,
             env=env)
    broken = BrokenNode(str(BenchmarkJobName(run_id=run_id, rack=rack, node_group=group, benchmark="cpu")))
    run_local(aws, deployment, run_id, log_dir=logs, broken=broken,
              repair=LocalRepair(aws.client, plan, deployment.bucket))
    rackform("repairs", run_id, env=env)
    print(f"  repair rehearsal: {time.monotonic() - started:.1f} s")


STATE = ROOT / "reports" / "demo-state"  # what `make demo-serve` serves without running the demo again


def state_key(spec: str) -> dict[str, str]:
    """What makes a prepared state current: the same spec, and the same commit of the code that wrote it."""
    import hashlib

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True, capture_output=True).stdout.strip()
    return {"spec": spec, "spec_sha256": hashlib.sha256((ROOT / spec).read_bytes()).hexdigest(), "commit": commit}


def save_state(aws: EmbeddedAWS, bucket: str, run_id: str, spec: str, out: str, state: Path = STATE) -> int:
    """The results bucket's objects (what runs, status, results, logs and report read) and the run to explore, for
    `--serve` to load into a fresh embedded AWS. Returns how many objects were kept."""
    import json
    import shutil

    shutil.rmtree(state, ignore_errors=True)
    s3, objects = aws.client("s3"), {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=o["Key"])
            path = state / "objects" / f"{len(objects):06d}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(got["Body"].read())
            objects[path.name] = {"key": o["Key"], "content_type": got.get("ContentType", "application/octet-stream")}
    (state / "state.json").write_text(json.dumps({**state_key(spec), "run_id": run_id, "out": out,
                                                  "objects": objects}, indent=1))
    return len(objects)


def prepared(spec: str, out: str, state: Path = STATE) -> dict | None:
    """The prepared state when it is current (same spec, same commit, its templates still there), else None."""
    import json

    try:
        found = json.loads((state / "state.json").read_text())
    except (OSError, ValueError):
        return None
    current = all(found.get(k) == v for k, v in state_key(spec).items()) and found.get("out") == out
    return found if current and (ROOT / out / "manifest.json").exists() else None


def serve_prepared(found: dict, minutes: float, state: Path = STATE) -> None:
    """A fresh embedded AWS holding the prepared deployment and results: the plan's queues and job definitions
    (as the synthesized templates give them) and every object the demo left in the bucket, written once as before."""
    from workloads.store import ResultStore

    plan = checked_plan(found["spec"])
    with EmbeddedAWS(plan.region) as aws:
        deployment = deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                            assembly=ROOT / found["out"])
        store = ResultStore(deployment.bucket, aws.client("s3"))
        for name, o in found["objects"].items():
            store.put_once(o["key"], (state / "objects" / name).read_bytes(), o["content_type"])
        step(f"prepared state of run {found['run_id']} ({len(found['objects'])} objects, commit "
             f"{found['commit'][:12]}) loaded into the embedded AWS")
        explore(found["run_id"], found["spec"], aws, deployment.bucket, minutes * 60)


def reading(aws: EmbeddedAWS, plan: Plan, run_id: str, args: argparse.Namespace, env: dict[str, str]) -> None:
    """What a user reads once the jobs are done: status, results, health, the report, then placement and a run
    that spills over to the next tier."""
    step(f"rackform status {run_id} --wait")
    rackform("status", run_id, "--wait", env=env, check=False)
    step(f"rackform results {run_id}")
    rackform("results", run_id, env=env)
    step(f"rackform health {run_id}: each node's health step, and what carried each collective")
    rackform("health", run_id, env=env, check=False)
    report = ROOT / args.report
    step(f"rackform report {run_id} --spec {args.spec} --html {args.report}")
    rackform("report", run_id, "--spec", args.spec, "--html", args.report, env=env)
    print(f"\n  HTML report: {report}")

    step(f"rackform place --include-rehearsal: one workload per class, ranked by the measured results of {run_id}")
    # A rehearsal's figures are this machine's: they rank real tiers only when asked, and are labelled so.
    print("  a local rehearsal: its figures were measured on this machine and priced as the instance types")
    placed = rackform("place", *WORKLOADS, "--spec", args.spec, "--run", run_id, "--include-rehearsal", env=env)
    # Fill the queue the inference workload was placed on (the rehearsal's figures vary from run to run).
    tier = re.search(r"\(inference\) on \S+ \[(\w+)\]", placed)[1]
    held = saturate(aws, plan, tier)
    step(f"the {tier} queue made busy: {held}; rackform run --include-rehearsal --explain")
    rackform("run", WORKLOADS[2], "--spec", args.spec, "--run", run_id, "--run-id", run_id, "--include-rehearsal",
             "--explain", env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="examples/demo.yaml")
    parser.add_argument("--out", default="cdk.out")
    parser.add_argument("--logs", default="reports/demo-logs")
    parser.add_argument("--report", default="reports/demo-report.html")
    parser.add_argument("--serve", action="store_true", help="keep the embedded AWS up at the end and print the "
                        "exports that point rackform at it (make demo-serve)")
    parser.add_argument("--serve-minutes", type=serve_minutes, default=30, metavar="1-240",
                        help="how long --serve keeps it up (default 30)")
    parser.add_argument("--fresh", action="store_true", help="with --serve: run the demo even where a current "
                        "prepared state exists")
    args = parser.parse_args()
    if args.serve and not args.fresh and (found := prepared(args.spec, args.out)) is not None:
        serve_prepared(found, args.serve_minutes)
        return 0

    phases = Phases()
    with contextlib.ExitStack() as stack:
        with phases("synth"):
            # cdk synth (Node, then this app in Python) needs nothing that validate, plan and the embedded AWS's
            # start do: it runs beside them, and its lines come after theirs.
            synth = subprocess.Popen(["cdk", "synth", "-c", f"spec={args.spec}", "-o", args.out, "--quiet"],
                                     cwd=ROOT)
            stack.callback(synth.kill)  # a demo that stops early leaves no synth behind (none: once it has ended)
            step(f"rackform validate {args.spec}")
            rackform("validate", args.spec)
            step(f"rackform plan {args.spec}")
            rackform("plan", args.spec)
            plan = checked_plan(args.spec)
            aws = stack.enter_context(EmbeddedAWS(plan.region))
            step(f"cdk synth -c spec={args.spec} (the AWS CDK CLI, no credentials)")
            if synth.wait() != 0:
                sys.exit(f"demo: cdk synth exited {synth.returncode}")
            for t in sorted((ROOT / args.out).glob("*.template.json")):
                print(f"  {t.relative_to(ROOT)}")
            step(f"embedded AWS at {aws.endpoint_url}: bucket, {len(plan.node_groups())} job queues, job definitions")
            deployment = deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                                assembly=ROOT / args.out)
            print(iam_line(deployment))
        env = {**without_credentials(os.environ), **aws.env, "RACKFORM_BUCKET": deployment.bucket}
        run_id = new_run_id()

        with phases("submit"):
            step(f"rackform submit ... --run-id {run_id} ({len(SUITE)} jobs)")
            for benchmark, rack, group in SUITE:
                rackform("submit", args.spec, "--rack", rack, "--node-group", group, "--benchmark", benchmark,
                         "--run-id", run_id, env=env)

        with phases("jobs"):
            step("local executor: each job's nodes run here as `python -m workloads.job`")
            logs = ROOT / args.logs
            logs.mkdir(parents=True, exist_ok=True)
            run_local(aws, deployment, run_id, log_dir=logs)

        with phases("reading"):
            reading(aws, plan, run_id, args, env)
        with phases("acceptance"):
            accept_rehearsal(aws, deployment, plan, args.spec, env, logs)
        with phases("repair"):
            repair_rehearsal(aws, deployment, plan, args.spec, env, logs)
        kept = save_state(aws, deployment.bucket, run_id, args.spec, args.out)
        print(f"\n  prepared state: {kept} objects in {STATE.relative_to(ROOT)}/ (make demo-serve serves them)")
        explore(run_id, args.spec, aws, deployment.bucket, args.serve_minutes * 60 if args.serve else None)
    print(f"\ndemo: {phases.line()}; templates in {args.out}/, node logs in {args.logs}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
