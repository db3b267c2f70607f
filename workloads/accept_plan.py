"""Rack acceptance, the pure part: which tests a node group's acceptance job runs, how long they take, and the
pairwise fabric rounds (which pairs next, and what the rounds so far isolate). No boto3: `rackform accept` plans
with it before anything runs; workloads/accept.py runs it in the job.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# The single-node tests of each tier: GEMM on the accelerator, the on-node collective (NVLink, NeuronLink), CPU and
# memory bandwidth (sysbench), storage on the FSx path (fio). Locally: torch on the CPU and what the machine has.
NODE_TESTS: dict[str, tuple[str, ...]] = {
    "gpu": ("cpu", "gemm", "allreduce-nccl", "storage"),
    "trainium": ("cpu", "gemm", "allreduce-nccom", "storage"),
    "graviton": ("cpu", "gemm", "storage"),
    "cpu": ("cpu", "gemm", "storage"),
}
# The rehearsal: sysbench alone (a fraction of a second of fixed work a node: workloads/benchmarks.py); torch's GEMM
# costs a torch start per node, tens of seconds for four local nodes on two cores, and the local nodes share one disk.
LOCAL_NODE_TESTS = ("cpu",)
# The whole group's collective: nccl-tests and nccom-test over the launch's SSH, torch (gloo) on the CPU tiers.
COLLECTIVE = {"gpu": "allreduce-nccl", "trainium": "allreduce-nccom", "graviton": "allreduce", "cpu": "allreduce"}
FABRIC_HEADLINE = "bandwidth"  # the figure a pair is judged by: fi_pingpong's best bandwidth, larger is better
# A pair is slow when it moves less than 30% of what the group's nodes reach: the upper median over the nodes of
# each node's best pair (a node's best pair is what it can do; the upper median is a healthy node's while fewer than
# half the nodes are slow, and after the first round a slow node's partner looks as slow as it does). The rounds look
# for broken pairs (a path fallen back to TCP, a node starved of CPU), which cost far more than 70%; subtler
# shortfalls are left to `rackform accept`'s robust band over each node's best pair. The rehearsal's loopback pairs
# on two shared cores varied by up to 2.6 to 1 between healthy pairs (8.24 and 21.8 MB/s), which a stricter
# threshold took for a fault; its starved node's pairs ran at 13% and 16% of the best.
SLOW_PAIR = 0.3


# --- the fabric rounds, as a pure function ------------------------------------------------------------------------

Pair = tuple[int, int]
Measured = tuple[int, int, float]  # (node a, node b, the pair's figure: larger is better)


def max_rounds(nodes: int) -> int:
    """The most fabric rounds a group of `nodes` gets: ceil(log2 N) + 1."""
    return math.ceil(math.log2(max(nodes, 2))) + 1


@dataclass(frozen=True)
class Finding:
    """What the rounds so far say: the slow nodes and links they isolate, and the nodes still to test."""

    slow_nodes: tuple[int, ...]
    slow_links: tuple[Pair, ...]
    suspects: tuple[int, ...]  # in a slow pair, not yet cleared or named
    unmeasured: tuple[int, ...]


def judge(nodes: int, history: Sequence[Sequence[Measured]]) -> Finding:
    """A pair is slow below SLOW_PAIR x the upper median of the nodes' best pairs, or when it failed (NaN). A node in a
    pair that is not slow is good. A node with no good pair is named slow once two different partners, one of them
    good, were slow with it (one bad link cannot explain both); a slow pair of two good nodes is a slow link."""
    measured = [m for rnd in history for m in rnd]
    best: dict[int, float] = {}
    for a, b, v in measured:
        for n in (a, b):
            if not math.isnan(v):
                best[n] = max(best.get(n, v), v)
    reference = statistics.median_high(best.values()) if best else math.nan
    slow = [(a, b) for a, b, v in measured if math.isnan(v) or v < SLOW_PAIR * reference]
    good = {n for a, b, v in measured if (a, b) not in slow for n in (a, b)}
    partners: dict[int, set[int]] = {}
    for a, b in slow:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    slow_nodes = sorted(n for n, ps in partners.items()
                        if n not in good and len(ps) >= 2 and ps & good)
    suspects = sorted(n for n in partners if n not in good and n not in slow_nodes)
    links = sorted({(min(a, b), max(a, b)) for a, b in slow if a in good and b in good})
    seen = {n for a, b, _ in measured for n in (a, b)}
    return Finding(tuple(slow_nodes), tuple(links), tuple(suspects), tuple(n for n in range(nodes) if n not in seen))


def next_round(nodes: int, history: Sequence[Sequence[Measured]]) -> list[Pair] | None:
    """The pairs of the next round, or None when the rounds are over.

    Round 1 pairs neighbours (0-1, 2-3, ...). After it, each suspect is re-paired with a good node it has not met,
    and every other node is paired too, with one it has not met where it can (every node busy in every round; an
    odd node out waits). Under four nodes a round has one pair and nothing to compare it with, so every pair is
    measured (three rounds for three nodes). Over when nothing is left to test or after max_rounds(nodes) rounds."""
    if nodes < 2 or len(history) >= max_rounds(nodes):
        return None
    met = {frozenset((a, b)) for rnd in history for a, b, _ in rnd}
    if not history:
        return [(i, i + 1) for i in range(0, nodes - 1, 2)]
    if nodes < 4:
        unmet = [(a, b) for a in range(nodes) for b in range(a + 1, nodes) if frozenset((a, b)) not in met]
        return unmet[:1] or None
    found = judge(nodes, history)
    if not found.suspects and not found.unmeasured:
        return None
    slow = set(found.slow_nodes)
    good = [n for n in range(nodes) if n not in slow and n not in found.suspects and n not in found.unmeasured]
    free = [n for n in range(nodes) if n not in slow]
    pairs: list[Pair] = []
    for s in (*found.suspects, *found.unmeasured):
        partner = next((g for g in good if g in free and frozenset((s, g)) not in met), None) \
            or next((g for g in good if g in free), None)
        if partner is not None and s in free:
            pairs.append((partner, s))
            free.remove(partner)
            free.remove(s)
    while len(free) >= 2:  # the rest: each with one it has not met where it can
        a = free.pop(0)
        b = next((n for n in free if frozenset((a, n)) not in met), free[0])
        free.remove(b)
        pairs.append((a, b))
    return pairs or None


# Seconds each test takes on AWS, one repeat, from the durations workloads/benchmarks.py gives the tools where it
# sets them (sysbench cpu and memory --time=30 each; fio three steps of --runtime=30); the others are estimates,
# not measured on AWS (GEMM over torchbench's sizes, an nccl-tests or nccom-test sweep from 8 B to 8 GiB, a
# fi_pingpong size sweep of 10,000 iterations).
TEST_SECONDS = {"gemm": 60.0, "cpu": 60.0, "storage": 90.0, "allreduce-nccl": 120.0, "allreduce-nccom": 120.0,
                "allreduce": 120.0, "fabric": 30.0}
WHAT = {"gemm": "GEMM throughput on the accelerator (torch)", "cpu": "CPU events/s and memory bandwidth (sysbench)",
        "storage": "storage bandwidth and IOPS on the FSx path (fio)",
        "allreduce-nccl": "all-reduce across the node's GPUs over NVLink (nccl-tests)",
        "allreduce-nccom": "all-reduce across the node's NeuronCores over NeuronLink (nccom-test)",
        "allreduce": "all-reduce (torch)", "fabric": "fi_pingpong bandwidth and latency between two nodes"}


def acceptance_steps(tier: str, nodes: int, multi_node: bool, fsx: bool,
                     repeats: int = 3) -> list[tuple[str, int, float, str]]:
    """(test, nodes busy, expected seconds on AWS, what it measures) for each step of a group's acceptance job, in
    order; the fabric rounds counted at their most (max_rounds). Without a multi-node job (Spot groups) only the
    single-node tests run, each node as a job of its own; without FSx the storage test measures the node's scratch
    volume."""
    steps = [(t, nodes, TEST_SECONDS[t] * repeats,
              WHAT[t] if t != "storage" or fsx else "storage bandwidth and IOPS on the node's scratch volume (fio)")
             for t in NODE_TESTS[tier]]
    if multi_node and nodes >= 2:
        steps.append(("fabric", 2 * (nodes // 2), TEST_SECONDS["fabric"] * max_rounds(nodes) * repeats,
                      f"{WHAT['fabric']}: up to {max_rounds(nodes)} pairwise rounds"))
        collective = COLLECTIVE[tier]
        steps.append(("group-collective", nodes, TEST_SECONDS[collective],
                      f"the whole group's all-reduce ({collective})"))
    return steps
