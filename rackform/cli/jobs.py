"""Commands on benchmark jobs in AWS: submit, status, results, runs, logs."""

from __future__ import annotations

import argparse
import codecs
import datetime as dt
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from ..aws import BotoClient, PaginatingClient
from ..render.text import table, wrap
from ..spec.problems import Problem, SpecError
from ..textsafe import visible
from . import repairs
from .common import (
    EXIT_INTERRUPTED,
    EXIT_PROBLEM,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Subparsers,
    aws_options,
    aws_target,
    checked_plan,
    json_option,
    no_such_run,
    positive_arg,
    problem_lines,
    repeats_arg,
    results_store,
    say_no_records,
    seconds_arg,
    store_for,
)

if TYPE_CHECKING:
    from workloads.objects import RunSummary
    from workloads.store import ResultStore

    from ..jobs.submit import JobState


def submission() -> ModuleType:
    """The submission module, imported when a command needs it (boto3 at import)."""
    from ..jobs import submit

    return submit


def batch_lookup(args: argparse.Namespace, region: str | None = None) -> PaginatingClient:
    from .. import aws

    lookup: PaginatingClient = aws.client(aws_target(args, region), "batch", config=submission().LOOKUP_RETRY)
    return lookup


def cmd_submit(args: argparse.Namespace) -> int:
    from workloads.layout import check_run_id

    sub = submission()
    plan = checked_plan(args.spec)
    run_id = args.run_id or sub.new_run_id()
    try:
        check_run_id(run_id)
        sub.targets(plan, args.rack, args.node_group, args.benchmark)  # a typo should not wait for an AWS call
    except ValueError as e:
        print(f"error: --run-id: {e}", file=sys.stderr)
        return EXIT_USAGE
    except sub.SubmitError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_PROBLEM
    store = results_store(args, plan)
    submitter, lookup = sub.batch_clients_for(aws_target(args, plan.region))
    try:
        subs = sub.submit(plan, rack=args.rack, node_group=args.node_group, benchmark=args.benchmark,
                          run_id=run_id, nodes=args.nodes, repeats=args.repeats, store=store, submitter=submitter,
                          lookup=lookup)
    except sub.SubmitError as e:  # it may quote a claim from the bucket
        print(f"error: {visible(e)}", file=sys.stderr)
        return EXIT_PROBLEM
    for s in subs:  # a marker found in the bucket says what was submitted before
        verb = "submitted" if s.created else "already submitted"
        kind = f"multi-node, {s.nodes} nodes" if s.nodes > 1 else "1 node"
        print(visible(f"{verb} {s.job_name} ({kind}) to {s.queue}: job {s.job_id}"), file=sys.stderr)
    if problems := problem_lines(store):  # jobs left out: their marker or claim cannot be believed
        print("\n".join(problems), file=sys.stderr)
    if args.json:
        from ..render.problems import problem_dicts

        print(json.dumps({"run_id": run_id, "jobs": [s.__dict__ for s in subs],
                          "problems": problem_dicts(store.problems)}, indent=2))
    else:
        print(run_id)
    return EXIT_PROBLEM if problems else 0


# --- status ------------------------------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(done: int, total: int, elapsed_s: float, width: int = 30) -> str:
    """`[#####.....] 3/12 jobs done, 2m05s elapsed, ETA 6m15s` (the ETA from the pace so far, once a job is done)."""
    filled = width * done // total if total else width
    eta = f"ETA {_duration(elapsed_s / done * (total - done))}" if 0 < done < total else \
        "ETA unknown" if done < total else "all done"
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} jobs done, {_duration(elapsed_s)} elapsed, {eta}"


def wait_for(run_id: str, store: ResultStore, lookup: PaginatingClient | None, *, interval_s: float,
             timeout_s: float | None, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> tuple[list[JobState], bool]:
    """Poll until every job is done or `timeout_s` passes: (the last states, whether it timed out).

    On a terminal the bar redraws in place; anywhere else (CI logs, a pipe) each change is one plain line."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    started, last = clock(), None
    seen: dict[str, str] = {}  # each job's state as last shown
    while True:
        states = submission().run_state(run_id, store, lookup)
        if not states:  # nothing was submitted under this run id: nothing to wait for
            return states, False
        done, elapsed = sum(s.done for s in states), clock() - started
        line = progress_line(done, len(states), elapsed)
        if changes := state_changes(states, seen):
            stream.write(("\r\033[K" if tty else "") + "".join(f"{c}\n" for c in changes))  # above the bar
            last = None  # off a terminal, the bar follows the changes it counts
        if tty:
            stream.write(f"\r{line}")
        elif done != last:
            stream.write(f"{line}\n")
        stream.flush()
        last = done
        timed_out = timeout_s is not None and elapsed >= timeout_s
        if done == len(states) or timed_out:
            if tty:
                stream.write("\n")
            return states, timed_out and done < len(states)
        sleep(interval_s if timeout_s is None else max(0.0, min(interval_s, timeout_s - elapsed)))


def state_changes(states: list[JobState], seen: dict[str, str]) -> list[str]:
    """A line per job whose state changed since `seen` (updated): at the first poll, each job still to finish."""
    first, lines = not seen, []
    for s in states:
        label = s.record_status and f"record {s.record_status}" or s.batch_status or "no record yet"
        if s.done and s.record_status is None:
            label += f", no record: {_no_record(s)}"
        before = seen.get(s.submission["job_id"])
        seen[s.submission["job_id"]] = label
        if label != before and not (first and s.done):
            lines.append(visible(f"  {_job_name(s)}: {f'{before} -> ' if before else ''}{label}"))
    return lines


def _job_name(s: JobState) -> str:
    return f"{s.submission['benchmark']} {s.submission['rack']}/{s.submission['node_group']}"


def _no_record(s: JobState) -> str:
    """Where the output of a job Batch ended without a record is: its CloudWatch log stream."""
    sub = submission()
    if s.log_stream:
        return f"its output is log stream {s.log_stream} in {sub.BATCH_LOG_GROUP}"
    if s.submission["nodes"] > 1:  # a multi-node job's streams are its node jobs', jobId#N
        return (f"each node's output is its node job's log stream in {sub.BATCH_LOG_GROUP} (`rackform logs RUN "
                f"--benchmark {s.submission['benchmark']} --follow --node I` shows node I's)")
    return "Batch gave no log stream (no container of it ran)"


def cmd_status(args: argparse.Namespace) -> int:
    from .placement import workload_lines

    store = store_for_run(args, [args.run_id])
    lookup = batch_lookup(args)
    timed_out = False
    if args.wait:
        store.keep()  # each poll GETs only the objects that are new since the last
        try:
            states, timed_out = wait_for(args.run_id, store, lookup, interval_s=args.interval,
                                         timeout_s=args.timeout)
        except KeyboardInterrupt:
            print(f"\ninterrupted: the jobs keep running in AWS Batch; re-attach with `rackform status "
                  f"{args.run_id} --wait`", file=sys.stderr)
            return EXIT_INTERRUPTED
    else:
        states = submission().run_state(args.run_id, store, lookup)
    workload_jobs, workloads_failed = workload_lines(args.run_id, store, lookup)  # `rackform run`'s jobs, beside
    problems = problem_lines(store)  # markers, records, decisions that cannot be believed, each named
    if states:  # what status has just read, kept for `rackform runs` as the run's next summary
        _summarized(store, args.run_id, [s.submission for s in states], [s.record_status for s in states],
                    store.latest_summary(args.run_id))
    if not states and not workload_jobs:
        if problems:
            print("\n".join(problems), file=sys.stderr)
        print(f"error: {no_such_run(store, args.run_id, 'submitted jobs')}", file=sys.stderr)
        return EXIT_PROBLEM
    jobs = []
    for s in states:
        key = (s.submission["rack"], s.submission["node_group"], s.submission["benchmark"])
        jobs.append({"benchmark": key[2], "rack": key[0], "node_group": key[1], "nodes": s.submission["nodes"],
                     "job_id": s.submission["job_id"], "batch_status": s.batch_status, "record": s.record_status,
                     "done": s.done, "reason": s.record_reason or s.batch_reason or None,
                     "log_stream": s.log_stream})
    failed = [j for j in jobs if j["record"] == "failed" or (j["record"] is None and j["done"])]
    # the run's node groups' repairs of the past hour (the repair loop's, docs/self-healing.md)
    repaired = repairs.in_flight(store, [(j["rack"], j["node_group"]) for j in jobs], dt.datetime.now(dt.UTC))
    if args.json:
        from ..render.problems import problem_dicts

        print(json.dumps({"run_id": args.run_id, "done": all(j["done"] for j in jobs), "timed_out": timed_out,
                          "jobs": jobs, "repairs": [r.model_dump(mode="json") for r in repaired],
                          "problems": problem_dicts(store.problems)}, indent=2))
    else:
        # The reason whole, as --json has it: the table wraps it in its cell.
        rows = [[j["benchmark"], f"{j['rack']}/{j['node_group']}", j["nodes"], j["batch_status"] or "?",
                 j["record"] or "-", j["reason"] or ""] for j in jobs]
        # a job Batch ended without a record: the stream is too long for the reason column, and the one lead
        ended = [visible(f"{_job_name(s)}: Batch says {s.batch_status} and no record landed; {_no_record(s)}")
                 for s in states if s.done and s.record_status is None]
        # the prose folded to the terminal, as the table fits it
        print(wrap("\n".join([table(rows, ["benchmark", "rack/node group", "nodes", "batch", "record", "reason"]),
                              *ended, *map(repairs.in_flight_line, repaired), *problems, *workload_jobs])))
    if timed_out:
        print(f"error: --timeout {args.timeout:g}s passed with {sum(not j['done'] for j in jobs)} job(s) not done; "
              f"they keep running: `rackform status {args.run_id} --wait` re-attaches", file=sys.stderr)
        return EXIT_TIMEOUT
    return EXIT_PROBLEM if failed or problems or workloads_failed else 0


def cmd_results(args: argparse.Namespace) -> int:
    from ..analysis.summary import headline_text
    from .placement import workload_lines

    store = store_for_run(args, [args.run_id])
    # Records stream in (bounded parallel reads) and each is written out, or made its table row, as it comes: none
    # is held, so memory stays flat however many the run has.
    if args.json:
        return _results_json(store, args.run_id)
    rows, local = [], False
    for r in store.iter_records(args.run_id):
        rows.append([r.benchmark, f"{r.rack}/{r.node_group}", r.tier, r.instance_type, r.node_count, r.status,
                     f"{(r.ended_at - r.started_at).total_seconds():.0f}s", headline_text(r)])
        local = local or r.environment.get("executor") == "local"
    if not rows:
        say_no_records(store, args.run_id)
        return 1
    # A narrow terminal gives up the tier (the rack says it) and the time before the result, the command's point.
    lines = [table(rows, ["benchmark", "rack/node group", "tier", "instance", "nodes", "status", "time", "result"],
                   essential=("benchmark", "rack/node group", "instance", "nodes", "status", "result"))]
    if local:
        lines.append("note: executor=local: measured on this machine, not on the instance types named above")
    lines += workload_lines(args.run_id, store, None)[0]
    lines += (problems := problem_lines(store))
    print(wrap("\n".join(lines)))  # the prose folded to the terminal, as the table fits it
    return 1 if problems else 0


def _results_json(store: ResultStore, run_id: str) -> int:
    """{"run_id", "records": [...], "problems": [...]}, each record written as it is read; a run with none is the
    same error as in text, on stderr, with nothing on stdout."""
    from ..render.jsonout import json_text
    from ..render.problems import problem_dicts

    records = store.iter_records(run_id)
    if (first := next(records, None)) is None:
        say_no_records(store, run_id)
        return 1
    out = sys.stdout
    out.write(f'{{\n  "run_id": {json.dumps(run_id)},\n  "records": [')
    for n, record in enumerate(itertools.chain([first], records)):
        out.write(("," if n else "") + "\n" + _indented(json_text(record.model_dump(mode="json")), "    "))
    out.write(f'\n  ],\n  "problems": {_indented(json_text(problem_dicts(store.problems)), "  ").lstrip()}\n}}\n')
    return 1 if store.problems else 0


def _indented(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


# --- runs and logs -----------------------------------------------------------------------------------------------

def _cluster(marker: dict[str, Any]) -> str:
    # Queues are named <cluster>-<rack>-<node group>-queue (rackform.plan.naming.job_queue).
    suffix = f"-{marker['rack']}-{marker['node_group']}-queue"
    return marker["queue"][:-len(suffix)] if marker["queue"].endswith(suffix) else "?"


def cmd_runs(args: argparse.Namespace) -> int:
    from workloads.layout import RESULTS_PREFIX, RUN_ID
    from workloads.store import BadObject

    from ..render.problems import problem_dicts
    from ..render.problems import problem_lines as lines_of

    store = results_store(args)
    found = store.run_ids()  # by delimiter: the run folders, never every object of every run
    # A folder no run id can name was never written by rackform: a problem, never a run to read.
    strays = [BadObject(f"{RESULTS_PREFIX}/{run_id}/", "run", "unreadable", "not a run id (1-48 letters, digits, "
                        "'-' or '_', starting with a letter or digit): no rackform run writes here")
              for run_id in found if not RUN_ID.fullmatch(run_id)]
    summaries = sorted(_summaries(store, [r for r in found if RUN_ID.fullmatch(r)]), key=_age, reverse=True)
    runs = [s.run_id for s in summaries]
    listed: list[dict[str, Any]] = [
        {"run_id": s.run_id, "started": dt.datetime.fromisoformat(s.started).isoformat(timespec="seconds"),
         "clusters": s.clusters, "jobs": s.jobs, "succeeded": s.succeeded, "failed": s.failed, "skipped": s.skipped,
         "pending": s.pending} for s in summaries[:args.limit]]
    bad = [*store.problems, *strays]
    if args.json:
        print(json.dumps({"bucket": store.bucket, "runs": listed, "more": max(0, len(runs) - args.limit),
                          "problems": problem_dicts(bad)}, indent=2))
        return EXIT_PROBLEM if bad else 0
    if not runs and not bad:
        print(f"no runs in s3://{store.bucket}/results/ yet: `rackform submit` starts one", file=sys.stderr)
        return 0
    rows = [[r["run_id"], r["started"].replace("+00:00", "Z"), ", ".join(r["clusters"]) or "-", r["jobs"],
             r["succeeded"], r["failed"], r["skipped"], r["pending"]] for r in listed]
    lines = [table(rows, ["run", "started", "cluster", "jobs", "succeeded", "failed", "skipped", "pending"])]
    if len(runs) > args.limit:
        lines.append(f"({len(runs) - args.limit} older runs not shown: --limit {len(runs)} shows all)")
    lines += (problems := lines_of(bad))
    print(wrap("\n".join(lines)))  # the prose folded to the terminal, as the table fits it
    return EXIT_PROBLEM if problems else 0


def store_for_run(args: argparse.Namespace, run_ids: list[str | None]) -> ResultStore:
    """The result store for these runs (common.store_for); a run left out (None) is `args.run_id`, made the
    bucket's newest run and named on stderr."""
    store = store_for(args, [r for r in run_ids if r is not None])
    if None in run_ids:
        if (latest := latest_run(store)) is None:
            raise SpecError([Problem("error", "RUN", f"s3://{store.bucket}/results/ holds no runs yet: give RUN, or "
                                     "`rackform submit` one")])
        print(f"run {latest}: the newest in s3://{store.bucket}/results/ (give RUN for another; `rackform runs` "
              "lists them)", file=sys.stderr)
        args.run_id = latest
    return store


def latest_run(store: ResultStore) -> str | None:
    """The newest run in the bucket, by when its first object was written (the runs' summaries, as `runs` reads
    them: O(runs) requests)."""
    from workloads.layout import RUN_ID

    summaries = _summaries(store, [r for r in store.run_ids() if RUN_ID.fullmatch(r)])
    return max(summaries, key=_age).run_id if summaries else None


def _age(summary: RunSummary) -> tuple[dt.datetime, str]:
    """What orders runs in time: when the run's first object was written, then its id. S3 lists LastModified in
    whole seconds (AWS's ListObjectVersions example answers `"LastModified": "2016-12-15T01:19:41.000Z"`,
    https://docs.aws.amazon.com/AWSJavaScriptSDK/v3/latest/clients/client-s3/classes/listobjectversionscommand.html;
    the embedded AWS does the same), so runs started in the same second tie on the first; the id then decides, the
    same way in `runs` and for the newest run. A generated id begins with its UTC second (jobs/submit.py
    new_run_id), so ids order as their times do across seconds, and within one second the order is still the same
    at every reading."""
    return dt.datetime.fromisoformat(summary.started), summary.run_id


def _summaries(store: ResultStore, run_ids: list[str]) -> list[RunSummary]:
    """Each run's summary: its latest `_summary/` object while that is final and no job was submitted since (two
    listings and a GET per run, READERS runs at a time), else made afresh from the run's markers and records (and
    written, when they had no problem, so the next `runs` need not read them)."""
    from concurrent.futures import ThreadPoolExecutor

    from workloads.layout import jobs_prefix
    from workloads.store import READERS

    def still_true(run_id: str) -> tuple[RunSummary | None, bool]:
        latest = store.latest_summary(run_id)
        return latest, latest is not None and latest.final and store.count(jobs_prefix(run_id)) == latest.jobs

    with ThreadPoolExecutor(READERS) as pool:
        latest = dict(zip(run_ids, pool.map(still_true, run_ids), strict=True))
    out = []
    for run_id in run_ids:
        summary, true = latest[run_id]
        if not true:  # from the markers' and records' folders, records streamed: never the whole run, held
            markers = store.submissions(run_id)
            summary = _summarized(store, run_id, markers, [r.status for r in store.iter_records(run_id)], summary)
        if summary is not None:
            out.append(summary)
    return out


def _summarized(store: ResultStore, run_id: str, markers: list[dict[str, Any]], statuses: list[str | None],
                latest: RunSummary | None) -> RunSummary:
    """The summary of a run just read (`statuses`: each record's, None for a job without one), written as the
    run's next `_summary/` object when the read had no problem and the latest one says otherwise. A reader who may
    not write, or a writer who lost the race for that seq, still has it to show."""
    from workloads.layout import run_prefix
    from workloads.objects import RunSummary
    from workloads.store import AlreadyExists

    from .. import aws

    now = dt.datetime.now(dt.UTC)
    counts = {s: statuses.count(s) for s in ("succeeded", "failed", "skipped")}
    summary = RunSummary(run_id=run_id, seq=latest.seq + 1 if latest else 0,
                         written_at=now.isoformat(timespec="seconds"),
                         started=(store.first_written(run_id) or now).isoformat(),
                         clusters=sorted({_cluster(m) for m in markers}), jobs=len(markers),
                         records=sum(s is not None for s in statuses), **counts)
    same = latest is not None and latest.model_dump(exclude={"seq", "written_at"}) == \
        summary.model_dump(exclude={"seq", "written_at"})
    if same or any(p.key.startswith(run_prefix(run_id)) for p in store.problems):
        return summary
    try:
        store.put_summary(summary)
    except AlreadyExists:
        pass  # another reader wrote this seq first: the next reader takes whichever is latest
    except Exception as e:
        if not aws.is_denied(e):
            raise
    return summary


def _log_keys(store: ResultStore, run_id: str, args: argparse.Namespace) -> list[tuple[str, tuple[str, str, str, int]]]:
    from workloads.layout import parse_log_key, run_prefix

    out = []
    for key in store.keys(run_prefix(run_id)):
        if (parsed := parse_log_key(key)) is None:
            continue
        job = parsed[1:]
        if all(want is None or want == have for want, have in zip(
                (args.rack, args.node_group, args.benchmark, args.node), job, strict=True)):
            out.append((key, job))
    return out


def cmd_logs(args: argparse.Namespace) -> int:
    from workloads.layout import run_prefix

    store = store_for_run(args, [args.run_id])
    if args.follow:
        return _follow_job(args, store)
    found = _log_keys(store, args.run_id, args)
    if not found:
        if not any(True for _ in store.keys(run_prefix(args.run_id))):
            print(f"error: {no_such_run(store, args.run_id, 'logs')}", file=sys.stderr)
        else:
            print(f"error: no node log of run {args.run_id} matches the options given; `rackform status "
                  f"{args.run_id}` lists its jobs", file=sys.stderr)
        return EXIT_PROBLEM
    jobs = sorted({job[:3] for _, job in found})
    if len(jobs) > 1:
        rows = [[b, f"{r}/{g}", sum(1 for _, j in found if j[:3] == (r, g, b))] for r, g, b in jobs]
        print(f"error: {len(jobs)} jobs of run {args.run_id} match; choose one with --rack, --node-group and "
              f"--benchmark:\n{table(rows, ['benchmark', 'rack/node group', 'node logs'])}", file=sys.stderr)
        return EXIT_USAGE
    from workloads.store import Refused

    try:
        (_logs_json if args.json else _logs_text)(store, args.run_id, sorted(found, key=lambda kj: kj[1]))
    except Refused as e:  # before a log's first byte, or after its last: then the text shown is not the job's
        sys.stdout.flush()
        print(f"error: {visible(e)}; what was shown of it above is not what the job wrote, and no later log was "
              "shown", file=sys.stderr)
        return EXIT_PROBLEM
    return 0


def _follow_job(args: argparse.Namespace, store: ResultStore) -> int:
    """`logs --follow`: the job's CloudWatch log as Batch's awslogs driver writes it, until the job ends."""
    from .. import aws

    wanted = {"rack": args.rack, "node_group": args.node_group, "benchmark": args.benchmark}
    submitted = store.submissions(args.run_id)
    markers = [m for m in submitted if all(v is None or m[k] == v for k, v in wanted.items())]
    if not markers:
        print(f"error: {no_such_run(store, args.run_id, 'submitted jobs')}" if not submitted
              else f"error: no job of run {args.run_id} matches the options given; `rackform status {args.run_id}` "
              "lists its jobs", file=sys.stderr)
        return EXIT_PROBLEM
    if len(markers) > 1:
        rows = [[m["benchmark"], f"{m['rack']}/{m['node_group']}", m["job_id"]] for m in markers]
        print(f"error: {len(markers)} jobs of run {args.run_id} match; choose one with --rack, --node-group and "
              f"--benchmark:\n{table(rows, ['benchmark', 'rack/node group', 'job'])}", file=sys.stderr)
        return EXIT_USAGE
    marker = markers[0]
    # A multi-node job's nodes are child jobs, `jobId#N`, each with its own stream; node 0 is the main node.
    job_id = f"{marker['job_id']}#{args.node or 0}" if marker["nodes"] > 1 else marker["job_id"]
    status = follow(batch_lookup(args), aws.client(aws_target(args), "logs"), job_id, sys.stdout,
                    interval_s=args.interval, as_json=args.json)
    if status is None:
        print(f"error: AWS Batch no longer knows job {job_id}: `rackform logs {args.run_id}` shows its node logs "
              "from S3", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"job {job_id} ended {status}; `rackform logs {args.run_id}` shows the node logs the runner kept in S3 "
          "(checked)", file=sys.stderr)
    return 0 if status == "SUCCEEDED" else EXIT_PROBLEM


def follow(batch: BotoClient, logs: BotoClient, job_id: str, out: TextIO, *, interval_s: float,
           as_json: bool = False, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Write a Batch job's CloudWatch log events as they arrive, polling every `interval_s`, until Batch ends the
    job and its stream has nothing more: Batch's final status (None when Batch does not know the job).

    GetLogEvents from the head, then from each nextForwardToken: "If you have reached the end of the stream, it
    returns the same token you passed in" (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/
    API_GetLogEvents.html), so a repeated token is "nothing new yet", never the end of the job."""
    from .. import aws

    sub = submission()
    token: str | None = None
    said = None
    while True:
        job = aws.describe_jobs(batch, [job_id]).get(job_id)
        if job is None:
            return None
        status, stream = job["status"], sub.log_stream(job)  # read before the events: none is missed at the end
        while stream:
            try:
                page = logs.get_log_events(logGroupName=sub.BATCH_LOG_GROUP, logStreamName=stream,
                                           startFromHead=True, **({"nextToken": token} if token else {}))
            except Exception as e:  # a stream Batch named before the driver's first write: nothing to show yet
                if aws.error_code(e) != "ResourceNotFoundException":
                    raise
                break
            for event in page.get("events", []):
                # What the job printed: control characters are shown, never sent to the terminal.
                out.write(json.dumps({"timestamp": event["timestamp"], "message": event["message"]}) + "\n"
                          if as_json else visible(event["message"]) + "\n")
            out.flush()
            if page["nextForwardToken"] == token:
                break
            token = page["nextForwardToken"]
        if not stream and status != said:
            print(f"job {job_id} is {status}: its log starts when it runs", file=sys.stderr)
            said = status
        if status in sub.BATCH_ENDED:
            return str(status)
        sleep(interval_s)


def _text(chunks: Iterator[bytes]) -> Iterator[str]:
    """The UTF-8 text of a stream of chunks; a character split between two chunks is decoded whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _logs_text(store: ResultStore, run_id: str, found: list[tuple[str, Any]]) -> None:
    # Streamed: a log of any size is shown chunk by chunk, never held whole in memory.
    for key, _ in found:
        if len(found) > 1:
            print(visible(f"==> s3://{store.bucket}/{key} <=="))
        last = ""
        for text in _text(store.stream(key)):
            # Logs are whatever the job printed: control characters are shown, never sent to the terminal.
            sys.stdout.write(visible(text, keep_newlines=True))
            last = text[-1:] or last
        if last != "\n":
            sys.stdout.write("\n")


def _logs_json(store: ResultStore, run_id: str, found: list[tuple[str, Any]]) -> None:
    """{"run_id": ..., "logs": [{"key", "node", "text"}, ...]}, written as the logs stream in; a log refused half
    way leaves the document unclosed, so no JSON reader takes it for whole."""
    out = sys.stdout
    out.write(f'{{"run_id": {json.dumps(run_id)}, "logs": [')
    for n, (key, job) in enumerate(found):
        out.write(f'{"," if n else ""}\n  {{"key": {json.dumps(key)}, "node": {job[3]}, "text": "')
        for text in _text(store.stream(key)):
            out.write(json.dumps(text)[1:-1])  # escaped as a JSON string, control characters included
        out.write('"}')
    out.write("\n]}\n")


def _index(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a node index (0, 1, ...)")
    return int(text)


RUN_HELP = "run id, as `rackform submit` printed it (`rackform runs` lists them); default: the bucket's newest run"


def register(sub: Subparsers) -> None:
    from workloads.benchmarks import BENCHMARKS

    p = sub.add_parser("submit", help="submit a benchmark job to a rack's AWS Batch queues; prints the run id",
                       epilog="example:\n  RUN=$(rackform submit my-spec.yaml --rack trn2-train --benchmark "
                       "allreduce --nodes 4)\n  rackform submit my-spec.yaml --rack gpu --benchmark gemm --run-id $RUN")
    p.add_argument("spec", help="path to the rack spec YAML (its Region is where the jobs run)")
    p.add_argument("--rack", required=True, help="rack to run on, as named in the spec")
    p.add_argument("--node-group", help="node group of the rack (default: every node group the benchmark runs on)")
    p.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS), help="what to run")
    p.add_argument("--nodes", type=positive_arg, help="nodes for a multi-node benchmark (default: the benchmark's own)")
    p.add_argument("--run-id", help="group jobs into one run (default: a new id); the same id again submits "
                   "nothing new")
    p.add_argument("--repeats", type=repeats_arg, metavar="N", help="measure the benchmark N times in each job "
                   "(3 to 10, default 3); the report gives the median, min and max and marks a spread over 10%%")
    json_option(p, "the run id and the jobs")
    aws_options(p, region=False)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="where a run's jobs are, with the reason for failed and skipped ones; "
                       "--wait follows them to the end",
                       epilog="example:\n  rackform status $RUN --wait --timeout 3600   # in CI: exit 4 if not "
                       "done in an hour")
    p.add_argument("run_id", metavar="RUN", nargs="?", help=RUN_HELP)
    p.add_argument("--wait", action="store_true", help="poll until every job has its record; Ctrl-C stops "
                   "watching, not the jobs")
    p.add_argument("--timeout", type=seconds_arg, metavar="SECONDS", help="with --wait: give up after this long and "
                   "exit 4 (default: wait as long as it takes)")
    p.add_argument("--interval", type=seconds_arg, default=15.0, metavar="SECONDS",
                   help="with --wait: seconds between polls")
    json_option(p, "the jobs' states")
    aws_options(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("results", help="the records a run wrote to S3, as a table or JSON",
                       epilog="example:\n  rackform results $RUN --json | jq '.records[].metrics'")
    p.add_argument("run_id", metavar="RUN", nargs="?", help=RUN_HELP)
    json_option(p, "the records")
    aws_options(p)
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("runs", help="the runs in the results bucket, newest first, with their jobs' outcomes",
                       epilog="example:\n  rackform runs --limit 5")
    p.add_argument("--limit", type=positive_arg, default=20, metavar="N", help="show the newest N runs")
    json_option(p, "the runs")
    aws_options(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("logs", help="a job's raw node log from S3 (what the benchmark tool printed), streamed: a log "
                       "of any size is printed as it is read, never held in memory; its SHA-256 is checked at its end "
                       "(a mismatch exits 1 after the text)",
                       epilog="example:\n  rackform logs $RUN --rack gpu --node-group h100 --benchmark allreduce "
                       "--node 1")
    p.add_argument("run_id", metavar="RUN", nargs="?", help=RUN_HELP)
    p.add_argument("--rack", help="the job's rack (needed when the run has jobs on several)")
    p.add_argument("--node-group", help="the job's node group (needed when the rack has several)")
    p.add_argument("--benchmark", help="the job's benchmark (needed when the run has several)")
    p.add_argument("--node", type=_index, metavar="I", help="one node of a multi-node job (default: every node; "
                   "with --follow, node 0)")
    p.add_argument("--follow", action="store_true", help="stream the job's CloudWatch log (/aws/batch/job) while it "
                   "runs, until AWS Batch ends it (exit 1 when it FAILED)")
    p.add_argument("--interval", type=seconds_arg, default=5.0, metavar="SECONDS",
                   help="with --follow: seconds between polls")
    json_option(p, "the logs (with --follow: one JSON object per log event and line)")
    aws_options(p)
    p.set_defaults(func=cmd_logs)
