"""`rackform repairs` and the repairs `rackform status` shows (issue 22 item 5): the records the repair function
writes (workloads/repair.py's own writer), read back through the store's verified reader."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.conftest import DEMO_SPEC, ROOT, run_cli
from workloads import repair
from workloads.repair import Attempt, Group, RepairDecision

NOW = dt.datetime.now(dt.UTC)


def write(store: Any, *, rack: str = "gpu", group: str = "h100", job_id: str = "job-1", ago: dt.timedelta,
          action: str = "replace", instance: str = "i-0123456789abcdef0") -> str:
    """One repair record, written as the function writes it; its key."""
    attempt = Attempt(job_id=job_id, job_name=f"r1-{rack}-{group}-gemm", job_queue=f"demo-{rack}-{group}-queue",
                      attempt=1, stopped_at=NOW - ago, exit_code=repair.HEALTH_STEP_FAILED_EXIT,
                      status_reason="Essential container in task exited", container_instance_arn=None,
                      instance_id=None, log_stream=None)
    decision = RepairDecision("replace" if action == "replace" else "alert", "the node failed its health step",
                              "health-step")
    body = repair.record(attempt, Group(rack=rack, node_group=group, nodes=2), decision, instance_id=instance,
                         steps={"drain": "DRAINING", "terminate": "terminating"}, decided_at=NOW - ago)
    key = repair.record_key(rack, group, attempt.stopped_at, job_id, 1)
    assert repair.put_once(store.s3, store.bucket, key, json.dumps(body).encode())
    return key


def test_repairs_lists_the_past_day_by_default_and_further_with_since(demo_deployed: dict[str, Any],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    store = demo_deployed["store"]
    write(store, job_id="recent", ago=dt.timedelta(hours=2))
    write(store, job_id="old", ago=dt.timedelta(days=3), rack="trainium", group="workers", action="alert")
    code, out, _ = run_cli(capsys, "repairs")
    assert code == 0 and "gpu/h100" in out and "replaced" in out and "trainium" not in out
    code, out, _ = run_cli(capsys, "repairs", "--since", "7d", "--json")
    doc = json.loads(out)
    assert code == 0 and [(r["job_id"], r["action"]) for r in doc["repairs"]] == [("old", "alert"),
                                                                                  ("recent", "replace")]
    code, out, _ = run_cli(capsys, "repairs", "--since", "7d", "--rack", "trainium")
    assert code == 0 and "ALERT ONLY" in out and "gpu/h100" not in out
    code, out, _ = run_cli(capsys, "repairs", "--since", "1h")
    assert code == 0 and "no repairs in the past 1h" in out


@pytest.mark.parametrize("since", ["24", "1w", "-1h", "0h", "h"])
def test_a_bad_since_is_refused_before_any_call(capsys: pytest.CaptureFixture[str], since: str) -> None:
    code, _, err = run_cli(capsys, "repairs", f"--since={since}")
    assert code == 2 and "--since" in err and "e.g. 30m, 24h, 7d" in err


def test_a_tampered_record_is_named_and_the_rest_still_listed(demo_deployed: dict[str, Any],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    store = demo_deployed["store"]
    key = write(store, ago=dt.timedelta(minutes=5))
    body = json.loads(store.s3.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    forged = key.replace("job-1-1.json", "job-2-1.json")
    store.put_once(forged, json.dumps({**body, "action": "replace\x1b[2J"}).encode(), "application/json")
    code, out, _ = run_cli(capsys, "repairs")
    assert code == 1 and "r1-gpu-h100-gemm #1" in out and forged in out and "\x1b" not in out


def test_a_runs_repairs_and_status_shows_them(demo_deployed: dict[str, Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "submit", str(ROOT / DEMO_SPEC), "--rack", "gpu", "--node-group", "h100",
                             "--benchmark", "gemm", "--run-id", "r1", "--json")
    assert code == 0, err
    job_id = json.loads(out)["jobs"][0]["job_id"]
    store = demo_deployed["store"]
    write(store, job_id=job_id, ago=dt.timedelta(minutes=10))
    write(store, job_id="another-run", ago=dt.timedelta(minutes=20))
    code, out, _ = run_cli(capsys, "repairs", "r1", "--json")
    assert code == 0 and [r["job_id"] for r in json.loads(out)["repairs"]] == [job_id]
    _, out, _ = run_cli(capsys, "status", "r1")
    assert out.count("repair gpu/h100: node replaced") == 2 and "i-0123456789abcdef0" in out
    _, out, _ = run_cli(capsys, "status", "r1", "--json")
    assert len(json.loads(out)["repairs"]) == 2


def test_records_older_than_the_window_are_not_even_read(demo_deployed: dict[str, Any],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    store = demo_deployed["store"]
    key = write(store, job_id="old", ago=dt.timedelta(days=2))
    store.s3.put_object(Bucket=store.bucket, Key=key.replace("old-1", "older-1"), Body=b"not json")
    code, out, _ = run_cli(capsys, "repairs")
    assert code == 0 and "no repairs in the past 1d" in out
    code, out, _ = run_cli(capsys, "repairs", "--since", "3d")
    assert code == 1 and "older-1.json" in out


def test_status_lists_the_repairs_of_many_node_groups_in_one_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run over more node groups than GROUPS_LISTED_APART reads every rack's repairs from one listing: the same
    repairs, in the same order, as a listing per group."""
    from rackform.cli import repairs as cli_repairs
    from tests.conftest import moto_aws, versioned_bucket
    from workloads.store import ResultStore

    with moto_aws(monkeypatch, "us-east-1"):
        store = ResultStore("rackform-repairs-test", versioned_bucket("rackform-repairs-test"))
        groups = [(f"rack{i}", "h100") for i in range(cli_repairs.GROUPS_LISTED_APART + 1)]
        for i, (rack, group) in enumerate(groups):
            write(store, rack=rack, group=group, job_id=f"job-{i}", ago=dt.timedelta(minutes=50 - i))
        write(store, rack="elsewhere", group="h100", job_id="other", ago=dt.timedelta(minutes=5))
        write(store, rack="rack0", group="h100", job_id="old", ago=dt.timedelta(hours=3))
        listed: list[str] = []
        real = ResultStore._versions
        monkeypatch.setattr(ResultStore, "_versions", lambda self, prefix: listed.append(prefix) or real(self, prefix))
        together = cli_repairs.in_flight(store, groups[::-1], NOW)
        assert len(listed) == 1
        apart = [r for g in sorted(groups) for r in cli_repairs.in_flight(store, [g], NOW)]
        assert together == apart and [r.job_id for r in together] == [f"job-{i}" for i in range(len(groups))]
