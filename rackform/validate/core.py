"""The one rule type, for specs and workloads, and the walks over a spec's node groups the spec rules share.

A rule is a pure function that yields (field path, message) for every problem it finds, never raises and never stops
another rule. Its id is its function's name with '-' for '_' (`efa_interfaces` -> `efa-interfaces`), derived, so it
cannot drift from the code; `source` is the page of the AWS documentation (or of rackform's, for a rule of its own
design) whose fact the rule enforces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..reference.catalog import Catalog, InstanceType
from ..spec.models import NodeGroup, Spec
from ..spec.problems import Level, did_you_mean
from ..spec.workload import Workload

Found = Iterator[tuple[str, str]]  # (field path, message)
Check = TypeVar("Check", Callable[[Spec, Catalog], Found], Callable[[Workload], Found])


@dataclass(frozen=True)
class Rule(Generic[Check]):
    check: Check
    level: Level
    doc: str
    source: str

    @property
    def id(self) -> str:
        return self.check.__name__.replace("_", "-")


SpecRule = Rule[Callable[[Spec, Catalog], Found]]
WorkloadRule = Rule[Callable[[Workload], Found]]


def groups(spec: Spec) -> Iterator[tuple[str, str, NodeGroup]]:
    for ri, rack in enumerate(spec.racks):
        for gi, group in enumerate(rack.node_groups):
            yield f"racks[{ri}].node_groups[{gi}]", rack.name, group


def known_groups(spec: Spec, catalog: Catalog) -> Iterator[tuple[str, str, NodeGroup, InstanceType]]:
    for path, rack, group in groups(spec):
        if (it := catalog.get(group.instance_type)) is not None:
            yield path, rack, group, it


def not_an_ec2_id(value: str, prefix: str, what: str) -> str | None:
    """Why `value` is not `what`, the id of an EC2 resource: `prefix`- and 8 or 17 lowercase hex digits
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/resource-ids.html); None where it is one."""
    if re.fullmatch(rf"{re.escape(prefix)}-[0-9a-f]{{8}}([0-9a-f]{{9}})?", value):
        return None
    return f"{value[:40]!r} is not {what}: expected {prefix}- and 8 or 17 lowercase hex digits"


def hint(word: str, candidates: Iterable[str]) -> str:
    found = did_you_mean(word, candidates, n=1)
    return f"; did you mean {found[0]!r}?" if found else ""
