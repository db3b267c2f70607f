"""A rack's repair loop (docs/self-healing.md): the repair function, the rule that feeds it, the topic it and the
rack's alarms notify, and the idle checks.

The function is workloads/repair.py, packaged from the repository as it stands (`Code.from_asset`: no Docker, that
one file alone); it decides and acts, this construct only gives it events and the least it needs to act on them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Aws, CfnResource, Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from rackform.jobs.jobdefs import BENCHMARK_PARAMETER
from rackform.plan import naming
from rackform.plan.models import HealingPlan, NodeGroupPlan
from workloads import repair
from workloads.contract import JobEnvironment
from workloads.layout import repairs_prefix

from .nag import acknowledge_wildcard_resource, skip_checkov
from .telemetry import PERIOD, alarm_on_any, module_function

# The benchmark an idle check runs: the runner's health step comes first in every job, and sysbench's cpu test is
# the cheapest benchmark every tier has (workloads/benchmarks.py).
IDLE_CHECK_BENCHMARK = "cpu"
# Batch names the ECS cluster of a managed compute environment `<compute environment name>_Batch_<uuid>` (the
# ecsClusterArn DescribeComputeEnvironments returns; moto names it the same way). Not a documented contract: if
# Batch ever names it otherwise, the drain is refused (AccessDenied, in the repair record) and the terminate, scoped
# by tag, still replaces the node.
BATCH_CLUSTER_SUFFIX = "_Batch_"
# The repair functions' roles live under this IAM path: the results bucket's policy refuses every other principal a
# PUT under results/_repairs/ by pattern, without knowing the rack stacks (cdk_constructs/storage.py).
REPAIR_ROLE_PATH = "/rackform/repair/"
# What a publisher to an SSE topic, and CloudWatch for its alarms, need of the topic's key.
TOPIC_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
CLOUDWATCH = "cloudwatch.amazonaws.com"


def alarms_of_this_account() -> dict[str, dict[str, str]]:
    """The conditions that hold a grant to CloudWatch to what it does for this account's alarms in this Region: it
    names the alarm (aws:SourceArn) and its account (aws:SourceAccount) when it acts for one, so an alarm of another
    account cannot use the grant through it (the confused deputy). SNS asks for both on a key an AWS service uses for
    an encrypted topic, EventBridge alone excepted
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services), and AWS
    shows the alarm ARN condition for CloudWatch's publish
    (https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger)."""
    return {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"}}


class RackRepair(Construct):
    """The repair function of one rack, with everything around it.

    - EventBridge rule: Batch "Job State Change" events (https://docs.aws.amazon.com/batch/latest/userguide/
      batch_job_events.html) of the rack's queues, FAILED and RUNNABLE (a retried attempt sends its job back to
      RUNNABLE, https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html).
    - the function, one at a time (reserved concurrency 1): it reads the group's repairs of the past hour before it
      replaces a node, and two at once could both find room for one more.
    - its role: drain container instances of the rack's compute environments' clusters, terminate instances carrying
      the rack's tags (aws:ResourceTag, https://docs.aws.amazon.com/IAM/latest/UserGuide/access_tags.html), write and
      list the rack's repair records, publish to the topic.
    - the topic (SNS, encrypted with a key CloudWatch alarms may use, TLS only), optionally e-mailed.
    - an alarm on the function's own errors, and the idle checks' schedules (EventBridge Scheduler) when the plan
      has them.
    """

    def __init__(self, scope: Construct, id: str, *, spec_name: str, rack: str, healing: HealingPlan,
                 groups: Sequence[NodeGroupPlan], results_bucket: s3.IBucket) -> None:
        super().__init__(scope, id)
        key = kms.Key(self, "TopicKey", enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY,
                      description=f"rackform {spec_name}/{rack}: the repair topic's messages")
        # CloudWatch alarms publish to an encrypted topic only where its key lets them
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html), for this
        # account's alarms alone.
        key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(CLOUDWATCH)], actions=list(TOPIC_KEY_ACTIONS), resources=["*"],
            conditions=alarms_of_this_account()))
        self.topic = sns.Topic(self, "Topic", master_key=key, enforce_ssl=True,
                               display_name=f"rackform {spec_name}/{rack} repairs")
        # Its own topic policy (enforce_ssl writes one) replaces SNS's default, which let the account's principals,
        # CloudWatch acting for its alarms among them, publish; without this statement an alarm's notification is
        # refused ("not authorized to perform: SNS:Publish ... because no resource-based policy allows",
        # https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger). The role of the repair
        # function publishes by its own policy (below).
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(CLOUDWATCH)], actions=["sns:Publish"], resources=[self.topic.topic_arn],
            conditions=alarms_of_this_account()))
        if healing.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(healing.email))

        # Kept with the results: what the loop did to which node, and why, is the rack's audit trail.
        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_YEAR,
                                  removal_policy=RemovalPolicy.RETAIN)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), path=REPAIR_ROLE_PATH,
                        description=f"rackform {spec_name}/{rack} repair function: drain and replace the rack's nodes")
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                               resources=[log_group.log_group_arn]))
        clusters = [f"arn:{Aws.PARTITION}:ecs:{Aws.REGION}:{Aws.ACCOUNT_ID}:container-instance/"
                    f"{g.compute_environment}{BATCH_CLUSTER_SUFFIX}*/*" for g in groups]
        role.add_to_policy(iam.PolicyStatement(
            actions=["ecs:UpdateContainerInstancesState", "ecs:DescribeContainerInstances"], resources=clusters))
        instances = f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:instance/*"
        # Only the rack's own nodes: the launch templates tag every instance with the rack and the node group's
        # resource name (cdk_constructs/node_group.py RackNodeGroup), which is unique to this spec and rack.
        role.add_to_policy(iam.PolicyStatement(actions=["ec2:TerminateInstances"], resources=[instances], conditions={
            "StringEquals": {"aws:ResourceTag/rackform:rack": rack,
                             "aws:ResourceTag/Name": [g.resource_name for g in groups]}}))
        prefix = repairs_prefix(rack)
        records = results_bucket.arn_for_objects(f"{prefix}*")
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:GetObject"], resources=[records]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[results_bucket.bucket_arn],
                                               conditions={"StringLike": {"s3:prefix": f"{prefix}*"}}))
        # Publishing to an encrypted topic takes the key too
        # (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#sns-what-permissions-for-sse).
        role.add_to_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=list(TOPIC_KEY_ACTIONS), resources=[key.key_arn]))

        self.function = module_function(
            self, repair, role=role, log_group=log_group, timeout=Duration.seconds(60), memory_size=256,
            description=f"rackform {spec_name}/{rack}: drain and replace nodes that fail their health step",
            environment=repair.environment(bucket=results_bucket.bucket_name, topic_arn=self.topic.topic_arn,
                                           rack=rack, groups={g.job_queue: (g.name, g.count) for g in groups},
                                           max_fraction=healing.max_fraction_per_hour))
        policy = role.node.find_child("DefaultPolicy")
        for arn, why in ((instances, "TerminateInstances on the rack's instances only: the condition holds the "
                          "rack's tags, and instance ids are Batch's, unknown before launch"),
                         (records, "the function writes and reads its rack's repair records only, below "
                          f"{prefix}; the keys carry the failed attempt, unknown before it fails"),
                         *((c, "the container instances of this rack's compute environments' clusters, whose names "
                            "Batch completes with a generated id") for c in clusters)):
            acknowledge_wildcard_resource(policy, arn, why)
        no_vpc = ("the function calls only AWS APIs (ECS, EC2, S3, SNS) through their public endpoints, as the rack's "
                  "nodes do through NAT; a VPC would add ENIs and endpoints for no data it holds")
        no_dlq = ("a failed invocation is retried by Lambda's asynchronous invocation (twice), and its errors raise "
                  "the rack's alarm on this function, which notifies the same topic")
        no_cmk = ("its environment holds names only (bucket, topic, queues, node counts), no secret: the Lambda "
                  "service key encrypts it at rest")
        fn = self.function.node.default_child
        skip_checkov(fn, "CKV_AWS_117", no_vpc)
        skip_checkov(fn, "CKV_AWS_116", no_dlq)
        skip_checkov(fn, "CKV_AWS_173", no_cmk)
        skip_checkov(log_group.node.default_child, "CKV_AWS_158",
                     "the function logs decisions about node ids and job ids, no data: the CloudWatch Logs service "
                     "key encrypts them at rest")

        self.rule = events.Rule(self, "JobStateChange", description=f"rackform {spec_name}/{rack}: jobs that ended "
                                "on a node, for the repair function", event_pattern=events.EventPattern(
                                    source=["aws.batch"], detail_type=["Batch Job State Change"],
                                    detail={"status": ["FAILED", "RUNNABLE"],
                                            "jobQueue": [self._queue_arn(g) for g in groups]}))
        self.rule.add_target(targets.LambdaFunction(self.function, retry_attempts=2,
                                                    max_event_age=Duration.hours(1)))

        self.errors_alarm = alarm_on_any(
            self, "Errors", metric=self.function.metric_errors(period=PERIOD, statistic="Sum"), topic=self.topic,
            description=f"rackform {spec_name}/{rack}: the repair function failed; a node it should have replaced "
                        "may still be taking jobs (its log group has why)")

        if healing.idle_checked:
            self._idle_checks(spec_name, rack, healing.idle_check_rate,
                              [g for g in groups if g.name in healing.idle_checked])

    @staticmethod
    def _queue_arn(group: NodeGroupPlan) -> str:
        return f"arn:{Aws.PARTITION}:batch:{Aws.REGION}:{Aws.ACCOUNT_ID}:job-queue/{group.job_queue}"

    def _idle_checks(self, spec_name: str, rack: str, rate: str, groups: Sequence[NodeGroupPlan]) -> None:
        """One schedule per node group: SubmitJob of the health step (the idle-check benchmark's job), through
        EventBridge Scheduler's universal target for the Batch API (https://docs.aws.amazon.com/scheduler/latest/
        UserGuide/managing-targets-universal.html). Each check is a run of its own, named by the execution id
        (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html), so its
        records never meet another run's keys."""
        role = iam.Role(self, "IdleCheckRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
                        description=f"rackform {spec_name}/{rack}: submit the idle health checks")
        definitions = {g.name: naming.job_definition(spec_name, g.rack, g.name, "single") for g in groups}
        resources = [self._queue_arn(g) for g in groups]
        definition_arns = [f"arn:{Aws.PARTITION}:batch:{Aws.REGION}:{Aws.ACCOUNT_ID}:job-definition/{d}:*"
                           for d in definitions.values()]
        role.add_to_policy(iam.PolicyStatement(actions=["batch:SubmitJob"], resources=resources + definition_arns))
        for arn in definition_arns:
            acknowledge_wildcard_resource(role.node.find_child("DefaultPolicy"), arn,
                                          "the node group's single-node job definition, any revision: each deploy "
                                          "registers a new one")
        for g in groups:
            request = {"JobName": f"idle-check-{g.name}", "JobQueue": g.job_queue,
                       "JobDefinition": definitions[g.name], "Parameters": {BENCHMARK_PARAMETER: IDLE_CHECK_BENCHMARK},
                       "ContainerOverrides": {"Environment": [{
                           "Name": JobEnvironment.variable("run_id"),
                           "Value": "idle-<aws.scheduler.execution-id>"}]}}
            CfnResource(self, f"IdleCheck{naming.construct_id(g.name)}", type="AWS::Scheduler::Schedule",
                        properties={
                            "Description": f"rackform {spec_name}/{rack}/{g.name}: the health step as a job",
                            "ScheduleExpression": rate, "FlexibleTimeWindow": {"Mode": "FLEXIBLE",
                                                                               "MaximumWindowInMinutes": 15},
                            "State": "ENABLED",
                            "Target": {"Arn": "arn:aws:scheduler:::aws-sdk:batch:submitJob",
                                       "RoleArn": role.role_arn, "Input": json.dumps(request),
                                       "RetryPolicy": {"MaximumRetryAttempts": 2}}})

