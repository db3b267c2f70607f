"""What the stacks' tests share: the template gates' accepted warnings, a lone construct's resources."""

from __future__ import annotations

from typing import Any

from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from cdk_constructs import LustreFileSystem

# cfn-lint warnings we accept, with the reason; anything else fails the lint tests (test_stacks, test_gates).
ACCEPTED_LINT_WARNINGS = {"W3010": "the AZ is hardcoded on purpose: EFA and placement groups live in one AZ"}


def lone_lustre(resource_type: str, **kwargs: Any) -> dict[str, Any]:
    """The properties of the one `resource_type` a LustreFileSystem synthesizes alone in a stack: no plan, no app."""
    stack = Stack(App(), "s")
    LustreFileSystem(stack, "L", subnet=ec2.Subnet.from_subnet_id(stack, "Sn", "subnet-1"),
                     security_group_ids=["sg-1"], **kwargs)
    [resource] = Template.from_stack(stack).find_resources(resource_type).values()
    return resource["Properties"]
