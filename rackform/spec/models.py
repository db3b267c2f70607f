"""The rack spec: frozen pydantic models loaded from one YAML file.

Shape and types live here; every rule that needs the catalog or looks across fields lives in `validate.py`, so
that all problems are collected in one pass and each names its field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, StrictInt, ValidationError
from pydantic_core import ErrorDetails

from ..capacity import CapacityKind
from .base import Frozen
from .files import FileRefused, read_limited
from .problems import Problem, SpecError, did_you_mean, format_path
from .yamlsafe import MAX_BYTES, load_yaml

NAME_PATTERN = r"^[a-z]([a-z0-9-]{0,22}[a-z0-9])?$"
NAME_RULE = "1-24 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description=f"{NAME_RULE}; used in stack and AWS Batch names")]

# Numbers are StrictInt: YAML 1.1 and pydantic's lax mode would otherwise read `true` as 1 and "3" as 3 (and yamlsafe
# leaves YAML 1.1's base-60 `1:20` a string instead of 80), none of which anyone means as a count or a size.

DeploymentType = Literal["SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2"]
StorageType = Literal["SSD", "HDD"]
DriveCacheType = Literal["NONE", "READ"]
DataCompression = Literal["NONE", "LZ4"]
LustreVersion = Literal["2.10", "2.12", "2.15"]
Tier = Literal["graviton", "trainium", "gpu", "cpu"]
TIERS: tuple[str, ...] = get_args(Tier)
CapacityType = CapacityKind  # the kinds and what each means: rackform/capacity.py
ObjectLockMode = Literal["GOVERNANCE", "COMPLIANCE"]
# AWS Batch's AllocationStrategy values but BEST_FIT, which takes no infrastructure updates (rackform/capacity.py).
AllocationStrategy = Literal["BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED", "SPOT_PRICE_CAPACITY_OPTIMIZED"]
EfaLayout = Literal["efa", "efa-only"]


class Network(Frozen):
    vpc_cidr: str = Field("10.40.0.0/16", description="IPv4 CIDR of the VPC, /16 to /27; the plan checks it "
                          "holds every address the racks need")
    interface_endpoints: bool = Field(True, description="create VPC interface endpoints for ECR and CloudWatch "
                                      "Logs so image pulls and logs bypass the NAT gateway")
    vpc_id: str | None = Field(None, description="vpc-...: an existing VPC to deploy the racks into, with subnet_id "
                               "and security_group_ids; rackform then creates no VPC, subnet, NAT gateway, endpoint "
                               "or security group (vpc_cidr and interface_endpoints do not apply)")
    subnet_id: str | None = Field(None, description="subnet-...: the existing subnet, in availability_zone, that "
                                  "nodes and the file system use; it must reach S3 and ECR (a gateway endpoint or a "
                                  "NAT route: `rackform preflight` checks)")
    security_group_ids: list[str] | None = Field(
        None, description="sg-...: 1 to 5 existing groups on every node interface and the file system; together "
                          "they must allow all traffic to and from themselves (AWS's EFA rule, which also carries "
                          "Lustre's)")


class FsxMetadata(Frozen):
    """PERSISTENT_2's metadata server performance (CreateFileSystemLustreMetadataConfiguration): give mode or iops."""

    mode: Literal["AUTOMATIC"] | None = Field(None, description="AUTOMATIC: FSx provisions metadata IOPS from the "
                                              "storage capacity and scales them with it")
    iops: StrictInt | None = Field(None, description="metadata IOPS provisioned by you (USER_PROVISIONED mode): "
                                   "1500, 3000, 6000, 12000, then multiples of 12000 up to 192000")


class FsxLustre(Frozen):
    deployment_type: DeploymentType = "PERSISTENT_2"
    storage_type: StorageType = Field("SSD", description="SSD (default), or HDD with PERSISTENT_1 only")
    storage_capacity_gib: StrictInt = Field(
        description="SSD: 1,200, 2,400, then multiples of 2,400 GiB; PERSISTENT_1 HDD: multiples of 6,000 GiB at "
                    "12 MB/s/TiB, of 1,800 GiB at 40 MB/s/TiB")
    per_unit_storage_throughput: StrictInt | None = Field(
        None, description="MB/s per TiB: PERSISTENT_1 SSD 50|100|200, PERSISTENT_1 HDD 12|40, PERSISTENT_2 "
                          "125|250|500|1000; not for SCRATCH_2")
    drive_cache_type: DriveCacheType | None = Field(
        None, description="HDD only, and required there: READ puts an SSD read cache of 20% of the capacity in "
                          "front of the disks, NONE has none")
    data_repository_path: str | None = Field(None, description="s3://bucket[/prefix] linked to /fsx/data")
    export_deletions: bool = Field(False, description="a file deleted under /fsx/data deletes its object in the "
                                   "data repository too; default false: new and changed files are exported, "
                                   "deletions never are, so no job can delete your dataset through the file system")
    mount_path: str = Field("/fsx", description="where nodes mount the file system")
    data_compression: DataCompression = Field("NONE", description="LZ4: FSx compresses file data on the servers "
                                              "(less storage used, the same capacity billed); NONE (default)")
    metadata: FsxMetadata | None = Field(None, description="PERSISTENT_2 only: {mode: AUTOMATIC} or {iops: N}; "
                                         "omitted: none written, FSx's default metadata performance")
    file_system_id: str | None = Field(
        None, description="fs-...: an existing FSx for Lustre file system in the existing network (network.vpc_id) "
                          "to mount instead of creating one; the fields above then say what it is (`rackform "
                          "preflight` compares them with DescribeFileSystems) and `cost` prices it at 0 (its owner "
                          "pays for it)")
    mount_name: str | None = Field(None, description="the existing file system's mount name (DescribeFileSystems' "
                                   "LustreConfiguration.MountName, e.g. abcdefgh); with file_system_id only, and "
                                   "required there")
    file_system_type_version: LustreVersion = Field(
        "2.15", description="the Lustre version: 2.15 (default, every deployment type), "
                            "2.12 (not with metadata), 2.10 (SCRATCH_2 and PERSISTENT_1 only, no data repository)")


class ObjectLock(Frozen):
    """S3 Object Lock on the results bucket: every object version kept, by S3 itself, for `retention_days`."""

    mode: ObjectLockMode = Field(description="GOVERNANCE: only principals allowed s3:BypassGovernanceRetention (the "
                                 "break-glass role alone, by the bucket policy) may delete a version early; "
                                 "COMPLIANCE: no one may, the account's root user included, until it expires")
    retention_days: StrictInt = Field(ge=1, description="how long each object version is locked, from when it is "
                                      "written")


class Results(Frozen):
    object_lock: ObjectLock | None = Field(None, description="{mode: GOVERNANCE|COMPLIANCE, retention_days: N}; "
                                           "omitted: no Object Lock (the bucket policy still keeps every version)")
    break_glass_role_arn: str | None = Field(
        None, description="arn:aws:iam::<account>:role/<name>: the one role the bucket policy lets delete object "
                          "versions, change versioning or bypass governance retention; omitted: no principal may")


class Storage(Frozen):
    fsx_lustre: FsxLustre | None = None
    results: Results = Results()


class Capacity(Frozen):
    type: CapacityType = "on-demand"
    reservation_id: str | None = Field(None, description="cr-... On-Demand Capacity Reservation or Capacity "
                                       "Block id; required for reservation and capacity-block")
    allocation_strategy: AllocationStrategy | None = Field(
        None, description="spot only (the one kind with a choice): the compute environment's AllocationStrategy, "
                          "SPOT_PRICE_CAPACITY_OPTIMIZED (default), SPOT_CAPACITY_OPTIMIZED or BEST_FIT_PROGRESSIVE; "
                          "the other kinds always use BEST_FIT_PROGRESSIVE")


class PlacementGroup(Frozen):
    """Which cluster placement group a node group's instances launch into.

    Omitted, rackform decides: a new cluster placement group for EFA groups on On-Demand or Spot capacity; none for
    reservations and Capacity Blocks, where placement is the reservation's (a Capacity Reservation created in a
    cluster placement group serves only launches into that group; AWS places Capacity Block instances itself).
    """

    name: str | None = Field(None, description="an existing cluster placement group to launch into, e.g. the one "
                             "your Capacity Reservation was created in; rackform neither creates nor deletes it")
    create: bool | None = Field(None, description="true: rackform creates a cluster placement group for the node "
                                "group; false: no placement group. Give either name or create")


class InstanceStore(Frozen):
    """The type's NVMe instance store as the node group's scratch space: every disk, striped as one RAID0 volume
    when there are several, formatted (XFS) and mounted at mount_path on every node and in every job container."""

    enabled: bool | None = Field(None, description="default: true where the type has NVMe instance store disks "
                                 "(their price is in the instance's); false: the disks stay unused; true on a type "
                                 "without instance store is an error")
    mount_path: str = Field("/scratch", description="where nodes mount the volume and jobs see it (their work "
                            "directory, RACKFORM_WORK_DIR); an absolute path of its own, not the FSx mount path")


class NodeGroup(Frozen):
    name: Name
    instance_type: str
    count: StrictInt = Field(ge=1, description="number of instances; also the Batch compute environment's max")
    min_count: StrictInt = Field(0, ge=0, description="instances kept running (warm) even with no job: the Batch "
                                 "compute environment's MinvCpus is min_count x the type's vCPUs; at most count; "
                                 "default 0: the group scales to zero between jobs")
    tier: Tier | None = Field(
        None, description="inferred from the instance type; an error if given and it contradicts it")
    efa: bool | None = Field(None, description="default: true where the type supports EFA (every EFA interface)")
    efa_interfaces: EfaLayout | None = Field(
        None, description="efa: an EFA-with-ENA interface (one IP each) on every EFA card; efa-only: AWS's recommended "
                          "layout, an ENA primary and IP-less efa-only interfaces. Default: efa-only where card 0 "
                          "keeps a slot for the Batch task ENI, efa where it does not (p5, p5e, trn2)")
    capacity: Capacity = Capacity()
    placement_group: PlacementGroup | None = Field(
        None, description="{name: existing-group} | {create: true} | {create: false}; omitted: a new cluster "
                          "placement group for EFA groups on on-demand or spot capacity, none for reservations and "
                          "Capacity Blocks")
    root_volume_gib: StrictInt = Field(100, ge=30, le=16384, description="encrypted gp3 root volume size")
    image_id: str | None = Field(None, description="ami-...: your own AMI for the group, built from an ECS-optimized "
                                 "AMI of the type's architecture (the ECS agent, and the GPU or Neuron driver where "
                                 "the type has one, must be in it; user data still installs EFA); omitted: the "
                                 "tier's ECS-optimized AL2023 AMI, resolved at deploy")
    instance_store: InstanceStore = Field(InstanceStore(), description="{enabled, mount_path}: the type's NVMe "
                                          "instance store as RAID0 scratch; default: on where the type has it, at "
                                          "/scratch")


# An idle check interval: a whole number of hours or days (EventBridge Scheduler's rate() takes minutes too, but a
# check that launches a node to test it costs that node's time: more often than hourly is not a check, it is a load).
INTERVAL_PATTERN = r"^[1-9][0-9]{0,3}[hd]$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Healing(Frozen):
    """The rack's repair loop (docs/self-healing.md): a node that fails its health step, or an instance that goes away
    under a job, is drained and replaced, at most `max_fraction_per_hour` of a node group an hour, then only alerted."""

    enabled: bool = Field(True, description="false: no repair function, rule, topic or idle checks for this rack "
                          "(job retries on host faults stay: they are the job definitions')")
    email: str | None = Field(None, pattern=EMAIL_PATTERN, description="an address the rack's repair topic e-mails "
                              "(SNS sends it a confirmation first); omitted: subscribe to the topic yourself")
    max_fraction_per_hour: Annotated[float, Field(strict=True, gt=0, le=1)] = Field(
        0.2, description="the share of a node group replaced in one hour at most (at least one node), then the loop "
                         "only alerts: many nodes failing at once is more likely a bad image or driver than bad "
                         "hardware (Karpenter's node repair stops at 20%)")
    idle_check_every: str | None = Field(
        None, pattern=INTERVAL_PATTERN, description="e.g. 6h or 1d: how often every node group runs the health step "
        "as a job of its own, so a failure feeds the same loop; omitted: every 6h on node groups with warm nodes "
        "(min_count), none on the others (they scale to zero: a check would launch a node to test it)")
    stuck_runnable_minutes: Annotated[int, Field(strict=True, ge=1, le=1440)] | None = Field(
        30, description="the rack's alarm fires when a job of its queues has waited RUNNABLE this long (a job waits "
        "there while Batch launches a node, minutes; longer means no node can take it: a quota, a capacity shortage, "
        "a job larger than any node); at least 10 (the queues are sampled every 5 minutes); null: no such alarm")


class Rack(Frozen):
    name: Name
    node_groups: list[NodeGroup] = Field(min_length=1)
    healing: Healing = Healing()


class Spec(Frozen):
    name: Name
    region: str = Field(description="AWS Region, e.g. us-east-2")
    availability_zone: str = Field(description="one AZ, by name (us-east-2c) or AZ ID (use1-az6): EFA and cluster "
                                   "placement groups do not span AZs. In the oldest Regions (us-east-1, us-west-2, "
                                   "eu-west-1...) names map to zones per account; an AZ ID is the same everywhere")
    network: Network = Network()
    storage: Storage = Storage()
    racks: list[Rack] = Field(min_length=1)


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rackform spec"
    return schema


# --- turning pydantic errors into problems that name the field, the value and what is allowed ----------------

def _model_at(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> type[BaseModel] | None:
    model: Any = root or Spec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        ann = field.annotation
        for arg in getattr(ann, "__args__", ()) or (ann,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
                break
            for inner in getattr(arg, "__args__", ()):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    model = inner
                    break
        else:
            model = ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _message(err: ErrorDetails, root: type[BaseModel] | None = None) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    loc = err["loc"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1], root)
        allowed = list(parent.model_fields) if parent else []
        hint = did_you_mean(str(loc[-1]), allowed, n=1)
        return (f"unknown key {loc[-1]!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                + (f" Allowed keys: {', '.join(allowed)}" if allowed else ""))
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        rule = {INTERVAL_PATTERN: "a whole number of hours or days, e.g. 6h or 1d",
                EMAIL_PATTERN: "an e-mail address, e.g. oncall@example.com"}.get(ctx.get("pattern", ""), NAME_RULE)
        return f"{value!r} is not valid here: use {rule}"[:300] if rule != NAME_RULE else \
            f"{value!r} is not a valid name: use {NAME_RULE}"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        if isinstance(value, float):
            # YAML reads 2.10 as the number 2.1: a version must be quoted to keep its digits.
            return f"{value!r} was read as a number: write it in quotes, one of {' | '.join(map(repr, options))}"
        hint = did_you_mean(str(value), options, n=1)
        return (f"{value!r} is not one of {' | '.join(options)}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        word = "at least" if kind == "greater_than_equal" else "at most"
        return f"{value!r} is out of range: must be {word} {bound}"
    if kind == "int_type":
        return f"{value!r} is not a whole number: write digits only, unquoted (e.g. 4)"[:200]
    if kind == "too_short":
        return "must have at least one entry"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys to values, got {type(value).__name__} {value!r}"[:200]
    return f"{err['msg']} (got {value!r})"[:300]


def problems_from_validation_error(e: ValidationError, lines: dict[str, int],
                                   root: type[BaseModel] | None = None) -> list[Problem]:
    """`root`: the model the error locations start from (the Spec unless told; workload files use theirs)."""
    out = []
    for err in e.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = format_path(loc)
        line = lines.get(path) or lines.get(format_path(loc[:-1]))
        out.append(Problem("error", path, _message(err, root), rule="schema", line=line))
    return out


def parse_spec(data: object, lines: dict[str, int] | None = None) -> Spec:
    if not isinstance(data, dict):
        raise SpecError([Problem("error", "<spec>", f"a spec is a mapping with keys name, region, "
                                 f"availability_zone, racks...; got {type(data).__name__}")])
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        raise SpecError(problems_from_validation_error(e, lines or {})) from None


def load_spec_text(text: str | bytes, source: str = "spec") -> tuple[Spec, dict[str, int]]:
    data, lines = load_yaml(text, source)
    return parse_spec(data, lines), lines


def read_document(path: str | Path, what: str, examples: str) -> bytes:
    """A spec or workload file's bytes, bounded; a file that cannot be read is a SpecError naming it (and, when it
    is missing, where to find one to start from)."""
    try:
        return read_limited(Path(path), MAX_BYTES, what)
    except FileRefused as e:
        hint = f"; see {examples} for one to start from" if e.missing else ""
        raise SpecError([Problem("error", f"<{what}>", f"{e}{hint}")]) from None


def load_spec(path: str | Path) -> tuple[Spec, dict[str, int]]:
    return load_spec_text(read_document(path, "spec", "examples/"), str(path))
