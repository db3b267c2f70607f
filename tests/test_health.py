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
