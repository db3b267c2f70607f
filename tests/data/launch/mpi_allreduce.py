"""Every rank all-reduces its rank + 1; rank 0 prints the result the way a torchbench job does."""

import json
import socket

from mpi4py import MPI

comm = MPI.COMM_WORLD
total = comm.allreduce(comm.Get_rank() + 1)
hosts = comm.gather(socket.gethostname())
if comm.Get_rank() == 0:
    doc = {"benchmark": "allreduce", "metrics": [{"name": "mpi_sum", "value": total, "unit": "1"}],
           "details": {"world_size": str(comm.Get_size()), "hosts": ",".join(hosts)}}
    print("RACKFORM_RESULT " + json.dumps(doc), flush=True)
