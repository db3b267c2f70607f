"""Hostile objects in the results bucket and hostile values in records: every reader verifies what it reads, and
nothing a job wrote can attack the operator's terminal, spreadsheet, plots or disk.

Any job can write under results/ (the job and node roles may), so each test here plants what a broken or
compromised job could: an object written over a record, one with no or a wrong SHA-256, a marker that is not JSON
or lacks keys, a record with a naive time or filed under another run's key, names carrying escape sequences,
formulas and mathtext, a NaN measurement. The commands must name each problem and still report the rest.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from pathlib import Path

import pytest

from rackform.analysis import report as rp
from rackform.cli import main
from rackform.cli import table as _table
from rackform.jobs.local import Deployment, log_path, run_local
from rackform.reference.peaks import limits_for
from rackform.render import html as rh
from rackform.render import report as rr
from rackform.spec.problems import Problem
from rackform.textsafe import visible
from tests.conftest import S3Only, dump, moto_aws, run_cli, versioned_bucket
from workloads.layout import record_key, submission_key
from workloads.results import Metric, ResultRecord
from workloads.store import ResultStore, sha256_b64

BUCKET = "rackform-integrity-test"
REGION = "us-east-1"
RUN = "run-1"
T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.timezone.utc)
ESC = "\x1b[2J\x1b]0;owned\x07"  # clear the screen, set the window title


def record(benchmark: str = "cpu", rack: str = "graviton", group: str = "head", *, run_id: str = RUN,
           value: float = 1000.0, status: str = "succeeded", reason: str | None = None,
           metrics: tuple[Metric, ...] | None = None, instance_type: str = "m7g.xlarge") -> ResultRecord:
    return ResultRecord(
        run_id=run_id, benchmark=benchmark, tool="sysbench", rack=rack, node_group=group, tier="graviton",
        instance_type=instance_type, node_count=1, status=status, reason=reason,
        metrics=metrics if metrics is not None else (Metric(name="events_per_second", value=value, unit="events/s"),),
        started_at=T0, ended_at=T0 + dt.timedelta(seconds=30), price_usd_per_hour=0.1632)


def marker(benchmark: str = "cpu", rack: str = "graviton", group: str = "head", run_id: str = RUN) -> dict:
    return {"job_name": f"{run_id}-{rack}-{group}-{benchmark}", "job_id": f"job-{benchmark}", "queue": "q",
            "job_definition": "jd", "rack": rack, "node_group": group, "benchmark": benchmark, "nodes": 1}


def put_raw(s3, key: str, body: bytes, *, checksum: bool = True) -> None:
    """A PUT as a job with s3:PutObject on results/* can make it: any body, any key, no If-None-Match."""
    extra = {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": sha256_b64(body)} if checksum else {}
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, **extra)


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    with moto_aws(monkeypatch, REGION):
        yield versioned_bucket(BUCKET, REGION)


@pytest.fixture
def store(s3):
    """One genuine job (cpu, succeeded, 1,000 events/s) with its marker, written the way rackform writes."""
    s = ResultStore(BUCKET, s3)
    s.put_record(record())
    s.put_once(submission_key(RUN, marker()["job_name"]), json.dumps(marker()).encode(), "application/json")
    return s


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv, "--bucket", BUCKET, "--region", REGION)


# --- item 2, reader side: the SHA-256 and the key are verified --------------------------------------------------

def test_a_record_written_over_is_tampered_never_data(s3, store, capsys):
    store.put_record(record("storage", "gpu", "h100"))
    key = record_key(RUN, "graviton", "head", "cpu")
    forged = record(value=1000.0 * 1000)  # the same job, 1000x faster: a valid record with a valid SHA-256
    put_raw(s3, key, forged.model_dump_json().encode())
    code, out, _ = cli(capsys, "results", RUN)
    assert code == 1 and f"1 record tampered: {key}: 2 versions" in out
    assert "gpu/h100" in out and "1,000,000" not in out and "1000000" not in out
    doc = json.loads(cli(capsys, "results", RUN, "--json")[1])
    assert [r["benchmark"] for r in doc["records"]] == ["storage"]
    assert doc["problems"] == [{"key": key, "object": "record", "problem": "tampered",
                                "why": doc["problems"][0]["why"]}] and "2 versions" in doc["problems"][0]["why"]


def test_a_record_without_its_sha256_is_tampered(s3, store, capsys):
    key = record_key(RUN, "gpu", "h100", "gemm")
    put_raw(s3, key, record("gemm", "gpu", "h100").model_dump_json().encode(), checksum=False)
    code, out, _ = cli(capsys, "results", RUN)
    assert code == 1 and f"1 record tampered: {key}: no SHA-256 checksum" in out
    assert "graviton/head" in out  # the genuine record still reports


class _Corrupting:
    """An S3 client whose GetObject answers flip one byte of the body but keep the stored checksum."""

    def __init__(self, s3):
        self._s3 = s3

    def __getattr__(self, name):
        return getattr(self._s3, name)

    def get_object(self, **kwargs):
        got = self._s3.get_object(**kwargs)
        body = bytearray(got["Body"].read())
        body[body.index(b"1000")] = ord("9")
        return {**got, "Body": io.BytesIO(bytes(body))}


def test_a_body_that_does_not_match_its_stored_sha256_is_tampered(s3, store):
    reader = ResultStore(BUCKET, _Corrupting(s3))
    assert reader.records(RUN) == []
    [problem] = reader.problems
    assert problem.kind == "tampered" and "SHA-256 mismatch: stored" in problem.why


def test_a_record_filed_under_another_runs_key_is_tampered(s3, store, capsys):
    key = record_key(RUN, "graviton", "head", "gemm")
    put_raw(s3, key, record("gemm", run_id="other-run").model_dump_json().encode())
    code, out, _ = cli(capsys, "report", RUN)
    assert code == 1 and f"1 record tampered: {key}: filed under this key, but the record is run 'other-run'" in out
    assert "cpu " in out and "gemm " not in out.split("\n\n")[1]  # the table reports the genuine job only


# --- item 8: malformed objects are named problems, the rest of the run still reports ----------------------------

@pytest.fixture
def malformed(s3, store):
    bad_json = submission_key(RUN, f"{RUN}-gpu-h100-gemm")
    put_raw(s3, bad_json, b"{not json")
    missing = submission_key(RUN, f"{RUN}-gpu-h100-inference")
    put_raw(s3, missing, json.dumps({"job_name": f"{RUN}-gpu-h100-inference"}).encode())
    naive = record_key(RUN, "gpu", "h100", "storage")
    body = json.loads(record("storage", "gpu", "h100").model_dump_json())
    body["started_at"] = "2026-11-24T08:00:00"  # no time zone
    put_raw(s3, naive, json.dumps(body).encode())
    elsewhere = record_key(RUN, "gpu", "h100", "allreduce")
    put_raw(s3, elsewhere, record("allreduce", "gpu", "h100", run_id="run-2").model_dump_json().encode())
    return {"bad_json": bad_json, "missing": missing, "naive": naive, "elsewhere": elsewhere}


def test_status_names_malformed_markers_and_records_and_shows_the_rest(malformed, capsys):
    code, out, err = cli(capsys, "status", RUN)
    assert code == 1 and "Traceback" not in err
    assert "cpu " in out and "succeeded" in out  # the genuine job
    assert f"{malformed['bad_json']}: not JSON" in out
    assert f"{malformed['missing']}: not a job marker: missing queue, job_definition, rack, node_group, benchmark, " \
        "nodes, job_id" in out
    assert f"{malformed['naive']}: not a result record: started_at: Input should have timezone info" in out
    assert f"1 record tampered: {malformed['elsewhere']}: filed under this key" in out
    assert "2 job markers unreadable:" in out


def test_results_and_report_name_malformed_records_and_report_the_rest(malformed, capsys):
    code, out, _ = cli(capsys, "results", RUN)
    assert code == 1 and "graviton/head" in out and "1,000 events/s" in out
    assert f"1 record unreadable: {malformed['naive']}: not a result record: started_at" in out
    code, out, _ = cli(capsys, "report", RUN, "--json")
    doc = json.loads(out)
    assert code == 1 and [r["benchmark"] for r in doc["rows"]] == ["cpu"]
    assert {(p["object"], p["problem"]) for p in doc["problems"]} == {("record", "unreadable"),
                                                                      ("record", "tampered")}


def test_a_run_whose_only_record_is_malformed_says_so(s3, capsys):
    key = record_key(RUN, "gpu", "h100", "gemm")
    put_raw(s3, key, b"[]")
    code, _, err = cli(capsys, "results", RUN)
    assert code == 1 and f"1 record unreadable: {key}: not a result record" in err
    assert f"no records for run {RUN}" in err and "Traceback" not in err


# --- item 9 (part): NaN is a failed measurement ------------------------------------------------------------------

def test_a_nan_metric_is_a_failed_measurement_and_json_never_says_nan(s3, store, capsys):
    nan = record("gemm", "gpu", "h100", metrics=(Metric(name="tflops_max", value=math.nan, unit="TFLOP/s",
                                                        labels={"dtype": "bf16"}),))
    ResultStore(BUCKET, s3).put_record(nan)  # pydantic writes the NaN as null; it must read back as a NaN
    code, out, _ = cli(capsys, "report", RUN, "--json")
    doc = json.loads(out, parse_constant=lambda c: pytest.fail(f"--json emitted {c}"))
    [row] = [r for r in doc["rows"] if r["benchmark"] == "gemm"]
    assert code == 0 and row["status"] == "failed" and "failed measurement" in row["reason"]
    assert row["value"] is None and row["pct_of_limit"] is None
    code, out, _ = cli(capsys, "results", RUN)
    assert "bf16 failed measurement (nan)" in out
    json.loads(cli(capsys, "results", RUN, "--json")[1], parse_constant=lambda c: pytest.fail(c))


def test_a_nan_against_a_baseline_is_a_failure_not_a_nan_percent():
    def gemm(value: float) -> ResultRecord:
        return record("gemm", "gpu", "h100", metrics=(Metric(name="tflops_max", value=value, unit="TFLOP/s",
                                                             labels={"dtype": "bf16"}),))

    report = rp.build_report([gemm(math.nan)], limits_of=limits_for, baseline=[gemm(700.0)], baseline_run_id="b")
    before, after = rr.text_lines(report)
    table = _table(*rr.summary_table(report))
    assert "nan%" not in table + "\n".join(before + after) and "failed measurement" in table
    assert [c.metric for c in report.regressions] == ["status"]  # succeeded in the baseline, failed now
    json.loads(rr.render_json(report), parse_constant=lambda c: pytest.fail(c))


# --- item 7: output that cannot attack its reader ----------------------------------------------------------------

def test_csv_cells_cannot_start_a_formula_and_numbers_stay_numbers():
    failed = record("fabric", "graviton", "=HYPERLINK(\"http://x\",\"y\")", status="failed", reason="@SUM(A1)",
                    metrics=())
    worse = record("cpu", value=900.0)
    report = rp.build_report([failed, worse], limits_of=limits_for, baseline=[record("cpu")], baseline_run_id="b")
    rows = list(csv.DictReader(io.StringIO(rr.render_csv(report))))
    fabric = next(r for r in rows if r["benchmark"] == "fabric")
    assert fabric["node_group"] == "'=HYPERLINK(\"http://x\",\"y\")" and fabric["reason"] == "'@SUM(A1)"
    cpu = next(r for r in rows if r["benchmark"] == "cpu")
    assert cpu["change_pct"] == "-10.0"  # a negative number is written as a number, not escaped text


def test_control_characters_in_names_reasons_logs_and_azs_are_shown_not_sent(s3, store, capsys, tmp_path, demo):
    # Names that are part of the key (rack, node group) are checked through _table below: moto's ListObjectVersions
    # cannot list a key with ESC in it (it ignores EncodingType=url, which botocore sends and S3 honours).
    store.put_record(record("gemm", "gpu", "h100", status="failed", instance_type=f"p5{ESC}",
                            reason=f"torch exited 1: log tail {ESC} | done", metrics=()))
    for argv in (("results", RUN), ("report", RUN)):
        code, out, err = cli(capsys, *argv)
        assert "\x1b" not in out + err and "\x07" not in out + err
        assert "\\x1b[2J\\x1b]0;owned\\x07" in out
    # an AZ quoted back in a validation message
    demo["availability_zone"] = f"{demo['region']}c{ESC}"  # YAML carries it as "\e[2J..."
    code = main(["validate", str(dump(tmp_path, demo))])
    _, err = capsys.readouterr()
    assert code == 1 and "\x1b" not in err and f"{demo['region']}c\\x1b[2J" in err
    assert _table([[f"h100{ESC}", "a\nb"]], ["node group", "reason"]).splitlines()[2] == \
        "h100\\x1b[2J\\x1b]0;owned\\x07  a\\nb"
    assert visible("a\u202eb\nc") == "a\\u202eb\\nc"  # bidi override and line break: visible, one line
    assert Problem("error", "x", f"bad {ESC}").render() == "error: x: bad \\x1b[2J\\x1b]0;owned\\x07"


def test_plot_labels_are_never_mathtext():
    rec = record("gemm", "$\\notacommand$", "$x^2$", metrics=(Metric(name="tflops_max", value=1.0,
                                                                     unit="TFLOP/s", labels={"dtype": "bf16"}),))
    report = rp.build_report([rec], limits_of=limits_for)
    page = rh.render_html(report)  # mathtext would raise on the unknown command while drawing the PNG
    assert page.count("data:image/png") >= 1  # the plots this one record fills (empty ones are left out)
    fig = rh.per_dollar_figure(report)
    fig.canvas.draw()
    labels = [t for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(t._preprocess_math(t.get_text()) == (t.get_text().replace("\\$", "$"), False)
                          for t in labels)
    assert any("$x^2$" in t._preprocess_math(t.get_text())[0] for t in labels)


# --- item 7: a forged marker cannot make the local executor write outside its log directory ---------------------

def test_a_forged_marker_cannot_place_a_log_outside_the_log_directory(s3, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    forged = {**marker(benchmark="no-such-benchmark"), "job_name": "../escaped"}
    put_raw(s3, f"results/{RUN}/_jobs/../escaped.json", json.dumps(forged).encode())
    said: list[str] = []
    results = run_local(S3Only(s3), Deployment(BUCKET, {"jd": {"containerProperties": {}}}), RUN,
                        log_dir=logs, timeout_s=30, announce=said.append)
    assert results == [] and list(tmp_path.iterdir()) == [logs] and list(logs.iterdir()) == []
    assert any("not run: job marker unreadable" in s for s in said)
    with pytest.raises(ValueError, match="not a Batch job name"):
        log_path(logs, "../../etc/cron.d/x", 0)
    assert log_path(logs, f"{RUN}-graviton-head-cpu", 1) == logs / f"{RUN}-graviton-head-cpu.node-1.log"
    assert Path(log_path(logs, "a", 0)).parent == logs
