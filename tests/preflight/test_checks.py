"""Preflight's checks alone: the plan and account state built by hand, no AWS, no moto, no botocore.

Each check is a pure function of the plan, the state fetch.py would read (rackform/preflight/state.py) and the time.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import replace

import pytest

from rackform.pipeline import load_plan
from rackform.preflight.checks import (
    all_checks,
    check_batch,
    check_data_repository,
    check_image_build,
    check_offerings,
    check_placement_groups,
    check_quotas,
    check_reservations,
    check_stacks,
    unreadable,
)
from rackform.preflight.state import (
    AccountState,
    ApiError,
    BucketState,
    BuildHost,
    PlacementGroupState,
    QuotaValue,
    ReservationState,
)
from rackform.reference.aws_limits import BATCH_MAX_COMPUTE_ENVIRONMENTS
from tests.conftest import EXAMPLE, dump

NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
CR = "cr-0123456789abcdef0"  # the example's Capacity Block: 4 x trn2.48xlarge in us-east-2c
STANDARD, TRN, P = "L-1216C47A", "L-2C3B7624", "L-417A185B"
DENIED = ApiError("ec2:DescribeSomething", "UnauthorizedOperation: no", denied=True)
FAILED = ApiError("ec2:DescribeSomething", "EndpointConnectionError: unreachable")


@pytest.fixture(scope="module")
def plan():
    return load_plan(EXAMPLE)


BLOCK = ReservationState(
    reservation_type="capacity-block", state="scheduled", instance_type="trn2.48xlarge",
    availability_zone="us-east-2c", availability_zone_id="use2-az3", total_instances=4, available_instances=4,
    placement_group=None, start=NOW + dt.timedelta(days=1), end=NOW + dt.timedelta(days=8))


def block(**over: object) -> ReservationState:
    return replace(BLOCK, **over)


def ready(plan) -> AccountState:
    """An account that holds the example: every quota, the block, offerings, room in Batch and CloudFormation."""
    return AccountState(
        quotas={STANDARD: QuotaValue(144, False), TRN: QuotaValue(768, False), P: QuotaValue(384, False)},
        reservations={CR: block()},
        offerings={t: ("us-east-2a", "us-east-2c") for t in {g.instance_type for g in plan.node_groups()}},
        compute_environments=("someone-else-ce",), job_queues=(), stack_limit=2000, stacks=("unrelated",),
        data_repository=BucketState(exists=True, readable=True, region="us-east-2"), placement_groups={})


def test_a_ready_account_passes_every_check(plan):
    checks = all_checks(plan, ready(plan), NOW)
    assert {c.status for c in checks} == {"ok"}
    names = {c.name.split(" (")[0] for c in checks}
    assert names == {f"vCPU quota {STANDARD}", f"vCPU quota {TRN}", f"vCPU quota {P}", f"capacity {CR}",
                     "offering c8g.4xlarge", "offering c7gn.16xlarge", "offering trn2.48xlarge",
                     "offering p5.48xlarge", "Batch compute environments", "Batch job queues",
                     "CloudFormation stacks", "data repository s3://my-datasets/train"}


def test_an_unreadable_call_is_unknown_with_what_to_grant_or_retry():
    denied = unreadable(DENIED, "offering x", "offered in us-east-2c")
    assert (denied.status, denied.found, denied.needed) == ("unknown", "cannot read: UnauthorizedOperation: no",
                                                            "offered in us-east-2c")
    assert denied.fix.startswith("grant ec2:DescribeSomething to the caller")
    failed = unreadable(FAILED, "offering x", "")
    assert failed.fix.startswith("run preflight again once the call works (it needs ec2:DescribeSomething)")


def test_quotas_sum_per_code_and_block_below_the_need(plan):
    quotas = {STANDARD: QuotaValue(143, False), TRN: FAILED, P: None}
    checks = {c.name.split()[2]: c for c in check_quotas(plan, quotas)}
    assert checks[STANDARD].status == "blocker" and checks[STANDARD].needed.startswith("144 vCPUs")
    assert "--quota-code L-1216C47A --desired-value 144" in checks[STANDARD].fix
    assert checks[TRN].status == "unknown" and checks[P].status == "unknown"
    assert "has no quota L-417A185B" in checks[P].found


def test_a_reservation_is_compared_field_by_field(plan):
    def one(r: ReservationState | ApiError | None) -> list[tuple[str, str]]:
        return [(c.status, c.found) for c in check_reservations(plan, {CR: r}, NOW)]

    assert one(block()) == [("ok", "capacity-block scheduled, 4 x trn2.48xlarge in us-east-2c, starts 2026-07-21 "
                                   "12:00 UTC, ends 2026-07-28 12:00 UTC")]
    assert one(None) == [("blocker", "not found in us-east-2")]
    assert one(block(availability_zone="us-east-2a")) == [
        ("blocker", "is in us-east-2a, the spec's availability_zone is us-east-2c")]
    assert one(block(total_instances=3)) == [("blocker", "3 instances reserved")]
    assert one(block(state="active", end=NOW + dt.timedelta(hours=2))) == [
        ("warning", "ends 2026-07-20 14:00 UTC; instances are terminated at 2026-07-20 13:30 UTC")]
    assert one(block(placement_group="other-pg"))[0] == (
        "blocker", "was created in cluster placement group other-pg; trn2-train/workers launches outside any "
                   "placement group")
    assert one(DENIED)[0][0] == "unknown"


def test_a_reservation_in_an_az_id_spec_is_compared_by_id(tmp_path, demo):
    demo["availability_zone"] = "use2-az3"
    p = load_plan(dump(tmp_path, demo))
    [ok] = check_reservations(p, {CR: block(availability_zone="anything-a")}, NOW)
    [bad] = check_reservations(p, {CR: block(availability_zone_id="use2-az1")}, NOW)
    assert ok.status == "ok" and (bad.status, bad.found) == (
        "blocker", "is in use2-az1, the spec's availability_zone is use2-az3")


def test_offerings_name_the_azs_that_offer_a_type(plan):
    offered = {"c8g.4xlarge": ("us-east-2a", "us-east-2c"), "c7gn.16xlarge": ("us-east-2a",),
               "trn2.48xlarge": ("us-east-2c", "use2-az3")}
    checks = {c.name: c for c in check_offerings(plan, offered)}
    assert checks["offering c8g.4xlarge"].status == "ok"
    assert checks["offering c7gn.16xlarge"].found == "not offered in us-east-2c; offered in us-east-2a"
    assert checks["offering trn2.48xlarge"].found == "offered in us-east-2c"  # AZ IDs not mixed into names
    assert checks["offering p5.48xlarge"].found == "not offered anywhere in us-east-2"
    assert {c.status for c in check_offerings(plan, DENIED)} == {"unknown"}


def test_batch_counts_others_against_the_per_region_limit(plan):
    ours = tuple(dict.fromkeys(g.compute_environment for g in plan.node_groups()))
    others = tuple(f"other-{i}" for i in range(BATCH_MAX_COMPUTE_ENVIRONMENTS - len(ours)))
    ce, q = check_batch(plan, ours + others, FAILED)  # ours already there are replaced, not added
    assert ce.status == "ok" and ce.needed == f"{len(others)} + {len(ours)} of this cluster = 50"
    assert q.status == "unknown"
    full, _ = check_batch(plan, others + ("one-more",), ())
    assert full.status == "blocker" and "delete unused compute environments" in full.fix


def test_stacks_count_against_the_account_limit(plan):
    ours = [plan.network.stack_name, plan.storage.stack_name] + [r.stack_name for r in plan.racks]
    [ok] = check_stacks(plan, len(ours), ())
    [full] = check_stacks(plan, len(ours), ("someone-elses",))
    [default] = check_stacks(plan, None, ours[:1])
    assert ok.status == "ok" and full.status == "blocker" and "request a higher 'Stack count'" in full.fix
    assert default.found == "limit 2,000 (AWS default; StackLimit not reported)"
    assert check_stacks(plan, FAILED, ())[0].status == "unknown"


def test_a_named_placement_group_must_be_an_available_cluster_group(tmp_path, demo):
    demo["racks"][1]["node_groups"][0]["placement_group"] = {"name": "trn2-pg"}
    p = load_plan(dump(tmp_path, demo))

    def status(found: PlacementGroupState | ApiError | None) -> tuple[str, str]:
        [c] = check_placement_groups(p, {"trn2-pg": found})
        return c.status, c.found

    assert status(PlacementGroupState("available", "cluster")) == ("ok", "cluster, available")
    assert status(PlacementGroupState("available", "spread")) == ("warning", "a spread placement group")
    assert status(PlacementGroupState("deleting", "cluster")) == ("blocker", "state deleting")
    assert status(None) == ("blocker", "no placement group named trn2-pg in us-east-2")
    assert status(DENIED)[0] == "unknown"


def test_the_data_repository_bucket_must_exist_be_readable_and_local(plan):
    def found(bucket: BucketState | ApiError) -> list[tuple[str, str]]:
        return [(c.status, c.found) for c in check_data_repository(plan, bucket)]

    assert found(BucketState(True, True, "us-east-2")) == [("ok", "exists in us-east-2, readable")]
    assert found(BucketState(True, True, None)) == [("ok", "exists Region not reported by S3, readable")]
    assert found(BucketState(False, False, None)) == [("blocker", "no bucket named my-datasets")]
    assert found(BucketState(True, False, "eu-west-1")) == [
        ("blocker", "access denied to this account (HeadBucket 403)"), ("blocker", "is in eu-west-1")]
    assert found(FAILED)[0][0] == "unknown"
    assert check_data_repository(plan, None) == []


def test_the_arm64_image_build_follows_what_the_machine_said(plan):
    def status(arm64: bool | None) -> str:
        [c] = check_image_build(plan, BuildHost("x86_64", arm64, "said so"))
        return c.status

    assert (status(True), status(False), status(None)) == ("ok", "blocker", "unknown")


def test_the_checks_load_no_aws_sdk():
    # The pure checks run wherever the plan does: the SDK and the AWS layer are fetch.py's alone.
    code = ("import sys, rackform.preflight.checks, rackform.preflight.state; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore') or m == 'rackform.aws'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
