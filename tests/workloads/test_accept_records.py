"""Acceptance records in the results bucket: written once with their checksum, read back only when their key and
their content agree (the store's one reader, as for every other kind)."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from moto import mock_aws

from tests.conftest import versioned_bucket
from workloads.layout import accept_key, accept_schedule_key
from workloads.results import AcceptFigure, AcceptRecord, FabricPair, FabricSchedule
from workloads.store import ResultStore

BUCKET = "rackform-accept-test"
NOW = dt.datetime(2026, 12, 6, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def store():
    with mock_aws():
        s3 = versioned_bucket(BUCKET)
        yield ResultStore(BUCKET, s3)


def figure(node: int, value: float, **pair: int) -> AcceptFigure:
    return AcceptFigure(node_index=node, instance_id=f"i-0{node}", host=f"ip-10-0-0-{node}", test="fabric",
                        metric="bandwidth_max", value=value, unit="MB/s", headline="bandwidth", **pair)


def record(part: str = "round", node: int = 1, round: int = 2, **extra: object) -> AcceptRecord:
    return AcceptRecord(run_id="run-1", rack="r", node_group="g", benchmark="accept", instance_type="p5.48xlarge",
                        tier="gpu", part=part, node_index=node, round=round, nodes=4, status="succeeded",
                        written_at=NOW, figures=(figure(node, 100.0, node_b=3, round=round),
                                                 figure(node, math.nan)), **extra)


def test_each_part_lands_at_its_own_key_and_reads_back(store):
    written = [record("node", 1, 0), record("round", 1, 2), record("group", 0, 0, slow_nodes=(3,), rounds=3)]
    keys = [store.put_accept(r) for r in written]
    assert keys == ["results/run-1/r/g/accept/accept-node-1.json",
                    "results/run-1/r/g/accept/accept-round-2-node-1.json",
                    "results/run-1/r/g/accept/accept-group.json"]
    back = store.read("run-1", "accept")["accept"]
    # in key order (NaN is never equal to itself: compared as written)
    assert [r.model_dump_json() for r in back] == [written[i].model_dump_json() for i in (2, 0, 1)]
    assert math.isnan(back[1].figures[1].value)  # a failed figure stays a failed figure, never a number
    schedule = FabricSchedule(run_id="run-1", rack="r", node_group="g", benchmark="accept", round=1,
                              pairs=[FabricPair(a=0, b=1, address="10.0.0.5", ports=[47600, 47601, 47602])])
    assert store.put_accept(schedule) == accept_schedule_key("run-1", "r", "g", "accept", 1)
    assert store.read("run-1", "schedule")["schedule"] == [schedule]
    assert store.problems == []


def test_a_record_filed_under_another_nodes_key_is_refused(store):
    # Any job may write under results/: node 3's figures at node 1's key must not pass as node 1's.
    body = record("node", 3, 0).model_dump_json().encode()
    store.put_once(accept_key("run-1", "r", "g", "accept", "node", 1), body, "application/json")
    assert store.read("run-1", "accept")["accept"] == []
    [problem] = store.problems
    assert problem.kind == "tampered" and "node 3" in problem.why


def test_a_schedule_with_a_string_port_is_refused(store):
    doc = {"run_id": "run-1", "rack": "r", "node_group": "g", "benchmark": "accept", "round": 1,
           "pairs": [{"a": 0, "b": 1, "address": "10.0.0.5", "ports": ["47600"]}]}
    store.put_once(accept_schedule_key("run-1", "r", "g", "accept", 1), json.dumps(doc).encode(), "application/json")
    assert store.read("run-1", "schedule")["schedule"] == []
    assert store.problems[0].kind == "unreadable"


def test_a_certificate_is_read_back_only_at_its_own_runs_key(store):
    from workloads.layout import certificate_key
    from workloads.store import Refused

    doc = {"run_id": "run-1", "certificate_version": 1, "verdicts": ["accepted r/g"]}
    store.put_once(certificate_key("run-1"), json.dumps(doc).encode(), "application/json")
    assert store.read_one(certificate_key("run-1")) == doc  # the rest of it is rackform/acceptance's to check
    # Another run's certificate copied under this run's key is not this run's.
    other = {**doc, "run_id": "run-2"}
    store.put_once(certificate_key("run-3"), json.dumps(other).encode(), "application/json")
    with pytest.raises(Refused, match="run 'run-2'"):
        store.read_one(certificate_key("run-3"))
    assert store.read("run-1", "certificate")["certificate"] == [doc]
