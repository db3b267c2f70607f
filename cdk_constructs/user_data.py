"""Boot-time scripts for Batch nodes.

AWS Batch merges launch-template user data with its own, so it must be a MIME multi-part archive; a bare shell
script leaves the compute environment INVALID ("Launch Template UserData is not MIME multipart format").
"""

from __future__ import annotations

from dataclasses import dataclass

MIME_BOUNDARY = "==RACKFORM=="


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
