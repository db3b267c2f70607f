"""Proof of the fabric (issue 11 item 2): the transport a collective used, read from what NCCL printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workloads import transport
from workloads.run import run_job, JobIdentity
from workloads.benchmarks import NodeContext

DATA = Path(__file__).resolve().parents[1] / "data" / "tool-output"
READINGS = [(path, r) for path, rs in json.loads((DATA / "expected.json").read_text()).items() for r in rs
            if "fabric" in r]


def test_every_nccl_debug_fixture_has_a_fabric_reading():
    assert sorted(p for p, _ in READINGS) == sorted(p.relative_to(DATA).as_posix()
                                                    for p in (DATA / "nccl-debug").iterdir())


@pytest.mark.parametrize(("path", "reading"), READINGS, ids=[p for p, _ in READINGS])
def test_published_nccl_logs_name_their_transport(path, reading):
    assert transport.detect((DATA / path).read_text(), nodes=2) == (reading["fabric"], reading["efa_devices"])


def test_one_rank_on_sockets_makes_the_collective_a_socket_one():
    efa = (DATA / "nccl-debug/efa-p5en-nccl-issue-1597.log").read_text()
    socket = (DATA / "nccl-debug/socket-lo-nccl-issue-1053.log").read_text()
    assert transport.detect(efa + socket, nodes=2) == ("socket", None)
    assert transport.detect("x [0] NCCL INFO NET/OFI Selected Provider is tcp\n", nodes=2)[0] == "socket"


def test_provider_line_of_every_aws_ofi_nccl_version():
    # "Selected Provider is %s" (1.0), "... (found %d nics)" (1.6), "Selected provider is %s, fabric is %s (found %d
    # nics)" (1.14 on): aws/aws-ofi-nccl src/nccl_ofi_net.c(pp) at those tags.
    for line, nics in (("Selected Provider is efa", None), ("Selected Provider is efa (found 4 nics)", 4),
                       ("Selected provider is efa, fabric is efa (found 4 nics)", 4),
                       ("Selected provider is efa, fabric is efa-direct (found 32 nics)", 32)):
        assert transport.detect(f"h:1:1 [0] NCCL INFO NET/OFI {line}\n", nodes=2) == ("efa", nics), line
    tcp = "h:1:1 [0] NCCL INFO NET/OFI Selected provider is tcp;ofi_rxm, fabric is 172.31.0.0/16 (found 1 nics)\n"
    assert transport.detect(tcp, nodes=2) == ("socket", None)


def test_bootstrap_over_sockets_is_not_the_data_transport():
    # NCCL 2.4 sets its bootstrap up over NET/Socket in every run (NVIDIA/nccl#229, NCCL 2.4.6 with aws-ofi-nccl):
    # the data goes where the channels say.
    bootstrap = "ip-192-168-16-255:25604:25604 [0] NCCL INFO NET/Socket : Using [0]eth0:192.168.16.255<0>\n"
    efa = "ip-192-168-16-255:25604:25604 [0] NCCL INFO NET/OFI Selected Provider is efa\n"
    channels = (DATA / "nccl-debug/ofi-no-provider-line-aws-ofi-nccl-issue-24.log").read_text()
    assert transport.detect(bootstrap + channels, nodes=2) == ("unknown", None)
    assert transport.detect(bootstrap + efa + channels, nodes=2) == ("efa", None)
    found = transport.read(bootstrap + efa + channels)
    assert found.networks == ("AWS Libfabric",) and found.bootstrap == "[0]eth0:192.168.16.255<0>"
    assert transport.detect(bootstrap + efa, nodes=2) == ("efa", None)  # the plugin's provider is the data's
    # Nothing naming another network: the socket transport is the data transport.
    assert transport.detect(bootstrap, nodes=2) == ("socket", None)


def test_net_socket_is_data_from_nccl_2_4_8_on():
    # From 2.4.8 NCCL bootstraps on its own ("Bootstrap : Using", "Bootstrap: Using" lately) and opens NET/Socket
    # only where the plugin and IB failed (NVIDIA/nccl v2.4.8-1 src/init.cc): a rank whose plugin did not load went
    # over sockets, whatever the other ranks' provider lines say. Older or unversioned logs keep the bootstrap reading.
    efa = "a:1:1 [0] NCCL INFO NET/OFI Selected Provider is efa (found 4 nics)\n"
    fell_back = "b:2:2 [0] NCCL INFO NET/Socket : Using [0]eth0:10.0.0.2<0>\n"
    for evidence in ("a:1:1 [0] NCCL INFO NCCL version 2.18.5+cuda12.2\n",
                     "b:2:2 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.2<0>\n",
                     "b:2:2 [0] NCCL INFO Bootstrap: Using eth0:10.0.0.2<0>\n"):
        assert transport.detect(evidence + efa + fell_back, nodes=2) == ("socket", None), evidence
    assert transport.detect("a:1:1 [0] NCCL INFO NCCL version 2.4.6+cuda10.0\n" + efa + fell_back,
                            nodes=2) == ("efa", 4)
    assert transport.read(efa + fell_back).bootstrap == "[0]eth0:10.0.0.2<0>"


def test_one_node_fi_pingpong_and_gloo():
    assert transport.detect("anything", nodes=1) == ("local", None)
    assert transport.detect("$ fi_pingpong -p tcp -e rdm -I 100\n", nodes=2) == ("socket", None)
    assert transport.detect("$ fi_pingpong -p efa -e rdm -I 100\n", nodes=2) == ("efa", 1)
    assert transport.detect("no lines", nodes=2, backend="gloo") == ("socket", None)
    assert transport.detect("no lines", nodes=2) == ("unknown", None)


def test_the_record_carries_the_fabric_of_collectives_only(monkeypatch):
    log = (DATA / "nccl-debug/socket-eno1-oneflow-issue-3586.log").read_text()
    monkeypatch.setattr("workloads.run.execute", lambda *a, **kw: ("succeeded", None, [], {}, log))
    job = JobIdentity(run_id="r1", benchmark="allreduce", rack="a", node_group="g", tier="gpu",
                      instance_type="p5.48xlarge")
    tools = {"run": lambda argv: None, "uverbs": 0}
    record = run_job(job, NodeContext(tier="gpu", num_nodes=2, local=True), None, echo=False, health_kwargs=tools)
    assert (record.fabric, record.efa_devices) == ("socket", None)
    gemm = run_job(JobIdentity(**{**job.__dict__, "benchmark": "gemm"}), NodeContext(tier="gpu", local=True), None,
                   echo=False, health_kwargs=tools)
    assert gemm.fabric is None
