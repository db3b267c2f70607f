"""Commands on a spec, all offline except `validate --live`: validate, plan, schema, synth."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..reference.catalog import SUPPORTED_FAMILIES, Catalog, load_catalog
from ..reference.refresh import catalog_from_api
from ..render.plan import render_plan
from ..spec.models import json_schema, load_spec
from ..spec.problems import Problem, SpecError, errors
from ..validate import validate_spec
from .common import (
    EXIT_PROBLEM,
    Subparsers,
    aws_options,
    aws_target,
    checked_plan,
    json_always,
    json_option,
    print_problems,
    summary,
)

if TYPE_CHECKING:
    from ..aws import Target


# The hosts of AWS's own endpoints: amazonaws.com and the dual-stack api.aws
# (https://docs.aws.amazon.com/general/latest/gr/rande.html), amazonaws.com.cn in China
# (https://docs.amazonaws.cn/ec2/latest/devguide/ec2-endpoints.html).
AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def live_catalog(region: str, target: Target | None = None) -> Catalog:
    """The catalog read from the EC2 API now, for one Region (your credentials, --profile, --endpoint-url)."""
    from .. import aws

    target = (target or aws.Target()).with_region(region)
    ec2 = aws.client(target, "ec2")
    # The endpoint the client resolved, which AWS_ENDPOINT_URL(_EC2) or a profile's endpoint_url can set as well as
    # --endpoint-url: an endpoint that is not AWS's is named in the catalog's source and in any error, never "AWS".
    endpoint = ec2.meta.endpoint_url
    if (urlsplit(endpoint).hostname or "").endswith(AWS_HOSTS):
        endpoint = None
    target = aws.Target(target.region, target.profile, endpoint)
    try:
        data = catalog_from_api(
            lambda r: ec2 if r == region else aws.client(aws.Target(r, target.profile, endpoint), "ec2"),
            regions=[region], families=SUPPORTED_FAMILIES)
    except Exception as e:  # explained here, where the endpoint is known
        raise aws.explained(e, target) from None
    # Only the spec's Region is read live; the others come from the bundled snapshot, so "Regions that offer it"
    # in a message still covers the world.
    bundled = load_catalog().model_dump()
    for key in ("instance_types", "offerings", "availability_zones", "zone_ids"):
        data[key] = {**bundled[key], **data[key]}
    # DescribeAvailabilityZones answered for the user's own account: its AZ names now resolve to AZ IDs even where
    # names map to zones per account.
    data.update(source=f"EC2 API ({target.endpoint_url or 'AWS'}) read live for {region}, bundled catalog elsewhere",
                generated_on=dt.date.today().isoformat(), account_zone_ids=(region,))
    return Catalog.model_validate(data)


def _problem_dicts(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    return [p.__dict__ for p in problems]


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        spec, lines = load_spec(args.spec)
    except SpecError as e:
        if not args.json:
            raise
        # A file that does not load (missing, YAML syntax, unknown key) is an outcome like any other; stderr says
        # why too, as for every failure.
        print_problems(e.problems, args.spec)
        print(json.dumps({"spec": args.spec, "valid": False, "catalog": None,
                          "problems": _problem_dicts(e.problems)}, indent=2))
        return 1
    catalog = load_catalog()
    if args.live:
        from ..aws import explained

        target = aws_target(args, spec.region)
        try:
            catalog = live_catalog(spec.region, target)
        except Exception as e:  # credentials, network, permissions: the user's environment, not a bug
            why = explained(e, target)
            print(f"error: cannot read the EC2 API for --live: {why.message}", file=sys.stderr)
            print(f"hint: {why.hint}; or drop --live to use the bundled catalog", file=sys.stderr)
            return 1
    problems = validate_spec(spec, catalog, lines)
    if args.json:
        print_problems(problems, args.spec)
        print(json.dumps({"spec": args.spec, "valid": not errors(problems), "catalog": catalog.source,
                          "problems": _problem_dicts(problems)}, indent=2))
    else:
        print_problems(problems, args.spec)
        verdict = "invalid" if errors(problems) else "valid"
        n_groups = sum(len(r.node_groups) for r in spec.racks)
        print(f"{args.spec}: {verdict} ({len(spec.racks)} racks, {n_groups} node groups; {summary(problems)}; "
              f"catalog: {catalog.source}, {catalog.generated_on})")
    return 1 if errors(problems) else 0


def cmd_plan(args: argparse.Namespace) -> int:
    plan = checked_plan(args.spec)
    if args.against:
        from ..plan.diff import diff_plans
        from ..render.plandiff import render_diff

        try:
            old = checked_plan(args.against)
        except SpecError:
            args.spec = args.against  # the problems are the old spec's: main names that file
            raise
        diff = diff_plans(old, plan)
        print(json.dumps(diff.to_dict(), indent=2) if args.json else render_diff(diff, args.against, args.spec))
        if not diff.deployable:  # CloudFormation would refuse it: a script gating on plan must see that
            print(f"rackform plan: {args.spec} cannot be deployed over {args.against} as written (see 'refused')",
                  file=sys.stderr)
            return EXIT_PROBLEM
        return 0
    print(plan.model_dump_json(indent=2) if args.json else render_plan(plan))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    if args.certificate:
        from ..acceptance.certificate import json_schema as certificate_schema

        print(json.dumps(certificate_schema(), indent=2))
        return 0
    if args.workload:
        from ..spec.workload import json_schema as workload_schema

        print(json.dumps(workload_schema(), indent=2))
        return 0
    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    plan = checked_plan(args.spec)
    from stacks import build_app  # CDK is imported only for synth: validate and plan stay fast

    out = Path(args.output)  # checked by _check_outputs before the spec was read
    assembly = build_app(plan, outdir=str(out), cdk_validation=args.cdk_validation or None).synth()
    if args.json:
        print(json.dumps({"stacks": [{"stack": s.stack_name, "template": str(out / s.template_file)}
                                     for s in assembly.stacks]}, indent=2))
        return 0
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {out / stack.template_file}")
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("validate", help="check a spec offline in under a second (exit 1 on errors)",
                       epilog="example:\n  rackform validate my-spec.yaml\n  rackform validate --json my-spec.yaml "
                       "| jq '.problems[] | select(.level == \"error\")'")
    p.add_argument("spec", help="path to the rack spec YAML")
    json_option(p, '{"valid": ..., "problems": [...]}, for every outcome (a file that does not load too)')
    p.add_argument("--live", action="store_true", help="read instance types and offerings from the EC2 API now "
                   "(needs credentials) instead of the bundled catalog")
    aws_options(p, region=False, bucket=False)  # for --live; the Region is the spec's
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="print the plan (NIC layout, devices, IPs, quotas, $/hour per node group), or "
                       "with --against what changes and which stacks CloudFormation would replace",
                       epilog="example:\n  rackform plan my-spec.yaml\n  git show HEAD:my-spec.yaml > /tmp/old.yaml "
                       "&& rackform plan my-spec.yaml --against /tmp/old.yaml")
    p.add_argument("spec", help="path to the rack spec YAML")
    p.add_argument("--against", metavar="OLD_SPEC", help="the spec deployed now: list added, removed and changed "
                   "racks and node groups, what each stack's update does and the steps to run, in order (offline; "
                   "exit 1 where CloudFormation would refuse the update)")
    json_option(p, "the whole plan (or the diff)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the spec's JSON Schema (for editor completion)",
                       epilog="example:\n  rackform schema > rackform.schema.json   # point yaml-language-server "
                       "at it\n  rackform schema --workload > workload.schema.json")
    p.add_argument("--workload", action="store_true", help="the JSON Schema of workload files (`rackform place` "
                   "and `rackform run`) instead")
    p.add_argument("--certificate", action="store_true", help="the JSON Schema of the acceptance certificate "
                   "(`rackform accept`) instead")
    json_always(p)
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("synth", help="synthesize CloudFormation templates (same as `cdk synth -c spec=SPEC`)",
                       epilog="example:\n  rackform synth my-spec.yaml -o cdk.out")
    p.add_argument("spec", help="path to the rack spec YAML")
    p.add_argument("-o", "--output", default="cdk.out", help="output directory")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory that is not a previous "
                   "CDK output (files CDK writes, such as manifest.json and tree.json, are replaced)")
    p.add_argument("--cdk-validation", action="store_true", help="also run CDK's built-in CloudFormation template "
                   "validation (off by default: rackform's tests run it over its templates with no finding allowed; "
                   "about 2 s; CDK_VALIDATION=true does the same, also for `cdk synth`)")
    json_option(p, "the stacks and their template paths")
    p.set_defaults(func=cmd_synth)
