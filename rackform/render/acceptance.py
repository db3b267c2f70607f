"""Acceptance as text and HTML: the plan before it runs, one verdict line per group and metric and one per outlier,
the straggler's cost, and the certificate's section of the HTML report with one per-node plot per group.

The verdict lines are a contract (issue 21, docs/acceptance.md):
`accepted <rack>/<group>: <n> nodes, <metric> median <v> <unit>, spread <p>%` and
`outlier <rack>/<group> node <i>: <metric> <v> <unit>, <p>% below the median of <n> nodes (<instance id>)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..acceptance.certificate import Certificate, GroupCertificate
from ..acceptance.plan import AcceptancePlan
from ..acceptance.verdicts import MetricVerdict, Outlier
from ..analysis.summary import UNSTABLE_SPREAD_PCT
from ..numbers import num, usd
from ..textsafe import visible
from .html import empty_panel, new_figure, plain, png_base64, render_page
from .text import table

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def plan_text(plan: AcceptancePlan) -> str:
    out = [visible(f"acceptance plan for spec {plan.spec}:")]
    for g in plan.groups:
        jobs = "one multi-node job spans the group" if g.multi_node else f"{g.jobs} single-node job(s), one per node"
        out += ["", visible(f"{g.label}: {g.nodes} x {g.instance_type} ({g.capacity}), {jobs}")]
        rows = [[s.test, s.nodes, _duration(s.seconds), s.what] for s in g.steps]
        out.append(table(rows, ["test", "nodes", "expected", "what"]))
        price = (f"{usd(g.cost_usd)} USD at {usd(g.usd_per_node_hour)} $/hour per node ({g.price_source})"
                 if g.cost_usd is not None else f"unknown: {g.price_source}")
        out.append(visible(f"expected wall time {_duration(g.wall_seconds)} (estimated, not measured on AWS; "
                           f"instance start-up on top), cost {price}"))
        out.extend(visible(f"proves: {p}") for p in g.proves)
        out.extend(visible(f"cannot prove: {c}") for c in g.cannot_prove)
    unpriced = f" + {len(plan.unpriced)} unpriced group(s)" if plan.unpriced else ""
    out.append(f"\ntotal: {usd(plan.known_cost_usd)} USD{unpriced}")
    return "\n".join(out)


def outlier_line(g: GroupCertificate, v: MetricVerdict, o: Outlier) -> str:
    where = f"outlier {g.label} node {o.node}"
    who = o.instance_id or "instance id unknown"
    if o.value is None or o.shortfall_pct is None or v.band is None:
        return f"{where}: {v.label} failed, no figure ({who})"
    side = "below" if v.higher_is_better else "above"
    published = f"; past {num(v.baseline_floor)} {v.unit}, the floor set by the published {num(v.baseline.value)} " \
        f"{v.unit} for {g.instance_type}" if "baseline" in o.reasons and v.baseline is not None else ""
    return (f"{where}: {v.label} {num(o.value)} {v.unit}, {num(abs(o.shortfall_pct))}% {side} the median "
            f"of {v.band.nodes} nodes ({who}){published}")


def group_figure_line(g: GroupCertificate, v: MetricVerdict) -> str:
    """`accepted`, or `below baseline` / `failed`, for a figure the whole group made together."""
    value = v.figures[0].value if v.figures else None
    if value is None:
        return f"failed {g.label}: {v.label} across {v.nodes} nodes, no figure"
    measured = f"{v.label} {num(value)} {v.unit} across {v.nodes} nodes"
    if v.outliers and v.baseline is not None:
        return (f"below baseline {g.label}: {measured}, past {num(v.baseline_floor)} {v.unit}, the floor set by the "
                f"published {num(v.baseline.value)} {v.unit} for {g.instance_type}")
    return f"accepted {g.label}: {measured}"


def verdict_lines(cert: Certificate) -> list[str]:
    """Per group: per metric `accepted ...` or its `outlier ...` lines, then what the slowest node costs and what
    acceptance could not prove there."""
    out: list[str] = []
    for g in cert.groups:
        if g.reason is not None:
            out.append(f"{'not measured' if g.status == 'not measured' else 'failed'} {g.label}: {g.reason}")
        for v in g.verdicts:
            if v.nodes > 1:  # the group's own figure (its collective): one figure, held to a published one only
                out.append(group_figure_line(g, v))
                continue
            if v.accepted and v.band is not None:
                out.append(f"accepted {g.label}: {v.band.nodes} nodes, {v.label} median {num(v.band.median)} "
                           f"{v.unit}, spread {num(v.band.spread_pct)}%")
            elif v.unsteady and v.band is not None:
                out.append(f"unsteady {g.label}: {v.band.nodes} nodes, {v.label} median {num(v.band.median)} "
                           f"{v.unit}, spread {num(v.kept_spread_pct)}% among the nodes within the band, over "
                           f"{num(UNSTABLE_SPREAD_PCT)}%: too noisy to accept the group or to name a node by")
            out.extend(outlier_line(g, v, o) for o in v.outliers)
            out.extend(f"note {g.label}: {n}" for n in v.notes)
        if unpublished := [v.label + (f" across {v.nodes} nodes" if v.nodes > 1 else "") for v in g.verdicts
                           if v.baseline is None]:
            out.append(f"note {g.label}: no published baseline for {g.instance_type}: {', '.join(unpublished)}")
        out.extend(f"bisection {g.label}: {b}" for b in g.bisection)
        if (s := g.straggler) is not None and s.slowdown > 0:
            money = (f"{usd(s.lost_usd_per_hour)} of the group's {usd(s.group_usd_per_hour)} $/hour lost"
                     if s.lost_usd_per_hour is not None else "cost unknown (no price for the group; give --price)")
            saving = (f"; replacing the outlier(s) saves {usd(s.saving_usd_per_hour)} $/hour"
                      if s.saving_usd_per_hour is not None and s.slowdown_after_replacing < s.slowdown else "")
            out.append(f"straggler {g.label}: node {s.slowest_node} ({s.slowest_instance_id or 'instance id unknown'}) "
                       f"sets the pace at {num(100 * s.slowdown)}% below the median {s.label}: {money}"
                       f"{saving}")
        out.extend(f"cannot prove {g.label}: {c}" for c in g.cannot_prove)
    out.append(f"{'accepted' if cert.accepted else 'not accepted'}: run {cert.run_id}, spec {cert.spec} "
               f"(sha256 {cert.spec_sha256[:12]}), {sum(g.status == 'accepted' for g in cert.groups)} of "
               f"{len(cert.groups)} group(s) accepted")
    return [visible(line) for line in out]


# --- HTML ------------------------------------------------------------------------------------------------------

def node_figure(g: GroupCertificate) -> Figure:
    """One panel per metric: a bar per node, the outliers red and labelled with their instance id, the median and the
    band's floor drawn across, so the eye finds the slow node at once."""
    shown = [v for v in g.verdicts if v.band is not None]
    fig, axes = new_figure(max(6.5, 0.4 * g.nodes + 2), 2.6 * max(len(shown), 1), max(len(shown), 1), 1)
    fig.suptitle(plain(f"{g.label} ({g.instance_type}): each node against the group"), fontsize="medium")
    if not shown:
        empty_panel(axes[0], "no figure came back")
        return fig
    for ax, v in zip(axes, shown, strict=True):
        bad = {o.node for o in v.outliers}
        nodes = [f.node for f in v.figures]
        values = [f.value if f.value is not None else 0.0 for f in v.figures]
        bars = ax.bar([str(n) for n in nodes], values, color=["#c0392b" if n in bad else "#2c7fb8" for n in nodes])
        ax.bar_label(bars, labels=[f.instance_id or "" if f.node in bad else "" for f in v.figures],
                     fontsize="small", padding=2)
        assert v.band is not None
        ax.axhline(v.band.median, color="black", linewidth=1, label="median")
        if v.band.floor is not None:
            ax.axhline(v.band.floor, color="#c0392b", linestyle="--", linewidth=1, label="band")
        if v.baseline_floor is not None:
            ax.axhline(v.baseline_floor, color="#7f7f7f", linestyle=":", linewidth=1, label="baseline floor")
        ax.set_title(plain(v.label), fontsize="medium")
        ax.set_xlabel("node")
        ax.set_ylabel(plain(v.unit))
        ax.margins(y=0.15)
        ax.legend(fontsize="x-small", loc="best")  # where it hides no bar, the slow node's above all
    return fig


def rule_text(cert: Certificate) -> str:
    t = cert.thresholds
    return (f"{num(t.outlier_mads)} x {t.mad_to_sigma} median absolute deviations from the group's median on the bad "
            f"side and at least {num(t.min_shortfall_pct)}% worse than it (groups of {t.min_band_nodes} nodes or "
            f"more), or worse than {num(100 * t.baseline_fraction)}% of a figure AWS published for the instance "
            f"type; a node with no figure has failed. A figure whose nodes within the band are more than "
            f"{num(t.unsteady_spread_pct)}% apart is unsteady: too noisy to accept.")


def html_section(cert: Certificate) -> dict[str, Any]:
    """What the report template's acceptance section shows (every string already made visible)."""
    return {"run_id": visible(cert.run_id), "spec": visible(cert.spec), "sha256": cert.spec_sha256,
            "accepted": cert.accepted, "lines": verdict_lines(cert), "rule": rule_text(cert),
            "plots": [(visible(g.label), png_base64(node_figure(g))) for g in cert.groups if g.verdicts],
            "sources": [(visible(s.title), visible(s.url)) for s in cert.baseline_sources.values()]}


def render_acceptance_html(cert: Certificate) -> str:
    """The certificate alone as one self-contained page (`rackform accept --html`); `rackform report --html` shows
    the same section above a run's results."""
    return render_page("acceptance.html.j2", title=visible(f"rackform acceptance: {cert.run_id}"),
                       acceptance=html_section(cert))
