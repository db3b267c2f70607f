"""Storage: FSx for Lustre (type, size, throughput, data repository, mount path) and the results bucket."""

from __future__ import annotations

import re

from workloads.contract import CONTAINER_WORK_DIR

from ..plan.models import instance_store_enabled
from ..reference.catalog import Catalog
from ..spec.models import FsxLustre, Spec
from .core import Found, Rule, SpecRule, known_groups

# Patterns are used with fullmatch: `re.match(...$)` also accepts a trailing newline ("/fsx\n").
S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[^\s]*)?")
MOUNT_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
# The FSx mount point is a directory of its own on every node (user data mounts it there) and in every job container
# (the job definitions mount it at the same path), so it may neither be, nor hold, nor sit inside what the host, the
# ECS agent or the job images keep: at /var it would hide /var/lib/docker and /var/lib/ecs, under /opt the images'
# software (/opt/amazon/efa, /opt/aws/neuron), at /scratch the jobs' scratch volume. /var/lock is the FHS link to
# /run/lock (as /var/run is to /run): a mount there lands in /run. /var/cache/ecs holds the ECS agent image that
# ecs-init loads at boot, after user data has mounted the file system (aws/amazon-ecs-agent, ecs-init/config/common.go
# CacheDirectory).
RESERVED_MOUNT_PATHS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/opt", "/proc", "/root", "/run", "/sbin",
                        "/sys", "/tmp", "/usr", "/var/lib", "/var/log", "/var/run", "/var/lock", "/var/cache/ecs",
                        CONTAINER_WORK_DIR)
# The users' homes: ec2-user's, holding the key pair cloud-init installs before user data runs, and ssm-user's, which
# Session Manager creates at a node's first session
# (https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-getting-started-ssm-user-permissions.html).
# A shared file system may take them, as ParallelCluster lets shared storage be mounted at /home (its
# SharedStorageMountDirValidator reserves /opt, /var, /usr and the like, not /home); a node's own instance store,
# formatted empty at every launch, would hide them, and every job container's /home with them.
USER_HOMES = "/home"
# An IAM role's ARN: optional path, then a name of 1-64 of [A-Za-z0-9+=,.@_-]
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html).
ROLE_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII)
# FSx for Lustre CreateFileSystem (https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html and
# its LustreConfiguration): per-unit throughput by deployment and storage type; HDD exists only on PERSISTENT_1, and
# its capacity steps depend on the throughput tier.
FSX_THROUGHPUT = {("PERSISTENT_1", "SSD"): (50, 100, 200), ("PERSISTENT_1", "HDD"): (12, 40),
                  ("PERSISTENT_2", "SSD"): (125, 250, 500, 1000)}
FSX_HDD_CAPACITY_STEP = {12: 6000, 40: 1800}  # GiB per MB/s/TiB tier
# Metadata IOPS a user may provision on an SSD PERSISTENT_2 file system: these, then multiples of the last up to the
# maximum (https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystemLustreMetadataConfiguration.html).
FSX_METADATA_IOPS_STEPS = (1500, 3000, 6000, 12000)
FSX_METADATA_IOPS_MAX = 192000
# The deployment types each Lustre version is offered with (FileSystemTypeVersion, API_CreateFileSystem.html); 2.12
# also not with a metadata configuration, and data repository associations need 2.12 or 2.15
# (https://docs.aws.amazon.com/fsx/latest/APIReference/API_DescribeDataRepositoryAssociations.html).
FSX_VERSION_DEPLOYMENTS = {"2.10": ("SCRATCH_2", "PERSISTENT_1"), "2.12": ("SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2"),
                           "2.15": ("SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2")}


def fsx_storage_type(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is None:
        return
    path = "storage.fsx_lustre"
    if fsx.storage_type == "HDD" and fsx.deployment_type != "PERSISTENT_1":
        yield f"{path}.storage_type", (f"HDD storage exists only with deployment_type PERSISTENT_1, not "
                                       f"{fsx.deployment_type}; use SSD or PERSISTENT_1")
    # DriveCacheType: "required when StorageType is set to HDD" (CreateFileSystemLustreConfiguration).
    if fsx.storage_type == "HDD" and fsx.drive_cache_type is None:
        yield f"{path}.drive_cache_type", ("HDD storage needs drive_cache_type: READ (an SSD read cache of 20% of the "
                                           "capacity) or NONE")
    elif fsx.storage_type == "SSD" and fsx.drive_cache_type is not None:
        yield f"{path}.drive_cache_type", (f"drive_cache_type is for HDD storage only; remove it or set "
                                           f"storage_type: HDD (got {fsx.drive_cache_type} with SSD)")


def _fsx_steps(fsx: FsxLustre) -> tuple[int, ...] | None:
    """Valid capacities begin with these steps and continue in multiples of the last; None: not decidable here."""
    if fsx.storage_type == "SSD":
        return (1200, 2400)
    if fsx.deployment_type != "PERSISTENT_1" or fsx.per_unit_storage_throughput not in FSX_HDD_CAPACITY_STEP:
        return None  # fsx-storage-type or fsx-throughput reports it
    return (FSX_HDD_CAPACITY_STEP[fsx.per_unit_storage_throughput],)


def fsx_capacity(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is None or (steps := _fsx_steps(fsx)) is None:
        return
    gib, step = fsx.storage_capacity_gib, steps[-1]
    if gib in steps or (gib > 0 and gib % step == 0):
        return
    next_valid = next((s for s in steps if gib < s), -(-gib // step) * step)
    what: str = fsx.deployment_type
    if fsx.storage_type == "SSD":
        allowed = "1200, 2400 or a multiple of 2400"
    else:
        what = f"PERSISTENT_1 HDD at {fsx.per_unit_storage_throughput} MB/s/TiB"
        allowed = f"a multiple of {step}"
    yield "storage.fsx_lustre.storage_capacity_gib", (
        f"{gib} GiB is not a size {what} offers: use {allowed} (the next valid size is {next_valid})")


def fsx_throughput(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is None or (fsx.storage_type == "HDD" and fsx.deployment_type != "PERSISTENT_1"):
        return  # no throughput table for a storage type the deployment lacks: fsx-storage-type reports it
    allowed = FSX_THROUGHPUT.get((fsx.deployment_type, fsx.storage_type))
    kind = f"{fsx.deployment_type} {fsx.storage_type}" if fsx.deployment_type == "PERSISTENT_1" else \
        fsx.deployment_type
    t = fsx.per_unit_storage_throughput
    path = "storage.fsx_lustre.per_unit_storage_throughput"
    if allowed is None and t is not None:
        yield path, f"{fsx.deployment_type} has no throughput setting; remove per_unit_storage_throughput"
    elif allowed is not None and t is None:
        yield path, f"{kind} needs per_unit_storage_throughput (MB/s/TiB): one of {', '.join(map(str, allowed))}"
    elif allowed is not None and t not in allowed:
        yield path, f"{t} MB/s/TiB is not offered for {kind}: choose one of {', '.join(map(str, allowed))}"


def fsx_data_repository(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is None or fsx.data_repository_path is None:
        return
    if not S3_URI.fullmatch(fsx.data_repository_path):
        yield "storage.fsx_lustre.data_repository_path", (
            f"{fsx.data_repository_path!r} is not an S3 URI: write s3://bucket-name/optional/prefix")


def fsx_export_deletions(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is not None and fsx.export_deletions and fsx.data_repository_path is None:
        yield "storage.fsx_lustre.export_deletions", ("true exports deletions to a data repository, and none is "
                                                      "linked: set data_repository_path or remove export_deletions")


def fsx_metadata(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is None or (meta := fsx.metadata) is None:
        return
    path = "storage.fsx_lustre.metadata"
    if fsx.deployment_type != "PERSISTENT_2":
        yield path, (f"a metadata configuration is for PERSISTENT_2 file systems only, not {fsx.deployment_type}: "
                     "remove metadata or set deployment_type: PERSISTENT_2")
        return
    if (meta.mode is None) == (meta.iops is None):
        yield path, ("give one of mode: AUTOMATIC (FSx scales metadata IOPS with the capacity) or iops: N (you "
                     f"provision them), not {'both' if meta.mode else 'neither'}")
        return
    iops = meta.iops
    step = FSX_METADATA_IOPS_STEPS[-1]
    if iops is not None and not (iops in FSX_METADATA_IOPS_STEPS
                                 or (iops % step == 0 and step <= iops <= FSX_METADATA_IOPS_MAX)):
        offered = ", ".join(map(str, FSX_METADATA_IOPS_STEPS))
        yield f"{path}.iops", (f"{iops} metadata IOPS is not offered: use {offered} or a multiple of {step} up to "
                               f"{FSX_METADATA_IOPS_MAX}")


def fsx_lustre_version(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is None:
        return
    version, path = fsx.file_system_type_version, "storage.fsx_lustre.file_system_type_version"
    if fsx.deployment_type not in FSX_VERSION_DEPLOYMENTS[version]:
        yield path, (f"Lustre {version} is not offered with {fsx.deployment_type} (only "
                     f"{' and '.join(FSX_VERSION_DEPLOYMENTS[version])}): use 2.15")
    elif version == "2.12" and fsx.metadata is not None:
        yield path, "Lustre 2.12 takes no metadata configuration: use 2.15, or remove metadata"
    elif version == "2.10" and fsx.data_repository_path is not None:
        yield path, ("Lustre 2.10 file systems take no data repository association (2.12 and 2.15 do): use 2.15, "
                     "or remove data_repository_path")


# CreateFileSystem's answer and DescribeFileSystems' filter: fs- and at least 8 hex digits; a mount name is 1 to 8 of
# [A-Za-z0-9_-] (https://docs.aws.amazon.com/fsx/latest/APIReference/API_FileSystem.html,
# API_LustreFileSystemConfiguration.html).
FILE_SYSTEM_ID = re.compile(r"fs-[0-9a-f]{8,}")
MOUNT_NAME = re.compile(r"[A-Za-z0-9_-]{1,8}")
# What only a file system rackform creates takes: an existing one keeps its own.
CREATE_ONLY = ("data_repository_path", "export_deletions", "data_compression", "metadata", "file_system_type_version")


def fsx_existing(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is None:
        return
    path = "storage.fsx_lustre"
    if fsx.file_system_id is None:
        if fsx.mount_name is not None:
            yield f"{path}.mount_name", "mount_name is for an existing file system: give file_system_id, or remove it"
        return
    if not FILE_SYSTEM_ID.fullmatch(fsx.file_system_id):
        yield f"{path}.file_system_id", (f"{fsx.file_system_id[:40]!r} is not a file system id: expected fs- and "
                                         "hex digits, e.g. fs-0123456789abcdef0")
    if fsx.mount_name is None:
        yield f"{path}.mount_name", ("an existing file system needs its mount name (aws fsx describe-file-systems: "
                                     "LustreConfiguration.MountName); nodes mount <dns name>@tcp:/<mount name>")
    elif not MOUNT_NAME.fullmatch(fsx.mount_name):
        yield f"{path}.mount_name", f"{fsx.mount_name[:40]!r} is not a mount name: 1 to 8 letters, digits, - or _"
    if spec.network.vpc_id is None:
        yield f"{path}.file_system_id", ("an existing file system is reached in its own network: set network.vpc_id, "
                                         "subnet_id and security_group_ids to that VPC, a subnet in the AZ and groups "
                                         "that reach it (rackform's own VPC has no route to it)")
    for key in sorted(fsx.model_fields_set & set(CREATE_ONLY)):
        yield f"{path}.{key}", (f"{key} is a setting of a file system rackform creates; the existing "
                                f"{fsx.file_system_id} keeps its own: remove {key}")


def break_glass_role(spec: Spec, catalog: Catalog) -> Found:
    arn = spec.storage.results.break_glass_role_arn
    if arn is not None and not ROLE_ARN.fullmatch(arn):
        # The bucket policy compares it with aws:PrincipalArn, which for a role session is the role's ARN.
        hint = "; give the role's ARN, not a session's (arn:aws:sts::...:assumed-role/...)" if ":sts::" in arn else ""
        yield "storage.results.break_glass_role_arn", (f"{arn!r} is not an IAM role ARN: write "
                                                       f"arn:aws:iam::123456789012:role/name{hint}")


def _overlap(path: str, other: str) -> str | None:
    """How `path` meets the directory `other` (is it, is inside it, holds it), or None when they are apart."""
    if path == other or path.startswith(f"{other}/"):
        return f"is {other}" if path == other else f"is inside {other}"
    if path == "/" or other.startswith(f"{path}/"):
        return "is the root directory" if path == "/" else f"holds {other}"
    return None


def _mount_path_problem(path: str, *, what: str, example: str, reserved: tuple[str, ...]) -> str | None:
    """What is wrong with `path` as the mount point of `what` on every node and in every job container, or None."""
    if not MOUNT_PATH.fullmatch(path):
        return f"{path!r} is not an absolute path of letters, digits, '.', '_', '-' and '/'; e.g. {example}"
    parts = path.split("/")[1:]
    if bad := next((p for p in parts if p in (".", "..")), None):
        return f"{path!r} has a {bad!r} component; write the directory itself, e.g. {example}"
    if "" in parts and path != "/":
        return f"{path!r} has an empty component ('//' or a trailing '/'); write /{'/'.join(filter(None, parts))}"
    for other in reserved:
        if why := _overlap(path, other):
            return (f"{path!r} {why}, which the nodes or the job images need: {what} is mounted there on every node "
                    f"and in every job container; choose a directory of its own, e.g. {example} or /mnt{example}")
    return None


def fsx_mount_path(spec: Spec, catalog: Catalog) -> Found:
    fsx = spec.storage.fsx_lustre
    if fsx is not None and (problem := _mount_path_problem(fsx.mount_path, what="the file system", example="/fsx",
                                                           reserved=RESERVED_MOUNT_PATHS)):
        yield "storage.fsx_lustre.mount_path", problem


def instance_store(spec: Spec, catalog: Catalog) -> Found:
    """`enabled: true` needs NVMe instance store disks on the type; the mount path is a directory of its own, apart
    from the system's, the users' homes and the FSx mount (the job work directory, /scratch by default, it may be: it
    becomes that directory)."""
    fsx = spec.storage.fsx_lustre
    reserved = (*(p for p in RESERVED_MOUNT_PATHS if p != CONTAINER_WORK_DIR), USER_HOMES)
    for path, _rack, group, it in known_groups(spec, catalog):
        store = group.instance_store
        if store.enabled and not (it.instance_store_disks and it.instance_store_nvme):
            what = "has no instance store" if not it.instance_store_disks else "has no NVMe instance store"
            yield f"{path}.instance_store.enabled", (f"{it.name} {what}: remove instance_store.enabled, or choose "
                                                     "a type with NVMe instance store disks, e.g. p5.48xlarge or "
                                                     "trn1.32xlarge")
        if not instance_store_enabled(group, it):
            continue
        field = f"{path}.instance_store.mount_path"
        if problem := _mount_path_problem(store.mount_path, what="the instance store", example="/scratch",
                                          reserved=reserved):
            yield field, problem
        elif fsx is not None and (why := _overlap(store.mount_path, fsx.mount_path)):
            yield field, (f"{store.mount_path!r} {why}, the FSx mount path (storage.fsx_lustre.mount_path): the "
                          "instance store needs a directory of its own, e.g. /scratch")


RULES: tuple[SpecRule, ...] = (
    Rule(fsx_storage_type, "error", "HDD only on PERSISTENT_1, with a drive cache type",
         "https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystemLustreConfiguration.html"),
    Rule(fsx_capacity, "error", "FSx capacity is a valid size",
         "https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html"),
    Rule(fsx_throughput, "error", "FSx throughput matches the deployment type",
         "https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystemLustreConfiguration.html"),
    Rule(fsx_data_repository, "error", "the data repository is an s3:// URI",
         "https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystemLustreConfiguration.html"),
    Rule(fsx_export_deletions, "error", "deletions are exported only to a linked repository",
         "https://docs.aws.amazon.com/fsx/latest/APIReference/API_AutoExportPolicy.html"),
    Rule(fsx_metadata, "error", "metadata is PERSISTENT_2's: AUTOMATIC or an offered number of IOPS",
         "https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystemLustreMetadataConfiguration.html"),
    Rule(fsx_lustre_version, "error", "the Lustre version is offered with the deployment type and the features asked",
         "https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html"),
    Rule(fsx_existing, "error", "an existing file system is named by id and mount name, in an existing network",
         "https://docs.aws.amazon.com/fsx/latest/APIReference/API_FileSystem.html"),
    Rule(break_glass_role, "error", "the break-glass role is an IAM role ARN",
         "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html"),
    Rule(fsx_mount_path, "error",
         "the mount path is a plain absolute path of its own, outside the system's and the images' directories",
         "https://docs.aws.amazon.com/fsx/latest/LustreGuide/mounting-ec2-instance.html"),
    # The disks come with the type (InstanceStorageInfo in the catalog) and NVMe ones need no block device mapping.
    Rule(instance_store, "error", "instance store scratch on a type with NVMe disks, at a mount path of its own",
         "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-store-volumes.html"),
)
