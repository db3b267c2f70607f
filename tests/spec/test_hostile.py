"""Hostile input, one class at a time (issue 9): bounded parsing, patterns that mean what they say, names that
collide, and values stricter than YAML 1.1 and pydantic's lax mode. Each test failed before its fix."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import tracemalloc

import pytest

from rackform.plan import naming
from rackform.spec.problems import SpecError, errors
from rackform.spec.models import load_spec_text, parse_spec
from rackform.validate import validate_spec
from rackform.spec.yamlsafe import load_yaml
from workloads.parsers import parse
from workloads.layout import check_run_id

from tests.conftest import EXAMPLE, ROOT, run_cli

SAMPLES = ROOT / "tests" / "data" / "tool-output"


def rule_problems(data, catalog, rule: str):
    return [p for p in validate_spec(parse_spec(data), catalog) if p.rule == rule]


# --- 1. bounded parsing --------------------------------------------------------------------------------------------

def merge_bomb(levels: int) -> str:
    """`<<: [&a {...}, *a]` nested inline: PyYAML's flatten_mapping resolved the whole nest, doubling the pairs at
    every level, before a single value was counted (758 bytes took 10 GB)."""
    inner = "{k0: 0}"
    for i in range(1, levels):
        inner = f"{{<<: [&a{i} {inner}, *a{i}], k{i}: {i}}}"
    return f"x: {inner}\n"


def test_nested_merge_keys_are_counted_before_they_are_built(monkeypatch):
    monkeypatch.setattr("rackform.spec.yamlsafe.MAX_NODES", 10_000)  # the same budget, smaller to keep tracemalloc quick
    text = merge_bomb(22)  # 2 million merged pairs before the fix
    assert len(text) < 1000
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as e:
            load_yaml(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "more than 10000 values" in str(e.value)
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB to refuse {len(text)} bytes"


def test_a_small_merge_nest_still_loads():
    data, _ = load_yaml(merge_bomb(5))
    assert data["x"] == {"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4}


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """Python code in a child with 2 GiB of address space and a timeout: before the fix /dev/zero ate all memory
    and a FIFO blocked for ever, which must fail this test, not take the machine down."""
    def limit():  # pragma: no cover - runs in the child
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
    try:
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              preexec_fn=limit)
    except subprocess.TimeoutExpired:
        pytest.fail("blocked: the file was not refused")


def test_spec_price_and_log_files_must_be_regular_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [(cmd, path) for path in ("/dev/zero", str(fifo), str(tmp_path)) for cmd in (
        ["validate", path], ["plan", path], ["parse", "--tool", "fio", path],
        ["cost", str(EXAMPLE), "--prices-file", path])]
    code = ("import contextlib, io, json, sys\nfrom rackform.cli import main\nout = []\n"
            f"for argv in {[c for c, _ in cases]!r}:\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
            "        rc = main(argv)\n"
            "    out.append([rc, err.getvalue()])\n"
            "print(json.dumps(out))\n")
    done = run_isolated(code)
    assert done.returncode == 0, done.stderr[-2000:]
    for (argv, path), (rc, err) in zip(cases, json.loads(done.stdout)):
        assert rc in (1, 2) and "Traceback" not in err, (argv, err)
        why = "is a directory" if path == str(tmp_path) else "is not a regular file"
        assert f"cannot read {path}: it {why}" in err, (argv, err)


@pytest.mark.parametrize("kind", ["spec", "prices", "log"])
def test_files_over_the_limit_are_refused_after_reading_at_most_limit_plus_one(tmp_path, kind, monkeypatch):
    from rackform.spec import files

    path = tmp_path / "big"
    path.write_bytes(b"x" * 100)
    reads: list[int] = []
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        reads.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)
    with pytest.raises(files.FileRefused, match=f"{kind} files are limited to 99 bytes"):
        files.read_limited(path, 99, kind)
    assert reads == []  # refused from fstat's size, before reading
    assert files.read_limited(path, 100, kind) == b"x" * 100 and max(reads) <= 101


@pytest.mark.parametrize("text,path", [
    ("count: " + "9" * 5000, "count"),         # Python refuses int() of more than 4,300 digits: a ValueError
    ("x: [1, " + "-" + "1" * 5000 + "]", "x[1]"),
    ("x: 2024-13-45", "x"),                       # the timestamp pattern matches, the calendar does not
])
def test_values_python_cannot_build_are_problems_naming_the_field(text, path):
    with pytest.raises(SpecError) as e:
        load_yaml(text)
    [p] = e.value.problems
    assert p.path == path and p.line == 1


def test_a_giant_count_in_a_spec_is_one_line_error(capsys, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(EXAMPLE.read_text().replace("count: 4", "count: " + "9" * 5000, 1))
    assert "count: " + "9" * 5000 in spec.read_text()
    code, _, err = run_cli(capsys, "validate", spec)
    assert code == 1 and "count: 99999999999999999999... is a number of 5,000 characters" in err


SYSBENCH_CPU = (SAMPLES / "sysbench" / "cpu-1.0.20.txt").read_text()


@pytest.mark.parametrize("tool,line", [
    ("sysbench-cpu", " " * 32768 + "-:1"),                        # latency block: blanks split every way
    ("sysbench-cpu", " " * 16384 + "a" + " " * 16383 + "-:1"),
    ("sysbench-cpu", " " * 32768 + "x"),
    ("sysbench-memory", "1" * 32768),                              # a run of digits before "MiB transferred"
    ("nccom-test", "1" * 32768),
    ("nccl-tests", "nccl-tests version 1 " * 12480),              # `version (\S+) .*nccl-library=` per occurrence
    ("fi_pingpong", "fi_pingpong " * 10920),                      # `fi_pingpong\b.*?\s-p` per occurrence
])
def test_a_long_line_parses_in_linear_time(tool, line):
    text = SYSBENCH_CPU.replace("Latency (ms):\n", "Latency (ms):\n" + line + "\n")
    if tool == "fi_pingpong":
        text = (SAMPLES / "fi_pingpong" / "tcp-rdm-all-sizes.txt").read_text() + line + "\n"
    started = time.perf_counter()
    parse(tool, text)
    assert time.perf_counter() - started < 2, "quadratic or worse: 11 s before the fix on a 32 KiB line"


def fio_json(megabytes: int, every_job: str = "") -> str:
    doc = json.loads((SAMPLES / "fio" / "randrw-two-jobs.json").read_text())
    job = doc["jobs"][0]
    n = megabytes * 10**6 // len(json.dumps(job, indent=2))
    doc["jobs"] = [dict(job, jobname=f"job{i}") for i in range(n)]
    text = json.dumps(doc, indent=2)
    return text.replace('"usr_cpu": ', f'"usr_cpu": {every_job}, "x": ') if every_job else text


def test_a_10_mb_fio_file_parses_in_linear_time():
    for text, ok in ((fio_json(10), True), (fio_json(10, every_job="-nan"), False)):
        started = time.perf_counter()
        parsed = parse("fio", text)
        # Before: each job's '{' line was decoded to its -nan and json counted the lines up to it: 98 s.
        assert parsed.ok is ok and time.perf_counter() - started < 10, parsed.reason


# --- 2. patterns that mean what they say ---------------------------------------------------------------------------

def set_path(data, path: str, value):
    *parents, last = path.split(".")
    for p in parents:
        data = data[int(p)] if p.isdigit() else data[p]
    data[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize("path,good", [
    ("name", "demo"),
    ("racks.0.name", "graviton"),
    ("racks.1.node_groups.0.name", "workers"),
    ("racks.1.node_groups.0.capacity.reservation_id", "cr-0123456789abcdef0"),
    ("storage.fsx_lustre.data_repository_path", "s3://my-datasets/train"),
    ("storage.fsx_lustre.mount_path", "/fsx"),
])
def test_every_spec_pattern_refuses_a_trailing_newline(demo, catalog, path, good):
    set_path(demo, path, good)
    assert not errors(validate_spec(parse_spec(demo), catalog))
    set_path(demo, path, good + "\n")
    try:
        problems = errors(validate_spec(parse_spec(demo), catalog))
    except SpecError as e:
        problems = e.problems
    assert any(p.path.replace("[", ".").replace("]", "") == path and repr(good + "\n") in p.message
               for p in problems), problems


@pytest.mark.parametrize("zone", ["use1-az6\n", "use1-az6 ", "use1-az6x"])
def test_az_ids_are_matched_whole(zone):
    from rackform.reference.catalog import is_zone_id

    assert is_zone_id("use1-az6") and not is_zone_id(zone)


@pytest.mark.parametrize("run_id", ["run-1\n", "run-1\r\n", "\nrun-1", "run 1", "", "a" * 49])
def test_run_ids_are_matched_whole(run_id):
    assert check_run_id("run-1") == "run-1"
    with pytest.raises(ValueError):
        check_run_id(run_id)


def test_a_mount_path_with_a_newline_never_reaches_user_data(capsys, tmp_path, demo):
    demo["storage"]["fsx_lustre"]["mount_path"] = "/fsx\n"
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(demo))
    code, _, err = run_cli(capsys, "plan", spec)
    assert code == 1 and "storage.fsx_lustre.mount_path: '/fsx\\n' is not an absolute path" in err


# --- 3. names that collide -----------------------------------------------------------------------------------------

def with_group_names(demo, *names):
    rack = demo["racks"][1]
    rack["node_groups"] = [dict(copy.deepcopy(rack["node_groups"][0]), name=n) for n in names]
    return demo


@pytest.mark.parametrize("names,collider,fragment", [
    (["jobs"], "jobs", "'Jobs', already the id of the rack's job role"),
    (["nodes"], "nodes", "'Nodes', already the id of the rack's node instance role"),
    (["trainium-image"], "trainium-image", "'TrainiumImage', already the id of the rack's trainium image"),
    (["g1", "g-1"], "g-1", "'G1', already the id of node group 'g1' (racks[1].node_groups[0].name)"),
    (["a-b", "a--b"], "a--b", "'AB', already the id of node group 'a-b' (racks[1].node_groups[0].name)"),
    (["x", "x-jobs"], "x-jobs", "'XJobs', already the id of the job definitions of node group 'x' "
                                "(racks[1].node_groups[0].name)"),
    (["x", "x-job-queue"], "x-job-queue", "'XJobQueue', already the id of the job queue output of node group 'x'"),
    (["check-bootstrap-version"], "check-bootstrap-version", "'CheckBootstrapVersion', already the id of CDK's"),
])
def test_node_group_names_whose_construct_ids_collide_are_refused(demo, catalog, names, collider, fragment):
    [p] = rule_problems(with_group_names(demo, *names), catalog, "unique-resource-names")
    assert p.level == "error" and p.path == f"racks[1].node_groups[{names.index(collider)}].name"
    assert f"{collider!r} gives its node group" in p.message and fragment in p.message


def test_names_differing_only_in_case_of_their_ids_are_distinct(demo, catalog):
    # 'ab' -> Ab, 'a-b' -> AB: CDK ids and CloudFormation logical ids are case-sensitive
    assert not rule_problems(with_group_names(demo, "ab", "a-b"), catalog, "unique-resource-names")


def test_aws_names_that_collide_across_racks_name_both_fields(demo, catalog):
    demo["racks"][0]["name"], demo["racks"][1]["name"] = "a-b", "a"
    demo["racks"][0]["node_groups"][0]["name"], demo["racks"][1]["node_groups"][0]["name"] = "c", "b-c"
    [p] = rule_problems(demo, catalog, "unique-resource-names")
    assert p.path == "racks[1].node_groups[0].name"
    assert "rack 'a'/node group 'b-c' gives the AWS Batch compute environment name" in p.message
    assert "as does rack 'a-b'/node group 'c' (racks[0].node_groups[0].name)" in p.message


def test_rack_stacks_use_exactly_the_construct_ids_validate_checks(tmp_path, catalog):
    """stacks/rack.py and naming.rack_construct_ids must agree, or validate checks ids synth never uses."""
    from rackform.plan.models import build_plan
    from stacks import build_app

    spec, _ = load_spec_text((ROOT / "examples" / "demo.yaml").read_text())
    plan = build_plan(spec, catalog)
    app = build_app(plan, outdir=str(tmp_path))
    app.synth()
    for rack in plan.racks:
        stack = app.node.find_child(rack.stack_name)
        # Ids CDK derives from parameter names (SsmParameterValue:...) are never alphanumeric, so no name can hit them
        built = {c.node.id for c in stack.node.children if c.node.id.isalnum()}
        expected = {cid for cid, _, _ in naming.rack_construct_ids({g.name: g.tier for g in rack.node_groups})}
        assert built <= expected, f"ids synth uses that validate does not check: {sorted(built - expected)}"
        assert expected - built <= set(naming.CDK_STACK_IDS), f"ids validate checks that synth does not use: " \
                                                              f"{sorted(expected - built - set(naming.CDK_STACK_IDS))}"


# --- 4. stricter values --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("written,shown", [("1:20", "'1:20'"), ("true", "True"), ('"3"', "'3'"), ("3.0", "3.0"),
                                           ("yes", "True")])
def test_counts_are_strict_integers(written, shown):
    text = EXAMPLE.read_text().replace("count: 4", f"count: {written}", 1)
    with pytest.raises(SpecError) as e:
        load_spec_text(text)
    [p] = e.value.problems
    assert p.path == "racks[1].node_groups[0].count" and p.message.startswith(f"{shown} is not a whole number")


@pytest.mark.parametrize("field", ["root_volume_gib: '100'", "root_volume_gib: 1:40"])
def test_sizes_are_strict_integers_too(field):
    text = EXAMPLE.read_text().replace("count: 4", f"count: 4\n        {field}", 1)
    with pytest.raises(SpecError) as e:
        load_spec_text(text)
    assert [p.path for p in e.value.problems] == ["racks[1].node_groups[0].root_volume_gib"]


def test_the_schema_still_says_integer():
    from rackform.spec.models import json_schema

    count = json_schema()["$defs"]["NodeGroup"]["properties"]["count"]
    assert count["type"] == "integer" and count["minimum"] == 1


def test_merge_keys_follow_yamls_override_rule():
    text = ("base: &base {instance_type: m7g.xlarge, count: 1, efa: false}\n"
            "big: &big {instance_type: p5.48xlarge, count: 8, tier: gpu}\n"
            "group: {<<: [*base, *big], count: 2, name: g}\n")
    data, lines = load_yaml(text)
    # explicit keys win over merged ones; of the merged mappings the first listed wins
    assert data["group"] == {"count": 2, "name": "g", "instance_type": "m7g.xlarge", "efa": False, "tier": "gpu"}
    assert lines["group.count"] == 3 and lines["group.instance_type"] == 1


def test_a_spec_written_with_merge_keys_loads():
    text = EXAMPLE.read_text().replace("      - name: head\n",
                                       "      - &head\n        name: head\n        root_volume_gib: 200\n")
    text = text.replace("      - name: cpu\n", "      - <<: *head\n        name: cpu\n")
    spec, _ = load_spec_text(text)  # before: "duplicate key 'name'", 'instance_type' and 'count'
    head, cpu = spec.racks[0].node_groups
    assert (cpu.name, cpu.instance_type, cpu.count, cpu.root_volume_gib) == ("cpu", "c7gn.16xlarge", 2, 200)
    assert head.root_volume_gib == 200


@pytest.mark.parametrize("text,fragment", [
    ("a: {<<: 1}", "merge key '<<' is not a mapping"),
    ("a: &a {x: 1, <<: *a}", "merge key '<<' merges itself"),
    ("a: {<<: {x: 1}, <<: {y: 1}}", "more than one merge key"),
])
def test_malformed_merge_keys_are_problems(text, fragment):
    with pytest.raises(SpecError, match=fragment):
        load_yaml(text)


@pytest.mark.parametrize("cidr,fragment", [
    ("127.0.0.0/16", "loopback 127.0.0.0/8"),
    ("169.254.0.0/16", "link-local 169.254.0.0/16"),
    ("224.0.0.0/16", "multicast 224.0.0.0/4"),
    ("240.0.0.0/16", "reserved 240.0.0.0/4"),
    ("0.0.0.0/16", "0.0.0.0/8"),
    ("172.17.0.0/16", "172.17.0.0/16, Docker's default bridge"),
    ("172.17.128.0/20", "172.17.0.0/16, Docker's default bridge"),
    ("100.64.0.0/16", "outside the RFC 1918 ranges"),
    ("8.8.0.0/16", "it is public address space"),
])
def test_vpc_cidrs_in_special_ranges_are_warned_about(demo, catalog, cidr, fragment):
    demo.setdefault("network", {})["vpc_cidr"] = cidr
    [p] = rule_problems(demo, catalog, "vpc-cidr-private")
    assert p.level == "warning" and p.path == "network.vpc_cidr" and fragment in p.message


@pytest.mark.parametrize("cidr", ["10.40.0.0/16", "172.16.0.0/16", "172.18.0.0/16", "192.168.0.0/20"])
def test_rfc_1918_cidrs_clear_of_docker_are_quiet(demo, catalog, cidr):
    demo.setdefault("network", {})["vpc_cidr"] = cidr
    assert not rule_problems(demo, catalog, "vpc-cidr-private")

