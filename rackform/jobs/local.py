"""The embedded default: an AWS on 127.0.0.1 (moto server) and a local executor that plays AWS Batch.

`EmbeddedAWS` starts moto, creates what the rack stacks would (the results bucket, a queue per node group and the
job definitions from `rackform.jobs.jobdefs`, the code the stacks use). `run_local` then runs each submitted job the way
Batch would, through the same entry point (`python -m workloads.run`), with the environment Batch gives every node
of a multi-node job: a 2-node all-reduce is 2 local processes that rendezvous on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3


from workloads.contract import FI_EFA_USE_DEVICE_RDMA, FI_PROVIDER, JobEnvironment
from workloads.launch import new_secret
from workloads.store import JOB_NAME, ResultStore

from ..plan import Plan
from ..render.problems import bad_object_line
from .jobdefs import job_definitions

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "embedded", "AWS_SECRET_ACCESS_KEY": "embedded"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedAWS:
    """moto's server on 127.0.0.1, in this process; `env` points boto3 clients (and child processes) at it."""

    def __init__(self, region: str):
        from moto.server import ThreadedMotoServer

        self.region = region
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> EmbeddedAWS:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns the demo's output
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # moto keeps its accounts in process-wide state that outlives a stopped server: a second embedded AWS in
        # one process (two test modules on one pytest worker) would otherwise find the first one's roles and
        # buckets and fail to deploy. Each starts from an empty account.
        self._post("reset", None)
        # Batch in moto would start Docker containers; the local executor runs the jobs instead.
        self._post("config", {"batch": {"use_docker": False}})
        return self

    def _post(self, api: str, body: Any) -> None:
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/{api}", method="POST",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def __exit__(self, *exc: Any) -> None:
        self._server.stop()

    @property
    def env(self) -> dict[str, str]:
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region}

    def client(self, service: str, **kwargs: Any):
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id="embedded", aws_secret_access_key="embedded", **kwargs)


def hold_runnable(batch: Any, region: str, queue: str, job_definition: str, jobs: int) -> list[str]:
    """Submit `jobs` jobs that stay RUNNABLE, a queue's backlog: moto's Batch without Docker finishes every job the
    moment it is submitted, so they are held in moto's own state (its in-process backend, which the embedded
    server and `mock_aws` share)."""
    from moto.batch.models import batch_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    ids = []
    for i in range(jobs):
        job_id = batch.submit_job(jobName=f"busy-{i}", jobQueue=queue, jobDefinition=job_definition)["jobId"]
        batch_backends[DEFAULT_ACCOUNT_ID][region]._jobs[job_id].status = "RUNNABLE"
        ids.append(job_id)
    return ids


def bucket_name(plan: Plan) -> str:
    return f"{plan.name}-results-embedded"


@dataclass(frozen=True)
class Deployment:
    bucket: str
    # What was registered, by name: moto keeps a multi-node definition's nodeProperties but never returns them,
    # so the local executor reads the definitions from here rather than from DescribeJobDefinitions.
    job_definitions: dict[str, dict[str, Any]]


def deploy(plan: Plan, *, s3: Any, batch: Any, iam: Any) -> Deployment:
    """Create the bucket, roles, queues and job definitions of the plan in an embedded AWS."""
    bucket = bucket_name(plan)
    region = s3.meta.region_name
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **kwargs)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    role = _role(iam, "rackform-embedded-job", "ecs-tasks.amazonaws.com")
    service_role = _role(iam, "rackform-embedded-batch", "batch.amazonaws.com")
    registered: dict[str, dict[str, Any]] = {}
    for g in plan.node_groups():
        # An unmanaged environment: nothing to launch, the local executor is the compute.
        ce = batch.create_compute_environment(computeEnvironmentName=g.compute_environment, type="UNMANAGED",
                                              state="ENABLED", serviceRole=service_role)
        batch.create_job_queue(jobQueueName=g.job_queue, state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{"order": 1,
                                                         "computeEnvironment": ce["computeEnvironmentArn"]}])
        for jd in job_definitions(plan.name, g, image=f"rackform-local:{g.tier}", bucket=bucket,
                                  job_role_arn=role, fsx_mount=None,
                                  price_usd_per_hour=g.on_demand_usd_per_hour):
            batch.register_job_definition(**jd)
            registered[jd["jobDefinitionName"]] = jd
    return Deployment(bucket=bucket, job_definitions=registered)


def _role(iam: Any, name: str, service: str) -> str:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                                                     "Action": "sts:AssumeRole"}]}
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def _container_env(jobdef: dict[str, Any]) -> dict[str, str]:
    if jobdef.get("type") == "multinode":
        container = jobdef["nodeProperties"]["nodeRangeProperties"][0]["container"]
    else:
        container = jobdef["containerProperties"]
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def node_environment(base: dict[str, str], job: JobEnvironment, *, job_id: str, nodes: int, index: int,
                     work_dir: Path) -> dict[str, str]:
    """One local "node": the job definition's environment as a local job (no libfabric EFA provider on this
    machine, scratch in a directory of its own) and the variables Batch gives a node of a multi-node job."""
    local = job.with_(local=True, work_dir=str(work_dir / f"node-{index}"))
    env = {k: v for k, v in base.items() if k not in (FI_PROVIDER, FI_EFA_USE_DEVICE_RDMA)}
    env.update({**local.to_env(), "AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_NUM_NODES": str(nodes),
                "AWS_BATCH_JOB_NODE_INDEX": str(index), "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0"})
    if index != 0:  # as Batch does: only the other nodes are told the main node's address
        env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = "127.0.0.1"
    return env


def run_local(aws: EmbeddedAWS, deployment: Deployment, run_id: str, *, log_dir: Path, timeout_s: float = 600,
              announce: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> list[dict[str, Any]]:
    """Run every job the run submitted that has no record yet, one at a time, each node a local process."""
    store = ResultStore(deployment.bucket, aws.client("s3"))
    subs = store.submissions(run_id)  # verified markers only; the others are announced, never run
    for problem in store.problems:
        announce(f"not run: {bad_object_line(problem)}")
    results = []
    for i, sub in enumerate(subs, 1):
        # Anyone may write a marker: it runs only on a definition the plan deployed, on at most the nodes that
        # definition spans (numNodes: the plan's node group; a single-node definition, one).
        jobdef = deployment.job_definitions.get(sub["job_definition"])
        most = (jobdef.get("nodeProperties") or {}).get("numNodes", 1) if jobdef is not None else 0
        if sub["nodes"] > most:
            announce(f"not run: {sub['job_name']}: " + (
                f"job definition {sub['job_definition']!r} was never deployed" if jobdef is None else
                f"{sub['nodes']} nodes, but its job definition {sub['job_definition']!r} spans at most {most}"))
            continue
        # What the job definition tells the container, as the runner will read it, plus this submission's run id.
        job = JobEnvironment.from_env(_container_env(deployment.job_definitions[sub["job_definition"]])).with_(
            run_id=run_id, master_port=free_port(), fabric_port=free_port(), launch_secret=new_secret(),
            **({"repeats": sub["repeats"]} if sub.get("repeats") is not None else {}))
        base = {**os.environ, **aws.env}
        work = Path(tempfile.mkdtemp(prefix=f"rackform-{sub['benchmark']}-"))
        announce(f"[{i}/{len(subs)}] {sub['benchmark']} on {sub['rack']}/{sub['node_group']} "
                 f"({sub['nodes']} node{'s' * (sub['nodes'] > 1)})")
        started = time.monotonic()
        procs = []
        for index in range(sub["nodes"]):
            env = node_environment(base, job, job_id=sub["job_id"], nodes=sub["nodes"], index=index, work_dir=work)
            log = open(log_path(log_dir, sub["job_name"], index), "w")
            procs.append((subprocess.Popen([sys.executable, "-m", "workloads.run", sub["benchmark"]], env=env,
                                           stdout=log, stderr=subprocess.STDOUT, cwd=_repo_root()), log))
            if index == 0:
                time.sleep(0.5)  # the main node starts first, as in Batch
        codes = []
        for proc, log in procs:
            try:
                codes.append(proc.wait(timeout=timeout_s))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
            log.close()
        announce(f"      exit {max(codes)} in {time.monotonic() - started:.1f} s")
        results.append({**sub, "exit_codes": codes})
    return results


def log_path(log_dir: Path, job_name: str, index: int) -> Path:
    """Where a node's log goes: always a file directly in `log_dir`. The job name comes from a marker in the bucket,
    which any job can write; a name like `../../x` must not place a file anywhere else."""
    path = log_dir / f"{job_name}.node-{index}.log"
    if not JOB_NAME.fullmatch(job_name) or path.resolve().parent != log_dir.resolve():
        raise ValueError(f"job name {job_name!r} is not a Batch job name; no log is written for it")
    return path


def _repo_root() -> str:
    """The directory `python -m workloads.run` imports the in-job package from, as the job image's WORKDIR does."""
    import workloads

    return str(Path(workloads.__file__).resolve().parents[1])

