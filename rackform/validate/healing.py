"""The racks' repair loops and their alarms (docs/self-healing.md)."""

from __future__ import annotations

from ..plan.models import QUEUE_DEPTH_INTERVAL_MINUTES
from ..reference.catalog import Catalog
from ..spec.models import Spec
from .core import Found, Rule, SpecRule

# The fewest samples of the queue-depth function a "stuck" verdict rests on: one sample cannot tell a job that Batch
# is about to place from one no node can take.
STUCK_RUNNABLE_SAMPLES = 2


def stuck_runnable_threshold(spec: Spec, catalog: Catalog) -> Found:
    least = STUCK_RUNNABLE_SAMPLES * QUEUE_DEPTH_INTERVAL_MINUTES
    for i, rack in enumerate(spec.racks):
        minutes = rack.healing.stuck_runnable_minutes
        if rack.healing.enabled and minutes is not None and minutes < least:
            yield f"racks[{i}].healing.stuck_runnable_minutes", (
                f"{minutes} minutes is under {STUCK_RUNNABLE_SAMPLES} samples of the rack's queue depth (taken every "
                f"{QUEUE_DEPTH_INTERVAL_MINUTES} minutes), so any job still waiting for its node to launch would "
                f"raise the alarm: give {least} or more, or null for no stuck-RUNNABLE alarm")


RULES: tuple[SpecRule, ...] = (
    Rule(stuck_runnable_threshold, "error", "the stuck-RUNNABLE alarm waits at least two queue-depth samples",
         "docs/self-healing.md"),
)
