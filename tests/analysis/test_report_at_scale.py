"""Issue 23 item 4 and 2: the report of a run with thousands of records has no quadratic term and holds no record
once it has made its rows (records may come as a one-shot stream from ResultStore.iter_records)."""

from __future__ import annotations

import datetime as dt
import gc
import weakref
from collections.abc import Iterator

from rackform.analysis import report as rp
from rackform.reference.peaks import limits_for
from workloads.results import Metric, ResultRecord

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def record(run_id: str, rack: str, metrics: tuple[Metric, ...], status: str = "succeeded") -> ResultRecord:
    return ResultRecord(run_id=run_id, benchmark="gemm", tool="torch", rack=rack, node_group="h100", tier="gpu",
                        instance_type="p5.48xlarge", node_count=1, status=status, metrics=metrics, started_at=T0,
                        ended_at=T0 + dt.timedelta(seconds=30), price_usd_per_hour=55.04)


def gemm(run_id: str, rack: str, tflops: float) -> ResultRecord:
    return record(run_id, rack, (Metric(name="tflops_max", value=tflops, unit="TFLOP/s", labels={"dtype": "bf16"}),))


class CountedChanges(tuple):  # type: ignore[type-arg]
    """The report's changes, counting how often something walks through them."""

    walks = 0

    def __iter__(self) -> Iterator[rp.ResultChange]:
        CountedChanges.walks += 1
        return super().__iter__()


def test_each_row_finds_its_change_without_walking_every_change():
    n = 200
    current = rp.build_report([gemm("cur", f"rack{i}", 700.0) for i in range(n)], limits_of=limits_for,
                              baseline=[gemm("base", f"rack{i}", 600.0 + i) for i in range(n)],
                              baseline_run_id="base")
    report = rp.Report(current.run_id, "base", 5.0, current.rows, CountedChanges(current.changes), current.series)
    CountedChanges.walks = 0
    found = [report.change_for(r) for r in report.rows]
    assert CountedChanges.walks <= 1  # an index built once, not a scan per row (n x n before)
    assert [c.baseline if c else None for c in found] == [600.0 + int(r.rack[4:]) for r in report.rows]
    assert all(c and c.rack == r.rack and c.metric_key == r.metric_key
               for c, r in zip(found, report.rows, strict=True))


def test_a_status_change_is_found_for_a_row_without_a_metric():
    failed = record("cur", "rack0", (), status="failed")
    report = rp.build_report([failed], limits_of=limits_for, baseline=[gemm("base", "rack0", 700.0)],
                             baseline_run_id="base")
    (row,) = report.rows
    change = report.change_for(row)
    assert change is not None and change.metric == "status" and change.regression


def test_the_report_takes_a_stream_and_keeps_no_record_of_it():
    alive: list[weakref.ref[ResultRecord]] = []

    def stream() -> Iterator[ResultRecord]:
        for i in range(50):
            r = gemm("cur", f"rack{i:02d}", 650.0 + i)
            alive.append(weakref.ref(r))
            yield r

    report = rp.build_report(stream(), limits_of=limits_for)
    gc.collect()
    assert report.run_id == "cur" and len(report.rows) == 50
    assert [r.rack for r in report.rows] == [f"rack{i:02d}" for i in range(50)]
    assert sum(ref() is not None for ref in alive) == 0  # every record dropped once it became its row


def test_the_limits_of_an_instance_type_are_built_once_per_report():
    asked: list[str] = []

    def limits_of(instance_type: str):  # noqa: ANN202 - limits_for's own return
        asked.append(instance_type)
        return limits_for(instance_type)

    records = [gemm("cur", f"rack{i}", 700.0) for i in range(50)]
    current = rp.build_report(records, limits_of=limits_of, baseline=records, baseline_run_id="cur")
    assert len(current.rows) == 50 and asked == ["p5.48xlarge"]  # once for the run and its baseline
    asked.clear()
    assert len(rp.report_rows(records, limits_of)) == 50 and asked == ["p5.48xlarge"]
