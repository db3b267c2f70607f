"""Issue 25 item 5: one colour per tier in every chart of the report: the all-reduce lines, the per-dollar bars and
the % of limit bars draw a tier in the same colour; a local rehearsal's bars are hatched, not recoloured. A plot
with nothing to show is left out of the HTML report."""

from __future__ import annotations

from matplotlib.colors import to_rgba

from rackform.analysis import report as rp
from rackform.reference.peaks import limits_for
from rackform.render import html as rh
from tests.render.conftest import BUCKET
from workloads.store import ResultStore


def test_every_chart_draws_a_tier_in_its_one_colour(s3):
    report = rp.build_report(ResultStore(BUCKET, s3).records("cur"), limits_of=limits_for)
    seen: dict[str, set[tuple[float, ...]]] = {}

    def saw(label: str, colour) -> None:
        seen.setdefault(label.split()[0].rstrip(":"), set()).add(tuple(to_rgba(colour)))

    (ax,) = rh.busbw_figure(report).axes
    for line in ax.get_lines():
        saw(line.get_label(), line.get_color())
    for panel in rh.per_dollar_figure(report).axes:
        for tick, bar in zip(panel.get_xticklabels(), panel.patches, strict=True):
            saw(tick.get_text(), bar.get_facecolor())
            assert (bar.get_hatch() == "//") == tick.get_text().endswith("[local]")
    (pct,) = rh.pct_figure(report).axes
    for tick, bar in zip(pct.get_yticklabels(), pct.patches, strict=True):
        saw(tick.get_text().split(" ", 2)[2], bar.get_facecolor())
    assert set(seen) == {"gpu", "trainium", "graviton"}
    assert all(colours == {to_rgba(rh.TIER_COLOURS[tier])} for tier, colours in seen.items())
    assert len({rh.TIER_COLOURS[t] for t in seen}) == 3  # and no two tiers alike


def test_plots_with_nothing_to_show_are_left_out_of_the_html(s3):
    store = ResultStore(BUCKET, s3)
    full = rh.render_html(rp.build_report(store.records("cur"), limits_of=limits_for))
    assert full.count("data:image/png;base64,") == 3
    # the cpu job alone: no all-reduce, no price, no published limit
    cpu = [r for r in store.records("cur") if r.benchmark == "cpu"]
    page = rh.render_html(rp.build_report(cpu, limits_of=limits_for))
    assert page.count("data:image/png;base64,") == 0 and "events/s" in page
    assert "Bus bandwidth by message size" not in page and "% of the physical limit" not in page
