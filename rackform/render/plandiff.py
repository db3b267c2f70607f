"""`rackform plan --against`'s output: the changes, what CloudFormation does to each stack, and the steps."""

from __future__ import annotations

import re

from ..plan.diff import PlanDiff
from .text import coloured, wrap

# What a stack's note says when the data leaves the racks' reach: the file system replaced by a new, empty one (the
# old one is retained outside the stack, but nodes mount the new one). The notes are plan/diff.py's, from each
# property's "Update requires"; a rack stack holds no data, and a deleted storage stack retains its bucket and FSx.
DATA_LOSS = re.compile(r"new, empty file system")
# terraform's order and words: what is added, changed in place, replaced, deleted; and what CloudFormation refuses.
SUMMARY = (("create", "to add"), ("update", "to change"), ("replace", "to replace"), ("delete", "to delete"),
           ("fails", "refused"))


def summary(diff: PlanDiff) -> str:
    counts = {action: sum(s.action == action for s in diff.stacks) for action, _ in SUMMARY}
    return "stacks: " + ", ".join(f"{counts[a]} {words}" for a, words in SUMMARY if a != "fails" or counts[a])


def data_loss(diff: PlanDiff) -> list[str]:
    """One warning per stack whose update replaces or deletes what holds data, in its own words."""
    return [f"warning: data: {s.stack}: {n}" for s in diff.stacks if s.action in ("replace", "delete", "fails")
            for n in dict.fromkeys(s.notes) if n and DATA_LOSS.search(n)]


def render_diff(diff: PlanDiff, old_name: str, new_name: str, *, colour: bool | None = None) -> str:
    lines = [f"plan {new_name} against {old_name}:"]
    if not diff.changes:
        return "\n".join(lines + ["  no changes: every stack stays as it is"])
    lines.append(summary(diff))
    lines += [coloured(w, "bold red", colour) for w in data_loss(diff)]
    for c in diff.changes:
        lines.append(f"  {c.sign} {c.what}" + (f": {'; '.join(c.details)}" if c.details else ""))
    lines += ["", "stacks (what CloudFormation would do, from each property's 'Update requires'):"]
    width = max(len(s.stack) for s in diff.stacks)
    for s in diff.stacks:
        lines.append(f"  {s.stack:<{width}}  {s.action}")
        lines += [f"  {'':<{width}}    {n}" for n in dict.fromkeys(s.notes) if n]
    lines += ["", "steps:" if diff.deployable else "refused:"]
    lines += [f"  {i}. {step}" for i, step in enumerate(diff.steps, 1)]
    return wrap("\n".join(lines))
