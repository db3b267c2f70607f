"""The robust band, the baseline, the straggler cost: rackform/acceptance/verdicts.py."""

from __future__ import annotations

import math

import pytest

from rackform.acceptance.verdicts import (
    BASELINE_FRACTION,
    MIN_SHORTFALL_PCT,
    NodeFigure,
    band,
    judge,
    judge_all,
    straggler_cost,
)
from rackform.reference.baselines import BASELINES_PATH, BaselineData, load_baselines

NONE = BaselineData(about="", sources={}, baselines=())


def figures(values: list[float], *, test: str = "gemm", metric: str = "tflops_max", unit: str = "TFLOP/s",
            headline: str = "bf16") -> list[NodeFigure]:
    return [NodeFigure(node=i, instance_id=f"i-{i:04d}", host=f"h{i}", test=test, metric=metric, headline=headline,
                       value=v, unit=unit) for i, v in enumerate(values)]


def test_band_is_median_and_mad_and_ignores_the_outlier_it_finds() -> None:
    b = band([100, 101, 99, 100.5, 60])
    assert b is not None
    assert b.median == 100 and b.mad == 1.0
    # the standard deviation would be ~18 with the 60 in it; the MAD band stays tight: max(3.5 x 1.4826 x 1, 5%)
    assert b.floor == pytest.approx(100 - 5.189, abs=0.01)
    assert b.spread_pct == pytest.approx(41.0)


def test_tight_fleet_needs_the_minimum_shortfall() -> None:
    # MAD 0.1: 3.5 scaled MADs is 0.5%; a node 2% low is still within MIN_SHORTFALL_PCT
    v = judge(figures([100, 100.1, 99.9, 100, 98]), instance_type="m7g.xlarge", baselines=NONE)
    assert v.outliers == () and v.accepted
    v = judge(figures([100, 100.1, 99.9, 100, 100 - MIN_SHORTFALL_PCT - 1]), instance_type="m7g.xlarge",
              baselines=NONE)
    assert [o.node for o in v.outliers] == [4] and v.outliers[0].reasons == ("band",)
    assert v.outliers[0].shortfall_pct == pytest.approx(MIN_SHORTFALL_PCT + 1)


def test_a_band_of_nodes_that_disagree_is_unsteady_not_accepted() -> None:
    # MAD 10: the band's floor is 48, so 60 is no outlier; but the nodes it keeps are 70% apart
    v = judge(figures([100, 130, 95, 110, 60]), instance_type="x", baselines=NONE)
    assert v.outliers == () and v.unsteady and not v.accepted and v.kept_spread_pct == pytest.approx(70)
    # a tight group with one slow node: the outlier is named, the rest are steady
    v = judge(figures([100, 101, 99, 100, 60]), instance_type="x", baselines=NONE)
    assert [o.node for o in v.outliers] == [4] and not v.unsteady and v.kept_spread_pct == pytest.approx(2)


@pytest.mark.parametrize("n", [3, 4, 8, 16, 64])
def test_one_slow_node_among_n_is_named(n: int) -> None:
    values = [100 + (i % 3) for i in range(n)]
    values[n // 2] = 70
    v = judge(figures(values), instance_type="x", baselines=NONE)
    assert [(o.node, o.instance_id) for o in v.outliers] == [(n // 2, f"i-{n // 2:04d}")]


def test_lower_is_better_metrics_flag_the_high_side() -> None:
    v = judge(figures([10, 10.2, 9.8, 10, 14], metric="latency_us", unit="us"), instance_type="x", baselines=NONE)
    assert [o.node for o in v.outliers] == [4] and v.outliers[0].shortfall_pct == pytest.approx(40)
    assert not v.higher_is_better


def test_two_nodes_make_no_band_and_say_so() -> None:
    v = judge(figures([100, 97]), instance_type="x", baselines=NONE)
    assert v.band is not None and v.band.floor is None and v.outliers == () and v.accepted
    assert any("too few for a band" in n for n in v.notes)
    # of two nodes more than MIN_SHORTFALL_PCT apart, the slower sets the pace and is named
    v = judge(figures([100, 50]), instance_type="x", baselines=NONE)
    assert [(o.node, o.reasons) for o in v.outliers] == [(1, ("pair",))]
    assert v.outliers[0].shortfall_pct == pytest.approx(100 / 3)  # below the median of the two, as the line says
    assert v.baseline is None and v.baseline_floor is None


def test_failed_measurement_is_an_outlier_not_a_number() -> None:
    v = judge(figures([100, 101, math.nan, 99]), instance_type="x", baselines=NONE)
    assert [(o.node, o.reasons) for o in v.outliers] == [(2, ("failed",))]
    assert v.band is not None and v.band.nodes == 3


def test_repeats_of_a_node_take_their_median() -> None:
    fs = figures([100, 100, 100, 100]) + figures([100, 100, 100, 40]) + figures([100, 100, 100, 41])
    v = judge(fs, instance_type="x", baselines=NONE)
    assert [f.value for f in v.figures] == [100, 100, 100, 41]


def test_the_published_p5_baseline_catches_a_slow_two_node_collective() -> None:
    data = load_baselines()
    p5 = data.find("p5.48xlarge", "group-collective", "busbw_max", 2)
    assert p5 is not None and p5.value == 479.28 and data.sources[p5.source].url.startswith("https://github.com/aws")
    slow = figures([300], test="group-collective", metric="busbw_max", unit="GB/s", headline="busbw")
    v = judge(slow, instance_type="p5.48xlarge", baselines=data, spans=2)
    assert v.baseline == p5 and v.baseline_floor == pytest.approx(479.28 * BASELINE_FRACTION)
    assert [o.reasons for o in v.outliers] == [("baseline",)]
    assert v.notes == ()  # one group figure: no band to miss
    fine = figures([470], test="group-collective", metric="busbw_max", unit="GB/s", headline="busbw")
    assert judge(fine, instance_type="p5.48xlarge", baselines=data, spans=2).accepted
    # the same figure on a type with no published figure, or across another node count: the verdict says so
    v = judge(slow, instance_type="p5en.48xlarge", baselines=data, spans=2)
    assert v.accepted and v.baseline is None and v.notes == ()
    assert judge(slow, instance_type="p5.48xlarge", baselines=data, spans=4).baseline is None


def test_a_uniformly_slow_group_passes_the_band_but_not_the_baseline() -> None:
    data = BaselineData.model_validate({"about": "", "sources": load_baselines().sources, "baselines": [
        {"instance_type": "t", "test": "gemm", "metric": "tflops_max", "unit": "TFLOP/s", "nodes": 1,
         "value": 100, "source": "awsome-nccl-tests"}]})
    v = judge(figures([60, 61, 59, 60]), instance_type="t", baselines=data)
    assert v.band is not None and v.band.floor is not None
    assert [o.reasons for o in v.outliers] == [("baseline",)] * 4


def test_baselines_file_cites_known_sources(tmp_path) -> None:
    text = BASELINES_PATH.read_text().replace('"source": "awsome-nccl-tests"', '"source": "nowhere"', 1)
    assert "nowhere" in text
    (tmp_path / "b.json").write_text(text)
    with pytest.raises(ValueError, match="unknown source 'nowhere'"):
        load_baselines(tmp_path / "b.json")


def test_judge_all_splits_by_test_metric_and_size() -> None:
    fs = figures([1, 1, 1]) + figures([5, 5, 5], test="cpu", metric="transfer_mib_per_s", unit="MiB/s",
                                      headline="memory") + figures([2, 2, 2], headline="fp32")
    assert [(v.test, v.headline) for v in judge_all(fs, instance_type="x", baselines=NONE)] == \
        [("gemm", "bf16"), ("cpu", "memory"), ("gemm", "fp32")]


def test_straggler_cost_arithmetic() -> None:
    # median 100, slowest 70: 30% of 4 x 55.04 $/h lost; replacing node 3 leaves 98 as the slowest: 2% still lost
    v = judge(figures([100, 102, 98, 70, 101]), instance_type="x", baselines=NONE)
    cost = straggler_cost([v], 5 * 55.04)
    assert cost is not None and cost.slowest_node == 3 and cost.slowest_instance_id == "i-0003"
    assert cost.slowdown == pytest.approx(0.30)
    assert cost.lost_usd_per_hour == pytest.approx(0.30 * 275.2)
    assert cost.slowdown_after_replacing == pytest.approx(0.02)
    assert cost.saving_usd_per_hour == pytest.approx(0.28 * 275.2)


def test_straggler_cost_picks_the_costliest_metric_and_keeps_unknown_prices_unknown() -> None:
    a = judge(figures([100, 100, 90, 100]), instance_type="x", baselines=NONE)
    b = judge(figures([10, 10, 10, 5], test="memory", metric="bandwidth", unit="GB/s", headline="memory"),
              instance_type="x", baselines=NONE)
    cost = straggler_cost([a, b], None)
    assert cost is not None and (cost.test, cost.slowest_node) == ("memory", 3)
    assert cost.slowdown == pytest.approx(0.5) and cost.lost_usd_per_hour is None and cost.saving_usd_per_hour is None


def test_latency_straggler_is_priced_by_pace() -> None:
    v = judge(figures([10, 10, 10, 20], metric="latency_us", unit="us"), instance_type="x", baselines=NONE)
    cost = straggler_cost([v], 100.0)
    assert cost is not None and cost.slowdown == pytest.approx(0.5) and cost.lost_usd_per_hour == pytest.approx(50)
