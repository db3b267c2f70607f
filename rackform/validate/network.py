"""The VPC: a valid, private CIDR large enough for every address the plan needs."""

from __future__ import annotations

import ipaddress

from ..plan.models import node_group_plan, private_ips_needed
from ..plan.netmath import private_subnet_prefix, smallest_prefix, usable_ips
from ..reference.catalog import Catalog
from ..spec.models import Spec
from .core import Found, Rule, SpecRule, known_groups, not_an_ec2_id

MAX_VPC_PREFIX = 27  # half of it is the private subnet, which must still be a /28 or larger
# VPC CIDRs: AWS recommends RFC 1918 space and says "Some AWS services use the 172.17.0.0/16 CIDR range. To avoid
# future conflicts, don't use this range when creating your VPC"
# (https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html). It is also the subnet of Docker's default
# bridge (docker0) on the ECS-optimized AMIs every Batch node runs
# (https://docs.docker.com/engine/network/drivers/bridge/), so containers there could not reach VPC addresses in it.
# The others are IANA special-purpose space (RFC 6890).
RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
SPECIAL_VPC_RANGES = (
    ("0.0.0.0/8", "0.0.0.0/8 ('this network', RFC 1122)"),
    ("127.0.0.0/8", "loopback 127.0.0.0/8"),
    ("169.254.0.0/16", "link-local 169.254.0.0/16 (where instances reach the metadata service and the VPC's DNS)"),
    ("172.17.0.0/16", "172.17.0.0/16, Docker's default bridge on every Batch node, which AWS says not to use for a "
                      "VPC"),
    ("224.0.0.0/4", "multicast 224.0.0.0/4"),
    ("240.0.0.0/4", "reserved 240.0.0.0/4"),
)


# Security groups per network interface: 5 by default (https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html).
MAX_SECURITY_GROUPS = 5


def existing(spec: Spec) -> bool:
    """The spec deploys into an existing VPC (network.vpc_id), which rackform neither sizes nor creates."""
    return spec.network.vpc_id is not None


def existing_network(spec: Spec, catalog: Catalog) -> Found:
    net = spec.network
    given = {"vpc_id": net.vpc_id, "subnet_id": net.subnet_id, "security_group_ids": net.security_group_ids}
    if all(v is None for v in given.values()):
        return
    for key in [k for k, v in given.items() if v is None]:
        yield f"network.{key}", (f"an existing network needs vpc_id, subnet_id and security_group_ids together; "
                                 f"{key} is missing (or remove the others to let rackform create the network)")
    for key in ("vpc_id", "subnet_id"):
        value, prefix = given[key], key.removesuffix("_id")
        if isinstance(value, str) and (problem := not_an_ec2_id(value, prefix, f"a {prefix} id")):
            yield f"network.{key}", problem
    groups = net.security_group_ids
    if groups is not None:
        if not 1 <= len(groups) <= MAX_SECURITY_GROUPS:
            yield "network.security_group_ids", (f"{len(groups)} security groups: give 1 to {MAX_SECURITY_GROUPS} "
                                                 "(each node interface takes at most 5)")
        for i, sg in enumerate(groups):
            if problem := not_an_ec2_id(sg, "sg", "a security group id"):
                yield f"network.security_group_ids[{i}]", problem
        if len(set(groups)) != len(groups):
            yield "network.security_group_ids", "a security group is listed twice; list each once"
    for key in sorted(net.model_fields_set & {"vpc_cidr", "interface_endpoints"}):
        yield f"network.{key}", (f"{key} is for a VPC rackform creates, and this spec brings its own (vpc_id): "
                                 f"remove {key}")


def vpc_cidr_valid(spec: Spec, catalog: Catalog) -> Found:
    if existing(spec):
        return
    cidr = spec.network.vpc_cidr
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as e:
        yield "network.vpc_cidr", f"{cidr!r} is not a valid IPv4 CIDR ({e}); e.g. 10.40.0.0/16"
        return
    if net.version != 4:
        yield "network.vpc_cidr", f"{cidr!r} is IPv6; a VPC's primary CIDR is IPv4, e.g. 10.40.0.0/16"
    elif not 16 <= net.prefixlen <= MAX_VPC_PREFIX:
        # AWS allows a /28 VPC, but rackform splits it in half for the private subnet and needs a /28 for NAT
        yield "network.vpc_cidr", f"/{net.prefixlen} is outside what rackform can lay out: use /16 to /27"


def vpc_cidr_private(spec: Spec, catalog: Catalog) -> Found:
    if existing(spec):
        return
    try:
        net = ipaddress.ip_network(spec.network.vpc_cidr, strict=True)
    except ValueError:
        return
    if not isinstance(net, ipaddress.IPv4Network):
        return
    # Python's is_private also holds for loopback, link-local and reserved space, so those are named one by one.
    if special := [why for cidr, why in SPECIAL_VPC_RANGES if net.overlaps(ipaddress.ip_network(cidr))]:
        yield "network.vpc_cidr", f"{net} overlaps {'; and '.join(special)}: choose another range, e.g. 10.40.0.0/16"
    elif not any(net.subnet_of(ipaddress.IPv4Network(r)) for r in RFC1918):
        public = "; it is public address space" if net.is_global else ""
        yield "network.vpc_cidr", f"{net} is outside the RFC 1918 ranges AWS recommends for a VPC " \
                                  f"({', '.join(RFC1918)}){public}"


def vpc_cidr_large_enough(spec: Spec, catalog: Catalog) -> Found:
    if existing(spec):
        return  # `rackform preflight` counts the existing subnet's free addresses
    try:
        net = ipaddress.ip_network(spec.network.vpc_cidr, strict=True)
    except ValueError:
        return
    if net.version != 4 or not 16 <= net.prefixlen <= MAX_VPC_PREFIX:
        return
    groups = [node_group_plan(spec, r, g, it) for _, r, g, it in known_groups(spec, catalog)]
    needed = private_ips_needed(spec, groups)
    prefix = private_subnet_prefix(str(net))
    if needed <= usable_ips(prefix):
        return
    want = smallest_prefix(needed) - 1
    fix = (f"use a /{want} VPC or larger" if want >= 16 else
           "that is more than a /16 VPC holds: reduce node counts or split the cluster")
    yield "network.vpc_cidr", (f"{net} is too small: the racks need {needed:,} addresses in the private subnet "
                               f"(node interfaces, Batch task ENIs, FSx, endpoints), which is half the VPC "
                               f"(/{prefix}, {usable_ips(prefix):,} usable after AWS reserves 5); {fix}")


RULES: tuple[SpecRule, ...] = (
    Rule(existing_network, "error", "an existing network is a VPC, a subnet and security groups, by their ids",
         "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/resource-ids.html"),
    Rule(vpc_cidr_valid, "error", "the VPC CIDR is valid IPv4 /16-/28",
         "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html"),
    Rule(vpc_cidr_private, "warning", "the VPC CIDR is RFC 1918, clear of special-purpose ranges and Docker's bridge",
         "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html"),
    Rule(vpc_cidr_large_enough, "error", "the VPC holds every address the plan needs",
         "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSubnet.html"),
)
