"""A cluster's lifecycle: init (a commented spec to start from), deploy, diff and destroy through the CDK CLI.

deploy, diff and destroy run the CDK CLI pinned in package.json (node_modules/.bin/cdk) on this checkout's app.py with
`-c spec=SPEC`, as docs/deploy.md does by hand; rackform adds what cdk cannot know: the cost, the preflight checks and
the plan before a deploy, and a confirmation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

from ..plan.stack_limits import CDK_CLI, ROOT
from ..reference.catalog import load_catalog
from ..spec.models import load_spec_text
from ..spec.problems import SpecError, errors
from ..validate import validate_spec
from .common import (
    EXIT_PROBLEM,
    EXIT_UNCHECKED,
    EXIT_USAGE,
    Subparsers,
    checked_plan,
    json_option,
    print_problems,
    write,
)

# `rackform init --shape`: each a commented spec under rackform/spec/templates/.
SHAPES = {"three-tiers": "a Graviton, a Trainium and a GPU rack in one AZ",
          "one-tier": "one Graviton rack, the cheapest way to try the loop",
          "capacity-block": "Trainium2 on an EC2 Capacity Block beside a Graviton head node"}
EXIT_CHANGES = 2  # `rackform diff`: the deployed stacks differ from the spec (terraform plan -detailed-exitcode)
# cdk diff ends with this line (aws-cdk's cdk-toolkit.js); with --fail it exits 1 on a difference and on an error.
_DIFFERENCES = re.compile(r"Number of stacks with differences: (\d+)")


# --- init --------------------------------------------------------------------------------------------------------

def template(shape: str, name: str) -> str:
    text = resources.files("rackform.spec").joinpath("templates", f"{shape}.yaml").read_text()
    return re.sub(r"^name: NAME\b", lambda _: f"name: {name}", text, count=1, flags=re.M)


def cmd_init(args: argparse.Namespace) -> int:
    path = args.new_spec  # checked as an output (a regular file's place, no link on the way) before this runs
    if os.path.lexists(path):
        return _exists(path)
    text = template(args.shape, args.name)
    spec, lines = load_spec_text(text, path)  # a --name the spec cannot take raises SpecError, nothing written
    problems = validate_spec(spec, load_catalog(), lines)
    if errors(problems):
        raise SpecError(problems)  # main prints them, as for every command
    print_problems(problems, path)
    write(path, text, new=True)  # a file created since the check is not written over either
    if args.json:
        print(json.dumps({"spec": path, "shape": args.shape, "name": args.name, "region": spec.region}, indent=2))
        return 0
    print(f"{path}: {SHAPES[args.shape]} (cluster {args.name}, {spec.region}); next steps:\n"
          f"  edit it (every field: `rackform schema`, docs/reference.md)\n"
          f"  rackform validate {path}\n"
          f"  rackform cost {path}\n"
          f"  rackform plan {path}\n"
          f"  rackform deploy {path}      # cost, preflight and the plan, then asks before `cdk deploy`")
    return 0


def _exists(path: str) -> int:
    print(f"error: {path} exists; rackform init never overwrites a file: give another path or remove it",
          file=sys.stderr)
    return EXIT_USAGE


# --- the CDK CLI ---------------------------------------------------------------------------------------------------

def cdk_argv(action: str, spec: str, *, profile: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """The CDK CLI's command line for ACTION on every stack of SPEC (an absolute path: cdk runs in the checkout)."""
    argv = [str(CDK_CLI), action, *(("--all",) if action != "synth" else ()), "-c",
            f"spec={Path(spec).resolve()}", *extra]
    return [*argv, "--profile", profile] if profile else argv


def run_cdk(argv: list[str], *, echo: bool = True) -> tuple[int, str]:
    """Run the CDK CLI in the checkout (its cdk.json runs `python3 app.py` with this interpreter); its output is
    shown as it comes (stderr, where cdk writes it) and returned."""
    if not CDK_CLI.exists():
        print(f"error: the CDK CLI is not installed at {CDK_CLI}: run `make setup` (npm ci installs the version "
              "package.json pins)", file=sys.stderr)
        return EXIT_PROBLEM, ""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(CDK_CLI.parent),
                                                  os.environ.get("PATH", "")])}
    print(f"running: cdk {' '.join(argv[1:])}", file=sys.stderr)
    with subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as proc:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if echo:
                sys.stderr.write(line)
    return proc.returncode, "".join(seen)


def _refuse_without_terminal(args: argparse.Namespace, what: str) -> bool:
    if args.yes or sys.stdin.isatty():
        return False
    print(f"error: rackform {what} asks for a confirmation and standard input is not a terminal: pass --yes to "
          f"{what} without asking (in CI, after `rackform diff`)", file=sys.stderr)
    return True


def _confirmed(question: str, answer: str) -> bool:
    print(question, end=" ", file=sys.stderr, flush=True)  # stderr: stdout is for --json
    return sys.stdin.readline().strip().lower() == answer.lower()


def _ran(args: argparse.Namespace, argv: list[str], code: int, **more: object) -> int:
    """The exit code of a command that ran cdk; with --json, the outcome on stdout (cdk's own output is on stderr)."""
    if args.json:
        print(json.dumps({"spec": args.spec, "cdk": argv, **more, "exit": code}, indent=2))
    return code


def _command(*argv: str) -> int:
    """Another rackform command, as its own command line parses it (every option at its default)."""
    from . import build_parser

    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


def cmd_deploy(args: argparse.Namespace) -> int:
    if _refuse_without_terminal(args, "deploy"):
        return EXIT_USAGE
    plan = checked_plan(args.spec)
    profile = ("--profile", args.profile) if args.profile else ()
    # The reports are for the reader: on stderr under --json, where stdout holds only the outcome.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        print("== cost", flush=True)
        _command("cost", args.spec, *profile)
        print("\n== preflight", flush=True)
        checked = _command("preflight", args.spec, *profile)
        if checked == EXIT_PROBLEM:
            print(f"error: preflight found blockers (above): {plan.name} was not deployed", file=sys.stderr)
            return EXIT_PROBLEM
        print(f"\n== plan{f' (against {args.against})' if args.against else ''}", flush=True)
        if _command("plan", args.spec, *(("--against", args.against) if args.against else ())) != 0:
            return EXIT_PROBLEM  # CloudFormation would refuse the update: plan said why
        sys.stdout.flush()
    if checked == EXIT_UNCHECKED:
        print("warning: some preflight checks could not run (above): the deploy may stop on them", file=sys.stderr)
    if not args.yes and not _confirmed(f"deploy cluster {plan.name} to {plan.region} with cdk? [y/N]", "y"):
        print("not deployed", file=sys.stderr)
        return EXIT_PROBLEM
    # Confirmed here: cdk's own prompt for IAM and security-group changes would ask again, or fail without a terminal.
    argv = cdk_argv("deploy", args.spec, profile=args.profile,
                    extra=("--require-approval", "never") if args.yes else ())
    code, _ = run_cdk(argv)
    return _ran(args, argv, 0 if code == 0 else EXIT_PROBLEM)


def cmd_diff(args: argparse.Namespace) -> int:
    checked_plan(args.spec)
    argv = cdk_argv("diff", args.spec, profile=args.profile, extra=("--fail",))
    code, output = run_cdk(argv)
    counted = [int(n) for n in _DIFFERENCES.findall(output)]
    differing = counted[-1] if counted else None
    return _ran(args, argv, diff_exit(code, differing), stacks_with_differences=differing)


def diff_exit(code: int, differing: int | None) -> int:
    """terraform's detailed exit codes from cdk diff --fail's: 0 no change, 2 changes, 1 an error. cdk exits 1 for
    a difference and for an error alike; only a diff that ran prints its count of stacks that differ."""
    if code == 0:
        return 0
    return EXIT_CHANGES if code == 1 and differing else EXIT_PROBLEM


def cmd_destroy(args: argparse.Namespace) -> int:
    if _refuse_without_terminal(args, "destroy"):
        return EXIT_USAGE
    plan = checked_plan(args.spec)
    if not args.yes and not _confirmed(f"destroy every stack of {plan.name} in {plan.region} (its racks, network "
                                       f"and storage)? type the cluster name ({plan.name}) to confirm:", plan.name):
        print("not destroyed", file=sys.stderr)
        return EXIT_PROBLEM
    argv = cdk_argv("destroy", args.spec, profile=args.profile, extra=("--force",))
    code, _ = run_cdk(argv)
    return _ran(args, argv, 0 if code == 0 else EXIT_PROBLEM)


def _profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", help="named AWS profile for cdk (default: $AWS_PROFILE, else the default credential "
                   "chain); the Region is the spec's")


def register(sub: Subparsers) -> None:
    p = sub.add_parser("init", help="write a commented spec to start from (validated before it is written; never "
                       "over an existing file)",
                       epilog="example:\n  rackform init my-spec.yaml --shape one-tier --name lab\n\nshapes:\n" +
                       "\n".join(f"  {k:<15} {v}" for k, v in SHAPES.items()))
    p.add_argument("new_spec", nargs="?", default="rackform.yaml", metavar="PATH", help="where to write the spec")
    p.add_argument("--shape", choices=list(SHAPES), default="three-tiers", help="what the cluster holds")
    p.add_argument("--name", default="lab", help="the cluster's name (stacks are named after it)")
    json_option(p, "the path, shape, name and Region written")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("deploy", help="print the cost, preflight and the plan, ask, then `cdk deploy --all` the "
                       "spec's stacks (exit 1 on blockers or a refused update)",
                       epilog="example:\n  rackform deploy my-spec.yaml\n  rackform deploy my-spec.yaml --against "
                       "old-spec.yaml --yes   # in CI")
    p.add_argument("spec", help="path to the rack spec YAML")
    p.add_argument("--against", metavar="OLD_SPEC", help="the spec deployed now: show what changes (`rackform plan "
                   "--against`) instead of the whole plan, and stop where CloudFormation would refuse the update")
    p.add_argument("--yes", action="store_true", help="deploy without asking (needed when standard input is not a "
                   "terminal); cdk's own approval of IAM changes is skipped too")
    _profile(p)
    json_option(p, "the cdk command and its exit code (the reports go to stderr)")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("diff", help="`cdk diff --all` of the spec against the deployed stacks (exit 0 no change, "
                       "2 changes, 1 an error)",
                       epilog="example:\n  rackform diff my-spec.yaml; [ $? -eq 2 ] && echo 'changes to deploy'")
    p.add_argument("spec", help="path to the rack spec YAML")
    _profile(p)
    json_option(p, "the cdk command, the number of stacks that differ and the exit code")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("destroy", help="ask, then `cdk destroy --all` the spec's stacks",
                       epilog="example:\n  rackform destroy my-spec.yaml")
    p.add_argument("spec", help="path to the rack spec YAML")
    p.add_argument("--yes", action="store_true", help="destroy without asking (needed when standard input is not a "
                   "terminal)")
    _profile(p)
    json_option(p, "the cdk command and its exit code")
    p.set_defaults(func=cmd_destroy)
