"""Where a workload runs: the pure placement policy (no AWS call here; rackform.jobs reads the live state).

    state.py    the live state the policy reads (filled by rackform.jobs), every field None where unknown
    policy.py   place(): candidates, ranking, the decision
"""

from .policy import (
    CLASS_BENCHMARK,
    DEFAULT_JOB_DURATION_S,
    SEED_ORDER,
    Decision,
    PlacementCandidate,
    decision_from_dict,
    duration_text,
    figure_text,
    healthy,
    place,
)
from .state import READY_STATE, READY_STATUS, GroupHealth, ImagePlatforms, QueuedJob, QueueState, RunningJob

__all__ = ["CLASS_BENCHMARK", "DEFAULT_JOB_DURATION_S", "READY_STATE", "READY_STATUS", "SEED_ORDER", "Decision",
           "GroupHealth", "ImagePlatforms", "PlacementCandidate", "QueueState", "QueuedJob", "RunningJob",
           "decision_from_dict", "duration_text", "figure_text", "healthy", "place"]
