"""Hostile input: thousands of generated specs through the CLI entry (`rackform validate`, in process).

Every spec either validates (exit 0) or fails with exit 1 and a message on stderr: never a traceback, never an
exception out of `main`. Every valid one builds a plan, and a bounded, varied sample of them synthesizes.

Four generators: one field of examples/demo.yaml broken at a time (wrong types, huge and negative numbers, unicode,
empty strings, missing and extra keys, deep nesting); specs built to be valid from the catalog; YAML text attacks
(duplicate keys, anchors and aliases up to a billion laughs, nested merge keys, unsafe tags, garbage bytes); and
command lines for the offline commands (validate, plan, schema, parse, cost) with hostile paths and options. Runs are
derandomized so CI sees the same examples every time.

`make test` runs a sample of each (EXAMPLES["test"]); `make fuzz` (RACKFORM_FUZZ=full) runs more than 10,000 specs
and YAML documents and thousands of command lines.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rackform.cli import main
from rackform.plan.models import build_plan
from rackform.reference.catalog import load_catalog
from rackform.spec.models import NAME_PATTERN, load_spec
from rackform.spec.problems import errors
from rackform.spec.yamlsafe import MAX_BYTES
from rackform.validate import validate_spec
from tests.conftest import versioned_bucket
from tests.stacks.cdk_validation import validation_findings
from workloads.parsers import TOOLS

ROOT = Path(__file__).resolve().parents[1]
DEMO_PATH = ROOT / "examples" / "demo.yaml"
DEMO_TEXT = DEMO_PATH.read_text()
DEMO = yaml.safe_load(DEMO_TEXT)
CATALOG = load_catalog()
# How many valid generated specs are synthesized (about a second each; jsii starts once per process).
SYNTH_SAMPLE = 12

# Wall-clock bounds here catch hangs and blow-ups (a FIFO read, an alias bomb), never speed: generous on purpose.
HANG_S = 60


# Examples per generator: `make test` runs "test", `make fuzz` runs "full" (RACKFORM_FUZZ=full).
EXAMPLES = {"test": {"broken": 1200, "valid": 400, "yaml": 700, "cli": 300, "aws-cli": 150},
            "full": {"broken": 5000, "valid": 2000, "yaml": 4000, "cli": 3000, "aws-cli": 1000}}
PROFILE = os.environ.get("RACKFORM_FUZZ", "test")
# RACKFORM_FUZZ_SCALE=20 multiplies the examples and draws them at random (a local bug hunt, not for CI).
SCALE = int(os.environ.get("RACKFORM_FUZZ_SCALE", "1"))


def fuzz_settings(generator: str):
    return settings(max_examples=EXAMPLES[PROFILE][generator] * SCALE, deadline=None, derandomize=SCALE == 1,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


def run_validate(path: Path) -> tuple[int, str, str]:
    """`rackform validate PATH` in process: (exit code, stdout, stderr). An exception out of main fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    return code, out.getvalue(), err.getvalue()


class Outcome:
    """Runs one spec file through the CLI, checks the contract, and counts."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.valid_plans: list[Any] = []

    def check(self, path: Path) -> int:
        self.counts["tried"] += 1
        code, out, err = run_validate(path)
        assert "Traceback" not in out + err, err
        assert code in (0, 1), (code, err)
        if code == 1:
            self.counts["invalid"] += 1
            assert err.strip(), "a refused spec must say why on stderr"
            assert "error" in err, err
            return code
        self.counts["valid"] += 1
        assert ": valid (" in out, out
        spec, lines = load_spec(path)
        assert not errors(validate_spec(spec, CATALOG, lines))
        plan = build_plan(spec, CATALOG)  # every valid spec must plan
        assert plan.name == spec.name and len(plan.racks) == len(spec.racks)
        plan.model_dump_json()
        self.valid_plans.append(plan)
        return code


# --- 1. examples/demo.yaml with one field broken ------------------------------------------------------------------

def paths_of(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths_of(v, (*prefix, i))
    return out


PATHS = paths_of(DEMO)


def nested(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


hostile_values = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-10**30, max_value=10**30),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**100, 29, 30, 16384, 16385, 1199, 1200, 2400, 4800, 38400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),  # unicode of every kind
    st.sampled_from(["", " ", "a" * 25, "Demo", "demo-", "-demo", "dém0", "рак", "名前", "🚀", "a\u0000b", "a\nb",
                     "p5.48xlarge", "trn2.48xlarge", "m7g.xlarge ", "P5.48XLARGE", "cr-0123456789abcdef0", "cr-",
                     "s3://", "s3://b", "s3://my-bucket/../x", "/fsx/../etc", "relative", "0.0.0.0/0",
                     "10.0.0.0/8", "10.40.0.0/33", "::/0", "10.40.0.0/28", "us-east-1", "us-east-1z", "spot",
                     "capacity-block", "PERSISTENT_2", "SCRATCH_2", "gpu", "trainium", "true", "null", "~",
                     "1e400", "0x10", "${AWS::Region}", "{{resolve:ssm:/x}}", "%s%n", "'; DROP TABLE"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from([nested(10), nested(70), [], {}, [[]], [{}], [None]]),
)


@st.composite
def broken_demo(draw) -> Any:
    data = copy.deepcopy(DEMO)
    path = draw(st.sampled_from(PATHS))
    op = draw(st.sampled_from(["replace", "replace", "delete", "extra", "duplicate", "empty"]))
    if not path:  # the whole document
        return draw(hostile_values) if op != "extra" else {**data, draw(st.text(max_size=10)): 1}
    *parent_path, last = path
    parent = data
    for p in parent_path:
        parent = parent[p]
    if op == "replace":
        parent[last] = draw(hostile_values)
    elif op == "delete":
        del parent[last]
    elif op == "extra":
        target = parent[last] if isinstance(parent[last], dict) else parent
        if isinstance(target, dict):
            target[draw(st.one_of(st.text(max_size=12), st.sampled_from(["nmae", "count ", "Racks", "efa"])))] = \
                draw(hostile_values)
        else:
            target.append(draw(hostile_values))
    elif op == "duplicate":
        if isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))  # duplicate rack or node group: names collide
        else:
            parent[last] = [parent[last], parent[last]]
    else:
        parent[last] = type(parent[last])() if isinstance(parent[last], (dict, list, str)) else None
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def test_demo_with_one_field_broken_validates_or_says_why(tmp_path, gate_report):
    outcome = Outcome()
    path = tmp_path / "spec.yaml"

    @fuzz_settings("broken")
    @given(broken_demo())
    def run(data: Any) -> None:
        path.write_text(dump(data), encoding="utf-8")
        outcome.check(path)

    run()
    c = outcome.counts
    assert c["invalid"] > c["tried"] // 2 and c["valid"] > 0, c
    gate_report("fuzz", f"demo.yaml with one field broken: {c['tried']} specs tried, {c['valid']} valid (all planned), "
                        f"{c['invalid']} refused with a message, 0 tracebacks")


# --- 2. specs built to be valid ------------------------------------------------------------------------------------

REGIONS = sorted(r for r, offers in CATALOG.offerings.items() if offers)
names = st.from_regex(NAME_PATTERN, fullmatch=True)
FSX = st.one_of(
    st.none(),
    st.fixed_dictionaries({"deployment_type": st.just("SCRATCH_2"),
                           "storage_capacity_gib": st.sampled_from([1200, 2400, 4800])}),
    st.fixed_dictionaries({"deployment_type": st.just("PERSISTENT_1"),
                           "storage_capacity_gib": st.sampled_from([1200, 2400, 7200]),
                           "per_unit_storage_throughput": st.sampled_from([50, 100, 200])}),
    st.fixed_dictionaries({"deployment_type": st.just("PERSISTENT_2"),
                           "storage_capacity_gib": st.sampled_from([1200, 2400, 9600]),
                           "per_unit_storage_throughput": st.sampled_from([125, 250, 500, 1000])},
                          optional={"data_repository_path": st.sampled_from(["s3://my-datasets", "s3://a.b-c/x/y"]),
                                    "mount_path": st.sampled_from(["/fsx", "/mnt/lustre"])}),
)


@st.composite
def valid_specs(draw) -> dict[str, Any]:
    region = draw(st.sampled_from(REGIONS))
    az = draw(st.sampled_from(sorted({a for azs in CATALOG.offerings[region].values() for a in azs})))
    offered = sorted(t for t in CATALOG.instance_types if az in CATALOG.azs_offering(region, t))
    racks = []
    for rack_name in draw(st.lists(names, min_size=1, max_size=3, unique=True)):
        groups = []
        for group_name in draw(st.lists(names, min_size=1, max_size=3, unique=True)):
            it = CATALOG.instance_types[draw(st.sampled_from(offered))]
            group: dict[str, Any] = {"name": group_name, "instance_type": it.name,
                                     "count": draw(st.integers(1, 8))}
            kinds = ["on-demand", "reservation"] + [k for k in ("spot", "capacity-block") if k in it.usage_classes]
            kind = draw(st.sampled_from(kinds))
            if kind != "on-demand":
                group["capacity"] = {"type": kind}
                if kind in ("reservation", "capacity-block"):
                    group["capacity"]["reservation_id"] = "cr-" + draw(st.from_regex(r"[0-9a-f]{17}", fullmatch=True))
            if draw(st.booleans()):
                group["tier"] = it.tier
            if it.efa_supported and draw(st.integers(0, 4)) == 0:
                group["efa"] = False
            if draw(st.booleans()):
                group["root_volume_gib"] = draw(st.integers(30, 16384))
            groups.append(group)
        racks.append({"name": rack_name, "node_groups": groups})
    spec: dict[str, Any] = {"name": draw(names), "region": region, "availability_zone": az, "racks": racks}
    network = draw(st.fixed_dictionaries({}, optional={
        "vpc_cidr": st.sampled_from(["10.40.0.0/16", "172.16.0.0/12", "192.168.0.0/20", "10.0.0.0/22",
                                     "10.9.0.0/24", "10.9.0.0/27", "10.9.0.0/28"]),
        "interface_endpoints": st.booleans()}))
    if network:
        spec["network"] = network
    if (fsx := draw(FSX)) is not None:
        spec["storage"] = {"fsx_lustre": fsx}
    return spec


def test_specs_built_to_be_valid_plan_and_a_sample_synthesizes(tmp_path, gate_report):
    from stacks import build_app

    outcome = Outcome()
    path = tmp_path / "spec.yaml"

    @fuzz_settings("valid")
    @given(valid_specs())
    def run(data: dict[str, Any]) -> None:
        path.write_text(dump(data), encoding="utf-8")
        outcome.check(path)

    run()
    c = outcome.counts
    assert c["valid"] >= c["tried"] // 2, c  # the generator must mostly hit valid specs to be worth it

    # Synthesize a varied sample: different Regions, with and without FSx, each tier mix once.
    sample, seen = [], set()
    for plan in outcome.valid_plans:
        key = (plan.region, plan.storage.fsx_lustre is not None,
               tuple(sorted({g.tier for g in plan.node_groups()})))
        if key not in seen and len(sample) < SYNTH_SAMPLE:
            seen.add(key)
            sample.append(plan)
    started = time.monotonic()
    for i, plan in enumerate(sample):
        assembly = build_app(plan, outdir=str(tmp_path / f"synth{i}"), cdk_validation=True).synth()
        assert {s.stack_name for s in assembly.stacks} == {
            plan.network.stack_name, plan.storage.stack_name, *(r.stack_name for r in plan.racks)}
        # CDK's own validator over every sampled spec's templates: nothing (off at a user's synth)
        assert validation_findings(tmp_path / f"synth{i}") == [], plan.name
    gate_report("fuzz", f"specs built to be valid: {c['tried']} specs tried, {c['valid']} valid (all planned), "
                        f"{c['invalid']} refused with a message, 0 tracebacks; {len(sample)} synthesized "
                        f"({len({p.region for p in sample})} Regions) in {time.monotonic() - started:.0f} s")


# --- 3. YAML text attacks ------------------------------------------------------------------------------------------

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))


def merge_bomb(levels: int) -> str:
    """`<<: [&a {...}, *a]` nested inline, each level merging the one inside twice: 758 bytes once took 10 GB."""
    inner = "{k0: 0}"
    for i in range(1, levels):
        inner = f"{{<<: [&m{i} {inner}, *m{i}], k{i}: {i}}}"
    return f"x: {inner}\n"


MERGE_BOMB = merge_bomb(30)
DEMO_LINES = DEMO_TEXT.splitlines(keepends=True)
SNIPPETS = [
    "name: other\n",  # a duplicate top-level key
    "  - name: graviton\n    node_groups: []\n",
    "x: !!python/object/apply:os.system ['echo pwned']\n",
    "x: !!python/object:builtins.dict {a: 1}\n",
    "x: !!python/name:os.system\n",
    "x: !!binary aGVsbG8=\n",
    "x: !custom 1\n",
    "x: *undefined_alias\n",
    "base: &b {instance_type: p5.48xlarge, count: 2}\n",
    "<<: *b\n",
    "? [complex, key]\n: 1\n",
    "? {a: 1}\n: 1\n",
    "1: integer key\n",
    "null: null key\n",
    "x: [" * 50 + "]" * 50 + "\n",
    "x: 2001-12-14t21:59:43.10-05:00\n",
    "---\nname: second-document\n",
    "\t\tname: tabs\n",
    "\ufeffname: bom\n",
    "name: \"unterminated\n",
    "%YAML 1.1\n---\n",
    "<<: [*b, *b]\n",
    "<<: {count: 3}\n",
    "<<: 1\n",
    "count: 1:20\n",
    "count: yes\n",
    "count: \"3\"\n",
    "count: " + "9" * 5000 + "\n",
    "count: 0x" + "f" * 5000 + "\n",
    "x: 2024-13-45\n",
    "x: =\n",
]


@st.composite
def yaml_attacks(draw) -> bytes:
    kind = draw(st.sampled_from(["insert", "insert", "replace-line", "delete-line", "duplicate-line", "garbage",
                                 "text", "anchors", "merges", "deep", "bytes-in-demo"]))
    if kind in ("insert", "replace-line", "delete-line", "duplicate-line"):
        lines = list(DEMO_LINES)
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "insert":
            indent = draw(st.sampled_from(["", "  ", "    ", "      "]))
            lines.insert(i, "".join(indent + ln for ln in draw(st.sampled_from(SNIPPETS)).splitlines(True)))
        elif kind == "replace-line":
            lines[i] = draw(st.sampled_from(SNIPPETS))
        elif kind == "delete-line":
            del lines[i]
        else:
            lines.insert(i, lines[i])  # the same key twice in one mapping, or a duplicated list item
        return "".join(lines).encode()
    if kind == "garbage":
        return draw(st.binary(max_size=2048))
    if kind == "text":
        return draw(st.text(max_size=500)).encode("utf-8", "surrogatepass")
    if kind == "anchors":
        levels = draw(st.integers(1, 9))
        return ("\n".join(BILLION_LAUGHS.splitlines()[:levels]) + "\n" + DEMO_TEXT).encode()
    if kind == "merges":
        return (merge_bomb(draw(st.integers(1, 40))) + DEMO_TEXT).encode()
    if kind == "deep":
        n = draw(st.sampled_from([10, 63, 65, 1000, 20000]))
        return (draw(st.sampled_from(["[" * n + "]" * n, "{a: " * n + "1" + "}" * n, "- " * n + "x"]))).encode()
    data = bytearray(DEMO_TEXT.encode())
    for _ in range(draw(st.integers(1, 5))):
        data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
    return bytes(data)


def test_yaml_attacks_are_refused_with_a_message(tmp_path, gate_report):
    outcome = Outcome()
    path = tmp_path / "spec.yaml"
    pwned = tmp_path / "pwned"

    @fuzz_settings("yaml")
    @given(yaml_attacks())
    def run(raw: bytes) -> None:
        path.write_bytes(raw.replace(b"echo pwned", f"touch {pwned}".encode()))
        started = time.monotonic()
        outcome.check(path)
        # A bound that only a blow-up misses (the merge-key bomb took minutes and 10 GB before the budget), not a
        # speed target: loaded CI machines are slow.
        assert time.monotonic() - started < HANG_S, "aliases must not expand without bound"
        assert not pwned.exists()

    run()
    c = outcome.counts
    gate_report("fuzz", f"YAML text attacks: {c['tried']} files tried, {c['valid']} still valid (all planned), "
                        f"{c['invalid']} refused with a message, 0 tracebacks")


@pytest.mark.parametrize("text,fragment", [
    (f"x: !!python/object/apply:os.system ['touch PWNED']\n{DEMO_TEXT}", "python/object/apply"),
    (f"!!python/object:builtins.dict\n{DEMO_TEXT}", "unsupported tag"),
    (BILLION_LAUGHS + DEMO_TEXT, "more than 100000 values"),
    (MERGE_BOMB + DEMO_TEXT, "more than 100000 values"),
    (DEMO_TEXT + "name: twice\n", "duplicate key 'name'"),
    ("[" * 100 + "]" * 100, "nested deeper than 64"),
    ("", "is empty"),
    ("- just\n- a\n- list\n", "a spec is a mapping"),
])
def test_unsafe_and_unbounded_yaml_is_refused(tmp_path, text, fragment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    code, _, err = run_validate(path)
    assert code == 1 and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("size", [MAX_BYTES + 1, 4 * 1024 * 1024 + 1])
def test_oversized_specs_are_refused_before_parsing(tmp_path, size):
    path = tmp_path / "big.yaml"
    path.write_text(DEMO_TEXT + "#" * (size - len(DEMO_TEXT.encode()) - 1) + "\n")
    assert path.stat().st_size == size
    started = time.monotonic()
    code, _, err = run_validate(path)
    assert code == 1 and "limited to" in err and "Traceback" not in err, err
    assert time.monotonic() - started < HANG_S  # refused from its size, never read whole


def test_a_spec_at_the_size_limit_still_loads(tmp_path):
    path = tmp_path / "limit.yaml"
    path.write_text(DEMO_TEXT + "#" * (MAX_BYTES - len(DEMO_TEXT.encode()) - 1) + "\n")
    assert path.stat().st_size == MAX_BYTES
    code, out, err = run_validate(path)
    assert code == 0, err


# --- 4. command lines of the offline commands -----------------------------------------------------------------------

TOOL_SAMPLE = ROOT / "tests" / "data" / "tool-output" / "fio" / "rand-read.json"
# Output paths (synth -o, report --html/--csv) have a fuzz of their own; these commands only read.
OFFLINE_COMMANDS = ["validate", "plan", "schema", "parse", "cost"]


def hostile_paths(tmp: Path) -> list[str]:
    """Every kind of path a user or a script can pass where rackform reads a file."""
    fifo = tmp / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    odd = tmp / "spec \u00e9\n\u202e.yaml"  # a space, an accent, a newline, a right-to-left override
    odd.write_text(DEMO_TEXT)
    broken = tmp / "broken.yaml"
    broken.write_text(DEMO_TEXT.replace("count: 2", "count: 1:20", 1))
    prices = tmp / "prices.yaml"
    prices.write_text("p5.48xlarge: 98.32\ngpu/h100: nan\n")
    return [str(DEMO_PATH), str(odd), str(broken), str(prices), str(TOOL_SAMPLE), str(tmp), str(fifo),
            "/dev/zero", "/dev/null", str(tmp / "missing.yaml"), "", ".", "-", "a\x00b", "x" * 5000,
            str(tmp / "missing" / "deeper.yaml"), "~/spec.yaml", "--", "-h"]


@st.composite
def cli_argvs(draw, paths: list[str]) -> list[str]:
    path = st.one_of(st.sampled_from(paths), st.text(max_size=20))
    junk = st.one_of(st.text(max_size=12), st.sampled_from(["--json", "--live", "--nope", "-", "--", "-o", "=",
                                                             "--budget", "--price", "--tool"]))
    command = draw(st.sampled_from(OFFLINE_COMMANDS + ["", "nonsense", "--version", "--help"]))
    argv = [command] if command else []
    if command in ("validate", "plan"):
        argv += [draw(path)] + (["--json"] if draw(st.booleans()) else [])
    elif command == "parse":
        argv += ["--tool", draw(st.sampled_from([*TOOLS, "nccl", ""])), draw(path)]
    elif command == "cost":
        argv += [draw(path)]
        for _ in range(draw(st.integers(0, 3))):
            option = draw(st.sampled_from(["--json", "--budget", "--price", "--prices-file"]))
            value = {"--json": [], "--prices-file": [draw(path)]}.get(option) or [draw(st.one_of(
                st.sampled_from(["150", "-1", "nan", "inf", "1e309", "p5.48xlarge=31.46", "gpu/h100=x", "=", ""]),
                st.text(max_size=12)))]
            argv += [option, *value]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(junk))
    return argv


def run_cli(argv: list[str], stdin: bytes) -> tuple[int, str, str]:
    """`rackform ARGV` in process, standard input from `stdin`: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin))):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: usage errors exit 2, --help and --version 0
            code = e.code if isinstance(e.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def test_offline_commands_with_hostile_paths_and_options_exit_cleanly(tmp_path, gate_report):
    paths = hostile_paths(tmp_path)
    codes: Counter[int] = Counter()

    @fuzz_settings("cli")
    @given(cli_argvs(paths), st.binary(max_size=200))
    def run(argv: list[str], stdin: bytes) -> None:
        started = time.monotonic()
        code, out, err = run_cli(argv, stdin)
        codes[code] += 1
        assert "Traceback" not in out + err, (argv, err)
        assert code in (0, 1, 2, 3), (argv, code, err)
        # --json answers on stdout ({"valid": false, "problems": [...]}); everything else says why on stderr
        assert code == 0 or err.strip() or ("--json" in argv and '"problems"' in out), (argv, "no reason given")
        assert time.monotonic() - started < HANG_S, (argv, "a FIFO or /dev/zero must be refused, not read")

    run()
    n = sum(codes.values())
    assert codes[0] and codes[1] and codes[2], codes
    gate_report("fuzz", f"command lines (validate, plan, schema, parse, cost with hostile paths and options): {n} "
                        f"run, exit codes {dict(sorted(codes.items()))}, 0 tracebacks")


# --- 5. command lines of the commands that call AWS ------------------------------------------------------------------

AWS_COMMANDS = ["status", "results", "runs", "logs", "report", "advise", "submit"]
REFUSED = "http://127.0.0.1:9"  # nothing listens: the connection is refused at once, offline


@st.composite
def aws_argvs(draw, paths: list[str]) -> list[str]:
    run_id = st.one_of(st.sampled_from(["r1", "r2", "../x", "", "-", "a" * 60, "r1\n", "-x", "r\u202e1"]),
                       st.text(max_size=12))
    value = st.one_of(st.sampled_from(["", "-", "0", "-1", "nan", "1e309", "us-east-1", "nope", "lab", REFUSED,
                                       "not a url", "http://", "b", "rackform-fuzz"]), st.text(max_size=12))
    command = draw(st.sampled_from(AWS_COMMANDS))
    argv = [command]
    if command == "submit":
        argv += [draw(st.sampled_from([str(DEMO_PATH), *paths])), "--rack", draw(value), "--benchmark",
                 draw(st.sampled_from(["cpu", "gemm", "nope"]))]
    elif command != "runs":
        argv += [draw(run_id) for _ in range(draw(st.integers(1, 2) if command == "advise" else st.just(1)))]
    number = st.one_of(st.sampled_from(["1", "0.1", "2", "10"]), st.sampled_from(["1", "3"]), value)
    options = {"--bucket": st.one_of(st.just("rackform-fuzz"), value), "--region": value, "--profile": value,
               "--endpoint-url": value, "--json": None, "--wait": None, "--timeout": number, "--interval": number,
               "--limit": number, "--rack": value, "--node-group": value, "--benchmark": value, "--node": number,
               "--html": st.sampled_from(paths), "--csv": st.sampled_from(paths), "--baseline": run_id,
               "--threshold": number}
    if command in ("status", "results", "runs", "logs", "report", "advise"):  # mostly options the command has
        keep = {"status": "--wait --timeout --interval", "runs": "--limit", "report": "--html --csv --baseline "
                "--threshold", "logs": "--rack --node-group --benchmark --node"}.get(command, "").split()
        options = {k: v for k, v in options.items() if draw(st.integers(0, 4)) == 0 or k in keep or k in (
            "--bucket", "--region", "--profile", "--endpoint-url", "--json")}
    for _ in range(draw(st.integers(0, 3))):
        option = draw(st.sampled_from(sorted(options)))
        argv += [option] + ([] if options[option] is None else [draw(options[option])])
    return argv


def test_aws_commands_with_bad_paths_and_options_exit_cleanly(tmp_path, monkeypatch, gate_report):
    """status, results, runs, logs, report, advise and submit with hostile run ids, paths and options, against a
    moto bucket (one run, r1) or a refused endpoint: one-line errors and exit codes, never a traceback."""
    from moto import mock_aws

    from rackform import aws
    from workloads.results import ResultRecord
    from workloads.store import ResultStore

    paths = hostile_paths(tmp_path)
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                 "RACKFORM_BUCKET": "rackform-fuzz", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                 "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(aws, "RETRIES", {"mode": "standard", "total_max_attempts": 1})
    codes: Counter[int] = Counter()

    @fuzz_settings("aws-cli")
    @given(aws_argvs(paths))
    def run(argv: list[str]) -> None:
        started = time.monotonic()
        code, out, err = run_cli(argv + ["--timeout", "0.2", "--interval", "0.05"] if "--wait" in argv else argv,
                                 b"")
        codes[code] += 1
        assert "Traceback" not in out + err, (argv, err)
        assert code in (0, 1, 2, 4), (argv, code, err)
        assert code == 0 or err.strip(), (argv, "a failure must say why on stderr")
        assert time.monotonic() - started < HANG_S, argv

    with mock_aws():
        s3 = versioned_bucket("rackform-fuzz")
        ResultStore("rackform-fuzz", s3).put_record(ResultRecord.model_validate({
            "run_id": "r1", "benchmark": "cpu", "tool": "sysbench", "rack": "graviton", "node_group": "head",
            "tier": "graviton", "instance_type": "m7g.xlarge", "node_count": 1, "status": "succeeded",
            "metrics": [{"name": "events_per_second", "value": 1000.0, "unit": "events/s"}],
            "started_at": "2026-11-24T08:00:00Z", "ended_at": "2026-11-24T08:00:05Z"}))
        run()
    n = sum(codes.values())
    assert codes[0] and codes[1] and codes[2], codes
    gate_report("fuzz", f"command lines of the AWS commands (status, results, runs, logs, report, advise, submit; "
                        f"moto or a refused endpoint): {n} run, exit codes {dict(sorted(codes.items()))}, "
                        "0 tracebacks")
