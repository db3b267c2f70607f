"""Subnet arithmetic: how many addresses the racks need and which prefixes hold them.

Pure functions of numbers and CIDRs, shared by the plan (which sizes the subnets) and validation (which checks the
VPC holds what the plan needs); neither owns the other's math.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable

# AWS keeps the first four and the last address of every subnet
# (https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html).
RESERVED_IPS_PER_SUBNET = 5
PUBLIC_SUBNET_PREFIX = 28  # holds the NAT gateway only
# One Batch task ENI per node: multi-node jobs run in awsvpc mode, which attaches an ENI with its own IP.
BATCH_TASK_ENIS_PER_NODE = 1
# FSx for Lustre puts its file servers' ENIs in the subnet; AWS does not publish the count. One per 1,200 GiB plus two
# is a deliberate over-estimate so the subnet never runs dry when the file system grows.
FSX_GIB_PER_IP = 1200
FSX_EXTRA_IPS = 2


def ips_per_node(interfaces_with_ip: int) -> int:
    return interfaces_with_ip + BATCH_TASK_ENIS_PER_NODE


def fsx_ips(storage_capacity_gib: int | None) -> int:
    return 0 if storage_capacity_gib is None else storage_capacity_gib // FSX_GIB_PER_IP + FSX_EXTRA_IPS


def private_ips_needed(node_group_ips: Iterable[int], *, fsx_capacity_gib: int | None, endpoints: int) -> int:
    """Addresses the private subnet must hold: every node's, the file system's and the interface endpoints'."""
    return sum(node_group_ips) + fsx_ips(fsx_capacity_gib) + endpoints


def smallest_prefix(addresses: int) -> int:
    """Longest prefix whose subnet holds `addresses` usable addresses after AWS's reservations."""
    bits = max(4, math.ceil(math.log2(addresses + RESERVED_IPS_PER_SUBNET)))
    return 32 - bits


def private_subnet_prefix(vpc_cidr: str) -> int:
    """The private subnet is half the VPC, whatever the racks need today.

    Sizing it from the racks would change its CIDR when a rack is added, and CloudFormation would replace the
    subnet, and with it the file system and every rack. Half leaves the other half for the NAT subnet and growth.
    """
    return ipaddress.ip_network(vpc_cidr, strict=False).prefixlen + 1


def usable_ips(prefix: int) -> int:
    return (1 << (32 - prefix)) - RESERVED_IPS_PER_SUBNET
