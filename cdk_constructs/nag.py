"""Acknowledged findings of the template gates (cdk-nag's AwsSolutions pack, checkov), each on one resource.

cdk-nag 3 reads acknowledgements from CDK's own `Validations.of(construct).acknowledge()`: one rule id, or one
finding of a rule that reports several (`AwsSolutions-IAM5[Resource::...]`), on the construct given and its children.
Every call here names one resource and one rule or finding, with the reason a reviewer needs; tests/stacks/test_gates.py
runs the pack over the example apps and fails on any error left unacknowledged.

checkov reads skips from the template itself (`Metadata.checkov.skip`), so its skips travel with the resource too.
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct, IValidation


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag rule (or one finding, `Rule[Finding]`) on `construct`, which should be the resource
    itself or the L2 construct that owns exactly one resource."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def skip_checkov(resource: CfnResource, check_id: str, reason: str) -> None:
    """Skip one checkov check on one resource (written to the resource's template Metadata, where checkov reads
    it), with the reason beside it."""
    meta = resource.get_metadata("checkov") or {}
    skips = [*meta.get("skip", []), {"id": check_id, "comment": reason}]
    resource.add_metadata("checkov", {**meta, "skip": skips})


def flatten_cfn_reference(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag writes it into finding ids (its utils/flatten-cfn-reference)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(flatten_cfn_reference(v) for v in items)
        if "Fn::Sub" in value:
            return flatten_cfn_reference(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{flatten_cfn_reference(resource)}.{flatten_cfn_reference(attribute)}>"
        if "Fn::ImportValue" in value:
            return flatten_cfn_reference(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{flatten_cfn_reference(value['Ref'])}>"
    import json

    return json.dumps(value, separators=(",", ":"))


@jsii.implements(IValidation)
class _AcknowledgeWildcardResource:
    def __init__(self, construct: IConstruct, resource_arn: str, reason: str) -> None:
        self._construct = construct
        self._resource_arn = resource_arn
        self._reason = reason

    def validate(self) -> list[str]:
        resolved = Stack.of(self._construct).resolve(self._resource_arn)
        flat = flatten_cfn_reference(resolved)
        if "*" not in flat:
            return []
        acknowledge(self._construct, f"AwsSolutions-IAM5[Resource::{flat}]", self._reason)
        return []


def acknowledge_wildcard_resource(policy: IConstruct, resource_arn: str, reason: str) -> None:
    """Acknowledge AwsSolutions-IAM5 for exactly one wildcard resource ARN (e.g. `<bucket ARN>/results/*`) on one
    IAM policy.

    The finding's id is the ARN as it stands in the template, and an ARN from another stack only becomes its
    `Fn::ImportValue` of a CDK-generated export name when CDK resolves cross-stack references during synthesis.
    So the acknowledgement is recorded then (construct validation runs after that step and before cdk-nag does),
    from the very token the policy statement was given: it cannot cover any other resource or action.
    """
    policy.node.add_validation(_AcknowledgeWildcardResource(policy, resource_arn, reason))
