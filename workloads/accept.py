"""Rack acceptance, the in-job side: one job spans the node group and ties every figure to the node that gave it.

    python -m workloads.job accept        one Batch multi-node job, one container per node of the group
    python -m workloads.job accept-<k>    a single node (slot k), where Batch runs no multi-node job (Spot groups)

Node 0 orchestrates, through the results bucket (write-once, checksummed objects: layout.accept_key):
  1. every node checks its health and runs the single-node tests of its tier at once (NODE_TESTS: benchmarks of
     workloads/benchmarks.py run by the runner's own run_steps) and writes its figures;
  2. pairwise fabric rounds: node 0 writes each round's pairs (FabricSchedule), every paired node runs its side of
     fi_pingpong (the `fabric` benchmark's steps; node a serves, node b calls) and writes its round record; a slow
     pair is split and each half re-paired with a known-good node (`next_round`, a pure function), so one bad node or
     link among N is named within ceil(log2 N) + 1 rounds;
  3. the whole group's collective (COLLECTIVE by tier), then node 0's group record, which ends the job.
The nodes find each other through the launch rendezvous (workloads/launch.py), which admits only the nodes that
prove the job's launch secret: the addresses in a schedule are the ones it authenticated.
A single node (`accept-<k>`) runs step 1 alone: it proves each node's own figures, not the fabric between them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from . import health, launch
from .accept_plan import COLLECTIVE, FABRIC_HEADLINE, LOCAL_NODE_TESTS, NODE_TESTS, Measured, Pair, judge, next_round
from .benchmarks import BENCHMARKS, Benchmark, NodeContext, port_spans
from .contract import PREFIX, JobEnvironment, JobEnvironmentError
from .layout import ACCEPT_JOB_NAME, accept_key, accept_schedule_key, check_run_id, job_prefix, log_key
from .results import (
    REPEAT_LABEL,
    AcceptFigure,
    AcceptPart,
    AcceptRecord,
    FabricPair,
    FabricSchedule,
    HealthRecord,
    Metric,
    Status,
    with_labels,
)
from .run import JobIdentity, execute, health_step, node_context, node_identity, run_steps
from .store import ResultStore, s3_client

FABRIC = BENCHMARKS["fabric"]
# The rehearsal's pairs: one message size and 50 round trips, not fi_pingpong's whole sweep of 100 (18 s a pair
# here); over libfabric's tcp provider a 1 MiB message took 30 s for 100 round trips, 64 KiB under a second.
LOCAL_PAIR = {"-S": "65536", "-I": "50"}


def _one_size(argv: tuple[str, ...]) -> tuple[str, ...]:
    out = list(argv)
    for flag, value in LOCAL_PAIR.items():
        out[out.index(flag) + 1] = value
    return tuple(out)


LOCAL_FABRIC = replace(FABRIC, steps=lambda ctx: tuple(replace(s, argv=_one_size(s.argv)) for s in FABRIC.steps(ctx)))
# Why a local job with a deliberately slowed node skips the group's collective (JobEnvironment.local_collective): it
# runs at the slowed node's pace. Measured in the demo's rehearsal on this project's shared 2-core machine.
LOCAL_COLLECTIVE = ("not run beside a deliberately slowed node: torch's all-reduce across the rehearsal's four local "
                    "nodes runs at the slowed node's pace (with one at a tenth of a CPU it added 35 to 42 s to its 27 "
                    "to 32 s on two shared cores); with no node slowed it runs, as "
                    "tests/workloads/test_accept_collective.py runs it on two local nodes")


# Between listings of the job's prefix while waiting for the other nodes' records: a step on AWS takes tens of
# seconds at least; the rehearsal's take a second or two.
POLL_S = 2.0
LOCAL_POLL_S = 0.2

# --- one node's figures -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeId:
    """Who measured: the figures are tied to this."""

    index: int
    instance_id: str | None
    host: str


def headline_figures(benchmark: Benchmark, metrics: Iterable[Metric], node: NodeId, *, test: str | None = None,
                     failed: bool = False, node_b: int | None = None, round: int | None = None) -> list[AcceptFigure]:
    """One figure per headline of the benchmark: the median over the job's repeats (NaN where the test failed)."""
    metrics = list(metrics)
    figures = []
    for h in benchmark.headlines:
        values = [m for m in metrics if m.name == h.metric
                  and {k: v for k, v in m.labels.items() if k != REPEAT_LABEL} == dict(h.labels)]
        if not values and not failed:
            continue
        value = math.nan if failed else statistics.median(m.value for m in values)
        figures.append(AcceptFigure(node_index=node.index, instance_id=node.instance_id, host=node.host,
                                    test=test or benchmark.name, metric=h.metric, value=value,
                                    unit=values[0].unit if values else "", labels=dict(h.labels),
                                    headline=h.label, node_b=node_b, round=round))
    return figures


def node_tests(tier: str, local: bool) -> tuple[str, ...]:
    return tuple(t for t in NODE_TESTS[tier] if not local or t in LOCAL_NODE_TESTS)


def run_node_tests(tests: Sequence[str], ctx_for: Callable[[Benchmark], NodeContext], node: NodeId,
                   timeout_s: float, log: list[str]) -> tuple[list[AcceptFigure], list[str], list[str]]:
    """Each test on this node alone; (figures, what failed, what was skipped: its tool is not installed here)."""
    figures: list[AcceptFigure] = []
    problems: list[str] = []
    skipped: list[str] = []
    for name in tests:
        benchmark = BENCHMARKS[name]
        ctx = ctx_for(benchmark)
        started = time.monotonic()
        # The runner's own checks first (the node's state, then the tools installed), as for any benchmark job.
        status, reason, metrics, _, text = execute(benchmark, ctx, timeout_s)
        if status == "skipped":
            skipped.append(f"{name}: skipped, {reason}")
            continue
        log.append(text + f"[accept] node {node.index}: {name} {status} in {time.monotonic() - started:.1f} s\n")
        if status != "succeeded":
            problems.append(f"{name}: {reason}")
        figures += headline_figures(benchmark, metrics, node, failed=status != "succeeded")
    return figures, problems, skipped


# --- the job ------------------------------------------------------------------------------------------------------

@dataclass
class Job:
    """One node's view of the acceptance job."""

    identity: JobIdentity
    ctx: NodeContext
    env: Mapping[str, str]
    store: ResultStore
    node: NodeId
    timeout_s: float
    log: list[str]
    slot: int | None = None  # a single node's job (accept-<slot>): no group record, the operator waits for N nodes
    main_over: threading.Event | None = None  # set when node 0 has ended the launch (the other nodes only)
    local_collective: bool = True  # JobEnvironment.local_collective: the local executor's word for its nodes

    def record(self, part: AcceptPart, status: Status, figures: Sequence[AcceptFigure], *, reason: str | None = None,
               round: int = 0, rounds: int = 0, slow_nodes: tuple[int, ...] = (),
               slow_links: tuple[Pair, ...] = ()) -> str:
        j = self.identity
        return self.store.put_accept(AcceptRecord(
            run_id=j.run_id, rack=j.rack, node_group=j.node_group, benchmark=j.benchmark,
            instance_type=j.instance_type, tier=j.tier, part=part, node_index=self.node.index, round=round,
            nodes=self.ctx.num_nodes, status=status, reason=reason, written_at=dt.datetime.now(dt.UTC),
            figures=tuple(figures), price_usd_per_hour=j.price_usd_per_hour, rounds=rounds, slow_nodes=slow_nodes,
            slow_links=slow_links))

    def key(self, part: str, node: int, round: int = 0) -> str:
        j = self.identity
        return accept_key(j.run_id, j.rack, j.node_group, j.benchmark, part, node, round)

    def schedule(self, round: int, pairs: list[FabricPair], *, final: bool = False) -> FabricSchedule:
        j = self.identity
        return FabricSchedule(run_id=j.run_id, rack=j.rack, node_group=j.node_group, benchmark=j.benchmark,
                              round=round, pairs=pairs, final=final)

    def schedule_key(self, round: int) -> str:
        j = self.identity
        return accept_schedule_key(j.run_id, j.rack, j.node_group, j.benchmark, round)

    def wait_for(self, keys: Sequence[str], what: str) -> list[AcceptRecord | FabricSchedule]:
        """The verified objects at `keys` once every one is listed; TimeoutError naming the missing ones."""
        j = self.identity
        prefix = f"{job_prefix(j.run_id, j.rack, j.node_group, j.benchmark)}/"
        deadline = time.monotonic() + self.timeout_s
        while True:
            over = self.main_over is not None and self.main_over.is_set()  # then this listing is the last look
            missing = set(keys) - self.store.listed(prefix)
            if not missing or over or time.monotonic() >= deadline:
                break
            time.sleep(LOCAL_POLL_S if self.ctx.local else POLL_S)
        if missing:
            names = ", ".join(sorted(k.rsplit("/", 1)[1] for k in missing))
            raise TimeoutError(f"{what}: {names} never written " + (
                "before node 0 ended the job" if over else f"within {self.timeout_s:.0f} s"))
        found = []
        for key in keys:
            value = self.store.read_one(key)
            if not isinstance(value, AcceptRecord | FabricSchedule):
                raise TimeoutError(f"{what}: {key} is not what it should be")
            found.append(value)
        return found

    def node_part(self, own_health: HealthRecord) -> bool:
        """This node's single-node tests, written as its node record; whether the node failed (a test, or its
        health step: its figures are kept, and the record says why). A test whose tool is missing is named only."""
        figures, failures, skipped = self.node_stage()
        unhealthy = health.invalid_reason([own_health])
        failed = bool(failures) or unhealthy is not None
        reasons = [*([f"health: {unhealthy}"] if unhealthy else []), *failures, *skipped]
        self.record("node", "failed" if failed else "succeeded", figures, reason="; ".join(reasons)[:1000] or None)
        return failed

    def node_stage(self) -> tuple[list[AcceptFigure], list[str], list[str]]:
        if self.ctx.local and self.node.index > 0 and self.slot is None:
            # The rehearsal's nodes share one machine: each is measured alone, after the one before it.
            self.wait_for([self.key("node", self.node.index - 1)], f"node {self.node.index - 1}'s turn")

        def ctx_for(benchmark: Benchmark) -> NodeContext:
            # This node alone, as a one-node job: its own torch rendezvous port (local nodes share one machine).
            own = node_context(self.env, self.identity.tier, benchmark)
            [ports] = launch.free_port_ranges([port_spans(own.repeats)[0]])
            return replace(own, node_index=0, num_nodes=1, master_port=ports.start)
        return run_node_tests(node_tests(self.identity.tier, self.ctx.local), ctx_for, self.node, self.timeout_s,
                              self.log)

    def pair_side(self, schedule: FabricSchedule) -> tuple[Status, str | None, list[AcceptFigure]] | None:
        """This node's side of fi_pingpong with the other node of its pair in `schedule` (node a serves and keeps
        the figure), after the pairs of earlier turns; None when this node has no pair this round."""
        pair = next((p for p in schedule.pairs if self.node.index in (p.a, p.b)), None)
        if pair is None:
            return None
        round = schedule.round
        self.wait_for([self.key("round", n, round) for p in schedule.pairs if p.turn < pair.turn for n in (p.a, p.b)],
                      f"the earlier turns of round {round}")
        serving = pair.a == self.node.index
        self.log.append(f"[accept] round {round}: node {pair.a} - node {pair.b}\n")
        status: Status = "succeeded"
        reason: str | None = None
        metrics: list[Metric] = []
        for i, port in enumerate(pair.ports):  # one measurement per port: the pair's figure is their median
            ctx = replace(self.ctx, node_index=0 if serving else 1, num_nodes=2, main_address=pair.address,
                          fabric_port=port, repeats=1, repeat=0, hosts=(), hostfile=None)
            status, reason, got, _, text = run_steps(LOCAL_FABRIC if ctx.local else FABRIC, ctx, self.timeout_s, [])
            self.log.append(text)
            metrics += with_labels(got, {REPEAT_LABEL: str(i + 1)})
            if status != "succeeded":
                break
        if not serving:
            return status, reason, []
        return status, reason, headline_figures(FABRIC, metrics, self.node, failed=status != "succeeded",
                                                node_b=pair.b, round=round)

    def collective(self, gathered: Sequence[launch.Node]) -> tuple[Status, str | None, list[AcceptFigure]]:
        if self.ctx.local and not self.local_collective:
            return "skipped", LOCAL_COLLECTIVE, []
        benchmark = BENCHMARKS[COLLECTIVE[self.identity.tier]]
        ctx = self.ctx
        if benchmark.ssh_launch:
            if not ctx.is_main:
                return "succeeded", None, []
            hostfile = Path(ctx.work_dir) / "hostfile"
            hostfile.write_text(launch.hostfile(gathered, ctx.ranks_per_node))
            ctx = replace(ctx, hosts=tuple(n.address for n in gathered), hostfile=str(hostfile))
        if missing := [cmd for cmd, _ in benchmark.needs if shutil.which(cmd) is None]:
            return "skipped", f"{benchmark.name}: not installed: {', '.join(missing)}", []
        Path(ctx.work_dir).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        status, reason, metrics, _, text = run_steps(benchmark, replace(ctx, repeats=1), self.timeout_s, [])
        self.log.append(text + f"[accept] node {self.node.index}: group collective {status} in "
                               f"{time.monotonic() - started:.1f} s\n")
        return status, reason, headline_figures(benchmark, metrics, self.node, test="group-collective",
                                                failed=status != "succeeded") if ctx.is_main else []


def address_of(nodes: Sequence[launch.Node], index: int) -> str:
    return next(n.address for n in nodes if n.index == index)


def orchestrate(job: Job, gathered: Sequence[launch.Node]) -> tuple[Status, str | None]:
    """Node 0: wait for every node's figures, run the fabric rounds, the group's collective, write the group record."""
    n = job.ctx.num_nodes
    job.wait_for([job.key("node", i) for i in range(n)], "the nodes' single-node figures")
    history: list[list[Measured]] = []
    problems: list[str] = []
    while (pairs := next_round(n, history)) is not None:
        r = len(history) + 1
        # A port per measurement of each pair (the job's repeats; the median is the pair's figure), free here when
        # chosen: local nodes share this machine, and a measurement's server must not meet the last one's socket
        # while it closes (on AWS, node a's is free there as well). Each is a one-repeat fabric job's port range.
        each = job.ctx.repeats
        ports = [r.start for r in launch.free_port_ranges([port_spans(1)[1]] * (each * len(pairs)))]
        schedule = job.schedule(r, [FabricPair(a=a, b=b, address=address_of(gathered, a),
                                               ports=ports[i * each:(i + 1) * each], turn=i if job.ctx.local else 0)
                                    for i, (a, b) in enumerate(pairs)])
        job.store.put_accept(schedule)
        if (side := job.pair_side(schedule)) is not None:
            job.record("round", side[0], side[2], reason=side[1], round=r)
        paired = sorted({x for p in schedule.pairs for x in (p.a, p.b)})
        records = job.wait_for([job.key("round", i, r) for i in paired], f"fabric round {r}")
        values = {f.node_b: f.value for rec in records if isinstance(rec, AcceptRecord) for f in rec.figures
                  if f.headline == FABRIC_HEADLINE and f.node_index == rec.node_index}
        history.append([(p.a, p.b, values.get(p.b, math.nan)) for p in schedule.pairs])
        problems += [f"round {r} node {rec.node_index}: {rec.reason}" for rec in records
                     if isinstance(rec, AcceptRecord) and rec.status != "succeeded"]
    job.store.put_accept(job.schedule(len(history) + 1, [], final=True))
    found = judge(n, history)
    job.log.append(f"[accept] {len(history)} fabric round(s); slow nodes {list(found.slow_nodes)}, slow links "
                   f"{[list(x) for x in found.slow_links]}\n")
    status, reason, figures = job.collective(gathered)
    if status != "succeeded":
        problems.append(f"group collective: {reason}")
    final: Status = "failed" if status == "failed" else "succeeded"
    why = "; ".join(problems)[:1000] or None
    job.record("group", final, figures, reason=why, rounds=len(history), slow_nodes=found.slow_nodes,
               slow_links=found.slow_links)
    return final, why


def follow(job: Job) -> None:
    """Another node: its side of every round node 0 schedules, then the group's collective."""
    r = 1
    while True:
        [schedule] = job.wait_for([job.schedule_key(r)], f"node 0's schedule of round {r}")
        assert isinstance(schedule, FabricSchedule)
        if schedule.final:
            break
        if (side := job.pair_side(schedule)) is not None:
            job.record("round", side[0], side[2], reason=side[1], round=r)
        r += 1
    job.collective(())


def run_acceptance(job: Job, secret_env: MutableMapping[str, str]) -> int:
    """The whole job on this node; 0 when it did its part."""
    ctx = job.ctx
    own_health, health_log = health_step(job.identity, replace(ctx, node_index=job.node.index), job.store)
    job.log.append(health_log)
    if ctx.num_nodes == 1:  # a single node: its own figures, nothing between nodes
        failed = job.node_part(own_health)
        if job.slot is None:
            job.record("group", "failed" if failed else "succeeded", [], reason="one node: no fabric between nodes")
        return 1 if failed else 0
    token = launch.job_token(job.identity.job_id)
    secret = launch.take_secret(secret_env)
    setup = launch.SshSetup(Path(tempfile.mkdtemp(prefix="rackform-ssh-")))
    sshd = []

    def ready(public_key: str) -> str:
        # The group collective of the GPU and Trainium tiers is launched over SSH from node 0 (workloads/launch.py).
        if ctx.local:
            return ""
        sshd.append(launch.start_sshd(setup, public_key))
        return setup.host_public_key()

    try:
        if not ctx.is_main:
            ended: list[int] = []
            job.main_over = threading.Event()

            def call_in() -> None:
                # Until node 0 ends the launch: then nothing more will be scheduled for this node.
                try:
                    ended.append(launch.join(ctx.main_address, ctx.master_port, index=ctx.node_index, job=token,
                                             secret=secret, get_ready=ready, timeout_s=job.timeout_s))
                except launch.LaunchError as e:
                    job.log.append(f"[accept] {e}\n")
                finally:
                    if job.main_over is not None:
                        job.main_over.set()

            joined = threading.Thread(target=call_in, daemon=True)
            joined.start()
            job.wait_for([job.schedule_key(0)], "node 0's word to start")
            job.node_part(own_health)
            follow(job)
            joined.join(job.timeout_s)
            return ended[0] if ended else 1
        public_key = "" if ctx.local else launch.make_job_key(setup, token)
        host_key = ready(public_key)
        try:
            gathered = launch.gather(
                ctx.master_port, num_nodes=ctx.num_nodes, job=token, secret=secret, public_key=public_key,
                host_key=host_key, timeout_s=job.timeout_s, bind="127.0.0.1" if ctx.local else "0.0.0.0",
                **({"peer_connections": ctx.num_nodes} if ctx.local else {}))
        except launch.LaunchError as e:
            job.record("group", "failed", [], reason=f"the nodes could not be gathered: {e}"[:1000])
            return 1
        # Round 0, no pairs: every node starts its single-node tests now, so the figures of a group are taken in
        # the same minutes (on shared storage, and on the rehearsal's shared CPUs, they compete alike).
        job.store.put_accept(job.schedule(0, []))
        job.node_part(own_health)
        if not ctx.local:
            launch.install_client_config(setup, gathered.nodes)
        status = "failed"
        try:
            status, _ = orchestrate(job, gathered.nodes)
        except (TimeoutError, launch.LaunchError) as e:
            job.record("group", "failed", [], reason=str(e)[:1000])
        finally:
            gathered.release(0 if status == "succeeded" else 1)
        return 0 if status == "succeeded" else 1
    finally:
        for proc in sshd:
            proc.terminate()


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="python -m workloads.job accept", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        given = JobEnvironment.from_env(env)
    except JobEnvironmentError as e:
        p.error(str(e))
    p.add_argument("job", help="accept (the group's multi-node job) or accept-<slot> (one node)")
    p.add_argument("--run-id", default=given.run_id)
    p.add_argument("--bucket", default=given.bucket)
    p.add_argument("--endpoint-url", default=env.get("AWS_ENDPOINT_URL"))
    p.add_argument("--timeout", type=float, default=given.timeout_s)
    args = p.parse_args(argv)
    slot = ACCEPT_JOB_NAME.fullmatch(args.job)
    if slot is None:
        p.error(f"{args.job!r}: accept or accept-<slot>")
    if not args.run_id or not args.bucket:
        p.error(f"acceptance writes its figures to the results bucket: set {PREFIX}RUN_ID and {PREFIX}BUCKET "
                "(rackform submits it with both)")
    try:
        check_run_id(args.run_id)
    except ValueError as e:
        p.error(str(e))
    job_id = env.get("AWS_BATCH_JOB_ID")
    identity = JobIdentity(run_id=args.run_id, benchmark=args.job, rack=given.rack, node_group=given.node_group,
                           tier=given.tier, instance_type=given.instance_type, job_id=job_id,
                           price_usd_per_hour=given.price_usd_per_hour, neuron_cores=given.neuron_cores)
    ctx = node_context(env, given.tier)
    number = int(slot[1]) if slot[1] is not None else None
    index = ctx.node_index if number is None else number
    node = NodeId(index, None if given.local else node_identity().get("instance_id"), socket.gethostname())
    job = Job(identity, ctx, env, ResultStore(args.bucket, s3_client(args.endpoint_url)), node, args.timeout, [],
              number, local_collective=given.local_collective)
    # Out of the environment before any tool starts: none inherits the launch secret (docs/security.md).
    secret_env = launch.withhold_secret(os.environ)
    secret_env.update({k: v for k, v in env.items() if k == launch.SECRET_VARIABLE})
    try:
        code = run_acceptance(job, secret_env)
    except Exception as e:  # a broken node still says why, in its log
        job.log.append(f"[accept] runner error: {type(e).__name__}: {e}\n")
        code = 1
    text = "".join(job.log)
    sys.stdout.write(text)
    try:
        job.store.put_log(log_key(identity.run_id, identity.rack, identity.node_group, identity.benchmark, index),
                          text)
    except Exception as e:
        print(f"[accept] log not written: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"[accept] node {index}: exit {code}", file=sys.stderr)
    return code
