"""The pairwise fabric rounds on simulated fleets of 2 to 64 nodes: one bad node, one bad link, none. A pair's
figure is what its slower end allows; the rounds must name the bad node or link, blame nothing else, keep every
node busy (an odd one out aside) and stay within ceil(log2 N) + 1 rounds."""

from __future__ import annotations

import math
import random

import pytest

from workloads.accept_plan import judge, max_rounds, next_round

GOOD, SLOW = 100.0, 20.0  # a broken pair: its slow end moves a fifth of a healthy pair


def simulate(nodes: int, bad_node: int | None = None, bad_link: tuple[int, int] | None = None,
             noise: float = 0.1, seed: int = 0):
    """Run the rounds against a fleet; returns (history, finding)."""
    rng = random.Random(seed)
    history = []
    while (pairs := next_round(nodes, history)) is not None:
        busy = [n for p in pairs for n in p]
        assert len(busy) == len(set(busy)), f"a node in two pairs of one round: {pairs}"
        # Every node not yet named slow is in a pair, but for an odd one out (under four nodes: one pair a round).
        named = set(judge(nodes, history).slow_nodes) if history else set()
        assert len(busy) >= (2 if nodes < 4 else nodes - len(named) - 1), f"nodes left idle: {pairs}"
        history.append([(a, b, (SLOW if bad_node in (a, b) or {a, b} == set(bad_link or ()) else GOOD)
                         * (1 - noise * rng.random())) for a, b in pairs])
    return history, judge(nodes, history)


SIZES = list(range(2, 17)) + [31, 32, 33, 63, 64]


@pytest.mark.parametrize("nodes", SIZES)
def test_a_healthy_fleet_blames_nothing(nodes):
    history, found = simulate(nodes)
    assert found.slow_nodes == () and found.slow_links == () and found.unmeasured == ()
    assert len(history) <= max_rounds(nodes)


@pytest.mark.parametrize("nodes", [n for n in SIZES if n >= 3])
def test_one_bad_node_is_named_wherever_it_is(nodes):
    for bad in sorted({0, 1, nodes // 2, nodes - 1}):
        history, found = simulate(nodes, bad_node=bad, seed=bad)
        assert found.slow_nodes == (bad,), (bad, history)
        assert found.slow_links == ()
        assert len(history) <= math.ceil(math.log2(nodes)) + 1


@pytest.mark.parametrize("nodes", [n for n in SIZES if n >= 4])
def test_one_bad_link_is_named_and_neither_end_is_blamed(nodes):
    # The first round measures neighbours: a bad link among them is split and both ends are cleared.
    for link in sorted({(0, 1), (nodes - 2 - nodes % 2, nodes - 1 - nodes % 2)}):
        history, found = simulate(nodes, bad_link=link)
        assert found.slow_links == (link,) and found.slow_nodes == (), (link, history)
        assert len(history) <= max_rounds(nodes)


def test_a_bad_link_no_round_measures_blames_no_node():
    history, found = simulate(8, bad_link=(1, 6))
    measured = {frozenset((a, b)) for rnd in history for a, b, _ in rnd}
    assert frozenset((1, 6)) not in measured
    assert found.slow_nodes == () and found.slow_links == ()


def test_three_nodes_measure_every_link_and_name_the_bad_one():
    # One pair per round leaves nothing to compare a round with: all three links are measured.
    history, found = simulate(3, bad_node=0)
    assert sorted(tuple(sorted(p[:2])) for r in history for p in r) == [(0, 1), (0, 2), (1, 2)]
    assert found.slow_nodes == (0,)


def test_two_nodes_take_one_round_and_blame_nothing():
    # No other pair to compare the one pair with: the group's verdict rests on the baseline (rackform accept).
    history, found = simulate(2, bad_node=1)
    assert len(history) == 1 and found.slow_nodes == ()


def test_a_failed_pair_is_a_slow_pair():
    history = [[(0, 1, math.nan), (2, 3, 100.0)]]
    assert set(judge(4, history).suspects) == {0, 1}
    assert {n for p in next_round(4, history) for n in p} == {0, 1, 2, 3}


def test_rounds_split_a_slow_pair_onto_known_good_partners():
    first = next_round(8, [])
    assert first == [(0, 1), (2, 3), (4, 5), (6, 7)]
    history = [[(a, b, SLOW if 5 in (a, b) else GOOD) for a, b in first]]
    second = next_round(8, history)
    partners = {n: ({a, b} - {n}).pop() for a, b in second for n in (a, b) if n in (4, 5)}
    assert partners[4] not in (4, 5) and partners[5] not in (4, 5)
    assert judge(8, history).suspects == (4, 5)


def test_a_healthy_pair_at_a_third_of_the_best_is_not_blamed():
    # The rehearsal's figures (MB/s over loopback on two shared cores, node 2 starved): healthy pairs ran at 21.8
    # and 8.24, node 2's at 3.45 and 2.82. At 40% of the reference, node 3 was blamed with node 2.
    history = [[(0, 1, 21.8), (2, 3, 3.45)], [(0, 2, 2.82), (1, 3, 8.24)]]
    found = judge(4, history)
    assert found.slow_nodes == (2,) and found.slow_links == () and found.suspects == ()
    assert next_round(4, history) is None


def test_the_plan_lists_what_the_runner_runs():
    from workloads.accept_plan import NODE_TESTS, acceptance_steps

    steps = acceptance_steps("gpu", 8, multi_node=True, fsx=True, repeats=3)
    assert [s[0] for s in steps] == [*NODE_TESTS["gpu"], "fabric", "group-collective"]
    fabric = steps[-2]
    assert fabric[1] == 8 and "up to 4 pairwise rounds" in fabric[3] and fabric[2] == 30.0 * 4 * 3
    assert "allreduce-nccl" in steps[-1][3]
    # Spot: one node per job, no pairs and no collective; without FSx the storage test says what it measures.
    spot = acceptance_steps("graviton", 3, multi_node=False, fsx=False)
    assert [s[0] for s in spot] == list(NODE_TESTS["graviton"])
    assert "scratch volume" in dict((s[0], s[3]) for s in spot)["storage"]
