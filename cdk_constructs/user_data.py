"""Boot-time scripts for Batch nodes.

AWS Batch merges launch-template user data with its own, so it must be a MIME multi-part archive; a bare shell
script leaves the compute environment INVALID ("Launch Template UserData is not MIME multipart format").

Ordering: each part is a `text/x-shellscript` that cloud-init runs in `cloud-final.service`, and the ECS agent's
unit is ordered `After=cloud-final.service`
(https://github.com/aws/amazon-ecs-agent/blob/master/packaging/amazon-linux-ami-integrated/ecs.service), so every
part has finished before the agent starts and Batch can place a job on the node. Never restart `ecs` from user data:
the restart would wait on cloud-final, which waits on the script.
"""

from __future__ import annotations

from dataclasses import dataclass

from rackform.catalog import Tier
from rackform.plan import NodeGroupPlan

MIME_BOUNDARY = "==RACKFORM=="

# The EFA installer the hosts run, and the SHA256 AWS publishes for it in "Verify the EFA installer using a checksum"
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-verify.html); 1.47.0 is also the version the EC2 User
# Guide's "Get started with EFA and NCCL for ML workloads" installs. To bump: take a version and its SHA256 from that
# table together and change both here; workloads/docker/gpu.Dockerfile must carry the same pair
# (tests/test_dockerfiles.py checks it).
EFA_INSTALLER_VERSION = "1.47.0"
EFA_INSTALLER_SHA256 = "2df4201e046833c7dc8160907bee7f52b76ff80ed147376a2d0ed8a0dd66b2db"
EFA_INSTALLER_URL = f"https://efa-installer.amazonaws.com/aws-efa-installer-{EFA_INSTALLER_VERSION}.tar.gz"

# What each tier's host needs from the installer. None of the ECS-optimized AL2023 AMIs (plain, arm64, GPU, Neuron)
# installs it: their Packer provisioners add the NVIDIA driver or the Neuron driver and nothing of EFA
# (https://github.com/aws/amazon-ecs-ami, al2023.pkr.hcl and scripts/). The containers bring their own libfabric
# (workloads/docker/), so a host needs the EFA kernel module and rdma-core, which create /dev/infiniband/uverbsN.
#   gpu       `-g`: the GPUDirect RDMA option of AWS's GPU guides and samples (the EFA-and-NCCL guide's install line
#             through EFA 1.1x; awsome-distributed-training still passes it with 1.47.0). The full install also
#             puts libfabric and aws-ofi-nccl on the host, which the current EFA-and-NCCL guide installs.
#   trainium  what AWS's Batch sample for Trainium runs in its user data: `efa_installer.sh -y`
#             (https://github.com/aws-neuron/aws-neuron-samples, torch-neuronx/training/aws-batch/all-reduce).
#   graviton, cpu  `--minimal`: the EFA module and rdma-core without libfabric and Open MPI ("Install the EFA
#             software", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html), which is how AWS builds
#             its own AL2023 container hosts (amazon-eks-ami, templates/al2023/provisioners/install-efa.sh).
EFA_INSTALLER_FLAGS: dict[Tier, tuple[str, ...]] = {
    "gpu": ("-y", "-g"),
    "trainium": ("-y",),
    "graviton": ("-y", "--minimal"),
    "cpu": ("-y", "--minimal"),
}


@dataclass(frozen=True)
class LustreMount:
    """What a node needs to mount FSx for Lustre; dns_name and mount_name are usually deploy-time tokens."""

    dns_name: str
    mount_name: str
    mount_path: str


def mime_multipart(*shell_scripts: str) -> str:
    parts = "".join(f'--{MIME_BOUNDARY}\nContent-Type: text/x-shellscript; charset="us-ascii"\n\n{script}\n'
                    for script in shell_scripts)
    return (f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{MIME_BOUNDARY}"\n\n'
            f"{parts}--{MIME_BOUNDARY}--\n")


def node_user_data(group: NodeGroupPlan, lustre: LustreMount | None) -> str | None:
    """The group's user data: the EFA software first (its devices must exist before any job), then the FSx mount;
    None for a group that needs neither."""
    scripts = [efa_install_script(group)] if group.efa_interfaces else []
    if lustre is not None:
        scripts.append(lustre_mount_script(lustre))
    return mime_multipart(*scripts) if scripts else None


def efa_install_script(group: NodeGroupPlan, *, sha256: str = EFA_INSTALLER_SHA256,
                       device_dir: str = "/dev/infiniband", attempts: int = 10, device_wait_s: int = 60) -> str:
    """Download the pinned EFA installer, refuse it unless its SHA256 is the published one, run it with the tier's
    flags, then wait for one uverbs device per EFA interface of the plan.

    A node that ends without them exits non-zero (visible in its console output and `cloud-init status`). The ECS
    agent still starts (its ordering after cloud-final is not a dependency on it succeeding), but every EFA job
    definition maps /dev/infiniband/uverbs0..N-1 into the container, so a job placed there fails at container start
    naming the missing device, instead of silently running over TCP.
    """
    tarball = EFA_INSTALLER_URL.rsplit("/", 1)[1]
    flags = " ".join(EFA_INSTALLER_FLAGS[group.tier])
    want = group.efa_interfaces
    return f"""#!/bin/bash
# rackform: EFA {EFA_INSTALLER_VERSION} for {want} EFA interfaces ({group.instance_type}, {group.tier})
set -u
cd "$(mktemp -d)" || exit 1
for attempt in $(seq 1 {attempts}); do
  dnf install -y tar && curl -fsSL -o {tarball} {EFA_INSTALLER_URL} && break
  sleep 10
done
echo "{sha256}  {tarball}" > {tarball}.sha256
if ! sha256sum -c {tarball}.sha256; then
  echo "rackform: {tarball} is missing or its SHA256 is not the published one; EFA not installed" >&2
  exit 1
fi
tar -xf {tarball} && cd aws-efa-installer || exit 1
if ! ./efa_installer.sh {flags}; then
  echo "rackform: efa_installer.sh {flags} failed" >&2
  exit 1
fi
for second in $(seq 1 {device_wait_s}); do
  found=$(find {device_dir} -maxdepth 1 -name 'uverbs*' 2>/dev/null | wc -l)
  [ "$found" -ge {want} ] && exit 0
  sleep 1
done
echo "rackform: expected {want} EFA devices ({device_dir}/uverbs*), found $found" >&2
exit 1"""


def lustre_mount_script(mount: LustreMount, *, install_attempts: int = 10, mount_attempts: int = 30) -> str:
    """Install the AL2023 Lustre client and mount FSx, retrying both.

    cloud-init runs user data before the ECS agent starts (which is why ecs.config can be written from it), so
    jobs do not land on a node before its file system is mounted. Package mirrors flap at boot, and hundreds of
    nodes mounting at once can overload the file system's management server: both steps retry, mounts with
    jitter so nodes do not retry in lockstep. A node that never mounts exits non-zero, which shows in its console
    log and cloud-init status.
    """
    return f"""#!/bin/bash
set -u
for attempt in $(seq 1 {install_attempts}); do
  dnf install -y lustre-client && break
  sleep 10
done
mkdir -p {mount.mount_path}
for attempt in $(seq 1 {mount_attempts}); do
  mount -t lustre -o relatime,flock {mount.dns_name}@tcp:/{mount.mount_name} {mount.mount_path} && exit 0
  sleep $((5 + RANDOM % 25))
done
echo "rackform: could not mount FSx for Lustre at {mount.mount_path}" >&2
exit 1"""
