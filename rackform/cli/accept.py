"""`rackform accept`: prove every node of a rack's node groups performs alike, name the ones that do not, and say what
they cost.

Before anything runs it prints the plan (the tests, on how many nodes, the expected wall time and its cost at the
group's price) and refuses above --budget. Then one multi-node acceptance job per group (one single-node job per node
where Batch runs no multi-node job: Spot), submitted exactly once per run id like `rackform submit`'s jobs; it waits
for the records, judges every node (rackform/acceptance) and stores the certificate write-once in the results bucket.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..acceptance.plan import AcceptancePlan, GroupAcceptancePlan, group_plan, over_budget
from ..textsafe import visible
from .common import (
    EXIT_PROBLEM,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Subparsers,
    aws_options,
    aws_target,
    budget_arg,
    checked_plan,
    json_option,
    price_arg,
    problem_lines,
    repeats_arg,
    results_store,
    seconds_arg,
    store_for,
)

if TYPE_CHECKING:
    from workloads.results import AcceptRecord
    from workloads.store import ResultStore

    from ..acceptance.certificate import Certificate
    from ..aws import BotoClient
    from ..plan.models import NodeGroupPlan, Plan


def acceptance_plan(plan: Plan, groups: list[NodeGroupPlan], prices: list[tuple[str, float]],
                    repeats: int) -> AcceptancePlan:
    """The plan of each group, priced like `rackform cost` (the prices snapshot, or --price)."""
    from ..plan.cost import group_line
    from ..reference.prices import Quote, load_prices

    overrides = {k: Quote(v, "--price") for k, v in prices}
    out = []
    for g in groups:
        line = group_line(g, plan.region, load_prices(), overrides, {})
        out.append(group_plan(g, fsx=plan.storage.fsx_lustre is not None, repeats=repeats,
                              usd_per_node_hour=line.usd_per_hour_each, price_source=line.source))
    return AcceptancePlan(spec=plan.name, groups=tuple(out))


def submit_group(plan: Plan, group: NodeGroupPlan, *, multi: bool, run_id: str, repeats: int | None,
                 store: ResultStore, submitter: BotoClient, lookup: BotoClient) -> list[str]:
    """The group's acceptance job (or one job per node where it can run no multi-node job), exactly once per run id
    (jobs.submit.submit_exactly_once: a second `accept` with the same --run-id finds them). Returns their names."""
    from workloads.layout import ACCEPT_JOB, BenchmarkJob, BenchmarkJobName, accept_job

    from ..jobs.submit import Submission, job_request, submit_exactly_once
    from ..plan import naming

    names = []
    for benchmark in [ACCEPT_JOB] if multi else [accept_job(k) for k in range(group.count)]:
        name = str(BenchmarkJobName(run_id=run_id, rack=group.rack, node_group=group.name, benchmark=benchmark))
        jobdef = naming.job_definition(plan.name, group.rack, group.name, "multinode" if multi else "single")
        request = job_request(name=name, queue=group.job_queue, job_definition=jobdef, benchmark=benchmark,
                              run_id=run_id, repeats=repeats, multi_nodes=group.count if multi else None)
        fields = BenchmarkJob(job_name=name, queue=group.job_queue, job_definition=jobdef, rack=group.rack,
                              node_group=group.name, benchmark=benchmark, nodes=group.count if multi else 1,
                              repeats=repeats).model_dump(exclude_none=True)
        submitted = submit_exactly_once(store, submitter, lookup, run_id, fields, request, made=Submission)
        verb = "submitted" if submitted.created else "already submitted"
        print(visible(f"{verb} {name} ({submitted.nodes} node(s)) to {group.job_queue}: job {submitted.job_id}"),
              file=sys.stderr)
        names.append(name)
    return names


def _records(store: ResultStore, run_id: str, plan: AcceptancePlan) -> dict[str, list[AcceptRecord]]:
    """Each group's acceptance records, from one verified read of the run."""
    from workloads.layout import ACCEPT_JOB_NAME

    found = store.read(run_id, "accept")["accept"]
    return {g.label: [r for r in found if (r.rack, r.node_group) == (g.rack, g.node_group)
                      and ACCEPT_JOB_NAME.fullmatch(r.benchmark)] for g in plan.groups}


def finished(group: GroupAcceptancePlan, records: list[AcceptRecord]) -> bool:
    """Node 0's group record ends a multi-node job; single-node jobs end with every node's record."""
    if group.multi_node:
        return any(r.part == "group" for r in records)
    return {r.node_index for r in records if r.part == "node"} >= set(range(group.nodes))


def wait(store: ResultStore, run_id: str, plan: AcceptancePlan, lookup: BotoClient, job_ids: dict[str, list[str]],
         *, interval_s: float, timeout_s: float | None
         ) -> tuple[dict[str, list[AcceptRecord]], dict[str, str], bool]:
    """Each group's records once it is done, why Batch failed a group's job before it was (by group), and whether
    the wait ran out first."""
    from .. import aws

    started = time.monotonic()
    while True:
        found = _records(store, run_id, plan)
        batch = aws.describe_jobs(lookup, [i for ids in job_ids.values() for i in ids])
        dead = {label: "; ".join(f"Batch job {i} FAILED: {batch[i].get('statusReason') or 'no reason given'}"
                                 for i in ids if batch.get(i, {}).get("status") == "FAILED")
                for label, ids in job_ids.items()}
        dead = {label: why for label, why in dead.items() if why}
        pending = [g for g in plan.groups if not finished(g, found[g.label]) and g.label not in dead]
        elapsed = time.monotonic() - started
        if not pending:
            return found, dead, False
        if timeout_s is not None and elapsed >= timeout_s:
            return found, dead, True
        print(f"waiting for {', '.join(g.label for g in pending)} ({elapsed:.0f} s)", file=sys.stderr)
        time.sleep(interval_s if timeout_s is None else max(0.0, min(interval_s, timeout_s - elapsed)))


def _job_ids(store: ResultStore, run_id: str, names: dict[str, list[str]]) -> dict[str, list[str]]:
    markers = {m["job_name"]: m["job_id"] for m in store.submissions(run_id)}
    return {label: [markers[n] for n in ns if n in markers] for label, ns in names.items()}


def show(cert: Certificate, args: argparse.Namespace) -> int:
    from ..render.acceptance import verdict_lines
    from .common import write

    if args.json:
        print(cert.model_dump_json(indent=2))
    else:
        print("\n".join(verdict_lines(cert)))
    if args.html:
        from ..render.acceptance import render_acceptance_html

        write(args.html, render_acceptance_html(cert))
    return 0 if cert.accepted else EXIT_PROBLEM


def store_certificate(store: ResultStore, cert: Certificate) -> None:
    """Write-once beside the run's records: a second judgement of the same run finds the first one's certificate,
    which stands (the figures are write-once too, so only the time of issue can differ)."""
    from workloads.layout import certificate_key
    from workloads.store import AlreadyExists

    key = certificate_key(cert.run_id)
    try:
        store.put_once(key, cert.model_dump_json().encode(), "application/json")
    except AlreadyExists:
        print(f"the certificate of run {cert.run_id} was issued before: s3://{store.bucket}/{key} stands "
              f"(`rackform accept --show {cert.run_id}`)", file=sys.stderr)
        return
    print(f"certificate: s3://{store.bucket}/{key}", file=sys.stderr)


def stored_certificate(store: ResultStore, run_id: str) -> Certificate | None:
    """The run's certificate through the store's one verified reader (one version, its SHA-256, its key), then held
    to the whole certificate model; Refused (named in store.problems) when it cannot be believed."""
    from pydantic import ValidationError

    from workloads.layout import certificate_key
    from workloads.store import BadObject, Refused

    from ..acceptance.certificate import Certificate

    key = certificate_key(run_id)
    document = store.read_one(key)
    if document is None:
        return None
    try:
        return Certificate.model_validate(document)
    except ValidationError as e:
        raise Refused(BadObject(key, "certificate", "unreadable", f"not an acceptance certificate: "
                                f"{e.errors()[0]['msg']}")) from None


def acceptance_section(store: ResultStore, run_id: str) -> dict[str, Any] | None:
    """The run's certificate as the HTML report's section (`rackform report --html`); None when the run has none or
    its certificate cannot be believed (the report is about the records: `accept --show` names the problem)."""
    from workloads.store import Refused

    from ..render.acceptance import html_section

    try:
        cert = stored_certificate(store, run_id)
    except Refused:
        return None
    return None if cert is None else html_section(cert)


def cmd_show(args: argparse.Namespace) -> int:
    from workloads.store import Refused

    from .common import no_such_run

    store = store_for(args, [args.show])
    try:
        cert = stored_certificate(store, args.show)
    except Refused as e:
        print(f"error: {visible(e)}", file=sys.stderr)
        return EXIT_PROBLEM
    if cert is None:
        print(f"error: {no_such_run(store, args.show, 'acceptance certificate')}", file=sys.stderr)
        return EXIT_PROBLEM
    return show(cert, args)


def cmd_accept(args: argparse.Namespace) -> int:
    if args.show:
        return cmd_show(args)
    if not args.spec or not args.rack:
        print("error: give SPEC and --rack (or --show RUN to print a stored certificate)", file=sys.stderr)
        return EXIT_USAGE
    from workloads.layout import check_run_id

    from ..jobs.submit import SubmitError, node_groups
    from ..render.acceptance import plan_text

    plan = checked_plan(args.spec)
    run_id = args.run_id
    try:
        if run_id is not None:
            check_run_id(run_id)
        groups = node_groups(plan, args.rack, args.node_group)
    except ValueError as e:
        print(f"error: --run-id: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SubmitError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_PROBLEM
    from workloads.contract import JobEnvironment

    accepted_plan = acceptance_plan(plan, groups, args.price, args.repeats or JobEnvironment.repeats)
    print(plan_text(accepted_plan), file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.budget is not None and (why := over_budget(accepted_plan, args.budget)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return EXIT_PROBLEM
    return run_acceptance(args, plan, accepted_plan, groups, run_id)


def run_acceptance(args: argparse.Namespace, plan: Plan, accepted_plan: AcceptancePlan,
                   groups: list[NodeGroupPlan], run_id: str | None) -> int:
    from workloads.store import Refused

    from ..jobs.submit import SubmitError, batch_clients_for, new_run_id

    run_id = run_id or new_run_id()
    store = results_store(args, plan)
    submitter, lookup = batch_clients_for(aws_target(args, plan.region))
    try:
        names = {gp.label: submit_group(plan, g, multi=gp.multi_node, run_id=run_id, repeats=args.repeats,
                                        store=store, submitter=submitter, lookup=lookup)
                 for g, gp in zip(groups, accepted_plan.groups, strict=True)}
    except SubmitError as e:
        print(f"error: {visible(e)}", file=sys.stderr)
        return EXIT_PROBLEM
    except Refused:  # a marker or claim of this run that cannot be believed: named, never submitted over
        print("\n".join(problem_lines(store)), file=sys.stderr)
        return EXIT_PROBLEM
    print(f"run {run_id}", file=sys.stderr)
    if args.no_wait:
        print(f"the jobs run on; `rackform accept {args.spec} --rack {args.rack}"
              f"{f' --node-group {args.node_group}' if args.node_group else ''} --run-id {run_id}` judges them",
              file=sys.stderr)
        if args.json:
            print(json.dumps({"run_id": run_id, "jobs": names, "plan": accepted_plan.model_dump(mode="json")},
                             indent=2))
        else:
            print(run_id)
        return 0
    found, failed, timed_out = wait(store, run_id, accepted_plan, lookup, _job_ids(store, run_id, names),
                                    interval_s=args.interval, timeout_s=args.timeout)
    if timed_out:
        print(f"error: --timeout {args.timeout:g}s passed before every group was done; the jobs keep running: the "
              "same command with --run-id judges them later", file=sys.stderr)
        return EXIT_TIMEOUT
    cert = judged(args, plan, accepted_plan, run_id, found, failed)
    if problems := problem_lines(store):
        print("\n".join(problems), file=sys.stderr)
    store_certificate(store, cert)
    return show(cert, args)


def judged(args: argparse.Namespace, plan: Plan, accepted_plan: AcceptancePlan, run_id: str,
           found: dict[str, list[AcceptRecord]], failed: dict[str, str]) -> Certificate:
    from .. import __version__
    from ..acceptance.certificate import certificate
    from ..acceptance.records import judge_group
    from ..reference.baselines import load_baselines

    baselines = load_baselines()
    groups = [judge_group(g, found[g.label], baselines, failed.get(g.label)) for g in accepted_plan.groups]
    return certificate(run_id=run_id, spec_name=plan.name, spec_bytes=Path(args.spec).read_bytes(),
                       plan=accepted_plan, groups=groups, baselines=baselines, version=__version__)


def register(sub: Subparsers) -> None:
    p = sub.add_parser("accept", help="accept a rack's node groups node by node: plan and cost first, one job per "
                       "group, a verdict per node, a certificate",
                       epilog="example:\n  rackform accept my-spec.yaml --rack gpu --budget 200 --html accept.html\n"
                       "  rackform accept --show $RUN")
    p.add_argument("spec", nargs="?", help="path to the rack spec YAML")
    p.add_argument("--rack", help="the rack to accept")
    p.add_argument("--node-group", help="one node group of the rack (default: every one)")
    p.add_argument("--budget", type=budget_arg("USD for the whole acceptance, e.g. --budget 50"), metavar="USD",
                   help="refuse, submitting nothing, when the plan's expected cost is over this or cannot be priced")
    p.add_argument("--price", action="append", type=price_arg, default=[], metavar="KEY=USD_PER_HOUR",
                   help="price per instance-hour for an instance type or RACK/GROUP, as `rackform cost` takes it")
    p.add_argument("--repeats", type=repeats_arg, help="measurements of each test (default: the job's)")
    p.add_argument("--run-id", help="run id; the same one again finds the jobs it submitted and judges them")
    p.add_argument("--no-wait", action="store_true", help="submit, print the run id and return")
    p.add_argument("--timeout", type=seconds_arg, metavar="SECONDS", help="give up waiting after this long and exit 4 "
                   "(the jobs keep running)")
    p.add_argument("--interval", type=seconds_arg, default=15.0, metavar="SECONDS", help="seconds between polls")
    p.add_argument("--show", metavar="RUN", help="print the certificate stored for a run instead")
    p.add_argument("--html", metavar="FILE", help="also write the verdicts and per-node plots as an HTML page")
    json_option(p, "the certificate")
    aws_options(p, region=False)
    p.set_defaults(func=cmd_accept)
