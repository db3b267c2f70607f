from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from rackform.reference.catalog import load_catalog

if TYPE_CHECKING:
    from aws_cdk.assertions import Template

    from rackform.plan.models import Plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "trn2-capacity-block.yaml"


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rackform use` remembers a bucket in the user's config dir, which every command then reads: each test gets an
    empty one, so no test reads (or writes) the context of the user running the tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


@dataclass
class Synth:
    """A plan's app, synthesized: each stack's template as CDK's assertions read it and as written to disk."""
    plan: Plan
    templates: dict[str, Template]  # by stack name
    raw: dict[str, dict[str, Any]]  # by stack name, as written to the cloud assembly
    template_paths: dict[str, Path]
    termination_protection: dict[str, bool]


def synth(plan: Plan, outdir: Path, *, cdk_validation: bool = False) -> Synth:
    from aws_cdk import Stack
    from aws_cdk.assertions import Template

    from stacks import build_app

    app = build_app(plan, outdir=str(outdir), cdk_validation=cdk_validation)
    artifacts = {a.stack_name: a for a in app.synth().stacks}
    stacks = {c.stack_name: c for c in app.node.children if isinstance(c, Stack)}
    assert set(stacks) == set(artifacts)
    return Synth(
        plan=plan,
        templates={name: Template.from_stack(stack) for name, stack in stacks.items()},
        raw={name: a.template for name, a in artifacts.items()},
        template_paths={name: Path(a.template_full_path) for name, a in artifacts.items()},
        termination_protection={name: stack.termination_protection for name, stack in stacks.items()},
    )


@pytest.fixture(scope="session")
def demo_synth(tmp_path_factory) -> Synth:
    """examples/demo.yaml synthesized once per session, for every test that reads its templates or assembly."""
    from rackform.cli import checked_plan

    return synth(checked_plan(str(ROOT / "examples" / "demo.yaml")), tmp_path_factory.mktemp("demo-assembly"))


@pytest.fixture(scope="session")
def demo_assembly(demo_synth: Synth) -> Path:
    """The demo's cloud assembly: the embedded AWS takes its job roles' policies from it."""
    return next(iter(demo_synth.template_paths.values())).parent


@pytest.fixture
def demo() -> dict[str, Any]:
    """The example spec as plain data, for tests to break one field at a time."""
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """`rackform ARGV` in-process: (exit code, stdout, stderr). argparse's usage errors and --help exit through
    SystemExit; its code is the exit code. A traceback, on either stream, is never an answer to a user."""
    from rackform.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@contextmanager
def moto_aws(monkeypatch: pytest.MonkeyPatch, region: str) -> Iterator[None]:
    """moto, the embedded AWS, in REGION under fake credentials; its Batch keeps jobs without starting containers."""
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": region}.items():
        monkeypatch.setenv(k, v)
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


def versioned_bucket(name: str, region: str = "us-east-1") -> Any:
    """A versioned bucket, as the storage stack makes the results bucket (write-once rests on its versions), in the
    moto started by moto_aws; returns the S3 client."""
    import boto3

    s3 = boto3.client("s3", region_name=region)
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **where)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return s3


def deploy_to_moto(plan: Plan, monkeypatch: pytest.MonkeyPatch, *, s3: Any, batch: Any) -> str:
    """PLAN's bucket, Batch queues, job definitions and roles in moto; RACKFORM_BUCKET names the bucket, as after
    a real deploy. Returns the bucket."""
    import boto3

    from rackform.jobs.local import deploy

    bucket = deploy(plan, s3=s3, batch=batch, iam=boto3.client("iam", region_name=s3.meta.region_name)).bucket
    monkeypatch.setenv("RACKFORM_BUCKET", bucket)
    return bucket


EXAMPLE_REGION = "us-east-2"
DEMO_SPEC, DEMO_REGION = "examples/demo.yaml", "us-east-1"
INFERENCE = "examples/workloads/inference.yaml"  # a workload the demo's tiers serve


@pytest.fixture(scope="session")
def example_plan() -> Plan:
    """The example's plan as `submit` builds it (the catalog, no prices)."""
    from rackform.plan.models import build_plan
    from rackform.spec.models import load_spec

    return build_plan(load_spec(EXAMPLE)[0], load_catalog())


@pytest.fixture
def example_deployed(example_plan: Plan, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with the example deployed: its "s3" and "batch" clients, the result "store", and "registered", each
    job definition's RegisterJobDefinition parameters by name (moto keeps but does not return a multi-node
    definition's nodeProperties)."""
    import boto3

    from workloads.store import ResultStore

    with moto_aws(monkeypatch, EXAMPLE_REGION):
        s3, batch = boto3.client("s3", region_name=EXAMPLE_REGION), boto3.client("batch", region_name=EXAMPLE_REGION)
        registered: dict[str, dict[str, Any]] = {}
        batch.meta.events.register("provide-client-params.batch.RegisterJobDefinition",
                                   lambda params, **_: registered.__setitem__(params["jobDefinitionName"], params))
        bucket = deploy_to_moto(example_plan, monkeypatch, s3=s3, batch=batch)
        yield {"s3": s3, "batch": batch, "store": ResultStore(bucket, s3), "registered": registered}


@pytest.fixture
def demo_deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with examples/demo.yaml deployed: its "s3" and "batch" clients and the result "store"."""
    import boto3

    from rackform.pipeline import load_plan
    from workloads.store import ResultStore

    with moto_aws(monkeypatch, DEMO_REGION):
        s3, batch = boto3.client("s3", region_name=DEMO_REGION), boto3.client("batch", region_name=DEMO_REGION)
        bucket = deploy_to_moto(load_plan(DEMO_SPEC), monkeypatch, s3=s3, batch=batch)
        yield {"s3": s3, "batch": batch, "store": ResultStore(bucket, s3)}


def workload(cls: str = "inference", tiers: tuple[str, ...] = ("trainium", "gpu"), **extra: Any) -> Any:
    """A workload named serve of class CLS that runs on TIERS (an image and a command each), with EXTRA fields."""
    from rackform.pipeline import parse_workload

    return parse_workload({"name": "serve", "class": cls,
                           "tiers": {t: {"image": f"img:{t}", "command": ["run"]} for t in tiers}, **extra})


def load_script(name: str) -> Any:
    """scripts/<name>.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_demo_script() -> Any:
    """scripts/demo.py as a module."""
    return load_script("demo")


class S3Only:
    """An embedded AWS (rackform.jobs.local.EmbeddedAWS's shape) that serves one S3 client and nothing else."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.env: dict[str, str] = {}

    def client(self, service: str) -> Any:
        assert service == "s3"
        return self._s3


FEW_PORTS = range(65516, 65536)


@pytest.fixture
def few_ports(monkeypatch: pytest.MonkeyPatch) -> range:
    """The system's own port range made every unprivileged port but the last 20 (returned): ranges chosen there
    without regard to one another, or to a port something listens on, meet."""
    monkeypatch.setattr("workloads.launch.system_ports", lambda: range(1024, FEW_PORTS.start))
    return FEW_PORTS


def free_port() -> int:
    """A port nothing on this machine listens on now, for a test's rendezvous (jobs get theirs from
    workloads.launch.free_port_ranges, with the ranges they need)."""
    from workloads.launch import free_port_ranges

    return free_port_ranges([1])[0].start


def dump(tmp_path: Path, data: Any, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


# --- counts the gate, fuzz and fault tests report ----------------------------------------------------------------
# Printed in the terminal summary of every run (`make test` included): under pytest-xdist a worker's stdout never
# reaches the terminal, but a report's user_properties do.
REPORT_KEY = "rackform-report"


@pytest.fixture
def gate_report(record_property):
    """`gate_report("fuzz", "2000 specs tried, ...")`: a line for the terminal summary, under its heading."""
    def add(heading: str, line: str) -> None:
        record_property(REPORT_KEY, f"{heading}: {line}")
    return add


def pytest_terminal_summary(terminalreporter):
    lines = [value for reports in terminalreporter.stats.values() for rep in reports
             if getattr(rep, "when", None) == "call"
             for key, value in getattr(rep, "user_properties", ()) if key == REPORT_KEY]
    if lines:
        terminalreporter.section("rackform gates, fuzz and faults")
        for line in lines:
            terminalreporter.write_line(line)
