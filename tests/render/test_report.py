"""`rackform report` from moto's S3 filled with constructed records: every % of limit and per-dollar figure below is
worked out by hand from the record and the published peaks, never read back from the code under test."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from rackform.reference.peaks import limits_for
from rackform.analysis import report as rp
from rackform.render import html as rh
from rackform.render import report as rr
from workloads.results import Metric, ResultRecord
from workloads.store import ResultStore

from tests.records import BUS_16, GIB, MIB, allreduce_metrics, m, record
from tests.render.conftest import BUCKET, DEMO, cli


def rows_by(report_json: dict, benchmark: str, group: str, metric: str) -> dict:
    (row,) = [r for r in report_json["rows"]
              if (r["benchmark"], f"{r['rack']}/{r['node_group']}", r["metric"]) == (benchmark, group, metric)]
    return row


def test_report_figures_against_limits_and_prices(s3, capsys):
    code, out, _ = cli(capsys, "report", "cur", "--json", "--spec", str(DEMO))
    assert code == 0
    doc = json.loads(out)
    gpu = rows_by(doc, "allreduce", "gpu/h100", "busbw")
    # busbw_max 225 x 1.875 = 421.875 GB/s; 2 x p5: 3200 Gbps / 8 = 400 GB/s.
    assert gpu["value"] == pytest.approx(421.875) and gpu["limit"] == 400.0
    assert gpu["pct_of_limit"] == pytest.approx(105.46875)
    assert any("hierarchical" in n for n in gpu["notes"])  # above line rate at 2 nodes is not an error
    # TB all-reduced per $: 225 GB/s x 3600 / 1000 / 110.08 $/h
    assert gpu["per_dollar"] == pytest.approx(810 / 110.08) and gpu["per_dollar_unit"] == "TB/$"
    trn = rows_by(doc, "allreduce", "trainium/workers", "busbw")
    assert trn["limit"] == 100.0 and trn["pct_of_limit"] == pytest.approx(50 * 2 * 63 / 64)  # 800 Gbps / 8
    assert trn["per_dollar"] == pytest.approx(180 / 43.0)

    bf16 = rows_by(doc, "gemm", "gpu/h100", "bf16")
    assert bf16["limit"] == 989.0 and bf16["pct_of_limit"] == pytest.approx(700 / 989 * 100)
    # per instance: 700 TFLOP/s per device x 8 H100 x 3600 s / 55.04 $/h
    assert bf16["per_dollar"] == pytest.approx(700 * 8 * 3600 / 55.04)
    fp32 = rows_by(doc, "gemm", "gpu/h100", "fp32")
    assert fp32["limit"] is None and fp32["pct_of_limit"] is None and fp32["limit_basis"]  # unknown, not 0
    cpu_gemm = rows_by(doc, "gemm", "graviton/head", "bf16")
    assert cpu_gemm["limit"] is None and cpu_gemm["per_dollar"] == pytest.approx(0.5 * 3600 / 0.1632)

    tokens = rows_by(doc, "inference", "gpu/h100", "tokens/s")
    assert tokens["per_dollar"] == pytest.approx(2000 * 8 * 3600 / 55.04)
    p50 = rows_by(doc, "inference", "gpu/h100", "p50")
    assert p50["limit_basis"] is None and p50["per_dollar_unit"] is None  # n/a, not unknown

    read = rows_by(doc, "storage", "graviton/head", "seq read")
    fsx_mb_s = 125 * 2400 / 1024  # 292.97 MB/s
    assert read["limit"] == pytest.approx(fsx_mb_s) and read["pct_of_limit"] == pytest.approx(250 / fsx_mb_s * 100)
    assert read["per_dollar"] == pytest.approx(250 * 3600 / 1000 / 0.1632) and read["per_dollar_unit"] == "GB/$"

    events = rows_by(doc, "cpu", "graviton/head", "cpu")
    assert events["usd_per_hour"] is None and events["per_dollar"] is None  # unknown price: never 0
    assert events["per_dollar_basis"] == "price unknown"

    (fabric,) = [r for r in doc["rows"] if r["benchmark"] == "fabric"]
    assert fabric["status"] == "failed" and "no provider" in fabric["reason"]


def test_storage_limit_is_unknown_without_a_plan(s3, capsys):
    code, out, _ = cli(capsys, "report", "cur", "--json")
    read = rows_by(json.loads(out), "storage", "graviton/head", "seq read")
    assert code == 0 and read["limit"] is None and read["pct_of_limit"] is None and "FSx" in read["limit_basis"]


def test_terminal_table_shows_unknowns_failures_and_the_rehearsal_caveat(s3, capsys):
    code, out, _ = cli(capsys, "report", "cur")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("LOCAL REHEARSAL") and lines[-1].startswith("LOCAL REHEARSAL")
    cpu_line = next(l for l in lines if l.startswith("cpu "))
    assert "m7g.xlarge [local]" in cpu_line and cpu_line.count("unknown") == 2  # $/hour and per $
    assert " 0 " not in cpu_line
    fabric = next(l for l in lines if l.startswith("fabric "))
    assert "failed" in fabric and "no provider" in fabric
    assert "1 record(s) did not succeed: fabric on graviton/cpu (failed)" in out


def test_regression_against_a_baseline_exits_1_and_an_improvement_is_not_flagged(s3, capsys, tmp_path):
    code, out, _ = cli(capsys, "report", "cur", "--baseline", "base", "--json", "--csv", str(tmp_path / "r.csv"))
    assert code == 1
    doc = json.loads(out)
    changes = {(c["benchmark"], c["rack"], c["metric"]): c for c in doc["changes"]}
    busbw = changes[("allreduce", "gpu", "busbw")]  # 250 -> 225 GB/s algbw: -10%
    assert busbw["change_pct"] == pytest.approx(-10.0) and busbw["regression"] is True
    p50 = changes[("inference", "gpu", "p50")]  # 10 -> 9 ms: latency down 10% is better
    assert p50["change_pct"] == pytest.approx(-10.0) and p50["regression"] is False
    gemm = changes[("gemm", "gpu", "bf16")]
    assert gemm["change_pct"] == pytest.approx(10 / 690 * 100) and gemm["regression"] is False
    assert doc["regressions"] == 1
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    gpu = next(r for r in rows if (r["benchmark"], r["rack"], r["metric"]) == ("allreduce", "gpu", "busbw"))
    assert gpu["regression"] == "True" and float(gpu["change_pct"]) == pytest.approx(-10.0)
    cpu = next(r for r in rows if r["benchmark"] == "cpu")
    assert cpu["per_dollar"] == "" and cpu["usd_per_hour"] == "" and cpu["measured_on"].startswith("local rehearsal")
    # A higher threshold lets the same 10% drop pass; so does a latency rise within it.
    assert cli(capsys, "report", "cur", "--baseline", "base", "--threshold", "12")[0] == 0


def test_latency_rise_is_a_regression_and_a_new_failure_too():
    def rows(p50: float, status: str) -> list[rp.Row]:
        recs = [record("r", "inference", "gpu", "h100", "gpu", "p5.48xlarge", [m("latency_p50_ms", p50, "ms")],
                       price=55.04),
                record("r", "cpu", "graviton", "head", "graviton", "m7g.xlarge",
                       [m("events_per_second", 1.0, "events/s")] if status == "succeeded" else [], price=0.16,
                       status=status)]
        return rp.report_rows(recs, limits_for)

    changes = {c.metric: c for c in rp.compare(rows(11.0, "failed"), rows(10.0, "succeeded"), 5.0)}
    assert changes["p50"].regression and changes["p50"].change_pct == pytest.approx(10.0)
    assert changes["status"].regression and "failed now" in changes["status"].note


def test_no_records_exits_1(s3, capsys):
    code, _, err = cli(capsys, "report", "nothing-here")
    assert code == 1 and "no records for run nothing-here" in err


def test_html_is_self_contained_with_the_three_plots(s3, capsys, tmp_path):
    path = tmp_path / "out" / "report.html"
    code, _, _ = cli(capsys, "report", "cur", "--html", str(path), "--spec", str(DEMO))
    assert code == 0
    page = path.read_text()
    assert "LOCAL REHEARSAL" in page and "<style>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(img.startswith("iVBORw0KGgo") for img in images)  # PNG signature


def test_figures_carry_the_expected_series(s3):
    store = ResultStore(BUCKET, s3)
    report = rp.build_report(store.records("cur"), limits_of=limits_for)

    (ax,) = rh.busbw_figure(report).axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"gpu: gpu/h100 (p5.48xlarge x2)", "trainium: trainium/workers (trn1.32xlarge x2)"}
    gpu = lines["gpu: gpu/h100 (p5.48xlarge x2)"]
    assert list(gpu.get_xdata()) == [MIB, GIB]
    assert list(gpu.get_ydata()) == pytest.approx([100 * BUS_16, 225 * BUS_16])
    assert ax.get_xscale() == "log"

    fig = rh.per_dollar_figure(report)
    panels = {a.get_title(): a for a in fig.axes}
    assert set(panels) == {"allreduce (TB/$)", "gemm (TFLOP/$)", "inference (tokens/$)", "storage (GB/$)",
                           "cpu (events/$)"}
    gemm = panels["gemm (TFLOP/$)"]
    bars = {t.get_text(): p.get_height() for t, p in zip(gemm.get_xticklabels(), gemm.patches)}
    assert bars == pytest.approx({"gpu gpu/h100": 700 * 8 * 3600 / 55.04,
                                  "graviton graviton/head": 0.5 * 3600 / 0.1632})
    cpu = panels["cpu (events/$)"]
    assert len(cpu.patches) == 0 and "graviton graviton/head [local]" in cpu.get_xlabel()  # unknown: no bar, named

    (pct,) = rh.pct_figure(report).axes
    drawn = {t.get_text(): p.get_width() for t, p in zip(pct.get_yticklabels(), pct.patches)}
    assert drawn == pytest.approx({"allreduce busbw gpu gpu/h100": 225 * BUS_16 / 400 * 100,
                                   "allreduce busbw trainium trainium/workers": 50 * 2 * 63 / 64,
                                   "gemm bf16 gpu gpu/h100": 700 / 989 * 100})


def test_local_storage_is_not_held_against_fsx():
    # the local executor's fio ran on a temporary directory through the page cache: no FSx figure applies
    from rackform.cli import checked_plan

    fsx = checked_plan(str(DEMO)).storage.fsx_lustre
    local = record("r", "storage", "graviton", "head", "graviton", "m7g.xlarge",
                   [m("read_bw", 900.0, "MB/s", test="seq-read")], price=0.1632, local=True)
    [row] = [r for r in rp.record_rows(local, limits_for("m7g.xlarge"), fsx) if r.metric_key.startswith("read_bw")]
    assert row.limit is None and "not on FSx" in row.limit_basis and row.pct_of_limit is None


def test_local_runs_are_not_scaled_by_accelerator_count():
    local = record("r", "inference", "gpu", "h100", "gpu", "p5.48xlarge", [m("tokens_per_second", 300.0, "tokens/s")],
                   price=55.04, local=True)
    [row] = [r for r in rp.record_rows(local, limits_for("p5.48xlarge"), None) if r.metric == "tokens/s"]
    assert row.per_dollar == pytest.approx(300.0 * 3600 / 55.04)  # this machine's one CPU, not 8 GPUs


def test_one_node_gpu_allreduce_is_held_against_one_direction_of_nvlink():
    one = record("r", "allreduce", "gpu", "h100", "gpu", "p5.48xlarge", allreduce_metrics({GIB: 300.0}, 2 * 7 / 8),
                 nodes=1, price=55.04)
    [row] = [r for r in rp.record_rows(one, limits_for("p5.48xlarge"), None) if r.metric == "busbw"]
    assert row.limit == 450.0  # NVLink 4: 900 GB/s both directions
    assert row.pct_of_limit == pytest.approx(300.0 * 2 * 7 / 8 / 450.0 * 100)


def test_changed_hardware_is_shown_but_not_flagged():
    before = record("a", "gemm", "gpu", "h100", "gpu", "p5.48xlarge", [m("tflops_max", 700.0, "TFLOP/s",
                                                                         dtype="bf16")], price=55.04)
    after = record("b", "gemm", "gpu", "h100", "gpu", "p4d.24xlarge", [m("tflops_max", 250.0, "TFLOP/s",
                                                                          dtype="bf16")], price=21.96)
    rows = lambda rec: rp.record_rows(rec, limits_for(rec.instance_type), None)  # noqa: E731
    [change] = [c for c in rp.compare(rows(after), rows(before), 5.0) if c.metric == "bf16"]
    assert change.change_pct == pytest.approx((250 - 700) / 700 * 100) and not change.regression
    assert "hardware changed" in change.note


# --- validity: repeats, node health, transport, figures that are never dropped ----------------------------------

def with_fields(rec: ResultRecord, **fields) -> ResultRecord:
    return ResultRecord.model_validate({**rec.model_dump(), **fields})


def repeated(name: str, values: list[float], unit: str, **labels: str) -> list[Metric]:
    return [Metric(name=name, value=v, unit=unit, labels={**labels, "repeat": str(i)}) for i, v in enumerate(values)]


def test_repeats_report_the_median_min_and_max_and_a_spread_over_10_percent_is_unstable():
    rec = record("r", "gemm", "gpu", "h100", "gpu", "p5.48xlarge",
                 repeated("tflops_max", [700.0, 640.0, 720.0], "TFLOP/s", dtype="bf16")
                 + repeated("tflops_max", [400.0, 404.0, 398.0], "TFLOP/s", dtype="fp32"), price=55.04)
    bf16, fp32 = rp.record_rows(rec, limits_for("p5.48xlarge"), None)
    assert (bf16.value, bf16.low, bf16.high, bf16.repeats) == (700.0, 640.0, 720.0, 3)
    assert bf16.spread_pct == pytest.approx(80 / 700 * 100) and bf16.unstable
    assert any("unstable" in n for n in bf16.notes)
    assert fp32.spread_pct == pytest.approx(6 / 400 * 100) and not fp32.unstable
    rows, header = rr.summary_table(rp.build_report([rec], limits_of=limits_for))
    assert [str(r[header.index("spread")]) for r in rows] == ["11.43% (n=3)", "1.50% (n=3)"]


def test_a_repeated_sweep_is_drawn_as_the_median_per_size_not_a_zigzag_through_every_repeat():
    sweeps = {"1": {MIB: 10.0, GIB: 40.0}, "2": {MIB: 12.0, GIB: 44.0}, "3": {MIB: 11.0, GIB: 30.0}}
    metrics = [x.model_copy(update={"labels": {**x.labels, "repeat": r}})
               for r, sweep in sweeps.items() for x in allreduce_metrics(sweep, BUS_16)]
    rec = record("r", "allreduce", "gpu", "h100", "gpu", "p5.48xlarge", metrics, nodes=2, price=110.08)
    [series] = rp.busbw_series([rec])
    assert series.sizes == (MIB, GIB)
    assert series.busbw == pytest.approx((11.0 * BUS_16, 40.0 * BUS_16))


def test_a_node_that_failed_its_health_check_gives_no_figure_to_plots_or_advice():
    from rackform.analysis.advise import advise_benchmark

    sick = with_fields(record("r", "gemm", "gpu", "h100", "gpu", "p5.48xlarge",
                              [m("tflops_max", 900.0, "TFLOP/s", dtype="bf16")], price=55.04),
                       validity="invalid", invalid_reason="node 0: accelerators: 7 of 8 planned GPUs visible")
    well = with_fields(record("r", "gemm", "graviton", "head", "graviton", "m7g.xlarge",
                              [m("tflops_max", 0.5, "TFLOP/s", dtype="bf16")], price=0.1632))
    report = rp.build_report([sick, well], limits_of=limits_for)
    [bad] = [r for r in report.rows if r.tier == "gpu" and r.metric == "bf16"]
    assert bad.healthy is False and not bad.valid and any("7 of 8 planned GPUs" in n for n in bad.notes)
    assert [b["tier"] for b in rr.per_dollar_chart_data(report)["gemm"]] == ["graviton"]
    assert all("gpu" not in d["label"] for d in rr.pct_chart_data(report))
    advice = advise_benchmark("training", "gemm", report.rows)
    assert advice.winner.tier == "graviton" and [r.tier for r in advice.evidence] == ["graviton"]
    rows, header = rr.summary_table(report)
    assert [str(r[header.index("health")]) for r in rows] == ["failed", "ok"]


def test_a_collective_over_sockets_is_not_held_against_the_efa_line_rate_and_is_flagged():
    rec = with_fields(record("r", "allreduce", "gpu", "h100", "gpu", "p5.48xlarge",
                             allreduce_metrics({GIB: 5.0}, BUS_16), nodes=2, price=110.08), fabric="socket")
    [row] = rp.record_rows(rec, limits_for("p5.48xlarge"), None)
    assert row.transport == "socket" and row.flagged
    assert row.limit is None and row.pct_of_limit is None and "not EFA" in row.limit_basis
    efa = with_fields(rec, fabric="efa", efa_devices=32)
    [row] = rp.record_rows(efa, limits_for("p5.48xlarge"), None)
    assert row.limit == 400.0 and not row.flagged and row.transport == "efa x32"
    report = rp.build_report([rec], limits_of=limits_for)
    rows, header = rr.summary_table(report)
    assert rows[0][header.index("transport")].style == "bold red"  # red on a terminal
    assert 'class="flag"' in rh.render_html(report)


def test_a_succeeded_benchmark_without_its_headline_is_an_error_not_an_omission(s3, capsys):
    store = ResultStore(BUCKET, s3)
    # the out-of-place busbw_max is another figure than the in-place one the benchmark declares
    store.put_record(record("odd", "allreduce", "gpu", "h100", "gpu", "p5.48xlarge",
                            [Metric(name="busbw_max", value=3.0, unit="GB/s", labels={"placement": "out-of-place"})],
                            nodes=2, price=110.08))
    code, out, _ = cli(capsys, "report", "odd")
    assert code == 1
    assert ("error: allreduce on gpu/h100: succeeded, but none of its headline metrics "
            "(busbw_max{placement=in-place}) is in the record (it has busbw_max{placement=out-of-place})") in out


def test_the_table_fits_a_narrow_terminal_and_wide_shows_every_column(s3, capsys, monkeypatch):
    from rackform.render import text

    monkeypatch.setattr(text, "terminal_width", lambda stream=None: 100)  # a terminal 100 characters wide
    code, out, _ = cli(capsys, "report", "cur")
    assert code == 0 and all(len(line) <= 100 for line in out.splitlines())
    # Every essential column stays, each of its values whole on a line, in whichever layout fits (health, % of
    # limit and the per-dollar unit were once left out at this width, their own list naming them essential).
    body = out.split("\n\n", 1)[1]  # below the verdicts, which speak of some of these in prose
    rows, header = rr.summary_table(rp.build_report(ResultStore(BUCKET, s3).records("cur"), limits_of=limits_for))
    essential = [h for h in header if h in (*rr.ESSENTIAL, "instance", "nodes", "$/hour")]
    assert [h for h in essential[1:] if h not in body] == []  # the first names a row (a block's heading)
    lines = body.splitlines()
    cells = {str(r[header.index(h)]) for r in rows for h in essential}
    assert [c for c in cells if not any(c in line for line in lines)] == []
    # A footnote points at a marker the table shows.
    notes = [line.split()[0] for line in lines if re.match(r"\[\d+\] ", line)]
    assert notes and all(any(n in line for line in lines if not line.startswith(n)) for n in notes)
    code, out, _ = cli(capsys, "report", "cur", "--wide")
    assert "left out" not in out and "notes" in out.split("\n\n")[1].splitlines()[0]
