"""`rackform run` jobs run third-party images: they take the rack's workload role, never the benchmarks' job role
(which writes results/), and are told the one prefix that role may write. The role's policy is enforced here by
moto's IAM as the construct synthesizes it; the rack's template is asserted in tests/stacks/test_stacks.py and the bucket
policy that refuses every workload role results/ in tests/jobs/test_write_once.py.
"""

from __future__ import annotations

import json

import boto3
import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from cdk_constructs import WorkloadRole
from rackform.plan import naming
from rackform.cli import main
from rackform.jobs.jobdefs import WORKLOAD_ROLE_TAG
from rackform.jobs.workload_jobs import WORKLOAD_OUTPUT_VARIABLE
from workloads.layout import RESULTS_PREFIX

from tests.conftest import DEMO_SPEC as SPEC
from tests.conftest import INFERENCE


@pytest.fixture
def aws(demo_deployed):
    return demo_deployed


def _benchmark_definition(batch, rack: str, group: str) -> dict:
    name = naming.job_definition("demo", rack, group, "single")
    return max(batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"],
               key=lambda d: d["revision"])


def test_run_gives_the_job_the_workload_role_and_its_own_output_prefix(aws, capsys):
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "r1", "--pin", "gpu"]) == 0
    capsys.readouterr()
    [job] = aws["batch"].list_jobs(jobQueue="demo-gpu-h100-queue", jobStatus="SUCCEEDED")["jobSummaryList"]
    [described] = aws["batch"].describe_jobs(jobs=[job["jobId"]])["jobs"]
    [workload_definition] = aws["batch"].describe_job_definitions(
        jobDefinitions=[described["jobDefinition"]])["jobDefinitions"]
    benchmark = _benchmark_definition(aws["batch"], "gpu", "h100")
    role = workload_definition["containerProperties"]["jobRoleArn"]
    assert role == benchmark["tags"][WORKLOAD_ROLE_TAG]
    assert role != benchmark["containerProperties"]["jobRoleArn"]
    env = {e["name"]: e["value"] for e in described["container"]["environment"]}
    output = env[WORKLOAD_OUTPUT_VARIABLE]
    assert output == f"s3://{aws['store'].bucket}/workloads/r1/llm-serve/"
    assert f"/{RESULTS_PREFIX}/" not in output


def test_a_rack_deployed_without_a_workload_role_is_refused_by_name(aws, capsys):
    # A benchmark definition registered by an older rack stack carries no workload role: `run` must not fall back
    # to the job role.
    benchmark = _benchmark_definition(aws["batch"], "gpu", "h100")
    fields = ("jobDefinitionName", "type", "containerProperties", "platformCapabilities", "retryStrategy",
              "propagateTags", "timeout")
    aws["batch"].register_job_definition(**{k: benchmark[k] for k in fields if k in benchmark},
                                         tags={"rackform:spec": "demo"})
    assert main(["run", INFERENCE, "--spec", SPEC, "--run-id", "r2", "--pin", "gpu"]) != 0
    err = capsys.readouterr().err
    assert f"names no workload role (tag {WORKLOAD_ROLE_TAG})" in err
    assert "deploy the rack stack demo-rack-gpu again" in err and "Traceback" not in err


BUCKET = "rackform-results-test"


@pytest.fixture
def workload_role_statements() -> tuple[dict, dict]:
    """The role's trust and path, and its policy document, as the construct synthesizes them."""
    stack = Stack(App(), "Rack")
    WorkloadRole(stack, "Workloads", workload_objects_arn=f"arn:aws:s3:::{BUCKET}/workloads/*")
    resources = Template.from_stack(stack).to_json()["Resources"].values()
    [role] = [r["Properties"] for r in resources if r["Type"] == "AWS::IAM::Role"]
    [policy] = [r["Properties"]["PolicyDocument"] for r in resources if r["Type"] == "AWS::IAM::Policy"]
    return role, policy


def test_the_workload_role_writes_its_outputs_and_is_refused_results_by_iam(workload_role_statements, monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    role, policy = workload_role_statements

    # moto enforces IAM after the first 4 requests: the set-up below, made as the account's administrator
    @set_initial_no_auth_action_count(4)
    @mock_aws
    def as_the_job() -> list[str]:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam")
        arn = iam.create_role(RoleName="workloads", Path=role["Path"],
                              AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"]))["Role"]["Arn"]
        iam.put_role_policy(RoleName="workloads", PolicyName="p", PolicyDocument=json.dumps(policy))
        c = boto3.client("sts").assume_role(RoleArn=arn, RoleSessionName="job")["Credentials"]
        s3 = boto3.client("s3", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                          aws_session_token=c["SessionToken"])
        outcomes = []
        for call in (lambda: s3.put_object(Bucket=BUCKET, Key="workloads/r1/train/model.pt", Body=b"w"),
                     lambda: s3.get_object(Bucket=BUCKET, Key="workloads/r1/train/model.pt"),
                     lambda: s3.put_object(Bucket=BUCKET, Key="results/r1/gpu/h100/gemm/record.json", Body=b"{}"),
                     lambda: s3.get_object(Bucket=BUCKET, Key="results/r1/gpu/h100/gemm/record.json"),
                     lambda: s3.list_object_versions(Bucket=BUCKET, Prefix="results/")):
            try:
                call()
                outcomes.append("allowed")
            except ClientError as e:
                outcomes.append(e.response["Error"]["Code"])
        return outcomes

    assert as_the_job() == ["allowed", "allowed", "AccessDenied", "AccessDenied", "AccessDenied"]
