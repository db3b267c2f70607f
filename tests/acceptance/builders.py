"""Acceptance records, plans and certificates to test with: a 4-node Graviton group, one node slowed where asked
(tests/acceptance and tests/render share them)."""

from __future__ import annotations

import datetime as dt

from rackform.acceptance.certificate import Certificate, GroupCertificate, certificate
from rackform.acceptance.plan import AcceptancePlan, GroupAcceptancePlan, PlannedStep
from rackform.reference.baselines import load_baselines
from workloads.results import AcceptFigure, AcceptRecord

NOW = dt.datetime(2026, 12, 6, 5, 0, tzinfo=dt.UTC)


def plan(nodes: int = 4, price: float | None = 2.0, instance_type: str = "c7g.16xlarge") -> GroupAcceptancePlan:
    return GroupAcceptancePlan(
        rack="graviton", node_group="cpu", instance_type=instance_type, capacity="on-demand", nodes=nodes,
        multi_node=True, jobs=1, steps=(PlannedStep(test="cpu", nodes=nodes, seconds=60, what="sysbench"),),
        wall_seconds=60, usd_per_node_hour=price, price_source="prices snapshot",
        cost_usd=None if price is None else price * nodes / 60, proves=("x",), cannot_prove=())


def fig(node: int, value: float, *, test: str = "cpu", metric: str = "events_per_second", unit: str = "events/s",
        headline: str = "cpu", node_b: int | None = None, rnd: int | None = None) -> AcceptFigure:
    return AcceptFigure(node_index=node, instance_id=f"i-0{node}", host=f"host{node}", test=test, metric=metric,
                        value=value, unit=unit, headline=headline, node_b=node_b, round=rnd)


def record(part: str, node: int, figures: list[AcceptFigure], nodes: int = 4, rnd: int = 0,
           status: str = "succeeded", **more: object) -> AcceptRecord:
    return AcceptRecord.model_validate(dict(
        run_id="run-1", rack="graviton", node_group="cpu", benchmark="accept", instance_type="c7g.16xlarge",
        tier="graviton", part=part, node_index=node, round=rnd, nodes=nodes, status=status, written_at=NOW,
        figures=figures, **more))


def four_nodes(slow: int | None = 2) -> list[AcceptRecord]:
    values = [1000.0, 1010.0, 990.0, 1005.0]
    if slow is not None:
        values[slow] = 600.0
    return [record("node", i, [fig(i, v)]) for i, v in enumerate(values)]


def cert(groups: list[GroupCertificate]) -> Certificate:
    return certificate(run_id="run-1", spec_name="demo", spec_bytes=b"name: demo\n",
                       plan=AcceptancePlan(spec="demo", groups=(plan(),)), groups=groups,
                       baselines=load_baselines(), version="0.test", issued_at=NOW)
