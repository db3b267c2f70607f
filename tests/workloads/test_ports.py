"""The ports a job uses: port_spans covers every port the benchmarks' steps name for the job's repeats, and
free_port_ranges hands ranges whose every port was free, apart from each other and from those still held."""

from __future__ import annotations

import itertools
import re
import socket
from pathlib import Path

import pytest

from workloads.benchmarks import BENCHMARKS, NodeContext, port_spans
from workloads.contract import MAX_REPEATS
from workloads.launch import LaunchError, free_port_ranges, system_ports

MASTER, FABRIC = 20000, 40000  # far enough apart that a port near one is never near the other


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_the_spans_cover_every_port_the_steps_use(name: str) -> None:
    benchmark = BENCHMARKS[name]
    for repeats, local, nodes in itertools.product(range(1, MAX_REPEATS + 1), (True, False),
                                                   range(benchmark.min_nodes, min(benchmark.max_nodes, 2) + 1)):
        master, fabric = port_spans(repeats)
        used = set()
        for repeat, index in itertools.product(range(repeats), range(nodes)):
            ctx = NodeContext(tier=benchmark.tiers[0], node_index=index, num_nodes=nodes, local=local,
                              master_port=MASTER, fabric_port=FABRIC, repeats=repeats, repeat=repeat, cpus=2,
                              hosts=("10.0.0.1", "10.0.0.2")[:nodes] if nodes > 1 else ())
            for step in benchmark.steps(ctx):
                text = " ".join((*step.argv, *(v for _, v in step.env)))
                used |= {int(n) for n in re.findall(r"\d+", text) if MASTER <= int(n) < FABRIC + 1000}
        assert used <= {*range(MASTER, MASTER + master), *range(FABRIC, FABRIC + fabric)}, (name, repeats)


def test_a_range_passes_over_a_port_something_listens_on(few_ports: range) -> None:
    with socket.socket() as a, socket.socket() as b:
        a.bind(("", few_ports.start + 3))
        b.bind(("", few_ports.start + 14))
        for _ in range(10):
            [chosen] = free_port_ranges([5])
            assert chosen[0] in few_ports and chosen[-1] in few_ports
            assert few_ports.start + 3 not in chosen and few_ports.start + 14 not in chosen
    for port in chosen:  # released once chosen, every one bindable
        with socket.socket() as s:
            s.bind(("", port))


def test_ranges_stay_apart_from_each_other_and_from_those_held(few_ports: range) -> None:
    for _ in range(10):
        held = free_port_ranges([4, 3])
        again = free_port_ranges([4, 3], avoid=held)
        ports = [p for r in (*held, *again) for p in r]
        assert len(ports) == len(set(ports)) == 14 and set(ports) <= set(few_ports)


def test_ranges_stay_out_of_the_ports_the_system_hands_out_itself() -> None:
    ranges = free_port_ranges([4, 3] * 20)
    assert not any(p in system_ports() for r in ranges for p in r)
    assert all(r.start >= 1024 for r in ranges)


def test_the_system_range_is_read_from_the_kernel_or_taken_as_linux_default(tmp_path: Path) -> None:
    (tmp_path / "range").write_text("40000\t50999\n")
    assert system_ports(tmp_path / "range") == range(40000, 51000)
    assert system_ports(tmp_path / "missing") == range(32768, 61000)


def test_no_room_for_a_range_is_an_error_that_says_so() -> None:
    with pytest.raises(LaunchError, match="no 70000 consecutive free ports outside the system's own range"):
        free_port_ranges([70000])


def test_a_system_range_of_every_unprivileged_port_leaves_any_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel whose ip_local_port_range spans every unprivileged port leaves nothing outside it: the ranges are
    then chosen among the free ports anywhere (apart from each other), not refused, or no local job could run."""
    monkeypatch.setattr("workloads.launch.system_ports", lambda: range(1024, 65536))
    ranges = free_port_ranges([4, 3, 1])
    ports = [p for r in ranges for p in r]
    assert [len(r) for r in ranges] == [4, 3, 1] and len(set(ports)) == 8 and min(ports) >= 1024
