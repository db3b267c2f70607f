"""Node user data: the EFA software per tier (pinned, checksum-verified, devices counted before the ECS agent starts),
the FSx mount, the MIME archive Batch merges, and the ECS AMI each tier boots.

The generated EFA script is also run for real under bash, with `dnf` and `curl` replaced by fakes on PATH and a fake
installer tarball, so the checksum gate and the device count are exercised, not only read.
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
    EFA_INSTALLER_FLAGS,
    EFA_INSTALLER_SHA256,
    EFA_INSTALLER_URL,
    EFA_INSTALLER_VERSION,
    LustreMount,
    efa_install_script,
    node_user_data,
)
from rackform.catalog import TIERS, load_catalog
from rackform.plan import BATCH_IMAGE_TYPE, ECS_AL2023_AMI, NodeGroupPlan, build_plan
from rackform.spec import Spec

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
    return [c.split("\n\n", 1)[1] for c in chunks]


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
    (script,) = parts(node_user_data(g, None))
    assert installer_line(script).startswith(f"if ! ./efa_installer.sh {flags};")


def test_non_efa_group_gets_no_installer(groups):
    plain = groups["plain"]
    assert plain.efa_interfaces == 0
    assert node_user_data(plain, None) is None
    (mount,) = parts(node_user_data(plain, LUSTRE))
    assert "efa" not in mount.lower() and "mount -t lustre" in mount


def test_efa_comes_before_the_lustre_mount(groups):
    efa, mount = parts(node_user_data(groups["gpu"], LUSTRE))
    assert "./efa_installer.sh" in efa and "mount -t lustre" in mount


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


def run(script: str, tmp_path: Path, tarball: Path, devices: int, installer_rc: int = 0):
    bin_dir, dev_dir = tmp_path / "bin", tmp_path / "dev"
    bin_dir.mkdir(exist_ok=True)
    dev_dir.mkdir(exist_ok=True)
    (bin_dir / "dnf").write_text("#!/bin/bash\nexit 0\n")
    (bin_dir / "curl").write_text('#!/bin/bash\nwhile [ $# -gt 0 ]; do\n'
                                  '  [ "$1" = -o ] && { cp "$FAKE_TARBALL" "$2"; exit 0; }\n  shift\ndone\nexit 22\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (tmp_path / "work").mkdir(exist_ok=True)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path / "work"),
           "FAKE_TARBALL": str(tarball), "FAKE_LOG": str(tmp_path / "installer-args"), "FAKE_DEVDIR": str(dev_dir),
           "FAKE_DEVICES": str(devices), "FAKE_RC": str(installer_rc)}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_script_installs_and_passes_when_every_device_appears(groups, tmp_path):
    tarball, digest = fake_installer(tmp_path)
    g = groups["gpu"]
    proc = run(efa_install_script(g, sha256=digest, device_dir=str(tmp_path / "dev")), tmp_path, tarball,
               devices=g.efa_interfaces)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "installer-args").read_text().split() == ["-y", "-g"]


def test_script_refuses_an_installer_whose_checksum_is_not_the_published_one(groups, tmp_path):
    tarball, _ = fake_installer(tmp_path)
    g = groups["trainium"]
    proc = run(efa_install_script(g, device_dir=str(tmp_path / "dev")), tmp_path, tarball, devices=g.efa_interfaces)
    assert proc.returncode != 0
    assert "SHA256 is not the published one" in proc.stderr
    assert not (tmp_path / "installer-args").exists(), "the installer ran although its checksum did not match"


def test_script_fails_loudly_when_a_device_is_missing(groups, tmp_path):
    tarball, digest = fake_installer(tmp_path)
    g = groups["trainium"]
    proc = run(efa_install_script(g, sha256=digest, device_dir=str(tmp_path / "dev"), device_wait_s=1),
               tmp_path, tarball, devices=g.efa_interfaces - 1)
    assert proc.returncode != 0
    assert f"expected {g.efa_interfaces} EFA devices ({tmp_path / 'dev'}/uverbs*), found {g.efa_interfaces - 1}" \
        in proc.stderr


def test_script_fails_when_the_installer_fails(groups, tmp_path):
    tarball, digest = fake_installer(tmp_path)
    g = groups["graviton"]
    proc = run(efa_install_script(g, sha256=digest, device_dir=str(tmp_path / "dev")), tmp_path, tarball,
               devices=g.efa_interfaces, installer_rc=1)
    assert proc.returncode != 0 and "efa_installer.sh -y --minimal failed" in proc.stderr


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
