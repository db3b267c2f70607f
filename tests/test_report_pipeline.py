"""report and advise on records the real pipeline wrote: `rackform submit` -> the job's entry point
(`python -m workloads.job`, a real 2-process gloo all-reduce and a real GEMM) -> the embedded S3 -> `rackform report`
and `rackform advise`. Hand-built records once hid that torchbench labels busbw_max placement=in-place: advise said
"no succeeded allreduce results" and the per-dollar plot had no all-reduce panel."""

from __future__ import annotations

import json

import pytest

from rackform.cli import checked_plan, main
from rackform.jobs.local import EmbeddedAWS, deploy, run_local

from tests.conftest import ROOT

SPEC = str(ROOT / "examples" / "demo.yaml")
RUN = "pipeline-1"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, demo_assembly):
    plan = checked_plan(SPEC)
    with EmbeddedAWS(plan.region) as aws:
        deployment = deploy(plan, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                            assembly=demo_assembly)
        env = {**aws.env, "RACKFORM_BUCKET": deployment.bucket}
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            # allreduce with the default repeat count, gemm with --repeats 4: the count travels from the command line
            # through the job's environment to the job
            for group, benchmark, extra in (("cpu", "allreduce", []), ("head", "gemm", ["--repeats", "4"])):
                assert main(["submit", SPEC, "--rack", "graviton", "--node-group", group, "--benchmark", benchmark,
                             "--run-id", RUN, *extra]) == 0
            results = run_local(aws, deployment, RUN, log_dir=tmp_path_factory.mktemp("logs"),
                                announce=lambda _: None)
            assert all(code == 0 for r in results for code in r["exit_codes"])
            yield mp


def test_report_has_a_priced_row_and_a_per_dollar_panel_for_every_benchmark_run(pipeline, capsys):
    capsys.readouterr()
    assert main(["report", RUN, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    busbw = [r for r in doc["rows"] if r["benchmark"] == "allreduce"]
    assert [r["metric_key"] for r in busbw] == ["busbw_max{placement=in-place}"]
    assert busbw[0]["per_dollar"] > 0 and busbw[0]["per_dollar_unit"] == "TB/$"
    # validity as the runner recorded it: the health step passed (nothing applies locally), 2 ranks
    assert (busbw[0]["healthy"], busbw[0]["valid"], busbw[0]["ranks"]) == (True, True, 2), busbw[0]
    assert set(doc["charts"]["per_dollar"]) == {"allreduce", "gemm"}
    assert doc["errors"] == []


def test_every_figure_is_the_median_of_the_jobs_repeats(pipeline, capsys):
    capsys.readouterr()
    assert main(["report", RUN, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    repeats = {(r["benchmark"], r["metric_key"]): r["repeats"] for r in rows}
    assert repeats == {("allreduce", "busbw_max{placement=in-place}"): 3, ("gemm", "tflops_max{dtype=bf16}"): 4,
                       ("gemm", "tflops_max{dtype=fp32}"): 4}
    for r in rows:
        assert r["low"] <= r["value"] <= r["high"] and r["spread_pct"] == pytest.approx(
            (r["high"] - r["low"]) / r["value"] * 100)
        assert r["unstable"] == (r["spread_pct"] > 10)


def test_advise_finds_the_allreduce_results_that_results_lists(pipeline, capsys):
    capsys.readouterr()
    assert main(["advise", RUN]) == 0
    out = capsys.readouterr().out
    assert "succeeded allreduce results" not in out  # "no (valid) succeeded allreduce results in these runs"
    assert "allreduce (TB all-reduced per $): best per dollar: graviton (c7gn.16xlarge)" in out
    assert "gemm (TFLOP (bf16) per $): best per dollar: graviton (m7g.xlarge)" in out
