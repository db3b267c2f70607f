"""Issue 23 item 4: the HTML report's plots stay bounded at thousands of jobs: at most MAX_BARS bars and MAX_LINES
lines, what was left out said under the chart; the table keeps every row."""

from __future__ import annotations

import datetime as dt

from rackform.analysis import report as rp
from rackform.reference.peaks import limits_for
from rackform.render import html as rh
from workloads.results import Metric, ResultRecord

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
SIZES = (1 << 20, 1 << 30)


def record(benchmark: str, rack: str, metrics: list[Metric], *, nodes: int, price: float | None) -> ResultRecord:
    return ResultRecord(run_id="big", benchmark=benchmark, tool="torch", rack=rack, node_group="h100", tier="gpu",
                        instance_type="p5.48xlarge", node_count=nodes, status="succeeded", metrics=tuple(metrics),
                        started_at=T0, ended_at=T0 + dt.timedelta(seconds=30), price_usd_per_hour=price)


def busbw(peak: float) -> list[Metric]:
    """An in-place all-reduce sweep over two sizes and its headline, as torchbench writes them."""
    rows = [Metric(name="busbw", value=v, unit="GB/s", size_bytes=s, labels={"placement": "in-place"})
            for s, v in zip(SIZES, (peak / 10, peak), strict=True)]
    return [*rows, rows[-1].model_copy(update={"name": "busbw_max"})]


JOBS = 300


def many_jobs() -> rp.Report:
    records = []
    for i in range(JOBS):
        gemm = Metric(name="tflops_max", value=100.0 + i, unit="TFLOP/s", labels={"dtype": "bf16"})
        records.append(record("gemm", f"rack{i:03d}", [gemm], nodes=1, price=55.04 if i else None))
        records.append(record("allreduce", f"rack{i:03d}", busbw(100.0 + i), nodes=2, price=110.08))
    return rp.build_report(records, limits_of=limits_for)


def test_plots_of_a_large_run_are_capped_and_say_what_they_left_out():
    report = many_jobs()
    assert len(report.rows) == 2 * JOBS  # the table keeps every row

    (pct,) = rh.pct_figure(report).axes
    assert len(pct.patches) == rh.MAX_BARS
    # the lowest % of limit drawn: gemm at 100..139 TFLOP/s of 989
    assert sorted(p.get_width() for p in pct.patches)[-1] < 140 / 989 * 100 + 1e-9
    assert f"the lowest {rh.MAX_BARS} of {2 * JOBS} drawn" in pct.get_xlabel()
    assert rh.pct_figure(report).get_size_inches()[1] <= 0.4 * rh.MAX_BARS + 1.5

    panels = {a.get_title(): a for a in rh.per_dollar_figure(report).axes}
    gemm = panels["gemm (TFLOP/$)"]
    assert len(gemm.patches) == rh.MAX_BARS
    assert f"the best {rh.MAX_BARS} of {JOBS - 1} drawn" in gemm.get_xlabel()
    assert "unknown: gpu rack000/h100" in gemm.get_xlabel()

    (bus,) = rh.busbw_figure(report).axes
    assert len(bus.get_lines()) == rh.MAX_LINES
    assert f"the first {rh.MAX_LINES} of {JOBS} jobs drawn" in bus.get_xlabel()


def test_the_png_of_a_large_run_stays_small():
    report = many_jobs()
    sizes = [len(rh.png_base64(f(report))) for f in (rh.busbw_figure, rh.per_dollar_figure, rh.pct_figure)]
    assert max(sizes) < 600_000  # a 300-bar chart was 30,000 pixels high
