"""`rackform use` and `rackform context`: the results bucket and Region a user works with, remembered
(rackform.cli.remembered). A command that reads results (status, logs, results, report, health, runs...) takes its
bucket from --bucket, else RACKFORM_BUCKET, else the context, and then, unless --region is given, the context's
Region too; it says on stderr when it did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from ..textsafe import visible
from .common import Subparsers, aws_options, checked_plan, json_option, stack_bucket
from .remembered import RememberedContext, context_path, load_context, save_context


def cmd_use(args: argparse.Namespace) -> int:
    if (args.spec is None) == (args.bucket is None):
        print("error: give a SPEC (its storage stack's results bucket and its Region) or --bucket BUCKET, not both "
              "and not neither", file=sys.stderr)
        return 2
    if args.spec is not None:
        plan = checked_plan(args.spec)
        bucket = stack_bucket(args, plan)
        region, spec = plan.region, str(Path(args.spec).resolve())
    else:
        bucket, region, spec = args.bucket, args.region, None
    try:
        context = RememberedContext(bucket=bucket, region=region, spec=spec)
    except ValidationError as e:
        first = e.errors()[0]
        option, what = ("--region", "Region") if first["loc"] == ("region",) else ("--bucket", "bucket name")
        print(visible(f"error: {option} {first['input']!r} is not a {what}: {first['msg']}"), file=sys.stderr)
        return 2
    path = save_context(context)
    if args.json:
        print(json.dumps({"context": str(path), **context.model_dump(exclude_none=True)}, indent=2))
    else:
        print(visible(f"using bucket {context.bucket}{f' in {context.region}' if context.region else ''} "
                      f"(remembered in {path}); status, logs, results, report and health read it and default to "
                      "its latest run"))
    return 0


def cmd_context(args: argparse.Namespace) -> int:
    context = load_context()
    if args.json:
        print(json.dumps({"context": str(context_path()),
                          **(context.model_dump(exclude_none=True) if context else {})}, indent=2))
        return 0
    if context is None:
        print(f"no context in {context_path()}: `rackform use SPEC` or `rackform use --bucket BUCKET` remembers one")
        return 0
    lines = [f"bucket  {context.bucket}", f"region  {context.region or '(your AWS configuration)'}"]
    if context.spec:
        lines.append(f"spec    {context.spec}")
    overridden = "RACKFORM_BUCKET is set and wins over it" if os.environ.get("RACKFORM_BUCKET") else \
        "--bucket and RACKFORM_BUCKET win over it"
    print(visible("\n".join([*lines, f"({context_path()}; {overridden})"])))
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser("use", help="remember the results bucket and Region that status, logs, results, report and "
                       "health read (from a deployed spec's storage stack, or --bucket)",
                       epilog="example:\n  rackform use my-spec.yaml\n  rackform use --bucket my-results --region "
                       "us-east-2")
    p.add_argument("spec", nargs="?", help="a deployed spec: its storage stack's ResultsBucketName and its Region")
    json_option(p, "the context written")
    aws_options(p)
    p.set_defaults(func=cmd_use)

    p = sub.add_parser("context", help="show the bucket and Region `rackform use` remembered",
                       epilog="example:\n  rackform context")
    json_option(p, "the context")
    p.set_defaults(func=cmd_context)
