"""workloads.run.run_step: what a step's log holds when the step runs past its time."""

from __future__ import annotations

import sys

from workloads import run as runner
from workloads.benchmarks import Step


def test_a_timed_out_step_keeps_its_partial_output_as_text():
    # subprocess.run leaves a timed-out child's output as bytes even with text=True: the log must hold its lines,
    # not the bytes' repr (b'...\n...' on one line), so a parser or the fabric check still reads what it printed.
    step = Step(argv=(sys.executable, "-u", "-c", "import time; print('first line'); print('second line'); "
                      "time.sleep(30)"), tool="torch")
    log: list[str] = []
    code, out = runner.run_step(step, timeout_s=2, log=log)
    assert code == 124
    assert out.splitlines()[:2] == ["first line", "second line"]
    assert "b'" not in out and "\\n" not in out
    assert "[timed out after 2 s]" in out
