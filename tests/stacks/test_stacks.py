"""The CDK layer: what the synthesized templates say, that cfn-lint accepts them, that they are stable under rack
edits, and that the largest spec validation allows still fits CloudFormation's limits.

jsii is slow to start and each synth takes a second or two, so the module synthesizes four apps in all: the demo
(module fixture), a demo with racks removed and reordered, the largest allowed spec (module fixture) and the heaviest
rack validation admits (module fixture, through the CDK CLI with CDK's built-in validator on); plus one network stack
on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cfnlint.api
import pytest
from aws_cdk import App, Environment
from aws_cdk.assertions import Template

from cdk_constructs.jobs import WORKLOAD_ROLE_PATH
from cdk_constructs.node_group import SESSION_MANAGER_ACTIONS
from cdk_constructs.repair import REPAIR_ROLE_PATH
from cdk_constructs.user_data import TELEMETRY_NAMESPACE
from cdk_constructs.user_data import EFA_INSTALLER_VERSION
from rackform.plan import naming
from rackform.reference.catalog import load_catalog
from rackform.jobs.jobdefs import WORKLOAD_ROLE_TAG
from rackform.plan.models import Plan, build_plan
from rackform.spec.problems import errors
from rackform.spec.models import Spec, load_spec
from rackform.plan.stack_limits import (
    MARGIN,
    cdk_synth,
    max_node_groups_per_rack,
    measurement,
    mount_path_bytes,
    worst_case_spec,
)
from rackform.reference.aws_limits import BATCH_MAX_COMPUTE_ENVIRONMENTS, STACK_MAX_RESOURCES, TEMPLATE_BODY_MAX_BYTES
from rackform.validate import validate_spec
from workloads.layout import RESULTS_PREFIX
from stacks import NetworkStack

from tests.stacks.cdk_validation import validation_findings
from tests.stacks.conftest import ACCEPTED_LINT_WARNINGS
from tests.conftest import Synth, synth

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_TEMPLATE = "AWS::EC2::LaunchTemplate"
COMPUTE_ENVIRONMENT = "AWS::Batch::ComputeEnvironment"
JOB_QUEUE = "AWS::Batch::JobQueue"
PLACEMENT_GROUP = "AWS::EC2::PlacementGroup"


def plan_of(spec: Spec) -> Plan:
    catalog = load_catalog()
    problems = errors(validate_spec(spec, catalog))
    assert not problems, [p.render() for p in problems]
    return build_plan(spec, catalog)


@pytest.fixture(scope="module")
def demo_plan() -> Plan:
    spec, _ = load_spec(ROOT / "examples" / "trn2-capacity-block.yaml")
    return plan_of(spec)


@pytest.fixture(scope="module")
def demo_app(demo_plan, tmp_path_factory) -> Synth:
    return synth(demo_plan, tmp_path_factory.mktemp("demo"))


def largest_spec_data() -> dict[str, Any]:
    """As many node groups as validation allows (the Batch per-Region quota), the most a rack may hold with the
    heaviest network layouts packed into it, and every capacity type; no FSx, to cover the file-system-less path."""
    heavy = ["p5.48xlarge", "trn2.48xlarge", "p5en.48xlarge", "trn1n.32xlarge"]  # 32/16/16/16 EFA interfaces
    racks = [{"name": "heavy", "node_groups": [
        {"name": f"g{i:02d}", "instance_type": heavy[i % len(heavy)], "count": 2}
        for i in range(min(20, max_node_groups_per_rack()))]}]
    mixed = [
        {"instance_type": "c7gn.16xlarge", "count": 4},
        {"instance_type": "c8g.4xlarge", "count": 1, "capacity": {"type": "spot"}},
        {"instance_type": "p4d.24xlarge", "count": 2,
         "capacity": {"type": "reservation", "reservation_id": "cr-0123456789abcdef0"},
         "placement_group": {"name": "odcr-pg"}},  # the group the reservation was created in
        {"instance_type": "g6e.48xlarge", "count": 2},
        {"instance_type": "m7g.large", "count": 1},
    ]
    for r in range((BATCH_MAX_COMPUTE_ENVIRONMENTS - len(racks[0]["node_groups"])) // len(mixed)):
        racks.append({"name": f"mixed{r}",
                      "node_groups": [{"name": f"m{i}", **g} for i, g in enumerate(mixed)]})
    return {"name": "big", "region": "us-east-2", "availability_zone": "us-east-2c",
            "network": {"vpc_cidr": "10.40.0.0/16"}, "racks": racks}


@pytest.fixture(scope="module")
def largest_app(tmp_path_factory) -> Synth:
    data = largest_spec_data()
    assert sum(len(r["node_groups"]) for r in data["racks"]) == BATCH_MAX_COMPUTE_ENVIRONMENTS
    return synth(plan_of(Spec.model_validate(data)), tmp_path_factory.mktemp("largest"))


def worst_rack_data(groups: int) -> dict[str, Any]:
    """One rack of the heaviest node groups the catalog allows, as many as validation admits: longest names, FSx,
    and the capacity kind whose template the measurement found largest."""
    m = measurement()
    return worst_case_spec(load_catalog(), m["instance_type"], groups, capacity=m["capacity"])


@pytest.fixture(scope="module")
def worst_rack_app(tmp_path_factory) -> Synth:
    """Through the CDK CLI, as users synthesize (default context: construct path metadata on every resource), with
    CDK's built-in validator on. The templates only: no construct tree comes back from another process."""
    data = worst_rack_data(max_node_groups_per_rack())
    out = tmp_path_factory.mktemp("worst-rack")
    (out / "spec.json").write_text(json.dumps(data))
    result = cdk_synth(out / "spec.json", out / "cdk.out", env={"CDK_VALIDATION": "true"})
    assert result.returncode == 0, result.stderr
    plan = plan_of(Spec.model_validate(data))
    paths = {name: out / "cdk.out" / f"{name}.template.json"
             for name in (plan.network.stack_name, plan.storage.stack_name, *(r.stack_name for r in plan.racks))}
    return Synth(plan=plan, templates={}, raw={n: json.loads(p.read_text()) for n, p in paths.items()},
                 template_paths=paths, termination_protection={})


# --- helpers ---------------------------------------------------------------------------------------------------

def resources(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(type_)


def props(template: Template, type_: str, **match: Any) -> tuple[str, dict[str, Any]]:
    found = [(lid, r["Properties"]) for lid, r in resources(template, type_).items()
             if all(r["Properties"].get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one {type_} with {match}, found {len(found)}"
    return found[0]


def rack_templates(s: Synth):
    for rack in s.plan.racks:
        for group in rack.node_groups:
            yield group, s.templates[rack.stack_name]


def group_stack(s: Synth, group) -> str:
    return next(r.stack_name for r in s.plan.racks if r.name == group.rack)


def handed_over(s: Synth, stack: str, value: Any) -> str:
    """The SSM parameter whose value `value` (in `stack`'s template) is: a template parameter CloudFormation
    resolves from SSM at each deploy of `stack` (stacks/handoff.py)."""
    assert isinstance(value, dict) and set(value) == {"Ref"}, value
    param = s.raw[stack]["Parameters"][value["Ref"]]
    assert param["Type"] == "AWS::SSM::Parameter::Value<String>", param
    return param["Default"]


def published(s: Synth, stack: str, ref: dict[str, Any]) -> str:
    """The SSM parameter to which `stack` writes `ref` (a Ref or GetAtt of one of its resources)."""
    names = [r["Properties"]["Name"] for r in resources(s.templates[stack], "AWS::SSM::Parameter").values()
             if r["Properties"]["Value"] == ref]
    assert len(names) == 1, (ref, names)
    return names[0]


def logical_id(s: Synth, stack: str, type_: str, **match: Any) -> str:
    return props(s.templates[stack], type_, **match)[0]


def node_sg_parameter(s: Synth) -> str:
    node, _ = sg_ids(s)
    return published(s, s.plan.network.stack_name, group_id(node))


def sg_ids(s: Synth) -> tuple[str, str]:
    net = s.plan.network.stack_name
    found = {}
    for lid, r in resources(s.templates[net], "AWS::EC2::SecurityGroup").items():
        desc = r["Properties"]["GroupDescription"]
        if desc.startswith("rackform nodes"):
            found["node"] = lid
        elif desc.startswith("rackform FSx"):
            found["fsx"] = lid
    return found["node"], found["fsx"]


def group_id(lid: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [lid, "GroupId"]}


# --- launch templates ------------------------------------------------------------------------------------------

def test_launch_templates_require_imdsv2_and_encrypt_a_gp3_root(demo_app):
    for group, t in rack_templates(demo_app):
        _, lt = props(t, LAUNCH_TEMPLATE, LaunchTemplateName=group.launch_template)
        data = lt["LaunchTemplateData"]
        # hop limit 1: a container on a docker bridge gets no metadata answer (the node role's credentials)
        assert data["MetadataOptions"] == {"HttpEndpoint": "enabled", "HttpTokens": "required",
                                           "HttpPutResponseHopLimit": 1}
        # and the ECS agent blocks it for awsvpc tasks, an iptables rule for bridge ones, before any job
        user_data = json.dumps(data["UserData"])
        assert "ECS_AWSVPC_BLOCK_IMDS=true" in user_data
        assert "iptables --insert DOCKER-USER 1 --in-interface docker+ --destination 169.254.169.254/32 --jump DROP" \
            in user_data
        assert data["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda", "Ebs": {
            "VolumeSize": group.root_volume_gib, "VolumeType": "gp3", "Encrypted": True,
            "DeleteOnTermination": True}}]


def test_network_interfaces_are_the_plans_with_the_node_group_on_each(demo_app):
    node_sg = node_sg_parameter(demo_app)
    for group, t in rack_templates(demo_app):
        _, lt = props(t, LAUNCH_TEMPLATE, LaunchTemplateName=group.launch_template)
        data = lt["LaunchTemplateData"]
        nics = data["NetworkInterfaces"]
        assert [(n["NetworkCardIndex"], n["DeviceIndex"], n["InterfaceType"]) for n in nics] == [
            (n.network_card_index, n.device_index, n.interface_type) for n in group.network_interfaces]
        for nic in nics:
            assert [handed_over(demo_app, group_stack(demo_app, group), g) for g in nic["Groups"]] == [node_sg]
            assert nic["DeleteOnTermination"] is True
            assert "SubnetId" not in nic and "AssociatePublicIpAddress" not in nic
        assert "SecurityGroupIds" not in data and "SecurityGroups" not in data
        # Batch ignores these in a template, and supplying them would hide the compute environment's settings.
        assert "IamInstanceProfile" not in data and "InstanceType" not in data and "ImageId" not in data


def test_launch_templates_carry_both_efa_layouts(largest_app):
    """p5 keeps `efa` (card 0 holds two interfaces and must keep one for the Batch task ENI); p5en gets AWS's
    recommended layout: an ENA primary, IP-less `efa-only` on card 0 device 1 and on device 0 of cards 1-15."""
    written = {}
    for group, t in rack_templates(largest_app):
        _, lt = props(t, LAUNCH_TEMPLATE, LaunchTemplateName=group.launch_template)
        written[group.instance_type] = [(n["NetworkCardIndex"], n["DeviceIndex"], n["InterfaceType"])
                                        for n in lt["LaunchTemplateData"]["NetworkInterfaces"]]
    assert written["p5.48xlarge"] == [(0, 0, "efa"), *((card, 1, "efa") for card in range(1, 32))]
    assert written["p5en.48xlarge"] == [(0, 0, "interface"), (0, 1, "efa-only"),
                                        *((card, 0, "efa-only") for card in range(1, 16))]
    assert written["c7gn.16xlarge"] == [(0, 0, "interface"), (0, 1, "efa-only")]


def test_trn2_group_runs_in_its_capacity_block(demo_app):
    (group,) = [g for g in demo_app.plan.node_groups() if g.capacity.type == "capacity-block"]
    _, lt = props(demo_app.templates[group_stack(demo_app, group)], LAUNCH_TEMPLATE,
                  LaunchTemplateName=group.launch_template)
    data = lt["LaunchTemplateData"]
    assert group.instance_type == "trn2.48xlarge"
    assert data["InstanceMarketOptions"] == {"MarketType": "capacity-block"}
    assert data["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationId": group.capacity.reservation_id}}


def test_on_demand_groups_carry_no_capacity_settings(demo_app):
    for group, t in rack_templates(demo_app):
        if group.capacity.type == "on-demand":
            _, lt = props(t, LAUNCH_TEMPLATE, LaunchTemplateName=group.launch_template)
            assert "InstanceMarketOptions" not in lt["LaunchTemplateData"]
            assert "CapacityReservationSpecification" not in lt["LaunchTemplateData"]


def test_user_data_is_mime_and_mounts_lustre_with_retries(demo_app):
    fsx = demo_app.plan.storage.fsx_lustre
    storage = demo_app.plan.storage.stack_name
    (fs_id,) = resources(demo_app.templates[storage], "AWS::FSx::FileSystem")
    lustre = [published(demo_app, storage, {"Fn::GetAtt": [fs_id, a]}) for a in ("DNSName", "LustreMountName")]
    for group, t in rack_templates(demo_app):
        _, lt = props(t, LAUNCH_TEMPLATE, LaunchTemplateName=group.launch_template)
        parts = lt["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
        text = "".join(p if isinstance(p, str) else "<import>" for p in parts)
        own = demo_app.raw[group_stack(demo_app, group)]["Resources"]  # the rack's XID log group (GPU nodes)
        imports = [handed_over(demo_app, group_stack(demo_app, group), p) for p in parts
                   if not isinstance(p, str) and p.get("Ref") not in own]
        assert text.startswith("MIME-Version: 1.0\nContent-Type: multipart/mixed;")
        assert text.rstrip().endswith("--==RACKFORM==--")
        assert "dnf install -y lustre-client" in text
        assert f"mount -t lustre -o relatime,flock <import>@tcp:/<import> {fsx.mount_path}" in text
        assert "for attempt in $(seq 1 30)" in text and "sleep" in text
        assert imports == lustre


# --- placement groups, compute environments, job queues ----------------------------------------------------------

def test_efa_groups_get_a_cluster_placement_group_their_compute_environment_uses(demo_app):
    for group, t in rack_templates(demo_app):
        _, ce = props(t, COMPUTE_ENVIRONMENT, ComputeEnvironmentName=group.compute_environment)
        if not group.creates_placement_group:
            assert group.placement_group is None and "PlacementGroup" not in ce["ComputeResources"]
            continue
        pgs = {lid: r["Properties"] for lid, r in resources(t, PLACEMENT_GROUP).items()
               if {"Key": "Name", "Value": group.placement_group} in r["Properties"]["Tags"]}
        assert len(pgs) == 1
        (lid, pg), = pgs.items()
        assert pg["Strategy"] == "cluster"
        assert ce["ComputeResources"]["PlacementGroup"] == {"Ref": lid}
    assert any(g.placement_group is None for g in demo_app.plan.node_groups())
    # The Capacity Block group: AWS places the block's instances, so no placement group of rackform's
    workers = demo_app.plan.rack("trn2-train").node_groups[0]
    assert workers.capacity.type == "capacity-block" and workers.placement_group is None


def private_subnet_parameter(s: Synth) -> str:
    net = s.plan.network.stack_name
    return published(s, net, {"Ref": logical_id(s, net, "AWS::EC2::Subnet", MapPublicIpOnLaunch=False)})


def test_compute_environments_leave_networking_to_the_launch_template(demo_app):
    subnet = private_subnet_parameter(demo_app)
    for group, t in rack_templates(demo_app):
        _, ce = props(t, COMPUTE_ENVIRONMENT, ComputeEnvironmentName=group.compute_environment)
        res = ce["ComputeResources"]
        assert ce["Type"] == "MANAGED" and "ServiceRole" not in ce  # Batch's service-linked role
        assert res["Type"] == "EC2" and res["AllocationStrategy"] == "BEST_FIT_PROGRESSIVE"
        assert res["InstanceTypes"] == [group.instance_type]
        assert "optimal" not in json.dumps(res)
        assert res["MinvCpus"] == 0 and res["MaxvCpus"] == group.count * group.vcpus_per_node
        assert "SecurityGroupIds" not in res
        assert [handed_over(demo_app, group_stack(demo_app, group), s) for s in res["Subnets"]] == [subnet]
        lt_id = logical_id(demo_app, group_stack(demo_app, group), LAUNCH_TEMPLATE,
                           LaunchTemplateName=group.launch_template)
        assert res["LaunchTemplate"] == {"LaunchTemplateId": {"Ref": lt_id},
                                         "Version": {"Fn::GetAtt": [lt_id, "LatestVersionNumber"]}}
        (profile,) = resources(t, "AWS::IAM::InstanceProfile")
        assert res["InstanceRole"] == {"Fn::GetAtt": [profile, "Arn"]}
        (ec2_config,) = res["Ec2Configuration"]
        assert ec2_config["ImageType"] == group.batch_image_type
        param = ec2_config["ImageIdOverride"]["Ref"]
        t.has_parameter(param, {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                                "Default": group.ami_ssm_parameter})


def test_one_job_queue_per_node_group_with_an_output(demo_app):
    for rack in demo_app.plan.racks:
        t = demo_app.templates[rack.stack_name]
        t.resource_count_is(JOB_QUEUE, len(rack.node_groups))
        t.resource_count_is(COMPUTE_ENVIRONMENT, len(rack.node_groups))
        for group in rack.node_groups:
            _, q = props(t, JOB_QUEUE, JobQueueName=group.job_queue)
            ce_id = logical_id(demo_app, rack.stack_name, COMPUTE_ENVIRONMENT,
                               ComputeEnvironmentName=group.compute_environment)
            assert q["ComputeEnvironmentOrder"] == [
                {"ComputeEnvironment": {"Fn::GetAtt": [ce_id, "ComputeEnvironmentArn"]}, "Order": 1}]
            assert q["State"] == "ENABLED"
            outputs = t.find_outputs("*", {"Value": group.job_queue})
            assert len(outputs) == 1


def _roles_by_principal(t: Template) -> dict[str, tuple[str, dict[str, Any]]]:
    """By the service that assumes the role, and its IAM path when it has one (the workload role)."""
    return {r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
            + r["Properties"].get("Path", ""): (rid, r) for rid, r in resources(t, "AWS::IAM::Role").items()}


def _statements_of(t: Template, role_id: str) -> list[dict[str, Any]]:
    return [s for p in resources(t, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_node_role_runs_ecs_and_ssm_and_only_jobs_write_results(demo_app):
    storage = demo_app.plan.storage.stack_name
    bucket = logical_id(demo_app, storage, "AWS::S3::Bucket")
    bucket_parameter = published(demo_app, storage, {"Ref": bucket})
    for rack in demo_app.plan.racks:
        t = demo_app.templates[rack.stack_name]
        name = next(k for k, p in demo_app.raw[rack.stack_name]["Parameters"].items()
                    if p["Default"] == bucket_parameter)
        results = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": name}, "/results/*"]]}
        roles = _roles_by_principal(t)
        # and the repair and queue-depth functions' (tests/stacks/test_healing.py holds them to their least)
        assert set(roles) == {"ec2.amazonaws.com", "ecs-tasks.amazonaws.com",
                              f"ecs-tasks.amazonaws.com{WORKLOAD_ROLE_PATH}",
                              f"lambda.amazonaws.com{REPAIR_ROLE_PATH}", "lambda.amazonaws.com"}
        node_id, node = roles["ec2.amazonaws.com"]
        managed = json.dumps(node["Properties"]["ManagedPolicyArns"])
        assert "AmazonSSMManagedInstanceCore" not in managed  # it reads every SSM parameter of the account
        assert ":iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role" in managed
        # Session Manager's own minimum, the CloudWatch agent's metrics in rackform's namespace and, where GPUs log
        # XIDs, its lines to that log group alone; nothing on the host writes results (the job role does)
        xid_logs = [{"Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Effect": "Allow",
                     "Resource": {"Fn::GetAtt": [lid, "Arn"]}} for lid in demo_app.raw[rack.stack_name]["Resources"]
                    if lid.startswith("TelemetryGpuXidLogs")]
        assert len(xid_logs) == any(g.gpus_per_node for g in rack.node_groups)
        assert _statements_of(t, node_id) == [{"Action": list(SESSION_MANAGER_ACTIONS), "Effect": "Allow",
                                               "Resource": "*"},
                                              {"Action": "cloudwatch:PutMetricData", "Effect": "Allow",
                                               "Resource": "*", "Condition": {"StringEquals": {
                                                   "cloudwatch:namespace": TELEMETRY_NAMESPACE}}}, *xid_logs]
        t.resource_count_is("AWS::IAM::InstanceProfile", 1)
        # The benchmark containers' role: their own results, written and read back (write-once check, and a
        # multi-node job's main node reading its peers' health records at the versions it listed), nothing else.
        job_id, job = roles["ecs-tasks.amazonaws.com"]
        assert "ManagedPolicyArns" not in job["Properties"]
        bucket_arn = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": name}]]}
        assert _statements_of(t, job_id) == [
            {"Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"], "Effect": "Allow", "Resource": results},
            {"Action": "s3:ListBucketVersions", "Condition": {"StringLike": {"s3:prefix": "results/*"}},
             "Effect": "Allow", "Resource": bucket_arn}]


def test_workload_jobs_run_under_a_role_that_cannot_touch_results(demo_app):
    for rack in demo_app.plan.racks:
        t = demo_app.templates[rack.stack_name]
        roles = _roles_by_principal(t)
        job_id, _ = roles["ecs-tasks.amazonaws.com"]
        workload_id, _ = roles[f"ecs-tasks.amazonaws.com{WORKLOAD_ROLE_PATH}"]
        # its own outputs under workloads/, nothing under results/ (records, logs, markers)
        [statement] = _statements_of(t, workload_id)
        assert statement["Action"] == ["s3:PutObject", "s3:GetObject"] and statement["Effect"] == "Allow"
        assert statement["Resource"]["Fn::Join"][1][-1] == "/workloads/*"
        assert f"/{RESULTS_PREFIX}" not in json.dumps(_statements_of(t, workload_id))
        # `rackform run` finds the role on every benchmark definition of the rack; the benchmarks keep the job role
        for group in rack.node_groups:
            for jd in _job_definitions(demo_app, group).values():
                assert jd["Tags"][WORKLOAD_ROLE_TAG] == {"Fn::GetAtt": [workload_id, "Arn"]}
                assert _container(jd)["JobRoleArn"] == {"Fn::GetAtt": [job_id, "Arn"]}


# --- storage ---------------------------------------------------------------------------------------------------

def test_results_bucket_is_private_encrypted_versioned_tls_only_and_retained(demo_app):
    storage = demo_app.plan.storage.stack_name
    t = demo_app.templates[storage]
    (bucket_id, bucket), = resources(t, "AWS::S3::Bucket").items()
    p = bucket["Properties"]
    t.has_output("ResultsBucketName", {"Value": {"Ref": bucket_id}})  # `rackform results` finds the bucket by it
    assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"
    assert p["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                   "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "SSEAlgorithm"] in ("AES256", "aws:kms")
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    (policy,) = resources(t, "AWS::S3::BucketPolicy").values()
    deny_tls = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert len(deny_tls) == 1 and deny_tls[0]["Principal"] == {"AWS": "*"}
    t.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    assert demo_app.termination_protection[storage] is True


def test_lustre_is_retained_in_the_private_subnet_and_linked_to_s3(demo_app):
    storage, net = demo_app.plan.storage.stack_name, demo_app.plan.network.stack_name
    fsx = demo_app.plan.storage.fsx_lustre
    t = demo_app.templates[storage]
    (fs_id, fs), = resources(t, "AWS::FSx::FileSystem").items()
    p = fs["Properties"]
    assert fs["DeletionPolicy"] == "Retain" and fs["UpdateReplacePolicy"] == "Retain"
    assert p["FileSystemType"] == "LUSTRE" and p["FileSystemTypeVersion"] == "2.15"
    assert p["StorageCapacity"] == fsx.storage_capacity_gib
    assert p["LustreConfiguration"] == {"DeploymentType": fsx.deployment_type,
                                        "PerUnitStorageThroughput": fsx.per_unit_storage_throughput}
    _, fsx_sg = sg_ids(demo_app)
    assert [handed_over(demo_app, storage, g) for g in p["SecurityGroupIds"]] == [
        published(demo_app, net, group_id(fsx_sg))]
    assert [handed_over(demo_app, storage, s) for s in p["SubnetIds"]] == [private_subnet_parameter(demo_app)]
    (dra,) = resources(t, "AWS::FSx::DataRepositoryAssociation").values()
    # Deletions in S3 reach the file system; deletions on the file system never reach S3 (export_deletions false).
    assert dra["Properties"] == {
        "FileSystemId": {"Ref": fs_id}, "FileSystemPath": "/data", "DataRepositoryPath": fsx.data_repository_path,
        "BatchImportMetaDataOnCreate": True,
        "S3": {"AutoImportPolicy": {"Events": ["NEW", "CHANGED", "DELETED"]},
               "AutoExportPolicy": {"Events": ["NEW", "CHANGED"]}}}


# --- network ---------------------------------------------------------------------------------------------------

def test_vpc_has_one_private_and_one_public_subnet_in_the_plans_az(demo_app):
    net = demo_app.plan.network
    t = demo_app.templates[net.stack_name]
    t.has_resource_properties("AWS::EC2::VPC", {"CidrBlock": net.vpc_cidr})
    subnets = [r["Properties"] for r in resources(t, "AWS::EC2::Subnet").values()]
    assert {s["AvailabilityZone"] for s in subnets} == {net.availability_zone}
    masks = sorted((s["MapPublicIpOnLaunch"], int(s["CidrBlock"].split("/")[1])) for s in subnets)
    assert masks == [(False, net.private_subnet.cidr_mask), (True, net.public_subnet.cidr_mask)]
    t.resource_count_is("AWS::EC2::NatGateway", 1)
    gateway = [r["Properties"] for r in resources(t, "AWS::EC2::VPCEndpoint").values()
               if r["Properties"]["VpcEndpointType"] == "Gateway"]
    assert len(gateway) == 1 and json.dumps(gateway[0]["ServiceName"]).endswith('".s3"]]}')
    interface = {r["Properties"]["ServiceName"]: r["Properties"] for r in resources(t, "AWS::EC2::VPCEndpoint").values()
                 if r["Properties"]["VpcEndpointType"] == "Interface"}
    assert set(interface) == {f"com.amazonaws.{demo_app.plan.region}.{n}" for n in net.interface_endpoints}
    assert all(p["PrivateDnsEnabled"] is True for p in interface.values())


def _rules(t: Template, type_: str, group: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(t, type_).values() if r["Properties"]["GroupId"] == group_id(group)]


def test_node_group_allows_efa_within_itself_https_out_and_lustre(demo_app):
    t = demo_app.templates[demo_app.plan.network.stack_name]
    node, fsx = sg_ids(demo_app)
    sg = resources(t, "AWS::EC2::SecurityGroup")[node]["Properties"]
    assert [{k: v for k, v in e.items() if k != "Description"} for e in sg["SecurityGroupEgress"]] == [
        {"CidrIp": "0.0.0.0/0", "FromPort": 443, "IpProtocol": "tcp", "ToPort": 443}]
    assert "SecurityGroupIngress" not in sg

    def summary(rules, peer_key):
        return {(r["IpProtocol"], r.get("FromPort"), r.get("ToPort"), json.dumps(r[peer_key])) for r in rules}

    ingress = summary(_rules(t, "AWS::EC2::SecurityGroupIngress", node), "SourceSecurityGroupId")
    egress = summary(_rules(t, "AWS::EC2::SecurityGroupEgress", node), "DestinationSecurityGroupId")
    self_, to_fsx = json.dumps(group_id(node)), json.dumps(group_id(fsx))
    lustre = {("tcp", 988, 988), ("tcp", 1018, 1023)}
    assert ("-1", None, None, self_) in ingress and ("-1", None, None, self_) in egress
    assert {(p, f, to) for p, f, to, peer in egress if peer == to_fsx} == lustre
    assert {(p, f, to) for p, f, to, peer in ingress if peer == to_fsx} == lustre

    fsx_ingress = summary(_rules(t, "AWS::EC2::SecurityGroupIngress", fsx), "SourceSecurityGroupId")
    assert fsx_ingress == {(p, f, to, peer) for p, f, to in lustre for peer in (self_, to_fsx)}


def test_default_group_lets_multi_node_job_tasks_reach_each_other_and_https(demo_app):
    """MNP task ENIs take the VPC's default group (the compute environments have none): its rules are the stack's."""
    t = demo_app.templates[demo_app.plan.network.stack_name]
    [vpc] = resources(t, "AWS::EC2::VPC")
    default = {"Fn::GetAtt": [vpc, "DefaultSecurityGroup"]}

    def on_default(type_):
        return sorted((tuple(sorted((k, json.dumps(v)) for k, v in r["Properties"].items() if k != "Description"))
                       for r in resources(t, type_).values() if r["Properties"]["GroupId"] == default))

    me = json.dumps(default)
    assert on_default("AWS::EC2::SecurityGroupIngress") == sorted(
        tuple(sorted([("GroupId", me), ("SourceSecurityGroupId", me), ("IpProtocol", json.dumps(proto)),
                      ("FromPort", "0"), ("ToPort", "65535")])) for proto in ("tcp", "udp"))
    assert on_default("AWS::EC2::SecurityGroupEgress") == sorted([
        tuple(sorted([("GroupId", me), ("DestinationSecurityGroupId", me), ("IpProtocol", '"-1"')])),
        tuple(sorted([("GroupId", me), ("CidrIp", '"0.0.0.0/0"'), ("IpProtocol", '"tcp"'), ("FromPort", "443"),
                      ("ToPort", "443")]))])
    # An all-traffic rule from itself would duplicate the rule AWS puts on a new default group: CloudFormation
    # would fail to create it.
    assert all(r["Properties"]["IpProtocol"] != "-1" for r in resources(t, "AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"]["GroupId"] == default)


def test_nothing_accepts_traffic_from_the_internet(demo_app, largest_app):
    for s in (demo_app, largest_app):
        for name, raw in s.raw.items():
            for r in raw["Resources"].values():
                if r["Type"] == "AWS::EC2::SecurityGroup":
                    rules = r["Properties"].get("SecurityGroupIngress", [])
                elif r["Type"] == "AWS::EC2::SecurityGroupIngress":
                    rules = [r["Properties"]]
                else:
                    continue
                for rule in rules:
                    assert rule.get("CidrIp") != "0.0.0.0/0" and rule.get("CidrIpv6") != "::/0", (name, rule)


def test_network_stack_needs_no_az_lookup_with_a_known_account(demo_plan, tmp_path):
    # With an account, Stack.availability_zones is a context lookup the CLI can only do with credentials.
    app = App(outdir=str(tmp_path))
    stack = NetworkStack(app, "net", spec_name=demo_plan.name, network=demo_plan.network,
                         env=Environment(account="123456789012", region=demo_plan.region))
    app.synth()
    assert "missing" not in json.loads((tmp_path / "manifest.json").read_text())
    subnets = Template.from_stack(stack).find_resources("AWS::EC2::Subnet")
    assert {r["Properties"]["AvailabilityZone"] for r in subnets.values()} == {demo_plan.availability_zone}


# --- capacity types only the largest spec has --------------------------------------------------------------------

def test_spot_and_reservation_groups(largest_app):
    groups = {g.capacity.type: g for g in largest_app.plan.node_groups()}
    spot, reserved = groups["spot"], groups["reservation"]
    _, ce = props(largest_app.templates[group_stack(largest_app, spot)], COMPUTE_ENVIRONMENT,
                  ComputeEnvironmentName=spot.compute_environment)
    assert ce["ComputeResources"]["Type"] == "SPOT"
    assert ce["ComputeResources"]["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    t = largest_app.templates[group_stack(largest_app, reserved)]
    _, lt = props(t, LAUNCH_TEMPLATE, LaunchTemplateName=reserved.launch_template)
    assert lt["LaunchTemplateData"]["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationId": reserved.capacity.reservation_id}}
    assert "InstanceMarketOptions" not in lt["LaunchTemplateData"]
    # The reservation's existing placement group, by name: launched into, never created
    _, ce = props(t, COMPUTE_ENVIRONMENT, ComputeEnvironmentName=reserved.compute_environment)
    assert ce["ComputeResources"]["PlacementGroup"] == "odcr-pg" and not reserved.creates_placement_group
    assert not [r for r in resources(t, PLACEMENT_GROUP).values()
                if {"Key": "Name", "Value": "odcr-pg"} in r["Properties"].get("Tags", [])]


def test_without_fsx_only_efa_groups_install_efa(largest_app):
    assert largest_app.plan.storage.fsx_lustre is None
    largest_app.templates[largest_app.plan.storage.stack_name].resource_count_is("AWS::FSx::FileSystem", 0)
    seen = set()
    for group, t in rack_templates(largest_app):
        _, lt = props(t, LAUNCH_TEMPLATE, LaunchTemplateName=group.launch_template)
        seen.add(group.efa_interfaces > 0)
        text = lt["LaunchTemplateData"]["UserData"]["Fn::Base64"]
        if not isinstance(text, str):  # GPU nodes name their rack's XID log group, a token
            text = "".join(p for p in text["Fn::Join"][1] if isinstance(p, str))
        if group.efa_interfaces == 0:
            assert "efa_installer" not in text and "mount -t lustre" not in text
            continue
        assert f"aws-efa-installer-{EFA_INSTALLER_VERSION}.tar.gz" in text and "sha256sum -c" in text
        assert f'[ "$found" -ge {group.efa_interfaces} ] && exit 0' in text and "mount -t lustre" not in text
    assert seen == {True, False}


# --- whole-template checks ---------------------------------------------------------------------------------------

def lint(s: Synth) -> tuple[list[str], list[str]]:
    errs, warns = [], []
    for name, path in s.template_paths.items():
        for m in cfnlint.api.lint(path.read_text(), regions=[s.plan.region]):
            line = f"{name}: {m.rule.id} {m.message}"
            if m.rule.id.startswith("E"):
                errs.append(line)
            elif m.rule.id.startswith("W") and m.rule.id not in ACCEPTED_LINT_WARNINGS:
                warns.append(line)
    return errs, warns


def test_cfn_lint_finds_no_errors_and_only_accepted_warnings(demo_app, largest_app):
    for s in (demo_app, largest_app):
        errs, warns = lint(s)
        assert errs == []
        assert warns == []


def test_templates_are_stable_when_racks_are_removed_or_reordered(demo_app, tmp_path):
    spec, _ = load_spec(ROOT / "examples" / "trn2-capacity-block.yaml")
    kept = [r for r in spec.racks if r.name != "trn2-train"][::-1]
    assert [r.name for r in kept] == ["gpu", "graviton"]
    edited = synth(plan_of(spec.model_copy(update={"racks": kept})), tmp_path)
    for name in (demo_app.plan.network.stack_name, demo_app.plan.storage.stack_name,
                 *(r.stack_name for r in edited.plan.racks)):
        assert edited.raw[name] == demo_app.raw[name], name
    assert set(edited.raw) == set(demo_app.raw) - {"trn2-rack-trn2-train"}


def test_a_new_vpc_and_file_system_reach_the_racks_through_ssm_not_exports(demo_app, tmp_path):
    """Item 17.4: with exports, a replaced VPC, subnet or file system failed the producing stack's update ("Export
    ... cannot be updated as it is in use"). Now no stack imports anything: the producers publish SSM parameters,
    the consumers read them at each deploy, so the rack templates do not even change, and CDK deploys the stacks
    network, storage, racks."""
    spec, _ = load_spec(ROOT / "examples" / "trn2-capacity-block.yaml")
    moved = spec.model_copy(update={
        "network": spec.network.model_copy(update={"vpc_cidr": "10.50.0.0/16"}),
        "storage": spec.storage.model_copy(update={"fsx_lustre": spec.storage.fsx_lustre.model_copy(
            update={"deployment_type": "PERSISTENT_1", "per_unit_storage_throughput": 200})})})
    edited = synth(plan_of(moved), tmp_path)
    net, storage = demo_app.plan.network.stack_name, demo_app.plan.storage.stack_name
    for s in (demo_app, edited):
        assert "Fn::ImportValue" not in json.dumps(s.raw)
        # Every rackform value a stack reads from SSM is one the network or storage stack writes.
        written = {r["Properties"]["Name"] for st in (net, storage)
                   for r in resources(s.templates[st], "AWS::SSM::Parameter").values()}
        for name, raw in s.raw.items():
            read = {p["Default"] for p in raw.get("Parameters", {}).values()
                    if p["Default"].startswith(naming.parameter(s.plan.name, ""))}
            assert read <= written, (name, read - written)
            assert name == net or read, name
    assert edited.raw[net] != demo_app.raw[net] and edited.raw[storage] != demo_app.raw[storage]
    for rack in demo_app.plan.racks:
        assert edited.raw[rack.stack_name] == demo_app.raw[rack.stack_name], rack.stack_name
    manifest = json.loads((demo_app.template_paths[net].parent / "manifest.json").read_text())
    depends = {name: {d for d in a.get("dependencies", []) if not d.endswith(".assets")}
               for name, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"}
    assert depends == {net: set(), storage: {net}, **{r.stack_name: {storage} for r in demo_app.plan.racks}}


def test_the_exports_earlier_releases_imported_are_still_exported(demo_app):
    # Stacks deployed by a release that used exports import these until their next deploy: the network and storage
    # stacks keep them, or their own first deploy after an upgrade would fail on an export in use.
    imported_before = {
        "trn2-network": {"ExportsOutputRefNetworkVpcPrivateSubnet1Subnet6DD86AE62279BBA5",
                         "ExportsOutputFnGetAttSecurityGroupsNodes7D1C1F16GroupId58779831",
                         "ExportsOutputFnGetAttSecurityGroupsLustre22E0128FGroupIdBDA9FF1B"},
        "trn2-storage": {"ExportsOutputRefResultsBucket46167C27D2BDFE4C",
                         "ExportsOutputFnGetAttResultsBucket46167C27ArnE43BA8FC",
                         "ExportsOutputFnGetAttLustreFileSystem4AFDAE78DNSName563212AC",
                         "ExportsOutputFnGetAttLustreFileSystem4AFDAE78LustreMountName0D746587"}}
    for stack, names in imported_before.items():
        exports = {o["Export"]["Name"] for o in demo_app.raw[stack]["Outputs"].values() if "Export" in o}
        assert exports == {f"{stack}:{n}" for n in names}


def test_largest_allowed_spec_fits_cloudformation_limits(largest_app):
    data = largest_spec_data()
    data["racks"][1]["node_groups"].append({"name": "one-too-many", "instance_type": "m7g.large", "count": 1})
    rules = {p.rule for p in errors(validate_spec(Spec.model_validate(data), load_catalog()))}
    assert rules == {"batch-quotas"}, "51 node groups must be refused, so 50 is the largest spec"
    for name, path in largest_app.template_paths.items():
        raw = largest_app.raw[name]
        assert len(raw["Resources"]) < 500, name
        assert len(raw.get("Outputs", {})) < 200, name
        assert len(raw.get("Parameters", {})) < 200, name
        assert path.stat().st_size < TEMPLATE_BODY_MAX_BYTES, (name, path.stat().st_size)


def test_the_heaviest_rack_validate_admits_keeps_the_margin_as_the_cdk_cli_writes_it(worst_rack_app):
    # CloudFormation receives the file cdk.out holds, indented, not minified JSON: measure the file the CLI wrote.
    ceiling = max_node_groups_per_rack()
    rack = worst_rack_app.plan.racks[0]
    assert len(rack.node_groups) == ceiling >= 20
    template = worst_rack_app.raw[rack.stack_name]
    assert all("aws:cdk:path" in r["Metadata"] for r in template["Resources"].values())
    assert template["Resources"]["CDKMetadata"]["Type"] == "AWS::CDK::Metadata"
    size = worst_rack_app.template_paths[rack.stack_name].stat().st_size
    assert size < TEMPLATE_BODY_MAX_BYTES * (1 - MARGIN), (
        f"{size:,} bytes leaves less than {MARGIN:.0%} of CloudFormation's {TEMPLATE_BODY_MAX_BYTES:,} free: run "
        "scripts/measure_rack_template.py")
    # The committed measurement must still describe the templates: a group that grew eats the margin silently.
    m = measurement()
    per_group = (size - m["base_bytes"]) / ceiling
    assert per_group <= m["per_group_bytes"], (f"a node group now takes {per_group:,.0f} bytes, the measurement says "
                                               f"{m['per_group_bytes']:,}: run scripts/measure_rack_template.py")
    resources_per_group = (len(template["Resources"]) - m["base_resources"]) / ceiling
    assert resources_per_group <= m["per_group_resources"] and len(template["Resources"]) < STACK_MAX_RESOURCES
    # CDK's own validator over the worst case: nothing (it is off at a user's synth, stacks/build_app)
    assert validation_findings(worst_rack_app.template_paths[rack.stack_name].parent) == []
    one_more = worst_rack_data(ceiling + 1)
    problems = errors(validate_spec(Spec.model_validate(one_more), load_catalog()))
    assert {p.rule for p in problems} == {"rack-stack-size"} and str(ceiling) in problems[0].message


def test_longer_mount_paths_grow_a_group_by_no_more_than_validate_counts(tmp_path):
    """validate counts every mount-path character beyond /fsx and /scratch at the measured bytes a node group
    (stack_limits.mount_path_bytes), since the heaviest rack above is synthesized at the default paths: one heaviest
    group with longer paths, synthesized as users do, grows by no more than that."""
    m = measurement()
    fsx, store = "/mnt/fsx/shared-datasets", "/mnt/nvme/local-scratch"
    sizes = {}
    for name, paths in (("default", {}), ("longer", {"fsx_mount_path": fsx, "instance_store_mount_path": store})):
        data = worst_case_spec(load_catalog(), m["instance_type"], 1, capacity=m["capacity"], **paths)
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.json").write_text(json.dumps(data))
        result = cdk_synth(tmp_path / name / "spec.json", tmp_path / name / "cdk.out")
        assert result.returncode == 0, result.stderr
        stack = naming.rack_stack(data["name"], data["racks"][0]["name"])
        sizes[name] = (tmp_path / name / "cdk.out" / f"{stack}.template.json").stat().st_size
    assert 0 < sizes["longer"] - sizes["default"] <= mount_path_bytes(fsx, store), (
        f"{sizes['longer'] - sizes['default']:,} bytes for longer mount paths: run scripts/measure_rack_template.py")


# --- benchmark job definitions -----------------------------------------------------------------------------------

def _job_definitions(app: Synth, group) -> dict[str, dict[str, Any]]:
    t = app.templates[group_stack(app, group)]
    return {r["Properties"]["JobDefinitionName"]: r["Properties"]
            for r in resources(t, "AWS::Batch::JobDefinition").values()
            if r["Properties"]["JobDefinitionName"].startswith(group.resource_name + "-")}


def _container(jd: dict[str, Any]) -> dict[str, Any]:
    if jd["Type"] == "multinode":
        return jd["NodeProperties"]["NodeRangeProperties"][0]["Container"]
    return jd["ContainerProperties"]


def test_job_definitions_carry_the_plans_devices_and_names(demo_app):
    groups = {g.name: g for g in demo_app.plan.node_groups()}
    trn = _job_definitions(demo_app, groups["workers"])
    assert set(trn) == {"trn2-trn2-train-workers-single", "trn2-trn2-train-workers-multinode"}
    multi = trn["trn2-trn2-train-workers-multinode"]
    assert multi["Type"] == "multinode" and multi["NodeProperties"]["NumNodes"] == groups["workers"].count
    c = _container(multi)
    assert [d["HostPath"] for d in c["LinuxParameters"]["Devices"]] == list(groups["workers"].devices)
    assert {"Name": "memlock", "SoftLimit": -1, "HardLimit": -1} in c["Ulimits"]
    assert all(r["Type"] != "GPU" for r in c["ResourceRequirements"])
    # The benchmark is the job's parameter, substituted by Batch at submit time.
    assert c["Command"] == ["python3", "-m", "workloads.job", "Ref::benchmark"]
    assert "Parameters" not in multi
    env = {e["Name"]: e["Value"] for e in c["Environment"]}
    assert env["RACKFORM_TIER"] == "trainium" and env["FI_PROVIDER"] == "efa"
    assert "RACKFORM_PRICE_USD_PER_HOUR" not in env  # a capacity block: no On-Demand price applies
    assert _container(trn["trn2-trn2-train-workers-single"]) == c

    gpu = _job_definitions(demo_app, groups["h100"])
    single = gpu["trn2-gpu-h100-single"]
    c = _container(single)
    assert single["Type"] == "container"
    assert {"Type": "GPU", "Value": "8"} in c["ResourceRequirements"]
    assert len([d for d in c["LinuxParameters"]["Devices"] if "uverbs" in d["HostPath"]]) == 32

    head = _job_definitions(demo_app, groups["head"])  # one node: nothing spans nodes
    assert list(head) == ["trn2-graviton-head-single"]


def test_job_images_are_built_per_tier_at_deploy_not_at_synth(demo_app):
    for rack in demo_app.plan.racks:
        images = [json.dumps(_container(jd)["Image"]) for g in rack.node_groups
                  for jd in _job_definitions(demo_app, g).values()]
        assert images and all("container-assets" in i for i in images)


def test_submission_uses_the_names_the_stacks_create(demo_app):
    # `rackform submit` and the embedded AWS take queue and job definition names from rackform.plan.naming via
    # rackform.jobs.jobdefs; the synthesized stacks must create exactly those.
    from rackform.jobs.jobdefs import job_definitions

    for group in demo_app.plan.node_groups():
        t = demo_app.templates[group_stack(demo_app, group)]
        queues = {r["Properties"]["JobQueueName"] for r in resources(t, JOB_QUEUE).values()}
        assert group.job_queue in queues
        submitted = {d["jobDefinitionName"] for d in job_definitions(demo_app.plan.name, group, image="i",
                                                                      bucket="b", job_role_arn="r")}
        assert submitted == set(_job_definitions(demo_app, group))
