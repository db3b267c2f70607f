"""The job environment: what the operator side tells a benchmark container, in one typed place.

The rack stacks and the embedded AWS write it into job definitions (rackform.jobs.jobdefs), `rackform submit` adds
the run id, the local executor adds what a local "node" needs, and the runner (workloads.run) reads it back. All of
them go through `JobEnvironment.to_env()` / `from_env()`, so a variable cannot be written under one name and read
under another. AWS Batch's own variables (AWS_BATCH_JOB_*) are Batch's contract and are read by the runner itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

PREFIX = "RACKFORM_"
CONTAINER_WORK_DIR = "/scratch"
# The one directory of the FSx mount a benchmark writes (the storage benchmark's files): the job definitions mount
# it writable over a read-only file system, so no benchmark can change or delete <mount>/data, the user's dataset.
FSX_SCRATCH_DIR = "rackform-scratch"
# The node's identity (instance_id=, ami_id=, availability_zone= lines), written by the node's user data from instance
# metadata and mounted read-only into every job at the same path: containers cannot reach instance metadata
# themselves (cdk_constructs/user_data.py node_setup_script).
NODE_IDENTITY_FILE = "/etc/rackform/node"
# libfabric's own variables: with EFA, libfabric, NCCL's aws-ofi-nccl plugin and the Neuron runtime pick the efa
# provider (not TCP); RDMA read only where the device has it (forcing it elsewhere makes libfabric refuse the domain).
FI_PROVIDER = "FI_PROVIDER"
FI_EFA_USE_DEVICE_RDMA = "FI_EFA_USE_DEVICE_RDMA"


# Three measurements at least: with two, a spread says the figures differ but not which one is the odd one.
MIN_REPEATS = 3
MAX_REPEATS = 10  # a typo of 30 on a rack of p5s is a costly one


def runnable_repeats(repeats: object) -> bool:
    """A repeat count the runner takes (1 and up: tests and the runner itself may ask for fewer than a submission)."""
    return type(repeats) is int and 1 <= repeats <= MAX_REPEATS


def check_repeats(repeats: int) -> int:
    """A repeat count a submission may ask for, or ValueError saying what is allowed."""
    if not MIN_REPEATS <= repeats <= MAX_REPEATS:
        raise ValueError(f"{repeats} is not between {MIN_REPEATS} and {MAX_REPEATS}: the report needs "
                         f"{MIN_REPEATS} measurements to tell a stable figure from an unstable one")
    return repeats


class JobEnvironmentError(ValueError):
    """A job environment variable holds something the runner cannot use."""


# The JobEnvironment fields only the local executor sets and reads.
LOCAL_ONLY = frozenset({"local_collective"})


@dataclass(frozen=True)
class JobEnvironment:
    """Every RACKFORM_* variable a job sees; the field name, upper-cased, is the variable's name after the prefix."""

    spec: str = "local"
    rack: str = "local"
    node_group: str = "local"
    tier: str = "cpu"
    instance_type: str = "local"
    bucket: str | None = None
    run_id: str | None = None  # set per submission (SubmitJob container overrides)
    gpus: int = 0
    neuron_devices: int = 0
    neuron_cores: int = 0  # physical NeuronCores of the node
    efa: bool = False
    efa_device_rdma: bool = False
    work_dir: str = "/tmp/rackform-scratch"  # job definitions set CONTAINER_WORK_DIR, a host volume
    fsx_mount: str | None = None
    # The node's NVMe instance store (RAID0 of its disks), mounted at the same path on the node and in the job, which
    # is then also work_dir; None: the node group uses none (work_dir is a directory of the node's /tmp).
    instance_store: str | None = None
    instance_store_gb: int = 0  # its size, as EC2 states the disks' (TotalSizeInGB)
    price_usd_per_hour: float | None = None  # per node; None when unknown (never 0)
    timeout_s: float = 3600.0
    # Every benchmark is measured this many times in one job; the report gives the median, min and max (rackform
    # submit --repeats sets it, at least MIN_REPEATS).
    repeats: int = 3
    # The local executor only: every "node" is a process on one machine.
    local: bool = False
    # The local executor only: whether the acceptance job runs the group's collective (workloads/accept.py) across its
    # local nodes. On by default; the executor turns it off for a job with a deliberately slowed node, which would
    # hold every node's all-reduce at its pace (docs/acceptance.md). Read nowhere else: on AWS it always runs.
    local_collective: bool = True
    master_port: int = 29500
    fabric_port: int = 47592
    # Multi-node jobs only: the secret that authenticates the nodes' rendezvous (workloads/launch.py), made for each
    # job by `rackform submit` (a container override) or the local executor; never in a job definition or marker.
    launch_secret: str | None = field(default=None, repr=False)

    @classmethod
    def variable(cls, field: str) -> str:
        """The variable a field is read from: callers that set one variable (SubmitJob overrides) name it here."""
        if field not in {f.name for f in fields(cls)}:
            raise KeyError(f"JobEnvironment has no field {field!r}")
        return PREFIX + field.upper()

    def to_env(self) -> dict[str, str]:
        """The variables to set: None fields are left out, booleans are "1"/"0"."""
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            # A local-only switch stays out of a job definition for AWS, where nothing reads it (and every byte of a
            # node group's job definitions counts against the rack template's size: docs/contributing.md).
            if value is None or (f.name in LOCAL_ONLY and not self.local):
                continue
            env[PREFIX + f.name.upper()] = ("1" if value else "0") if isinstance(value, bool) else \
                repr(value) if isinstance(value, float) else str(value)
        if self.efa and not self.local:
            env[FI_PROVIDER] = "efa"
            if self.efa_device_rdma:
                env[FI_EFA_USE_DEVICE_RDMA] = "1"
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobEnvironment:
        """Read the variables back; a missing one takes its default, a malformed one raises JobEnvironmentError."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = str(f.type)
            try:
                if kind.startswith("bool"):
                    values[f.name] = raw == "1"
                elif kind.startswith("int"):
                    values[f.name] = int(raw)
                elif kind.startswith("float"):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                raise JobEnvironmentError(f"{PREFIX}{f.name.upper()}={raw!r} is not a {kind.split()[0]}") from None
        if not runnable_repeats(values.get("repeats", 1)):
            raise JobEnvironmentError(f"{PREFIX}REPEATS={values['repeats']} is not between 1 and {MAX_REPEATS}")
        return cls(**values)  # type: ignore[arg-type]  # each value was converted to its own field's type above

    def with_(self, **changes: object) -> JobEnvironment:
        return replace(self, **changes)  # type: ignore[arg-type]
