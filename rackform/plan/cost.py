"""`rackform cost SPEC`: what a planned cluster costs per hour and per month, and what nobody can price yet.

Prices come from the dated snapshot in `rackform/reference/data/prices.json` (see `pricing.py`), user-given
`--price`s and a prices file, and EC2's current Spot prices with `--spot-live` (else the Spot snapshot's, dated).
A price that is unknown stays unknown: it is shown as such and makes every total that includes it incomplete.

JSON contract: each total (`instances_usd_per_hour`, `storage_usd_per_hour`, `network_usd_per_hour`,
`total_usd_per_hour`, `total_usd_per_month`) is null whenever any part of it is unknown, so no script can mistake
a partial sum for a total. The matching `*_known_*` field holds the priced part, a lower bound, and `unknown`
names every unpriced line and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from ..capacity import of as capacity_kind
from ..numbers import usd
from ..reference.prices import (
    Ec2RegionPrices,
    EndpointRate,
    NatRate,
    PriceBook,
    Quote,
    capacity_block_gap,
    capacity_block_rate,
    endpoint_rate,
    fsx_rate,
    nat_rate,
    on_demand,
    on_demand_gap,
    spot_gap,
)
from ..reference.prices import spot as spot_snapshot
from ..spec.models import FsxLustre
from .models import NodeGroupPlan, Plan

# AWS's own monthly convention (365 x 24 / 12) in its pricing examples.
HOURS_PER_MONTH = 730
# The network stack builds one AZ with one public subnet holding one NAT gateway, and one interface-endpoint ENI
# per endpoint in that AZ.
NAT_GATEWAYS = 1
ENDPOINT_AZS = 1
TOP_CONTRIBUTORS = 3
# `cost --live` reads the network's rates for any Region from the Price List API (reference/refresh.network_rates).
LIVE_HINT = " (--live reads it from the AWS Price List API)"

Category = Literal["instances", "storage", "network"]


@dataclass(frozen=True)
class Line:
    """One priced (or unpriceable) thing: a node group, the file system, a NAT gateway, the endpoints."""
    category: Category
    name: str
    usd_per_hour: float | None
    source: str  # where the price came from; when usd_per_hour is None, why there is none and how to give one
    rack: str | None = None
    instance_type: str | None = None
    count: int | None = None
    capacity: str | None = None
    usd_per_hour_each: float | None = None


@dataclass(frozen=True)
class Sum:
    known_usd_per_hour: float
    unknown: tuple[Line, ...]

    @property
    def usd_per_hour(self) -> float | None:
        return None if self.unknown else self.known_usd_per_hour


def add(lines: Iterable[Line]) -> Sum:
    lines = list(lines)
    known = math.fsum(ln.usd_per_hour for ln in lines if ln.usd_per_hour is not None)
    # Rounded well below a cent so that 2 x 55.04 + 2 x 21.50 + 7.66 is 160.74, not 160.73999999999998.
    return Sum(round(known, 6), tuple(ln for ln in lines if ln.usd_per_hour is None))


@dataclass(frozen=True)
class CostReport:
    name: str
    region: str
    availability_zone: str
    ec2_prices: Ec2RegionPrices | None  # the Region's primary snapshot block of on-demand prices
    lines: tuple[Line, ...]
    not_included: tuple[str, ...]
    unused_prices: tuple[str, ...]  # --price / prices-file keys that matched no node group
    # The warm nodes of each group with min_count > 0, always on: part of the group's line above (never added to
    # the totals twice), and what the cluster costs with no job running besides storage and network.
    warm: tuple[Line, ...] = ()
    # What the lines above pay for without a line of their own (a node group's NVMe instance store).
    included: tuple[str, ...] = ()
    # The seeds' blocks, newest first, consulted after ec2_prices for a type the blocks before neither price nor note.
    ec2_seed_prices: tuple[Ec2RegionPrices, ...] = ()

    def of(self, category: Category | None = None, rack: str | None = None) -> Sum:
        return add(ln for ln in self.lines
                   if (category is None or ln.category == category) and (rack is None or ln.rack == rack))

    def racks(self) -> list[str]:
        return list(dict.fromkeys(ln.rack for ln in self.lines if ln.rack is not None))


# --- pricing a plan (pure) -------------------------------------------------------------------------------------

def _group_quote(g: NodeGroupPlan, key: str, region: str, book: PriceBook, overrides: Mapping[str, Quote],
                 spot: Mapping[str, Quote], zone_id: str | None) -> tuple[Quote | None, str]:
    """The price per instance-hour and, where there is none, why."""
    if (quote := overrides.get(key) or overrides.get(g.instance_type)) is not None:
        return quote, ""
    kind = capacity_kind(g.capacity.type)
    if kind.price == "on-demand-snapshot":
        return on_demand(book, region, g.instance_type), on_demand_gap(book, region, g.instance_type)
    if kind.price == "spot":  # the live price where it was read, else the snapshot's for the AZ
        return (spot.get(g.instance_type) or spot_snapshot(book, region, zone_id, g.instance_type),
                f"{spot_gap(book, region, zone_id, g.instance_type)}; {kind.no_price_reason}")
    if kind.price == "capacity-block-published":
        return capacity_block_rate(book, region, g.instance_type), capacity_block_gap(book, region, g.instance_type)
    return None, kind.no_price_reason


def group_line(g: NodeGroupPlan, region: str, book: PriceBook, overrides: Mapping[str, Quote],
               spot: Mapping[str, Quote], zone_id: str | None = None) -> Line:
    """`spot`: live Spot prices by instance type; `zone_id`: the plan's AZ ID, for the Spot snapshot."""
    key = f"{g.rack}/{g.name}"
    quote, why = _group_quote(g, key, region, book, overrides, spot, zone_id)
    common = Line(category="instances", name=key, usd_per_hour=None, source="", rack=g.rack,
                  instance_type=g.instance_type, count=g.count, capacity=g.capacity.type)
    if quote is None:
        return replace(common, source=f"{why}; give --price {g.instance_type}=USD_PER_HOUR (or {key}=USD_PER_HOUR)")
    return replace(common, usd_per_hour=round(quote.usd * g.count, 6), usd_per_hour_each=quote.usd,
                   source=quote.source)


def warm_line(group: Line, g: NodeGroupPlan) -> Line | None:
    """The group's warm nodes (min_count), running all month whether jobs come or not; None without any."""
    if g.min_count == 0:
        return None
    each = group.usd_per_hour_each
    return replace(group, name=f"{group.name} warm", count=g.min_count,
                   usd_per_hour=None if each is None else round(each * g.min_count, 6))


def _provenance(secondary: bool, page_date: str) -> str:
    return f"{'secondary source; ' if secondary else ''}{page_date}"


def storage_lines(plan: Plan, book: PriceBook) -> list[Line]:
    fsx = plan.storage.fsx_lustre
    if fsx is None:
        return []
    if fsx.file_system_id is not None:
        return [Line("storage", f"FSx for Lustre {fsx.file_system_id} (existing)", 0.0,
                     "an existing file system, mounted, not created: billed to its owner, not priced by rackform")]
    tier = f", {fsx.per_unit_storage_throughput} MB/s/TiB" if fsx.per_unit_storage_throughput else ""
    kind = fsx.deployment_type + (f" HDD (drive cache {fsx.drive_cache_type})" if fsx.storage_type == "HDD" else "")
    name = f"FSx for Lustre {kind} {fsx.storage_capacity_gib:,} GiB{tier}"
    rate = fsx_rate(book, plan.region, fsx)
    if rate is None:
        return [Line("storage", name, None, f"no price for FSx for Lustre {kind}{tier} in "
                     f"{plan.region} in the snapshot; add it to rackform/reference/data/prices.json with its source"),
                *metadata_lines(fsx)]
    usd = fsx.storage_capacity_gib * rate.usd_per_gb_month / HOURS_PER_MONTH
    return [Line("storage", name, round(usd, 6), f"{rate.usd_per_gb_month} $/GB-month "
                 f"({_provenance(rate.secondary, rate.page_date)})"), *metadata_lines(fsx)]


def metadata_lines(fsx: FsxLustre) -> list[Line]:
    """User-provisioned metadata IOPS are billed as provisioned (FSx bills an increase once it is available,
    https://docs.aws.amazon.com/fsx/latest/LustreGuide/managing-metadata-performance.html), at a rate the snapshot
    lacks: unknown, never 0. LZ4 compression changes nothing billed: the provisioned capacity is."""
    if fsx.metadata is None or fsx.metadata.iops is None:
        return []
    return [Line("storage", f"FSx for Lustre metadata {fsx.metadata.iops:,} IOPS (user-provisioned)", None,
                 "no metadata IOPS rate in the snapshot (https://aws.amazon.com/fsx/lustre/pricing/); or use "
                 "metadata: {mode: AUTOMATIC}")]


def network_lines(plan: Plan, book: PriceBook) -> list[Line]:
    if plan.network.existing is not None:
        return []  # the VPC's NAT gateways and endpoints are the existing network's, billed whether or not we run
    nat = nat_rate(book, plan.region)
    lines = [Line("network", "NAT gateway", None if nat is None else round(nat.usd_per_hour * NAT_GATEWAYS, 6),
                  f"no NAT gateway price for {plan.region} in the snapshot{LIVE_HINT}" if nat is None else
                  f"{nat.usd_per_hour} $/hour ({_provenance(nat.secondary, nat.page_date)})")]
    if endpoints := plan.network.interface_endpoints:
        ep = endpoint_rate(book, plan.region)
        name = f"{len(endpoints)} interface endpoints ({', '.join(endpoints)}) x {ENDPOINT_AZS} AZ"
        lines.append(Line("network", name,
                          None if ep is None else round(ep.usd_per_hour_per_az * len(endpoints) * ENDPOINT_AZS, 6),
                          f"no interface endpoint price for {plan.region} in the snapshot{LIVE_HINT}" if ep is None else
                          f"{ep.usd_per_hour_per_az} $/hour per AZ "
                          f"({_provenance(ep.secondary, ep.page_date)})"))
    return lines


def _per_gb(rate: NatRate | EndpointRate | None) -> str:
    return ("price unknown" if rate is None or rate.usd_per_gb_processed is None
            else f"{rate.usd_per_gb_processed} $/GB")


def not_included(plan: Plan, book: PriceBook) -> tuple[str, ...]:
    nat, ep = nat_rate(book, plan.region), endpoint_rate(book, plan.region)
    groups = plan.node_groups()
    out = [f"NAT gateway data processing, per GB ({_per_gb(nat)})" if plan.network.existing is None else
           f"the existing network {plan.network.existing.vpc_id}: its NAT gateways, endpoints and data processing "
           "are billed to it, not priced here"]
    if plan.network.interface_endpoints:
        out.append(f"interface endpoint data processing, per GB ({_per_gb(ep)})")
    out.append(f"EBS root volumes ({sum(g.root_volume_gib * g.count for g in groups):,} GiB gp3 on "
               f"{sum(g.count for g in groups)} nodes)")
    out.append("the S3 results bucket, FSx backups, data transfer"
               + (", and the NAT gateway's public IPv4 address" if plan.network.existing is None else ""))
    return tuple(out)


def included(plan: Plan) -> tuple[str, ...]:
    """The node groups' NVMe instance store: no charge of its own, "included as part of the usage cost of the
    instance" (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/InstanceStorage.html)."""
    used = [f"{g.rack}/{g.name} ({g.instance_store.size_gb:,} GB a node)" for g in plan.node_groups()
            if g.instance_store.mount_path is not None]
    return (f"the NVMe instance store scratch of {', '.join(used)}: in the instance price, no charge of its own",) \
        if used else ()


def block_notes(lines: Iterable[Line], groups: Iterable[NodeGroupPlan],
                overrides: Mapping[str, Quote]) -> tuple[str, ...]:
    """What a published Capacity Block rate leaves out, for the groups priced at it (not at a user's --price)."""
    published = [ln.name for ln, g in zip(lines, groups, strict=True)
                 if capacity_kind(g.capacity.type).price == "capacity-block-published" and ln.usd_per_hour is not None
                 and ln.name not in overrides and g.instance_type not in overrides]
    if not published:
        return ()
    return (f"the true price of the Capacity Block{'s' if len(published) > 1 else ''} of {', '.join(published)}: "
            "priced here at AWS's published rate, a block costs its offering's upfront fee, fixed when bought "
            "(give it as --price), plus the operating system fee while instances run "
            "(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-pricing-billing.html)",)


def cost_plan(plan: Plan, book: PriceBook, overrides: Mapping[str, Quote] | None = None,
              spot: Mapping[str, Quote] | None = None) -> CostReport:
    overrides, spot = overrides or {}, spot or {}
    groups = plan.node_groups()
    lines = [group_line(g, plan.region, book, overrides, spot, plan.availability_zone_id) for g in groups]
    keys = {g.instance_type for g in groups} | {f"{g.rack}/{g.name}" for g in groups}
    return CostReport(
        name=plan.name, region=plan.region, availability_zone=plan.availability_zone,
        ec2_prices=book.ec2_on_demand.regions.get(plan.region),
        ec2_seed_prices=tuple(book.ec2_on_demand.seed_regions.get(plan.region, ())),
        lines=tuple(lines + storage_lines(plan, book) + network_lines(plan, book)),
        not_included=not_included(plan, book) + block_notes(lines, groups, overrides),
        unused_prices=tuple(sorted(k for k in overrides if k not in keys)),
        warm=tuple(w for line, g in zip(lines, groups, strict=True) if (w := warm_line(line, g)) is not None),
        included=included(plan),
    )


# --- budget ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    budget_usd_per_hour: float
    ok: bool
    message: str
    largest: tuple[Line, ...]


def largest(lines: Iterable[Line], n: int = TOP_CONTRIBUTORS) -> tuple[Line, ...]:
    priced = [ln for ln in lines if ln.usd_per_hour is not None]
    return tuple(sorted(priced, key=lambda ln: (-ln.usd_per_hour, ln.name))[:n])  # type: ignore[operator]


def check_budget(report: CostReport, budget: float) -> Verdict:
    """Over budget, or unprovably within it, fails: a budget gate that passes on missing prices is no gate."""
    total = report.of()
    top = largest(report.lines)
    named = "; largest: " + ", ".join(f"{ln.name} {usd(ln.usd_per_hour)} $/h" for ln in top) if top else ""
    bound = "≥ " if total.unknown else ""
    if total.known_usd_per_hour > budget:
        msg = f"over budget: {bound}{usd(total.known_usd_per_hour)} $/hour > {usd(budget)} $/hour{named}"
        return Verdict(budget, False, msg, top)
    if total.unknown:
        unpriced = "; ".join(ln.name for ln in total.unknown)
        msg = (f"cannot confirm the budget of {usd(budget)} $/hour: {len(total.unknown)} unpriced ({unpriced}) "
               f"on top of {usd(total.known_usd_per_hour)} $/hour; give --price")
        return Verdict(budget, False, msg, top)
    return Verdict(budget, True, f"within budget: {usd(total.known_usd_per_hour)} of {usd(budget)} $/hour", top)
