"""Racks that heal themselves (issue 22): the spec's `healing`, what the rack stacks synthesize from it (the rule,
the function and its asset, the topic, the least-privilege role, the idle checks) and the job definitions' retries
on host faults only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rackform.jobs.jobdefs import RETRY_STRATEGY, job_definitions, retry_action
from rackform.plan.models import HealingPlan, build_plan, healing_plan
from rackform.spec.models import Healing, NodeGroup, Spec
from tests.conftest import Synth, dump, run_cli, synth
from workloads.repair import HEALTH_STEP_FAILED_EXIT, Config, Group

HOST_FAULT = "Host EC2 (instance i-0123456789abcdef0) terminated."


def resources(raw: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in raw["Resources"].items() if r["Type"] == kind}


def rack_template(s: Synth, rack: str) -> dict[str, Any]:
    return s.raw[next(r.stack_name for r in s.plan.racks if r.name == rack)]


def by_id(raw: dict[str, Any], kind: str, prefix: str) -> dict[str, Any]:
    """The one `kind` resource whose logical id starts with `prefix` (the construct path: Repair..., Telemetry...)."""
    [found] = [r for lid, r in resources(raw, kind).items() if lid.startswith(prefix)]
    return found


# --- retries on the node's failures only -------------------------------------------------------------------------

@pytest.mark.parametrize(("exit_code", "status_reason", "reason", "action"), [
    (None, HOST_FAULT, "", "RETRY"),
    (HEALTH_STEP_FAILED_EXIT, "Essential container in task exited", "", "RETRY"),
    (1, "Essential container in task exited", "", "EXIT"),  # the benchmark's own failure
    (137, "Essential container in task exited", "OutOfMemoryError: Container killed due to memory usage", "EXIT"),
    (None, "Task failed to start", "CannotPullContainerError: pull access denied", "EXIT"),
    (None, "Job attempt duration exceeded timeout", "", "EXIT"),
])
def test_jobs_retry_on_host_faults_and_failed_health_steps_only(exit_code: int | None, status_reason: str,
                                                                reason: str, action: str) -> None:
    assert retry_action(RETRY_STRATEGY, attempt=1, exit_code=exit_code, status_reason=status_reason,
                        reason=reason) == action


def test_retries_stop_at_the_attempts_batch_allows() -> None:
    attempts = RETRY_STRATEGY["attempts"]
    assert 2 <= attempts <= 10 and len(RETRY_STRATEGY["evaluateOnExit"]) <= 5
    assert retry_action(RETRY_STRATEGY, attempt=attempts, exit_code=None, status_reason=HOST_FAULT,
                        reason="") == "EXIT"


def test_every_job_definition_carries_the_retry_strategy(demo_synth: Synth) -> None:
    for group in demo_synth.plan.node_groups():
        for jd in job_definitions("demo", group, image="i", bucket="b", job_role_arn="r"):
            assert jd["retryStrategy"] == RETRY_STRATEGY
    for rack in demo_synth.plan.racks:
        for jd in resources(rack_template(demo_synth, rack.name), "AWS::Batch::JobDefinition").values():
            strategy = jd["Properties"]["RetryStrategy"]
            assert strategy["Attempts"] == RETRY_STRATEGY["attempts"]
            assert [e["Action"] for e in strategy["EvaluateOnExit"]] == ["RETRY", "RETRY", "EXIT"]
            assert strategy["EvaluateOnExit"][1]["OnExitCode"] == str(HEALTH_STEP_FAILED_EXIT)


# --- the spec ----------------------------------------------------------------------------------------------------

def test_healing_is_on_by_default_and_checks_warm_nodes_only() -> None:
    cold = NodeGroup(name="cold", instance_type="p5.48xlarge", count=4)
    warm = NodeGroup(name="warm", instance_type="p5.48xlarge", count=4, min_count=1)
    assert healing_plan(Healing(), [cold, warm]) == HealingPlan(
        email=None, max_fraction_per_hour=0.2, idle_check_rate="rate(6 hours)", idle_checked=("warm",),
        stuck_runnable_minutes=30)
    assert healing_plan(Healing(), [cold]).idle_checked == ()  # type: ignore[union-attr]
    assert healing_plan(Healing(enabled=False), [warm]) is None
    every = healing_plan(Healing(idle_check_every="1h"), [cold, warm])
    assert every is not None and every.idle_check_rate == "rate(1 hour)" and every.idle_checked == ("cold", "warm")
    assert healing_plan(Healing(idle_check_every="2d"), [cold]).idle_check_rate == "rate(2 days)"  # type: ignore[union-attr]


@pytest.mark.parametrize(("healing", "field", "says"), [
    ({"email": "not-an-address"}, "healing.email", "e-mail address"),
    ({"idle_check_every": "30m"}, "healing.idle_check_every", "hours or days"),
    ({"idle_check_every": "0h"}, "healing.idle_check_every", "hours or days"),
    ({"max_fraction_per_hour": 0}, "healing.max_fraction_per_hour", "greater than 0"),
    ({"max_fraction_per_hour": 1.5}, "healing.max_fraction_per_hour", "at most 1"),
    ({"max_fraction_per_hour": "0.2"}, "healing.max_fraction_per_hour", "number"),
    ({"enable": False}, "healing.enable", "did you mean 'enabled'"),
    ({"stuck_runnable_minutes": 5}, "healing.stuck_runnable_minutes", "give 10 or more, or null"),
    ({"stuck_runnable_minutes": "30m"}, "healing.stuck_runnable_minutes", "whole number"),
])
def test_a_bad_healing_field_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path, demo: dict[str, Any],
                                      healing: dict[str, Any], field: str, says: str) -> None:
    demo["racks"][0]["healing"] = healing
    code, out, err = run_cli(capsys, "validate", dump(tmp_path, demo))
    assert code != 0 and f"racks[0].{field}" in out + err and says in out + err


def test_the_schema_states_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "schema")
    healing = json.loads(out)["$defs"]["Healing"]["properties"]
    assert code == 0 and healing["enabled"]["default"] is True and healing["max_fraction_per_hour"]["default"] == 0.2
    assert healing["idle_check_every"]["default"] is None and healing["email"]["default"] is None
    assert healing["stuck_runnable_minutes"]["default"] == 30
    assert healing_plan(Healing(stuck_runnable_minutes=None), []).stuck_runnable_minutes is None  # type: ignore[union-attr]


# --- the synthesized loop ------------------------------------------------------------------------------------------

def test_every_rack_gets_its_rule_function_and_topic(demo_synth: Synth) -> None:
    for rack in demo_synth.plan.racks:
        raw = rack_template(demo_synth, rack.name)
        props = by_id(raw, "AWS::Lambda::Function", "RepairFunction")["Properties"]
        assert props["Handler"] == "repair.lambda_handler" and props["ReservedConcurrentExecutions"] == 1
        variables = {k: v if isinstance(v, str) else "token" for k, v in props["Environment"]["Variables"].items()}
        config = Config.from_env(variables)
        assert config.groups == {g.job_queue: Group(rack=rack.name, node_group=g.name, nodes=g.count)
                                 for g in rack.node_groups}
        pattern = by_id(raw, "AWS::Events::Rule", "RepairJobStateChange")["Properties"]["EventPattern"]
        assert pattern["source"] == ["aws.batch"] and pattern["detail-type"] == ["Batch Job State Change"]
        queues = json.dumps(pattern["detail"]["jobQueue"])
        assert all(f"job-queue/{g.job_queue}" in queues for g in rack.node_groups)
        [topic] = resources(raw, "AWS::SNS::Topic").values()
        assert "KmsMasterKeyId" in topic["Properties"]
        alarm = by_id(raw, "AWS::CloudWatch::Alarm", "RepairErrors")
        assert alarm["Properties"]["AlarmActions"]


ALARMS_OF_THIS_ACCOUNT = {
    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    "ArnLike": {"aws:SourceArn": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:",
                                                    {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"},
                                                    ":alarm:*"]]}}}


def test_cloudwatch_may_use_the_topic_key_for_this_accounts_alarms_only(demo_synth: Synth) -> None:
    """The confused deputy: a grant to a service principal holds for whoever the service acts for, unless the
    statement names the account and the source it acts for."""
    for rack in demo_synth.plan.racks:
        raw = rack_template(demo_synth, rack.name)
        [key] = resources(raw, "AWS::KMS::Key").values()
        [cloudwatch] = [s for s in key["Properties"]["KeyPolicy"]["Statement"]
                        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
        assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"] and cloudwatch["Effect"] == "Allow"
        assert cloudwatch["Condition"] == ALARMS_OF_THIS_ACCOUNT, rack.name


def test_the_racks_alarms_may_publish_to_its_tls_only_topic(demo_synth: Synth) -> None:
    """A topic policy of rackform's own replaces SNS's default one, under which the account's alarms could publish:
    it must allow CloudWatch, for this account's alarms only, beside the refusal of plain HTTP."""
    for rack in demo_synth.plan.racks:
        raw = rack_template(demo_synth, rack.name)
        [topic] = resources(raw, "AWS::SNS::Topic")
        [policy] = resources(raw, "AWS::SNS::TopicPolicy").values()
        assert policy["Properties"]["Topics"] == [{"Ref": topic}]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        [tls] = [s for s in statements if s["Effect"] == "Deny"]
        assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        [alarms] = [s for s in statements if s["Effect"] == "Allow"]
        assert (alarms["Principal"], alarms["Action"], alarms["Resource"]) == (
            {"Service": "cloudwatch.amazonaws.com"}, "sns:Publish", {"Ref": topic})
        assert alarms["Condition"] == ALARMS_OF_THIS_ACCOUNT, rack.name


def test_the_demo_gpu_rack_is_emailed_and_checked_when_idle(demo_synth: Synth) -> None:
    raw = rack_template(demo_synth, "gpu")
    [subscription] = resources(raw, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    [schedule] = resources(raw, "AWS::Scheduler::Schedule").values()
    request = json.loads(schedule["Properties"]["Target"]["Input"])
    assert schedule["Properties"]["ScheduleExpression"] == "rate(6 hours)"
    assert schedule["Properties"]["Target"]["Arn"].endswith(":batch:submitJob")
    assert request["JobQueue"] == "demo-gpu-h100-queue" and request["Parameters"] == {"benchmark": "cpu"}
    assert request["ContainerOverrides"]["Environment"][0]["Value"] == "idle-<aws.scheduler.execution-id>"
    assert not resources(rack_template(demo_synth, "graviton"), "AWS::Scheduler::Schedule")


def test_the_function_may_only_touch_its_racks_nodes(demo_synth: Synth) -> None:
    raw = rack_template(demo_synth, "gpu")
    statements = [s for p in resources(raw, "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    terminate = [s for s in statements if "ec2:TerminateInstances" in json.dumps(s["Action"])]
    assert terminate and all(s["Condition"]["StringEquals"]["aws:ResourceTag/rackform:rack"] == "gpu"
                             and s["Condition"]["StringEquals"]["aws:ResourceTag/Name"] == ["demo-gpu-h100"]
                             for s in terminate)
    drain = [s for s in statements if "ecs:UpdateContainerInstancesState" in json.dumps(s["Action"])]
    assert drain and "container-instance/demo-gpu-h100-ce_Batch_*/*" in json.dumps(drain)
    assert not [s for s in statements if s.get("Resource") == "*" and s["Action"] != "xray:*"
                and "TerminateInstances" in json.dumps(s)]


@pytest.mark.parametrize(("function", "module"), [("RepairFunction", "repair.py"),
                                                  ("TelemetryQueueDepthFunction", "queue_depth.py")])
def test_the_functions_asset_is_the_one_module(demo_synth: Synth, function: str, module: str) -> None:
    raw = rack_template(demo_synth, "gpu")
    fn = by_id(raw, "AWS::Lambda::Function", function)
    zipped = fn["Properties"]["Code"]["S3Key"]  # <asset hash>.zip, staged as asset.<asset hash>/
    asset = next(iter(demo_synth.template_paths.values())).parent / f"asset.{zipped.removesuffix('.zip')}"
    assert sorted(p.name for p in asset.iterdir()) == [module]


def test_a_rack_that_does_not_heal_gets_no_loop_but_keeps_its_retries(tmp_path: Path) -> None:
    from rackform.cli import checked_plan

    spec = {"name": "quiet", "region": "us-east-1", "availability_zone": "use1-az6",
            "racks": [{"name": "r", "healing": {"enabled": False},
                       "node_groups": [{"name": "g", "instance_type": "m7g.xlarge", "count": 1}]}]}
    s = synth(checked_plan(str(dump(tmp_path, spec))), tmp_path / "out")
    raw = rack_template(s, "r")
    for kind in ("AWS::Lambda::Function", "AWS::Events::Rule", "AWS::SNS::Topic", "AWS::Scheduler::Schedule"):
        assert not resources(raw, kind), kind
    [jd] = resources(raw, "AWS::Batch::JobDefinition").values()
    assert jd["Properties"]["RetryStrategy"]["Attempts"] == RETRY_STRATEGY["attempts"]


# --- telemetry -----------------------------------------------------------------------------------------------------

def test_each_node_runs_the_cloudwatch_agent_with_what_its_hardware_has(demo_synth: Synth) -> None:
    from cdk_constructs.user_data import agent_config, telemetry_script

    by_name = {g.name: g for g in demo_synth.plan.node_groups()}
    gpu, trainium, plain = by_name["h100"], by_name["workers"], by_name["head"]
    for group, sections in ((gpu, {"mem", "nvidia_gpu", "efa"}), (trainium, {"mem", "efa"}), (plain, {"mem"})):
        collected = agent_config(group)["metrics"]["metrics_collected"]  # type: ignore[index]
        assert set(collected) == sections, group.name
        assert all(s["append_dimensions"] == {"Rack": f"demo-{group.rack}", "NodeGroup": group.resource_name}
                   for s in collected.values())
    assert "neuron-monitor-cloudwatch.py --namespace rackform" in telemetry_script(trainium)
    assert "neuron-monitor" not in telemetry_script(gpu)
    # a failed agent never sends the node away (the setup parts do): it says why and goes on
    assert "shutdown" not in telemetry_script(trainium) and telemetry_script(gpu).endswith("exit 0")


def test_every_rack_gets_a_dashboard_and_efa_alarms_on_its_topic(demo_synth: Synth) -> None:
    for rack in demo_synth.plan.racks:
        raw = rack_template(demo_synth, rack.name)
        [dashboard] = resources(raw, "AWS::CloudWatch::Dashboard").values()
        body = json.dumps(dashboard["Properties"]["DashboardBody"])
        assert ("nvidia_smi_utilization_gpu" in body) == any(g.gpus_per_node for g in rack.node_groups)
        assert "mem_used_percent" in body and "Invocations" in body
        [topic] = resources(raw, "AWS::SNS::Topic")
        efa_alarms = [a["Properties"] for a in resources(raw, "AWS::CloudWatch::Alarm").values()
                      if "EFA" in a["Properties"].get("AlarmDescription", "")]
        assert len(efa_alarms) == sum(1 for g in rack.node_groups if g.efa_interfaces)
        assert all(a["AlarmActions"] == [{"Ref": topic}] for a in efa_alarms)
        assert all("efa_rdma_read_wr_err" in json.dumps(a["Metrics"]) for a in efa_alarms)


def test_only_the_repair_functions_may_write_repair_records(demo_synth: Synth) -> None:
    from cdk_constructs.repair import REPAIR_ROLE_PATH

    storage = demo_synth.raw[demo_synth.plan.storage.stack_name]
    [policy] = resources(storage, "AWS::S3::BucketPolicy").values()
    [deny] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
              if s.get("Sid") == "OnlyRepairFunctionsWriteRepairs"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:PutObject" and deny["Principal"] == {"AWS": "*"}
    assert json.dumps(deny["Resource"]).endswith('/results/_repairs/*"]]}')
    assert REPAIR_ROLE_PATH in json.dumps(deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"])
    for rack in demo_synth.plan.racks:
        [role] = [r for lid, r in resources(rack_template(demo_synth, rack.name), "AWS::IAM::Role").items()
                  if lid.startswith("RepairRole")]
        assert role["Properties"]["Path"] == REPAIR_ROLE_PATH


def resolved(value: Any) -> Any:
    """A template value with its pseudo parameters and joins resolved as in account 123456789012, us-east-1."""
    pseudo = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
    if isinstance(value, dict) and "Ref" in value:
        return pseudo[value["Ref"]]
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolved(p) for p in parts)
    if isinstance(value, dict):
        return {k: resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(v) for v in value]
    return value


@pytest.mark.parametrize(("status", "queue", "delivered"), [
    ("FAILED", "demo-gpu-h100-queue", True), ("RUNNABLE", "demo-gpu-h100-queue", True),
    ("SUCCEEDED", "demo-gpu-h100-queue", False), ("RUNNING", "demo-gpu-h100-queue", False),
    ("FAILED", "demo-graviton-head-queue", False),  # another rack's queue: another rack's function
])
def test_the_rule_sends_the_function_its_racks_ended_attempts_only(demo_synth: Synth,
                                                                   monkeypatch: pytest.MonkeyPatch, status: str,
                                                                   queue: str, delivered: bool) -> None:
    import boto3

    from tests.conftest import moto_aws

    rule = by_id(rack_template(demo_synth, "gpu"), "AWS::Events::Rule", "RepairJobStateChange")
    pattern = resolved(rule["Properties"]["EventPattern"])
    with moto_aws(monkeypatch, "us-east-1"):
        events, sqs = boto3.client("events"), boto3.client("sqs")
        inbox = sqs.create_queue(QueueName="function")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="repair", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="repair", Targets=[{"Id": "function", "Arn": arn}])
        events.put_events(Entries=[{"Source": "aws.batch", "DetailType": "Batch Job State Change", "Detail": json.dumps(
            {"status": status, "jobQueue": f"arn:aws:batch:us-east-1:123456789012:job-queue/{queue}"})}])
        got = sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=0).get("Messages", [])
        assert bool(got) == delivered


def test_the_functions_environment_fits_lambdas_4_kb_at_the_racks_ceiling() -> None:
    from rackform.plan.stack_limits import heaviest_instance_types, max_node_groups_per_rack, worst_case_spec
    from rackform.reference.catalog import load_catalog
    from workloads.repair import environment

    catalog = load_catalog()
    heaviest = heaviest_instance_types(catalog)[0]
    spec = Spec.model_validate(worst_case_spec(catalog, heaviest, max_node_groups_per_rack()))
    [rack] = build_plan(spec, catalog).racks
    bucket, topic = "b" * 63, "arn:aws-us-gov:sns:us-gov-west-1:123456789012:" + "t" * 256  # the longest of each
    env = environment(bucket=bucket, topic_arn=topic, rack=rack.name, max_fraction=0.2,
                      groups={g.job_queue: (g.name, g.count) for g in rack.node_groups})
    assert sum(len(k) + len(v) for k, v in env.items()) < 4096
    assert Config.from_env(env).groups[rack.node_groups[-1].job_queue].nodes == rack.node_groups[-1].count


# --- the queues' depth and jobs stuck RUNNABLE -------------------------------------------------------------------

def test_every_rack_measures_its_queues_every_five_minutes_with_the_least_it_needs(demo_synth: Synth) -> None:
    from workloads.queue_depth import QueueConfig

    for rack in demo_synth.plan.racks:
        raw = rack_template(demo_synth, rack.name)
        fn = by_id(raw, "AWS::Lambda::Function", "TelemetryQueueDepthFunction")["Properties"]
        assert fn["Handler"] == "queue_depth.lambda_handler"
        assert QueueConfig.from_env(fn["Environment"]["Variables"]) == QueueConfig(
            rack=f"demo-{rack.name}", queues={g.job_queue: g.resource_name for g in rack.node_groups})
        schedule = by_id(raw, "AWS::Events::Rule", "TelemetryQueueDepthSchedule")["Properties"]
        assert schedule["ScheduleExpression"] == "rate(5 minutes)" and "QueueDepthFunction" in json.dumps(
            schedule["Targets"])
        [policy] = [p["Properties"]["PolicyDocument"]["Statement"] for lid, p in resources(raw, "AWS::IAM::Policy")
                    .items() if lid.startswith("TelemetryQueueDepthRole")]
        by_action = {s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"]): s for s in policy}
        assert set(by_action) == {"batch:ListJobs", "cloudwatch:PutMetricData",
                                  ("logs:CreateLogStream", "logs:PutLogEvents")}
        assert by_action["cloudwatch:PutMetricData"]["Condition"] == {
            "StringEquals": {"cloudwatch:namespace": "rackform"}}
        assert by_action[("logs:CreateLogStream", "logs:PutLogEvents")]["Resource"] != "*"


def test_the_dashboard_shows_queue_depth_and_the_stuck_alarm_pages_the_topic(demo_synth: Synth) -> None:
    for rack in demo_synth.plan.racks:
        raw = rack_template(demo_synth, rack.name)
        [dashboard] = resources(raw, "AWS::CloudWatch::Dashboard").values()
        body = json.dumps(dashboard["Properties"]["DashboardBody"])
        assert all(m in body for m in ("JobsWaiting", "JobsRunnable", "JobsRunning", "OldestRunnableAgeSeconds"))
        assert "stuck RUNNABLE alarm" in body and "1800" in body
        alarm = by_id(raw, "AWS::CloudWatch::Alarm", "TelemetryStuckRunnable")["Properties"]
        assert (alarm["MetricName"], alarm["Namespace"], alarm["Statistic"]) == (
            "OldestRunnableAgeSeconds", "rackform", "Maximum")
        assert alarm["Dimensions"] == [{"Name": "Rack", "Value": f"demo-{rack.name}"}]
        assert alarm["Threshold"] == 30 * 60 and alarm["TreatMissingData"] == "notBreaching"
        [topic] = resources(raw, "AWS::SNS::Topic")
        assert alarm["AlarmActions"] == [{"Ref": topic}]
        errors = by_id(raw, "AWS::CloudWatch::Alarm", "TelemetryQueueDepthErrors")["Properties"]
        assert errors["AlarmActions"] == [{"Ref": topic}]


def lone_telemetry(groups: Any, stuck_runnable_minutes: int | None) -> dict[str, Any]:
    """The template of a rack's telemetry alone in a stack: no plan to synthesize, no app."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sns as sns
    from aws_cdk.assertions import Template

    from cdk_constructs.telemetry import RackTelemetry

    stack = Stack(App(), "s")
    RackTelemetry(stack, "Telemetry", spec_name="demo", rack="r", groups=groups, topic=sns.Topic(stack, "T"),
                  repair_function=lambda_.Function.from_function_arn(
                      stack, "F", "arn:aws:lambda:us-east-1:123456789012:function:f"),
                  stuck_runnable_minutes=stuck_runnable_minutes)
    return Template.from_stack(stack).to_json()  # type: ignore[no-any-return]


def test_null_turns_the_stuck_alarm_off_and_racks_without_gpus_count_no_xids(demo_synth: Synth) -> None:
    head = [g for g in demo_synth.plan.node_groups() if g.name == "head"]
    raw = lone_telemetry(head, None)
    alarms = resources(raw, "AWS::CloudWatch::Alarm")
    assert not [lid for lid in alarms if "StuckRunnable" in lid] and [lid for lid in alarms if "QueueDepth" in lid]
    assert not resources(raw, "AWS::Logs::MetricFilter")
    assert "stuck RUNNABLE alarm" not in json.dumps(resources(raw, "AWS::CloudWatch::Dashboard"))


# --- GPU XID and ECC errors ----------------------------------------------------------------------------------------

def xid_line(xid: int, text: str = "An uncorrectable double bit error (DBE) has been detected") -> str:
    """A kernel log line of the NVIDIA driver as rsyslog writes it (https://docs.nvidia.com/deploy/xid-errors/)."""
    return f"Dec  6 07:56:28 ip-10-0-1-17 kernel: NVRM: Xid (PCI:0000:53:00): {xid}, pid=4242, name=python, {text}"


OTHER_KERNEL_LINES = ("Dec  6 07:56:28 ip-10-0-1-17 kernel: NVRM: loading NVIDIA UNIX x86_64 Kernel Module",
                      "Dec  6 07:56:28 ip-10-0-1-17 kernel: nvidia-nvswitch0: open (major=510)",
                      "Dec  6 07:56:29 ip-10-0-1-17 systemd[1]: Started ecs.service.")


def test_gpu_nodes_ship_only_their_xid_lines_to_the_racks_log_group(demo_synth: Synth) -> None:
    import re

    from cdk_constructs.user_data import agent_config, telemetry_script

    by_name = {g.name: g for g in demo_synth.plan.node_groups()}
    gpu, trainium = by_name["h100"], by_name["workers"]
    config = agent_config(gpu, xid_log_group="/rackform/demo-gpu/gpu-xid")
    [shipped] = config["logs"]["logs_collected"]["files"]["collect_list"]  # type: ignore[index]
    assert shipped["file_path"] == "/var/log/messages" and shipped["log_group_name"] == "/rackform/demo-gpu/gpu-xid"
    [only] = shipped["filters"]
    assert only["type"] == "include" and all(re.search(only["expression"], xid_line(x)) for x in (13, 48, 79))
    assert not any(re.search(only["expression"], line) for line in OTHER_KERNEL_LINES)
    # AL2023 keeps the kernel log in the journal alone: rsyslog writes the file the agent reads
    script = telemetry_script(gpu, xid_log_group="/rackform/demo-gpu/gpu-xid")
    assert "dnf install -y amazon-cloudwatch-agent rsyslog" in script and "systemctl enable --now rsyslog" in script
    for group, log_group in ((trainium, "/rackform/demo-trainium/gpu-xid"), (gpu, None)):
        assert "logs" not in agent_config(group, xid_log_group=log_group)
        assert "rsyslog" not in telemetry_script(group, xid_log_group=log_group)
    # and the rack stack gives its GPU nodes the log group its telemetry counts, and no other nodes any
    raw = rack_template(demo_synth, "gpu")
    [log_group] = [lid for lid in resources(raw, "AWS::Logs::LogGroup") if lid.startswith("TelemetryGpuXidLogs")]
    [template] = resources(raw, "AWS::EC2::LaunchTemplate").values()
    assert json.dumps({"Ref": log_group}) in json.dumps(template)
    for rack in ("graviton", "trainium"):
        templates = resources(rack_template(demo_synth, rack), "AWS::EC2::LaunchTemplate")
        assert "log_group_name" not in json.dumps(templates), rack


def test_gpu_nodes_may_write_their_racks_xid_log_group_and_no_other(demo_synth: Synth) -> None:
    """The agent's shipping must not rest on AmazonEC2ContainerServiceforEC2Role's logs actions (the ECS agent's,
    AWS's to change): the node role's own policy lets it add streams and events to the XID group, nothing more."""
    from cdk_constructs.node_group import AGENT_LOG_ACTIONS

    for rack in ("gpu", "graviton", "trainium"):
        raw = rack_template(demo_synth, rack)
        [statements] = [p["Properties"]["PolicyDocument"]["Statement"] for lid, p in
                        resources(raw, "AWS::IAM::Policy").items() if lid.startswith("NodesRoleDefaultPolicy")]
        logs = [s for s in statements
                if any(a.startswith("logs:") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
        if rack != "gpu":
            assert logs == [], rack
            continue
        [log_group] = [lid for lid in resources(raw, "AWS::Logs::LogGroup") if lid.startswith("TelemetryGpuXidLogs")]
        assert logs == [{"Action": list(AGENT_LOG_ACTIONS), "Effect": "Allow",
                         "Resource": {"Fn::GetAtt": [log_group, "Arn"]}}]
        assert set(AGENT_LOG_ACTIONS) == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_ecc_filter_counts_the_ecc_xids_and_no_other() -> None:
    from cdk_constructs.telemetry import ECC_XIDS, xid_phrase

    assert ECC_XIDS == (48, 63, 64, 92, 94, 95)
    for xid in (*ECC_XIDS, 13, 31, 43, 45, 61, 62, 74, 79, 119, 4800, 148):
        found = [x for x in ECC_XIDS if xid_phrase(x) in xid_line(xid, text="(GPC 0, TPC 1, SM 0): 17, x")]
        assert found == ([xid] if xid in ECC_XIDS else []), xid


def test_gpu_racks_count_xid_and_ecc_lines_and_alarm_on_one(demo_synth: Synth) -> None:
    from cdk_constructs.telemetry import ECC_XIDS, xid_phrase

    raw = rack_template(demo_synth, "gpu")
    log_group = by_id(raw, "AWS::Logs::LogGroup", "TelemetryGpuXidLogs")
    assert log_group["Properties"]["RetentionInDays"] == 365 and log_group["DeletionPolicy"] == "Retain"
    filters = {f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]
               for f in resources(raw, "AWS::Logs::MetricFilter").values()}
    assert set(filters) == {"GpuXidErrors", "GpuEccXidErrors"}
    assert filters["GpuXidErrors"]["FilterPattern"] == '"NVRM: Xid"'
    assert filters["GpuEccXidErrors"]["FilterPattern"] == " ".join(f'?"{xid_phrase(x)}"' for x in ECC_XIDS)
    assert {f["MetricTransformations"][0]["MetricNamespace"] for f in filters.values()} == {"rackform/demo-gpu"}
    [topic] = resources(raw, "AWS::SNS::Topic")
    for name in filters:
        [alarm] = [a["Properties"] for a in resources(raw, "AWS::CloudWatch::Alarm").values()
                   if a["Properties"].get("MetricName") == name]
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["AlarmActions"]) == (
            1, "GreaterThanOrEqualToThreshold", [{"Ref": topic}])
    [dashboard] = resources(raw, "AWS::CloudWatch::Dashboard").values()
    assert "GpuEccXidErrors" in json.dumps(dashboard["Properties"]["DashboardBody"])
    for rack in ("graviton", "trainium"):
        assert not resources(rack_template(demo_synth, rack), "AWS::Logs::MetricFilter"), rack


def test_the_queue_functions_environment_fits_lambdas_4_kb_at_the_racks_ceiling() -> None:
    from rackform.plan.stack_limits import heaviest_instance_types, max_node_groups_per_rack, worst_case_spec
    from rackform.reference.catalog import load_catalog
    from workloads.queue_depth import QueueConfig, environment

    catalog = load_catalog()
    spec = Spec.model_validate(worst_case_spec(catalog, heaviest_instance_types(catalog)[0],
                                               max_node_groups_per_rack()))
    [rack] = build_plan(spec, catalog).racks
    env = environment(rack=f"{spec.name}-{rack.name}", queues={g.job_queue: g.resource_name for g in rack.node_groups})
    assert sum(len(k) + len(v) for k, v in env.items()) < 4096
    assert len(QueueConfig.from_env(env).queues) == len(rack.node_groups)
