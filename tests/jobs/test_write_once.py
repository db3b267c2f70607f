"""Write-once in AWS itself: the results bucket refuses any PUT under results/ without If-None-Match, the node
role writes nothing, and everything rackform writes there is a conditional PutObject (so the Deny never bites it).

moto does not evaluate bucket policies, so the policy is asserted as the template says it; what the writers send
is recorded on the wire (botocore's request-created event) during a real submit and a real runner job.
"""

from __future__ import annotations

import copy
import sys
from urllib.parse import unquote, urlsplit

import boto3
import botocore.handlers
import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from botocore.stub import Stubber

from cdk_constructs import WORKLOAD_ROLE_PATH, NodeInstanceRole, ResultsBucket
from rackform.reference.catalog import load_catalog
from rackform.cli import main as rackform_main
from rackform.render.plan import render_plan
from rackform.plan.models import build_plan
from rackform.plan.diff import diff_plans
from rackform.spec.problems import SpecError
from rackform.spec.models import ObjectLock, load_spec, parse_spec
from rackform.validate import validate_spec
from workloads import run as runner
from workloads import store as store_module
from workloads.benchmarks import Benchmark, Step
from workloads.store import ResultStore

from tests.conftest import EXAMPLE, deploy_to_moto, moto_aws

REGION = "us-east-2"
# Every S3 operation that creates an object or part of one: only the first is allowed under results/.
OBJECT_WRITES = {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
                 "CompleteMultipartUpload", "PostObject"}


@pytest.fixture(scope="module")
def template() -> dict:
    stack = Stack(App(), "Storage")
    ResultsBucket(stack, "Results")
    NodeInstanceRole(stack, "Nodes")
    return Template.from_stack(stack).to_json()


def of_type(template: dict, kind: str) -> dict[str, dict]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def test_bucket_policy_denies_every_put_under_results_without_if_none_match(template):
    [bucket_id] = of_type(template, "AWS::S3::Bucket")
    [policy] = of_type(template, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    write_once = [s for s in statements if s.get("Sid") == "ResultsAreWriteOnce"]
    # AWS's documented form: Deny s3:PutObject when the s3:if-none-match key is absent (Null: true), for everyone.
    assert write_once == [{
        "Sid": "ResultsAreWriteOnce", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:PutObject",
        "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/results/*"]]},
        "Condition": {"Null": {"s3:if-none-match": "true"}},
    }]
    # Nothing in the policy lets a PUT through that the Deny refuses (an explicit Deny wins anyway; no Allow at all
    # keeps the policy readable as "TLS only, write once, versions kept, no workload under results/, repair records
    # the repair functions' alone").
    assert [s["Effect"] for s in statements] == ["Deny"] * 5


def _storage(**kwargs) -> dict:
    stack = Stack(App(), "Storage")
    ResultsBucket(stack, "Results", **kwargs)
    return Template.from_stack(stack).to_json()


def _statement(template: dict, sid: str) -> dict:
    [policy] = of_type(template, "AWS::S3::BucketPolicy").values()
    [statement] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == sid]
    return statement


VERSION_ACTIONS = ["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutBucketVersioning"]


def test_no_one_deletes_a_version_or_suspends_versioning_without_a_break_glass_role(template):
    # Whoever may delete a version can delete a record's only version and write it again unseen: refused to all.
    [bucket_id] = of_type(template, "AWS::S3::Bucket")
    bucket_arn = {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert _statement(template, "VersionsAreKept") == {
        "Sid": "VersionsAreKept", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": VERSION_ACTIONS,
        "Resource": [bucket_arn, {"Fn::Join": ["", [bucket_arn, "/*"]]}]}


def test_only_the_break_glass_role_may_delete_versions():
    role = "arn:aws:iam::123456789012:role/results-break-glass"
    statement = _statement(_storage(break_glass_role_arn=role), "VersionsAreKept")
    assert statement["Action"] == VERSION_ACTIONS and statement["Principal"] == {"AWS": "*"}
    assert statement["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": role}}


def test_workload_roles_are_refused_results(template):
    [bucket_id] = of_type(template, "AWS::S3::Bucket")
    statement = _statement(template, "WorkloadsNeverTouchResults")
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", {"AWS": "*"}, "s3:*")
    assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/results/*"]]}
    # every role under the workload roles' path, in this account (the path is in the role's ARN)
    assert statement["Condition"] == {"ArnLike": {"aws:PrincipalArn": {"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, f":role{WORKLOAD_ROLE_PATH}*"]]}}}


def test_object_lock_is_off_unless_the_spec_asks_and_then_every_version_is_retained(template):
    [bucket] = of_type(template, "AWS::S3::Bucket").values()
    assert "ObjectLockEnabled" not in bucket["Properties"] and "ObjectLockConfiguration" not in bucket["Properties"]
    for mode in ("GOVERNANCE", "COMPLIANCE"):
        lock = ObjectLock(mode=mode, retention_days=30)
        [bucket] = of_type(_storage(object_lock=lock), "AWS::S3::Bucket").values()
        assert bucket["Properties"]["ObjectLockEnabled"] is True
        assert bucket["Properties"]["ObjectLockConfiguration"] == {
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode, "Days": 30}}}
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


def test_node_role_has_no_s3_access(template):
    [(role_id, role)] = of_type(template, "AWS::IAM::Role").items()
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"}
    attached = [p for p in of_type(template, "AWS::IAM::Policy").values() if {"Ref": role_id} in
                p["Properties"]["Roles"]]
    actions = [a for p in attached for s in p["Properties"]["PolicyDocument"]["Statement"]
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]
    assert not [a for a in actions if a.startswith("s3:")], actions


# --- what the writers send ------------------------------------------------------------------------------------------

def object_key(url: str, bucket: str) -> str:
    parts = urlsplit(url)
    path = unquote(parts.path.lstrip("/"))
    return path if (parts.hostname or "").startswith(f"{bucket}.") else path.split("/", 1)[-1]


@pytest.fixture
def wire(monkeypatch):
    """Every S3 request any botocore session made from now on sends (retries included): (operation, url, headers).

    A built-in handler, as moto installs its own: the CLI and the runner each make their own sessions."""
    sent: list[tuple[str, str, dict[str, str]]] = []

    def record(request, operation_name, **_):
        sent.append((operation_name, request.url, dict(request.headers)))

    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS",
                        [*botocore.handlers.BUILTIN_HANDLERS, ("request-created.s3", record)])
    with moto_aws(monkeypatch, REGION):
        plan = build_plan(load_spec(EXAMPLE)[0], load_catalog())
        bucket = deploy_to_moto(plan, monkeypatch, s3=boto3.client("s3", region_name=REGION),
                                batch=boto3.client("batch", region_name=REGION))
        sent.clear()
        yield bucket, sent


def test_every_object_rackform_writes_under_results_is_a_conditional_put(wire, monkeypatch, capsys, tmp_path):
    bucket, sent = wire
    # `rackform submit` writes the submission's objects; the job's runner writes its log and record.
    assert rackform_main(["submit", str(EXAMPLE), "--rack", "gpu", "--benchmark", "gemm", "--run-id", "w1"]) == 0
    result = ('RACKFORM_RESULT {"benchmark": "gemm", "metrics": [{"name": "tflops_max", "value": 1.5, "unit": '
              '"TFLOP/s", "size_bytes": null, "labels": {}}], "details": {}}')
    monkeypatch.setitem(runner.BENCHMARKS, "gemm", Benchmark(
        "gemm", "test", ("gpu",), nodes=1, max_nodes=1,
        steps=lambda ctx: (Step((sys.executable, "-c", f"print({result!r})"), "torch"),)))
    code = runner.main(["gemm", "--run-id", "w1", "--bucket", bucket, "--rack", "gpu", "--node-group", "h100",
                        "--tier", "gpu"], env={"RACKFORM_LOCAL": "1", "RACKFORM_WORK_DIR": str(tmp_path)})
    capsys.readouterr()
    assert code == 0
    writes = [(op, object_key(url, bucket), headers) for op, url, headers in sent if op in OBJECT_WRITES]
    keys = {key for _, key, _ in writes}
    assert {"results/w1/Records/gemm/gpu/h100/record.json", "results/w1/gpu/h100/gemm/node-0.log"} <= keys
    # the submission's claim and marker are covered too
    assert any("/_jobs/" in k for k in keys) and any("/_claims/" in k for k in keys), keys
    for op, key, headers in writes:
        assert op == "PutObject" and key.startswith("results/"), (op, key)
        assert headers.get("If-None-Match") == "*", (key, headers)


def test_a_conflicting_concurrent_write_is_retried_not_mistaken_for_an_existing_object(monkeypatch):
    # S3 answers 409 ConditionalRequestConflict when another conditional write to the key is in flight; nothing may
    # have landed yet, so the writer must try again rather than read back (and fail on) an absent object.
    no_sleep = type("T", (), {"sleep": staticmethod(lambda s: None)})
    monkeypatch.setattr(store_module, "time", no_sleep, raising=False)
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(s3) as stub:
        stub.add_client_error("put_object", service_error_code="ConditionalRequestConflict", http_status_code=409)
        stub.add_response("put_object", {})
        assert ResultStore("b", s3).put_once("results/r/x.json", b"{}", "application/json") is True
        stub.assert_no_pending_responses()


# --- the spec's options ---------------------------------------------------------------------------------------------

def _results_problems(demo, catalog, **results):
    demo.setdefault("storage", {})["results"] = results
    return [p for p in validate_spec(parse_spec(demo), catalog) if p.path.startswith("storage.results")]


def test_object_lock_and_break_glass_role_are_checked_with_the_field_named(demo, catalog):
    assert _results_problems(demo, catalog, object_lock={"mode": "COMPLIANCE", "retention_days": 365},
                             break_glass_role_arn="arn:aws:iam::123456789012:role/ops/break-glass") == []
    with pytest.raises(SpecError) as e:
        _results_problems(demo, catalog, object_lock={"mode": "compliance", "retention_days": 0})
    assert {(p.path, p.message) for p in e.value.problems} == {
        ("storage.results.object_lock.mode", "'compliance' is not one of GOVERNANCE | COMPLIANCE"),
        ("storage.results.object_lock.retention_days", "0 is out of range: must be at least 1")}
    [p] = _results_problems(demo, catalog, break_glass_role_arn="arn:aws:sts::123456789012:assumed-role/ops/me")
    assert (p.rule, p.path) == ("break-glass-role", "storage.results.break_glass_role_arn")
    assert "not an IAM role ARN" in p.message and "not a session's" in p.message


def test_plan_states_the_lock_and_who_may_delete_versions(demo, catalog):
    def results_line(**results) -> str:
        demo.setdefault("storage", {})["results"] = results
        text = render_plan(build_plan(parse_spec(demo), catalog))
        return next(line for line in text.splitlines() if line.startswith("results  "))

    assert results_line() == ("results  write-once; no Object Lock; no principal may (no break_glass_role_arn) "
                              "delete a version or change versioning")
    assert results_line(object_lock={"mode": "GOVERNANCE", "retention_days": 30},
                        break_glass_role_arn="arn:aws:iam::123456789012:role/bg") == (
        "results  write-once; Object Lock GOVERNANCE, 30 days a version; only arn:aws:iam::123456789012:role/bg "
        "may delete a version or change versioning")


def test_plan_against_says_what_a_change_of_the_results_options_does(demo, catalog):
    def diff(old: dict, new: dict):
        plans = []
        for results in (old, new):
            data = copy.deepcopy(demo)
            data.setdefault("storage", {})["results"] = results
            plans.append(build_plan(parse_spec(data), catalog))
        d = diff_plans(*plans)
        [storage] = [s for s in d.stacks if s.stack == plans[1].storage.stack_name]
        return [c.details for c in d.changes if c.what == "storage: results bucket"], storage.action, storage.notes

    lock = {"mode": "COMPLIANCE", "retention_days": 30}
    [details], action, notes = diff({}, {"object_lock": lock})
    assert details == ("object_lock: none -> {'mode': 'COMPLIANCE', 'retention_days': 30}",) and action == "update"
    assert notes == ["results bucket: Object Lock's default retention set in place, for versions written from then on"]
    _, _, notes = diff({"object_lock": lock}, {})
    assert notes == ["Object Lock stays on: S3 cannot turn it off once on, whatever the template says, and every "
                     "version written keeps its retention"]
    _, action, notes = diff({}, {"break_glass_role_arn": "arn:aws:iam::123456789012:role/bg"})
    assert action == "update" and notes == ["bucket policy: who may delete object versions or change versioning "
                                            "(VersionsAreKept)"]
