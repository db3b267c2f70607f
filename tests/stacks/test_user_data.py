"""Node user data: the node's own setup (instance metadata blocked for containers, its identity written for jobs),
the EFA software per tier (pinned, checksum-verified, devices counted before the ECS agent starts), the FSx mount, the
MIME archive Batch merges, and the ECS AMI each tier boots.

The generated scripts are also run for real under bash, with `dnf`, `curl`, `iptables`, `mount`, `sleep` and
`shutdown` replaced by fakes on PATH (and a fake installer tarball), so the checksum gate, the device count, the
metadata block and the way a node that fails setup leaves (it shuts itself down) are exercised, not only read.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from cdk_constructs.user_data import (
    ECS_CONFIG,
    EFA_INSTALLER_FLAGS,
    EFA_INSTALLER_SHA256,
    EFA_INSTALLER_URL,
    EFA_INSTALLER_VERSION,
    IMDS_BLOCK_RULE,
    INSTANCE_STORE_ARRAY,
    INSTANCE_STORE_LABEL,
    IPTABLES_RULES,
    LustreMount,
    efa_install_script,
    instance_store_script,
    lustre_mount_script,
    node_setup_script,
    node_user_data,
    telemetry_script,
)
from rackform.reference.catalog import load_catalog
from rackform.spec.models import TIERS
from rackform.plan.models import BATCH_IMAGE_TYPE, ECS_AL2023_AMI, NodeGroupPlan, build_plan
from rackform.spec.models import Spec
from workloads.contract import NODE_IDENTITY_FILE
from workloads.run import node_identity

TYPES = {"gpu": "p5.48xlarge", "trainium": "trn1.32xlarge", "graviton": "c7gn.16xlarge", "cpu": "c7i.48xlarge",
         "plain": "m7g.xlarge"}
LUSTRE = LustreMount(dns_name="fs-0123.fsx.us-east-1.amazonaws.com", mount_name="abcdef", mount_path="/fsx")


@pytest.fixture(scope="module")
def groups() -> dict[str, NodeGroupPlan]:
    spec = Spec.model_validate({
        "name": "ud", "region": "us-east-1", "availability_zone": "us-east-1c",
        "racks": [{"name": "r", "node_groups": [{"name": key, "instance_type": t, "count": 2}
                                                 for key, t in TYPES.items()]}]})
    return {g.name: g for g in build_plan(spec, load_catalog()).node_groups()}


def parts(archive: str) -> list[str]:
    """The shell scripts of a MIME archive from mime_multipart, in order."""
    boundary = re.search(r'boundary="([^"]+)"', archive).group(1)
    assert archive.rstrip().endswith(f"--{boundary}--")
    chunks = archive.split(f"--{boundary}")[1:-1]
    assert all(c.startswith('\nContent-Type: text/x-shellscript; charset="us-ascii"\n\n') for c in chunks)
    return [c.split("\n\n", 1)[1].removesuffix("\n") for c in chunks]  # mime_multipart ends each part with one


def installer_line(script: str) -> str:
    (line,) = [ln.strip() for ln in script.splitlines() if "./efa_installer.sh" in ln and "echo" not in ln]
    return line


# --- what each tier gets ----------------------------------------------------------------------------------------

def test_every_tier_has_installer_flags():
    assert set(EFA_INSTALLER_FLAGS) == set(TIERS)


@pytest.mark.parametrize("tier, flags", [
    ("gpu", "-y -g"),            # GPUDirect RDMA, as AWS's GPU guides and samples pass it
    ("trainium", "-y"),          # aws-neuron-samples' Batch user data for Trainium
    ("graviton", "-y --minimal"),  # kernel module and rdma-core only: the containers bring libfabric
    ("cpu", "-y --minimal"),
])
def test_efa_groups_install_with_their_tiers_flags(groups, tier, flags):
    g = groups[tier]
    assert g.tier == tier and g.efa_interfaces >= 1
    (setup, *_instance_store, script, _telemetry) = parts(node_user_data(g, None))
    assert setup == node_setup_script()
    assert installer_line(script).startswith(f"./efa_installer.sh {flags} ||")


def test_non_efa_group_gets_the_node_setup_and_no_installer(groups):
    plain = groups["plain"]
    assert plain.efa_interfaces == 0
    assert parts(node_user_data(plain, None)) == [node_setup_script(), telemetry_script(plain)]
    (setup, mount, _telemetry) = parts(node_user_data(plain, LUSTRE))
    assert "efa" not in mount.lower() and "mount -t lustre" in mount


def test_node_setup_comes_first_then_the_instance_store_efa_the_lustre_mount_and_telemetry(groups):
    setup, store, efa, mount, telemetry = parts(node_user_data(groups["gpu"], LUSTRE))
    assert "ECS_AWSVPC_BLOCK_IMDS=true" in setup and "Instance_Storage" in store and "./efa_installer.sh" in efa
    assert "mount -t lustre" in mount
    assert "amazon-cloudwatch-agent" in telemetry


def test_installer_is_pinned_and_verified_before_it_runs(groups):
    script = efa_install_script(groups["trainium"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", EFA_INSTALLER_VERSION) and "latest" not in script
    assert re.fullmatch(r"[0-9a-f]{64}", EFA_INSTALLER_SHA256)
    assert EFA_INSTALLER_URL == f"https://efa-installer.amazonaws.com/aws-efa-installer-{EFA_INSTALLER_VERSION}.tar.gz"
    tarball = f"aws-efa-installer-{EFA_INSTALLER_VERSION}.tar.gz"
    assert f"curl -fsSL -o {tarball} {EFA_INSTALLER_URL}" in script
    assert f'echo "{EFA_INSTALLER_SHA256}  {tarball}" > {tarball}.sha256' in script
    assert script.index(f"sha256sum -c {tarball}.sha256") < script.index("tar -xf") < script.index("./efa_installer")


def test_device_check_counts_the_plans_efa_interfaces(groups):
    p5 = groups["gpu"]
    assert p5.efa_interfaces == 32
    assert '[ "$found" -ge 32 ] && exit 0' in efa_install_script(p5)


# --- the script, run ------------------------------------------------------------------------------------------------

def fake_installer(tmp_path: Path) -> tuple[Path, str]:
    """A tarball laid out like AWS's (aws-efa-installer/efa_installer.sh); its installer records its arguments and
    creates $FAKE_DEVICES uverbs devices."""
    src = tmp_path / "src" / "aws-efa-installer"
    src.mkdir(parents=True)
    installer = src / "efa_installer.sh"
    installer.write_text('#!/bin/bash\necho "$@" > "$FAKE_LOG"\n'
                         'for i in $(seq 1 "$FAKE_DEVICES"); do touch "$FAKE_DEVDIR/uverbs$((i - 1))"; done\n'
                         'exit "${FAKE_RC:-0}"\n')
    installer.chmod(0o755)
    tarball = tmp_path / "installer.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src, arcname="aws-efa-installer")
    return tarball, hashlib.sha256(tarball.read_bytes()).hexdigest()


# Fakes for what the scripts call on a node. Each records its arguments in $FAKE_CALLS and fails when
# FAKE_<TOOL>_RC says so; `shutdown` must be a fake above all (the tests may run as root).
FAKES = {
    "dnf": 'exit "${FAKE_DNF_RC:-0}"',
    "mount": 'exit "${FAKE_MOUNT_RC:-0}"',
    "iptables": 'exit "${FAKE_IPTABLES_RC:-0}"',
    "iptables-save": 'echo "-A $IMDS_RULE"',
    "systemctl": "exit 0",
    "sleep": "exit 0",
    "shutdown": "exit 0",
    # IMDS answers on the token and meta-data paths; `-o FILE` downloads the fake installer.
    "curl": 'for a in "$@"; do url="$a"; done\n'
            'case "$url" in\n  */api/token) echo -n TOKEN; exit 0 ;;\n'
            '  */meta-data/instance-id) echo -n i-0123456789abcdef0; exit 0 ;;\n'
            '  */meta-data/ami-id) echo -n ami-0fedcba9876543210; exit 0 ;;\n'
            '  */meta-data/placement/availability-zone) echo -n us-east-1c; exit 0 ;;\nesac\n'
            'while [ $# -gt 0 ]; do\n  [ "$1" = -o ] && { cp "$FAKE_TARBALL" "$2"; exit 0; }\n  shift\ndone\nexit 22',
}


def run(script: str, tmp_path: Path, tarball: Path | None = None, devices: int = 0, installer_rc: int = 0,
        **fails: int):
    """Run `script` under bash with the fakes first on PATH; `fails` sets FAKE_<TOOL>_RC (e.g. mount=32)."""
    bin_dir, dev_dir = tmp_path / "bin", tmp_path / "dev"
    bin_dir.mkdir(exist_ok=True)
    dev_dir.mkdir(exist_ok=True)
    for tool, body in FAKES.items():
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/bash\necho "{tool} $*" >> "$FAKE_CALLS"\n{body}\n')
        fake.chmod(0o755)
    (tmp_path / "work").mkdir(exist_ok=True)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path / "work"), "IMDS_RULE": IMDS_BLOCK_RULE,
           "FAKE_TARBALL": str(tarball), "FAKE_LOG": str(tmp_path / "installer-args"), "FAKE_DEVDIR": str(dev_dir),
           "FAKE_DEVICES": str(devices), "FAKE_RC": str(installer_rc), "FAKE_CALLS": str(tmp_path / "calls"),
           **{f"FAKE_{tool.upper()}_RC": str(rc) for tool, rc in fails.items()}}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def calls(tmp_path: Path, tool: str) -> list[str]:
    log = tmp_path / "calls"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.split(" ", 1)[0] == tool]


def left(proc, tmp_path: Path, why: str) -> bool:
    """The script said why on stderr, shut the node down and failed."""
    return (proc.returncode != 0 and calls(tmp_path, "shutdown") == ["shutdown -h now"]
            and f"rackform: {why}; shutting this node down so that AWS Batch replaces it" in proc.stderr)


def test_script_installs_and_passes_when_every_device_appears(groups, tmp_path):
    tarball, digest = fake_installer(tmp_path)
    g = groups["gpu"]
    proc = run(efa_install_script(g, sha256=digest, device_dir=str(tmp_path / "dev")), tmp_path, tarball,
               devices=g.efa_interfaces)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "installer-args").read_text().split() == ["-y", "-g"]
    assert calls(tmp_path, "shutdown") == []


def test_script_refuses_an_installer_whose_checksum_is_not_the_published_one(groups, tmp_path):
    tarball, _ = fake_installer(tmp_path)
    g = groups["trainium"]
    proc = run(efa_install_script(g, device_dir=str(tmp_path / "dev")), tmp_path, tarball, devices=g.efa_interfaces)
    assert left(proc, tmp_path, f"aws-efa-installer-{EFA_INSTALLER_VERSION}.tar.gz is missing or its SHA256 is not "
                                "the published one; EFA not installed")
    assert not (tmp_path / "installer-args").exists(), "the installer ran although its checksum did not match"


def test_node_leaves_when_a_device_is_missing(groups, tmp_path):
    tarball, digest = fake_installer(tmp_path)
    g = groups["trainium"]
    proc = run(efa_install_script(g, sha256=digest, device_dir=str(tmp_path / "dev"), device_wait_s=1),
               tmp_path, tarball, devices=g.efa_interfaces - 1)
    assert left(proc, tmp_path, f"expected {g.efa_interfaces} EFA devices ({tmp_path / 'dev'}/uverbs*), found "
                                f"{g.efa_interfaces - 1}")


def test_node_leaves_when_the_installer_fails(groups, tmp_path):
    tarball, digest = fake_installer(tmp_path)
    g = groups["graviton"]
    proc = run(efa_install_script(g, sha256=digest, device_dir=str(tmp_path / "dev")), tmp_path, tarball,
               devices=g.efa_interfaces, installer_rc=1)
    assert left(proc, tmp_path, "efa_installer.sh -y --minimal failed")


# --- the FSx mount, run ---------------------------------------------------------------------------------------------

def lustre_at(tmp_path: Path) -> LustreMount:
    return LustreMount(dns_name=LUSTRE.dns_name, mount_name=LUSTRE.mount_name, mount_path=str(tmp_path / "fsx"))


def test_lustre_mount_passes_when_it_mounts(tmp_path):
    proc = run(lustre_mount_script(lustre_at(tmp_path)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert calls(tmp_path, "mount") == [f"mount -t lustre -o relatime,flock {LUSTRE.dns_name}@tcp:/"
                                        f"{LUSTRE.mount_name} {tmp_path / 'fsx'}"]
    assert calls(tmp_path, "shutdown") == []


def test_node_leaves_when_the_file_system_never_mounts(tmp_path):
    proc = run(lustre_mount_script(lustre_at(tmp_path), mount_attempts=3), tmp_path, mount=32)
    assert len(calls(tmp_path, "mount")) == 3
    assert left(proc, tmp_path, f"could not mount FSx for Lustre at {tmp_path / 'fsx'}")


def test_node_leaves_when_the_lustre_client_cannot_be_installed(tmp_path):
    proc = run(lustre_mount_script(lustre_at(tmp_path), install_attempts=2), tmp_path, dnf=1)
    assert len(calls(tmp_path, "dnf")) == 2 and calls(tmp_path, "mount") == []
    assert left(proc, tmp_path, "could not install lustre-client")


# --- the node's own setup, run --------------------------------------------------------------------------------------

def test_node_setup_blocks_instance_metadata_for_containers_and_writes_the_identity(tmp_path):
    root = tmp_path / "root"
    (root / IPTABLES_RULES.lstrip("/")).parent.mkdir(parents=True)  # /etc/sysconfig, as on every AL2023 host
    proc = run(node_setup_script(root=str(root)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    # awsvpc tasks (Batch's multi-node jobs): the agent's own switch, in the file it reads at start
    assert (root / ECS_CONFIG.lstrip("/")).read_text().splitlines() == ["ECS_AWSVPC_BLOCK_IMDS=true"]
    # bridge-mode containers: the ECS guide's DOCKER-USER rule, saved where iptables-services restores it at boot
    assert f"iptables --insert {IMDS_BLOCK_RULE}" in calls(tmp_path, "iptables")
    assert IMDS_BLOCK_RULE == "DOCKER-USER 1 --in-interface docker+ --destination 169.254.169.254/32 --jump DROP"
    assert (root / IPTABLES_RULES.lstrip("/")).read_text() == f"-A {IMDS_BLOCK_RULE}\n"
    assert calls(tmp_path, "systemctl") == ["systemctl enable --now iptables"]
    # what jobs used to ask instance metadata for, read by the runner from the file mounted into every job
    assert node_identity(str(root / NODE_IDENTITY_FILE.lstrip("/"))) == {
        "instance_id": "i-0123456789abcdef0", "ami_id": "ami-0fedcba9876543210", "availability_zone": "us-east-1c"}
    assert calls(tmp_path, "shutdown") == []


def test_node_leaves_when_the_metadata_block_cannot_be_set(tmp_path):
    proc = run(node_setup_script(root=str(tmp_path / "root")), tmp_path, iptables=4)
    assert left(proc, tmp_path, f"could not insert the iptables rule {IMDS_BLOCK_RULE}")


def test_node_leaves_when_the_block_cannot_be_kept_across_reboots(tmp_path):
    proc = run(node_setup_script(root=str(tmp_path / "root"), attempts=2), tmp_path, dnf=1)
    assert left(proc, tmp_path, "could not install iptables-services to keep the metadata block across reboots")


def test_identity_without_the_file_or_with_empty_fields_says_nothing(tmp_path):
    assert node_identity(str(tmp_path / "missing")) == {}
    partial = tmp_path / "node"
    partial.write_text("instance_id=i-1\nami_id=\navailability_zone\nother=x\n")
    assert node_identity(str(partial)) == {"instance_id": "i-1"}


# --- the AMI each tier boots --------------------------------------------------------------------------------------

# The ECS-optimized AL2023 variants and the architecture each is built for: plain x86_64, arm64, GPU (x86_64 only)
# and Neuron (x86_64 only). Parameter names as AWS's own release tooling reads them
# (https://github.com/aws/amazon-ecs-ami, generate-release-notes.sh) and the ECS guide lists them
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/retrieve-ecs-optimized_AMI.html); there is no arm64
# GPU or Neuron ECS AMI (al2023gpu.pkr.hcl and al2023neu.pkr.hcl build x86_64 images only).
ECS_AL2023 = "/aws/service/ecs/optimized-ami/amazon-linux-2023"
DOCUMENTED = {
    "cpu": (f"{ECS_AL2023}/recommended/image_id", "x86_64", "ECS_AL2023"),
    "graviton": (f"{ECS_AL2023}/arm64/recommended/image_id", "arm64", "ECS_AL2023"),
    "gpu": (f"{ECS_AL2023}/gpu/recommended/image_id", "x86_64", "ECS_AL2023_NVIDIA"),
    "trainium": (f"{ECS_AL2023}/neuron/recommended/image_id", "x86_64", "ECS_AL2023"),
}


@pytest.mark.parametrize("tier", TIERS)
def test_each_tier_boots_the_documented_ecs_ami(tier):
    parameter, _, image_type = DOCUMENTED[tier]
    assert ECS_AL2023_AMI[tier] == parameter and BATCH_IMAGE_TYPE[tier] == image_type


def test_every_catalog_type_has_an_ecs_ami_of_its_architecture():
    wrong = sorted(f"{name} ({it.architecture}, {it.tier}: {DOCUMENTED[it.tier][1]} AMI)"
                   for name, it in load_catalog().instance_types.items() if it.architecture != DOCUMENTED[it.tier][1])
    assert wrong == []


# --- the NVMe instance store, run: the disks told from EBS volumes by their model, whatever their device numbers;
# several striped into one RAID0 array, one formatted as it is; a second run keeps what the first made; a node
# whose disks do not all appear, or that cannot build or format them, leaves. mdadm, mkfs.xfs, blkid and mountpoint
# are fakes (STORE_FAKES) that record their calls; realpath, sort, grep, mkdir and chmod are the real ones.

STORE_TYPES = {"two": "g6.8xlarge", "one": "g5.xlarge", "eight": "p5.48xlarge", "none": "m7g.xlarge"}
EBS, STORE = "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0", "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS"

# What the instance store's part calls besides FAKES. mkfs.xfs writes the file system's device where blkid -L
# finds it, as a real file system's label would be found on the next run.
STORE_FAKES = {
    "mountpoint": 'exit "${FAKE_MOUNTPOINT_RC:-1}"',
    "blkid": '[ -s "$FAKE_LABELLED" ] && cat "$FAKE_LABELLED"; exit 0',
    "mdadm": 'case "$1" in --detail) echo "ARRAY /dev/md/rackform-scratch metadata=1.2 name=rackform-scratch";; '
             'esac\nexit "${FAKE_MDADM_RC:-0}"',
    "mkfs.xfs": '[ "${FAKE_MKFS_RC:-0}" = 0 ] || exit "$FAKE_MKFS_RC"\nfor a in "$@"; do dev="$a"; done\n'
                'echo "$dev" > "$FAKE_LABELLED"',
}


@pytest.fixture(scope="module")
def store_groups() -> dict[str, NodeGroupPlan]:
    spec = Spec.model_validate({
        "name": "nv", "region": "us-east-1", "availability_zone": "us-east-1c",
        "racks": [{"name": "r", "node_groups": [
            *({"name": key, "instance_type": t, "count": 1} for key, t in STORE_TYPES.items()),
            {"name": "off", "instance_type": "g6.8xlarge", "count": 1, "instance_store": {"enabled": False}}]}]})
    return {g.name: g for g in build_plan(spec, load_catalog()).node_groups()}


def by_id(tmp_path: Path, store_devices: list[str], ebs_device: str = "nvme0n1") -> Path:
    """A /dev/disk/by-id as udev lays it out on Nitro: each disk under its model and serial (and again with a
    namespace suffix), the EBS root volume and its partition beside the instance store disks."""
    dev, links = tmp_path / "dev", tmp_path / "by-id"
    dev.mkdir(exist_ok=True)
    links.mkdir()
    for name in [ebs_device, f"{ebs_device}p1", *store_devices]:
        (dev / name).touch()
    (links / EBS).symlink_to(dev / ebs_device)
    (links / f"{EBS}-part1").symlink_to(dev / f"{ebs_device}p1")
    for i, name in enumerate(store_devices):
        (links / f"{STORE}{i:04d}").symlink_to(dev / name)
        (links / f"{STORE}{i:04d}_1").symlink_to(dev / name)
    return links


def run_store(script: str, tmp_path: Path, **fails: int):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool, body in STORE_FAKES.items():
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/bash\necho "{tool} $*" >> "$FAKE_CALLS"\n{body}\n')
        fake.chmod(0o755)
    script = script.replace("#!/bin/bash\n", f"#!/bin/bash\nexport FAKE_LABELLED={tmp_path / 'labelled'}\n", 1)
    return run(script, tmp_path, **fails)


def script_for(group: NodeGroupPlan, tmp_path: Path, links: Path) -> str:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    return instance_store_script(group, root=str(root), by_id=str(links), attempts=2, device_wait_s=2)


def fstab(tmp_path: Path) -> list[str]:
    return (tmp_path / "root" / "etc" / "fstab").read_text().splitlines()


def test_several_disks_become_one_raid0_of_the_instance_store_disks_only(store_groups, tmp_path):
    # The instance store enumerated after the EBS root and out of order: names do not say which is which.
    links = by_id(tmp_path, ["nvme3n1", "nvme1n1"], ebs_device="nvme2n1")
    mount = tmp_path / "root" / "scratch"
    proc = run_store(script_for(store_groups["two"], tmp_path, links), tmp_path)
    assert proc.returncode == 0, proc.stderr
    dev = tmp_path / "dev"
    assert calls(tmp_path, "mdadm") == [
        f"mdadm --create {INSTANCE_STORE_ARRAY} --run --level=0 --name=rackform-scratch --raid-devices=2 "
        f"{dev / 'nvme1n1'} {dev / 'nvme3n1'}", "mdadm --detail --scan"]
    assert (tmp_path / "root" / "etc" / "mdadm.conf").read_text().startswith("ARRAY /dev/md/rackform-scratch")
    assert calls(tmp_path, "dnf") == ["dnf install -y mdadm"]
    assert calls(tmp_path, "mkfs.xfs") == [f"mkfs.xfs -K -l su=8b -L {INSTANCE_STORE_LABEL} {INSTANCE_STORE_ARRAY}"]
    assert calls(tmp_path, "mount") == [f"mount -t xfs -o defaults,noatime {INSTANCE_STORE_ARRAY} {mount}"]
    # mounted again at boot by label (the path as the host knows it), and a boot without it still comes up
    assert fstab(tmp_path) == [f"LABEL={INSTANCE_STORE_LABEL} /scratch xfs defaults,noatime,nofail 0 2"]
    assert mount.is_dir() and mount.stat().st_mode & 0o7777 == 0o1777
    assert calls(tmp_path, "shutdown") == []


def test_one_disk_is_formatted_as_it_is_without_raid(store_groups, tmp_path):
    links = by_id(tmp_path, ["nvme1n1"])
    proc = run_store(script_for(store_groups["one"], tmp_path, links), tmp_path)
    assert proc.returncode == 0, proc.stderr
    disk = tmp_path / "dev" / "nvme1n1"
    assert calls(tmp_path, "mdadm") == [] and calls(tmp_path, "dnf") == []
    assert calls(tmp_path, "mkfs.xfs") == [f"mkfs.xfs -K -l su=8b -L {INSTANCE_STORE_LABEL} {disk}"]
    assert calls(tmp_path, "mount") == [f"mount -t xfs -o defaults,noatime {disk} {tmp_path / 'root' / 'scratch'}"]


def test_eight_disks_of_a_p5_are_all_striped(store_groups, tmp_path):
    devices = [f"nvme{i}n1" for i in range(1, 9)]
    proc = run_store(script_for(store_groups["eight"], tmp_path, by_id(tmp_path, devices)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    [create, _] = calls(tmp_path, "mdadm")
    assert "--raid-devices=8 " in create and sorted(create.split()[-8:]) == sorted(
        str(tmp_path / "dev" / d) for d in devices)


def test_a_second_run_keeps_the_array_and_file_system_the_first_made(store_groups, tmp_path):
    script = script_for(store_groups["two"], tmp_path, by_id(tmp_path, ["nvme1n1", "nvme2n1"]))
    assert run_store(script, tmp_path).returncode == 0
    second = run_store(script, tmp_path)  # not mounted (mountpoint says no), but the labelled file system is there
    assert second.returncode == 0, second.stderr
    assert len(calls(tmp_path, "mkfs.xfs")) == 1 and len([c for c in calls(tmp_path, "mdadm") if "--create" in c]) == 1
    assert len(calls(tmp_path, "mount")) == 2 and len(fstab(tmp_path)) == 1
    mounted = run_store(script, tmp_path, mountpoint=0)  # already mounted: nothing to do
    assert mounted.returncode == 0 and len(calls(tmp_path, "mount")) == 2


@pytest.mark.parametrize("present", [[], ["nvme1n1"]])
def test_node_leaves_when_its_disks_do_not_all_appear(store_groups, tmp_path, present):
    # EBS volumes are NVMe devices too: the root volume alone is no instance store.
    proc = run_store(script_for(store_groups["two"], tmp_path, by_id(tmp_path, present)), tmp_path)
    assert left(proc, tmp_path, f"expected 2 NVMe instance store disks ({tmp_path / 'by-id'}/"
                                f"nvme-Amazon_EC2_NVMe_Instance_Storage_*), found {len(present)}")
    assert calls(tmp_path, "mdadm") == [] and calls(tmp_path, "mkfs.xfs") == []


def test_node_leaves_when_the_array_cannot_be_built(store_groups, tmp_path):
    proc = run_store(script_for(store_groups["two"], tmp_path, by_id(tmp_path, ["nvme1n1", "nvme2n1"])), tmp_path,
                     mdadm=1)
    dev = tmp_path / "dev"
    assert left(proc, tmp_path, f"could not build a RAID0 array of 2 instance store disks: {dev / 'nvme1n1'} "
                                f"{dev / 'nvme2n1'}")
    assert calls(tmp_path, "mkfs.xfs") == [] and calls(tmp_path, "mount") == []


def test_node_leaves_when_the_disk_cannot_be_formatted(store_groups, tmp_path):
    proc = run_store(script_for(store_groups["one"], tmp_path, by_id(tmp_path, ["nvme1n1"])), tmp_path, mkfs=1)
    assert left(proc, tmp_path, f"could not make an XFS file system on {tmp_path / 'dev' / 'nvme1n1'}")
    assert calls(tmp_path, "mount") == []


def test_the_part_runs_after_the_node_setup_and_before_efa_where_the_group_uses_the_store(store_groups):
    setup, store, efa, _telemetry = parts(node_user_data(store_groups["eight"], None))
    assert "ECS_AWSVPC_BLOCK_IMDS=true" in setup and "./efa_installer.sh" in efa
    assert store == instance_store_script(store_groups["eight"])
    assert "8 disks (p5.48xlarge), at /scratch" in store
    for g in ("none", "off"):
        assert not any("Instance_Storage" in p for p in parts(node_user_data(store_groups[g], None))), g


def test_a_group_without_the_store_has_no_script(store_groups):
    with pytest.raises(ValueError, match="node group off uses no instance store"):
        instance_store_script(store_groups["off"])
