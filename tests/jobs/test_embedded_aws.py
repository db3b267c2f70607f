"""The embedded AWS is private and enforces IAM.

Private: only requests signed with credentials it made at this start get in (unsigned ones, a web page's, another
key's are refused), moto's own API (/moto-api/: reset, config, recorder) is unreachable, no response carries CORS
headers, and moto's Batch never starts Docker. IAM: each job runs with its job role's credentials, which hold exactly
the policies the synthesized templates give that role, so a permission missing there fails the job as on AWS.
"""

from __future__ import annotations

import json
import shutil
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.config import default_user_config

from rackform.cli import checked_plan, main
from rackform.jobs.assembly import AssemblyError, TemplateRoles, read_assembly
from rackform.jobs.local import EmbeddedAWS, deploy, job_role_arn, run_local
from workloads.store import ResultStore

from tests.conftest import ROOT, load_demo_script

SPEC = str(ROOT / "examples" / "demo.yaml")
PLAN = checked_plan(SPEC)


@pytest.fixture
def aws():
    with EmbeddedAWS(PLAN.region) as embedded:
        yield embedded


def http(aws: EmbeddedAWS, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b"",
         signed_as: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A raw request, as a browser or another local user would send it; SigV4-signed with `signed_as`."""
    request = AWSRequest(method=method, url=aws.endpoint_url + path, data=body, headers=headers or {})
    if signed_as is not None:
        S3SigV4Auth(Credentials(signed_as["AWS_ACCESS_KEY_ID"], signed_as["AWS_SECRET_ACCESS_KEY"],
                                signed_as.get("AWS_SESSION_TOKEN")), "s3", aws.region).add_auth(request)
    sent = urllib.request.Request(request.url, data=body or None, method=method, headers=dict(request.headers))
    try:
        with urllib.request.urlopen(sent, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def client(aws: EmbeddedAWS, service: str, key: str, secret: str, **kwargs):
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name=aws.region, aws_access_key_id=key,
                        aws_secret_access_key=secret, **kwargs)


# --- private ---------------------------------------------------------------------------------------------------------

def test_an_unsigned_request_is_refused(aws):
    aws.client("s3").create_bucket(Bucket="private")
    # A web page can POST text/plain with no preflight; it cannot sign.
    status, _, _ = http(aws, "POST", "/", headers={"Content-Type": "text/plain"},
                        body=b"Action=CreateUser&UserName=x&Version=2010-05-08")
    assert status == 403
    with pytest.raises(ClientError) as e:
        boto3.client("s3", endpoint_url=aws.endpoint_url, region_name=aws.region,
                     config=Config(signature_version=UNSIGNED)).list_objects_v2(Bucket="private")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize("service", ["s3", "batch", "iam"])
def test_a_request_signed_with_credentials_it_did_not_issue_is_refused(aws, service):
    call = {"s3": "list_buckets", "batch": "describe_job_queues", "iam": "list_users"}[service]
    stranger = client(aws, service, "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    forged = client(aws, service, aws.env["AWS_ACCESS_KEY_ID"], secrets.token_urlsafe(30))  # the key id, not the secret
    for c in (stranger, forged):
        with pytest.raises(ClientError) as e:
            getattr(c, call)()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    getattr(aws.client(service), call)()  # the operator's own credentials work


def test_each_start_makes_fresh_credentials():
    with EmbeddedAWS(PLAN.region) as first:
        old = first.env
    with EmbeddedAWS(PLAN.region) as second:
        assert second.env["AWS_ACCESS_KEY_ID"] != old["AWS_ACCESS_KEY_ID"]
        assert second.env["AWS_SECRET_ACCESS_KEY"] != old["AWS_SECRET_ACCESS_KEY"]
        with pytest.raises(ClientError):
            client(second, "s3", old["AWS_ACCESS_KEY_ID"], old["AWS_SECRET_ACCESS_KEY"]).list_buckets()


@pytest.mark.parametrize("path", ["/moto-api/", "/moto-api/reset", "/moto-api/config", "/moto-api/seed?a=1",
                                  "/moto-api/recorder/start-recording", "/moto-api/reset-auth", "/moto-api/data.json"])
def test_motos_own_api_is_unreachable_even_to_the_operator(aws, path):
    aws.client("s3").create_bucket(Bucket="kept")
    docker_on = json.dumps({"batch": {"use_docker": True}, "lambda": {"use_docker": True}}).encode()
    for method in ("GET", "POST"):
        for signed_as in (None, aws.env):
            status, _, _ = http(aws, method, path, body=docker_on if method == "POST" else b"",
                                headers={"Content-Type": "application/json"}, signed_as=signed_as)
            assert status == 404, (method, signed_as is not None)
    # nothing was reset, and Batch still never starts a container
    assert [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]] == ["kept"]
    assert default_user_config["batch"]["use_docker"] is False and default_user_config["lambda"]["use_docker"] is False


def test_no_response_carries_cors_headers(aws):
    origin = {"Origin": "http://attacker.example"}
    # The browser's preflight for a signed request: refused, and nothing in it lets the page go on.
    status, headers, _ = http(aws, "OPTIONS", "/", headers={**origin, "Access-Control-Request-Method": "PUT",
                                                            "Access-Control-Request-Headers": "authorization"})
    assert status == 403 and not [h for h in headers if h.lower().startswith("access-control-")]
    # Even a request the embedded AWS accepts gets no CORS header back (moto's server adds them to every response).
    status, headers, _ = http(aws, "GET", "/", headers=origin, signed_as=aws.env)
    assert status == 200 and not [h for h in headers if h.lower().startswith("access-control-")], headers


# --- IAM enforced, with the templates' policies ---------------------------------------------------------------------

def test_job_roles_hold_exactly_the_policies_of_the_synthesized_templates(aws, demo_assembly):
    deployment = deploy(PLAN, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                        assembly=demo_assembly)
    iam = aws.client("iam")
    templates = read_assembly(demo_assembly)
    for name, jd in deployment.job_definitions.items():
        role = job_role_arn(jd).rsplit("/", 1)[1]
        stack, logical = role.split("-JobsRole")[0], "JobsRole" + role.split("-JobsRole")[1]
        expected = [r["Properties"]["PolicyDocument"]["Statement"] for r in templates[stack]["Resources"].values()
                    if r["Type"] == "AWS::IAM::Policy" and {"Ref": logical} in r["Properties"]["Roles"]]
        got = [iam.get_role_policy(RoleName=role, PolicyName=p)["PolicyDocument"]["Statement"]
               for p in iam.list_role_policies(RoleName=role)["PolicyNames"]]
        assert len(got) == len(expected) >= 1, name
        for want, have in zip(expected, got):
            assert [(s["Effect"], s["Action"], s.get("Condition")) for s in want] == \
                   [(s["Effect"], s["Action"], s.get("Condition")) for s in have]
            for s in have:  # every reference resolved to the embedded bucket
                for resource in [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]:
                    assert resource.startswith(f"arn:aws:s3:::{deployment.bucket}"), resource
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []


def test_the_demo_says_iam_is_enforced_and_names_the_roles_jobs_run_as(aws, demo_assembly):
    deployment = deploy(PLAN, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                        assembly=demo_assembly)
    line = load_demo_script().iam_line(deployment)
    assert "IAM enforced" in line
    assert all(f"{rack.stack_name}-JobsRole" in line for rack in PLAN.racks)


def without_put_object(assembly: Path, tmp_path: Path) -> Path:
    """A copy of the assembly whose rack roles lost s3:PutObject: a permission the templates forgot."""
    copy = tmp_path / "assembly"
    shutil.copytree(assembly, copy, ignore=shutil.ignore_patterns("asset.*"))
    for template in copy.glob("*-rack-*.template.json"):
        t = json.loads(template.read_text())
        for r in t["Resources"].values():
            if r["Type"] == "AWS::IAM::Policy":
                for s in r["Properties"]["PolicyDocument"]["Statement"]:
                    actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
                    s["Action"] = [a for a in actions if a != "s3:PutObject"] or ["s3:GetObject"]
        template.write_text(json.dumps(t))
    return copy


def test_a_job_whose_role_misses_a_permission_fails_as_on_aws(aws, demo_assembly, tmp_path, monkeypatch):
    deployment = deploy(PLAN, s3=aws.client("s3"), batch=aws.client("batch"), iam=aws.client("iam"),
                        assembly=without_put_object(demo_assembly, tmp_path))
    for k, v in {**aws.env, "RACKFORM_BUCKET": deployment.bucket}.items():
        monkeypatch.setenv(k, v)
    assert main(["submit", SPEC, "--rack", "graviton", "--node-group", "head", "--benchmark", "cpu",
                 "--run-id", "denied-1"]) == 0  # the operator may submit
    logs = tmp_path / "logs"
    logs.mkdir()
    [result] = run_local(aws, deployment, "denied-1", log_dir=logs, announce=lambda _: None)
    assert result["exit_codes"] == [1]
    assert "AccessDenied" in (logs / "denied-1-graviton-head-cpu.node-0.log").read_text()
    assert ResultStore(deployment.bucket, aws.client("s3")).records("denied-1") == []


def policy(effect: str, action: str, resource: object) -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": action, "Resource": resource}]}


def test_a_new_role_and_ssm_hand_off_need_no_change(tmp_path):
    """Whatever role a job definition names, its policies come from the templates: here a role with a path, an inline
    policy, an AWS::IAM::Policy and a customer managed policy, reading the bucket name another stack publishes in
    SSM."""
    param = "/rackform/x/storage/bucket"
    storage = {"Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Name": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": param, "Value": {"Ref": "Bucket"}}}}}
    data = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Name}/data/*"}
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}
    rack = {"Parameters": {"Name": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": param}}, "Resources": {
        "Extra": {"Type": "AWS::IAM::Role", "Properties": {
            "Path": "/rackform/extra/", "AssumeRolePolicyDocument": trust,
            "Policies": [{"PolicyName": "inline", "PolicyDocument": policy("Allow", "s3:GetObject", data)}]}},
        "More": {"Type": "AWS::IAM::Policy", "Properties": {
            "PolicyName": "more", "Roles": [{"Ref": "Extra"}],
            "PolicyDocument": policy("Allow", "s3:PutObject", data)}},
        "Managed": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {
            "Roles": [{"Ref": "Extra"}], "PolicyDocument": policy("Deny", "s3:DeleteObject", "*")}},
        "Jobs": {"Type": "AWS::Batch::JobDefinition", "Properties": {
            "JobDefinitionName": "x-jobs", "ContainerProperties": {"JobRoleArn": {"Fn::GetAtt": ["Extra", "Arn"]}}}}}}
    for name, t in (("x-storage", storage), ("x-rack", rack)):
        (tmp_path / f"{name}.template.json").write_text(json.dumps(t))
    (tmp_path / "manifest.json").write_text(json.dumps({"version": "1", "artifacts": {
        name: {"type": "aws:cloudformation:stack", "properties": {"templateFile": f"{name}.template.json"}}
        for name in ("x-storage", "x-rack")}}))
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        roles = TemplateRoles(read_assembly(tmp_path), iam=iam, region="us-east-1", account="123456789012",
                              bucket="embedded-bucket")
        assert roles.job_role_arn("x-jobs") == "arn:aws:iam::123456789012:role/rackform/extra/x-rack-Extra"
        assert iam.get_role(RoleName="x-rack-Extra")["Role"]["Arn"] == roles.job_role_arn("x-jobs")
        inline = {p: iam.get_role_policy(RoleName="x-rack-Extra", PolicyName=p)["PolicyDocument"]
                  for p in iam.list_role_policies(RoleName="x-rack-Extra")["PolicyNames"]}
        resolved = "arn:aws:s3:::embedded-bucket/data/*"
        assert inline == {"inline": policy("Allow", "s3:GetObject", resolved),
                          "more": policy("Allow", "s3:PutObject", resolved)}
        [managed] = iam.list_attached_role_policies(RoleName="x-rack-Extra")["AttachedPolicies"]
        assert managed["PolicyName"] == "x-rack-Extra-Managed"
        with pytest.raises(AssemblyError, match="0 job definitions named 'nope'"):
            roles.job_role_arn("nope")
        rack["Resources"]["Jobs"]["Properties"]["ContainerProperties"]["JobRoleArn"] = {"Fn::GetAZs": ""}
        with pytest.raises(AssemblyError, match="Fn::GetAZs in a job role's policy is not resolved"):
            TemplateRoles({"x-rack": rack}, iam=iam, region="us-east-1", account="123456789012",
                          bucket="b").job_role_arn("x-jobs")
