"""From acceptance records to the group's verdict, its lines and the certificate: rackform/acceptance/records.py,
certificate.py and rackform/render/acceptance.py."""

from __future__ import annotations

import hashlib
import json
import math

import jsonschema
import pytest

from rackform.acceptance.certificate import json_schema
from rackform.acceptance.records import judge_group
from rackform.reference.baselines import load_baselines
from rackform.render.acceptance import verdict_lines
from tests.acceptance.builders import cert, fig, four_nodes, plan, record


def test_slow_node_is_named_with_its_figure_instance_and_cost() -> None:
    g = judge_group(plan(), four_nodes(slow=2), load_baselines())
    lines = verdict_lines(cert([g]))
    assert "outlier graviton/cpu node 2: cpu 600 events/s, 40.15% below the median of 4 nodes (i-02)" in lines
    # median of 1000, 1005, 1010 and 600 is 1002.5; the slowest costs (1 - 600/1002.5) of 4 x 2 $/hour
    assert g.straggler is not None and g.straggler.lost_usd_per_hour == pytest.approx((1 - 600 / 1002.5) * 8)
    assert any(line.startswith("straggler graviton/cpu: node 2 (i-02) sets the pace at 40.15% below the median cpu: "
                               "3.21 of the group's 8.00 $/hour lost; replacing the outlier(s) "
                               "saves") for line in lines)
    assert g.status == "rejected" and lines[-1].startswith("not accepted: run run-1")


def test_alike_nodes_are_accepted_in_one_line() -> None:
    g = judge_group(plan(), four_nodes(slow=None), load_baselines())
    lines = verdict_lines(cert([g]))
    assert "accepted graviton/cpu: 4 nodes, cpu median 1,002 events/s, spread 2.00%" in lines
    assert g.status == "accepted" and lines[-1].startswith("accepted: run run-1")
    assert "note graviton/cpu: no published baseline for c7g.16xlarge: cpu" in lines


def test_an_unsteady_group_is_said_so_and_not_accepted() -> None:
    records = [record("node", i, [fig(i, v)]) for i, v in enumerate([1000.0, 1300.0, 950.0, 1100.0, 600.0])]
    g = judge_group(plan(nodes=5), records, load_baselines())
    assert g.status == "rejected"
    assert "unsteady graviton/cpu: 5 nodes, cpu median 1,000 events/s, spread 70.00% among the nodes within the " \
        "band, over 10.00%: too noisy to accept the group or to name a node by" in verdict_lines(cert([g]))


def test_a_node_that_sent_nothing_is_not_accepted_by_its_silence() -> None:
    records = four_nodes(slow=None)[:3] + [record("node", 3, [], status="failed", reason="sysbench: not found")]
    g = judge_group(plan(), records, load_baselines())
    assert "outlier graviton/cpu node 3: cpu failed, no figure (instance id unknown)" in verdict_lines(cert([g]))
    assert g.status == "rejected"


def test_fabric_figure_is_each_nodes_best_pair_and_the_rounds_finding_is_shown() -> None:
    # round 1: (0,1) fast, (2,3) slow; round 2 re-pairs: (0,2) fast, (1,3) slow: node 3 is slow with every peer
    pairs = {1: [(0, 1, 12000.0), (2, 3, 3000.0)], 2: [(0, 2, 11900.0), (1, 3, 3100.0)]}
    # node a (the server) writes the pair's figure; node b's round record carries none
    rounds = [record("round", a, [fig(a, bw, test="fabric", metric="bandwidth_max", unit="MB/s", headline="bandwidth",
                                      node_b=b, rnd=r)], rnd=r) for r, ps in pairs.items() for a, b, bw in ps]
    rounds += [record("round", b, [], rnd=r) for r, ps in pairs.items() for _, b, _ in ps]
    group = record("group", 0, [], rounds=2, slow_nodes=[3])
    g = judge_group(plan(), [*four_nodes(slow=None), *rounds, group], load_baselines())
    fabric = next(v for v in g.verdicts if v.test == "fabric")
    assert [f.value for f in fabric.figures] == [12000, 12000, 11900, 3100]
    assert [(o.node, o.instance_id) for o in fabric.outliers] == [(3, "i-03")]  # node b's id from its own record
    assert g.bisection == ("2 fabric round(s): slow node 3 (i-03)",)


def test_rounds_on_a_fabric_too_noisy_for_its_band_name_no_node() -> None:
    # Every pair differs from the next by far more than 10%: the rounds' "slow node 2" is the noise's, not node 2's.
    pairs = {1: [(0, 1, 12000.0), (2, 3, 3000.0)], 2: [(0, 2, 6000.0), (1, 3, 9000.0)]}
    rounds = [record("round", a, [fig(a, bw, test="fabric", metric="bandwidth_max", unit="MB/s", headline="bandwidth",
                                      node_b=b, rnd=r)], rnd=r) for r, ps in pairs.items() for a, b, bw in ps]
    group = record("group", 0, [], rounds=2, slow_nodes=[2])
    g = judge_group(plan(), [*four_nodes(slow=None), *rounds, group], load_baselines())
    fabric = next(v for v in g.verdicts if v.test == "fabric" and v.headline == "bandwidth")
    assert fabric.unsteady
    assert g.bisection == ("2 fabric round(s): the pairs' fabric bandwidth spread 57%, over 10%: too noisy to name a "
                           "node or link by",)
    assert not any("node 2" in line for line in verdict_lines(cert([g])) if line.startswith("bisection"))
    assert g.status == "rejected"  # unsteady, so not accepted either


def test_a_bad_link_rejects_the_group_though_every_node_has_a_fast_pair() -> None:
    group = record("group", 0, [], rounds=3, slow_links=[(1, 2)])
    g = judge_group(plan(), [*four_nodes(slow=None), group], load_baselines())
    assert g.status == "rejected" and g.bisection == ("3 fabric round(s): slow link between nodes 1 and 2",)


def test_group_collective_is_held_against_the_published_p5_figure() -> None:
    collective = record("group", 0, [fig(0, 300.0, test="group-collective", metric="busbw_max", unit="GB/s",
                                         headline="busbw")], nodes=2)
    g = judge_group(plan(nodes=2, instance_type="p5.48xlarge"), [collective], load_baselines())
    v = next(v for v in g.verdicts if v.test == "group-collective")
    assert v.baseline is not None and v.baseline.value == 479.28 and v.outliers[0].reasons == ("baseline",)
    issued = cert([g])
    assert set(issued.baseline_sources) == {"awsome-nccl-tests"}
    assert "below baseline graviton/cpu: group-collective busbw 300 GB/s across 2 nodes, past 383 GB/s, the floor " \
        "set by the published 479 GB/s for p5.48xlarge" in verdict_lines(issued)
    failed = record("group", 0, [fig(0, math.nan, test="group-collective", metric="busbw_max", unit="GB/s",
                                     headline="busbw")], nodes=2)
    g = judge_group(plan(nodes=2, instance_type="p5.48xlarge"), [failed], load_baselines())
    assert "failed graviton/cpu: group-collective busbw across 2 nodes, no figure" in verdict_lines(cert([g]))


def test_a_group_collective_that_did_not_run_is_said_so_and_one_that_ran_is_not() -> None:
    why = "group collective: allreduce-nccl: not installed: all_reduce_perf"
    skipped = record("group", 0, [], rounds=1, reason=why)
    g = judge_group(plan(), [*four_nodes(slow=None), skipped], load_baselines())
    assert f"cannot prove graviton/cpu: the group's collective: no figure came back ({why})" in verdict_lines(cert([g]))
    assert g.status == "accepted"  # every figure it has is; the line says what it lacks
    ran = record("group", 0, [fig(0, 0.4, test="group-collective", metric="busbw_max", unit="GB/s",
                                  headline="busbw")], rounds=1)
    g = judge_group(plan(), [*four_nodes(slow=None), ran], load_baselines())
    assert g.cannot_prove == () and not any("collective" in line for line in verdict_lines(cert([g]))
                                            if line.startswith("cannot prove"))
    one = record("group", 0, [], nodes=1, reason="one node: no fabric between nodes")  # no collective to run
    assert judge_group(plan(nodes=1), [record("node", 0, [fig(0, 1000.0)], nodes=1), one],
                       load_baselines()).cannot_prove == ()


def test_nothing_came_back() -> None:
    g = judge_group(plan(), [], load_baselines())
    assert g.status == "not measured"
    assert verdict_lines(cert([g]))[0] == "not measured graviton/cpu: no acceptance record came back"


def test_certificate_validates_against_its_schema_and_reads_back() -> None:
    records = four_nodes(slow=1) + [record("node", 0, [fig(0, math.nan, headline="memory",
                                                           metric="transfer_mib_per_s", unit="MiB/s")])]
    issued = cert([judge_group(plan(), records, load_baselines())])
    document = json.loads(issued.model_dump_json())
    jsonschema.validate(document, json_schema())
    assert type(issued).model_validate_json(issued.model_dump_json()) == issued
    assert document["spec_sha256"] == hashlib.sha256(b"name: demo\n").hexdigest()
    # a failed figure is null in JSON, never a number the schema or a reader would take for one
    memory = next(v for v in document["groups"][0]["verdicts"] if v["headline"] == "memory")
    assert memory["figures"][0]["value"] is None
    document["thresholds"]["outlier_mads"] = "3.5"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json_schema())
