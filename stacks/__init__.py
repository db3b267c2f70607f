"""CDK stacks: composition only. Each reads its part of the plan and wires constructs together."""

from __future__ import annotations

import os

from aws_cdk import App, Environment

from rackform.plan.models import Plan

from .network import NetworkStack
from .rack import RackStack
from .storage import StorageStack

__all__ = ["NetworkStack", "RackStack", "StorageStack", "build_app"]


def build_app(plan: Plan, *, outdir: str | None = None, cdk_validation: bool | None = None) -> App:
    """All of the plan's stacks in a new App. Construct ids are stack names, never list positions, so adding or
    reordering racks leaves every other stack's template unchanged.

    `cdk_validation`: run CDK's built-in CloudFormation template validation at synth (default: only when
    CDK_VALIDATION=true). Off by default: rackform's tests run it over its templates with zero findings allowed, and at
    a user's synth it re-checks rackform's code, not the spec, at about half the synth's time.
    Why: docs/decisions/0009-cdk-validation-off-at-synth.md"""
    if cdk_validation is None:  # the variable CDK's own CLI and docs use to switch it
        cdk_validation = os.environ.get("CDK_VALIDATION", "").strip().lower() in ("true", "1", "yes")
    app = App(outdir=outdir, builtin_cloud_formation_validation=cdk_validation)
    # The account may be unknown at synth (no credentials): the stacks are then account-agnostic, which is fine
    # since nothing looks anything up.
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=plan.region)
    # The stacks meet through SSM parameters, not references (stacks/handoff.py), so the order CDK deploys them in
    # (`cdk deploy --all`: network, storage, racks) is stated here. The storage stack is termination-protected; the
    # network stack is not held by exports either, so delete the racks and storage before it (`cdk destroy --all`
    # goes in that order).
    # Into an existing network (spec network.vpc_id) there is no network stack: the others take its ids as given.
    existing = plan.network.existing
    storage = StorageStack(app, plan.storage.stack_name, spec_name=plan.name, storage=plan.storage, env=env,
                           existing=existing)
    if existing is None:
        storage.add_stack_dependency(NetworkStack(app, plan.network.stack_name, spec_name=plan.name,
                                                  network=plan.network, env=env))
    fsx = plan.storage.fsx_lustre
    for rack in plan.racks:
        RackStack(app, rack.stack_name, spec_name=plan.name, rack=rack,
                  lustre_mount_path=None if fsx is None else fsx.mount_path, env=env,
                  existing=existing).add_stack_dependency(storage)
    return app
