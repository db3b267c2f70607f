"""Which transport carried a collective, read from what the job printed: proof of the fabric, not the plan's word.

NCCL with NCCL_DEBUG=INFO names its network plugin: aws-ofi-nccl prints `NET/OFI Selected Provider is efa (found N
nics)` and `Using network Libfabric` (`AWS Libfabric` in older builds, channels `via NET/AWS Libfabric/0`); without
a working plugin NCCL falls back to `NET/Socket : Using [0]eth0:...`, `Using network Socket`, channels `via
NET/Socket/1`. The same libfabric provider line serves the Neuron collectives' OFI transport. A collective on one node
never leaves it ("local"); gloo is TCP ("socket"); fi_pingpong uses the provider its command line names.
"""

from __future__ import annotations

import re

from .results import Fabric

OFI_PROVIDER = re.compile(r"NET/OFI Selected Provider is (\w+)(?: \(found (\d+) nics\))?")
SOCKET = re.compile(r"NET/Socket : Using|Using network Socket|via NET/Socket")
PINGPONG = re.compile(r"^\$ fi_pingpong\b.*?\s-p\s+(\w+)", re.M)
# libfabric providers that are sockets under another name.
SOCKET_PROVIDERS = {"tcp", "sockets", "udp", "tcp;ofi_rxm", "udp;ofi_rxd"}


def _kind(provider: str) -> Fabric:
    return "efa" if provider == "efa" else "socket" if provider in SOCKET_PROVIDERS else "unknown"


def detect(log: str, *, nodes: int, backend: str | None = None) -> tuple[Fabric, int | None]:
    """(fabric, EFA devices per node or None) for a collective's log. Any rank over sockets makes the whole
    collective a socket one: the slowest link sets an all-reduce's pace."""
    if nodes <= 1:
        return "local", None
    providers = OFI_PROVIDER.findall(log)
    nics = [int(n) for p, n in providers if p == "efa" and n]
    if SOCKET.search(log) or any(_kind(p) == "socket" for p, _ in providers):
        return "socket", None
    if any(p == "efa" for p, _ in providers):
        return "efa", max(nics) if nics else None
    if m := PINGPONG.search(log):
        return _kind(m[1]), 1 if m[1] == "efa" else None
    if backend == "gloo":
        return "socket", None
    return "unknown", None
