"""The health step (issue 11 item 1): checks over real command outputs, the collector, records marked invalid."""

from __future__ import annotations

from workloads.results import SCHEMA_VERSION, ResultRecord

V1_RECORD = {"schema_version": 1, "run_id": "r1", "benchmark": "cpu", "tool": "sysbench-cpu", "rack": "a",
             "node_group": "g", "tier": "cpu", "instance_type": "c7g.large", "node_count": 1, "status": "succeeded",
             "started_at": "2025-01-01T00:00:00Z", "ended_at": "2025-01-01T00:01:00Z"}


def test_version_1_records_stay_readable_and_valid():
    record = ResultRecord.model_validate(V1_RECORD)
    assert (record.schema_version, record.validity, record.invalid_reason, record.fabric) == (1, "valid", None, None)
    assert SCHEMA_VERSION == 2
    assert ResultRecord.model_validate({**V1_RECORD, "schema_version": 2, "validity": "invalid",
                                        "invalid_reason": "node 1: accelerators: 7 of 8 GPUs"}).validity == "invalid"


import datetime as dt  # noqa: E402
import json  # noqa: E402

from workloads import health  # noqa: E402
from workloads.benchmarks import NodeContext  # noqa: E402
from workloads.results import HealthCheck, HealthRecord  # noqa: E402
from workloads.run import JobIdentity, job_health, run_job  # noqa: E402

# `fi_info -p efa` on one EFA, as printed in ofiwg/libfabric issue #5689: two blocks (rdm, dgrm) for one device.
FI_INFO_ONE_EFA = """provider: efa
    fabric: EFA-fe80::39:beff:fe6e:c23
    domain: efa_0-rdm
    version: 2.0
    type: FI_EP_RDM
    protocol: FI_PROTO_EFA
provider: efa
    fabric: EFA-fe80::39:beff:fe6e:c23
    domain: efa_0-dgrm
    version: 2.0
    type: FI_EP_DGRAM
    protocol: FI_PROTO_EFA
provider: efa;ofi_rxd
    fabric: EFA-fe80::39:beff:fe6e:c23
    domain: efa_0-dgrm
    version: 1.0
    type: FI_EP_RDM
    protocol: FI_PROTO_RXD
"""
SMI_8 = "".join(f"{i}, NVIDIA H100 80GB HBM3, 0\n" for i in range(8))
CHRONY_SYNCED = """Reference ID    : A9FEA97B (169.254.169.123)
Stratum         : 4
Ref time (UTC)  : Wed Oct 16 17:09:56 2024
System time     : 0.000001234 seconds slow of NTP time
Last offset     : -0.000002114 seconds
Leap status     : Normal
"""


def test_gpu_count_and_ecc_against_the_plan():
    assert [c.status for c in health.check_gpus(SMI_8, 8)] == ["passed", "passed"]
    seven = health.check_gpus("".join(SMI_8.splitlines(True)[:7]), 8)[0]
    assert seven.status == "failed" and "7 of 8" in seven.detail
    ecc = health.check_gpus(SMI_8.replace("3, NVIDIA H100 80GB HBM3, 0", "3, NVIDIA H100 80GB HBM3, 2"), 8)[1]
    assert ecc.status == "failed" and "GPU 3 (2)" in ecc.detail
    assert health.check_gpus(SMI_8.replace(", 0\n", ", [N/A]\n"), 8)[1].status == "passed"
    driver_gone = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
                   "latest NVIDIA driver is installed and running.\n\n[exit 9] ")
    assert "0 of 8" in health.check_gpus(driver_gone, 8)[0].detail


def test_nvlink_inactive_link_fails():
    status = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\n\t Link 0: 26.562 GB/s\n\t Link 1: <inactive>\n"
    check = health.check_nvlink(status)
    assert check.status == "failed" and "inactive: link 1" in check.detail
    assert health.check_nvlink(status.replace("<inactive>", "26.562 GB/s")).status == "passed"
    assert health.check_nvlink("GPU 0: NVIDIA A10G (UUID: GPU-2)\n").status == "not applicable here"


def test_efa_devices_from_fi_info_against_the_containers_uverbs():
    assert health.efa_domains(FI_INFO_ONE_EFA) == {"efa_0"}
    assert health.check_efa(FI_INFO_ONE_EFA, 1, True).status == "passed"
    short = health.check_efa(FI_INFO_ONE_EFA, 4, True)
    assert short.status == "failed" and "1 EFA devices" in short.detail and "4 /dev/infiniband" in short.detail
    assert health.check_efa(None, 4, True).status == "failed"
    assert health.check_efa(None, 0, False).status == "not applicable here"


def test_neuron_devices_and_cores():
    two = '[{"neuron_device": 0, "nc_count": 2}, {"neuron_device": 1, "nc_count": 2}]'
    assert [c.status for c in health.check_neuron(two, 2, 4)] == ["passed", "passed"]
    assert [c.status for c in health.check_neuron(two, 16, 32)] == ["failed", "failed"]
    assert health.check_neuron("not json", 16, 32)[0].status == "failed"


def test_clock_and_fsx(tmp_path):
    assert health.check_clock(CHRONY_SYNCED).status == "passed"
    assert health.check_clock(CHRONY_SYNCED.replace("Normal", "Not synchronised")).status == "failed"
    assert health.check_clock(CHRONY_SYNCED.replace("0.000001234 seconds slow", "2.5 seconds fast")).status == \
        "failed"
    mounts = tmp_path / "mounts"
    mounts.write_text("10.0.0.5@tcp:/abcdefgh /fsx lustre rw,relatime 0 0\n")
    assert health.check_fsx("/fsx", str(mounts)).status == "passed"
    assert health.check_fsx("/data", str(mounts)).status == "failed"
    assert health.check_fsx(None, str(mounts)).status == "not applicable here"


def _tools(outputs):
    return lambda argv: outputs.get(argv[0])


def test_collector_on_a_gpu_node_with_a_missing_gpu_fails():
    ctx = NodeContext(tier="gpu", gpus=8, efa=True)
    checks, _ = health.collect(ctx, neuron_cores=0, uverbs=1, mounts="/nonexistent",
                               run=_tools({"nvidia-smi": SMI_8.split("\n", 1)[1], "fi_info": FI_INFO_ONE_EFA}))
    by = {c.name: c for c in checks}
    assert by["gpus"].status == "failed" and by["efa"].status == "passed"
    assert by["clock"].status == "not applicable here"
    container = health.collect(ctx, neuron_cores=0, uverbs=1, mounts="/nonexistent",
                               run=_tools({"chronyc": "506 Cannot talk to daemon\n"}))[0]
    assert [c.status for c in container if c.name == "clock"] == ["not applicable here"]


def test_collector_missing_tools_fail_on_a_real_node_and_do_not_apply_locally():
    ctx = NodeContext(tier="gpu", gpus=8, efa=True, fsx_mount="/fsx")
    real = {c.name: c.status for c in health.collect(ctx, neuron_cores=0, uverbs=0, run=_tools({}),
                                                     mounts="/nonexistent")[0]}
    assert real["gpus"] == "failed" and real["efa"] == "failed" and real["fsx"] == "failed"
    local = health.collect(NodeContext(tier="gpu", gpus=8, efa=True, fsx_mount="/fsx", local=True),
                           neuron_cores=0, uverbs=0, run=_tools({}))[0]
    assert {c.status for c in local} == {"not applicable here"}
    assert all(c.detail for c in local)


def _health(index, *checks):
    return HealthRecord(run_id="r1", benchmark="allreduce", rack="a", node_group="g", instance_type="p5.48xlarge",
                        node_index=index, hostname=f"ip-{index}", checked_at=dt.datetime.now(dt.timezone.utc),
                        checks=checks)


class _Store:
    def __init__(self, records):
        self.records = records

    def health(self, run_id, job=None):
        return self.records


def test_a_failing_or_silent_node_makes_the_job_invalid():
    job = JobIdentity(run_id="r1", benchmark="allreduce", rack="a", node_group="g", tier="gpu",
                      instance_type="p5.48xlarge")
    ctx = NodeContext(tier="gpu", num_nodes=3)
    ok = HealthCheck(name="gpus", status="passed", detail="8 of 8")
    bad = HealthCheck(name="gpus", status="failed", detail="7 of 8 planned GPUs visible")
    assert job_health(job, ctx, _health(0, ok), _Store([_health(1, ok), _health(2, ok)])) is None
    why = job_health(job, ctx, _health(0, ok), _Store([_health(1, bad)]))
    assert "node 1 (ip-1): gpus: 7 of 8" in why and "node 2: no health record" in why


def test_runner_writes_health_first_and_marks_the_record_invalid(monkeypatch):
    written = []

    class Store:
        def put_health(self, record):
            written.append(("health", record))

        def put_log(self, key, text):
            written.append(("log", text))

        def put_record(self, record):
            written.append(("record", record))

        def health(self, run_id, job=None):
            return []

    job = JobIdentity(run_id="r1", benchmark="gemm", rack="a", node_group="g", tier="gpu",
                      instance_type="p5.48xlarge")
    ctx = NodeContext(tier="gpu", gpus=8, local=False)
    monkeypatch.setattr("workloads.run.execute", lambda *a, **kw: ("succeeded", None, [], {}, "ran\n"))
    record = run_job(job, ctx, Store(), echo=False, health_kwargs={"run": _tools({}), "uverbs": 0})
    assert [w[0] for w in written] == ["health", "log", "record"]
    assert record.validity == "invalid" and "gpus: nvidia-smi not found" in record.invalid_reason
    assert "[health node 0] gpus: failed" in written[1][1]


# --- rackform health RUN --------------------------------------------------------------------------------------

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from workloads.store import ResultStore  # noqa: E402

from tests.conftest import run_cli  # noqa: E402

BUCKET = "health-results"


@pytest.fixture
def store(monkeypatch):
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield ResultStore(BUCKET, client)


def cli(capsys, *argv):
    return run_cli(capsys, *argv, "--bucket", BUCKET, "--region", "us-east-1")


def _job_record(**changes):
    return ResultRecord.model_validate({**V1_RECORD, "schema_version": 2, "run_id": "r1", "benchmark": "allreduce",
                                        "node_count": 2, "rack": "a", "node_group": "g", **changes})


def test_health_command_prints_each_node_and_each_collectives_transport(store, capsys):
    ok = HealthCheck(name="gpus", status="passed", detail="8 of 8 planned GPUs visible")
    na = HealthCheck(name="efa", status="not applicable here", detail="local executor: no EFA on this machine")
    bad = HealthCheck(name="gpus", status="failed", detail="7 of 8 planned GPUs visible (NVIDIA H100)")
    store.put_health(_health(0, ok, na))
    store.put_health(_health(1, bad, na))
    store.put_record(_job_record(fabric="socket", validity="invalid", invalid_reason="node 1 (ip-1): gpus: 7 of 8"))
    code, out, err = cli(capsys, "health", "r1")
    assert code == 1, err
    assert "healthy" in out and "FAILED" in out and "ip-1" in out
    assert "FAILED a/g allreduce node 1 (ip-1): gpus: 7 of 8 planned GPUs visible" in out
    assert "n/a efa: local executor: no EFA on this machine" in out
    assert "socket" in out and "invalid: node 1" in out and "never held against the EFA line rate" in out
    code, out, _ = cli(capsys, "health", "r1", "--json")
    doc = json.loads(out)
    assert code == 1 and len(doc["health"]) == 2 and doc["fabric"][0]["fabric"] == "socket"


def test_health_command_on_a_healthy_run_and_on_no_run(store, capsys):
    store.put_health(_health(0, HealthCheck(name="clock", status="passed", detail="leap status Normal")))
    assert cli(capsys, "health", "r1")[0] == 0
    code, out, err = cli(capsys, "health", "nope")
    assert code == 1 and "no health records for run nope" in err and "Traceback" not in err


def test_a_broken_health_step_or_unreadable_peers_leave_an_invalid_record_not_a_crash():
    job = JobIdentity(run_id="r1", benchmark="gemm", rack="a", node_group="g", tier="gpu",
                      instance_type="p5.48xlarge")

    def broken(argv):
        raise RuntimeError("nvidia-smi hung")

    from workloads.run import health_step
    record, log = health_step(job, NodeContext(tier="gpu", gpus=8), None, run=broken)
    assert not record.healthy and "health-step: failed: RuntimeError: nvidia-smi hung" in log

    class Unreadable:
        def health(self, run_id, job=None):
            raise OSError("throttled")

    ok = _health(0, HealthCheck(name="gpus", status="passed", detail="8 of 8"))
    why = job_health(job, NodeContext(tier="gpu", num_nodes=2), ok, Unreadable())
    assert "could not be read: OSError: throttled" in why
