"""From the acceptance job's records (workloads.results.AcceptRecord, read through the store's verified reader) to one
figure per node and test, and from those to the group's part of the certificate.

Single-node figures are each node's own. A fabric figure is a node's best pair: a good node paired with a good one
is fast, and the rounds re-pair the halves of a slow pair with known-good nodes, so only a node that is slow with
every peer has a slow best pair (a bad link alone is what the rounds' own finding names). The group's collective is
one figure for the whole group, held against a published figure for that many nodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from workloads.accept_plan import FABRIC_HEADLINE
from workloads.results import AcceptFigure, AcceptRecord

from ..analysis.report import higher_is_better
from ..analysis.summary import UNSTABLE_SPREAD_PCT
from ..reference.baselines import BaselineData
from .certificate import GroupCertificate, group_certificate
from .plan import GroupAcceptancePlan
from .verdicts import MetricVerdict, NodeFigure, judge_all, straggler_cost

FABRIC_TEST = "fabric"
GROUP_TEST = "group-collective"


def _figure(f: AcceptFigure) -> NodeFigure:
    return NodeFigure(node=f.node_index, instance_id=f.instance_id, host=f.host, test=f.test, metric=f.metric,
                      headline=f.headline, value=f.value, unit=f.unit)


def best_pairs(figures: Sequence[AcceptFigure], who: Mapping[int, NodeFigure]) -> list[NodeFigure]:
    """Each node's best figure over the pairs it was in, per metric (largest, or smallest for a latency); a node whose
    every pair failed keeps a failed figure. A pair's figure is written once, by node a (the fi_pingpong server), and
    counts for both its nodes; node b's instance and host come from its own figures (`who`)."""
    sides = [(n, f) for f in figures for n in (f.node_index, f.node_b) if n is not None]
    out = []
    for node, metric, headline in dict.fromkeys((n, f.metric, f.headline) for n, f in sides):
        mine = [f for n, f in sides if (n, f.metric, f.headline) == (node, metric, headline)]
        finite = [f.value for f in mine if math.isfinite(f.value)]
        best = (max if higher_is_better(metric) else min)(finite) if finite else math.nan
        known = who.get(node)
        out.append(NodeFigure(node=node, instance_id=known.instance_id if known else None,
                              host=known.host if known else None, test=mine[0].test, metric=metric,
                              headline=headline, value=best, unit=mine[0].unit))
    return out


def with_missing_nodes(figures: list[NodeFigure], nodes: int) -> list[NodeFigure]:
    """Every (test, metric, headline) some node measured, with a failed figure for each node that did not: a node
    that sent nothing back is not accepted by its silence."""
    who = {f.node: (f.instance_id, f.host) for f in figures}
    out = list(figures)
    for key in dict.fromkeys((f.test, f.metric, f.headline) for f in figures):
        have = [f for f in figures if (f.test, f.metric, f.headline) == key]
        out.extend(have[0].model_copy(update={"node": i, "value": None, "instance_id": who.get(i, (None, None))[0],
                                              "host": who.get(i, (None, None))[1]})
                   for i in range(nodes) if i not in {f.node for f in have})
    return out


def bisection_lines(group: AcceptRecord | None, ids: Mapping[int, str], noisy: MetricVerdict | None = None
                    ) -> tuple[str, ...]:
    """What the fabric rounds isolated, in the rounds' own terms. `noisy`: the pairs' own figure, when it is
    unsteady: the rounds judge a pair against the others' pace, so on a fabric that noisy (a loaded machine's
    loopback, a congested spine) a slow pair says nothing about a node, and no node is named by it (the same rule
    as the band's)."""
    if group is None or not group.rounds:
        return ()
    if noisy is not None and (group.slow_nodes or group.slow_links):
        spread = f"{noisy.kept_spread_pct:.0f}%" if noisy.kept_spread_pct is not None else "unknown"
        return (f"{group.rounds} fabric round(s): the pairs' {noisy.label} spread {spread}, over "
                f"{UNSTABLE_SPREAD_PCT:.0f}%: too noisy to name a node or link by",)
    name = {i: f"node {i} ({ids.get(i) or 'instance id unknown'})" for i in range(group.nodes)}
    found = [f"slow {name.get(n, f'node {n}')}" for n in group.slow_nodes]
    found += [f"slow link between nodes {a} and {b}" for a, b in group.slow_links]
    return (f"{group.rounds} fabric round(s): " + ("; ".join(found) if found else "no slow node or link"),)


def judge_group(plan: GroupAcceptancePlan, records: Sequence[AcceptRecord], baselines: BaselineData,
                batch_failure: str | None = None) -> GroupCertificate:
    """The group's verdicts from its acceptance records (the caller gives only this group's). The nodes are the ones
    the multi-node job ran on, as its records say (a rehearsal may run more than the spec's count); single-node jobs
    run one per node of the plan. Priced per node as planned, else at the price the job was told. `batch_failure`:
    why Batch says a job of the group failed, if it did."""
    nodes = max((r.nodes for r in records if r.nodes > 1), default=plan.nodes)  # single-node jobs say 1
    figures = [f for r in records if r.part == "node" for f in r.figures]
    rounds = [f for r in records if r.part == "round" for f in r.figures]
    group = next((r for r in records if r.part == "group"), None)
    own = [_figure(f) for f in figures]
    per_node = own + best_pairs(rounds, {f.node: f for f in own})
    judged: list[MetricVerdict] = list(judge_all(with_missing_nodes(per_node, nodes),
                                                 instance_type=plan.instance_type, baselines=baselines))
    if group is not None and group.figures:
        judged += judge_all([_figure(f) for f in group.figures], instance_type=plan.instance_type,
                            baselines=baselines, spans=group.nodes)
    ids = {f.node: f.instance_id for f in per_node if f.instance_id}
    noisy = next((v for v in judged if v.nodes == 1 and v.test == "fabric" and v.headline == FABRIC_HEADLINE
                  and v.unsteady), None)
    failed = [f"{r.part} record of node {r.node_index}: {r.status}" + (f" ({r.reason})" if r.reason else "")
              for r in records if r.status != "succeeded"]
    # Node 0's group record ends a multi-node job with the group's collective; one with no figure did not run it (its
    # tool missing on the node, or a rehearsal beside a slowed node): a verdict that never says so passes silently.
    unproven = ["the group's collective: no figure came back" + (f" ({group.reason})" if group.reason else "")] \
        if group is not None and group.nodes > 1 and group.status == "succeeded" and not group.figures else []
    each = plan.usd_per_node_hour if plan.usd_per_node_hour is not None else \
        next((r.price_usd_per_hour for r in records if r.price_usd_per_hour is not None), None)
    return group_certificate(plan, judged, straggler_cost([v for v in judged if v.nodes == 1],
                                                          None if each is None else each * nodes),
                             nodes=nodes, failure="; ".join([*failed, *filter(None, [batch_failure])]) or None,
                             bisection=bisection_lines(group, ids, noisy),
                             slow=bool(group and (group.slow_nodes or group.slow_links) and noisy is None),
                             unproven=unproven)
