"""What every command shares: printing problems and tables, the spec pipeline, AWS options, output checks, exit
codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import pipeline
from ..plan import Plan
from ..problems import Problem, SpecError, errors
from ..render.text import table
from ..textsafe import visible

# Exit codes, the same for every command.
EXIT_OK = 0
EXIT_PROBLEM = 1  # the spec, the account or the results have a problem (named on stderr)
EXIT_USAGE = 2  # the command line itself is wrong (argparse uses 2 too), or an output path is unusable
EXIT_UNCHECKED = 3  # nothing blocks, but some checks could not run (preflight)
EXIT_INTERRUPTED = 130


def print_problems(problems: Sequence[Problem], source: str) -> None:
    for p in sorted(problems, key=lambda p: (p.line or 0, p.path)):
        print(p.render(source), file=sys.stderr)


def summary(problems: Sequence[Problem]) -> str:
    n_err = len(errors(problems))
    n_warn = len(problems) - n_err
    return f"{n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}"


def checked_plan(path: str) -> Plan:
    """Load, validate and plan; warnings go to stderr, errors raise SpecError."""
    checked = pipeline.check(path)
    print_problems(checked.problems, path)
    return checked.plan()


def aws_options(p: argparse.ArgumentParser, *, region: bool = True) -> None:
    p.add_argument("--bucket", help="results bucket (default: $RACKFORM_BUCKET, else the storage stack's output)")
    p.add_argument("--endpoint-url", help="AWS endpoint for every client (e.g. a local moto server)")
    if region:
        p.add_argument("--region", help="AWS Region (default: the usual boto3 chain)")


def results_bucket(args: argparse.Namespace, plan: Plan | None = None) -> str:
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


def store_for(args: argparse.Namespace, run_ids: Sequence[str]):
    from workloads.store import ResultStore, check_run_id, s3_client

    try:
        for run_id in run_ids:
            check_run_id(run_id)
    except ValueError as e:
        raise SpecError([Problem("error", "RUN", str(e))]) from None
    return ResultStore(results_bucket(args), s3_client(args.endpoint_url, args.region))


def threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of percent") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: the threshold must be a finite percentage, 0 or more")
    return value


def write(path: str, text: str) -> None:
    from ..outputs import write_text

    print(f"wrote {write_text(path, text)}", file=sys.stderr)


# Every option naming a file or directory rackform writes: dest -> (what it names, how the user spelled it).
OUTPUT_OPTIONS = {"output": ("dir", "-o/--output"), "html": ("file", "--html"), "csv": ("file", "--csv")}


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path of the command, checked before it does any work (raises OutputError)."""
    from ..outputs import check_output

    for dest, (kind, option) in OUTPUT_OPTIONS.items():
        if (value := getattr(args, dest, None)) is not None:
            check_output(value, kind, option, force=getattr(args, "force", False))


def problem_lines(store) -> list[str]:
    """The objects the store's reads left out as unreadable or tampered, one named problem each."""
    from workloads.store import problem_lines as lines_of

    return lines_of(store.problems)


def run_records(store, run_id: str) -> list | None:
    """A run's verified records, or None (after saying why) when the run has none. Objects that are not data
    (unreadable, tampered) are left in store.problems for the command to show beside what it reports."""
    try:
        records = store.records(run_id)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    if not records:
        if problems := problem_lines(store):
            print("\n".join(problems), file=sys.stderr)
        print(f"error: no records for run {run_id} in s3://{store.bucket}/results/{run_id}/", file=sys.stderr)
        return None
    return records


