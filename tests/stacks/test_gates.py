"""Template gates over both example apps (examples/demo.yaml and examples/trn2-capacity-block.yaml): cdk-nag's
AwsSolutions pack, checkov and cfn-lint; least privilege; data safety.

Each example is synthesized once for the module, with cdk-nag registered the way an app registers it (cdk-nag 3 is
a CDK policy-validation plugin: `Validations.of(app).add_plugins(AwsSolutionsChecks(app))`, and acknowledgements are
CDK's `Validations.of(construct).acknowledge(...)`, see cdk_constructs/nag.py). CDK stops synthesis on an
unacknowledged error; the pack is then also run over the synthesized tree for a structured list of errors and
warnings. checkov runs from its own venv (.venv-checkov, `make setup`) over the written templates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cfnlint.api
import pytest
from aws_cdk import Stack, Validations
from cdk_nag import AwsSolutionsChecks

from cdk_constructs.node_group import AGENT_LOG_ACTIONS, SESSION_MANAGER_ACTIONS
from rackform.reference.catalog import load_catalog
from rackform.plan.models import Plan, build_plan
from rackform.spec.problems import errors
from rackform.spec.models import Spec, load_spec
from rackform.validate import validate_spec
from stacks import build_app

from tests.stacks.cdk_validation import validation_findings
from tests.stacks.conftest import ACCEPTED_LINT_WARNINGS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {"demo": ROOT / "examples" / "demo.yaml", "trn2": ROOT / "examples" / "trn2-capacity-block.yaml",
            # deployed into an existing VPC: no network stack (issue 24 item 3)
            "existing": ROOT / "examples" / "existing-network.yaml"}
CHECKOV = Path(os.environ.get("RACKFORM_CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))
ACK_METADATA = "aws:cdk:acknowledged-rules"

# The results bucket's objects ARN as cdk-nag names it: the storage stack's export of the bucket ARN, then results/*.
RESULTS_WILDCARD = (r"AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:s3:::<SsmParameterValue\w+resultsbucketname\w+>"
                    r"/results/\*\]")
WORKLOADS_WILDCARD = RESULTS_WILDCARD.replace("/results/", "/workloads/")
# Every cdk-nag acknowledgement the app may carry, by (construct path below the stack, rule or finding id pattern).
# A new one must be added here, where review sees it; each must sit on one resource (or the L2 owning one).
# The reasons live next to the resources (cdk_constructs/*.py); the test prints them.
EXPECTED_ACKNOWLEDGEMENTS = {
    # storage stack
    ("Results/Bucket/Resource", r"AwsSolutions-S1"),
    # every rack stack
    ("Nodes/Role/DefaultPolicy", r"AwsSolutions-IAM5\[Resource::\*\]"),
    ("Nodes/Role/Resource", r"AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                            r"AmazonEC2ContainerServiceforEC2Role\]"),
    ("Jobs/Role/DefaultPolicy", RESULTS_WILDCARD),
    ("Workloads/Role/DefaultPolicy", WORKLOADS_WILDCARD),
    # every rack stack that repairs itself (cdk_constructs/repair.py)
    ("Repair/Role/DefaultPolicy", r"AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:"
                                  r"<AWS::AccountId>:instance/\*\]"),
    ("Repair/Role/DefaultPolicy", RESULTS_WILDCARD.replace("/results/", r"/results/_repairs/[a-z0-9-]+/")),
    ("Repair/Role/DefaultPolicy", r"AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:"
                                  r"<AWS::AccountId>:container-instance/[a-z0-9-]+-ce_Batch_\*/\*\]"),
    ("Repair/IdleCheckRole/DefaultPolicy", r"AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:"
                                           r"<AWS::AccountId>:job-definition/[a-z0-9-]+-single:\*\]"),
    # batch:ListJobs and cloudwatch:PutMetricData take no resource (cdk_constructs/telemetry.py QueueDepth)
    ("Telemetry/QueueDepth/Role/DefaultPolicy", r"AwsSolutions-IAM5\[Resource::\*\]"),
}
# checkov checks skipped on a resource (template Metadata), by (check id, logical id prefix).
EXPECTED_CHECKOV_SKIPS = {("CKV_AWS_18", "ResultsBucket"), ("CKV_AWS_158", "NetworkFlowLogs"),
                          ("CKV_AWS_111", "NodesRoleDefaultPolicy"), ("CKV_AWS_158", "RepairLogs"),
                          ("CKV_AWS_116", "RepairFunction"), ("CKV_AWS_117", "RepairFunction"),
                          ("CKV_AWS_173", "RepairFunction"),
                          # the queue-depth function and the XID lines (cdk_constructs/telemetry.py)
                          ("CKV_AWS_111", "TelemetryQueueDepthRoleDefaultPolicy"),
                          ("CKV_AWS_116", "TelemetryQueueDepthFunction"), ("CKV_AWS_117", "TelemetryQueueDepthFunction"),
                          ("CKV_AWS_173", "TelemetryQueueDepthFunction"), ("CKV_AWS_158", "TelemetryQueueDepthLogs"),
                          ("CKV_AWS_158", "TelemetryGpuXidLogs")}


@dataclass
class Gated:
    name: str
    plan: Plan
    outdir: Path
    raw: dict[str, dict[str, Any]]  # by stack name
    template_paths: dict[str, Path]
    termination_protection: dict[str, bool]
    synth_error: str | None = None  # CDK's report when cdk-nag stopped synthesis
    cfn_validate: list[str] = field(default_factory=list)  # CDK's built-in validator's findings
    nag_errors: list[tuple[str, str, str]] = field(default_factory=list)  # (rule, construct path, description)
    nag_warnings: list[tuple[str, str, str]] = field(default_factory=list)
    acknowledgements: list[tuple[str, str, str]] = field(default_factory=list)  # (path, rule id, reason)


def plan_of(spec: Spec) -> Plan:
    catalog = load_catalog()
    problems = errors(validate_spec(spec, catalog))
    assert not problems, [p.render() for p in problems]
    return build_plan(spec, catalog)


def gated_synth(name: str, plan: Plan, outdir: Path) -> Gated:
    app = build_app(plan, outdir=str(outdir), cdk_validation=True)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    synth_error = None
    try:
        assembly = app.synth()
    except RuntimeError as e:  # unacknowledged cdk-nag errors: keep the report, synthesize again to run the rest
        synth_error = str(e)
        app = build_app(plan, outdir=str(outdir), cdk_validation=True)
        assembly = app.synth()
    stacks = {c.stack_name: c for c in app.node.children if isinstance(c, Stack)}
    artifacts = {a.stack_name: a for a in assembly.stacks}
    g = Gated(name=name, plan=plan, outdir=outdir,
              raw={n: a.template for n, a in artifacts.items()},
              template_paths={n: Path(a.template_full_path) for n, a in artifacts.items()},
              termination_protection={n: s.termination_protection for n, s in stacks.items()},
              synth_error=synth_error, cfn_validate=validation_findings(outdir))
    for v in AwsSolutionsChecks().validate_scope(app).violations:
        for r in v.violating_resources:
            entry = (v.rule_name, r.construct_path, v.description)
            (g.nag_errors if v.severity in ("error", "fatal") else g.nag_warnings).append(entry)
    # Acknowledgements as the cloud assembly records them: each stack's metadata, by construct path.
    manifest = json.loads((outdir / "manifest.json").read_text())
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        metadata = artifact.get("metadata") or json.loads((outdir / artifact["additionalMetadataFile"]).read_text())
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] != ACK_METADATA:
                    continue
                for key, reason in entry["data"].items():
                    rule = re.sub(r"^annotation::", "", key, flags=re.IGNORECASE)
                    if rule.startswith("AwsSolutions"):
                        g.acknowledgements.append((path.lstrip("/"), rule, reason))
    return g


@pytest.fixture(scope="module")
def gated(tmp_path_factory) -> dict[str, Gated]:
    return {name: gated_synth(name, plan_of(load_spec(path)[0]), tmp_path_factory.mktemp(name))
            for name, path in EXAMPLES.items()}


def statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    p = resource.get("Properties", {})
    docs = [p["PolicyDocument"]] if "PolicyDocument" in p else []
    docs += [pol["PolicyDocument"] for pol in p.get("Policies", [])]
    return [s for d in docs for s in (d["Statement"] if isinstance(d["Statement"], list) else [d["Statement"]])]


def as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


IAM_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role", "AWS::IAM::User",
                    "AWS::IAM::Group")


def iam_statements(g: Gated):
    """(stack, logical id, statement) for every identity-policy statement of every template."""
    for stack, t in g.raw.items():
        for lid, r in t["Resources"].items():
            if r["Type"] in IAM_POLICY_TYPES:
                for s in statements(r):
                    yield stack, lid, s


def resources(g: Gated, type_: str):
    for stack, t in g.raw.items():
        for lid, r in t["Resources"].items():
            if r["Type"] == type_:
                yield stack, lid, r


# --- cdk-nag -----------------------------------------------------------------------------------------------------

def test_cdk_nag_aws_solutions_finds_no_unacknowledged_errors(gated, gate_report):
    for g in gated.values():
        assert g.synth_error is None, f"{g.name}: cdk-nag stopped synthesis:\n{g.synth_error}"
        assert g.nag_errors == [], "\n".join(f"{g.name}: {r} at {p}: {d}" for r, p, d in g.nag_errors)
        gate_report("cdk-nag", f"{g.name}: {len(g.raw)} stacks, 0 errors, {len(g.nag_warnings)} warnings, "
                               f"{len(g.acknowledgements)} acknowledged findings")
        for rule, path, description in g.nag_warnings:
            gate_report("cdk-nag", f"{g.name}: warning {rule} at {path}: {description}")


def test_cdk_builtin_validation_finds_nothing_in_either_example(gated, gate_report):
    """CDK's own CloudFormation validator (off at a user's synth, stacks/build_app): no finding of any severity."""
    for g in gated.values():
        assert g.cfn_validate == [], "\n".join(f"{g.name}: {f}" for f in g.cfn_validate)
        gate_report("cdk validation", f"{g.name}: {len(g.raw)} stacks, 0 findings (CDK's CloudFormation validator)")


def test_the_cdk_validation_gate_reports_what_the_validator_finds(tmp_path):
    """The gate can fail: a job queue without a compute environment is a finding (in a bare stack: the examples'
    own findings, none, are the test above)."""
    from aws_cdk import App, CfnResource

    app = App(outdir=str(tmp_path), builtin_cloud_formation_validation=True)
    CfnResource(Stack(app, "Canary"), "BrokenQueue", type="AWS::Batch::JobQueue", properties={"Priority": 1})
    app.synth()
    [finding] = validation_findings(tmp_path)
    assert finding.startswith("F3018 ") and "/BrokenQueue" in finding and "ComputeEnvironmentOrder" in finding


def test_every_nag_acknowledgement_is_on_one_resource_expected_and_explained(gated, gate_report):
    seen = set()
    for g in gated.values():
        for path, rule, reason in g.acknowledgements:
            stack, _, below = path.partition("/")
            assert stack in g.raw and below, f"{path}: acknowledge on a resource, never on a stack or the app"
            matches = [(p, pattern) for p, pattern in EXPECTED_ACKNOWLEDGEMENTS
                       if p == below and re.fullmatch(pattern, rule)]
            assert matches, f"{path}: unexpected acknowledgement {rule}; review it, then list it here"
            assert len(reason) >= 60, f"{path}: {rule}: the reason must tell a reviewer why ({reason!r})"
            seen.update(matches)
    assert seen == EXPECTED_ACKNOWLEDGEMENTS, f"acknowledgements no longer needed: {EXPECTED_ACKNOWLEDGEMENTS - seen}"
    # Print each distinct one once (the rack stacks repeat theirs).
    printed = set()
    for g in gated.values():
        for path, rule, reason in g.acknowledgements:
            below = path.partition("/")[2]
            key = (below, re.sub(r"<SsmParameterValue\w+>", "<the storage stack's parameter>", rule))
            if key not in printed:
                printed.add(key)
                gate_report("cdk-nag acknowledged", f"{key[1]} on */{below}: {reason}")


# --- checkov -----------------------------------------------------------------------------------------------------

def run_checkov(g: Gated) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov not found at {CHECKOV}: run `make setup` (it builds .venv-checkov)")
    files = [arg for p in sorted(g.template_paths.values()) for arg in ("-f", str(p))]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    env.update(LOG_LEVEL="ERROR", ANSI_COLORS_DISABLED="1")
    proc = subprocess.run([str(CHECKOV), "--config-file", str(ROOT / ".checkov.yaml"), "-o", "json", *files],
                          capture_output=True, text=True, cwd=g.outdir, env=env, timeout=300)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov exit {proc.returncode}, no JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    results = out if isinstance(out, list) else [out]
    assert [r["check_type"] for r in results] == ["cloudformation"], proc.stderr[-2000:]
    return results[0]


def test_checkov_passes_with_every_skip_named_and_explained(gated, gate_report):
    for g in gated.values():
        result = run_checkov(g)
        summary, checks = result["summary"], result["results"]
        failed = [f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
                  for c in checks["failed_checks"]]
        assert failed == [], f"{g.name}: checkov failed:\n" + "\n".join(failed)
        assert summary["parsing_errors"] == 0 and summary["resource_count"] > 0
        skipped = {(c["check_id"], c["resource"].split(".", 1)[1]): c["check_result"].get("suppress_comment") or ""
                   for c in checks["skipped_checks"]}
        for (check, lid), reason in skipped.items():
            assert any(check == c and lid.startswith(p) for c, p in EXPECTED_CHECKOV_SKIPS), (
                f"{g.name}: unexpected checkov skip {check} on {lid}; review it, then list it here")
            assert len(reason) >= 60, f"{g.name}: {check} on {lid}: give the reason ({reason!r})"
        # Into an existing network there is no network stack, and no flow log group of rackform's to skip on.
        expected = {(c, p) for c, p in EXPECTED_CHECKOV_SKIPS
                    if g.plan.network.existing is None or not p.startswith("Network")}
        assert {(c, p) for c, p in expected if any(check == c and lid.startswith(p) for check, lid in skipped)} \
            == expected
        gate_report("checkov", f"{g.name}: {summary['passed']} passed, {summary['failed']} failed, "
                               f"{summary['skipped']} skipped ({summary['resource_count']} resources, "
                               f"checkov {summary['checkov_version']})")
        if g.name == "demo":
            for (check, lid), reason in sorted(skipped.items()):
                gate_report("checkov skipped", f"{check} on {lid}: {reason}")


# --- cfn-lint (the trn2 example and the largest spec are linted in test_stacks.py) ---------------------------------

def test_cfn_lint_passes_the_demo_example(gated):
    g = gated["demo"]
    found = []
    for name, path in g.template_paths.items():
        for m in cfnlint.api.lint(path.read_text(), regions=[g.plan.region]):
            if m.rule.id.startswith("E") or (m.rule.id.startswith("W") and m.rule.id not in ACCEPTED_LINT_WARNINGS):
                found.append(f"{name}: {m.rule.id} {m.message}")
    assert found == []


# --- least privilege ---------------------------------------------------------------------------------------------

# Allow statements with Resource "*", by (logical id prefix, action): only where the API takes no narrower ARN.
# Session Manager's instance actions, as the Systems Manager guide's Session Manager-only policy grants them
# (cdk_constructs/node_group.py SESSION_MANAGER_ACTIONS).
RESOURCE_STAR_ALLOWED: dict[tuple[str, str], str] = {
    ("NodesRoleDefaultPolicy", action): "Session Manager on the nodes" for action in SESSION_MANAGER_ACTIONS}
# the CloudWatch agent's metrics (cdk_constructs/node_group.py): PutMetricData takes no resource, a namespace condition
RESOURCE_STAR_ALLOWED[("NodesRoleDefaultPolicy", "cloudwatch:PutMetricData")] = "the nodes' CloudWatch agent"
# the queue-depth function (cdk_constructs/telemetry.py): ListJobs has no resource type, PutMetricData as above
RESOURCE_STAR_ALLOWED[("TelemetryQueueDepthRoleDefaultPolicy", "batch:ListJobs")] = "the queues' depth"
RESOURCE_STAR_ALLOWED[("TelemetryQueueDepthRoleDefaultPolicy", "cloudwatch:PutMetricData")] = "the queues' depth"
# Which principal may assume which role, by logical id prefix.
TRUSTED_SERVICES = {"NodesRole": "ec2.amazonaws.com", "JobsRole": "ecs-tasks.amazonaws.com",
                    "WorkloadsRole": "ecs-tasks.amazonaws.com",
                    "NetworkVpcFlowLogIAMRole": "vpc-flow-logs.amazonaws.com",
                    "RepairRole": "lambda.amazonaws.com", "RepairIdleCheckRole": "scheduler.amazonaws.com",
                    "TelemetryQueueDepthRole": "lambda.amazonaws.com"}
MANAGED_POLICIES = {"NodesRole": {"service-role/AmazonEC2ContainerServiceforEC2Role"}}


def results_objects(resource: Any, prefix: str = "results") -> bool:
    """`<ARN of the bucket the storage stack's SSM parameter names>/<prefix>/*`, as the rack stacks write it."""
    return (isinstance(resource, dict) and list(resource) == ["Fn::Join"] and resource["Fn::Join"][0] == ""
            and len(parts := resource["Fn::Join"][1]) == 5
            and parts[:3] == ["arn:", {"Ref": "AWS::Partition"}, ":s3:::"]
            and "resultsbucketname" in parts[3].get("Ref", "") and parts[4] == f"/{prefix}/*")


def results_listing(statement: dict[str, Any]) -> bool:
    """ListBucketVersions on the results bucket itself (its ARN is results_objects' without `/results/*`), kept
    below results/ by the s3:prefix condition key."""
    return (as_list(statement["Action"]) == ["s3:ListBucketVersions"]
            and statement.get("Condition") == {"StringLike": {"s3:prefix": "results/*"}}
            and all(isinstance(r, dict) and list(r) == ["Fn::Join"] and r["Fn::Join"][0] == ""
                    and results_objects({"Fn::Join": ["", [*r["Fn::Join"][1], "/results/*"]]})
                    for r in as_list(statement["Resource"])))


def test_no_statement_allows_every_action_of_anything(gated):
    for g in gated.values():
        for stack, lid, s in iam_statements(g):
            if s["Effect"] != "Allow":
                continue
            assert "NotAction" not in s and "NotResource" not in s, (stack, lid, s)
            for action in as_list(s["Action"]):
                assert action != "*" and not action.endswith(":*"), (stack, lid, action)


def test_resource_star_only_where_the_api_allows_nothing_narrower(gated):
    for g in gated.values():
        for stack, lid, s in iam_statements(g):
            if s["Effect"] == "Allow" and "*" in as_list(s["Resource"]):
                for action in as_list(s["Action"]):
                    assert any(lid.startswith(p) and action == a for p, a in RESOURCE_STAR_ALLOWED), (
                        f"{stack}/{lid}: {action} on Resource '*'")


def test_roles_are_the_known_ones_with_their_own_principals_and_managed_policies(gated):
    for g in gated.values():
        for stack, lid, r in resources(g, "AWS::IAM::Role"):
            kind = next((k for k in TRUSTED_SERVICES if lid.startswith(k)), None)
            assert kind is not None, f"{stack}/{lid}: a role this test does not know; add it with its principal"
            (trust,) = r["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            assert trust == {"Action": "sts:AssumeRole", "Effect": "Allow",
                             "Principal": {"Service": TRUSTED_SERVICES[kind]}}, (stack, lid, trust)
            managed = {json.dumps(a).rsplit(":iam::aws:policy/", 1)[1].rstrip('"]}')
                       for a in r["Properties"].get("ManagedPolicyArns", [])}
            assert managed == MANAGED_POLICIES.get(kind, set()), (stack, lid, managed)


def test_s3_access_is_results_only_and_jobs_only_write_and_read_it(gated):
    for g in gated.values():
        rack_stacks = {r.stack_name for r in g.plan.racks}
        by_policy: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for stack, lid, s in iam_statements(g):
            by_policy.setdefault((stack, lid), []).append(s)
            s3_actions = [a for a in as_list(s["Action"]) if a.startswith("s3:")]
            if s["Effect"] == "Allow" and s3_actions and lid.startswith("WorkloadsRoleDefaultPolicy"):
                # `rackform run` jobs: their own prefix, never results/
                assert sorted(s3_actions) == ["s3:GetObject", "s3:PutObject"] and all(
                    results_objects(res, "workloads") for res in as_list(s["Resource"])), (stack, lid, s)
            elif s["Effect"] == "Allow" and s3_actions and lid.startswith("RepairRoleDefaultPolicy"):
                # the repair function: its rack's repair records, written, read back and listed, nothing else
                rack = next(r.name for r in g.plan.racks if r.stack_name == stack)
                assert (s3_actions == ["s3:ListBucket"] and s.get("Condition") == {
                    "StringLike": {"s3:prefix": f"results/_repairs/{rack}/*"}}) or (
                    sorted(s3_actions) == ["s3:GetObject", "s3:PutObject"]
                    and all(results_objects(res, f"results/_repairs/{rack}") for res in as_list(s["Resource"]))), (
                    stack, lid, s)
            elif s["Effect"] == "Allow" and s3_actions and not results_listing(s):
                assert all(results_objects(res) for res in as_list(s["Resource"])), (
                    f"{stack}/{lid}: S3 outside results/: {s}")
        for stack in rack_stacks:
            jobs = [s for (st, lid), ss in by_policy.items() if st == stack and lid.startswith("JobsRoleDefaultPolicy")
                    for s in ss]
            nodes = [s for (st, lid), ss in by_policy.items()
                     if st == stack and lid.startswith("NodesRoleDefaultPolicy") for s in ss]
            assert [(sorted(as_list(s["Action"])), s["Effect"]) for s in jobs] == [
                (["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], "Allow"),
                (["s3:ListBucketVersions"], "Allow")], (stack, jobs)
            assert results_listing(jobs[1]), (stack, jobs[1])
            # the node role touches no S3 (only jobs write results): its statements are Session Manager's, the
            # CloudWatch agent's metrics and, on a rack that counts its GPUs' XIDs, the agent's XID lines
            rack = next(r for r in g.plan.racks if r.stack_name == stack)
            xids = rack.healing is not None and any(gr.gpus_per_node for gr in rack.node_groups)
            assert [sorted(as_list(s["Action"])) for s in nodes] == [
                sorted(SESSION_MANAGER_ACTIONS), ["cloudwatch:PutMetricData"],
                *([sorted(AGENT_LOG_ACTIONS)] if xids else [])], (stack, nodes)


def test_flow_log_role_writes_only_its_own_log_group(gated):
    for g in gated.values():
        if g.plan.network.existing is not None:
            assert g.plan.network.stack_name not in g.raw  # the existing network's flow logs are its own
            continue
        net = g.raw[g.plan.network.stack_name]["Resources"]
        (group,) = [lid for lid, r in net.items() if r["Type"] == "AWS::Logs::LogGroup"]
        for stack, lid, s in iam_statements(g):
            if lid.startswith("NetworkVpcFlowLogIAMRole"):
                assert s["Effect"] == "Allow" and s["Resource"] == {"Fn::GetAtt": [group, "Arn"]}, s
                assert all(a.startswith("logs:") for a in as_list(s["Action"])), s


def test_every_bucket_has_a_policy_denying_plain_http(gated):
    for g in gated.values():
        buckets = {(stack, lid) for stack, lid, _ in resources(g, "AWS::S3::Bucket")}
        assert buckets
        covered = set()
        for stack, lid, p in resources(g, "AWS::S3::BucketPolicy"):
            bucket = p["Properties"]["Bucket"]["Ref"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]:
                if (s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                        and s["Principal"] == {"AWS": "*"} and "s3:*" in as_list(s["Action"])):
                    arn = {"Fn::GetAtt": [bucket, "Arn"]}
                    assert arn in s["Resource"] and {"Fn::Join": ["", [arn, "/*"]]} in s["Resource"], s
                    covered.add((stack, bucket))
        assert covered == buckets


def test_every_launch_template_requires_imdsv2_and_encrypts_every_volume(gated):
    for g in gated.values():
        templates = list(resources(g, "AWS::EC2::LaunchTemplate"))
        assert len(templates) == len(list(g.plan.node_groups()))
        for stack, lid, lt in templates:
            data = lt["Properties"]["LaunchTemplateData"]
            assert data["MetadataOptions"]["HttpTokens"] == "required", (stack, lid)
            assert data["MetadataOptions"].get("HttpEndpoint", "enabled") == "enabled"
            volumes = [m["Ebs"] for m in data.get("BlockDeviceMappings", []) if "Ebs" in m]
            assert volumes and all(v.get("Encrypted") is True for v in volumes), (stack, lid, volumes)


def test_no_ingress_from_the_internet(gated):
    for g in gated.values():
        rules = []
        for stack, lid, r in resources(g, "AWS::EC2::SecurityGroup"):
            rules += [(stack, lid, rule) for rule in r["Properties"].get("SecurityGroupIngress", [])]
        rules += [(stack, lid, r["Properties"]) for stack, lid, r in resources(g, "AWS::EC2::SecurityGroupIngress")]
        # Into an existing network rackform creates no security group and no rule.
        assert bool(rules) == (g.plan.network.existing is None), (g.name, rules)
        for stack, lid, rule in rules:
            assert rule.get("CidrIp") not in ("0.0.0.0/0",) and rule.get("CidrIpv6") not in ("::/0", "::0/0"), (
                stack, lid, rule)
            # Every ingress names a peer group or a CIDR inside the VPC.
            assert "SourceSecurityGroupId" in rule or rule.get("CidrIp") == g.plan.network.vpc_cidr, (stack, lid, rule)


# --- data safety -------------------------------------------------------------------------------------------------

# Results, the file system and its link to S3, and the VPC flow logs (an audit trail) outlive their stacks.
RETAINED = ("AWS::S3::Bucket", "AWS::FSx::FileSystem", "AWS::FSx::DataRepositoryAssociation", "AWS::Logs::LogGroup")


def test_data_outlives_its_stacks(gated):
    for g in gated.values():
        found = {t: 0 for t in RETAINED}
        for t in RETAINED:
            for stack, lid, r in resources(g, t):
                found[t] += 1
                assert r.get("DeletionPolicy") == "Retain" and r.get("UpdateReplacePolicy") == "Retain", (stack, lid)
        # both examples have FSx with a data repository; the log groups: the flow logs', each repair and queue-depth
        # function's, and each GPU rack's XID lines
        found["AWS::Logs::LogGroup"] -= sum((2 + any(n.gpus_per_node for n in r.node_groups)) * (r.healing is not None)
                                            for r in g.plan.racks)
        found["AWS::Logs::LogGroup"] += g.plan.network.existing is not None  # no flow logs of rackform's there
        assert found == {t: 1 for t in RETAINED}, found
        assert g.termination_protection[g.plan.storage.stack_name] is True
        for stack, t in g.raw.items():
            assert not any(r["Type"] == "Custom::S3AutoDeleteObjects" for r in t["Resources"].values()), stack


def normalized(template: dict[str, Any]) -> str:
    # Asset hashes follow the content of workloads/ (the image build context); this test is about resources.
    return re.sub(r"\b[0-9a-f]{64}\b", "<asset-hash>", json.dumps(template, sort_keys=True))


@pytest.mark.parametrize("removed", ["graviton", "trainium", "gpu"])
def test_removing_a_rack_changes_nothing_outside_its_stack(gated, removed, tmp_path):
    before = gated["demo"]
    spec, _ = load_spec(EXAMPLES["demo"])
    assert removed in {r.name for r in spec.racks}
    after = gated_synth("demo", plan_of(spec.model_copy(update={"racks": [r for r in spec.racks
                                                                          if r.name != removed]})), tmp_path)
    removed_stack = next(r.stack_name for r in before.plan.racks if r.name == removed)
    assert set(after.raw) == set(before.raw) - {removed_stack}
    for name, template in after.raw.items():
        assert normalized(template) == normalized(before.raw[name]), f"{name} changed when rack {removed} went"
    assert after.nag_errors == [] and after.synth_error is None
