"""What every command shares: printing problems and tables, the spec pipeline, AWS options, output checks, exit
codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar, overload

from .. import pipeline
from ..plan.models import Plan
from ..spec.problems import Problem, SpecError, errors
from ..textsafe import visible

if TYPE_CHECKING:
    from workloads.results import ResultRecord
    from workloads.store import ResultStore

    from ..aws import Target
    from . import Parser
    from .outputs import Kind
    from .remembered import RememberedContext

# What each command group's `register` adds its commands to.
Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"
R = TypeVar("R")

# Exit codes, the same for every command.
EXIT_OK = 0
EXIT_PROBLEM = 1  # the spec, the account or the results have a problem (named on stderr)
EXIT_USAGE = 2  # the command line itself is wrong (argparse uses 2 too), or an output path is unusable
EXIT_UNCHECKED = 3  # nothing blocks, but some checks could not run (preflight)
EXIT_TIMEOUT = 4  # `status --wait --timeout`: the wait ended before the jobs did (they keep running)
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


EXIT_CODES = {EXIT_OK: "success", EXIT_PROBLEM: "the spec, the account or the results have a problem (on stderr)",
              EXIT_USAGE: "the command line or an output path is wrong", EXIT_UNCHECKED: "some checks could not run",
              EXIT_TIMEOUT: "a --timeout passed first", EXIT_INTERRUPTED: "interrupted (Ctrl-C)"}


def json_option(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """`--json`, the one machine-output switch every command has: JSON on stdout, messages still on stderr."""
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout instead of text")


def json_always(p: argparse.ArgumentParser) -> None:
    """`--json` for a command whose output is JSON anyway: every command takes the switch."""
    p.add_argument("--json", action="store_true", help="accepted for uniformity: the output is always JSON")


def aws_options(p: argparse.ArgumentParser, *, region: bool = True, bucket: bool = True) -> None:
    """--bucket, --region, --profile, --endpoint-url: every command that calls AWS takes the same four.

    `region=False` for commands given a spec: its Region is where the cluster is."""
    g = p.add_argument_group("AWS")
    if bucket:
        g.add_argument("--bucket", help="results bucket (default: $RACKFORM_BUCKET, else the storage stack's "
                       "ResultsBucketName output)")
    if region:
        g.add_argument("--region", help="AWS Region (default: $AWS_REGION, else your AWS profile's)")
    g.add_argument("--profile", help="named AWS profile (default: $AWS_PROFILE, else the default credential chain)")
    g.add_argument("--endpoint-url", help="endpoint for every AWS client, e.g. a local moto server (default: "
                   "$AWS_ENDPOINT_URL, else AWS)")
    g.add_argument("--verbose", action="store_true", help="at the end, say how many AWS requests the command sent, "
                   "by operation (on stderr)")


def aws_target(args: argparse.Namespace, region: str | None = None) -> Target:
    """The AWS layer's target for this command line; `region` (a spec's) applies unless --region was given."""
    from .. import aws

    # The Region `rackform use` remembered goes with the bucket it remembered, for a command that takes --region.
    remembered = _remembered(args) if "region" in vars(args) and not args.region else None
    return aws.Target(getattr(args, "region", None) or (remembered.region if remembered else None),
                      getattr(args, "profile", None), getattr(args, "endpoint_url", None)).with_region(region)


def _remembered(args: argparse.Namespace) -> RememberedContext | None:
    """The context `rackform use` wrote, for a command that reads the results bucket and was given neither
    --bucket nor RACKFORM_BUCKET."""
    if "bucket" not in vars(args) or args.bucket or os.environ.get("RACKFORM_BUCKET"):
        return None
    from .remembered import load_context

    return load_context()


def bucket_arg(args: argparse.Namespace) -> str | None:
    remembered = _remembered(args)
    return getattr(args, "bucket", None) or os.environ.get("RACKFORM_BUCKET") or \
        (remembered.bucket if remembered else None)


def results_bucket(args: argparse.Namespace, plan: Plan | None = None) -> str:
    if remembered := _remembered(args):
        from .remembered import context_path

        print(visible(f"bucket {remembered.bucket}{f' ({remembered.region})' if remembered.region else ''}: "
                      f"from {context_path()} (`rackform use`); --bucket chooses another"), file=sys.stderr)
        return remembered.bucket
    if bucket := bucket_arg(args):
        return bucket
    if plan is None:
        raise SpecError([Problem("error", "--bucket", "give --bucket (or set RACKFORM_BUCKET): the results bucket "
                                 "is named in the storage stack's outputs; `rackform use` remembers it")])
    return stack_bucket(args, plan)


def stack_bucket(args: argparse.Namespace, plan: Plan) -> str:
    """The results bucket the spec's storage stack names in its outputs."""
    from .. import aws

    target = aws_target(args, plan.region)
    try:
        stack = aws.client(target, "cloudformation").describe_stacks(StackName=plan.storage.stack_name)["Stacks"][0]
    except Exception as e:  # a stack that is not there: "deploy first or pass --bucket", with the Region
        raise aws.explained(e, target) if aws.is_aws_error(e) else e from None
    for out in stack.get("Outputs", []):
        if out["OutputKey"] == "ResultsBucketName":
            return str(out["OutputValue"])
    raise SpecError([Problem("error", "--bucket", f"stack {plan.storage.stack_name} has no ResultsBucketName "
                             "output; give --bucket")])


def check_run_ids(run_ids: Sequence[str]) -> None:
    from workloads.layout import check_run_id

    try:
        for run_id in run_ids:
            check_run_id(run_id)
    except ValueError as e:
        raise SpecError([Problem("error", "RUN", str(e))]) from None


def results_store(args: argparse.Namespace, plan: Plan | None = None) -> ResultStore:
    """The result store in the results bucket, through the AWS layer (the store's own retry settings)."""
    from workloads.store import RETRY_CONFIG, ResultStore

    from .. import aws

    bucket = results_bucket(args, plan)
    return ResultStore(bucket, aws.client(aws_target(args, plan.region if plan else None), "s3",
                                          config=RETRY_CONFIG))


def store_for(args: argparse.Namespace, run_ids: Sequence[str]) -> ResultStore:
    check_run_ids(run_ids)  # a malformed id is refused before any AWS call
    return results_store(args)


def no_such_run(store: ResultStore, run_id: str, what: str = "records") -> str:
    """"no records for run X in s3://...", with the runs that do exist closest to it."""
    import difflib

    from workloads.layout import RESULTS_PREFIX

    known = store.run_ids()  # the run folders, by delimiter: never a listing of every object in the bucket
    close = difflib.get_close_matches(run_id, known, n=3, cutoff=0.5)
    where = f"s3://{store.bucket}/{RESULTS_PREFIX}/{run_id}/"
    if run_id not in known:
        hint = (f"; did you mean {' or '.join(close)}?" if close else
                f"; runs there include {', '.join(known[:3])} (`rackform runs` lists them, newest first)" if known
                else "; the bucket holds no runs yet")
        return visible(f"no {what} for run {run_id} in s3://{store.bucket}/results/: there is no such run{hint}")
    return visible(f"no {what} for run {run_id} in {where}")


def threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of percent") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: the threshold must be a finite percentage, 0 or more")
    return value


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def repeats_arg(text: str) -> int:
    from workloads.contract import check_repeats

    try:
        return check_repeats(positive_arg(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def price_arg(text: str) -> tuple[str, float]:
    from ..reference.prices import parse_price

    try:
        return parse_price(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def budget_arg(give: str) -> Callable[[str], float]:
    """An argparse type for a budget in USD, finite and 0 or more; `give` says what USD and shows an example."""
    def budget(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} is not a budget: give {give}")
        return value
    return budget


def write(path: str, text: str, *, new: bool = False) -> None:
    """Write a checked output file; `new`: never over an existing one."""
    from .outputs import OutputError, write_text

    try:
        print(f"wrote {write_text(path, text, new=True) if new else write_text(path, text)}", file=sys.stderr)
    except OSError as e:  # checked before any work, but a disk can fill up or a directory vanish since
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


# Every option naming a file or directory rackform writes: dest -> (what it names, how the user spelled it).
OUTPUT_OPTIONS: dict[str, tuple[Kind, str]] = {"output": ("dir", "-o/--output"), "html": ("file", "--html"),
                                               "csv": ("file", "--csv"), "new_spec": ("file", "PATH")}


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path of the command, checked before it does any work (raises OutputError)."""
    from .outputs import check_output

    for dest, (kind, option) in OUTPUT_OPTIONS.items():
        if (value := getattr(args, dest, None)) is not None:
            check_output(value, kind, option, force=getattr(args, "force", False))


def problem_lines(store: ResultStore) -> list[str]:
    """The objects the store's reads left out as unreadable or tampered, one named problem each."""
    from ..render.problems import problem_lines as lines_of

    return lines_of(store.problems)


@overload
def run_records(store: ResultStore, run_id: str, read: None = None, what: str = "records"
                ) -> list[ResultRecord] | None: ...


@overload
def run_records(store: ResultStore, run_id: str, read: Callable[[str], list[R]], what: str = "records"
                ) -> list[R] | None: ...


def run_records(store: ResultStore, run_id: str, read: Callable[[str], Sequence[object]] | None = None,
                what: str = "records") -> Sequence[object] | None:
    """A run's verified records (or what `read` returns, e.g. store.health), or None after saying why when the run
    has none. Objects that are not data (unreadable, tampered) are left in store.problems for the command to show
    beside what it reports."""
    try:
        records = (read or store.records)(run_id)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    if not records:
        say_no_records(store, run_id, what)
        return None
    return records


def say_no_records(store: ResultStore, run_id: str, what: str = "records") -> None:
    """A run with nothing to show: the objects left out (if any), then which run and the nearest ones (stderr)."""
    if problems := problem_lines(store):
        print("\n".join(problems), file=sys.stderr)
    print(f"error: {no_such_run(store, run_id, what)}", file=sys.stderr)


