"""Where a workload runs: the pure placement policy (no AWS call here; rackform.jobs reads the live state).

    state.py        the live state the policy reads (filled by rackform.jobs), every field None where unknown
    evidence.py     what the result records say: figures per dollar with their spread, p99, durations, health
    constraints.py  the hard constraints, a verdict each
    start.py        when a job would start, from the queue
    pricing.py      the marginal price by capacity kind, and Spot reclaims' expected cost
    policy.py       place(): candidates, ranking by the objective, the decision
"""

from .evidence import GroupHealth, healthy
from .policy import (
    CLASS_BENCHMARK,
    SEED_ORDER,
    Decision,
    PlacementCandidate,
    decision_from_dict,
    figure_text,
    place,
)
from .start import duration_text
from .state import READY_STATE, READY_STATUS, ImagePlatforms, QueuedJob, QueueState, RunningJob

__all__ = ["CLASS_BENCHMARK", "READY_STATE", "READY_STATUS", "SEED_ORDER", "Decision", "GroupHealth",
           "ImagePlatforms", "PlacementCandidate", "QueueState", "QueuedJob", "RunningJob", "decision_from_dict",
           "duration_text", "figure_text", "healthy", "place"]
