"""What a rack owner watches: a CloudWatch dashboard per rack over its nodes' metrics (the CloudWatch agent's, from
cdk_constructs/user_data.py telemetry_script) and the repair loop, and alarms on EFA errors wired to the rack's
repair topic (docs/self-healing.md)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from rackform.plan import naming
from rackform.plan.models import NodeGroupPlan

from .user_data import EFA_ERROR_MEASUREMENTS, NVIDIA_GPU_MEASUREMENTS, TELEMETRY_NAMESPACE

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


def alarm_on_any(scope: Construct, id: str, *, metric: cloudwatch.IMetric, topic: sns.ITopic,
                 description: str) -> cloudwatch.Alarm:
    """An alarm that notifies the rack's repair topic as soon as one 5-minute sum counts anything; no data is no
    fault (the figures are counts of failures, absent while nothing fails)."""
    alarm = cloudwatch.Alarm(
        scope, id, metric=metric, threshold=1, evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING, alarm_description=description)
    alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    return alarm


class RackTelemetry(Construct):
    """The rack's dashboard and its EFA alarms. The dashboard: GPU utilisation, memory, temperature and power per
    node, EFA bytes, retransmits and errors per group, host memory, and the repair function's invocations and errors.
    An alarm per EFA group fires on any EFA work-request error or unresponsive or impaired remote (the agent's
    counters are deltas: any non-zero sum is new) and notifies the repair topic.

    Not here: an alarm on GPU ECC or XID errors (the CloudWatch agent's nvidia_gpu section has no such figure; the
    health step checks uncorrected ECC errors and missing GPUs before every job, and a failure is repaired), and on
    jobs stuck RUNNABLE (AWS Batch publishes no queue metric to CloudWatch)."""

    def __init__(self, scope: Construct, id: str, *, spec_name: str, rack: str, groups: Sequence[NodeGroupPlan],
                 topic: sns.ITopic, repair_function: lambda_.IFunction) -> None:
        super().__init__(scope, id)
        gpu = [g for g in groups if g.gpus_per_node]
        efa = [g for g in groups if g.efa_interfaces]
        widgets: list[cloudwatch.IWidget] = [cloudwatch.TextWidget(
            markdown=f"# rackform {spec_name}/{rack}\nNodes' metrics in the `{TELEMETRY_NAMESPACE}` namespace (the "
                     "CloudWatch agent); repairs: `rackform repairs --rack " + rack + "`", width=24, height=2)]
        metrics_rack = f"{spec_name}-{rack}"  # the agent's Rack dimension (user_data.agent_config)
        for measurement in NVIDIA_GPU_MEASUREMENTS if gpu else ():
            widgets.append(cloudwatch.GraphWidget(title=GPU_TITLES[measurement], width=12, left=[
                rack_search(f"nvidia_smi_{measurement}", metrics_rack, "Average", per_node=True)]))
        if efa:
            for title, names in (("EFA bytes", ("efa_tx_bytes", "efa_rx_bytes")),
                                 ("EFA retransmits and drops", ("efa_retrans_pkts", "efa_rx_dropped")),
                                 ("EFA errors", EFA_ERROR_MEASUREMENTS)):
                widgets.append(cloudwatch.GraphWidget(title=f"{title} (per node group, 5 min)", width=12, left=[
                    rack_search(m, metrics_rack, "Sum", per_node=False) for m in names]))
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
