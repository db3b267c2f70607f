"""The `rackform` command line.

Every user mistake ends in a message that names the field and the fix and a non-zero exit, never a traceback:
exit 0 success, 1 the spec (or account) has a problem, 2 the command line itself is wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, pipeline
from .catalog import SUPPORTED_FAMILIES, Catalog, catalog_from_api, load_catalog
from .plan import Plan, build_plan
from .problems import Problem, SpecError, errors
from .spec import json_schema, load_spec
from .textsafe import visible
from .validate import validate_spec


def _print_problems(problems: Sequence[Problem], source: str) -> None:
    for p in sorted(problems, key=lambda p: (p.line or 0, p.path)):
        print(p.render(source), file=sys.stderr)


def _summary(problems: Sequence[Problem]) -> str:
    n_err = len(errors(problems))
    n_warn = len(problems) - n_err
    return f"{n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}"


def live_catalog(region: str, endpoint_url: str | None = None) -> Catalog:
    """The catalog read from the EC2 API now, for one Region (your credentials and Region chain)."""
    import boto3

    session = boto3.Session()

    def client(r: str):
        return session.client("ec2", region_name=r, endpoint_url=endpoint_url)

    data = catalog_from_api(client, regions=[region], families=SUPPORTED_FAMILIES)
    # Only the spec's Region is read live; the others come from the bundled snapshot, so "Regions that offer it"
    # in a message still covers the world.
    bundled = load_catalog().model_dump()
    for key in ("instance_types", "offerings", "availability_zones", "zone_ids"):
        data[key] = {**bundled[key], **data[key]}
    # DescribeAvailabilityZones answered for the user's own account: its AZ names now resolve to AZ IDs even where
    # names map to zones per account.
    data.update(source=f"EC2 API ({endpoint_url or 'AWS'}) read live for {region}, bundled catalog elsewhere",
                generated_on=dt.date.today().isoformat(), account_zone_ids=(region,))
    return Catalog.model_validate(data)


def checked_plan(path: str) -> Plan:
    """Load, validate and plan; warnings go to stderr, errors raise SpecError."""
    checked = pipeline.check(path)
    _print_problems(checked.problems, path)
    return checked.plan()


# --- commands --------------------------------------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    spec, lines = load_spec(args.spec)
    catalog = load_catalog()
    if args.live:
        try:
            catalog = live_catalog(spec.region, args.endpoint_url)
        except Exception as e:  # credentials, network, permissions: the user's environment, not a bug
            print(f"error: cannot read the EC2 API for --live ({type(e).__name__}: {e}). Check AWS credentials "
                  "and Region, or drop --live to use the bundled catalog", file=sys.stderr)
            return 1
    problems = validate_spec(spec, catalog, lines)
    if args.json:
        print(json.dumps({"spec": args.spec, "valid": not errors(problems), "catalog": catalog.source,
                          "problems": [p.__dict__ for p in problems]}, indent=2))
    else:
        _print_problems(problems, args.spec)
        verdict = "invalid" if errors(problems) else "valid"
        n_groups = sum(len(r.node_groups) for r in spec.racks)
        print(f"{args.spec}: {verdict} ({len(spec.racks)} racks, {n_groups} node groups; {_summary(problems)}; "
              f"catalog: {catalog.source}, {catalog.generated_on})")
    return 1 if errors(problems) else 0


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[visible(c) for c in r] for r in rows]  # a cell never moves the cursor or breaks a line
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    right = [all(str(r[i]).replace(",", "").isdigit() for r in rows) for i in range(len(header))] if rows else []
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if right and right[i] and k else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _nic_summary(g) -> str:
    kinds: dict[str, int] = {}
    for n in g.network_interfaces:
        kinds[n.interface_type] = kinds.get(n.interface_type, 0) + 1
    cards = len({n.network_card_index for n in g.network_interfaces})
    return ", ".join(f"{v} {k}" for k, v in kinds.items()) + f" on {cards} card{'s' * (cards != 1)}"


def _usd(g) -> str:
    if g.capacity.type != "on-demand" or g.on_demand_usd_per_hour is None:
        return "unknown"  # `rackform cost` takes user-given prices for these
    return f"{g.on_demand_usd_per_hour * g.count:,.2f}"


def render_plan(plan: Plan) -> str:
    rows = []
    for g in plan.node_groups():
        rows.append([f"{g.rack}/{g.name}", g.tier, g.architecture, g.instance_type, g.count, _nic_summary(g),
                     len(g.devices), g.ips, f"{g.quota.vcpus:,}", g.quota.code or "?", g.placement_group or "-",
                     g.capacity.type, _usd(g)])
    header = ["rack/node group", "tier", "arch", "instance", "count", "interfaces per node", "devices", "IPs",
              "vCPUs", "quota", "placement group", "capacity", "$/hour"]
    net = plan.network
    quota_totals: dict[str, int] = {}
    for g in plan.node_groups():
        key = f"{g.quota.code or '?'} ({g.quota.name})"
        quota_totals[key] = quota_totals.get(key, 0) + g.quota.vcpus
    lines = [
        f"plan {plan.name}: {plan.region} / {plan.availability_zone}  (catalog {plan.catalog_generated_on})",
        "",
        _table(rows, header),
        "",
        f"network  VPC {net.vpc_cidr}; private subnet /{net.private_subnet.cidr_mask} "
        f"({net.private_subnet.usable_ips:,} usable, {net.ips_needed:,} needed); public subnet "
        f"/{net.public_subnet.cidr_mask} for NAT; endpoints: S3 gateway"
        + "".join(f", {e}" for e in net.interface_endpoints),
    ]
    if (fsx := plan.storage.fsx_lustre) is not None:
        thr = f", {fsx.per_unit_storage_throughput} MB/s/TiB" if fsx.per_unit_storage_throughput else ""
        repo = f", linked to {fsx.data_repository_path}" if fsx.data_repository_path else ""
        lines.append(f"storage  FSx for Lustre {fsx.deployment_type} {fsx.storage_capacity_gib:,} GiB{thr}{repo}, "
                     f"mounted at {fsx.mount_path}; results bucket")
    else:
        lines.append("storage  results bucket (no FSx)")
    lines.append("quotas   " + "; ".join(f"{v:,} vCPUs of {k}" for k, v in quota_totals.items()))
    lines.append("stacks   " + ", ".join([net.stack_name, plan.storage.stack_name]
                                         + [r.stack_name for r in plan.racks]))
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    plan = checked_plan(args.spec)
    print(plan.model_dump_json(indent=2) if args.json else render_plan(plan))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    plan = checked_plan(args.spec)
    from stacks import build_app  # CDK is imported only for synth: validate and plan stay fast

    out = Path(args.output)  # checked by _check_outputs before the spec was read
    assembly = build_app(plan, outdir=str(out)).synth()
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {out / stack.template_file}")
    return 0


# --- benchmark jobs (workloads/ is imported only by these commands) ------------------------------------------

def _aws_options(p: argparse.ArgumentParser, *, region: bool = True) -> None:
    p.add_argument("--bucket", help="results bucket (default: $RACKFORM_BUCKET, else the storage stack's output)")
    p.add_argument("--endpoint-url", help="AWS endpoint for every client (e.g. a local moto server)")
    if region:
        p.add_argument("--region", help="AWS Region (default: the usual boto3 chain)")


def _results_bucket(args: argparse.Namespace, plan: Plan | None = None) -> str:
    if bucket := args.bucket or os.environ.get("RACKFORM_BUCKET"):
        return bucket
    if plan is None:
        raise SpecError([Problem("error", "--bucket", "give --bucket (or set RACKFORM_BUCKET): the results bucket "
                                 "is named in the storage stack's outputs")])
    import boto3

    cfn = boto3.client("cloudformation", region_name=plan.region, endpoint_url=args.endpoint_url)
    stack = cfn.describe_stacks(StackName=plan.storage.stack_name)["Stacks"][0]
    for out in stack.get("Outputs", []):
        if out["OutputKey"] == "ResultsBucketName":
            return out["OutputValue"]
    raise SpecError([Problem("error", "--bucket", f"stack {plan.storage.stack_name} has no ResultsBucketName "
                             "output; give --bucket")])


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
    store = ResultStore(_results_bucket(args, plan), s3_client(args.endpoint_url, plan.region))
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


def _store_for(args: argparse.Namespace, run_ids: Sequence[str]):
    from workloads.store import ResultStore, check_run_id, s3_client

    try:
        for run_id in run_ids:
            check_run_id(run_id)
    except ValueError as e:
        raise SpecError([Problem("error", "RUN", str(e))]) from None
    return ResultStore(_results_bucket(args), s3_client(args.endpoint_url, args.region))


def cmd_status(args: argparse.Namespace) -> int:
    import boto3

    from workloads.submit import run_state, wait

    store = _store_for(args, [args.run_id])
    lookup = boto3.client("batch", region_name=args.region, endpoint_url=args.endpoint_url)
    states = wait(args.run_id, store, lookup) if args.wait else run_state(args.run_id, store, lookup)
    problems = _problem_lines(store)
    if not states:
        if problems:
            print("\n".join(problems), file=sys.stderr)
        print(f"error: run {args.run_id} has no submitted jobs in s3://{store.bucket}/results/", file=sys.stderr)
        return 1
    rows = [[s.submission["benchmark"], f"{s.submission['rack']}/{s.submission['node_group']}",
             s.submission["nodes"], s.batch_status or "?", s.record_status or "-",
             (s.batch_reason or "")[:60]] for s in states]
    print("\n".join([_table(rows, ["benchmark", "rack/node group", "nodes", "batch", "record", "reason"]),
                     *problems]))
    failed = [s for s in states if s.record_status == "failed" or (s.record_status is None and s.done)]
    return 1 if failed or problems else 0


def cmd_results(args: argparse.Namespace) -> int:
    from rackform.analysis.summary import headline_text

    store = _store_for(args, [args.run_id])
    records = _run_records(store, args.run_id)
    if records is None:
        return 1
    if args.json:
        from rackform.analysis.report import json_text
        from workloads.store import problem_dicts

        print(json_text({"run_id": args.run_id, "records": [r.model_dump(mode="json") for r in records],
                         "problems": problem_dicts(store.problems)}))
        return 1 if store.problems else 0
    rows = [[r.benchmark, f"{r.rack}/{r.node_group}", r.tier, r.instance_type, r.node_count, r.status,
             f"{(r.ended_at - r.started_at).total_seconds():.0f}s", headline_text(r)] for r in records]
    print(_table(rows, ["benchmark", "rack/node group", "tier", "instance", "nodes", "status", "time", "result"]))
    if any(r.environment.get("executor") == "local" for r in records):
        print("note: executor=local: measured on this machine, not on the instance types named above")
    if problems := _problem_lines(store):
        print("\n".join(problems))
    return 1 if problems else 0


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of percent") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: the threshold must be a finite percentage, 0 or more")
    return value


def _write(path: str, text: str) -> None:
    from .outputs import write_text

    print(f"wrote {write_text(path, text)}", file=sys.stderr)


# Every option naming a file or directory rackform writes: dest -> (what it names, how the user spelled it).
OUTPUT_OPTIONS = {"output": ("dir", "-o/--output"), "html": ("file", "--html"), "csv": ("file", "--csv")}


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output path of the command, checked before it does any work (raises OutputError)."""
    from .outputs import check_output

    for dest, (kind, option) in OUTPUT_OPTIONS.items():
        if (value := getattr(args, dest, None)) is not None:
            check_output(value, kind, option, force=getattr(args, "force", False))


def _problem_lines(store) -> list[str]:
    """The objects the store's reads left out as unreadable or tampered, one named problem each."""
    from workloads.store import problem_lines

    return problem_lines(store.problems)


def _run_records(store, run_id: str) -> list | None:
    """A run's verified records, or None (after saying why) when the run has none. Objects that are not data
    (unreadable, tampered) are left in store.problems for the command to show beside what it reports."""
    try:
        records = store.records(run_id)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    if not records:
        if problems := _problem_lines(store):
            print("\n".join(problems), file=sys.stderr)
        print(f"error: no records for run {run_id} in s3://{store.bucket}/results/{run_id}/", file=sys.stderr)
        return None
    return records


def cmd_report(args: argparse.Namespace) -> int:
    from rackform.analysis.report import build_report, render_csv, render_html, render_json, summary_table, text_lines

    from .limits import limits_for

    fsx = checked_plan(args.spec).storage.fsx_lustre if args.spec else None
    store = _store_for(args, [args.run_id, *([args.baseline] if args.baseline else [])])
    records = _run_records(store, args.run_id)
    if records is None:
        return 1
    baseline = None
    if args.baseline:
        baseline = _run_records(store, args.baseline)
        if baseline is None:
            return 1
    report = build_report(records, limits_of=limits_for, fsx=fsx, baseline=baseline, baseline_run_id=args.baseline,
                          threshold_pct=args.threshold, problems=store.problems)
    if args.csv:
        _write(args.csv, render_csv(report))
    if args.html:
        _write(args.html, render_html(report))
    if args.json:
        print(render_json(report))
    else:
        before, after = text_lines(report)
        print("\n".join([*before, "", _table(*summary_table(report)), "", *after]))
    return 1 if report.regressions or report.problems else 0


def cmd_advise(args: argparse.Namespace) -> int:
    from rackform.analysis.advise import CLASSES, MEANING, advice_dict, advise, class_verdict, evidence_table
    from rackform.analysis.report import LOCAL_CAVEAT, report_rows

    from .limits import limits_for

    store = _store_for(args, args.run_ids)
    records = []
    for run_id in dict.fromkeys(args.run_ids):
        found = _run_records(store, run_id)
        if found is None:
            return 1
        records += found
    advice = advise(report_rows(records, limits_for))
    if args.json:
        print(json.dumps(advice_dict(advice), indent=2))
        return 0
    local = any(a.local for a in advice)
    lines = [LOCAL_CAVEAT, ""] if local else []
    for cls in CLASSES:
        lines.append(class_verdict(cls, advice))
        for a in (a for a in advice if a.workload_class == cls):
            lines.append(f"  {a.benchmark} ({MEANING[a.benchmark]} per $): {a.verdict}")
            if a.evidence:
                lines += ["    " + line for line in _table(*evidence_table(a)).splitlines()]
        lines.append("")
    if local:
        lines.append(LOCAL_CAVEAT)
    lines += _problem_lines(store)
    print("\n".join(visible(line) for line in lines).rstrip())
    return 0


def cmd_parse(args: argparse.Namespace) -> int:
    from workloads.parsers import parse

    from .files import LOG_MAX_BYTES, FileRefused, read_limited_text

    try:
        if args.file == "-":
            raw = sys.stdin.buffer.read(LOG_MAX_BYTES + 1)
            if len(raw) > LOG_MAX_BYTES:
                raise FileRefused(f"cannot read standard input: it is more than {LOG_MAX_BYTES:,} bytes; log files are "
                                  f"limited to {LOG_MAX_BYTES:,} bytes")
            text = raw.decode("utf-8", errors="replace")
        else:
            text = read_limited_text(args.file, LOG_MAX_BYTES, "log")
    except FileRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    parsed = parse(args.tool, text)
    if not parsed.ok:
        print(f"error: {args.file} is not readable {args.tool} output: {parsed.reason}", file=sys.stderr)
        return 1
    print(parsed.model_dump_json(indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rackform", description="Declare, validate, plan and synthesize "
                                     "rack-style AWS clusters (Graviton, Trainium, GPU).")
    parser.add_argument("--version", action="version", version=f"rackform {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a spec offline (exit 1 on errors)")
    p.add_argument("spec", help="path to the rack spec YAML")
    p.add_argument("--json", action="store_true", help="machine-readable problems")
    p.add_argument("--live", action="store_true", help="read instance types and offerings from the EC2 API now "
                   "(needs credentials) instead of the bundled catalog")
    p.add_argument("--endpoint-url", help="EC2 endpoint for --live (e.g. a local moto server)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="print the plan: NIC layout, devices, IPs, quotas per node group")
    p.add_argument("spec")
    p.add_argument("--json", action="store_true", help="the whole plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the spec's JSON Schema (for editor completion)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("synth", help="synthesize CloudFormation templates (same as `cdk synth -c spec=SPEC`)")
    p.add_argument("spec")
    p.add_argument("-o", "--output", default="cdk.out", help="output directory (default: cdk.out)")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory that is not a previous "
                   "CDK output (files CDK writes, such as manifest.json and tree.json, are replaced)")
    p.set_defaults(func=cmd_synth)

    from workloads.benchmarks import BENCHMARKS

    p = sub.add_parser("submit", help="submit a benchmark job to a rack's AWS Batch queue; prints the run id")
    p.add_argument("spec")
    p.add_argument("--rack", required=True)
    p.add_argument("--node-group", help="default: every node group of the rack the benchmark runs on")
    p.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
    p.add_argument("--nodes", type=int, help="nodes for a multi-node benchmark (default: the benchmark's own)")
    p.add_argument("--run-id", help="group jobs into one run; the same id again submits nothing new")
    _aws_options(p, region=False)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="where a run's jobs are; --wait shows progress until all are done")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--wait", action="store_true")
    _aws_options(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("results", help="the records a run wrote to S3, as a table or JSON")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--json", action="store_true")
    _aws_options(p)
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("report", help="a run against physical limits and prices, optionally against a baseline "
                       "run: table, CSV, JSON, HTML (exit 1 on a regression)")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--baseline", metavar="RUN", help="compare with this run; regressions beyond --threshold exit 1")
    p.add_argument("--threshold", type=_threshold, default=5.0, metavar="PCT",
                   help="%% change in the worse direction that counts as a regression (default 5)")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with plots")
    p.add_argument("--csv", metavar="PATH", help="write the rows as CSV")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--spec", help="the run's spec: its FSx size and throughput are the storage limit")
    _aws_options(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("advise", help="the tier with the best measured performance per dollar for each workload "
                       "class, across one or more runs")
    p.add_argument("run_ids", metavar="RUN", nargs="+")
    p.add_argument("--json", action="store_true")
    _aws_options(p)
    p.set_defaults(func=cmd_advise)

    from workloads.parsers import TOOLS

    from .cost import register as register_cost
    from .preflight import register as register_preflight

    register_cost(sub)
    register_preflight(sub)

    p = sub.add_parser("parse", help="parse a benchmark tool's raw output into metrics (JSON)")
    p.add_argument("--tool", required=True, choices=TOOLS)
    p.add_argument("file", help="the tool's output, or - for standard input")
    p.set_defaults(func=cmd_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .outputs import OutputError

    try:
        _check_outputs(args)
    except OutputError as e:
        print(f"error: {visible(e)}", file=sys.stderr)
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return code
    except SpecError as e:
        source = getattr(args, "spec", "")
        _print_problems(e.problems, source)
        if source:
            print(f"{source}: invalid ({_summary(e.problems)})", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `rackform schema | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        # AWS errors (no credentials, access denied, an endpoint down) are the user's environment, not a bug.
        if type(e).__module__.startswith("botocore") or type(e).__module__.startswith("boto3"):
            print(f"error: AWS: {e}", file=sys.stderr)
            print("hint: check AWS credentials and Region (the usual boto3 chain), or --endpoint-url",
                  file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
