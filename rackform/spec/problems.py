"""Problems found in a spec: what every loader and validator returns, and how the CLI prints them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..textsafe import visible

Level = Literal["error", "warning"]
PathPart = str | int


def format_path(parts: Sequence[PathPart]) -> str:
    """('racks', 1, 'node_groups', 0, 'count') -> 'racks[1].node_groups[0].count'."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<spec>"


@dataclass(frozen=True)
class Problem:
    level: Level
    path: str
    message: str
    rule: str = ""
    line: int | None = None

    def render(self, source: str = "") -> str:
        where = f"{source}:{self.line}: " if source and self.line else (f"{source}: " if source else "")
        # Paths and messages quote spec keys and AWS answers: control characters show as escapes, never act.
        return visible(f"{where}{self.level}: {self.path}: {self.message}")


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.level == "error"]


class SpecError(Exception):
    """Raised where a spec cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


def did_you_mean(word: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    return difflib.get_close_matches(str(word), list(candidates), n=n, cutoff=cutoff)
