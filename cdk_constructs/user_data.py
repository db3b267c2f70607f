"""Boot-time scripts for Batch nodes.

AWS Batch merges launch-template user data with its own, so it must be a MIME multi-part archive. Every part has
finished before the ECS agent starts (the agent's unit is ordered after cloud-final), and a part that fails logs why
and shuts the node down, so Batch replaces it and it never takes a job.
Why: docs/decisions/0005-node-user-data-and-self-shutdown.md
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rackform.spec.models import Tier
from rackform.plan.models import NodeGroupPlan
from workloads.contract import NODE_IDENTITY_FILE
from workloads.queue_depth import NAMESPACE

MIME_BOUNDARY = "==RACKFORM=="

# The EFA installer the hosts run, and the SHA256 AWS publishes for it in "Verify the EFA installer using a checksum"
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-verify.html); 1.47.0 is also the version the EC2 User
# Guide's "Get started with EFA and NCCL for ML workloads" installs. To bump: take a version and its SHA256 from that
# table together and change both here; workloads/docker/gpu.Dockerfile must carry the same pair
# (tests/workloads/test_dockerfiles.py checks it).
EFA_INSTALLER_VERSION = "1.47.0"
EFA_INSTALLER_SHA256 = "2df4201e046833c7dc8160907bee7f52b76ff80ed147376a2d0ed8a0dd66b2db"
EFA_INSTALLER_URL = f"https://efa-installer.amazonaws.com/aws-efa-installer-{EFA_INSTALLER_VERSION}.tar.gz"

# What each tier's host needs from the installer: the EFA kernel module and rdma-core (the containers bring their own
# libfabric), with the flags AWS's own guides and samples use per tier.
# Why: docs/decisions/0006-efa-installer-per-tier.md
EFA_INSTALLER_FLAGS: dict[Tier, tuple[str, ...]] = {
    "gpu": ("-y", "-g"),
    "trainium": ("-y",),
    "graviton": ("-y", "--minimal"),
    "cpu": ("-y", "--minimal"),
}


# Every part's way out of a failed setup (docs/decisions/0005-node-user-data-and-self-shutdown.md). systemd's
# `shutdown -h now` queues the halt and returns, so the part still exits non-zero and cloud-init records it as failed.
LEAVE = """leave() {
  echo "rackform: $*; shutting this node down so that AWS Batch replaces it" >&2
  shutdown -h now
  exit 1
}"""

# Containers must not act as the node: ECS_AWSVPC_BLOCK_IMDS for awsvpc tasks, a saved DOCKER-USER rule for bridge
# containers; host-mode containers stay reachable, hence the node role's few permissions.
# Why: docs/decisions/0007-containers-blocked-from-imds.md
IMDS_ADDRESS = "169.254.169.254"
IMDS_BLOCK_RULE = f"DOCKER-USER 1 --in-interface docker+ --destination {IMDS_ADDRESS}/32 --jump DROP"
ECS_CONFIG = "/etc/ecs/ecs.config"
IPTABLES_RULES = "/etc/sysconfig/iptables"  # what iptables-services restores at boot


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


def node_user_data(group: NodeGroupPlan, lustre: LustreMount | None, *, xid_log_group: str | None = None) -> str:
    """The group's user data: the node's own setup (containers kept from the node role, its identity written for
    jobs), the instance store's scratch volume where the group uses it, the EFA software where the group has EFA (its
    devices must exist before any job), then the FSx mount, then the node's telemetry."""
    scripts = [node_setup_script()]
    if group.instance_store.mount_path is not None:
        scripts.append(instance_store_script(group))
    if group.efa_interfaces:
        scripts.append(efa_install_script(group))
    if lustre is not None:
        scripts.append(lustre_mount_script(lustre))
    scripts.append(telemetry_script(group, xid_log_group=xid_log_group))
    return mime_multipart(*scripts)


# --- telemetry: what a rack owner watches (cdk_constructs/telemetry.py draws and alarms on it) -------------------
# The CloudWatch agent (Classic configuration) publishes the node's metrics under this namespace, the only one the
# node role may put metrics in; each metric carries the rack's and the node group's resource names (Rack, NodeGroup)
# and is also rolled up to those two alone, which the rack's alarms read. The queue-depth function puts its figures
# there too; its module, a Lambda asset alone, holds the name.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Configuration-File-Details.html
TELEMETRY_NAMESPACE = NAMESPACE
AGENT_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
# The agent's nvidia_gpu section: nvidia-smi's figures, as nvidia_smi_<measurement>
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-NVIDIA-GPU.html). It has no ECC
# or XID figure: those the health step checks (workloads/health.py), and a failure feeds the repair loop.
NVIDIA_GPU_MEASUREMENTS = ("utilization_gpu", "utilization_memory", "memory_used", "temperature_gpu", "power_draw")
# The agent's efa section: the EFA devices' hardware counters, as deltas
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-EFA.html).
EFA_ERROR_MEASUREMENTS = ("efa_rdma_read_wr_err", "efa_rdma_write_wr_err", "efa_unresponsive_remote_events",
                          "efa_impaired_remote_conn_events")
EFA_MEASUREMENTS = ("efa_tx_bytes", "efa_rx_bytes", "efa_retrans_pkts", "efa_rx_dropped", *EFA_ERROR_MEASUREMENTS)
# neuron-monitor streams the Neuron devices' figures as JSON; the Neuron tools' companion script puts them in
# CloudWatch (https://awsdocs-neuron.readthedocs-hosted.com/en/latest/tools/neuron-sys-tools/neuron-monitor-user-guide.html).
NEURON_MONITOR_CLOUDWATCH = "/opt/aws/neuron/bin/neuron-monitor-cloudwatch.py"
# GPU faults the nvidia_gpu section cannot see: the NVIDIA driver logs each XID event to the kernel log as
# "NVRM: Xid (PCI:<bus id>): <XID>, pid=..., <description>" (https://docs.nvidia.com/deploy/xid-errors/index.html).
# The agent reads files, not the journal, and AL2023 (the ECS-optimized AMIs rackform uses) keeps the kernel log in
# the journal alone: rsyslog is not installed, so there is no /var/log/messages
# (https://docs.aws.amazon.com/linux/al2023/ug/journald.html; amazon-ecs-ami's AL2023 package list has no rsyslog).
# So GPU nodes (`xid_log_group` given) install rsyslog, which writes the journal, kernel lines included, to
# /var/log/messages, and the agent ships only the XID lines of it (its `filters`: a regular expression a line must
# match) to the rack's log group, where metric filters count them (cdk_constructs/telemetry.py).
KERNEL_LOG = "/var/log/messages"
XID_LINE = "NVRM: Xid"


def agent_config(group: NodeGroupPlan, *, xid_log_group: str | None = None) -> dict[str, object]:
    dims = {"Rack": group.resource_name.removesuffix(f"-{group.name}"), "NodeGroup": group.resource_name}
    collected: dict[str, dict[str, object]] = {"mem": {"measurement": ["mem_used_percent"]}}
    if group.gpus_per_node:
        collected["nvidia_gpu"] = {"measurement": list(NVIDIA_GPU_MEASUREMENTS)}
    if group.efa_interfaces:
        collected["efa"] = {"measurement": list(EFA_MEASUREMENTS)}
    config: dict[str, object] = {
        "agent": {"metrics_collection_interval": 60},
        "metrics": {"namespace": TELEMETRY_NAMESPACE, "append_dimensions": {"InstanceId": "${aws:InstanceId}"},
                    "aggregation_dimensions": [["Rack", "NodeGroup"]],
                    "metrics_collected": {k: {**v, "append_dimensions": dims} for k, v in collected.items()}}}
    if group.gpus_per_node and xid_log_group is not None:
        # The group exists (the rack stack's) and keeps its own retention: the agent only adds a stream per node and
        # writes to it, which is what the node role may do there (node_group.NodeInstanceRole.ship_logs_to).
        config["logs"] = {"logs_collected": {"files": {"collect_list": [{
            "file_path": KERNEL_LOG, "log_group_name": xid_log_group, "log_stream_name": "{instance_id}",
            "filters": [{"type": "include", "expression": XID_LINE}]}]}}}
    return config


def telemetry_script(group: NodeGroupPlan, *, attempts: int = 10, xid_log_group: str | None = None) -> str:
    """Install and start the CloudWatch agent with the group's configuration (rsyslog too where the agent ships the
    kernel log's XID lines), and on Neuron nodes stream neuron-monitor to CloudWatch. Unlike the setup parts, a
    failure here says why and goes on: a node that cannot report its metrics still runs jobs, and its health step
    still checks it."""
    settings = agent_config(group, xid_log_group=xid_log_group)
    config = json.dumps(settings, separators=(",", ":"))
    packages, syslog = "amazon-cloudwatch-agent", ""
    if "logs" in settings:
        packages += " rsyslog"
        syslog = f'systemctl enable --now rsyslog || say "rsyslog did not start: no {KERNEL_LOG}, no XID lines"\n'
    neuron = "" if not group.neuron_devices_per_node else f"""
region=$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $(curl -fsS -m 5 -X PUT -H \
  "X-aws-ec2-metadata-token-ttl-seconds: 60" http://{IMDS_ADDRESS}/latest/api/token)" \
  http://{IMDS_ADDRESS}/latest/meta-data/placement/region)
cat > /etc/systemd/system/rackform-neuron-monitor.service <<UNIT
[Unit]
Description=rackform: neuron-monitor to CloudWatch ({TELEMETRY_NAMESPACE})
[Service]
ExecStart=/bin/sh -c 'neuron-monitor | {NEURON_MONITOR_CLOUDWATCH} --namespace {TELEMETRY_NAMESPACE} --region $region'
Restart=always
RestartSec=30
[Install]
WantedBy=multi-user.target
UNIT
systemctl enable --now rackform-neuron-monitor || say "neuron-monitor not started\""""
    return f"""#!/bin/bash
# rackform: telemetry (the CloudWatch agent{'; neuron-monitor' if neuron else ''})
set -u
say() {{ echo "rackform: telemetry: $*; the node runs jobs without it" >&2; }}
for attempt in $(seq 1 {attempts}); do
  dnf install -y {packages} && break
  sleep 10
done
{syslog}mkdir -p "$(dirname {AGENT_CONFIG})" && echo '{config}' > {AGENT_CONFIG}
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:{AGENT_CONFIG} \
  || say "the CloudWatch agent did not start"{neuron}
exit 0"""


def _install(package: str, attempts: int, why: str = "") -> str:
    """Shell that installs `package`, retrying (package mirrors flap at boot), and leaves when it never installs."""
    return f"""installed=no
for attempt in $(seq 1 {attempts}); do
  dnf install -y {package} && {{ installed=yes; break; }}
  sleep 10
done
[ "$installed" = yes ] || leave "could not install {package}{why}\""""


def node_setup_script(*, root: str = "", attempts: int = 10) -> str:
    """Block instance metadata for containers (IMDS_BLOCK_RULE and the comment above it), then write the node's
    identity where jobs read it (workloads.contract.NODE_IDENTITY_FILE, mounted read-only into every job): once
    blocked, a container can no longer ask instance metadata itself. A block that cannot be set up sends the node
    away; an identity field IMDS does not answer is left empty (the record then says nothing about it). `root`
    prefixes the host's files, for running the script in a sandbox."""
    ecs_config, identity_file, rules = f"{root}{ECS_CONFIG}", f"{root}{NODE_IDENTITY_FILE}", f"{root}{IPTABLES_RULES}"
    return f"""#!/bin/bash
# rackform: node setup (containers kept away from the node role's credentials; node identity for jobs)
set -u
{LEAVE}
mkdir -p "$(dirname {ecs_config})" && echo "ECS_AWSVPC_BLOCK_IMDS=true" >> {ecs_config} \
  || leave "could not write ECS_AWSVPC_BLOCK_IMDS=true to {ecs_config}"
iptables -N DOCKER-USER 2>/dev/null
iptables --insert {IMDS_BLOCK_RULE} || leave "could not insert the iptables rule {IMDS_BLOCK_RULE}"
{_install("iptables-services", attempts, " to keep the metadata block across reboots")}
iptables-save > {rules} && systemctl enable --now iptables || leave "could not save the iptables rules to {rules}"
token=$(curl -fsS -m 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" http://{IMDS_ADDRESS}/latest/api/token)
meta() {{ curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" "http://{IMDS_ADDRESS}/latest/meta-data/$1"; }}
mkdir -p "$(dirname {identity_file})" && {{
  echo "instance_id=$(meta instance-id)"
  echo "ami_id=$(meta ami-id)"
  echo "availability_zone=$(meta placement/availability-zone)"
}} > {identity_file}.tmp && mv {identity_file}.tmp {identity_file} || leave "could not write {identity_file}"
exit 0"""


def efa_install_script(group: NodeGroupPlan, *, sha256: str = EFA_INSTALLER_SHA256,
                       device_dir: str = "/dev/infiniband", attempts: int = 10, device_wait_s: int = 60) -> str:
    """Download the pinned EFA installer, refuse it unless its SHA256 is the published one, run it with the tier's
    flags, then wait for one uverbs device per EFA interface of the plan.

    A node where any step fails (download, checksum, installer, devices) says why and leaves (LEAVE): the ECS agent
    would otherwise still start, and a job placed there would fail at container start on a missing uverbs device, or
    worse run over TCP.
    """
    tarball = EFA_INSTALLER_URL.rsplit("/", 1)[1]
    flags = " ".join(EFA_INSTALLER_FLAGS[group.tier])
    want = group.efa_interfaces
    return f"""#!/bin/bash
# rackform: EFA {EFA_INSTALLER_VERSION} for {want} EFA interfaces ({group.instance_type}, {group.tier})
set -u
{LEAVE}
cd "$(mktemp -d)" || leave "no temporary directory for the EFA installer"
for attempt in $(seq 1 {attempts}); do
  dnf install -y tar && curl -fsSL -o {tarball} {EFA_INSTALLER_URL} && break
  sleep 10
done
echo "{sha256}  {tarball}" > {tarball}.sha256
sha256sum -c {tarball}.sha256 \
  || leave "{tarball} is missing or its SHA256 is not the published one; EFA not installed"
tar -xf {tarball} && cd aws-efa-installer || leave "could not unpack {tarball}"
./efa_installer.sh {flags} || leave "efa_installer.sh {flags} failed"
for second in $(seq 1 {device_wait_s}); do
  found=$(find {device_dir} -maxdepth 1 -name 'uverbs*' 2>/dev/null | wc -l)
  [ "$found" -ge {want} ] && exit 0
  sleep 1
done
leave "expected {want} EFA devices ({device_dir}/uverbs*), found $found\""""


# --- the NVMe instance store as scratch --------------------------------------------------------------------------
# The disks are found by their NVMe model, "Amazon EC2 NVMe Instance Storage", which udev spells into their
# /dev/disk/by-id names, as AWS's own setups do (amazon-eks-ami templates/al2023/runtime/bin/setup-local-disks,
# aws-parallelcluster-cookbook setup-ephemeral-drives.sh): never by device name order, since EBS volumes are NVMe
# devices too and "the block device driver can assign NVMe device names in a different order"
# (https://docs.aws.amazon.com/ebs/latest/userguide/nvme-ebs-volumes.html). NVMe instance store disks need no block
# device mapping (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/block-device-mapping-concepts.html).
INSTANCE_STORE_BY_ID = "/dev/disk/by-id"
INSTANCE_STORE_MODEL = "Amazon_EC2_NVMe_Instance_Storage"  # the model as udev names it
# Several disks become one RAID0 array (mdadm, as the EBS guide's RAID 0 steps:
# https://docs.aws.amazon.com/ebs/latest/userguide/raid-config.html), with XFS on it as amazon-eks-ami and the AWS
# Batch sample in awsome-distributed-training (1.architectures/3.aws-batch) make it: -K skips discarding disks that
# are delivered trimmed, -l su=8b keeps the log stripe unit within XFS's maximum on an array. The label finds the
# file system again, whatever name the array or disk has.
INSTANCE_STORE_ARRAY = "/dev/md/rackform-scratch"
INSTANCE_STORE_LABEL = "rf-scratch"  # XFS labels hold 12 characters at most
MDADM_CONF = "/etc/mdadm.conf"
FSTAB = "/etc/fstab"


def instance_store_script(group: NodeGroupPlan, *, root: str = "", by_id: str = INSTANCE_STORE_BY_ID,
                          attempts: int = 10, device_wait_s: int = 60) -> str:
    """Find the type's NVMe instance store disks, stripe them into one RAID0 array when there are several, make an
    XFS file system and mount it at the group's scratch path, writable by every job (mode 1777, as ParallelCluster's
    /scratch). Idempotent: a volume already mounted or already made is kept, not made again. A reboot keeps the disks'
    data and mounts the volume again from /etc/fstab (the array from /etc/mdadm.conf), `nofail` as the EBS guide
    advises; a replaced instance has new, empty disks and runs this again. A node whose disks do not all appear, or
    that cannot build, format or mount them, says why and leaves (LEAVE). `root` prefixes the host's files, for
    running the script in a sandbox."""
    store = group.instance_store
    if store.mount_path is None:
        raise ValueError(f"node group {group.name} uses no instance store")
    path, fstab, mdadm_conf = f"{root}{store.mount_path}", f"{root}{FSTAB}", f"{root}{MDADM_CONF}"
    want, label = store.disks, INSTANCE_STORE_LABEL
    return f"""#!/bin/bash
# rackform: NVMe instance store, {want} disk{'s' * (want > 1)} ({group.instance_type}), at {store.mount_path}
set -u
{LEAVE}
mountpoint -q {path} && exit 0
for second in $(seq 1 {device_wait_s}); do
  disks=$(for link in {by_id}/nvme-{INSTANCE_STORE_MODEL}_*; do
    case "$link" in *-part[0-9]*) continue ;; esac
    [ -e "$link" ] && realpath "$link"
  done | sort -u)
  found=$(echo "$disks" | grep -c .)
  [ "$found" -ge {want} ] && break
  sleep 1
done
[ "$found" -ge {want} ] || leave "expected {want} NVMe instance store disks ({by_id}/nvme-{INSTANCE_STORE_MODEL}_*), \
found $found"
device=$(blkid -L {label})
if [ -z "$device" ]; then
  if [ "$found" -gt 1 ]; then
    {_install("mdadm", attempts, " to stripe the instance store disks").replace(chr(10), chr(10) + "    ")}
    device={INSTANCE_STORE_ARRAY}
    mdadm --create "$device" --run --level=0 --name=rackform-scratch --raid-devices="$found" $disks \
      || leave "could not build a RAID0 array of $found instance store disks:" $disks
    mdadm --detail --scan > {mdadm_conf} || leave "could not write {mdadm_conf}"
  else
    device=$disks
  fi
  mkfs.xfs -K -l su=8b -L {label} "$device" || leave "could not make an XFS file system on $device"
fi
mkdir -p {path} || leave "could not create the mount point {path}"
grep -qs "^LABEL={label} " {fstab} \
  || echo "LABEL={label} {store.mount_path} xfs defaults,noatime,nofail 0 2" >> {fstab} \
  || leave "could not add the instance store to {fstab}"
mount -t xfs -o defaults,noatime "$device" {path} || leave "could not mount $device at {path}"
chmod 1777 {path} || leave "could not open {path} to every job"
exit 0"""


def lustre_mount_script(mount: LustreMount, *, install_attempts: int = 10, mount_attempts: int = 30) -> str:
    """Install the AL2023 Lustre client and mount FSx, retrying both.

    cloud-init runs user data before the ECS agent starts (which is why ecs.config can be written from it), so
    jobs do not land on a node before its file system is mounted. Package mirrors flap at boot, and hundreds of
    nodes mounting at once can overload the file system's management server: both steps retry, mounts with
    jitter so nodes do not retry in lockstep. A node that cannot install the client or never mounts says why and
    leaves (LEAVE), so no job lands on a node without its file system.
    """
    return f"""#!/bin/bash
set -u
{LEAVE}
{_install("lustre-client", install_attempts)}
mkdir -p {mount.mount_path} || leave "could not create the mount point {mount.mount_path}"
for attempt in $(seq 1 {mount_attempts}); do
  mount -t lustre -o relatime,flock {mount.dns_name}@tcp:/{mount.mount_name} {mount.mount_path} && exit 0
  sleep $((5 + RANDOM % 25))
done
leave "could not mount FSx for Lustre at {mount.mount_path}\""""
