"""The results bucket's layout, in one place: the key prefix every writer and the bucket policy use, and the Athena
table's partitions and columns (derived from the record model, so a new record field is a new column).

cdk_constructs/storage.py (the write-once bucket policy and the roles' grants) and cdk_constructs/athena.py (the
Glue table) import these; workloads/store.py and the operator side build every key with the functions below.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from . import repair
from .contract import MAX_REPEATS, runnable_repeats

RESULTS_PREFIX = "results"
# What `rackform run` workloads (third-party images, under their own role) may write and read: never results/.
WORKLOADS_PREFIX = "workloads"
# A run's records sit in a folder of their own, results/<run_id>/Records/<benchmark>/<rack>/<node_group>/record.json,
# apart from the node logs and health records of their job's folder: the Athena table's partition of a run and
# benchmark is that folder, and Athena reads every object under a partition's location
# (https://docs.aws.amazon.com/athena/latest/ug/tables-location-format.html), so a query scans records only. The same
# page says not to use underscores in a location (Hive-style readers hide a folder whose name begins with one), so the
# folder is not "_records" as the run's other folders are; capitalised, it can never be a rack's folder (rack names
# are lower case: rackform/spec/models.py NAME_PATTERN).
RECORDS_FOLDER = "Records"
# The table's partitions, registered in Glue for each run (rackform/cli/athena.py): run and benchmark prune, rack and
# node group are columns read from the record.
PARTITION_KEYS: tuple[str, ...] = ("run_id", "benchmark")


# Used with fullmatch: `re.match` with `$` would accept "run-1\n".
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-48 letters, digits, '-' or '_', starting with a letter or "
                         "digit (it becomes part of S3 keys and Batch job names)")
    return run_id


def job_prefix(run_id: str, rack: str, node_group: str, benchmark: str) -> str:
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/{rack}/{node_group}/{benchmark}"


def records_prefix(run_id: str, benchmark: str | None = None) -> str:
    """Where a run's records are: all of them, or one benchmark's (the table's partition of the run and benchmark)."""
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/{RECORDS_FOLDER}/{'' if benchmark is None else benchmark + '/'}"


def record_key(run_id: str, rack: str, node_group: str, benchmark: str) -> str:
    return f"{records_prefix(run_id, benchmark)}{rack}/{node_group}/record.json"


# A run folder's objects packed into one object in that folder (workloads/pack.py): the records' in the records
# folder but in no benchmark's partition, so Athena never reads it, and named with "_", which Athena skips as well.
PACK_OBJECT = re.compile(r"_pack-(\d{9})\.gz")


def pack_key(folder: str, objects: int) -> str:
    """The pack of `objects` of the objects under `folder` (a run's records_prefix or jobs_prefix); zero-padded, so
    the listing order is the count's."""
    return f"{folder}_pack-{objects:09d}.gz"


def legacy_record_key(run_id: str, rack: str, node_group: str, benchmark: str) -> str:
    """Where runs written before the records had a folder of their own keep theirs: beside the job's node logs. The
    store still reads them; the Athena table does not (docs/results.md says how to move them)."""
    return f"{job_prefix(run_id, rack, node_group, benchmark)}/record.json"


def log_key(run_id: str, rack: str, node_group: str, benchmark: str, node_index: int) -> str:
    return f"{job_prefix(run_id, rack, node_group, benchmark)}/node-{node_index}.log"


NODE_LOG = re.compile(r"node-([0-9]+)\.log")


def parse_log_key(key: str) -> tuple[str, str, str, str, int] | None:
    """log_key's inverse: (run id, rack, node group, benchmark, node index), or None for any other key."""
    parts = key.split("/")
    found = NODE_LOG.fullmatch(parts[-1]) if len(parts) == 6 and parts[0] == RESULTS_PREFIX else None
    return (parts[1], parts[2], parts[3], parts[4], int(found.group(1))) if found else None


# Health records have a folder of their own too, as records do, so that reading a run's health lists them and not
# its node logs (capitalised: never a rack's folder, rack names are lower case).
HEALTH_FOLDER = "Health"


def health_prefix(run_id: str, job: tuple[str, str, str] | None = None) -> str:
    """Where a run's health records are: all of them, or one job's, `job` being (rack, node group, benchmark)."""
    where = "" if job is None else f"{job[2]}/{job[0]}/{job[1]}/"
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/{HEALTH_FOLDER}/{where}"


def health_key(run_id: str, rack: str, node_group: str, benchmark: str, node_index: int) -> str:
    """Each node's health step: written before the benchmark's first step."""
    return f"{health_prefix(run_id, (rack, node_group, benchmark))}health-node-{node_index}.json"


def legacy_health_key(run_id: str, rack: str, node_group: str, benchmark: str, node_index: int) -> str:
    """Where runs written before health records had a folder of their own keep theirs: beside the job's node logs
    (the store still reads them)."""
    return f"{job_prefix(run_id, rack, node_group, benchmark)}/health-node-{node_index}.json"


HEALTH_OBJECT = re.compile(r"health-node-(\d+)\.json")


# --- rack acceptance (workloads/accept.py) ------------------------------------------------------------------------
# One multi-node job per node group, submitted like a benchmark job whose benchmark is ACCEPT_JOB (job name
# `<run id>-<rack>-<node group>-accept`, BenchmarkJobName); where Batch runs no multi-node job (Spot groups), one
# single-node job per node, `accept-<slot>`, whose records carry the slot as their node index. Its objects sit
# beside a benchmark job's, under job_prefix(run_id, rack, node_group, <that name>):
#     accept-node-<i>.json            node i's single-node figures (results.AcceptRecord, part "node")
#     accept-round-<r>-node-<i>.json  node i's side of fabric round r (part "round")
#     accept-schedule-<r>.json        node 0's pairs for round r, or the word to stop (results.FabricSchedule)
#     accept-group.json               node 0's group record: the collective and the rounds' finding; the job's end
# and each node's health step is in health_prefix(run_id, (rack, node_group, <that name>)), as for every job.
ACCEPT_JOB = "accept"
ACCEPT_JOB_NAME = re.compile(r"accept(?:-(\d+))?")
ACCEPT_OBJECT = re.compile(r"accept-(?:node-(\d+)|round-(\d+)-node-(\d+)|group)\.json")
ACCEPT_SCHEDULE = re.compile(r"accept-schedule-(\d+)\.json")


def accept_job(slot: int | None = None) -> str:
    """The benchmark segment of an acceptance job: the group's multi-node job, or a single node's (`slot`)."""
    return ACCEPT_JOB if slot is None else f"{ACCEPT_JOB}-{slot}"


def accept_key(run_id: str, rack: str, node_group: str, benchmark: str, part: str, node_index: int,
               round: int = 0) -> str:
    """Where an acceptance record goes (results.AcceptRecord: part, node_index, round)."""
    name = {"node": f"accept-node-{node_index}", "round": f"accept-round-{round}-node-{node_index}",
            "group": "accept-group"}[part]
    return f"{job_prefix(run_id, rack, node_group, benchmark)}/{name}.json"


def accept_schedule_key(run_id: str, rack: str, node_group: str, benchmark: str, round: int) -> str:
    return f"{job_prefix(run_id, rack, node_group, benchmark)}/accept-schedule-{round}.json"


def certificate_key(run_id: str) -> str:
    """The acceptance certificate of a run (`rackform accept`): written once, by the operator side."""
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/_acceptance/certificate.json"


# --- Batch job names and the job markers: the contract between `rackform submit`/`run` and the bucket -----------

# AWS Batch job names: up to 128 letters, numbers, hyphens and underscores, starting with a letter or number
# (https://docs.aws.amazon.com/batch/latest/APIReference/API_SubmitJob.html, jobName). A marker's job name is also
# a local file name (rackform/jobs/local.py), so nothing else may pass.
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def _job_name(name: str) -> str:
    if not JOB_NAME.fullmatch(name):
        raise ValueError("not a job name AWS Batch accepts (1-128 letters, digits, '-' or '_')")
    return name


def _repeats(repeats: int | None) -> int | None:
    if repeats is not None and not runnable_repeats(repeats):
        raise ValueError(f"not a whole number from 1 to {MAX_REPEATS}")
    return repeats


JobName = Annotated[str, AfterValidator(_job_name)]
Nodes = Annotated[int, Field(ge=1)]


class StoredObject(BaseModel):
    """An object the operator side keeps in the bucket: hostile input like any record once read back (strict types,
    no keys rackform never writes)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class BenchmarkJobName(StoredObject):
    """What names one benchmark job: `<run id>-<rack>-<node group>-<benchmark>` (`str()` of it)."""

    run_id: str
    rack: str
    node_group: str
    benchmark: str

    def __str__(self) -> str:
        return f"{check_run_id(self.run_id)}-{self.rack}-{self.node_group}-{self.benchmark}"


class WorkloadJobName(StoredObject):
    """What names one workload job: `<run id>-<rack>-<node group>-wl-<workload>` (`str()` of it)."""

    run_id: str
    rack: str
    node_group: str
    workload: str

    def __str__(self) -> str:
        return f"{check_run_id(self.run_id)}-{self.rack}-{self.node_group}-wl-{self.workload}"


class BenchmarkJob(StoredObject):
    """What `rackform submit` asks Batch for: a claim carries it, the marker (`_jobs/<job name>.json`) adds the job
    id."""

    job_name: JobName
    queue: str
    job_definition: str
    rack: str
    node_group: str
    benchmark: str
    nodes: Nodes
    repeats: Annotated[int | None, AfterValidator(_repeats)] = None

    def name_in(self, run_id: str) -> BenchmarkJobName:
        """The name run `run_id` gives this job: a believable marker's `job_name` is it."""
        return BenchmarkJobName(run_id=run_id, rack=self.rack, node_group=self.node_group, benchmark=self.benchmark)


class BenchmarkMarker(BenchmarkJob):
    job_id: str


class WorkloadJob(StoredObject):
    """What `rackform run` asks Batch for, for one placed workload (its marker: `_workloads/<workload>.json`)."""

    workload: str
    job_name: JobName
    queue: str
    job_definition: str
    rack: str
    node_group: str
    tier: str
    nodes: Nodes

    def name_in(self, run_id: str) -> WorkloadJobName:
        """The name run `run_id` gives this job: a believable marker's `job_name` is it."""
        return WorkloadJobName(run_id=run_id, rack=self.rack, node_group=self.node_group, workload=self.workload)


class WorkloadMarker(WorkloadJob):
    job_id: str


def jobs_prefix(run_id: str) -> str:
    """Where a run's job markers are (one per job `rackform submit` or `run` submitted)."""
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/_jobs/"


def submission_key(run_id: str, job_name: str) -> str:
    return f"{jobs_prefix(run_id)}{job_name}.json"


def claim_key(run_id: str, job_name: str, attempt: int, *, failed: bool = False) -> str:
    """`_claims/<job name>/<attempt>.json`: whoever writes it first (a conditional PUT) submits that job; a
    `<attempt>.failed.json` beside it says that attempt ended without a job, which frees the next attempt."""
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/_claims/{job_name}/{attempt}{'.failed' if failed else ''}.json"


def placements_prefix(run_id: str) -> str:
    """Where a run's workload placement decisions are (one per workload `rackform run` placed)."""
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/_placements/"


def placement_key(run_id: str, workload: str) -> str:
    """The placement decision of a workload run (rackform run): candidates, figures, backlog at the time."""
    return f"{placements_prefix(run_id)}{workload}.json"


def workload_jobs_prefix(run_id: str) -> str:
    """Where a run's workload job markers are."""
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/_workloads/"


def workload_job_key(run_id: str, workload: str) -> str:
    return f"{workload_jobs_prefix(run_id)}{workload}.json"


def run_prefix(run_id: str) -> str:
    return f"{RESULTS_PREFIX}/{check_run_id(run_id)}/"


SUMMARY_FOLDER = "_summary"
SUMMARY_OBJECT = re.compile(r"(\d{1,12})\.json")


def summary_key(run_id: str, seq: int) -> str:
    """`_summary/<seq>.json`: the run's summary as of its seq-th update (write-once like everything under results/,
    so an update is a new object; a reader takes the highest seq). Zero-padded: the listing order is the seq order."""
    return f"{run_prefix(run_id)}{SUMMARY_FOLDER}/{seq:012d}.json"


def workload_output_prefix(run_id: str, workload: str) -> str:
    """Where a workload's job writes its own outputs (the job is told it in its environment)."""
    return f"{WORKLOADS_PREFIX}/{check_run_id(run_id)}/{workload}/"


# --- the repair loop's records (workloads/repair.py) --------------------------------------------------------------
# The repair function runs in AWS Lambda without pydantic, so it builds its keys itself (repair.record_key): this is
# that function, under the name every reader uses; tests/workloads/test_repair.py holds it to RESULTS_PREFIX. Keys
# sort by time within a node group: results/_repairs/<rack>/<node group>/<stopped at>-<job id>-<attempt>.json.
REPAIRS_PREFIX = f"{RESULTS_PREFIX}/{repair.REPAIRS_FOLDER}"
# The folders under results/ that are no run (no run id starts with "_"): listing runs leaves them out.
NOT_RUN_FOLDERS = frozenset({repair.REPAIRS_FOLDER})
REPAIR_OBJECT = re.compile(rf"{REPAIRS_PREFIX}/[^/]+/[^/]+/\d{{8}}T\d{{6}}Z-[A-Za-z0-9-]+-\d+\.json")
repair_key = repair.record_key
REPAIR_STAMP = repair.STAMP  # how the key writes the attempt's end: sorts as the time does


def repairs_prefix(rack: str | None = None, node_group: str | None = None) -> str:
    """Where the repairs of every rack, one rack or one node group are listed."""
    return "/".join([REPAIRS_PREFIX, *(p for p in (rack, node_group) if p is not None), ""])


# --- the Athena table -------------------------------------------------------------------------------------------

def hive_type(annotation: object) -> str:
    """The Hive/Athena type of a record field (OpenX JSON SerDe), from its annotation (a type or a typing form):
    timestamps stay ISO 8601 strings."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        return hive_type(kinds[0])
    if origin is Literal or annotation is str:
        return "string"
    if origin is typing.Annotated:
        return hive_type(get_args(annotation)[0])
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "bigint"
    if annotation is float:
        return "double"
    if annotation is AwareDatetime or (isinstance(annotation, type) and issubclass(annotation, dt.datetime)):
        return "string"
    if origin in (tuple, list):
        return f"array<{hive_type(get_args(annotation)[0])}>"
    if origin is dict:
        key, value = get_args(annotation)
        return f"map<{hive_type(key)},{hive_type(value)}>"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "struct<" + ",".join(f"{n}:{hive_type(f.annotation)}" for n, f in annotation.model_fields.items()) + ">"
    raise TypeError(f"no Hive type for {annotation!r}")


def table_columns(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """The model's fields as (name, Hive type), less the partition keys (Hive refuses a column that is also a
    partition key; its value comes from the path and equals the record's)."""
    return tuple((name, hive_type(f.annotation)) for name, f in model.model_fields.items()
                 if name not in PARTITION_KEYS)
