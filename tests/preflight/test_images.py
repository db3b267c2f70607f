"""A node group's own AMI (issue 24 item 4, image_id): validated offline, planned, written as the compute
environment's ImageIdOverride, and read by preflight (DescribeImages: exists, available, the type's architecture,
an ECS AMI)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from rackform.pipeline import load_plan
from rackform.preflight.checks import check_images
from rackform.preflight.fetch import fetch_image
from rackform.preflight.state import ApiError, ImageState
from rackform.render.plan import render_plan
from tests.conftest import dump

AMI = "ami-0123456789abcdef0"
ECS_X86 = ImageState("available", "x86_64", "team-amzn2023-ami-ecs-gpu-hvm-2026.07", "our ECS GPU image")


@pytest.fixture
def plan(tmp_path, demo):
    demo["racks"][2]["node_groups"][0]["image_id"] = AMI  # the 2 x p5.48xlarge group (x86_64)
    return load_plan(dump(tmp_path, demo))


def test_the_plan_carries_and_states_the_image(plan):
    g = plan.racks[2].node_groups[0]
    assert g.image_id == AMI and all(o.image_id is None for o in plan.node_groups() if o is not g)
    assert f"image    gpu/h100: {AMI} (yours, for x86_64: the ECS agent and any GPU or Neuron driver must be in it; " \
           "EFA is installed at boot" in render_plan(plan)


@pytest.mark.parametrize("image,status,says", [
    (ECS_X86, "ok", "team-amzn2023-ami-ecs-gpu-hvm-2026.07, x86_64, available"),
    (ImageState("available", "arm64", "amzn2023-ami-ecs-hvm-arm64", ""), "blocker", "arm64"),
    (ImageState("pending", "x86_64", "ecs", ""), "blocker", "pending"),
    (ImageState("available", "x86_64", "ubuntu-22.04", "plain"), "warning", "neither its name nor its description"),
    (None, "blocker", f"no image {AMI} visible to this account in us-east-2"),
    (ApiError("ec2:DescribeImages", "AccessDenied", denied=True), "unknown", "cannot read"),
])
def test_the_image_is_checked(plan, image, status, says):
    [c] = check_images(plan, {AMI: image})
    assert (c.name, c.status) == (f"image {AMI}", status) and says in c.found
    assert "gpu/h100 2 x p5.48xlarge" in c.needed


def test_no_image_no_check(tmp_path, demo):
    assert check_images(load_plan(dump(tmp_path, demo)), None) == []


@mock_aws
def test_fetch_reads_describe_images():
    ec2 = boto3.client("ec2", region_name="us-east-2")
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=instance, Name="team-ecs-node", Description="built from the ECS AMI")["ImageId"]
    found = fetch_image(ec2, image)
    assert isinstance(found, ImageState) and (found.name, found.description) == ("team-ecs-node",
                                                                                 "built from the ECS AMI")
    assert fetch_image(ec2, "ami-00000000000000000") is None
