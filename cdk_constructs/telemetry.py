"""What a rack owner watches: a CloudWatch dashboard per rack over its nodes' metrics (the CloudWatch agent's, from
cdk_constructs/user_data.py telemetry_script), its Batch queues' depth (the queue-depth function's) and the repair
loop, and alarms on EFA errors, GPU XID and ECC errors and jobs stuck RUNNABLE wired to the rack's repair topic
(docs/self-healing.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from rackform.plan import naming
from rackform.plan.models import QUEUE_DEPTH_INTERVAL_MINUTES, NodeGroupPlan
from workloads import queue_depth
from workloads.queue_depth import COUNTED, OLDEST_RUNNABLE

from .nag import acknowledge, skip_checkov
from .user_data import EFA_ERROR_MEASUREMENTS, NVIDIA_GPU_MEASUREMENTS, TELEMETRY_NAMESPACE, XID_LINE

PERIOD = Duration.minutes(5)
GPU_TITLES = {"utilization_gpu": "GPU utilisation (%)", "utilization_memory": "GPU memory utilisation (%)",
              "memory_used": "GPU memory used (MiB)", "temperature_gpu": "GPU temperature (C)",
              "power_draw": "GPU power (W)"}


def rack_search(metric: str, rack: str, statistic: str, *, per_node: bool) -> cloudwatch.MathExpression:
    """A line per node (`per_node`) or per node group of the rack: a SEARCH, so one expression serves every group
    and every node the compute environments bring and take away. Dashboards only: alarms cannot use SEARCH."""
    schema = f"{TELEMETRY_NAMESPACE},InstanceId,NodeGroup,Rack" if per_node else f"{TELEMETRY_NAMESPACE},NodeGroup,Rack"
    query = (f"SEARCH('{{{schema}}} MetricName=\"{metric}\" Rack=\"{rack}\"', '{statistic}', "
             f"{int(PERIOD.to_seconds())})")
    return cloudwatch.MathExpression(expression=query, label="", period=PERIOD)


def group_metric(metric: str, group: NodeGroupPlan, rack: str) -> cloudwatch.Metric:
    """The group's roll-up (the agent's aggregation_dimensions): every node's figure in one metric."""
    return cloudwatch.Metric(namespace=TELEMETRY_NAMESPACE, metric_name=metric, period=PERIOD, statistic="Sum",
                             dimensions_map={"Rack": rack, "NodeGroup": group.resource_name})


# ECC faults surface as these XIDs in NVIDIA's catalog (https://docs.nvidia.com/deploy/xid-errors/index.html): 48
# double-bit ECC error, 63 and 64 ECC page retirement or row remapping recorded / failed, 92 high single-bit ECC error
# rate, 94 contained and 95 uncontained ECC error. A line reads "NVRM: Xid (PCI:<bus id>): <XID>, ...", so "): 48,"
# names XID 48 and nothing else: the bus id closes with "): " and the XID ends at its comma.
ECC_XIDS = (48, 63, 64, 92, 94, 95)


def xid_phrase(xid: int) -> str:
    return f"): {xid},"


def alarm_on_any(scope: Construct, id: str, *, metric: cloudwatch.IMetric, topic: sns.ITopic,
                 description: str, threshold: int = 1) -> cloudwatch.Alarm:
    """An alarm that notifies the rack's repair topic as soon as one period's figure reaches `threshold` (by default
    any count at all); no data is no fault (counts of failures are absent while nothing fails; `_stuck_runnable` says
    why for its wait)."""
    alarm = cloudwatch.Alarm(
        scope, id, metric=metric, threshold=threshold, evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING, alarm_description=description)
    alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    return alarm


def module_function(scope: Construct, module: ModuleType, *, role: iam.Role, log_group: logs.ILogGroup,
                    timeout: Duration, memory_size: int, description: str,
                    environment: Mapping[str, str]) -> lambda_.Function:
    """`scope`'s Lambda function (construct id Function), one at a time: `module`'s file alone is its asset and its
    lambda_handler the handler, run by `role`, logging to `log_group`."""
    source = Path(str(module.__file__))
    function = lambda_.Function(
        scope, "Function", runtime=lambda_.Runtime.PYTHON_3_14,
        code=lambda_.Code.from_asset(str(source.parent), exclude=["*", f"!{source.name}"]),
        handler=f"{source.stem}.lambda_handler", role=role, log_group=log_group, timeout=timeout,
        memory_size=memory_size, reserved_concurrent_executions=1, description=description,
        environment=dict(environment))
    # CDK makes the function depend on its role and the role's policy; the role is already a dependency through the
    # function's Role (GetAtt), which cfn-lint flags (W3005): only the policy must come before the function.
    policy = role.node.find_child("DefaultPolicy")
    function.node.default_child.add_override("DependsOn", [Stack.of(scope).get_logical_id(policy.node.default_child)])
    return function


class RackTelemetry(Construct):
    """The rack's dashboard and its EFA alarms. The dashboard: GPU utilisation, memory, temperature and power per
    node, EFA bytes, retransmits and errors per group, host memory, and the repair function's invocations and errors.
    An alarm per EFA group fires on any EFA work-request error or unresponsive or impaired remote (the agent's
    counters are deltas: any non-zero sum is new) and notifies the repair topic.

    The queues' depth (QueueDepth) and, above `stuck_runnable_minutes`, an alarm on the rack's oldest RUNNABLE job;
    on a rack with GPU nodes, its nodes' XID lines (GpuXidLogs) and alarms on any XID and on any ECC XID."""

    def __init__(self, scope: Construct, id: str, *, spec_name: str, rack: str, groups: Sequence[NodeGroupPlan],
                 topic: sns.ITopic, repair_function: lambda_.IFunction, stuck_runnable_minutes: int | None) -> None:
        super().__init__(scope, id)
        gpu = [g for g in groups if g.gpus_per_node]
        efa = [g for g in groups if g.efa_interfaces]
        metrics_rack = f"{spec_name}-{rack}"  # the agent's Rack dimension (user_data.agent_config)
        self.queue_depth = QueueDepth(self, "QueueDepth", spec_name=spec_name, rack=rack, metrics_rack=metrics_rack,
                                      groups=groups, topic=topic)
        self.xid = GpuXidLogs(self, "GpuXid", spec_name=spec_name, rack=rack, metrics_rack=metrics_rack,
                              topic=topic) if gpu else None
        widgets: list[cloudwatch.IWidget] = [cloudwatch.TextWidget(
            markdown=f"# rackform {spec_name}/{rack}\nNodes' metrics in the `{TELEMETRY_NAMESPACE}` namespace (the "
                     "CloudWatch agent); repairs: `rackform repairs --rack " + rack + "`", width=24, height=2)]
        for measurement in NVIDIA_GPU_MEASUREMENTS if gpu else ():
            widgets.append(cloudwatch.GraphWidget(title=GPU_TITLES[measurement], width=12, left=[
                rack_search(f"nvidia_smi_{measurement}", metrics_rack, "Average", per_node=True)]))
        if efa:
            for title, names in (("EFA bytes", ("efa_tx_bytes", "efa_rx_bytes")),
                                 ("EFA retransmits and drops", ("efa_retrans_pkts", "efa_rx_dropped")),
                                 ("EFA errors", EFA_ERROR_MEASUREMENTS)):
                widgets.append(cloudwatch.GraphWidget(title=f"{title} (per node group, 5 min)", width=12, left=[
                    rack_search(m, metrics_rack, "Sum", per_node=False) for m in names]))
        if self.xid is not None:
            widgets.append(cloudwatch.GraphWidget(title="GPU XID and ECC errors (the rack's nodes, 5 min)", width=12,
                                                  left=[self.xid.xids, self.xid.ecc]))
        widgets.append(cloudwatch.GraphWidget(
            title="Batch queue depth (jobs, per node group)", width=12,
            left=[rack_search(name, metrics_rack, "Maximum", per_node=False) for name in COUNTED]))
        widgets.append(cloudwatch.GraphWidget(
            title="oldest RUNNABLE job's wait (s, per node group and the rack's)", width=12,
            left=[rack_search(OLDEST_RUNNABLE, metrics_rack, "Maximum", per_node=False),
                  self.queue_depth.oldest_runnable.with_(label="the rack's oldest")],
            left_annotations=None if stuck_runnable_minutes is None else [cloudwatch.HorizontalAnnotation(
                value=stuck_runnable_minutes * 60, label="stuck RUNNABLE alarm")]))
        widgets.append(cloudwatch.GraphWidget(title="host memory used (%)", width=12, left=[
            rack_search("mem_used_percent", metrics_rack, "Average", per_node=True)]))
        widgets.append(cloudwatch.GraphWidget(title="repair function", width=12, left=[
            repair_function.metric_invocations(period=PERIOD), repair_function.metric_errors(period=PERIOD)]))
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"rackform-{spec_name}-{rack}",
                                              widgets=[[w] for w in widgets])

        self.efa_alarms: dict[str, cloudwatch.Alarm] = {}
        for g in efa:
            errors = cloudwatch.MathExpression(
                expression=" + ".join(f"FILL(m{i}, 0)" for i in range(len(EFA_ERROR_MEASUREMENTS))),
                using_metrics={f"m{i}": group_metric(m, g, metrics_rack) for i, m in enumerate(EFA_ERROR_MEASUREMENTS)},
                label=f"{g.name} EFA errors", period=PERIOD)
            self.efa_alarms[g.name] = alarm_on_any(
                self, f"EfaErrors{naming.construct_id(g.name)}", metric=errors, topic=topic,
                description=f"rackform {spec_name}/{rack}/{g.name}: EFA work-request errors or unresponsive remotes: "
                            "a node's EFA or a peer is failing (the dashboard's EFA errors show which counter; the "
                            "next job's health step checks the devices)")

        self.stuck_runnable_alarm = None if stuck_runnable_minutes is None else self._stuck_runnable(
            spec_name, rack, stuck_runnable_minutes, topic)

    def _stuck_runnable(self, spec_name: str, rack: str, minutes: int, topic: sns.ITopic) -> cloudwatch.Alarm:
        """A job of the rack's queues has waited RUNNABLE `minutes` or more, judged on one period, the function's
        interval. A period the schedule's drift leaves empty is judged by the figure before it: the alarm reads the
        latest figures of its evaluation range, longer than its one period, and fills nothing while the range holds
        one (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html). A range
        with no figure is not breaching: the function puts one (0 for an empty queue) every interval, so such a gap
        means it did not run, which its own errors alarm reports; a breaching gap would page on every function outage
        as if jobs were stuck."""
        return alarm_on_any(
            self, "StuckRunnable", metric=self.queue_depth.oldest_runnable, topic=topic, threshold=minutes * 60,
            description=f"rackform {spec_name}/{rack}: a job has waited RUNNABLE {minutes} minutes or more: no node "
                        "can take it (a vCPU quota, no capacity of the type, a job asking more than a node has, a "
                        "compute environment at its maximum; the dashboard's queue widgets show which node group)")


class QueueDepth(Construct):
    """The rack's queue-depth function (workloads/queue_depth.py) on a schedule: an EventBridge rule every
    QUEUE_DEPTH_INTERVAL_MINUTES invokes it; it lists the rack's queues and puts their depth in CloudWatch. Its role
    may list jobs and put metrics in rackform's namespace, nothing else; an alarm on its errors notifies the topic."""

    def __init__(self, scope: Construct, id: str, *, spec_name: str, rack: str, metrics_rack: str,
                 groups: Sequence[NodeGroupPlan], topic: sns.ITopic) -> None:
        super().__init__(scope, id)
        # Its figures are queue counts, replaced every interval: a month of its log is enough to debug it; kept past
        # the stack as every rackform log group is.
        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  removal_policy=RemovalPolicy.RETAIN)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"rackform {spec_name}/{rack} queue-depth function: list jobs, put metrics")
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                               resources=[log_group.log_group_arn]))
        # batch:ListJobs has no resource type (https://docs.aws.amazon.com/service-authorization/latest/reference/
        # list_awsbatch.html): it takes "*", and reads job summaries only. PutMetricData takes none either; its
        # cloudwatch:namespace condition holds it to rackform's namespace
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html).
        role.add_to_policy(iam.PolicyStatement(actions=["batch:ListJobs"], resources=["*"]))
        role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"], conditions={
            "StringEquals": {"cloudwatch:namespace": TELEMETRY_NAMESPACE}}))
        policy = role.node.find_child("DefaultPolicy")
        why = ("batch:ListJobs has no resource type in the Service Authorization Reference, so it takes *; "
               "cloudwatch:PutMetricData takes none either and is held to rackform's namespace by its condition")
        acknowledge(policy, "AwsSolutions-IAM5[Resource::*]", why)
        skip_checkov(policy.node.default_child, "CKV_AWS_111", why)

        # One at a time (module_function): two would put the same figures.
        self.function = module_function(
            self, queue_depth, role=role, log_group=log_group,
            # at most 200 ListJobs calls (queue_depth.MAX_PAGES of 5 states of 20 queues, the rack's ceiling)
            timeout=Duration.seconds(90), memory_size=128,
            description=f"rackform {spec_name}/{rack}: the Batch queues' depth, as CloudWatch metrics",
            environment=queue_depth.environment(rack=metrics_rack,
                                                queues={g.job_queue: g.resource_name for g in groups}))
        fn = self.function.node.default_child
        skip_checkov(fn, "CKV_AWS_117", "the function calls only AWS APIs (Batch, CloudWatch) through their public "
                     "endpoints, as the rack's nodes do through NAT; a VPC would add ENIs and endpoints for no data")
        skip_checkov(fn, "CKV_AWS_116", "a scheduled invocation that fails is replaced by the next one an interval "
                     "later, and its errors raise this function's alarm on the rack's topic")
        skip_checkov(fn, "CKV_AWS_173", "its environment holds names only (the rack, its queues), no secret: the "
                     "Lambda service key encrypts it at rest")
        skip_checkov(log_group.node.default_child, "CKV_AWS_158", "the function logs queue counts, no data: the "
                     "CloudWatch Logs service key encrypts them at rest")

        self.schedule = events.Rule(
            self, "Schedule", schedule=events.Schedule.rate(Duration.minutes(QUEUE_DEPTH_INTERVAL_MINUTES)),
            description=f"rackform {spec_name}/{rack}: the queue-depth function, every "
                        f"{QUEUE_DEPTH_INTERVAL_MINUTES} minutes")
        self.schedule.add_target(targets.LambdaFunction(self.function, retry_attempts=0))
        self.errors_alarm = alarm_on_any(
            self, "Errors", metric=self.function.metric_errors(period=PERIOD, statistic="Sum"), topic=topic,
            description=f"rackform {spec_name}/{rack}: the queue-depth function failed; the queues' depth and the "
                        "stuck-RUNNABLE alarm go without figures until it runs again (its log group has why)")
        self.oldest_runnable = cloudwatch.Metric(
            namespace=TELEMETRY_NAMESPACE, metric_name=OLDEST_RUNNABLE, dimensions_map={"Rack": metrics_rack},
            statistic="Maximum", period=PERIOD)


class GpuXidLogs(Construct):
    """The rack's GPU nodes' XID lines (cdk_constructs/user_data.py agent_config ships them), counted by two metric
    filters, all XIDs and the ECC ones, each alarmed on one line in 5 minutes. The metrics carry the rack in their
    namespace: a metric filter's dimensions can only come from fields of the log event, and the line holds no rack."""

    def __init__(self, scope: Construct, id: str, *, spec_name: str, rack: str, metrics_rack: str,
                 topic: sns.ITopic) -> None:
        super().__init__(scope, id)
        # A year, and kept past the stack, as the repair function's log: an XID history is a node's and a driver's
        # record. No name of ours: a kept group would block the name of the next deploy's.
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_YEAR,
                                       removal_policy=RemovalPolicy.RETAIN)
        skip_checkov(self.log_group.node.default_child, "CKV_AWS_158",
                     "the lines are the NVIDIA driver's XID events (an error code, a PCI bus id, a process id and "
                     "name), no data: the CloudWatch Logs service key encrypts them at rest")
        namespace = f"{TELEMETRY_NAMESPACE}/{metrics_rack}"
        self.xids = self._count("Xid", namespace, "GpuXidErrors", logs.FilterPattern.literal(f'"{XID_LINE}"'))
        self.ecc = self._count("EccXid", namespace, "GpuEccXidErrors",
                               logs.FilterPattern.any_term(*(xid_phrase(x) for x in ECC_XIDS)))
        where = "the rack stack's Telemetry/GpuXid/Logs log group has the lines, one stream per instance"
        self.xid_alarm = alarm_on_any(
            self, "XidAlarm", metric=self.xids, topic=topic,
            description=f"rackform {spec_name}/{rack}: a GPU reported an XID error ({where}; "
                        "https://docs.nvidia.com/deploy/xid-errors/index.html says what each means)")
        self.ecc_alarm = alarm_on_any(
            self, "EccAlarm", metric=self.ecc, topic=topic,
            description=f"rackform {spec_name}/{rack}: a GPU reported an ECC XID ({', '.join(map(str, ECC_XIDS))}; "
                        f"{where}); the node's next health step checks uncorrected ECC errors and has it replaced")

    def _count(self, id: str, namespace: str, name: str, pattern: logs.IFilterPattern) -> cloudwatch.Metric:
        logs.MetricFilter(self, id, log_group=self.log_group, metric_namespace=namespace, metric_name=name,
                          filter_pattern=pattern, metric_value="1")
        return cloudwatch.Metric(namespace=namespace, metric_name=name, statistic="Sum", period=PERIOD)
