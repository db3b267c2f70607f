"""Which transport carried a collective, read from what the job printed: proof of the fabric, not the plan's word.

`efa` where aws-ofi-nccl (or the Neuron collectives' OFI transport) selected the efa provider, `socket` for NCCL's
NET/Socket, a libfabric tcp or sockets provider, or gloo, `local` for one node. NCCL before 2.4.8 opened NET/Socket
in every run for bootstrap, so in its logs that line alone is not data over sockets.
Why, and the log lines of each NCCL and plugin version: docs/decisions/0004-transport-proven-from-logs.md
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .results import Fabric

OFI_PROVIDER = re.compile(r"NET/OFI Selected provider is ([\w;-]+)(?:, fabric is ([^\s(]+))?(?: \(found (\d+) nics\))?",
                          re.I)
# The data network: the one NCCL says it uses, the one its channels go through, and InfiniBand's own init line (NCCL
# takes IB over sockets whenever IB initialises).
NETWORK = re.compile(r"Using network ([\w ]*\w)|via NET/([^/\n]*\w)/|NET/(IB) : Using \[")
SOCKET_INIT = re.compile(r"NET/Socket : Using (.*)")
NCCL_VERSION = re.compile(r"\bNCCL version ([0-9]+)\.([0-9]+)\.([0-9]+)")
BOOTSTRAP_INIT = re.compile(r"\bBootstrap ?: Using\b")
# The first release whose bootstrap does not open the NET/Socket transport (NVIDIA/nccl v2.4.8-1, src/init.cc initNet).
OWN_BOOTSTRAP = (2, 4, 8)
PINGPONG = re.compile(r"^\$ fi_pingpong\b.*?\s-p\s+(\w+)", re.M)
# libfabric providers that are sockets under another name.
SOCKET_PROVIDERS = {"tcp", "sockets", "udp", "tcp;ofi_rxm", "udp;ofi_rxd"}


def _kind(provider: str) -> Fabric:
    return "efa" if provider == "efa" else "socket" if provider in SOCKET_PROVIDERS else "unknown"


class Transport(NamedTuple):
    """What a debug log says carried the data, and the evidence for it."""

    fabric: Fabric
    efa_devices: int | None  # EFA devices per node, where the provider line counts them
    providers: tuple[str, ...]  # libfabric providers aws-ofi-nccl selected, as printed ("efa", "tcp;ofi_rxm")
    fabrics: tuple[str, ...]  # libfabric fabric names printed beside them (1.14 and later: "efa", "efa-direct")
    networks: tuple[str, ...]  # the data networks NCCL named ("Libfabric", "AWS Libfabric", "Socket", "IB")
    bootstrap: str | None  # the NET/Socket interfaces, where the data went over another network


def _socket_may_be_bootstrap(log: str) -> bool:
    """Whether a NET/Socket line in `log` may be NCCL's bootstrap rather than data: NCCL before 2.4.8, or a log
    that says no version. The oldest version printed decides: a rank of an older release may have bootstrapped."""
    versions = [tuple(int(n) for n in m.groups()) for m in NCCL_VERSION.finditer(log)]
    if versions:
        return min(versions) < OWN_BOOTSTRAP
    return BOOTSTRAP_INIT.search(log) is None


def read(log: str) -> Transport:
    """The transport a collective's log names; any rank over sockets makes it a socket one (the slowest link sets an
    all-reduce's pace). "unknown" where the log names no provider and no socket transport."""
    providers = [(m[1].lower(), m[2] or "", m[3]) for m in OFI_PROVIDER.finditer(log)]
    names = tuple(dict.fromkeys(p for p, _, _ in providers))
    fabrics = tuple(dict.fromkeys(f for _, f, _ in providers if f))
    networks = tuple(dict.fromkeys(next(g for g in m.groups() if g) for m in NETWORK.finditer(log)))
    sockets = SOCKET_INIT.search(log)
    nics = [int(n) for p, _, n in providers if p == "efa" and n]
    on_sockets = "Socket" in networks or any(_kind(p) == "socket" for p in names) or \
        bool(sockets and (not (networks or names) or not _socket_may_be_bootstrap(log)))
    bootstrap = sockets[1].strip() if sockets and not on_sockets else None
    if on_sockets:
        return Transport("socket", None, names, fabrics, networks, None)
    if "efa" in names:
        return Transport("efa", max(nics) if nics else None, names, fabrics, networks, bootstrap)
    return Transport("unknown", None, names, fabrics, networks, bootstrap)


def detect(log: str, *, nodes: int, backend: str | None = None) -> tuple[Fabric, int | None]:
    """(fabric, EFA devices per node or None) for a collective's log on `nodes` nodes."""
    if nodes <= 1:
        return "local", None
    found = read(log)
    if found.fabric != "unknown" or found.providers or found.networks:
        return found.fabric, found.efa_devices
    if m := PINGPONG.search(log):
        return _kind(m[1]), 1 if m[1] == "efa" else None
    if backend == "gloo":
        return "socket", None
    return "unknown", None
