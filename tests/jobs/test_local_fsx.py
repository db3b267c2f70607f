"""The local executor's nodes know the spec's FSx for Lustre: their health step names the plan's mount path as not
mounted on this machine, never "the cluster has no FSx for Lustre file system" (which the demo printed)."""

from __future__ import annotations

import boto3

from rackform.jobs.local import _container_env, deploy, node_environment
from rackform.pipeline import load_plan
from tests.conftest import DEMO_SPEC, dump, moto_aws
from workloads import health
from workloads.contract import JobEnvironment
from workloads.run import node_context


def _fsx_checks(spec: str, monkeypatch, tmp_path) -> dict[str, health.HealthCheck]:
    plan = load_plan(spec)
    with moto_aws(monkeypatch, plan.region):
        clients = {s: boto3.client(s, region_name=plan.region) for s in ("s3", "batch", "iam")}
        deployment = deploy(plan, **clients)
    found = {}
    for name, jd in deployment.job_definitions.items():
        base = _container_env(jd)
        env = node_environment(base, JobEnvironment.from_env(base), job_id="j", nodes=1, index=0, work_dir=tmp_path)
        checks, _ = health.collect(node_context(env, "graviton"), neuron_cores=0, run=lambda _: None, uverbs=0)
        [found[name]] = [c for c in checks if c.name == "fsx"]
    return found


def test_local_nodes_of_a_spec_with_fsx_name_its_mount(monkeypatch, tmp_path):
    mount = load_plan(DEMO_SPEC).storage.fsx_lustre.mount_path
    checks = _fsx_checks(DEMO_SPEC, monkeypatch, tmp_path)
    assert checks and all(c.status == health.NA for c in checks.values())
    assert all(f"FSx for Lustre at {mount} is not mounted on this machine" in c.detail for c in checks.values())


def test_local_nodes_of_a_spec_without_fsx_say_so(monkeypatch, tmp_path, demo):
    demo.pop("storage")
    checks = _fsx_checks(str(dump(tmp_path, demo)), monkeypatch, tmp_path)
    assert checks and all(c.detail == "the cluster has no FSx for Lustre file system" for c in checks.values())
