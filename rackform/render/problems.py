"""Objects in the results bucket that are shown as problems, never as data (workloads.store.BadObject)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..textsafe import visible

if TYPE_CHECKING:
    from workloads.store import BadObject


def bad_object_line(p: BadObject) -> str:
    """"record tampered: KEY: why", with anything the object smuggled in made visible."""
    return visible(f"{p.noun} {p.kind}: {p.key}: {p.why}")


def problem_lines(problems: Sequence[Any]) -> list[str]:
    """"1 record unreadable: KEY: why"; several of a kind get a count line and one indented line each."""
    lines = []
    for kind in ("tampered", "unreadable"):
        for what in dict.fromkeys(p.what for p in problems):  # records, markers, health records, in order met
            found = [p for p in problems if (p.kind, p.what) == (kind, what)]
            if len(found) == 1:
                lines.append(f"1 {bad_object_line(found[0])}")
            elif found:
                lines.append(f"{len(found)} {found[0].noun}s {kind}:")
                lines += [visible(f"  {p.key}: {p.why}") for p in found]
    return lines


def problem_dicts(problems: Sequence[Any]) -> list[dict[str, str]]:
    return [{"key": p.key, "object": p.what, "problem": p.kind, "why": p.why} for p in problems]
