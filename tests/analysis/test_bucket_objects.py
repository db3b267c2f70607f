"""Every kind of object in the results bucket, forged, against every command that reads it (issue 18 items 6-9).

Any job can write under results/. Each test plants what a broken or compromised job could write beside a genuine
run (a benchmark job with its record, a workload `rackform run` placed): objects that are not JSON, not the kind's
schema, without their SHA-256, larger than the kind's limit, carrying terminal control sequences; a log of tens of
MiB; markers naming a job definition never deployed or more nodes than the plan has. Every command must name each
problem, report the rest, print no control character and hold no object whole that it could stream.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
import sys
import tracemalloc

import pytest

from rackform.cli import main
from rackform.jobs import submit as submit_module
from rackform.jobs.local import Deployment, run_local
from workloads.layout import (
    claim_key,
    log_key,
    placement_key,
    record_key,
    submission_key,
    workload_job_key,
)
from workloads.results import HealthCheck, HealthRecord, Metric, ResultRecord
from workloads.store import KINDS, ResultStore, sha256_b64

from tests.conftest import DEMO_SPEC as SPEC
from tests.conftest import INFERENCE, S3Only, run_cli

RUN = "b1"
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
# Clear the screen, set the window title, bell, carriage return, a C1 CSI, a bidi override.
CTRL = "\x1b[2J\x1b]0;owned\x07\r\x9b31m\u202e"
# What may reach a terminal from rackform: line breaks and tabs of its own layout, nothing else of C0/C1/DEL/bidi.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def aws(demo_deployed):
    return demo_deployed


def forge(aws, key: str, body: bytes, *, checksum: bool = True) -> str:
    """A PUT as a job with s3:PutObject on results/* can make it: any body, any key, no If-None-Match."""
    extra = {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": sha256_b64(body)} if checksum else {}
    aws["s3"].put_object(Bucket=aws["store"].bucket, Key=key, Body=body, **extra)
    return key


def record(benchmark="gemm", rack="gpu", group="h100", run_id=RUN, **kw) -> ResultRecord:
    fields = dict(run_id=run_id, benchmark=benchmark, tool="gemm", rack=rack, node_group=group, tier="gpu",
                  instance_type="p5.48xlarge", node_count=1, status="succeeded",
                  metrics=(Metric(name="tflops_max", value=700.0, unit="TFLOP/s", labels={"dtype": "bf16"}),),
                  started_at=T0, ended_at=T0 + dt.timedelta(seconds=30), price_usd_per_hour=55.04)
    return ResultRecord(**{**fields, **kw})


@pytest.fixture
def genuine(aws, capsys):
    """A benchmark job with its marker and record, and a workload placed and submitted, as rackform writes them."""
    assert main(["submit", SPEC, "--rack", "gpu", "--benchmark", "gemm", "--run-id", RUN]) == 0
    aws["store"].put_record(record())
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", RUN, "--no-live"]) == 0
    capsys.readouterr()
    return aws


def decision(run_id: str = RUN, workload: str = "llm-serve", text: str = "") -> dict:
    chosen = {"rack": "gpu", "node_group": "h100", "tier": "gpu", "instance_type": "p5.48xlarge",
              "capacity": f"on-demand{text}", "queue": "demo-gpu-h100-queue", "nodes": 1, "per_dollar": None,
              "per_dollar_unit": None, "measured_jobs": 0, "usd_per_hour": 55.04, "backlog_vcpus": 0,
              "max_vcpus": 384, "job_duration_s": 3600.0, "wait_s": 0.0, "expected_cost_usd": None,
              "refused": None, "notes": [f"note{text}"]}
    return {"run_id": run_id, "spec": "demo", "decided_at": "2026-12-01T08:00:00+00:00", "workload": workload,
            "class": f"inference{text}", "benchmark": "inference", "basis": "seed order", "ranking": f"seed{text}",
            "outcome": "placed", "line": f"placed {workload} on gpu/h100{text}", "reason": f"first{text}",
            "chosen": chosen, "preferred": chosen, "candidates": [chosen]}


# --- item 6: one reader for every kind, a named problem for what fails, the rest still reported --------------------

FORGERIES = {  # how: (body, with a SHA-256, what the problem says)
    "not JSON": (b"{not json", True, "not JSON"),
    "not the schema": (json.dumps({"nodes": "1", "job_name": "../x"}).encode(), True, "not a {noun}: "),
    "no SHA-256": (b"{}", False, "no SHA-256 checksum stored"),
    "over the limit": (None, True, "bytes; {noun}s are limited to"),
}
KEYS = {"marker": lambda i: submission_key(RUN, f"{RUN}-graviton-head-cpu{i}"),
        "workload": lambda i: workload_job_key(RUN, f"forged{i}"),
        "placement": lambda i: placement_key(RUN, f"forged{i}")}


@pytest.fixture
def forged(genuine):
    planted = {}
    for what, key_of in KEYS.items():
        for i, (how, (body, checksum, says)) in enumerate(FORGERIES.items()):
            body = body if body is not None else b" " * (KINDS[what].limit + 1)
            planted[forge(genuine, key_of(i), body, checksum=checksum)] = says.format(noun=KINDS[what].noun)
    return planted


@pytest.mark.parametrize("argv,reads,genuine_rows", [
    (["status", RUN], ("_jobs", "_workloads", "_placements"), ["gemm", "gpu/h100", "workload jobs:", "llm-serve"]),
    (["results", RUN], ("_workloads", "_placements"), ["gemm", "700", "workload jobs:", "llm-serve"]),
    (["report", RUN], ("_workloads", "_placements"), ["gemm", "workloads placed:", "llm-serve"]),
    (["runs"], ("_jobs",), [RUN]),
])
def test_every_forged_object_is_a_named_problem_and_the_rest_still_reports(forged, capsys, argv, reads,
                                                                           genuine_rows):
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and all(row in out for row in genuine_rows), out + err
    for key, says in forged.items():
        if key.split("/")[2] in reads:
            assert re.search(rf"{re.escape(key)}: [^\n]*{re.escape(says)}", out + err), (key, says, out + err)


def test_runs_names_a_key_that_is_no_run(genuine, capsys):
    forge(genuine, "results/not a run!/gpu/h100/gemm/record.json", b"{}")
    code, out, err = run_cli(capsys, "runs")
    assert code == 1 and RUN in out and "1 run unreadable: results/not a run!/: not a run id" in out


def test_an_object_over_its_kinds_limit_is_refused_from_the_listing_and_never_read(aws):
    reads: list[str] = []
    real = aws["s3"].get_object

    class Spy:
        def __getattr__(self, name):
            return getattr(aws["s3"], name)

        def get_object(self, **kwargs):
            reads.append(kwargs["Key"])
            return real(**kwargs)

    big = forge(aws, record_key(RUN, "gpu", "h100", "gemm"), b"x" * (KINDS["record"].limit + 1))
    aws["store"].put_record(record("storage"))
    store = ResultStore(aws["store"].bucket, Spy())
    assert [r.benchmark for r in store.records(RUN)] == ["storage"]
    [problem] = store.problems
    assert problem.key == big and f"{KINDS['record'].limit + 1:,} bytes; records are limited to" in problem.why
    assert big not in reads and len(reads) == 1


def test_submit_and_run_name_a_forged_marker_decision_or_claim_and_carry_on(genuine, capsys, monkeypatch):
    monkeypatch.setattr(submit_module, "time", type("T", (), {"sleep": staticmethod(lambda s: None)}))
    # a marker where `submit` will look for the job's: not JSON
    marker = forge(genuine, submission_key("b2", "b2-graviton-head-cpu"), b"{not json")
    code, out, err = run_cli(capsys, "submit", SPEC, "--rack", "graviton", "--benchmark", "cpu", "--run-id", "b2")
    assert code == 1 and f"1 job marker unreadable: {marker}: not JSON" in err
    assert "submitted b2-graviton-cpu-cpu" in err  # the rack's other node group still submits
    # a claim another submit left: not the schema (and one that would make a marker of the wrong kind)
    claim = forge(genuine, claim_key("b3", "b3-graviton-head-cpu", 0), json.dumps({"submission": []}).encode())
    code, out, err = run_cli(capsys, "submit", SPEC, "--rack", "graviton", "--node-group", "head", "--benchmark", "cpu",
                         "--run-id", "b3")
    assert code == 1 and f"1 submission claim unreadable: {claim}: not a submission claim" in err
    # a decision and a workload marker where `run` will look for them
    placed = forge(genuine, placement_key("b4", "llm-serve"), json.dumps({**decision("b4"), "chosen": None}).encode())
    code, out, err = run_cli(capsys, "run", INFERENCE, "--spec", SPEC, "--run-id", "b4", "--no-live")
    assert code == 1 and f"1 placement decision unreadable: {placed}: not a placement decision: chosen" in err
    genuine["store"].put_once(placement_key("b5", "llm-serve"), json.dumps(decision("b5")).encode(), "text/json")
    job = forge(genuine, workload_job_key("b5", "llm-serve"), b"[]", checksum=False)
    code, out, err = run_cli(capsys, "run", INFERENCE, "--spec", SPEC, "--run-id", "b5", "--no-live")
    assert code == 1 and f"1 workload job marker tampered: {job}: no SHA-256" in err


def test_a_claim_cannot_make_a_marker_of_another_kind(genuine, capsys):
    # Batch has the job, so the claim's fields become the marker: a workload job's fields would not be a job marker.
    [marker] = genuine["store"].submissions(RUN)
    name = marker["job_name"]
    genuine["s3"].delete_object(Bucket=genuine["store"].bucket, Key=submission_key(RUN, name),
                                VersionId=genuine["s3"].list_object_versions(
                                    Bucket=genuine["store"].bucket, Prefix=submission_key(RUN, name))["Versions"][0]
                                ["VersionId"])
    latest = genuine["store"].latest_claim(RUN, name)[0]
    fields = {"workload": "w", "job_name": name, "queue": marker["queue"], "job_definition": "jd",
              "rack": "gpu", "node_group": "h100", "tier": "gpu", "nodes": 1}
    claim = forge(genuine, claim_key(RUN, name, latest + 1), json.dumps(
        {"submission": fields, "claimed_by": "x", "claimed_at": "now", "nonce": "n"}).encode())
    code, _, err = run_cli(capsys, "submit", SPEC, "--rack", "gpu", "--benchmark", "gemm", "--run-id", RUN)
    assert code == 1 and f"1 submission claim unreadable: {claim}: would make {submission_key(RUN, name)}, but " \
        "not a job marker" in err
    assert genuine["store"].read_one(submission_key(RUN, name)) is None  # nothing written from it


# --- item 7: nothing from the bucket reaches the terminal as a control character ---------------------------------

def test_no_command_prints_a_control_character_from_the_bucket(genuine, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(submit_module, "time", type("T", (), {"sleep": staticmethod(lambda s: None)}))
    store = genuine["store"]
    # a marker (queue, job id), a record (instance, reason), a health record (host, detail), two node logs (body
    # and key), a decision (class, line, reason, notes) and a claim (who, when) carrying control sequences
    store.put_once(submission_key(RUN, f"{RUN}-graviton-head-cpu"), json.dumps(
        {"job_name": f"{RUN}-graviton-head-cpu", "job_id": f"id{CTRL}", "queue": f"q{CTRL}",
         "job_definition": f"jd{CTRL}", "rack": "graviton", "node_group": "head", "benchmark": "cpu",
         "nodes": 1}).encode(), "application/json")
    store.put_record(record("cpu", "graviton", "head", instance_type=f"m7g{CTRL}", status="failed",
                            reason=f"exit 1 {CTRL}", metrics=()))
    store.put_health(HealthRecord(run_id=RUN, benchmark="gemm", rack="gpu", node_group="h100",
                                  instance_type="p5.48xlarge", node_index=0, hostname=f"ip{CTRL}", checked_at=T0,
                                  checks=(HealthCheck(name="ecc", status="failed", detail=f"ecc {CTRL}"),
                                          HealthCheck(name="efa", status="not applicable here", detail=f"n {CTRL}"))))
    for node in (0, 1):
        store.put_log(log_key(RUN, "gpu", "h100", "gemm", node), f"line {CTRL}\nend {CTRL}")
    store.put_once(placement_key("b6", "llm-serve"), json.dumps(decision("b6", text=CTRL)).encode(), "text/json")
    store.put_once(claim_key("b7", "b7-graviton-head-cpu", 0), json.dumps(
        {"submission": {"job_name": "b7-graviton-head-cpu", "queue": "q", "job_definition": "jd", "rack": "graviton",
                        "node_group": "head", "benchmark": "cpu", "nodes": 1},
         "claimed_by": f"host{CTRL}", "claimed_at": f"now{CTRL}", "nonce": "n"}).encode(), "text/json")
    commands = [["status", RUN], ["status", RUN, "--json"], ["results", RUN], ["report", RUN], ["runs"],
                ["advise", RUN], ["place", INFERENCE, "--spec", SPEC, "--run", RUN, "--no-live", "--explain"],
                ["health", RUN], ["logs", RUN, "--benchmark", "gemm"], ["logs", RUN, "--benchmark", "gemm", "--json"],
                ["run", INFERENCE, "--spec", SPEC, "--run-id", "b6", "--no-live", "--explain"],
                ["submit", SPEC, "--rack", "graviton", "--node-group", "head", "--benchmark", "cpu", "--run-id", "b7"],
                ["submit", SPEC, "--rack", "graviton", "--node-group", "head", "--benchmark", "cpu", "--run-id", RUN]]
    for argv in commands:
        code, out, err = run_cli(capsys, *argv)
        assert not CONTROL.search(out + err), (argv, CONTROL.search(out + err), out + err)
        if argv[0] not in ("runs", "advise", "place"):  # these show no failed record's text, and a queue's cluster
            # only when rackform named the queue: the controls are in neither
            assert "\\x1b[2J" in out + err or "\\u001b[2J" in out, argv  # shown as text: the reader sees it
        if argv[-1] == "--json" and argv[0] == "logs":
            assert [d["text"] for d in json.loads(out)["logs"]] == [f"line {CTRL}\nend {CTRL}"] * 2


# --- item 8: logs are streamed, never held whole ----------------------------------------------------------------

class _Generated:
    """A StreamingBody of `size` bytes made up as it is read: ESC in every line, never all in memory at once."""

    LINE = b"step 1 \x1b[2J ok " + "\u00e9".encode() + b" " * 40 + b"\n"

    def __init__(self, size: int):
        self.size, self.given = size, 0

    @classmethod
    def sha256(cls, size: int) -> str:
        digest = hashlib.sha256()
        for chunk in cls(size).iter_chunks(1 << 20):
            digest.update(chunk)
        return base64.b64encode(digest.digest()).decode()

    def read(self, amt: int | None = None) -> bytes:
        n = self.size - self.given if amt is None else min(amt, self.size - self.given)
        start, self.given = self.given, self.given + n
        line = self.LINE
        reps = (start % len(line) + n) // len(line) + 1
        return (line * reps)[start % len(line):start % len(line) + n]

    def iter_chunks(self, chunk_size: int = 1024):
        while chunk := self.read(chunk_size):
            yield chunk


class _Sink(io.TextIOBase):
    """stdout that keeps nothing: counts what it is given and whether any of it was a control character."""

    def __init__(self):
        self.chars, self.controls, self.tail = 0, 0, ""

    def write(self, text: str) -> int:
        self.chars += len(text)
        self.controls += len(CONTROL.findall(text))
        self.tail = (self.tail + text)[-200:]
        return len(text)


def test_a_large_log_is_streamed_escaped_in_bounded_memory(aws, monkeypatch):
    size = (48 << 20) // len(_Generated.LINE) * len(_Generated.LINE)
    key = forge(aws, log_key(RUN, "gpu", "h100", "gemm", 0), b"placeholder")
    stored = _Generated.sha256(size)

    class Huge:
        def __getattr__(self, name):
            return getattr(aws["s3"], name)

        def get_object(self, **kwargs):
            assert kwargs["Key"] == key
            return {"ChecksumSHA256": stored, "ContentLength": size, "Body": _Generated(size)}

    monkeypatch.setattr("rackform.cli.common.results_store", lambda args, plan=None: ResultStore(aws["store"].bucket, Huge()))
    sink = _Sink()
    monkeypatch.setattr(sys, "stdout", sink)
    tracemalloc.start()
    try:
        code = main(["logs", RUN])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    lines = size // len(_Generated.LINE)
    assert code == 0 and sink.controls == 0 and sink.tail.endswith("ok \u00e9" + " " * 40 + "\n")
    assert sink.chars > lines * len("step 1 \\x1b[2J ok \u00e9")
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB held to show a {size >> 20} MiB log"


def test_a_log_whose_bytes_do_not_match_its_sha256_is_an_error_after_the_text(aws, capsys, monkeypatch):
    key = forge(aws, log_key(RUN, "gpu", "h100", "gemm", 0), b"one\n")

    class Lying:
        def __getattr__(self, name):
            return getattr(aws["s3"], name)

        def get_object(self, **kwargs):
            return {"ChecksumSHA256": sha256_b64(b"two\n"), "Body": _Generated(4)}

    monkeypatch.setattr("rackform.cli.common.results_store", lambda args, plan=None: ResultStore(aws["store"].bucket, Lying()))
    code, out, err = run_cli(capsys, "logs", RUN)
    assert code == 1 and f"error: log tampered: {key}: SHA-256 mismatch" in err and "not what the job wrote" in err


# --- item 9: the local executor runs what the plan deployed, on the nodes it has ----------------------------------

def test_the_local_executor_runs_no_marker_beyond_the_plans_definitions(aws, monkeypatch, tmp_path):
    def never(*args, **kwargs):
        raise AssertionError(f"a forged marker started a process: {args}")

    monkeypatch.setattr("rackform.jobs.local.subprocess.Popen", never)
    definitions = {"demo-gpu-h100-single": {"type": "container", "containerProperties": {"environment": []}},
                   "demo-gpu-h100-multinode": {"type": "multinode", "nodeProperties": {
                       "numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:", "container": {
                           "environment": []}}]}}}
    for bench, jobdef, nodes in (("gemm", "demo-gpu-h100-single", 3), ("allreduce", "demo-gpu-h100-multinode", 1000),
                                 ("storage", f"nope{CTRL}", 1)):
        name = f"{RUN}-gpu-h100-{bench}"
        forge(aws, submission_key(RUN, name), json.dumps(
            {"job_name": name, "job_id": "j", "queue": "q", "job_definition": jobdef, "rack": "gpu",
             "node_group": "h100", "benchmark": bench, "nodes": nodes}).encode())
    said: list[str] = []
    results = run_local(S3Only(aws["s3"]), Deployment(aws["store"].bucket, definitions), RUN, log_dir=tmp_path,
                        timeout_s=5, announce=said.append)
    assert results == [] and list(tmp_path.iterdir()) == []
    assert said == [
        f"not run: {RUN}-gpu-h100-allreduce: 1000 nodes, but its job definition 'demo-gpu-h100-multinode' spans at "
        "most 2",
        f"not run: {RUN}-gpu-h100-gemm: 3 nodes, but its job definition 'demo-gpu-h100-single' spans at most 1",
        f"not run: {RUN}-gpu-h100-storage: job definition {f'nope{CTRL}'!r} was never deployed"]
    assert not CONTROL.search("".join(said))
