"""The embedded default: an AWS on 127.0.0.1 (moto server) and a local executor that plays AWS Batch.

`EmbeddedAWS` starts moto, creates what the rack stacks would (the results bucket, a queue per node group and the
job definitions from `rackform.jobs.jobdefs`, the code the stacks use). `run_local` then runs each submitted job the way
Batch would, through the same entry point (`python -m workloads.job`), with the environment Batch gives every node
of a multi-node job: a 2-node all-reduce is 2 local processes that rendezvous on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import boto3

from workloads.accept import LOCAL_COLLECTIVE
from workloads.benchmarks import port_spans
from workloads.contract import FI_EFA_USE_DEVICE_RDMA, FI_PROVIDER, JobEnvironment
from workloads.launch import free_port_ranges, new_secret
from workloads.layout import JOB_NAME, BenchmarkMarker
from workloads.store import ResultStore

from .. import aws
from ..plan.models import Plan
from ..render.problems import bad_object_line
from .assembly import TemplateRoles, read_assembly
from .heal import BrokenNode, LocalRepair, after_attempt
from .jobdefs import WORKLOAD_ROLE_TAG, job_definitions
from .moto_listing import versions_listed_per_page
from .throttle import CpuQuota

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

ADMIN_USER = "rackform-embedded-admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
# Inherited variables that would point a child at other credentials: a profile set in the environment makes botocore
# skip the AWS_ACCESS_KEY_ID/.../AWS_SESSION_TOKEN variables altogether.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                         "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


class EmbeddedAWS:
    """moto's server on 127.0.0.1, in this process, private to whoever holds the credentials it made at start, and
    enforcing IAM as AWS does (https://docs.getmoto.org/en/latest/docs/iam.html).

    `env` (the operator: an administrator of the embedded account) points boto3 clients and child processes at it;
    `role_env` gives a job the credentials of one role, which hold exactly that role's policies. moto's own API
    (/moto-api/: reset, config, recorder, dashboard) is unreachable; its state is reset and configured in-process.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        self._keys: set[str] = set()  # the access key ids this embedded AWS issued: nothing else gets through
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> EmbeddedAWS:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.core.authorization import enable_iam_authentication
        from moto.iam.models import iam_backends
        from moto.moto_api._internal.models import moto_api_backend
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns the demo's output
        # moto keeps its accounts in process-wide state that outlives a stopped server: a second embedded AWS in
        # one process (two test modules on one pytest worker) would otherwise find the first one's roles and
        # buckets and fail to deploy. Each starts from an empty account.
        moto_api_backend.reset()
        # Batch (and Lambda) in moto would start Docker containers; the local executor runs the jobs instead.
        moto_api_backend.set_config({"batch": {"use_docker": False}, "lambda": {"use_docker": False}})
        self.account = DEFAULT_ACCOUNT_ID
        iam = iam_backends[self.account]["aws"]
        iam.create_user(region_name=self.region, user_name=ADMIN_USER)
        iam.put_user_policy(ADMIN_USER, "administrator", json.dumps(ADMIN_POLICY))
        key = iam.create_access_key(ADMIN_USER)
        key.secret_access_key = _secret()  # moto's generator is a seeded PRNG: the secret comes from the OS
        self._admin = {"AWS_ACCESS_KEY_ID": key.access_key_id, "AWS_SECRET_ACCESS_KEY": key.secret_access_key}
        self._keys.add(key.access_key_id)
        self._stack.enter_context(enable_iam_authentication())  # from the first request on, every one is checked
        self._stack.enter_context(versions_listed_per_page())  # a listing page costs a page, as on AWS
        self._server = make_server("127.0.0.1", 0, PrivateGate(DomainDispatcherApplication(create_backend_app),
                                                               self._keys),
                                   threaded=True, request_handler=MotoRequestHandler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        self._stack.callback(self._server.server_close)
        self._stack.callback(thread.join)
        self._stack.callback(self._server.shutdown)
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host!s}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def env(self) -> dict[str, str]:
        return {**self._admin, "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region}

    def client(self, service: str, **kwargs: object) -> aws.BotoClient:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self._admin["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self._admin["AWS_SECRET_ACCESS_KEY"], **kwargs)

    def role_env(self, role_arn: str, session: str) -> dict[str, str]:
        """Temporary credentials of the role, as Batch hands a job's containers their job role's: issued by STS
        in-process (the service assumes the role, not the operator)."""
        from moto.sts.models import sts_backends

        assumed = sts_backends[self.account]["aws"].assume_role(
            region_name=self.region, role_session_name=session[:64], role_arn=role_arn, policy="", duration=43200,
            external_id="")
        assumed.secret_access_key, assumed.session_token = _secret(), _secret()
        self._keys.add(assumed.access_key_id)
        return {"AWS_ACCESS_KEY_ID": assumed.access_key_id, "AWS_SECRET_ACCESS_KEY": assumed.secret_access_key,
                "AWS_SESSION_TOKEN": assumed.session_token, "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}


def _secret() -> str:
    return secrets.token_urlsafe(30)


def without_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """`env` less every variable that names AWS credentials, so the ones set after it are the ones used."""
    return {k: v for k, v in env.items() if k not in CREDENTIAL_VARIABLES}


SIGV4_CREDENTIAL = re.compile(r"AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)/")


class PrivateGate:
    """WSGI middleware in front of moto: only requests signed (SigV4) with an access key this embedded AWS issued
    reach it (moto then checks the signature and the key's policies), never moto's own API, and no response
    carries CORS headers, so a web page cannot read from or write to it through a browser."""

    def __init__(self, app: WSGIApplication, keys: set[str]) -> None:
        self.app, self.keys = app, keys

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        signed = SIGV4_CREDENTIAL.match(environ.get("HTTP_AUTHORIZATION", ""))
        if "moto-api" in environ.get("PATH_INFO", ""):
            return _refuse(start_response, "404 Not Found", "NotFound", "moto's API is not served here",
                           environ)
        if signed is None or signed[1] not in self.keys:
            return _refuse(start_response, "403 Forbidden", "InvalidAccessKeyId", "requests must be signed with "
                           "credentials this embedded AWS issued", environ)

        def without_cors(status: str, headers: list[tuple[str, str]],
                         exc_info: OptExcInfo | None = None) -> Callable[[bytes], object]:
            write: Callable[[bytes], object] = start_response(
                status, [(k, v) for k, v in headers if not k.lower().startswith("access-control-")], exc_info)
            return write
        try:
            return self.app(environ, without_cors)
        except NotImplementedError as e:
            # moto raises for an action it lacks, which its server answers with a traceback on the console and an
            # HTML page that botocore cannot parse (and retries as a 500). An AWS error instead: a caller (preflight)
            # says the embedded AWS cannot answer that call, and 501 is not one of the status codes SDKs retry.
            return _refuse(start_response, "501 Not Implemented", "NotImplemented",
                           f"the embedded AWS (moto) does not implement this call ({e})", environ)


def _refuse(start_response: StartResponse, status: str, code: str, message: str,
            environ: WSGIEnvironment) -> list[bytes]:
    """An AWS error in the shape the caller's SDK parses for its protocol: JSON for the JSON protocols (a request
    with X-Amz-Target or a JSON body), <Response><Errors> for the query and EC2 protocols (a form-encoded body),
    a bare <Error> for REST-XML (S3)."""
    kind = environ.get("CONTENT_TYPE", "")
    error = f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    if environ.get("HTTP_X_AMZ_TARGET") or "json" in kind:
        body, kind = json.dumps({"__type": code, "message": message}).encode(), "application/x-amz-json-1.1"
    elif "x-www-form-urlencoded" in kind:
        body, kind = f"<Response><Errors>{error}</Errors></Response>".encode(), "application/xml"
    else:
        body, kind = error.encode(), "application/xml"
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body))), ("x-amzn-ErrorType", code)])
    return [body]


def hold_runnable(batch: aws.BotoClient, region: str, queue: str, job_definition: str, jobs: int) -> list[str]:
    """Submit `jobs` jobs that stay RUNNABLE, a queue's backlog: moto's Batch without Docker finishes every job the
    moment it is submitted, so they are held in moto's own state (its in-process backend, which the embedded
    server and `mock_aws` share)."""
    from moto.batch.models import batch_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    ids: list[str] = []
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


def deploy(plan: Plan, *, s3: aws.BotoClient, batch: aws.BotoClient, iam: aws.BotoClient,
           assembly: Path | None = None) -> Deployment:
    """Create the bucket, roles, queues and job definitions of the plan in an embedded AWS.

    With `assembly` (the spec's `cdk synth` output), each job definition runs as the role its synthesized template
    gives it, which holds exactly the policies the templates give that role; without it (tests of the operator's
    side under moto's in-process mock, which enforces no IAM), as one role with no policy."""
    bucket = bucket_name(plan)
    region = s3.meta.region_name
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **kwargs)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    from moto.core import DEFAULT_ACCOUNT_ID

    roles = None if assembly is None else TemplateRoles(read_assembly(assembly), iam=iam, region=region,
                                                        account=DEFAULT_ACCOUNT_ID, bucket=bucket)
    policyless = _role(iam, "rackform-embedded-job", "ecs-tasks.amazonaws.com") if roles is None else ""
    workload_role = _role(iam, "rackform-embedded-workload", "ecs-tasks.amazonaws.com") if roles is None else ""
    service_role = _role(iam, "rackform-embedded-batch", "batch.amazonaws.com")
    registered: dict[str, dict[str, Any]] = {}
    # The spec's FSx mount path, as the rack stacks give it: a node's health step reports the file system the plan
    # has (not mounted on this machine) rather than a cluster without one.
    fsx_mount = None if plan.storage.fsx_lustre is None else plan.storage.fsx_lustre.mount_path
    for g in plan.node_groups():
        # An unmanaged environment: nothing to launch, the local executor is the compute.
        ce = batch.create_compute_environment(computeEnvironmentName=g.compute_environment, type="UNMANAGED",
                                              state="ENABLED", serviceRole=service_role)
        batch.create_job_queue(jobQueueName=g.job_queue, state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{"order": 1,
                                                         "computeEnvironment": ce["computeEnvironmentArn"]}])
        for jd in job_definitions(plan.name, g, image=f"rackform-local:{g.tier}", bucket=bucket,
                                  job_role_arn="", fsx_mount=fsx_mount,  # the role: per definition, just below
                                  price_usd_per_hour=g.on_demand_usd_per_hour):
            _container(jd)["jobRoleArn"] = roles.job_role_arn(jd["jobDefinitionName"]) if roles else policyless
            jd["tags"][WORKLOAD_ROLE_TAG] = roles.workload_role_arn(jd["jobDefinitionName"], WORKLOAD_ROLE_TAG) \
                if roles else workload_role
            batch.register_job_definition(**jd)
            registered[jd["jobDefinitionName"]] = jd
    return Deployment(bucket=bucket, job_definitions=registered)


def _role(iam: aws.BotoClient, name: str, service: str) -> str:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                                                     "Action": "sts:AssumeRole"}]}
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    return arn


def job_role_arn(jobdef: dict[str, Any]) -> str:
    """The role a registered job definition's containers run as."""
    arn: str = _container(jobdef)["jobRoleArn"]
    return arn


def _container(jobdef: dict[str, Any]) -> dict[str, Any]:
    """The container of a job definition (a multi-node definition's one node range)."""
    container: dict[str, Any] = (jobdef["nodeProperties"]["nodeRangeProperties"][0]["container"]
                                 if jobdef.get("type") == "multinode" else jobdef["containerProperties"])
    return container


def _container_env(jobdef: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(jobdef).get("environment", [])}


def node_environment(base: dict[str, str], job: JobEnvironment, *, job_id: str, nodes: int, index: int,
                     work_dir: Path, threads: int | None = None) -> dict[str, str]:
    """One local "node": the job definition's environment as a local job (no libfabric EFA provider on this
    machine, no instance store: scratch in a directory of its own) and the variables Batch gives a node of a
    multi-node job; with `threads`, the OpenMP threads its torch may use (OMP_NUM_THREADS), its share of this
    machine's CPUs."""
    local = job.with_(local=True, work_dir=str(work_dir / f"node-{index}"), instance_store=None, instance_store_gb=0)
    env = {k: v for k, v in base.items()
           if k not in (FI_PROVIDER, FI_EFA_USE_DEVICE_RDMA, JobEnvironment.variable("instance_store"))}
    env.update({**local.to_env(), "AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_NUM_NODES": str(nodes),
                "AWS_BATCH_JOB_NODE_INDEX": str(index), "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0"})
    if index != 0:  # as Batch does: only the other nodes are told the main node's address
        env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = "127.0.0.1"
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


@dataclass(frozen=True)
class SlowNode:
    """A node of one job that the rehearsal slows for real, to `share` of one CPU: a cgroup's CPU quota where this
    machine lets the executor make one (rackform/jobs/throttle.py), which costs nothing; elsewhere a competing CPU
    load pinned beside it. The node, at `nice`, then shares one CPU (the last) with `load` busy processes at the
    normal priority, so it runs at about a quarter of that CPU (nice 5 weighs 335 against 1024 for each busy
    process, the kernel's sched_prio_to_weight), and the busy processes burn the rest of that CPU for the whole job.
    Either way it computes, answers and moves data at about a quarter of a CPU whatever else the machine runs, while
    the scheduler gives the other nodes the rest. A quarter, not less: the node's own start (Python, its imports)
    runs at that pace too, and at a tenth it took 6 to 7 s of the rehearsal's 16; a quarter of the rate is still
    75 % below the other nodes' median, far outside any band acceptance allows. The others are not pinned: two
    nodes of a fabric pair busy-poll, and on one CPU each would wait for the other's time slice."""

    job_name: str
    index: int
    share: float = 0.25
    load: int = 1
    nice: int = 5


BUSY = "while True:\n    pass\n"


def pin_beside(pid: int, slow: SlowNode) -> list[subprocess.Popen[bytes]]:
    """Pin `pid` to the last CPU with `slow.load` busy processes; returns them (the caller ends them)."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(pid, {cpu})
    os.setpriority(os.PRIO_PROCESS, pid, slow.nice)
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(slow.load)]
    for p in busy:
        os.sched_setaffinity(p.pid, {cpu})
    return busy


@dataclass(frozen=True)
class Slowed:
    """A process slowed by `slow_down`, and how (the rehearsal's `injected: slow node` line says it)."""

    how: str
    quota: CpuQuota | None = None
    busy: tuple[subprocess.Popen[bytes], ...] = ()

    def release(self) -> None:
        """End the busy processes, remove the quota's cgroup (once the slowed process has ended)."""
        for p in self.busy:
            p.kill()
            p.wait()
        if self.quota is not None:
            self.quota.remove()


def slow_down(pid: int, slow: SlowNode) -> Slowed:
    """Slow the process `pid` (and what it starts) to about `slow.share` of one CPU: by a CPU quota, else beside a
    busy process."""
    quota = CpuQuota.make(f"rackform-slow-{pid}", slow.share)
    if quota is not None:
        try:
            quota.add(pid)
            return Slowed(f"held to {slow.share:.0%} of one CPU by a cgroup CPU quota", quota=quota)
        except OSError:  # v2 also asks for write access where the process comes from: the busy process instead
            quota.remove()
    busy = pin_beside(pid, slow)
    return Slowed(f"at nice {slow.nice}, pinned to one CPU beside {slow.load} busy process{'es' * (slow.load > 1)}",
                  busy=tuple(busy))


@dataclass(frozen=True)
class LocalJob:
    """One attempt of a submitted job, ready to run here: its marker, its definition, the environment Batch would
    give its containers, and where its block of lines goes (announced whole once it has ended)."""

    sub: dict[str, Any]
    marker: BenchmarkMarker
    attempt: int
    jobdef: dict[str, Any]
    job: JobEnvironment
    base: dict[str, str]
    lines: list[str]
    ports: tuple[range, range]  # from its master port and from its fabric port: every port its steps may use


def run_local(aws: EmbeddedAWS, deployment: Deployment, run_id: str, *, log_dir: Path, timeout_s: float = 600,
              announce: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
              slow: SlowNode | None = None, broken: BrokenNode | None = None,
              repair: LocalRepair | None = None, cpus: int | None = None) -> list[dict[str, Any]]:
    """Run every job the run submitted that has no record yet, each node a local process, as Batch would on
    `cpus` CPUs (default: the ones this process may use): a job starts, in the order submitted, once as many CPUs
    as it has nodes are free (all of them, for a job with more nodes than that), so independent jobs run side by
    side and a 2-node job on 2 CPUs runs alone. The jobs that need more CPUs go first: one that waited behind
    smaller jobs for all its CPUs would leave those already free idle until the last of them ended. Each node then
    runs on a CPU of its own (pinned, one OpenMP thread: a node's tools size their threads by the CPUs it may use,
    and more would spin against the other jobs'); a job with more nodes than CPUs shares them all. Each job's lines
    are announced as one block once it has ended, the blocks in the order the jobs started. `slow` throttles one
    node of one job (the acceptance rehearsal). As Batch would, a job whose attempt ends on a host fault runs again
    (its definition's retry strategy) after the jobs queued before it, and `repair` gets the event
    (rackform/jobs/heal.py); `broken` fails one node's health step. Returns each job's marker and exit codes, in the
    order the jobs started."""
    store = ResultStore(deployment.bucket, aws.client("s3"))
    subs = store.submissions(run_id)  # verified markers only; the others are announced, never run
    for problem in store.problems:
        announce(f"not run: {bad_object_line(problem)}")
    mine = sorted(os.sched_getaffinity(0))
    cpus = cpus or len(mine)
    free = [mine[i % len(mine)] for i in range(cpus)]  # CPU ids: more asked for than there are share them
    # The widest jobs first, each width in the order submitted; a retried job is appended again: it runs after the
    # others, as if requeued.
    pending = sorted(subs, key=lambda sub: -_needs(sub, cpus))
    attempts: dict[str, int] = {}
    blocks: list[list[str] | None] = []  # each attempt's lines in the order started, None while it runs
    shown = 0  # blocks announced so far
    running: dict[int, list[int]] = {}  # an attempt's place in `blocks` -> the CPUs it holds
    ports: dict[int, tuple[range, range]] = {}  # an attempt's place -> the port ranges it holds until it ends
    ended: queue.Queue[tuple[int, LocalJob, list[int] | Exception]] = queue.Queue()

    def attempt(place: int, local: LocalJob, held: list[int]) -> None:
        try:
            ended.put((place, local, _run_nodes(local, log_dir=log_dir, timeout_s=timeout_s, cpus=held, slow=slow,
                                                broken=broken)))
        except Exception as e:  # raised below: the loop would otherwise wait for this job forever
            ended.put((place, local, e))

    results: dict[str, tuple[int, dict[str, Any]]] = {}  # by job id: its last attempt's place and outcome
    while pending or running:
        while pending and _needs(pending[0], cpus) <= len(free):
            sub = pending.pop(0)
            blocks.append(None)
            place = len(blocks) - 1
            local = _prepare(aws, deployment, run_id, sub, attempts, place=place, total=len(blocks) + len(pending),
                             held=[r for rs in ports.values() for r in rs])
            if isinstance(local, list):  # not run: its line says why
                blocks[place] = local
                continue
            ports[place] = local.ports
            held = running[place] = [free.pop(0) for _ in range(_needs(sub, cpus))]
            threading.Thread(target=attempt, args=(place, local, held), daemon=True).start()
        if running:
            place, local, codes = ended.get()
            if isinstance(codes, Exception):
                raise codes
            free += running.pop(place)
            del ports[place]
            if after_attempt(local.jobdef, local.marker, attempt=local.attempt, codes=codes, repair_loop=repair,
                             announce=local.lines.append):
                pending.append(local.sub)
            else:
                results[local.marker.job_id] = (place, {**local.sub, "exit_codes": codes})
            blocks[place] = local.lines
        while shown < len(blocks) and (block := blocks[shown]) is not None:
            for line in block:
                announce(line)
            shown += 1
    return [outcome for _, outcome in sorted(results.values(), key=lambda r: r[0])]


def _needs(sub: Mapping[str, Any], cpus: int) -> int:
    """The CPUs a job holds while it runs: one per node, all of them for a job with more nodes."""
    return min(BenchmarkMarker.model_validate(sub).nodes, cpus)


def _prepare(aws: EmbeddedAWS, deployment: Deployment, run_id: str, sub: dict[str, Any], attempts: dict[str, int],
             *, place: int, total: int, held: list[range]) -> LocalJob | list[str]:
    """The job's next attempt, ready to run, with port ranges free now and apart from those `held` by the jobs still
    running; or the line that says why it is not run."""
    m = BenchmarkMarker.model_validate(sub)  # the schema the store has just verified it against
    attempt = attempts[m.job_id] = attempts.get(m.job_id, 0) + 1
    # Anyone may write a marker: it runs only on a definition the plan deployed, on at most the nodes that
    # definition spans (numNodes: the plan's node group; a single-node definition, one).
    jobdef = deployment.job_definitions.get(m.job_definition)
    most = (jobdef.get("nodeProperties") or {}).get("numNodes", 1) if jobdef is not None else 0
    if jobdef is None or m.nodes > most:
        return [f"not run: {m.job_name}: " + (
            f"job definition {m.job_definition!r} was never deployed" if jobdef is None else
            f"{m.nodes} nodes, but its job definition {m.job_definition!r} spans at most {most}")]
    # What the job definition tells the container, as the runner will read it, plus this submission's run id.
    job = JobEnvironment.from_env(_container_env(jobdef)).with_(
        run_id=run_id, launch_secret=new_secret(), **({"repeats": m.repeats} if m.repeats is not None else {}))
    master, fabric = free_port_ranges(port_spans(job.repeats), avoid=held)
    job = job.with_(master_port=master.start, fabric_port=fabric.start)
    # The job's credentials are its job role's, as Batch gives them: never the operator's.
    base = {**without_credentials(os.environ), **aws.role_env(job_role_arn(jobdef), session=m.job_name)}
    header = f"[{place + 1}/{total}] {m.benchmark} on {m.rack}/{m.node_group} ({m.nodes} node{'s' * (m.nodes > 1)})"
    return LocalJob(sub=sub, marker=m, attempt=attempt, jobdef=jobdef, job=job, base=base, lines=[header],
                    ports=(master, fabric))


def _run_nodes(local: LocalJob, *, log_dir: Path, timeout_s: float, cpus: list[int], slow: SlowNode | None,
               broken: BrokenNode | None) -> list[int]:
    """Start the job's nodes (the main node first, as in Batch), each on a CPU of its own where the job holds one
    per node, and wait for them all; returns their exit codes."""
    m, say = local.marker, local.lines.append
    pinned = m.nodes <= len(cpus)
    threads = 1 if pinned else max(1, len(os.sched_getaffinity(0)) // m.nodes)
    work = Path(tempfile.mkdtemp(prefix=f"rackform-{m.benchmark}-"))
    started = time.monotonic()
    procs = []
    slowed: Slowed | None = None
    job = local.job
    if slow is not None and slow.job_name == m.job_name:
        job = local.job.with_(local_collective=False)
        say(f"group collective: {LOCAL_COLLECTIVE}")
    for index in range(m.nodes):
        env = node_environment(local.base, job, job_id=m.job_id, nodes=m.nodes, index=index, work_dir=work,
                               threads=threads)
        if broken is not None and broken.applies(m.job_name, index, local.attempt):
            env, what = broken.environment(env, local.job, work / f"broken-{index}")
            say(f"injected: broken node {m.rack}/{m.node_group} node {index}: {what}")
        log = open(log_path(log_dir, m.job_name, index), "w")
        proc = subprocess.Popen([sys.executable, "-m", "workloads.job", m.benchmark], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=_repo_root())
        procs.append((proc, log))
        # Pinned before the node starts any tool: every process it starts inherits its CPUs.
        if pinned:
            with contextlib.suppress(ProcessLookupError):  # a node that has already ended needs no CPU
                os.sched_setaffinity(proc.pid, {cpus[index]})
        if slow is not None and (slow.job_name, slow.index) == (m.job_name, index):
            slowed = slow_down(proc.pid, slow)
            say(f"injected: slow node {m.rack}/{m.node_group} node {index} ({slowed.how})")
        if index == 0:
            time.sleep(0.5)  # the main node starts first, as in Batch
    codes = []
    try:
        for proc, log in procs:
            try:
                codes.append(proc.wait(timeout=timeout_s))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
            log.close()
    finally:
        if slowed is not None:
            slowed.release()
    say(f"      exit {max(codes)} in {time.monotonic() - started:.1f} s")
    return codes


def log_path(log_dir: Path, job_name: str, index: int) -> Path:
    """Where a node's log goes: always a file directly in `log_dir`. The job name comes from a marker in the bucket,
    which any job can write; a name like `../../x` must not place a file anywhere else."""
    path = log_dir / f"{job_name}.node-{index}.log"
    if not JOB_NAME.fullmatch(job_name) or path.resolve().parent != log_dir.resolve():
        raise ValueError(f"job name {job_name!r} is not a Batch job name; no log is written for it")
    return path


def _repo_root() -> str:
    """The directory `python -m workloads.job` imports the in-job package from, as the job image's WORKDIR does."""
    import workloads

    return str(Path(workloads.__file__).resolve().parents[1])

