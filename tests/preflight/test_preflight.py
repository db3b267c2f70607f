"""`rackform preflight`: pure checks on plain data, the fetch layer on moto and Stubber, and the command end to end.

moto implements EC2 offerings, Batch and CloudFormation's ListStacks; it lacks EC2 quotas in Service Quotas,
DescribeCapacityReservations and DescribeAccountLimits, which botocore's Stubber answers instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
from typing import Any

import boto3
import pytest
import yaml
from botocore.parsers import ResponseParserError
from botocore.stub import Stubber
from moto import mock_aws

from rackform.preflight import checks as preflight
from rackform.preflight import fetch
from rackform.cli import preflight as preflight_cli
from rackform.cli.common import EXIT_UNCHECKED
from rackform.cli import checked_plan
from rackform.preflight.checks import (
    check_batch,
    check_offerings,
    check_quotas,
    check_reservations,
    check_stacks,
)
from rackform.preflight.fetch import (
    fetch_offerings,
    fetch_quota,
    fetch_reservation,
    fetch_stacks,
    fetch_state,
    reservation_from_api,
)
from rackform.preflight.state import ApiError, BucketState, BuildHost, QuotaValue

from tests.conftest import ROOT, dump

# Named here rather than taken from conftest: these tests need the trn2 Capacity Block in us-east-2c, whichever
# spec the project's demo becomes.
SPEC = ROOT / "examples" / "trn2-capacity-block.yaml"
REGION, AZ = "us-east-2", "us-east-2c"
CR = "cr-0123456789abcdef0"
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.timezone.utc)
STANDARD, TRN, P = "L-1216C47A", "L-2C3B7624", "L-417A185B"  # the demo's on-demand quotas
STANDARD_SPOT, INF_SPOT, P5_SPOT = "L-34B43A08", "L-B5D1601B", "L-C4BD4855"
INCREASE = "aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {} --desired-value {} " \
           "--region us-east-2"


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch):
    # Whatever a test does, no real credentials are ever picked up.
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="module")
def plan():
    return checked_plan(str(SPEC))


@pytest.fixture
def demo() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


def block(**over: Any) -> dict[str, Any]:
    """The demo's Capacity Block as DescribeCapacityReservations returns it, with fields overridden."""
    return {"CapacityReservationId": CR, "InstanceType": "trn2.48xlarge", "InstancePlatform": "Linux/UNIX",
            "AvailabilityZone": AZ, "Tenancy": "default", "TotalInstanceCount": 4, "AvailableInstanceCount": 4,
            "State": "scheduled", "StartDate": NOW + dt.timedelta(days=1), "EndDate": NOW + dt.timedelta(days=8),
            "EndDateType": "limited", "InstanceMatchCriteria": "targeted", "ReservationType": "capacity-block",
            **over}


def by_status(checks, status):
    return [c for c in checks if c.status == status]


# --- vCPU quotas --------------------------------------------------------------------------------------------------

def test_quotas_summed_per_code(plan):
    quotas = {STANDARD: QuotaValue(144, False), TRN: QuotaValue(768, False), P: QuotaValue(384, True)}
    checks = {c.name.split()[2]: c for c in check_quotas(plan, quotas)}
    assert {c.status for c in checks.values()} == {"ok"}
    # c8g.4xlarge 16 + 2 x c7gn.16xlarge 64: both Standard
    assert checks[STANDARD].needed.startswith("144 vCPUs: graviton/head 1 x c8g.4xlarge, graviton/cpu 2 x c7gn")
    assert "capacity blocks counted too" in checks[TRN].needed  # the block still counts against on-demand
    assert "AWS default" in checks[P].found


def test_quota_too_low_is_a_blocker_with_the_increase_command(plan):
    quotas = {STANDARD: QuotaValue(1000, False), TRN: QuotaValue(0, True), P: QuotaValue(384, False)}
    [bad] = by_status(check_quotas(plan, quotas), "blocker")
    assert bad.name == "vCPU quota L-2C3B7624 (Running On-Demand Trn instances)"
    assert bad.found == "0 vCPUs, shared with running instances (AWS default; no applied value)"
    assert bad.needed.startswith("768 vCPUs")
    assert bad.fix == "request an increase to 768 vCPUs: " + INCREASE.format(TRN, 768)


def test_spot_uses_its_own_quota(tmp_path, demo):
    demo["racks"][2]["node_groups"][0]["capacity"] = {"type": "spot"}
    p = checked_plan(str(dump(tmp_path, demo)))
    checks = check_quotas(p, {STANDARD: QuotaValue(144, False), TRN: QuotaValue(768, False),
                              P5_SPOT: QuotaValue(0, True)})
    [bad] = by_status(checks, "blocker")
    assert f"{P5_SPOT} (All P5 Spot Instance Requests)" in bad.name and P not in {c.name.split()[2] for c in checks}


def test_a_spot_quota_aws_does_not_name_is_unknown_not_guessed(tmp_path, demo):
    demo["racks"][2]["node_groups"][0].update(instance_type="p6-b200.48xlarge", capacity={"type": "spot"})
    p = checked_plan(str(dump(tmp_path, demo)))
    checks = check_quotas(p, {STANDARD: QuotaValue(144, False), TRN: QuotaValue(768, False)})
    [spot] = by_status(checks, "unknown")
    assert spot.name == "vCPU quota ? (the Spot quota P6 instances count against)"
    assert spot.found == "rackform does not know this quota's Service Quotas code"
    assert spot.fix == ("look up the Spot quota P6 instances count against in the Service Quotas console for us-east-2 "
                        "and make sure it holds 384 vCPUs")


def test_quota_unreadable_or_missing(tmp_path, demo):
    demo["racks"][2]["node_groups"][0].update(instance_type="inf2.48xlarge", capacity={"type": "spot"}, efa=False)
    demo["racks"][2]["name"] = "inf"
    p = checked_plan(str(dump(tmp_path, demo)))
    denied = ApiError("servicequotas:GetServiceQuota", "AccessDeniedException: not allowed", denied=True)
    checks = check_quotas(p, {STANDARD: None, TRN: denied, INF_SPOT: None})
    assert [c.status for c in checks] == ["unknown"] * 3
    spot, = [c for c in checks if "Inf Spot" in c.name]
    assert spot.name == f"vCPU quota {INF_SPOT} (All Inf Spot Instance Requests)"
    assert "grant servicequotas:GetServiceQuota" in next(c for c in checks if TRN in c.name).fix
    assert "has no quota L-1216C47A" in next(c for c in checks if STANDARD in c.name).found


def _sq_client():
    return boto3.client("service-quotas", region_name=REGION)


def test_fetch_quota_applied_value():
    sq = _sq_client()
    with Stubber(sq) as st:
        st.add_response("get_service_quota", {"Quota": {"QuotaCode": TRN, "Value": 1536.0}},
                        {"ServiceCode": "ec2", "QuotaCode": TRN})
        assert fetch_quota(sq, TRN) == QuotaValue(1536.0, default=False)


def test_fetch_quota_falls_back_to_the_default():
    sq = _sq_client()
    params = {"ServiceCode": "ec2", "QuotaCode": TRN}
    with Stubber(sq) as st:
        st.add_client_error("get_service_quota", "NoSuchResourceException", http_status_code=404,
                            expected_params=params)
        st.add_response("get_aws_default_service_quota", {"Quota": {"QuotaCode": TRN, "Value": 0.0}}, params)
        assert fetch_quota(sq, TRN) == QuotaValue(0.0, default=True)
        st.add_client_error("get_service_quota", "NoSuchResourceException", http_status_code=404)
        st.add_client_error("get_aws_default_service_quota", "NoSuchResourceException", http_status_code=404)
        assert fetch_quota(sq, "L-00000000") is None


def test_fetch_quota_access_denied_names_the_permission():
    sq = _sq_client()
    with Stubber(sq) as st:
        st.add_client_error("get_service_quota", "AccessDeniedException", "no", http_status_code=403)
        err = fetch_quota(sq, TRN)
    assert err == ApiError("servicequotas:GetServiceQuota", "AccessDeniedException: no", denied=True)


# --- capacity reservations --------------------------------------------------------------------------------------

def reservation_checks(plan, r):
    """The checks of one reservation, given as DescribeCapacityReservations returns it."""
    return check_reservations(plan, {CR: None if r is None else reservation_from_api(r)}, NOW)


def test_capacity_block_found_and_matching(plan):
    [c] = reservation_checks(plan, block())
    assert c.status == "ok" and c.name == f"capacity {CR}"
    assert c.found == ("capacity-block scheduled, 4 x trn2.48xlarge in us-east-2c, starts 2026-07-21 12:00 UTC, "
                       "ends 2026-07-28 12:00 UTC")


@pytest.mark.parametrize("r,found,fix", [
    (None, "not found in us-east-2", "aws ec2 describe-capacity-reservations --region us-east-2"),
    (block(InstanceType="p5.48xlarge"), "reserves p5.48xlarge, not trn2.48xlarge",
     "set instance_type: p5.48xlarge on trn2-train/workers"),
    (block(AvailabilityZone="us-east-2a"), "is in us-east-2a, the spec's availability_zone is us-east-2c",
     "set availability_zone: us-east-2a"),
    (block(TotalInstanceCount=2), "2 instances reserved", "lower count to 2 or add capacity: buy a Capacity Block"),
    (block(State="expired", EndDate=NOW - dt.timedelta(hours=1)), "state expired", "use an active or scheduled"),
    (block(State="cancelled"), "state cancelled", "cannot launch into a cancelled one"),
    (block(State="active", EndDate=NOW - dt.timedelta(minutes=1)), "ended 2026-07-20 11:59 UTC", "has not ended"),
    (block(ReservationType="default"), "is an On-Demand Capacity Reservation", "set capacity.type: reservation"),
])
def test_reservation_blockers(plan, r, found, fix):
    [c] = reservation_checks(plan, r)
    assert c.status == "blocker" and c.found == found and fix in c.fix
    assert c.needed.startswith("capacity-block for 4 x trn2.48xlarge in us-east-2c")


def test_odcr_counts_available_instances(tmp_path, demo):
    demo["racks"][1]["node_groups"][0]["capacity"]["type"] = "reservation"
    p = checked_plan(str(dump(tmp_path, demo)))
    odcr = block(ReservationType="default", State="active", TotalInstanceCount=6, AvailableInstanceCount=3,
                 EndDate=None, EndDateType="unlimited")
    [c] = reservation_checks(p, odcr)
    assert c.found == "3 instances available (running ones, this cluster's included, not counted)"
    assert c.fix.endswith(f"--capacity-reservation-id {CR} --instance-count 7")
    [ok] = reservation_checks(p, {**odcr, "AvailableInstanceCount": 4})
    assert ok.status == "ok" and ok.found.endswith("no end date")


def test_capacity_block_ending_within_a_day_warns(plan):
    [c] = reservation_checks(plan, block(State="active", EndDate=NOW + dt.timedelta(hours=5)))
    assert c.status == "warning"
    assert c.found == "ends 2026-07-20 17:00 UTC; instances are terminated at 2026-07-20 16:30 UTC"


# --- reservations and placement groups ---------------------------------------------------------------------------

PG_ARN = "arn:aws:ec2:us-east-2:123456789012:placement-group/{}"


def odcr_plan(tmp_path, demo, placement_group=None):
    """The example with its trn2 group on an On-Demand Capacity Reservation, placement_group as given."""
    group = demo["racks"][1]["node_groups"][0]
    group["capacity"]["type"] = "reservation"
    if placement_group is not None:
        group["placement_group"] = placement_group
    return checked_plan(str(dump(tmp_path, demo)))


def odcr(**over):
    return block(ReservationType="default", State="active", EndDate=None, EndDateType="unlimited", **over)


def test_reservation_in_the_named_placement_group_is_ok(tmp_path, demo):
    p = odcr_plan(tmp_path, demo, {"name": "trn2-pg"})
    [c] = reservation_checks(p, odcr(PlacementGroupArn=PG_ARN.format("trn2-pg")))
    assert c.status == "ok" and "in us-east-2c (placement group trn2-pg)" in c.found


@pytest.mark.parametrize("placement_group,launches", [
    (None, "outside any placement group"),
    ({"name": "other-pg"}, "into placement group other-pg"),
    ({"create": True}, "into a new placement group"),
])
def test_reservation_in_a_placement_group_serves_only_that_group(tmp_path, demo, placement_group, launches):
    p = odcr_plan(tmp_path, demo, placement_group)
    [c] = reservation_checks(p, odcr(PlacementGroupArn=PG_ARN.format("trn2-pg")))
    assert c.status == "blocker"
    assert c.found == f"was created in cluster placement group trn2-pg; trn2-train/workers launches {launches}"
    assert c.fix.startswith("set placement_group: {name: trn2-pg} on trn2-train/workers")


@pytest.mark.parametrize("placement_group,into", [({"name": "my-pg"}, "placement group my-pg"),
                                                  ({"create": True}, "a new placement group")])
def test_reservation_outside_placement_groups_warns_of_a_placement_constraint(tmp_path, demo, placement_group, into):
    p = odcr_plan(tmp_path, demo, placement_group)
    [c] = reservation_checks(p, odcr())
    assert c.status == "warning" and c.found == f"is in no placement group; trn2-train/workers launches into {into}"
    assert "set placement_group: {create: false}" in c.fix


def test_capacity_block_with_a_placement_group_warns(tmp_path, demo):
    demo["racks"][1]["node_groups"][0]["placement_group"] = {"name": "my-pg"}
    [c] = reservation_checks(checked_plan(str(dump(tmp_path, demo))), block())
    assert c.status == "warning" and c.found.endswith("launches into placement group my-pg")


def test_a_named_placement_group_must_exist_and_be_available(tmp_path, demo):
    p = odcr_plan(tmp_path, demo, {"name": "trn2-pg"})
    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as st:
        pg = {"GroupName": "trn2-pg", "State": "available", "Strategy": "cluster"}
        st.add_response("describe_placement_groups", {"PlacementGroups": [pg]}, {"GroupNames": ["trn2-pg"]})
        st.add_response("describe_placement_groups", {"PlacementGroups": [{**pg, "Strategy": "spread"}]})
        st.add_response("describe_placement_groups", {"PlacementGroups": [{**pg, "State": "deleting"}]})
        st.add_client_error("describe_placement_groups", "InvalidPlacementGroup.Unknown", "unknown")
        st.add_client_error("describe_placement_groups", "UnauthorizedOperation", http_status_code=403)
        found = [fetch.fetch_placement_group(ec2, "trn2-pg") for _ in range(5)]
    checks = [preflight.check_placement_groups(p, {"trn2-pg": f}) for f in found]
    assert [c.status for [c] in checks] == ["ok", "warning", "blocker", "blocker", "unknown"]
    [ok] = checks[0]
    assert ok.name == "placement group trn2-pg" and "trn2-train/workers 4 x trn2.48xlarge" in ok.needed
    assert checks[3][0].found == "no placement group named trn2-pg in us-east-2"
    assert "aws ec2 create-placement-group --group-name trn2-pg --strategy cluster" in checks[3][0].fix
    assert "grant ec2:DescribePlacementGroups" in checks[4][0].fix
    assert preflight.check_placement_groups(odcr_plan(tmp_path, demo, {"create": True}), {}) == []  # created: none


def test_fetch_reservation_through_stubber():
    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as st:
        st.add_response("describe_capacity_reservations", {"CapacityReservations": [block()]},
                        {"CapacityReservationIds": [CR]})
        st.add_client_error("describe_capacity_reservations", "InvalidCapacityReservationId.NotFound")
        st.add_client_error("describe_capacity_reservations", "UnauthorizedOperation", http_status_code=403)
        assert fetch_reservation(ec2, CR).instance_type == "trn2.48xlarge"
        assert fetch_reservation(ec2, "cr-0000000000000000f") is None
        assert fetch_reservation(ec2, CR).action == "ec2:DescribeCapacityReservations"


def test_a_broken_endpoint_is_not_a_permission_problem(plan):
    class HtmlErrorPage:  # what botocore raises where a server (moto's, for an API it lacks) answers in HTML
        def describe_capacity_reservations(self, **_):
            raise ResponseParserError("Unable to parse response, invalid XML received:\n<!doctype html>\n<p>500</p>")

    err = fetch_reservation(HtmlErrorPage(), CR)
    assert err == ApiError("ec2:DescribeCapacityReservations", "ResponseParserError: Unable to parse response, "
                           "invalid XML received: <!doctype html> <p>500</p>")  # one line, denied=False
    [c] = check_reservations(plan, {CR: err}, NOW)
    assert c.status == "unknown" and c.fix.startswith("run preflight again once the call works (it needs ec2:")


# --- the data repository bucket ---------------------------------------------------------------------------------

def bucket_checks(plan, state):
    return preflight.check_data_repository(plan, state)


def test_data_repository_bucket_from_moto(aws, plan):
    s3 = boto3.client("s3", region_name=REGION)
    assert fetch.fetch_bucket(s3, "my-datasets") == BucketState(exists=False, readable=False, region=None)
    [c] = bucket_checks(plan, fetch.fetch_bucket(s3, "my-datasets"))
    assert (c.name, c.status, c.found) == ("data repository s3://my-datasets/train", "blocker",
                                           "no bucket named my-datasets")
    assert c.fix.startswith("create it (aws s3 mb s3://my-datasets --region us-east-2)")

    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="my-datasets", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    state = fetch.fetch_bucket(s3, "my-datasets")
    assert state == BucketState(exists=True, readable=True, region="eu-west-1")
    [c] = bucket_checks(plan, state)
    assert c.status == "blocker" and c.found == "is in eu-west-1" and c.fix.startswith("use a bucket in us-east-2")


def test_data_repository_bucket_access_denied_through_stubber(plan):
    s3 = boto3.client("s3", region_name=REGION)
    with Stubber(s3) as st:
        st.add_client_error("head_bucket", "403", "Forbidden", http_status_code=403,
                            response_meta={"HTTPHeaders": {"x-amz-bucket-region": REGION}})
        st.add_client_error("head_bucket", "SlowDown", "slow down", http_status_code=503)
        denied = fetch.fetch_bucket(s3, "my-datasets")
        failed = fetch.fetch_bucket(s3, "my-datasets")
    assert denied == BucketState(exists=True, readable=False, region=REGION)
    [c] = bucket_checks(plan, denied)
    assert c.status == "blocker" and c.found == "access denied to this account (HeadBucket 403)"
    assert "s3:ListBucket and s3:GetObject on my-datasets" in c.fix
    [c] = bucket_checks(plan, failed)
    assert c.status == "unknown" and "s3:ListBucket" in c.fix


def test_no_data_repository_no_bucket_check(tmp_path, demo):
    del demo["storage"]["fsx_lustre"]["data_repository_path"]
    p = checked_plan(str(dump(tmp_path, demo)))
    assert preflight.data_repository_bucket(p) is None and bucket_checks(p, None) == []


# --- offerings, Batch, CloudFormation ---------------------------------------------------------------------------

@pytest.fixture
def aws():
    with mock_aws():
        yield


def test_offerings_from_moto(aws, plan):
    offered = fetch_offerings(boto3.client("ec2", region_name=REGION), ["trn2.48xlarge", "p5.48xlarge"])
    assert offered["trn2.48xlarge"] == ("us-east-2a", "us-east-2b", "us-east-2c", "use2-az1", "use2-az2", "use2-az3")
    checks = check_offerings(plan, {**offered, "c8g.4xlarge": (AZ,), "c7gn.16xlarge": ("us-east-2a", "us-east-2b")})
    [bad] = by_status(checks, "blocker")
    assert bad.name == "offering c7gn.16xlarge"
    assert bad.found == "not offered in us-east-2c; offered in us-east-2a, us-east-2b"
    assert bad.fix.startswith("set availability_zone to one of us-east-2a, us-east-2b")


def test_offering_nowhere_in_the_region(plan):
    checks = check_offerings(plan, {"c8g.4xlarge": (AZ,)})
    assert [c.found for c in by_status(checks, "blocker")] == ["not offered anywhere in us-east-2"] * 3


def _batch_environments(names: list[str], queues: list[str]) -> None:
    role = boto3.client("iam", region_name=REGION).create_role(RoleName="batch", AssumeRolePolicyDocument="{}")
    batch = boto3.client("batch", region_name=REGION)
    arn = None
    for n in names:
        arn = batch.create_compute_environment(computeEnvironmentName=n, type="UNMANAGED",
                                               serviceRole=role["Role"]["Arn"])["computeEnvironmentArn"]
    for q in queues:
        batch.create_job_queue(jobQueueName=q, state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": arn}])


def _stacks(names: list[str]) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    for n in names:
        cfn.create_stack(StackName=n, TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}')


def test_batch_counts_exclude_this_clusters_own(plan):
    ours = ("trn2-graviton-head-ce", "trn2-gpu-h100-ce")
    checks = check_batch(plan, ours + tuple(f"other-{i}" for i in range(46)), ("x",))
    ce, q = checks
    assert ce.status == "ok" and ce.needed == "46 + 4 of this cluster = 50"
    assert ce.found == "48 compute environments in us-east-2 (2 of them this cluster's); limit 50"
    assert q.status == "ok" and q.needed == "1 + 4 of this cluster = 5"
    ce, _ = check_batch(plan, tuple(f"other-{i}" for i in range(47)), ())
    assert ce.status == "blocker" and "not read from Service Quotas" in ce.fix


def test_batch_and_stacks_unreadable_are_unknown(plan):
    denied = ApiError("batch:DescribeComputeEnvironments", "AccessDeniedException: no", denied=True)
    ce, q = check_batch(plan, denied, ())
    assert ce.status == "unknown" and "grant batch:DescribeComputeEnvironments" in ce.fix and q.status == "ok"
    [c] = check_stacks(plan, ApiError("cloudformation:DescribeAccountLimits", "AccessDenied: no"), ("a",))
    assert c.status == "unknown" and c.needed == "1 existing + 5 new = 6 (AWS's default limit is 2,000)"


def test_stacks_from_moto(aws, plan):
    _stacks(["trn2-network", "other"])
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName="other")
    stacks = fetch_stacks(boto3.client("cloudformation", region_name=REGION))
    assert stacks == ("trn2-network",)  # deleted stacks do not count
    [c] = check_stacks(plan, 2000, stacks)
    assert c.status == "ok" and c.needed == "1 existing + 4 new = 5"  # network, storage, three racks
    [c] = check_stacks(plan, None, stacks + tuple(f"s{i}" for i in range(1996)))
    assert c.status == "blocker" and c.found == "limit 2,000 (AWS default; StackLimit not reported)"


def test_fetch_errors_become_unknown_not_tracebacks(plan):
    """Every client refusing everything: each check unknown with its permission."""
    clients = {s: boto3.client(s, region_name=REGION)
               for s in ("service-quotas", "ec2", "batch", "cloudformation", "s3")}
    stubbers = {s: Stubber(c) for s, c in clients.items()}
    for s, op in [("service-quotas", "get_service_quota")] * 3 + [("ec2", "describe_capacity_reservations"),
                  ("ec2", "describe_instance_type_offerings"), ("batch", "describe_compute_environments"),
                  ("batch", "describe_job_queues"), ("cloudformation", "describe_account_limits"),
                  ("cloudformation", "list_stacks")]:
        stubbers[s].add_client_error(op, "AccessDenied", "denied", http_status_code=403)
    # HeadBucket's 403 is an answer about the bucket (this account may not read it); a failing S3 is not
    stubbers["s3"].add_client_error("head_bucket", "InternalError", "try again", http_status_code=500)
    for st in stubbers.values():
        st.activate()
    checks = preflight.all_checks(plan, fetch_state(plan, clients.__getitem__), NOW)
    assert {c.status for c in checks} == {"unknown"}
    fixes = " ".join(c.fix for c in checks)
    for action in ("servicequotas:GetServiceQuota", "ec2:DescribeCapacityReservations",
                   "ec2:DescribeInstanceTypeOfferings", "batch:DescribeComputeEnvironments", "batch:DescribeJobQueues",
                   "cloudformation:ListStacks"):
        assert f"grant {action}" in fixes


# --- the command ------------------------------------------------------------------------------------------------

class MotoWithStubs:
    """A moto client whose `stubbed` operations answer from a Stubber on a twin client, for APIs moto lacks."""

    def __init__(self, service: str, stubbed: set[str]):
        self._moto = boto3.client(service, region_name=REGION)
        self._twin = boto3.client(service, region_name=REGION)
        self.stubber = Stubber(self._twin)
        self.stubber.activate()
        self._stubbed = stubbed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._twin if name in self._stubbed else self._moto, name)


def account(monkeypatch, quotas: dict[str, float], reservation: dict[str, Any]) -> None:
    """Point preflight at moto, with Stubber answers for quotas, the reservation and the stack limit."""
    sq = boto3.client("service-quotas", region_name=REGION)
    sq_stub = Stubber(sq)
    for code in sorted(quotas):
        sq_stub.add_response("get_service_quota", {"Quota": {"QuotaCode": code, "Value": quotas[code]}},
                             {"ServiceCode": "ec2", "QuotaCode": code})
    sq_stub.activate()
    ec2 = MotoWithStubs("ec2", {"describe_capacity_reservations"})
    ec2.stubber.add_response("describe_capacity_reservations", {"CapacityReservations": [reservation]},
                             {"CapacityReservationIds": [CR]})
    cfn = MotoWithStubs("cloudformation", {"describe_account_limits"})
    cfn.stubber.add_response("describe_account_limits", {"AccountLimits": [{"Name": "StackLimit", "Value": 2000}]})
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="my-datasets", CreateBucketConfiguration={"LocationConstraint": REGION})
    clients = {"service-quotas": sq, "ec2": ec2, "batch": boto3.client("batch", region_name=REGION),
               "cloudformation": cfn, "s3": s3}
    monkeypatch.setattr(fetch, "aws_clients", lambda region, url, profile=None: clients.__getitem__)
    monkeypatch.setattr(fetch, "probe_build_host", lambda: CAN_BUILD_ARM64)


CAN_BUILD_ARM64 = BuildHost("x86_64", True, "QEMU registered for arm64")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="rackform")
    preflight_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


ENOUGH = {STANDARD: 144.0, TRN: 768.0, P: 384.0}


def live_block(**over: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc)
    return block(StartDate=now + dt.timedelta(days=1), EndDate=now + dt.timedelta(days=8), **over)


def test_ready_account_exits_0(aws, monkeypatch, capsys):
    _batch_environments(["trn2-gpu-h100-ce", "someone-else-ce"], ["someone-else-queue"])
    _stacks(["trn2-network", "unrelated"])
    account(monkeypatch, ENOUGH, live_block())
    code, out, err = run(capsys, "preflight", str(SPEC))
    assert code == 0, out
    assert "trn2: ready to deploy (0 blockers, 0 warnings, 0 unknown, 13 ok)" in out
    [line] = [l for l in out.splitlines() if "arm64 image build" in l]
    assert line.startswith("ok") and "x86_64: QEMU registered for arm64" in line
    [line] = [l for l in out.splitlines() if "data repository s3://my-datasets/train" in l]
    assert line.startswith("ok") and "exists in us-east-2, readable" in line
    assert "1 + 4 of this cluster = 5" in out and "2 existing + 4 new = 6" in out


def test_blocked_account_exits_1_and_lists_blockers(aws, monkeypatch, capsys):
    account(monkeypatch, {**ENOUGH, TRN: 0.0}, live_block(AvailabilityZone="us-east-2a"))
    code, out, err = run(capsys, "preflight", str(SPEC))
    assert code == 1 and "Traceback" not in out + err
    assert "trn2: not ready to deploy (2 blockers" in out
    assert f"blocker  vCPU quota {TRN} (Running On-Demand Trn instances): request an increase to 768 vCPUs: " \
           + INCREASE.format(TRN, 768) in out
    assert f"blocker  capacity {CR}: set availability_zone: us-east-2a" in out


def test_a_spot_group_of_a_standard_family_is_held_to_the_standard_spot_quota(aws, monkeypatch, capsys, tmp_path,
                                                                               demo):
    demo["racks"][0]["node_groups"][1]["capacity"] = {"type": "spot"}  # 2 x c7gn.16xlarge, 64 vCPUs each
    account(monkeypatch, {**ENOUGH, STANDARD: 16.0, STANDARD_SPOT: 64.0}, live_block())
    code, out, err = run(capsys, "preflight", str(dump(tmp_path, demo)))
    assert code == 1 and "Traceback" not in out + err
    assert "(1 blocker, 0 warnings, 0 unknown" in out
    assert f"blocker  vCPU quota {STANDARD_SPOT} (All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests): " \
           "request an increase to 128 vCPUs: " + INCREASE.format(STANDARD_SPOT, 128) in out
    [line] = [x for x in out.splitlines() if f"quota {STANDARD} " in x]
    assert line.startswith("ok") and line.endswith("16 vCPUs: graviton/head 1 x c8g.4xlarge")  # the head alone


def test_json_report(aws, monkeypatch, capsys, tmp_path, demo):
    demo["racks"][1]["node_groups"][0]["count"] = 8
    account(monkeypatch, {**ENOUGH, TRN: 1536.0}, live_block())
    code, out, _ = run(capsys, "preflight", "--json", "--endpoint-url", "http://localhost:5000",
                       str(dump(tmp_path, demo)))
    report = json.loads(out)
    assert code == 1 and report["ready"] is False and report["counts"]["blocker"] == 1
    [bad] = [c for c in report["checks"] if c["status"] == "blocker"]
    assert bad == {"name": f"capacity {CR}", "status": "blocker", "found": "4 instances reserved",
                   "needed": "capacity-block for 8 x trn2.48xlarge in us-east-2c (trn2-train/workers 8 x "
                             "trn2.48xlarge)",
                   "fix": "lower count to 4 or add capacity: buy a Capacity Block with enough instances"}


def test_endpoint_url_reaches_every_client(aws, monkeypatch):
    factory = fetch.aws_clients(REGION, "http://localhost:5000")
    for service in ("service-quotas", "ec2", "batch", "cloudformation"):
        assert factory(service).meta.endpoint_url == "http://localhost:5000"
        assert factory(service).meta.region_name == REGION


def test_no_credentials_exits_1_with_a_message(monkeypatch, capsys, tmp_path):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
              "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code, out, err = run(capsys, "preflight", str(SPEC))
    assert code == 1 and out == "" and err.splitlines()[-1].startswith("error: no AWS credentials found")


def test_checks_that_could_not_run_do_not_pass(aws, monkeypatch, capsys):
    # Service Quotas refuses (no permission): nothing blocks, but nothing about quotas was checked either
    account(monkeypatch, ENOUGH, live_block())
    stubbed = fetch.aws_clients(REGION, None)
    denied = boto3.client("service-quotas", region_name=REGION)
    stub = Stubber(denied)
    for _ in range(3):
        stub.add_client_error("get_service_quota", "AccessDeniedException", "not authorized", 403)
    stub.activate()
    monkeypatch.setattr(fetch, "aws_clients", lambda region, url, profile=None: (
        lambda name: denied if name == "service-quotas" else stubbed(name)))
    code, out, _ = run(capsys, "preflight", str(SPEC))
    assert code == EXIT_UNCHECKED == 3
    assert "no blockers found, but some checks could not run" in out


def test_a_spec_in_an_az_id_matches_the_reservations_az_id(tmp_path, demo):
    # us-east-2c is use2-az3 in every account; the reservation's AZ ID decides, whatever its name reads.
    demo["availability_zone"] = "use2-az3"
    p = checked_plan(str(dump(tmp_path, demo)))
    [ok] = reservation_checks(p, block(AvailabilityZoneId="use2-az3"))
    assert ok.status == "ok"
    [c] = reservation_checks(p, block(AvailabilityZoneId="use2-az1"))
    assert c.status == "blocker" and c.found == "is in use2-az1, the spec's availability_zone is use2-az3"


# --- this machine: the arm64 image ----------------------------------------------------------------------------------

def docker_says(*platforms: str, rc: int = 0):
    """A `run` that answers `docker buildx inspect` as Docker does (its Platforms line), recording it was asked."""
    asked = []

    def run(argv, **kwargs):
        asked.append(argv)
        out = f"Name:   default\nDriver: docker\n\nNodes:\nName:      default\nStatus:    running\n" \
              f"Platforms: {', '.join(platforms)}\n"
        return subprocess.CompletedProcess(argv, rc, stdout=out, stderr="")
    run.asked = asked
    return run


def refuse(argv, **kwargs):
    raise FileNotFoundError(2, "No such file or directory", "docker")


def test_an_x86_machine_without_qemu_is_a_blocker_before_the_deploy(plan, tmp_path):
    run = docker_says("linux/amd64", "linux/amd64/v2", "linux/386")
    host = fetch.probe_build_host(lambda: "x86_64", tmp_path / "qemu-aarch64", run)
    assert run.asked == [["docker", "buildx", "inspect"]]
    assert host == BuildHost("x86_64", False, "Docker builder platforms: linux/amd64, linux/amd64/v2, "
                                                        "linux/386")
    [c] = preflight.check_image_build(plan, host)  # the trn2 example has a Graviton rack
    assert c.status == "blocker" and c.needed == "linux/arm64 builds on this machine for the graviton image"
    assert "tonistiigi/binfmt --install arm64" in c.fix and "arm64 (Graviton) machine" in c.fix


def test_qemu_registered_native_arm64_or_a_builder_that_lists_arm64_can_build(plan, tmp_path):
    handler = tmp_path / "qemu-aarch64"
    handler.write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: OCF\n")
    assert fetch.probe_build_host(lambda: "x86_64", handler, refuse).arm64 is True
    handler.write_text("disabled\ninterpreter /usr/bin/qemu-aarch64\n")  # registered but switched off
    assert fetch.probe_build_host(lambda: "x86_64", handler, docker_says("linux/amd64")).arm64 is False
    assert fetch.probe_build_host(lambda: "aarch64", handler, refuse).arm64 is True
    assert fetch.probe_build_host(lambda: "x86_64", tmp_path / "none",
                                      docker_says("linux/amd64", "linux/arm64", "linux/arm/v7")).arm64 is True
    [c] = preflight.check_image_build(plan, fetch.probe_build_host(lambda: "arm64", handler, refuse))
    assert c.status == "ok" and c.found == "arm64: builds arm64 natively"


def test_no_docker_answer_is_unknown_and_no_arm64_tier_no_check(plan, tmp_path, demo):
    for run in (refuse, docker_says("linux/amd64", rc=1)):
        host = fetch.probe_build_host(lambda: "x86_64", tmp_path / "none", run)
        [c] = preflight.check_image_build(plan, host)
        assert host.arm64 is None and c.status == "unknown" and "tonistiigi/binfmt" in c.fix
    demo["racks"] = [r for r in demo["racks"] if r["name"] != "graviton"]
    x86_only = checked_plan(str(dump(tmp_path, demo)))
    assert preflight.check_image_build(x86_only, BuildHost("x86_64", False, "no QEMU")) == []


def test_preflight_blocks_on_this_machine_when_it_cannot_build_arm64(aws, monkeypatch, capsys):
    account(monkeypatch, ENOUGH, live_block())
    monkeypatch.setattr(fetch, "probe_build_host", lambda: BuildHost(
        "x86_64", False, "Docker builder platforms: linux/amd64"))
    code, out, _ = run(capsys, "preflight", str(SPEC))
    assert code == 1 and "trn2: not ready to deploy (1 blocker" in out
    assert "blocker  arm64 image build: register QEMU for arm64 once" in out
