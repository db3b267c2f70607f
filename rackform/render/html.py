"""The run report as one self-contained HTML page (rackform/render/templates/report.html.j2): a header saying what was
measured where and with which data, the plots, then the table. Plots are matplotlib Figures (Agg, no pyplot state,
so tests read their series) embedded as PNG; the page loads nothing from anywhere."""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analysis.report import LOCAL_CAVEAT, Report, Row
from ..numbers import num, usd
from ..textsafe import visible
from .problems import bad_object_line
from .report import (
    NOT_APPLICABLE,
    PLACED_HEADER,
    change_text,
    health_text,
    instance_text,
    limit_text,
    mark_local_rows,
    metric_text,
    pct_chart_data,
    pct_text,
    per_dollar_chart_data,
    per_dollar_text,
    placed_rows,
    spread_text,
    unrecorded_line,
    value_text,
    without_unrecorded,
)
from .text import without_html_page

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..plan.models import Plan

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Values spanning at least this ratio are drawn on a log scale: a linear axis would flatten the small ones to nothing.
LOG_SPAN = 10.0
# A chart stays readable, and its PNG bounded in size, however many jobs a run has: at most this many bars per chart
# and lines per plot, the rest said under it; the table, CSV and JSON keep every row.
MAX_BARS = 40
MAX_LINES = 10
MAX_NAMED = 5  # jobs named in a chart's "unknown: ..." line


@dataclass(frozen=True)
class Context:
    """What the header says about the run: the spec and where it ran, the data the figures were computed with."""

    run_ids: tuple[str, ...]
    spec: str | None = None
    region: str | None = None
    availability_zone: str | None = None
    catalog_date: str | None = None
    prices_date: str | None = None
    version: str = ""
    generated: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def context_for(report: Report, plan: Plan | None = None, zones: Iterable[str] = ()) -> Context:
    """The header's facts: the plan's when given, else the Availability Zones the records name; the data files' own
    dates."""
    from .. import __version__
    from ..reference.catalog import load_catalog
    from ..reference.prices import load_prices

    region = plan.region if plan is not None else None
    az = getattr(plan, "availability_zone", None) if plan is not None else (", ".join(sorted(set(zones))) or None)
    book = load_prices()
    dates = sorted({b.as_of for b in book.ec2_on_demand.regions.values()})
    runs = tuple(dict.fromkeys([report.run_id, *([report.baseline_run_id] if report.baseline_run_id else [])]))
    return Context(run_ids=runs, spec=getattr(plan, "name", None) if plan is not None else None, region=region,
                   availability_zone=str(az) if az else None, catalog_date=load_catalog().generated_on,
                   prices_date=", ".join(dates) or None, version=__version__)


# --- figures ---------------------------------------------------------------------------------------------------

def plain(text: str) -> str:
    """A label matplotlib draws as the text it is. Labels quote names from the bucket, and matplotlib reads text
    between two `$` as mathtext: `$\\foo$` would fail the whole report, others would draw something else. An escaped
    dollar is never math and draws as `$` (matplotlib Text._preprocess_math); control characters show as escapes.
    Escaping, not parse_math=False: tick labels are made at draw time, outside any setting given here."""
    return visible(text).replace("$", r"\$")


# One colour per tier in every chart (bars, lines), so a tier reads the same across the report; a tier outside these
# takes the next of matplotlib's tab10 colours in the order first met. A local rehearsal's bars are hatched.
TIER_COLOURS = {"graviton": "#e67e00", "trainium": "#2c7fb8", "gpu": "#4d9221"}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_other: dict[str, str] = {}


def tier_colour(tier: str) -> str:
    if tier in TIER_COLOURS:
        return TIER_COLOURS[tier]
    return _other.setdefault(tier, OTHER_COLOURS[len(_other) % len(OTHER_COLOURS)])


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display, no pyplot state
    return fig, list(fig.subplots(nrows, ncols, squeeze=False).flat)


def empty_panel(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def spans_orders(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    return len(positive) > 1 and max(positive) / min(positive) >= LOG_SPAN


def busbw_figure(report: Report) -> Figure:
    fig, (ax,) = new_figure(9, 4.5)
    ax.set_title("All-reduce bus bandwidth by message size" + (" (local rehearsal)" if report.local else ""))
    if not report.series:
        empty_panel(ax, "no all-reduce results in this run")
        return fig
    shown = report.series[:MAX_LINES]
    seen: dict[str, int] = {}
    for s in shown:
        n = seen[s.tier] = seen.get(s.tier, -1) + 1  # a tier's second line: its colour, another dash and marker
        ax.plot(s.sizes, s.busbw, marker="os^vD"[n % 5], linestyle=("-", "--", ":", "-.")[n % 4],
                color=tier_colour(s.tier), label=plain(s.label))
    ax.set_xscale("log", base=2)
    if spans_orders([v for s in shown for v in s.busbw]):
        ax.set_yscale("log")
    left = len(report.series) - len(shown)
    ax.set_xlabel("message size (bytes)" + (f"; the first {len(shown)} of {len(report.series)} jobs drawn (every "
                                            "job's points are in --json)" if left else ""))
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def per_dollar_figure(report: Report) -> Figure:
    """One bar chart per priced benchmark, valued on each bar; a log axis where tiers differ by orders of magnitude
    (Graviton next to a GPU); a job with an unknown price gets no bar and is named under the chart."""
    data = per_dollar_chart_data(report)
    ncols = min(max(len(data), 1), 3)
    nrows = max(math.ceil(len(data) / ncols), 1)
    fig, axes = new_figure(4.2 * ncols, 3.8 * nrows, nrows, ncols)
    fig.suptitle("Performance per dollar by tier" + (" (local rehearsal)" if report.local else ""))
    for ax in axes[len(data):] if data else ():
        fig.delaxes(ax)
    if not data:
        empty_panel(axes[0], "no priced workloads in this run")
        return fig
    for ax, (benchmark, bars) in zip(axes, data.items(), strict=False):  # the axes left over are deleted above
        known = [b for b in bars if b["value"] is not None]
        if len(known) > MAX_BARS:  # the best per dollar, in the report's order
            best = {id(b) for b in sorted(known, key=lambda b: b["value"], reverse=True)[:MAX_BARS]}
            known, cut = [b for b in known if id(b) in best], len(known)
        else:
            cut = 0
        unit = bars[0]["unit"]
        ax.set_title(f"{benchmark} ({unit})")  # both from the benchmark's Pricing: never from a record
        unknown = [b["label"] for b in bars if b["value"] is None]
        if known:
            drawn = ax.bar([plain(b["label"]) for b in known], [b["value"] for b in known],
                           color=[tier_colour(b["tier"]) for b in known],
                           hatch=["//" if b["local"] else "" for b in known])
            ax.bar_label(drawn, labels=[num(b["value"]) for b in known], fontsize="small", padding=2)
            if spans_orders([b["value"] for b in known]):
                ax.set_yscale("log")
            ax.set_ylabel(plain(unit))
            ax.tick_params(axis="x", labelrotation=30, labelsize="small")
            ax.margins(y=0.15)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        said = [f"the best {MAX_BARS} of {cut} drawn"] if cut else []
        if unknown:
            more = f" and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
            said.append("unknown: " + ", ".join(unknown[:MAX_NAMED]) + more)
        if said:
            ax.set_xlabel(plain("; ".join(said)), fontsize="small")
    return fig


def pct_figure(report: Report) -> Figure:
    data = pct_chart_data(report)
    known = [d for d in data if d["pct"] is not None]
    cut = len(known) if len(known) > MAX_BARS else 0
    if cut:  # the furthest below their limit, in the report's order
        lowest = {id(d) for d in sorted(known, key=lambda d: d["pct"])[:MAX_BARS]}
        known = [d for d in known if id(d) in lowest]
    fig, (ax,) = new_figure(9, max(2.5, 0.4 * len(known) + 1.5))
    ax.set_title("% of the physical limit" + (" (local rehearsal)" if report.local else ""))
    if not known:
        empty_panel(ax, "no result has a known limit")
        return fig
    values = [d["pct"] for d in known]
    bars = ax.barh([plain(d["label"]) for d in known], values, color=[tier_colour(d["tier"]) for d in known])
    # Every bar is labelled, so 0.02% is read even where its bar is a hairline.
    ax.bar_label(bars, labels=[f"{num(v)}%" for v in values], fontsize="small", padding=2)
    ax.axvline(100, color="black", linewidth=1)
    if spans_orders(values):
        ax.set_xscale("log")
    unknown = sum(d["pct"] is None for d in data)
    said = ([f"the lowest {len(known)} of {cut} drawn"] if cut else []) + \
        ([f"{unknown} row(s) with an unknown limit not drawn"] if unknown else [])
    ax.set_xlabel("% of limit" + (f" ({'; '.join(said)})" if said else ""))
    ax.margins(x=0.12)
    ax.invert_yaxis()
    return fig


def png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode()


# --- HTML ------------------------------------------------------------------------------------------------------

def _cells(report: Report, r: Row, index: dict[str, int], mark: bool) -> list[dict[str, str]]:
    bad = r.status != "succeeded" or r.healthy is False
    change = report.change_for(r)
    cells = [("", r.benchmark), ("", f"{r.rack}/{r.node_group}"), ("", instance_text(r, mark)),
             ("num", str(r.node_count)), ("num", str(r.ranks) if r.ranks is not None else "-"),
             ("flag" if r.flagged else "", r.transport or "-"),
             ("failed" if r.healthy is False else "", health_text(r)), ("failed" if bad else "", metric_text(r)),
             ("failed" if bad else "num", value_text(r)), ("num", limit_text(r)),
             ("num flag" if r.flagged else "num", pct_text(r)), ("num unstable" if r.unstable else "num",
                                                                  spread_text(r)),
             ("num", usd(r.usd_per_hour)), ("num", per_dollar_text(r)), ("", r.per_dollar_unit or NOT_APPLICABLE)]
    if report.baseline_run_id:
        cells.append(("regression" if change and change.regression else "num", change_text(change)))
    cells.append(("", " ".join(f"[{i}]" for i in sorted(index[n] for n in _row_notes(r)))))
    return [{"cls": cls + (" unknown" if text in ("unknown", NOT_APPLICABLE) else ""),
             "text": visible(without_html_page(text))} for cls, text in cells]


def _row_notes(r: Row) -> tuple[str, ...]:
    """A row's notes plus its limit and per-dollar bases: footnotes keep the table narrow enough for a laptop."""
    bases = ((f"limit: {r.limit_basis}",) if r.limit_basis else ()) + (
        (f"per $: {r.per_dollar_basis}",) if r.per_dollar_basis else ())
    return (*r.notes, *bases)


def render_page(template: str, **values: object) -> str:
    """A page of templates/ (autoescaped, an unknown name an error): the report and the acceptance certificate."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, keep_trailing_newline=True)
    return env.get_template(template).render(**values)


def render_html(report: Report, context: Context | None = None, placed: Sequence[Any] = (),
                acceptance: Mapping[str, object] | None = None) -> str:
    """One file: inline CSS, plots as base64 PNG, no external URL of any kind. `placed`: the workloads `rackform run`
    placed in the run (WorkloadState); decisions that could not be believed are among the report's problems.
    `acceptance`: the run's acceptance certificate as render.acceptance.html_section makes it, shown as a section of
    its own above the results."""
    context = context or Context(run_ids=(report.run_id,))
    rows = report.rows
    index = {n: i for i, n in enumerate(dict.fromkeys(n for r in rows for n in _row_notes(r)), 1)}
    mark = mark_local_rows(report)
    header = ["benchmark", "rack/node group", "instance", "nodes", "ranks", "transport", "health", "metric", "value",
              "limit", "% of limit", "spread", "$/hour", "per $", "per $ unit"]
    if report.baseline_run_id:
        header.append(f"vs {report.baseline_run_id}")
    header.append("notes")
    # A plot with nothing to show (no all-reduce, no known price, no known limit) is left out, not drawn empty.
    figures = [(title, draw(report)) for title, draw, shows in (
        ("Bus bandwidth by message size", busbw_figure, bool(report.series)),
        ("Performance per dollar", per_dollar_figure,
         any(b["value"] is not None for bars in per_dollar_chart_data(report).values() for b in bars)),
        ("% of the physical limit", pct_figure, any(d["pct"] is not None for d in pct_chart_data(report)))) if shows]
    shown = without_unrecorded(report, [_cells(report, r, index, mark) for r in rows], header)
    return render_page(
        "report.html.j2",
        title=visible(f"rackform report: {report.run_id}"), ctx=context, report=report,
        caveat=LOCAL_CAVEAT if report.local else None, header=shown[1], rows=shown[0],
        unrecorded=unrecorded_line(report), notes=[(i, visible(n)) for n, i in index.items()],
        failed=[visible(without_html_page(f"{r.benchmark} on {r.rack}/{r.node_group}: {r.status}"
                                          + (f": {r.reason}" if r.reason else "")))
                for r in rows if r.status != "succeeded"],
        problems=[bad_object_line(p) for p in report.problems],
        placed_header=PLACED_HEADER, placed=[[visible(c) for c in row] for row in placed_rows(list(placed))],
        regressions=len(report.regressions),
        # A plot of several panels (per dollar: up to three across) takes a row of its own, so its bar labels are
        # shown near their drawn size at 1280 px rather than halved beside another plot.
        plots=[(title, png_base64(fig), len(fig.axes) > 1) for title, fig in figures],
        jobs=len({r.group for r in rows}),
        acceptance=acceptance)
