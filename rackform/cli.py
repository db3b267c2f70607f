"""The `rackform` command line.

Every user mistake ends in a message that names the field and the fix and a non-zero exit, never a traceback:
exit 0 success, 1 the spec (or account) has a problem, 2 the command line itself is wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .catalog import SUPPORTED_FAMILIES, Catalog, catalog_from_api, load_catalog
from .plan import Plan, build_plan
from .problems import Problem, SpecError, errors
from .spec import Spec, json_schema, load_spec
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
    data.update(source=f"EC2 API ({endpoint_url or 'AWS'}) read live", generated_on=dt.date.today().isoformat())
    return Catalog.model_validate(data)


def load_and_validate(path: str, catalog: Catalog | None = None) -> tuple[Spec, list[Problem], Catalog]:
    spec, lines = load_spec(path)
    catalog = catalog or load_catalog()
    return spec, validate_spec(spec, catalog, lines), catalog


def checked_plan(path: str) -> Plan:
    """Load, validate and plan; warnings go to stderr, errors raise SpecError."""
    spec, problems, catalog = load_and_validate(path)
    if errors(problems):
        raise SpecError(problems)
    _print_problems(problems, path)
    return build_plan(spec, catalog)


# --- commands --------------------------------------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    catalog = None
    if args.live:
        spec, _ = load_spec(args.spec)
        try:
            catalog = live_catalog(spec.region, args.endpoint_url)
        except Exception as e:  # credentials, network, permissions: the user's environment, not a bug
            print(f"error: cannot read the EC2 API for --live ({type(e).__name__}: {e}). Check AWS credentials "
                  "and Region, or drop --live to use the bundled catalog", file=sys.stderr)
            return 1
    spec, problems, catalog = load_and_validate(args.spec, catalog)
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
    cells = [header] + [[str(c) for c in r] for r in rows]
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


def render_plan(plan: Plan) -> str:
    rows = []
    for g in plan.node_groups():
        rows.append([f"{g.rack}/{g.name}", g.tier, g.architecture, g.instance_type, g.count, _nic_summary(g),
                     len(g.devices), g.ips, f"{g.quota.vcpus:,}", g.quota.code or "?", g.placement_group or "-",
                     g.capacity.type])
    header = ["rack/node group", "tier", "arch", "instance", "count", "interfaces per node", "devices", "IPs",
              "vCPUs", "quota", "placement group", "capacity"]
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

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        print(f"error: --output {out} exists and is not a directory", file=sys.stderr)
        return 2
    assembly = build_app(plan, outdir=str(out)).synth()
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {out / stack.template_file}")
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
    p.set_defaults(func=cmd_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as e:
        source = getattr(args, "spec", "")
        _print_problems(e.problems, source)
        print(f"{source}: invalid ({_summary(e.problems)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
