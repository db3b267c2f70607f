"""`rackform preflight`: the command line over the pure preflight checks."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import asdict

from .common import EXIT_PROBLEM, EXIT_UNCHECKED, Subparsers, aws_options, checked_plan, json_option


def cmd_preflight(args: argparse.Namespace) -> int:
    # botocore is loaded only when preflight runs: `rackform validate` builds the same parser.
    from ..preflight.checks import all_checks, check_image_build
    from ..preflight.fetch import aws_clients, fetch_state, probe_build_host
    from ..render.preflight import check_counts, render

    plan = checked_plan(args.spec)
    # A broken profile or config file raises an AWS error that the CLI explains in one line.
    client_for = aws_clients(plan.region, args.endpoint_url, args.profile)
    if client_for is None:
        print("error: no AWS credentials found. preflight reads your account: set AWS_PROFILE, run `aws sso "
              "login` or `aws configure`, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", file=sys.stderr)
        return 1
    now = dt.datetime.now(dt.UTC)
    # This machine too: `cdk deploy` builds the images here, the arm64 one late in the deploy.
    checks = all_checks(plan, fetch_state(plan, client_for), now) + check_image_build(plan, probe_build_host())
    blockers = any(c.status == "blocker" for c in checks)
    unchecked = any(c.status == "unknown" for c in checks)
    if args.json:
        print(json.dumps({"spec": args.spec, "name": plan.name, "region": plan.region,
                          "availability_zone": plan.availability_zone, "checked_at": now.isoformat(),
                          "ready": not blockers and not unchecked, "counts": check_counts(checks),
                          "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(render(plan, checks, now))
    # A check that could not run has not passed: CI must not read "no blockers found" as "ready".
    return EXIT_PROBLEM if blockers else EXIT_UNCHECKED if unchecked else 0


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("preflight", help="check the AWS account can hold the cluster: vCPU quotas, "
                              "reservations, offerings, Batch and CloudFormation limits, the data repository bucket; "
                              "and that this machine can build the arm64 image (exit 1 on blockers, 3 when checks "
                              "could not run)")
    p.add_argument("spec", help="path to the rack spec YAML")
    json_option(p, "the checks")
    aws_options(p, region=False, bucket=False)
    p.set_defaults(func=cmd_preflight)
