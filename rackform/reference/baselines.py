"""Per-instance-type acceptance baselines: figures AWS published for a test acceptance runs, each with its source.

`rackform/reference/data/baselines.json` holds only published figures (the page, the conditions, the date read); an
instance type or test it does not list has no published baseline, and acceptance says so rather than guess one.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from pydantic import Field, model_validator

from ..spec.base import Frozen
from .peaks import Source

BASELINES_PATH = Path(__file__).with_name("data") / "baselines.json"


class Baseline(Frozen):
    instance_type: str
    test: str  # the acceptance test the figure is for (workloads.results.AcceptFigure.test)
    metric: str
    unit: str
    nodes: int = Field(ge=1)  # how many nodes the published run spanned: a figure across other counts differs
    value: float = Field(gt=0)
    source: str  # a key of BaselineData.sources
    note: str | None = None


class BaselineData(Frozen):
    about: str
    sources: dict[str, Source]
    baselines: tuple[Baseline, ...]

    @model_validator(mode="after")
    def _sources_exist(self) -> BaselineData:
        for b in self.baselines:
            if b.source not in self.sources:
                raise ValueError(f"baseline {b.instance_type} {b.test} {b.metric} cites unknown source {b.source!r}")
        return self

    def find(self, instance_type: str, test: str, metric: str, nodes: int) -> Baseline | None:
        """The published figure for exactly this type, test, metric and node count: a collective across another
        number of nodes is not comparable."""
        return next((b for b in self.baselines if (b.instance_type, b.test, b.metric, b.nodes)
                     == (instance_type, test, metric, nodes)), None)


@functools.lru_cache(maxsize=4)
def load_baselines(path: Path = BASELINES_PATH) -> BaselineData:
    return BaselineData.model_validate(json.loads(Path(path).read_text()))
