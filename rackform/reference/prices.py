"""Prices: a dated snapshot (`rackform/reference/data/prices.json`) plus the pure functions that read it.

Every price names its source and date. A price the snapshot lacks is unknown (`None`), never zero: callers must say
so instead of summing it away. EC2 on-demand prices come from the AWS Price List API (`scripts/refresh_prices.py`),
and, for the types and Regions it did not price, from a public dated seed consulted after it;
Spot prices are read live from EC2 when asked (both read in refresh.py), else taken from a dated Spot snapshot per
AZ, labelled with its date since Spot prices move; capacity blocks are priced
at the rate AWS publishes per Region and type (labelled as such: a block's real price is its offering's upfront fee,
fixed when bought); reservations have no public per-spec price, so the user gives them (`--price`, a prices file).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..spec.base import Frozen
from ..spec.files import read_limited
from ..spec.models import FsxLustre
from ..spec.problems import SpecError
from ..spec.yamlsafe import MAX_BYTES, load_yaml

PRICES_PATH = Path(__file__).with_name("data") / "prices.json"


class Ec2RegionPrices(Frozen):
    source: str
    as_of: str
    label: str = "Price List API"  # the source in a few words, for a table cell
    prices: dict[str, float]  # instance type -> USD per hour
    notes: dict[str, str] = {}  # instance type -> why it has no price


class Ec2OnDemand(Frozen):
    unit: str
    regions: dict[str, Ec2RegionPrices]  # each Region's primary block: the Price List's where read, else a seed's
    # The Region's other seed blocks, newest first: a type the blocks before neither price nor note is priced from
    # the first one here that does, quoted with that block's own label and date (a newer seed may hold only the
    # families an older one has out of date).
    seed_regions: dict[str, list[Ec2RegionPrices]] = {}


class Ec2SpotRegion(Frozen):
    source: str
    as_of: str
    label: str
    prices: dict[str, dict[str, float]]  # instance type -> AZ ID -> USD per hour
    notes: dict[str, str] = {}  # instance type -> why it has no price


class Ec2Spot(Frozen):
    """Spot prices as a public catalog recorded them once, per AZ ID (a spec runs in one AZ, and Spot prices differ
    by AZ): a dated guide where the live price is not read, never the price you will pay."""
    unit: str
    regions: dict[str, Ec2SpotRegion]  # each Region's newest block
    seed_regions: dict[str, list[Ec2SpotRegion]] = {}  # its older blocks, newest first, read as for On-Demand


class _Sourced(Frozen):
    source: str
    page_date: str
    # True where the figure comes from a page other than AWS's own price list (AWS renders those rates client-side)
    secondary: bool = False


class FsxRate(_Sourced):
    usd_per_gb_month: float


class FsxRegion(Frozen):
    SCRATCH_2: FsxRate | None = None
    # per-unit storage throughput (MB/s/TiB, as a string key) -> rate; a listed tier with null is known-unknown
    PERSISTENT_1: dict[str, FsxRate | None] = {}
    PERSISTENT_2: dict[str, FsxRate | None] = {}


class FsxPrices(Frozen):
    unit: str
    regions: dict[str, FsxRegion]


class NatRate(_Sourced):
    usd_per_hour: float
    usd_per_gb_processed: float | None  # None: unknown (the Price List API may list the hourly rate alone)


class NatPrices(Frozen):
    unit: str
    regions: dict[str, NatRate]


class EndpointRate(_Sourced):
    usd_per_hour_per_az: float
    usd_per_gb_processed: float | None  # None: unknown


class EndpointPrices(Frozen):
    unit: str
    regions: dict[str, EndpointRate]


class CapacityBlockRates(Frozen):
    """The Capacity Block rates AWS publishes (https://aws.amazon.com/ec2/capacityblocks/pricing/): a rate, not
    the price of a block, which is its offering's upfront fee when bought and does not change after
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-pricing-billing.html)."""
    unit: str
    source: str
    as_of: str
    secondary: bool = False
    regions: dict[str, dict[str, float]]  # Region -> instance type -> USD per instance-hour


class PriceBook(Frozen):
    about: str
    ec2_on_demand: Ec2OnDemand
    ec2_spot: Ec2Spot
    fsx_lustre: FsxPrices
    nat_gateway: NatPrices
    vpc_interface_endpoint: EndpointPrices
    capacity_block: CapacityBlockRates


@functools.lru_cache(maxsize=4)
def load_prices(path: Path = PRICES_PATH) -> PriceBook:
    return PriceBook.model_validate(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class Quote:
    """A price and where it came from, short enough for a table cell."""
    usd: float
    source: str


# --- lookups (pure) -----------------------------------------------------------------------------------------

_Block = TypeVar("_Block")


def _blocks(firsts: Mapping[str, _Block], seeds: Mapping[str, list[_Block]], region: str) -> list[_Block]:
    """A Region's blocks (On-Demand or Spot) in the order they are consulted: its first (`regions`: On-Demand's is
    the Price List's where read), then its other seeds (`seed_regions`), newest first."""
    first = firsts.get(region)
    return [*([first] if first is not None else []), *seeds.get(region, [])]


def _on_demand_blocks(book: PriceBook, region: str) -> list[Ec2RegionPrices]:
    return _blocks(book.ec2_on_demand.regions, book.ec2_on_demand.seed_regions, region)


def on_demand(book: PriceBook, region: str, instance_type: str) -> Quote | None:
    """The first block that prices or notes the type decides, with its own source and date: a type the Price List
    prices, or says it has no price for, is never taken from an older seed."""
    for block in _on_demand_blocks(book, region):
        if instance_type in block.prices:
            return Quote(block.prices[instance_type], f"{block.label} {block.as_of}")
        if instance_type in block.notes:
            return None
    return None


def on_demand_gap(book: PriceBook, region: str, instance_type: str) -> str:
    """Why `on_demand` found nothing, in words a user can act on."""
    blocks = _on_demand_blocks(book, region)
    if not blocks:
        known = ", ".join(sorted({*book.ec2_on_demand.regions, *book.ec2_on_demand.seed_regions})) or "none"
        return f"no EC2 prices for {region} in the snapshot (Regions priced: {known})"
    read = "; ".join(f"{b.label} {b.as_of}" for b in blocks)
    return next((b.notes[instance_type] for b in blocks if instance_type in b.notes),
                f"{instance_type} is not in the {region} snapshot ({read})")


def capacity_block_rate(book: PriceBook, region: str, instance_type: str) -> Quote | None:
    rates = book.capacity_block
    usd = rates.regions.get(region, {}).get(instance_type)
    if usd is None:
        return None
    return Quote(usd, f"Capacity Block published rate {rates.as_of}{' (secondary)' if rates.secondary else ''}")


def capacity_block_gap(book: PriceBook, region: str, instance_type: str) -> str:
    """Why `capacity_block_rate` found nothing."""
    offered = sorted(r for r, types in book.capacity_block.regions.items() if instance_type in types)
    where = f" (published for {', '.join(offered)})" if offered else ""
    return (f"no published Capacity Block rate for {instance_type} in {region} in the snapshot of "
            f"{book.capacity_block.as_of}{where}; a block is priced per offering when you buy it")


def _spot_block(book: PriceBook, region: str, instance_type: str) -> Ec2SpotRegion | None:
    """The Region's Spot block that decides the type: the newest that prices or notes it, else the newest."""
    blocks = _blocks(book.ec2_spot.regions, book.ec2_spot.seed_regions, region)
    return next((b for b in blocks if instance_type in b.prices or instance_type in b.notes),
                book.ec2_spot.regions.get(region))


def spot(book: PriceBook, region: str, zone_id: str | None, instance_type: str) -> Quote | None:
    """The Spot snapshot's price of the type in one AZ (by AZ ID: names differ between accounts)."""
    block = _spot_block(book, region, instance_type)
    usd = block.prices.get(instance_type, {}).get(zone_id or "") if block is not None else None
    if block is None or usd is None:
        return None
    return Quote(usd, f"Spot snapshot {block.as_of}, {block.label}")


def spot_gap(book: PriceBook, region: str, zone_id: str | None, instance_type: str) -> str:
    """Why `spot` found nothing, in words a user can act on."""
    block = _spot_block(book, region, instance_type)
    if block is None:
        known = ", ".join(sorted(book.ec2_spot.regions)) or "none"
        return f"no Spot prices for {region} in the snapshot (Regions priced: {known})"
    if instance_type in block.notes:
        return block.notes[instance_type]
    zones = block.prices.get(instance_type)
    if zones is None:
        return f"{instance_type} is not in the {region} Spot snapshot of {block.as_of}"
    if zone_id is None:
        return (f"the spec's AZ has no AZ ID known for every account, and the Spot snapshot is by AZ ID "
                f"({', '.join(sorted(zones))} for {instance_type}): name the AZ by its ID")
    return (f"{instance_type} has no Spot price for {zone_id} in the {region} Spot snapshot of {block.as_of} "
            f"(only {', '.join(sorted(zones))})")


def fsx_rate(book: PriceBook, region: str, fsx: FsxLustre) -> FsxRate | None:
    prices = book.fsx_lustre.regions.get(region)
    # No HDD rates in the snapshot (HDD storage, and its SSD read cache billed apart): unknown, never 0 or an SSD rate.
    if prices is None or fsx.storage_type == "HDD":
        return None
    if fsx.deployment_type == "SCRATCH_2":
        return prices.SCRATCH_2
    tiers = prices.PERSISTENT_2 if fsx.deployment_type == "PERSISTENT_2" else prices.PERSISTENT_1
    return tiers.get(str(fsx.per_unit_storage_throughput))


def nat_rate(book: PriceBook, region: str) -> NatRate | None:
    return book.nat_gateway.regions.get(region)


def endpoint_rate(book: PriceBook, region: str) -> EndpointRate | None:
    return book.vpc_interface_endpoint.regions.get(region)


def with_live(book: PriceBook, region: str, ec2: Mapping[str, object] | None,
              network: Mapping[str, Mapping[str, object]]) -> PriceBook:
    """The book with what `cost --live` read for one Region in place of the snapshot's: the EC2 block
    (refresh.ec2_region_block) and the network's rates (refresh.network_rates; what it did not find keeps the
    snapshot's)."""
    update: dict[str, object] = {}
    if ec2 is not None:
        live = Ec2RegionPrices.model_validate({**ec2, "label": "Price List API (live)"})
        update["ec2_on_demand"] = book.ec2_on_demand.model_copy(
            update={"regions": {**book.ec2_on_demand.regions, region: live}})
    if (nat := network.get("nat_gateway")) is not None:
        update["nat_gateway"] = book.nat_gateway.model_copy(
            update={"regions": {**book.nat_gateway.regions, region: NatRate.model_validate(nat)}})
    if (endpoint := network.get("vpc_interface_endpoint")) is not None:
        update["vpc_interface_endpoint"] = book.vpc_interface_endpoint.model_copy(
            update={"regions": {**book.vpc_interface_endpoint.regions, region: EndpointRate.model_validate(endpoint)}})
    return book.model_copy(update=update)


# --- user-given prices (capacity blocks, reservations, negotiated rates) ---------------------------------------

def parse_price(text: str) -> tuple[str, float]:
    """'p5.48xlarge=31.46' or 'rack/group=31.46' -> (key, USD per hour). Raises ValueError with the fix."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"{text!r} is not KEY=USD_PER_HOUR (KEY: an instance type or RACK/GROUP), "
                         "e.g. p5.48xlarge=31.46")
    try:
        usd = float(value)
    except ValueError:
        raise ValueError(f"{text!r}: {value.strip()!r} is not a number of USD per hour") from None
    if not math.isfinite(usd) or usd < 0:
        raise ValueError(f"{text!r}: a price must be a finite number of USD per hour, 0 or more")
    return key, usd


def load_price_file(path: str | Path) -> dict[str, float]:
    """A YAML or JSON mapping of KEY: USD per hour, with the same keys as --price."""
    p = Path(path)
    try:
        data, _ = load_yaml(read_limited(p, MAX_BYTES, "prices"), str(p))
    except SpecError as e:
        raise ValueError(f"prices file {p}: " + "; ".join(x.message for x in e.problems)) from None
    if not isinstance(data, dict):
        raise ValueError(f"prices file {p} must map KEY (instance type or RACK/GROUP) to USD per hour, "
                         f"e.g. 'p5.48xlarge: 31.46'; got {type(data).__name__}")
    return dict(parse_price(f"{k}={v}") for k, v in data.items())
