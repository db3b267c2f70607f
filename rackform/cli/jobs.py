"""Commands on benchmark jobs in AWS: submit, status, results."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import aws_options, checked_plan, problem_lines, results_bucket, run_records, store_for, table


def cmd_submit(args: argparse.Namespace) -> int:
    from workloads.store import ResultStore, check_run_id, s3_client
    from workloads.submit import SubmitError, batch_clients, new_run_id, submit, targets

    plan = checked_plan(args.spec)
    run_id = args.run_id or new_run_id()
    try:
        check_run_id(run_id)
        targets(plan, args.rack, args.node_group, args.benchmark)  # a typo should not wait for an AWS call
    except ValueError as e:
        print(f"error: --run-id: {e}", file=sys.stderr)
        return 2
    except SubmitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    store = ResultStore(results_bucket(args, plan), s3_client(args.endpoint_url, plan.region))
    submitter, lookup = batch_clients(args.endpoint_url, plan.region)
    try:
        subs = submit(plan, rack=args.rack, node_group=args.node_group, benchmark=args.benchmark, run_id=run_id,
                      nodes=args.nodes, store=store, submitter=submitter, lookup=lookup)
    except SubmitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for s in subs:
        verb = "submitted" if s.created else "already submitted"
        kind = f"multi-node, {s.nodes} nodes" if s.nodes > 1 else "1 node"
        print(f"{verb} {s.job_name} ({kind}) to {s.queue}: job {s.job_id}", file=sys.stderr)
    print(run_id)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import boto3

    from .placement import workload_lines

    from workloads.submit import run_state, wait

    store = store_for(args, [args.run_id])
    lookup = boto3.client("batch", region_name=args.region, endpoint_url=args.endpoint_url)
    states = wait(args.run_id, store, lookup) if args.wait else run_state(args.run_id, store, lookup)
    problems = problem_lines(store)
    workload_jobs, workloads_bad = workload_lines(args.run_id, store, lookup)  # `rackform run`'s jobs, beside
    if not states and not workload_jobs:
        if problems:
            print("\n".join(problems), file=sys.stderr)
        print(f"error: run {args.run_id} has no submitted jobs in s3://{store.bucket}/results/", file=sys.stderr)
        return 1
    rows = [[s.submission["benchmark"], f"{s.submission['rack']}/{s.submission['node_group']}",
             s.submission["nodes"], s.batch_status or "?", s.record_status or "-",
             (s.batch_reason or "")[:60]] for s in states]
    print("\n".join([table(rows, ["benchmark", "rack/node group", "nodes", "batch", "record", "reason"]),
                     *problems, *workload_jobs]))
    failed = [s for s in states if s.record_status == "failed" or (s.record_status is None and s.done)]
    return 1 if failed or problems or workloads_bad else 0


def cmd_results(args: argparse.Namespace) -> int:
    from .placement import workload_lines

    from ..analysis.summary import headline_text

    store = store_for(args, [args.run_id])
    records = run_records(store, args.run_id)
    if records is None:
        return 1
    if args.json:
        from ..render.jsonout import json_text
        from workloads.store import problem_dicts

        print(json_text({"run_id": args.run_id, "records": [r.model_dump(mode="json") for r in records],
                         "problems": problem_dicts(store.problems)}))
        return 1 if store.problems else 0
    rows = [[r.benchmark, f"{r.rack}/{r.node_group}", r.tier, r.instance_type, r.node_count, r.status,
             f"{(r.ended_at - r.started_at).total_seconds():.0f}s", headline_text(r)] for r in records]
    print(table(rows, ["benchmark", "rack/node group", "tier", "instance", "nodes", "status", "time", "result"]))
    if any(r.environment.get("executor") == "local" for r in records):
        print("note: executor=local: measured on this machine, not on the instance types named above")
    if problems := problem_lines(store):
        print("\n".join(problems))
    if workload_jobs := workload_lines(args.run_id, store, None)[0]:
        print("\n".join(workload_jobs))
    return 1 if problems else 0



def register(sub: Any) -> None:
    from workloads.benchmarks import BENCHMARKS

    p = sub.add_parser("submit", help="submit a benchmark job to a rack's AWS Batch queue; prints the run id")
    p.add_argument("spec")
    p.add_argument("--rack", required=True)
    p.add_argument("--node-group", help="default: every node group of the rack the benchmark runs on")
    p.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
    p.add_argument("--nodes", type=int, help="nodes for a multi-node benchmark (default: the benchmark's own)")
    p.add_argument("--run-id", help="group jobs into one run; the same id again submits nothing new")
    aws_options(p, region=False)
    p.set_defaults(func=cmd_submit)
    
    p = sub.add_parser("status", help="where a run's jobs are; --wait shows progress until all are done")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--wait", action="store_true")
    aws_options(p)
    p.set_defaults(func=cmd_status)
    
    p = sub.add_parser("results", help="the records a run wrote to S3, as a table or JSON")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--json", action="store_true")
    aws_options(p)
    p.set_defaults(func=cmd_results)
