"""The `rackform` command line: one module per command group, each with a `register(subparsers)`.

Every user mistake ends in a message that names the field and the fix and a non-zero exit, never a traceback. Exit
codes (rackform.cli.common): 0 success, 1 the spec, account or results have a problem, 2 the command line or an
output path is wrong, 3 preflight could not run every check, 130 interrupted.

Command modules import their heavy dependencies (botocore, aws_cdk, matplotlib, the job package) inside the
command, so `rackform validate`, `plan` and `schema` load none of them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..problems import SpecError
from ..textsafe import visible
from . import cost, jobs, placement, preflight, reports, spec_commands
from .common import EXIT_USAGE, check_outputs, checked_plan, print_problems, summary, table

__all__ = ["build_parser", "checked_plan", "main", "table"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rackform", description="Declare, validate, plan and synthesize "
                                     "rack-style AWS clusters (Graviton, Trainium, GPU).")
    parser.add_argument("--version", action="version", version=f"rackform {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (spec_commands, jobs, placement, reports, cost, preflight):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..outputs import OutputError

    try:
        check_outputs(args)
    except OutputError as e:
        print(f"error: {visible(e)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return code
    except SpecError as e:
        source = getattr(args, "spec", "")
        print_problems(e.problems, source)
        if source:
            print(f"{source}: invalid ({summary(e.problems)})", file=sys.stderr)
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
