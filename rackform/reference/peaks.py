"""Physical peaks per instance type, for holding benchmark results against what the hardware can do.

Compute, memory and intra-node link figures live in `rackform/reference/data/limits.json`, each naming its source and
date; network bandwidth and EFA count come from the instance catalog (EC2's own data), so the two never disagree with
what `rackform plan` lays out. A figure nobody could source is None, and `unconfirmed` names figures to re-check.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from pydantic import computed_field, model_validator

from ..spec.base import Frozen
from .catalog import Catalog, InstanceType, load_catalog

LIMITS_PATH = Path(__file__).with_name("data") / "limits.json"


class Source(Frozen):
    title: str
    url: str
    date: str
    secondary: bool  # read from a page other than the vendor's own


class PeakFigure(Frozen):
    value: float | str | None
    source: str
    note: str | None = None
    unconfirmed: bool = False


class TypePeaks(Frozen):
    bf16_dense_tflops_per_accelerator: PeakFigure | None = None
    accelerator_memory_gib: PeakFigure | None = None
    accelerator_memory_bandwidth_gb_s: PeakFigure | None = None
    intra_node_link: PeakFigure | None = None
    intra_node_link_gb_s_per_accelerator: PeakFigure | None = None
    cpu_memory_bandwidth_gb_s: PeakFigure | None = None


class LimitsData(Frozen):
    about: str
    sources: dict[str, Source]
    instance_types: dict[str, TypePeaks]

    @model_validator(mode="after")
    def _sources_exist(self) -> LimitsData:
        for name, figures in self.instance_types.items():
            for field, fig in figures:
                if fig is not None and fig.source not in self.sources:
                    raise ValueError(f"{name}.{field} cites unknown source {fig.source!r}")
        return self


@functools.lru_cache(maxsize=4)
def load_limits(path: Path = LIMITS_PATH) -> LimitsData:
    return LimitsData.model_validate(json.loads(Path(path).read_text()))


class Limits(Frozen):
    instance_type: str
    accelerator: str | None
    accelerators: int | None  # None where the catalog does not know the type
    bf16_dense_tflops_per_accelerator: float | None
    accelerator_memory_gib: float | None
    accelerator_memory_bandwidth_gb_s: float | None
    intra_node_link: str | None
    intra_node_link_gb_s_per_accelerator: float | None
    cpu_memory_bandwidth_gb_s: float | None
    network_gbps: float | None
    network_is_burst: bool  # EC2 says "Up to": the figure is a burst ceiling, not sustained bandwidth
    efa_interfaces: int
    sources: dict[str, Source]  # figure name -> where it came from
    notes: dict[str, str]
    unconfirmed: tuple[str, ...]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bf16_dense_tflops(self) -> float | None:
        """Per instance: every accelerator at its dense peak at once."""
        per = self.bf16_dense_tflops_per_accelerator
        return None if per is None or self.accelerators is None else per * self.accelerators


_NETWORK = re.compile(r"(?P<upto>Up to )?(?:(?P<n>\d+)x )?(?P<gbps>\d+(?:\.\d+)?) Gigabit")


def network_gbps(performance: str) -> tuple[float | None, bool]:
    """EC2 NetworkPerformance ('8x 100 Gigabit', 'Up to 12.5 Gigabit') -> (Gbps, is burst)."""
    m = _NETWORK.fullmatch(performance.strip())
    if m is None:  # "Low to Moderate" and friends carry no number
        return None, False
    return float(m["gbps"]) * int(m["n"] or 1), m["upto"] is not None


def _catalog_source(catalog: Catalog) -> Source:
    return Source(title=f"EC2 DescribeInstanceTypes via the instance catalog ({catalog.source})",
                  url="rackform/reference/data/catalog.json", date=catalog.generated_on, secondary=False)


def limits_for(instance_type: str, catalog: Catalog | None = None, data: LimitsData | None = None) -> Limits | None:
    """Everything known about one type's peaks, or None where neither the catalog nor limits.json knows it."""
    catalog = catalog or load_catalog()
    data = data or load_limits()
    it: InstanceType | None = catalog.get(instance_type)
    figures = data.instance_types.get(instance_type)
    if it is None and figures is None:
        return None
    figures = figures or TypePeaks()
    values: dict[str, float | str | None] = {}
    sources: dict[str, Source] = {}
    notes: dict[str, str] = {}
    unconfirmed: list[str] = []
    for field, fig in figures:
        values[field] = None if fig is None else fig.value
        if fig is None:
            continue
        sources[field] = data.sources[fig.source]
        if fig.note:
            notes[field] = fig.note
        if fig.unconfirmed:
            unconfirmed.append(field)
    gbps, burst = network_gbps(it.network_performance) if it else (None, False)
    if it is not None:
        sources["network_gbps"] = sources["efa_interfaces"] = _catalog_source(catalog)
    # The sourced figures are typed per field by Limits itself, so they go through validation as one mapping.
    return Limits.model_validate(dict(
        instance_type=instance_type,
        accelerator=it.accelerator.name if it and it.accelerator else None,
        accelerators=None if it is None else (it.accelerator.count if it.accelerator else 0),
        network_gbps=gbps,
        network_is_burst=burst,
        efa_interfaces=it.max_efa_interfaces if it else 0,
        sources=sources,
        notes=notes,
        unconfirmed=tuple(unconfirmed),
        **values,
    ))
