"""The container entry point: every job definition runs `python3 -m workloads.job JOB`, and so does the local
executor's every node.

    python -m workloads.job BENCHMARK [--run-id ID] [--bucket B] ...   one benchmark (workloads/run.py)
    python -m workloads.job accept | accept-<k>                         rack acceptance (workloads/accept.py)

It only chooses the runner: acceptance is built on the benchmark runner (accept imports run), so the choice lives
above both and the imports stay one way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from . import accept, run
from .layout import ACCEPT_JOB_NAME


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    if argv and ACCEPT_JOB_NAME.fullmatch(argv[0]):
        return accept.main(argv, env)
    return run.main(argv, env)


if __name__ == "__main__":
    raise SystemExit(main())
