"""Instance catalog: EC2 instance types and where they are offered, as data plus pure functions.

The committed snapshot (`rackform/reference/data/catalog.json`) is made by `scripts/refresh_catalog.py` from the EC2
API, so validate, plan and synth need no credentials; `rackform validate --live` reads the same API at run time instead.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Literal

from ..spec.base import Frozen
from ..spec.models import Tier
from ..spec.problems import did_you_mean

CATALOG_PATH = Path(__file__).with_name("data") / "catalog.json"

# Families rackform knows how to lay out and price. Graviton for general work, Trainium/Inferentia (Neuron) and
# NVIDIA GPUs for ML, x86 CPU families beside them for head, data and orchestration work and x86-only images (Intel
# m/c/r 6i and 7i; AMD hpc6a and hpc7a with EFA, offered in few Regions and On-Demand only).
SUPPORTED_FAMILIES: tuple[str, ...] = (
    "trn1", "trn1n", "trn2", "trn2u", "inf2",
    "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "p6-b300", "g5", "g6", "g6e",
    "c7g", "c7gn", "c8g", "m7g", "m8g", "r7g", "r8g", "hpc7g",
    "c7i", "m7i", "r7i", "c6i", "m6i", "hpc7a", "hpc6a",
)

InterfaceKind = Literal["interface", "efa", "efa-only"]


class Accelerator(Frozen):
    kind: Literal["gpu", "neuron"]
    name: str
    manufacturer: str
    count: int
    memory_mib_each: int
    cores_each: int | None = None  # NeuronCores per Neuron device (physical); GPUs: None


class NetworkCard(Frozen):
    index: int
    max_interfaces: int
    interface_kinds: tuple[str, ...]
    baseline_gbps: float | None = None


class InstanceType(Frozen):
    name: str
    architecture: Literal["arm64", "x86_64"]
    vcpus: int
    memory_mib: int
    accelerator: Accelerator | None = None
    network_performance: str
    ipv4_per_interface: int
    max_network_interfaces: int
    efa_supported: bool
    max_efa_interfaces: int
    network_cards: tuple[NetworkCard, ...]
    placement_strategies: tuple[str, ...]
    usage_classes: tuple[str, ...]
    # Local instance store (InstanceStorageInfo): disks summed over its entries, total size in GB (decimal, as
    # EC2 reports TotalSizeInGB), and whether the disks are NVMe (NvmeSupport "required" or "supported").
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceStorageInfo.html
    instance_store_disks: int = 0
    instance_store_gb: int = 0
    instance_store_nvme: bool = False

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def tier(self) -> Tier:
        if self.accelerator is not None:
            return "trainium" if self.accelerator.kind == "neuron" else "gpu"
        return "graviton" if self.architecture == "arm64" else "cpu"

    @property
    def neuron_devices(self) -> int:
        return self.accelerator.count if self.accelerator and self.accelerator.kind == "neuron" else 0

    @property
    def neuron_cores(self) -> int:
        a = self.accelerator
        return a.count * (a.cores_each or 0) if a and a.kind == "neuron" else 0

    @property
    def gpus(self) -> int:
        return self.accelerator.count if self.accelerator and self.accelerator.kind == "gpu" else 0


# In these Regions AZ names map to physical zones independently per account (accounts created before November
# 2025); everywhere else, and for AZ IDs everywhere, a name means the same zone in every account.
# https://docs.aws.amazon.com/global-infrastructure/latest/regions/az-ids.html ("Regions with independently mapped
# Availability Zones"; the page also lists AWS GovCloud (US-West))
INDEPENDENTLY_MAPPED_REGIONS: frozenset[str] = frozenset({
    "us-east-1", "us-west-1", "us-west-2", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "eu-west-1",
    "sa-east-1", "us-gov-west-1",
})
# "use1-az6", "apne1-az4": letters from the Region code, its number, "-az" and a number.
# https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-availability-zones.html
ZONE_ID = re.compile(r"[a-z]+\d+-az\d+")  # fullmatch: `$` would accept "use1-az6\n"


def is_zone_id(zone: str) -> bool:
    return bool(ZONE_ID.fullmatch(zone))


def zone_field(zone: str) -> str:
    """The EC2 API field that holds `zone` as the spec gives it: AvailabilityZoneId for an AZ ID, else the name."""
    return "AvailabilityZoneId" if is_zone_id(zone) else "AvailabilityZone"


class Catalog(Frozen):
    source: str
    generated_on: str
    families: tuple[str, ...]
    instance_types: dict[str, InstanceType]
    # region -> AZ names, and region -> AZ name -> AZ ID as DescribeAvailabilityZones gave them to the account the
    # catalog was read from. In INDEPENDENTLY_MAPPED_REGIONS that pairing is one account's example, true for the
    # user only where `account_zone_ids` names the Region (validate --live read the user's own account).
    availability_zones: dict[str, tuple[str, ...]]
    zone_ids: dict[str, dict[str, str]]
    account_zone_ids: tuple[str, ...] = ()
    # region -> instance type -> AZ IDs offering it (LocationType=availability-zone-id: the same in every account)
    offerings: dict[str, dict[str, tuple[str, ...]]]

    def get(self, name: str) -> InstanceType | None:
        return self.instance_types.get(name)

    def suggest_instance_type(self, name: str, n: int = 3) -> list[str]:
        """Up to `n` close instance types: sizes of the same family nearest in size first (p5.96xlarge ->
        p5.48xlarge), else the closest spellings across the catalog (trn3.48xlarge -> trn2.48xlarge)."""
        family, _, size = name.partition(".")
        sizes = [t for t, it in self.instance_types.items() if it.family == family]
        if not sizes:
            return did_you_mean(name, self.instance_types, n=n)
        wanted = size_in_xlarge(size)
        if wanted is None:  # not a size word: spelling decides, within the family
            return (did_you_mean(name, sizes, n=n, cutoff=0.0) or sorted(sizes))[:n]
        return sorted(sizes, key=lambda t: (abs(math.log((size_in_xlarge(t.partition(".")[2]) or 1e-3) / wanted)),
                                            t))[:n]

    def azs_offering(self, region: str, instance_type: str) -> tuple[str, ...]:
        """AZ IDs of `region` that offer the type."""
        return self.offerings.get(region, {}).get(instance_type, ())

    def region_zone_ids(self, region: str) -> tuple[str, ...]:
        # Offerings count too: moto's zone list lags its offerings data (euw2-az4 is offered but not listed).
        offered = {z for zones in self.offerings.get(region, {}).values() for z in zones}
        return tuple(sorted(offered.union(self.zone_ids.get(region, {}).values())))

    def mapping_known(self, region: str) -> bool:
        """Whether AZ names of `region` mean the same zones for the user as in `zone_ids`."""
        return region not in INDEPENDENTLY_MAPPED_REGIONS or region in self.account_zone_ids

    def zone_id(self, region: str, zone: str) -> str | None:
        """The AZ ID `zone` (an AZ name or ID) stands for, or None when unknown here: an unknown zone, or a name
        in an independently mapped Region read from another account."""
        if zone in self.region_zone_ids(region):
            return zone
        return self.zone_ids.get(region, {}).get(zone) if self.mapping_known(region) else None

    def zone_label(self, region: str, zone_id: str) -> str:
        """The AZ ID with its name where the name is the same for everyone: "us-east-2a (use2-az1)"."""
        if self.mapping_known(region):
            for name, zid in self.zone_ids.get(region, {}).items():
                if zid == zone_id:
                    return f"{name} ({zone_id})"
        return zone_id

    def regions_offering(self, instance_type: str) -> list[str]:
        return sorted(r for r, types in self.offerings.items() if instance_type in types)


_SIZE = re.compile(r"(\d*)xlarge")
_SMALL_SIZES = {"nano": 1 / 32, "micro": 1 / 16, "small": 1 / 8, "medium": 1 / 4, "large": 1 / 2}


def size_in_xlarge(size: str) -> float | None:
    """'48xlarge' -> 48, 'xlarge' -> 1, 'large' -> 0.5; None for anything else ('metal', typos)."""
    if (m := _SIZE.fullmatch(size)) is not None:
        return float(m.group(1) or 1)
    return _SMALL_SIZES.get(size)


@functools.lru_cache(maxsize=4)
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    return Catalog.model_validate(json.loads(Path(path).read_text()))
