"""How the network and storage stacks hand values to the stacks deployed after them: SSM String parameters, never
CloudFormation exports, which block the replacement of what they export. The producer writes each value (`publish`),
a consumer reads it as an `AWS::SSM::Parameter::Value<String>` template parameter (`read`) at each of its deploys.

Why: docs/decisions/0001-stack-handoff-through-ssm.md. Nothing else ties the stacks together, so the deploy order is
stated with stack dependencies (`build_app`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ssm as ssm

from rackform.plan import naming

if TYPE_CHECKING:
    from rackform.plan.models import ExistingNetworkPlan

# Keys under /rackform/<spec>/ (rackform.plan.naming.parameter), written by the network stack...
SUBNET = "network/private-subnet-id"
NODE_SECURITY_GROUP = "network/node-security-group-id"
FSX_SECURITY_GROUP = "network/fsx-security-group-id"
# ... and by the storage stack.
RESULTS_BUCKET = "storage/results-bucket-name"
LUSTRE_DNS_NAME = "storage/lustre-dns-name"
LUSTRE_MOUNT_NAME = "storage/lustre-mount-name"


def publish(stack: Stack, spec_name: str, key: str, value: str) -> None:
    ssm.StringParameter(stack, naming.construct_id(key.replace("/", "-")) + "Parameter",
                        parameter_name=naming.parameter(spec_name, key), string_value=value,
                        description=f"rackform {spec_name}: read by its stacks at each deploy (stacks/handoff.py)")


def read(stack: Stack, spec_name: str, key: str) -> str:
    """A token for the parameter's value, resolved by CloudFormation when `stack` is deployed."""
    token: str = ssm.StringParameter.value_for_string_parameter(stack, naming.parameter(spec_name, key))
    return token


def subnet_and_groups(stack: Stack, spec_name: str, existing: ExistingNetworkPlan | None, *, group: str,
                      group_construct_id: str) -> tuple[str, list[str]]:
    """The subnet id and security group ids `stack` puts its resources in: the network stack's subnet and its
    `group`, read at each deploy; in an existing network (spec network.vpc_id) the spec's own, used as they are."""
    if existing is not None:
        return existing.subnet_id, list(existing.security_group_ids)
    subnet_id = read(stack, spec_name, SUBNET)
    imported = ec2.SecurityGroup.from_security_group_id(stack, group_construct_id, read(stack, spec_name, group),
                                                        mutable=False)
    return subnet_id, [imported.security_group_id]


def keep_export(stack: Stack, value: str) -> None:
    """Keep the export that releases before SSM hand-off created for `value` (same name: CDK derives it from the
    value), so the first deploy after an upgrade can update this stack while the consumers deployed earlier still
    import it; each consumer drops its import when it is deployed next. An export nothing imports may change, so
    it does not stand in the way of a replacement once every stack of the cluster has been deployed once."""
    stack.export_value(value)
