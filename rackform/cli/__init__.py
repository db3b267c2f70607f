"""The `rackform` command line: one module per command group, each with a `register(subparsers)`.

Every user mistake ends in a message that names the field and the fix and a non-zero exit, never a traceback. Exit
codes (rackform.cli.common): 0 success, 1 the spec, account or results have a problem, 2 the command line or an
output path is wrong, 3 preflight could not run every check, 4 `status --wait --timeout` gave up, 130 interrupted.

Command modules import their heavy dependencies (botocore, aws_cdk, matplotlib, the job package) inside the
command, so `rackform validate`, `plan` and `schema` load none of them.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import gc
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn

from .. import __version__
from ..render.text import folded_stderr, table
from ..spec.problems import SpecError
from ..textsafe import visible
from . import (
    accept,
    context,
    cost,
    health,
    history,
    jobs,
    lifecycle,
    placement,
    preflight,
    repairs,
    reports,
    spec_commands,
)
from .common import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_PROBLEM,
    EXIT_USAGE,
    Subparsers,
    check_outputs,
    checked_plan,
    print_problems,
    summary,
)

__all__ = ["build_parser", "checked_plan", "main", "table"]

EPILOG = """the everyday loop:
  rackform init my-spec.yaml --shape one-tier
  rackform validate my-spec.yaml && rackform plan my-spec.yaml
  rackform deploy my-spec.yaml
  rackform use my-spec.yaml      # status, logs, results, report, health: this bucket, its newest run
  rackform submit my-spec.yaml --rack gpu --benchmark allreduce   # prints the run id
  rackform status --wait && rackform report

environment: RACKFORM_BUCKET (the results bucket), AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL
`rackform COMMAND --help` for each command; `eval "$(rackform completion bash)"` for tab completion."""

# What the commands registered by other modules show in their help when they give no example of their own.
EXAMPLES = {
    "report": "rackform report $RUN --spec my-spec.yaml --baseline $OLD_RUN --html report.html",
    "advise": "rackform advise $RUN $OTHER_RUN",
    "parse": "rackform parse --tool nccl-tests all_reduce.log",
    "cost": "rackform cost my-spec.yaml --budget 200 --price trn2.48xlarge=30",
    "preflight": "rackform preflight my-spec.yaml --profile prod",
    "place": "rackform place training.yaml --spec my-spec.yaml --run $RUN --explain",
    "run": "rackform run training.yaml --spec my-spec.yaml --run $RUN",
}
# Arguments other modules may leave without a help text: the same meaning everywhere.
COMMON_HELP = {"spec": "path to the rack spec YAML", "run_id": "run id, as `rackform submit` printed it",
               "run_ids": "run ids, as `rackform submit` printed them", "file": "input file, or - for standard input",
               "json": "print the result as JSON on stdout instead of text", "help": "show this help and exit",
               "tool": "the benchmark tool that printed the input"}


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for mistyped commands, choices and options."""

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m[2])
            if close := difflib.get_close_matches(m[1], choices, n=1, cutoff=0.6):
                message += f"; did you mean {close[0]!r}?"
        super().error(visible(message))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs keep their line breaks; every option with a default shows it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" not in text and action.default not in (None, False, argparse.SUPPRESS) \
                and action.option_strings and action.nargs != 0:
            text += " (default: %(default)s)"
        return text


# Exit codes only some commands use; every command may exit 0, 1, 2 and 130.
SPECIAL_EXITS = {"preflight": (3,), "status": (4,), "accept": (4,)}


def _exit_codes(name: str) -> str:
    codes = sorted({0, 1, 2, 130, *SPECIAL_EXITS.get(name, ())})
    return "exit codes:\n" + "\n".join(f"  {code:<3} {EXIT_CODES[code]}" for code in codes)


def _teach(sub: Subparsers) -> None:
    """Every command: a description, an example, the exit codes, defaults shown, no option without help."""
    for name, p in sub.choices.items():
        p.formatter_class = HelpFormatter
        help_text = next((a.help for a in sub._choices_actions if a.dest == name), None)
        p.description = p.description or (help_text[0].upper() + help_text[1:] + "." if help_text else None)
        example = p.epilog or (f"example:\n  {EXAMPLES[name]}" if name in EXAMPLES else "")
        p.epilog = "\n\n".join(x for x in (example, _exit_codes(name)) if x)
        for action in p._actions:
            if not action.help and action.dest in COMMON_HELP:
                action.help = COMMON_HELP[action.dest]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rackform", formatter_class=HelpFormatter, epilog=EPILOG,
                    description="Declare, validate, plan, deploy and benchmark rack-style AWS clusters (Graviton, "
                    "Trainium, GPU).")
    parser.add_argument("--version", action="version", version=f"rackform {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (lifecycle, spec_commands, context, jobs, placement, reports, history, health, repairs, cost,
                  preflight, accept):
        group.register(sub)
    p = sub.add_parser("completion", help="print a shell completion script",
                       epilog='example:\n  eval "$(rackform completion bash)"   # add it to ~/.bashrc to keep it')
    p.add_argument("shell", choices=["bash", "zsh"], help="your shell (zsh loads the bash script through "
                   "bashcompinit)")

    def completion(args: argparse.Namespace) -> int:
        print(completion_script(parser, args.shell))
        return 0

    p.set_defaults(func=completion)
    _teach(sub)
    return parser


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """A bash completion function for the commands and each command's options, files for everything else."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cases = "\n".join(
        f"    {name}) opts=\"{' '.join(o for a in p._actions for o in a.option_strings)}\" ;;"
        for name, p in sub.choices.items())
    script = f"""_rackform() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} cmd=${{COMP_WORDS[1]}} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "{' '.join(sub.choices)} --help --version" -- "$cur")); return
  fi
  case "$cmd" in
{cases}
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}}
complete -o filenames -F _rackform rackform"""
    return ("autoload -U +X bashcompinit && bashcompinit\n" if shell == "zsh" else "") + script


def _unknown_options(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> NoReturn:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices.get(args.command) if args.command else None
    target: argparse.ArgumentParser = command or parser
    known = [o for a in target._actions for o in a.option_strings]
    hints = []
    for extra in extras:
        close = difflib.get_close_matches(extra.split("=")[0], known, n=1, cutoff=0.6) if extra.startswith("-") \
            else []
        hints.append(f"{extra} (did you mean {close[0]}?)" if close else extra)
    target.error(f"unrecognized arguments: {' '.join(hints)}")


def _aws_failure(e: BaseException, args: argparse.Namespace) -> int:
    from .. import aws
    from .common import aws_target, bucket_arg

    explained = aws.explained(e, aws_target(args), bucket=bucket_arg(args))
    print(f"error: {visible(explained.message)}", file=sys.stderr)
    if explained.hint:
        print(f"hint: {visible(explained.hint)}", file=sys.stderr)
    return EXIT_PROBLEM


# The commands that read a run's objects by the thousand: CPython's cycle collector is off while they run. Records,
# their metrics and the rows made of them hold no reference cycles (refcounting frees them), but each collection
# walks every object alive, botocore's service models included: 1 s of 7 of `report` over 10,000 records. Not
# `status --wait`, which may poll for hours.
READING_COMMANDS = ("report", "results", "health", "status", "runs", "advise", "history")


@contextlib.contextmanager
def _collector_paused(args: argparse.Namespace) -> Iterator[None]:
    if args.command not in READING_COMMANDS or getattr(args, "wait", False) or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    with folded_stderr():  # on a terminal, the messages and errors fold to its width; piped, one line each
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        _unknown_options(parser, args, extras)
    if args.command is None:  # `rackform` alone
        parser.print_help()
        return 0
    from ..aws import is_aws_error
    from .outputs import OutputError

    try:
        check_outputs(args)
    except OutputError as e:
        print(f"error: {visible(e)}", file=sys.stderr)
        return EXIT_USAGE
    verbose = getattr(args, "verbose", False)  # `--verbose`, an AWS option: what the command cost in requests
    try:
        if verbose:
            from ..aws import REQUESTS

            REQUESTS.reset()
        with _collector_paused(args):
            code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        if verbose:
            print(REQUESTS.line(), file=sys.stderr)
        return code
    except SpecError as e:
        source = getattr(args, "spec", "") or ""
        print_problems(e.problems, source)
        if source:
            print(f"{source}: invalid ({summary(e.problems)})", file=sys.stderr)
        return EXIT_PROBLEM
    except OutputError as e:  # an output that failed after its check (a full disk): one line, like before
        print(f"error: {visible(e)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `rackform schema | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        # AWS errors (no credentials, no bucket, an endpoint down) are the user's environment, not a bug.
        if is_aws_error(e):
            return _aws_failure(e, args)
        raise


if __name__ == "__main__":
    sys.exit(main())
