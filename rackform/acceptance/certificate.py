"""The acceptance certificate: one JSON document per acceptance run that says what was accepted, on what evidence.

It carries the spec's hash (SHA-256 of the spec file's bytes: `sha256sum my-spec.yaml` reproduces it), the plan
that ran, every node's figures, the verdicts with the thresholds they used, the baselines and their sources, and what
the slowest node costs. `rackform schema --certificate` prints its JSON Schema; the document is stored write-once in
the results bucket beside the run's records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from ..analysis.summary import UNSTABLE_SPREAD_PCT
from ..reference.baselines import BaselineData
from ..reference.peaks import Source
from ..spec.base import Frozen
from . import verdicts
from .plan import AcceptancePlan, GroupAcceptancePlan
from .verdicts import MetricVerdict, StragglerCost


class Thresholds(Frozen):
    """The rules the verdicts applied (rackform/acceptance/verdicts.py says why each is what it is)."""

    outlier_mads: float = verdicts.OUTLIER_MADS
    mad_to_sigma: float = verdicts.MAD_TO_SIGMA
    min_shortfall_pct: float = verdicts.MIN_SHORTFALL_PCT
    min_band_nodes: int = verdicts.MIN_BAND_NODES
    baseline_fraction: float = verdicts.BASELINE_FRACTION
    unsteady_spread_pct: float = UNSTABLE_SPREAD_PCT


class GroupCertificate(Frozen):
    rack: str
    node_group: str
    instance_type: str
    nodes: int
    status: Literal["accepted", "rejected", "not measured"]
    reason: str | None = None  # why a part of acceptance did not run (a record or job that failed, no record at all)
    verdicts: tuple[MetricVerdict, ...]
    straggler: StragglerCost | None
    cannot_prove: tuple[str, ...]
    bisection: tuple[str, ...] = ()  # what the in-job fabric bisection concluded, in its words

    @property
    def label(self) -> str:
        return f"{self.rack}/{self.node_group}"


class Certificate(Frozen):
    certificate_version: Literal[1] = 1  # a reader refuses a version it does not know
    run_id: str
    spec: str  # the spec's name
    spec_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    issued_at: AwareDatetime
    rackform_version: str
    plan: AcceptancePlan
    thresholds: Thresholds = Thresholds()
    groups: tuple[GroupCertificate, ...]
    baseline_sources: dict[str, Source]  # the sources of the baselines the verdicts used, by key

    @property
    def accepted(self) -> bool:
        return all(g.status == "accepted" for g in self.groups)


def spec_sha256(spec_bytes: bytes) -> str:
    return hashlib.sha256(spec_bytes).hexdigest()


def group_certificate(plan: GroupAcceptancePlan, judged: Sequence[MetricVerdict], straggler: StragglerCost | None,
                      *, nodes: int, failure: str | None = None, bisection: Sequence[str] = (), slow: bool = False,
                      unproven: Sequence[str] = ()) -> GroupCertificate:
    """`failure`: why the job or a part of it did not finish (a record that failed, Batch's reason), which rejects
    the group whatever its figures say: a part of acceptance did not run. `slow`: the fabric rounds isolated a slow
    node or link, which rejects the group even where every node's best pair is within the band (a bad link leaves
    both its nodes a fast pair elsewhere). `unproven`: what the job ran without, beside what the plan says it cannot
    prove."""
    status: Literal["accepted", "rejected", "not measured"] = "not measured" if not judged else \
        "accepted" if all(v.accepted for v in judged) and not slow and failure is None else "rejected"
    return GroupCertificate(rack=plan.rack, node_group=plan.node_group, instance_type=plan.instance_type,
                            nodes=nodes, status=status,
                            reason=failure or ("no acceptance record came back" if not judged else None),
                            verdicts=tuple(judged), straggler=straggler,
                            cannot_prove=(*plan.cannot_prove, *unproven),
                            bisection=tuple(bisection))


def certificate(*, run_id: str, spec_name: str, spec_bytes: bytes, plan: AcceptancePlan,
                groups: Sequence[GroupCertificate], baselines: BaselineData, version: str,
                issued_at: dt.datetime | None = None) -> Certificate:
    used = {v.baseline.source for g in groups for v in g.verdicts if v.baseline is not None}
    return Certificate(run_id=run_id, spec=spec_name, spec_sha256=spec_sha256(spec_bytes),
                       issued_at=issued_at or dt.datetime.now(dt.UTC), rackform_version=version, plan=plan,
                       groups=tuple(groups), baseline_sources={k: baselines.sources[k] for k in sorted(used)})


def json_schema() -> dict[str, Any]:
    return Certificate.model_json_schema()
