"""`rackform plan --against`'s output: the changes, what CloudFormation does to each stack, and the steps."""

from __future__ import annotations

from ..plan.diff import PlanDiff


def render_diff(diff: PlanDiff, old_name: str, new_name: str) -> str:
    lines = [f"plan {new_name} against {old_name}:"]
    if not diff.changes:
        return "\n".join(lines + ["  no changes: every stack stays as it is"])
    for c in diff.changes:
        lines.append(f"  {c.sign} {c.what}" + (f": {'; '.join(c.details)}" if c.details else ""))
    lines += ["", "stacks (what CloudFormation would do, from each property's 'Update requires'):"]
    width = max(len(s.stack) for s in diff.stacks)
    for s in diff.stacks:
        lines.append(f"  {s.stack:<{width}}  {s.action}")
        lines += [f"  {'':<{width}}    {n}" for n in dict.fromkeys(s.notes) if n]
    lines += ["", "steps:" if diff.deployable else "refused:"]
    lines += [f"  {i}. {step}" for i, step in enumerate(diff.steps, 1)]
    return "\n".join(lines)
