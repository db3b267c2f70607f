"""One node of a test job for tests/workloads/test_launch.py: the runner's own entry point (workloads.run.main) with one extra
benchmark whose step runs a real mpi4py program through the launcher, so that two of these processes, given the
local executor's node environments, are a 2-node Batch job in miniature."""

import sys
from pathlib import Path

from workloads import launch, run
from workloads.benchmarks import BENCHMARKS, Benchmark, Step

PROGRAM = Path(__file__).with_name("mpi_allreduce.py")


def steps(ctx):
    if not ctx.is_main:
        return ()
    return (Step(launch.mpirun_argv((sys.executable, str(PROGRAM)), hostfile_path=ctx.hostfile,
                                    ranks=ctx.num_nodes * ctx.ranks_per_node), "torch"),)


BENCHMARKS["mpi-probe"] = Benchmark("mpi-probe", "an MPI all-reduce across the job's nodes", ("cpu",), nodes=2,
                                    max_nodes=2, steps=steps, ssh_launch=True)
sys.exit(run.main(["mpi-probe"]))
