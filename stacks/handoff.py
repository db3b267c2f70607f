"""How the network and storage stacks hand values to the stacks deployed after them: SSM String parameters, never
CloudFormation exports.

An exported output that another stack imports can be neither changed nor removed ("You can't modify or remove an
output value that is referenced by another stack",
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference-importvalue.html), so
with exports a new VPC, subnet or file system fails the producing stack's update ("Export ... cannot be updated as
it is in use by ..."). Here the producer writes each value to an SSM parameter (`publish`), and a consumer declares
a template parameter of type `AWS::SSM::Parameter::Value<String>` naming it (`read`): "CloudFormation always
fetches the latest values from Parameter Store when it updates stacks", UsePreviousValue included, and a parameter
that does not exist is a validation error before anything changes
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/systems-manager-parameter-types.html). The CDK CLI
never skips the deploy of a stack with such a parameter, even when its template is unchanged, since the value may
have moved. A replacement is then: deploy the producer (new resource, parameter rewritten), then each
consumer (takes the new value); `cdk deploy --all` does exactly that, in dependency order, and
`rackform plan --against` says what each step does (rackform/plan/diff.py).

Nothing else ties the stacks together, so the deploy order is stated with stack dependencies (`build_app`).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ssm as ssm

from rackform.plan import naming

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


def keep_export(stack: Stack, value: str) -> None:
    """Keep the export that releases before SSM hand-off created for `value` (same name: CDK derives it from the
    value), so the first deploy after an upgrade can update this stack while the consumers deployed earlier still
    import it; each consumer drops its import when it is deployed next. An export nothing imports may change, so
    it does not stand in the way of a replacement once every stack of the cluster has been deployed once."""
    stack.export_value(value)
