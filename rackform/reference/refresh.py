"""Reading the reference data from AWS: the catalog from the EC2 API (used by scripts/refresh_catalog.py and
`validate --live`), on-demand prices from the Price List API (scripts/refresh_prices.py) and Spot prices from EC2
(`cost --spot-live`, `place --live`). The lookups in catalog.py, prices.py and peaks.py stay pure; this is the part
that calls AWS."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from ..aws import PaginatingClient, paginate
from .catalog import is_zone_id, zone_field
from .prices import Quote

_ARCH = {"arm64": "arm64", "x86_64": "x86_64"}

# Accelerator records AWS publishes that its own EC2 data (DescribeInstanceTypes, and moto's copy of it) gets wrong:
# NeuronInfo gives 512 GiB per Trainium2 chip, and trn2u.48xlarge no NeuronInfo at all, so it read as a CPU type.
# Each entry replaces the API's record whole and was reviewed against the pages named beside it;
# tests/reference/test_catalog.py holds every accelerated type of the catalog to AWS's published figures.
# Trainium2: 8 NeuronCore-v3 and 96 GiB of device memory per chip
# (https://awsdocs-neuron.readthedocs-hosted.com/en/latest/general/arch/neuron-hardware/trainium2.html);
# trn2.48xlarge and trn2u.48xlarge: 16 chips, 1,536 GiB of device memory
# (https://awsdocs-neuron.readthedocs-hosted.com/en/latest/general/arch/neuron-hardware/trn2-arch.html);
# trn2.3xlarge: 1 chip, 96 GiB (https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html, Trn2).
_TRAINIUM2 = {"kind": "neuron", "name": "Trainium2", "manufacturer": "AWS", "memory_mib_each": 96 * 1024,
              "cores_each": 8}
ACCELERATOR_CORRECTIONS: dict[str, dict[str, Any]] = {
    "trn2.3xlarge": {**_TRAINIUM2, "count": 1},
    "trn2.48xlarge": {**_TRAINIUM2, "count": 16},
    "trn2u.48xlarge": {**_TRAINIUM2, "count": 16},
}


def instance_type_from_api(raw: dict[str, Any]) -> dict[str, Any]:
    """One DescribeInstanceTypes entry -> the catalog's record (plain data, validated by InstanceType)."""
    net = raw["NetworkInfo"]
    store = raw.get("InstanceStorageInfo") or {}
    archs = [a for a in raw["ProcessorInfo"]["SupportedArchitectures"] if a in _ARCH]
    accelerator = None
    if gpus := raw.get("GpuInfo", {}).get("Gpus"):
        g = gpus[0]
        accelerator = {"kind": "gpu", "name": g["Name"], "manufacturer": g["Manufacturer"],
                       "count": sum(x["Count"] for x in gpus), "memory_mib_each": g["MemoryInfo"]["SizeInMiB"]}
    elif neuron := raw.get("NeuronInfo", {}).get("NeuronDevices"):
        n = neuron[0]
        accelerator = {"kind": "neuron", "name": n["Name"], "manufacturer": "AWS",
                       "count": sum(x["Count"] for x in neuron), "memory_mib_each": n["MemoryInfo"]["SizeInMiB"],
                       "cores_each": n.get("CoreInfo", {}).get("Count")}
    accelerator = ACCELERATOR_CORRECTIONS.get(raw["InstanceType"], accelerator)
    cards = [
        {"index": c["NetworkCardIndex"], "max_interfaces": c["MaximumNetworkInterfaces"],
         "interface_kinds": sorted(c.get("InterfaceTypes") or ["interface"]),
         "baseline_gbps": c.get("BaselineBandwidthInGbps")}
        for c in sorted(net.get("NetworkCards", []), key=lambda c: c["NetworkCardIndex"])
    ]
    return {
        "name": raw["InstanceType"],
        "architecture": archs[0],
        "vcpus": raw["VCpuInfo"]["DefaultVCpus"],
        "memory_mib": raw["MemoryInfo"]["SizeInMiB"],
        "accelerator": accelerator,
        "network_performance": net["NetworkPerformance"],
        "ipv4_per_interface": net["Ipv4AddressesPerInterface"],
        "max_network_interfaces": net["MaximumNetworkInterfaces"],
        "efa_supported": bool(net.get("EfaSupported")),
        "max_efa_interfaces": net.get("EfaInfo", {}).get("MaximumEfaInterfaces", 0),
        "network_cards": cards,
        "placement_strategies": sorted(raw.get("PlacementGroupInfo", {}).get("SupportedStrategies", [])),
        "usage_classes": sorted(raw.get("SupportedUsageClasses", [])),
        "instance_store_disks": sum(d["Count"] for d in store.get("Disks", [])),
        "instance_store_gb": store.get("TotalSizeInGB", 0),
        "instance_store_nvme": store.get("NvmeSupport") in ("required", "supported"),
    }


def catalog_from_api(client_for_region: Callable[[str], Any], *, regions: list[str] | None,
                     families: Iterable[str]) -> dict[str, Any]:
    """Read instance types and per-AZ offerings for `families` from the EC2 API of every Region."""
    families = tuple(families)
    wanted = re.compile(r"^({})\.".format("|".join(re.escape(f) for f in families)))
    home = client_for_region("us-east-1")
    if regions is None:
        regions = sorted(r["RegionName"] for r in home.describe_regions()["Regions"])
    types: dict[str, dict[str, Any]] = {}
    azs: dict[str, list[str]] = {}
    zone_ids: dict[str, dict[str, str]] = {}
    offerings: dict[str, dict[str, list[str]]] = {}
    for region in regions:
        ec2 = client_for_region(region)
        zones = ec2.describe_availability_zones()["AvailabilityZones"]
        azs[region] = sorted(z["ZoneName"] for z in zones)
        zone_ids[region] = {z["ZoneName"]: z["ZoneId"] for z in sorted(zones, key=lambda z: z["ZoneName"])}
        per_type: dict[str, list[str]] = {}
        # By AZ ID, which names the same zone in every account; AZ names do not in the oldest Regions.
        # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html
        # No server-side family filter: moto matches instance-type filters exactly, without EC2's wildcards.
        for o in paginate(ec2, "describe_instance_type_offerings", "InstanceTypeOfferings",
                           LocationType="availability-zone-id"):
            if wanted.match(o["InstanceType"]):
                per_type.setdefault(o["InstanceType"], []).append(o["Location"])
        offerings[region] = {t: sorted(z) for t, z in sorted(per_type.items())}
        missing = sorted(t for t in per_type if t not in types)
        for i in range(0, len(missing), 100):  # DescribeInstanceTypes takes at most 100 names a call
            for raw in paginate(ec2, "describe_instance_types", "InstanceTypes", InstanceTypes=missing[i:i + 100]):
                types[raw["InstanceType"]] = instance_type_from_api(raw)
    return {
        "families": list(families),
        "instance_types": dict(sorted(types.items())),
        "availability_zones": azs,
        "zone_ids": zone_ids,
        "offerings": offerings,
    }


# --- the AWS Price List API (scripts/refresh_prices.py) --------------------------------------------------------

# The attributes that select the plain Linux on-demand rate of a running instance: no Windows/RHEL licence, no
# dedicated host, no SQL Server, not the "unused capacity reservation" line.
PRICE_LIST_ATTRIBUTES: dict[str, str] = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "marketoption": "OnDemand",
}
PRICE_LIST_API = "AWS Price List API"
PRICE_LIST_SOURCE = (f"{PRICE_LIST_API} (ServiceCode AmazonEC2; "
                     + ", ".join(f"{k}={v}" for k, v in PRICE_LIST_ATTRIBUTES.items()) + ")")


def price_list_filters(region: str, instance_type: str) -> list[dict[str, str]]:
    pairs = {"regionCode": region, "instanceType": instance_type, **PRICE_LIST_ATTRIBUTES}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in pairs.items()]


def on_demand_usd(entry: str | Mapping[str, Any]) -> list[float]:
    """Every first-tier USD price under terms.OnDemand.*.priceDimensions.* of one PriceList entry (a JSON string):
    a dimension's beginRange 0 (per-GB processing is tiered by volume; an instance-hour has the one tier)."""
    product = json.loads(entry) if isinstance(entry, str) else entry
    return [float(dim["pricePerUnit"]["USD"])
            for term in product.get("terms", {}).get("OnDemand", {}).values()
            for dim in term.get("priceDimensions", {}).values()
            if "USD" in dim.get("pricePerUnit", {}) and dim.get("beginRange", "0") == "0"]


def fetch_on_demand(pricing_client: PaginatingClient, region: str, instance_type: str) -> float | None:
    """One instance type's on-demand USD/hour in one Region, or None where the API lists none."""
    prices: set[float] = set()
    pages = pricing_client.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2", Filters=price_list_filters(region, instance_type))
    for page in pages:
        for entry in page["PriceList"]:
            prices.update(on_demand_usd(entry))
    if len(prices) > 1:
        # Two rates under the same filters means the filters no longer select one product: refuse to guess.
        raise ValueError(f"{instance_type} in {region}: the Price List API returned several on-demand prices "
                         f"{sorted(prices)}; tighten PRICE_LIST_ATTRIBUTES")
    return prices.pop() if prices else None


def ec2_region_block(pricing_client: PaginatingClient, region: str, instance_types: Iterable[str],
                     today: dt.date) -> dict[str, Any]:
    """The snapshot's block for one Region, read from the Price List API now."""
    prices: dict[str, float] = {}
    notes: dict[str, str] = {}
    for t in sorted(set(instance_types)):
        usd = fetch_on_demand(pricing_client, region, t)
        if usd is None:
            notes[t] = f"the Price List API listed no on-demand Linux price in {region} on {today.isoformat()}"
        else:
            prices[t] = usd
    return {"source": PRICE_LIST_SOURCE, "as_of": today.isoformat(), "prices": prices, "notes": notes}


# --- the network's rates from the Price List API (`cost --live`) ---------------------------------------------------

# (ServiceCode, productFamily, per-hour usage type, per-GB usage type). Each family holds more products than the one
# rackform creates (regional NAT gateways, Gateway Load Balancer endpoints, Outposts), told apart by the usage type:
# a Region prefix (none in us-east-1, "USE2-" in us-east-2) and then exactly these names.
# https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html
NETWORK_PRODUCTS: dict[str, tuple[str, str, str, str]] = {
    "nat_gateway": ("AmazonEC2", "NAT Gateway", "NatGateway-Hours", "NatGateway-Bytes"),
    "vpc_interface_endpoint": ("AmazonVPC", "VpcEndpoint", "VpcEndpoint-Hours", "VpcEndpoint-Bytes"),
}


def _first_tier_usd(pricing_client: PaginatingClient, service: str, family: str, region: str,
                    usage: str) -> float | None:
    """The USD rate of one usage type's first tier (on_demand_usd), or None where the Price List API lists none;
    several different rates under it raise ValueError rather than guess."""
    wanted = re.compile(rf"(?:[A-Z0-9]+-)?{re.escape(usage)}")
    rates: set[float] = set()
    filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v}
               for k, v in {"productFamily": family, "regionCode": region}.items()]
    for page in pricing_client.get_paginator("get_products").paginate(ServiceCode=service, Filters=filters):
        for entry in page["PriceList"]:
            product = json.loads(entry) if isinstance(entry, str) else entry
            if not wanted.fullmatch(product.get("product", {}).get("attributes", {}).get("usagetype", "")):
                continue
            rates.update(on_demand_usd(product))
    if len(rates) > 1:
        raise ValueError(f"{usage} in {region}: the Price List API returned several rates {sorted(rates)}")
    return rates.pop() if rates else None


def network_rates(pricing_client: PaginatingClient, region: str, today: dt.date) -> dict[str, dict[str, object]]:
    """The NAT gateway's and interface endpoints' rates in one Region, read now, shaped as the snapshot's entries
    (prices.NatRate, prices.EndpointRate); a product the API lists no hourly rate for is left out."""
    out: dict[str, dict[str, object]] = {}
    for key, (service, family, hours, gigabytes) in NETWORK_PRODUCTS.items():
        hourly = _first_tier_usd(pricing_client, service, family, region, hours)
        if hourly is None:
            continue
        per_gb = _first_tier_usd(pricing_client, service, family, region, gigabytes)
        out[key] = {"usd_per_hour" if key == "nat_gateway" else "usd_per_hour_per_az": hourly,
                    "usd_per_gb_processed": per_gb, "page_date": f"Price List API (live) {today.isoformat()}",
                    "source": f"{PRICE_LIST_API} (ServiceCode {service}; productFamily {family}, usagetype "
                              f"{hours} and {gigabytes})"}
    return out


# --- skypilot-catalog's vms.csv: a public, dated seed where the Price List API cannot be reached -----------------

SKYPILOT_LABEL = "skypilot-catalog"


# The zone ID of a Local Zone (use1-qro1-az1) or a Wavelength Zone (use1-wl1-bos-wlz1): a zone, but none of a Region's
# AZs, where rackform deploys (https://docs.aws.amazon.com/local-zones/latest/ug/available-local-zones.html).
LOCAL_ZONE_ID = re.compile(r"[a-z]+\d+-(?:[a-z]+\d+-az\d+|wl\d+-[a-z]+-wlz\d+)")


def _skypilot_rows(text: str, column: str, needed: Iterable[str]) -> Iterator[tuple[int, dict[str, str], float]]:
    """(line, row, USD/hour in `column`) for each row of a skypilot-catalog vms.csv with a figure there: a blank one
    says nothing (unknown, never 0); anything but a positive finite number raises ValueError naming the line. A
    Local Zone's row (LOCAL_ZONE_ID) is checked, then left out: priced apart from its Region, and not where rackform
    deploys."""
    rows = csv.DictReader(io.StringIO(text))
    missing = {column, *needed} - set(rows.fieldnames or ())
    if missing:
        raise ValueError(f"not a skypilot-catalog vms.csv: no {', '.join(sorted(missing))} column")
    for line, row in enumerate(rows, start=2):
        text_price = (row[column] or "").strip()
        if not text_price:
            continue
        try:
            usd = float(text_price)
        except ValueError:
            usd = math.nan
        if not math.isfinite(usd) or usd <= 0:
            raise ValueError(f"line {line}: {column} {text_price!r} is not a positive USD per hour")
        if not LOCAL_ZONE_ID.fullmatch(row.get("AvailabilityZone") or ""):
            yield line, row, usd


def on_demand_from_skypilot_csv(text: str) -> dict[str, dict[str, float]]:
    """Region -> instance type -> On-Demand USD/hour from skypilot-org/skypilot-catalog's catalogs/v7/aws/vms.csv,
    which has a row per type and AZ (columns InstanceType, Price, Region, among others) and the Price List's Linux
    On-Demand rate in Price. A row without a Price says nothing (unknown, never 0), and neither does a Local Zone's
    (_skypilot_rows); one Region's AZs giving a type two prices raise ValueError, since the Price List has one
    On-Demand rate per type and Region."""
    out: dict[str, dict[str, float]] = {}
    for line, row, usd in _skypilot_rows(text, "Price", ("InstanceType", "Region")):
        region, instance_type = row["Region"], row["InstanceType"]
        seen = out.setdefault(region, {}).setdefault(instance_type, usd)
        if seen != usd:
            raise ValueError(f"line {line}: {instance_type} in {region} has two On-Demand prices ({seen} and {usd}); "
                             "refusing to guess")
    return out


def spot_from_skypilot_csv(text: str) -> dict[str, dict[str, dict[str, float]]]:
    """Region -> instance type -> AZ ID -> Linux Spot USD/hour from the same vms.csv's SpotPrice and
    AvailabilityZone (an AZ ID such as use2-az1, the same zone in every account). Kept per AZ: Spot prices differ
    by AZ (the file gives p5.48xlarge 12.12 and 16.10 in two us-east-2 AZs) and a spec runs in one AZ. A blank
    SpotPrice says nothing, and so does a Local Zone's row (_skypilot_rows); an AZ that is not a zone ID, or one AZ
    with two prices for a type, raises ValueError."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for line, row, usd in _skypilot_rows(text, "SpotPrice", ("InstanceType", "Region", "AvailabilityZone")):
        region, instance_type, zone = row["Region"], row["InstanceType"], row["AvailabilityZone"]
        if not is_zone_id(zone):
            raise ValueError(f"line {line}: AvailabilityZone {zone!r} is not an AZ ID (like use2-az1)")
        seen = out.setdefault(region, {}).setdefault(instance_type, {}).setdefault(zone, usd)
        if seen != usd:
            raise ValueError(f"line {line}: {instance_type} in {zone} has two Spot prices ({seen} and {usd}); "
                             "refusing to guess")
    return out


# A seed rate this far from the Price List's for the same type and Region is out of date, not rounding
# (a rate rounded to cents gives 3.99 for c7gn.16xlarge where the Price List says 3.9936).
STALE_TOLERANCE = 0.01


def stale_families(seed: Mapping[str, Mapping[str, float]],
                   primary: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """Instance family -> why the seed's rates for it are out of date: some type of the family has a seed rate in a
    Region that differs from the Price List's rate there (`primary`, region -> type -> USD/hour) by more than
    STALE_TOLERANCE. AWS changes On-Demand rates per family (June 2025 cut P4 and P5 rates by up to 45%), so one
    disagreeing type condemns its whole family, in every Region, also where nothing could be compared."""
    stale: dict[str, str] = {}
    for region, prices in sorted(primary.items()):
        for instance_type, usd in sorted(prices.items()):
            old = seed.get(region, {}).get(instance_type)
            family = instance_type.split(".", 1)[0]
            if old is not None and abs(old / usd - 1) > STALE_TOLERANCE and family not in stale:
                stale[family] = (f"the seed gives {instance_type} {old} USD/hour in {region}, the Price List API "
                                 f"{usd}: its {family} rates are out of date")
    return stale


_Price = TypeVar("_Price")


def listed_in_skypilot_csv(text: str) -> dict[str, set[str]]:
    """Region -> the instance types the vms.csv has a row for in one of the Region's AZs, priced or not (read after
    on_demand_from_skypilot_csv has checked the file)."""
    out: dict[str, set[str]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if not LOCAL_ZONE_ID.fullmatch(row.get("AvailabilityZone") or ""):
            out.setdefault(row["Region"], set()).add(row["InstanceType"])
    return out


def skypilot_region_block(prices: Mapping[str, _Price], region: str, instance_types: Iterable[str], *, source: str,
                          as_of: str, stale: Mapping[str, str], listed: Iterable[str] = ()) -> dict[str, Any]:
    """The snapshot's block for one Region from `on_demand_from_skypilot_csv`'s prices of that Region (or
    `spot_from_skypilot_csv`'s, AZ ID -> price per type): the wanted types the CSV prices, less those of a family
    `stale_families` condemns, which get a note saying why. A type the CSV lists in the Region without a price
    (`listed`: listed_in_skypilot_csv's) gets a note too, so that no older seed behind this block prices what this
    newer copy of the Price List has no rate for. A type the CSV lacks gets no note (the lookups say it is not in the
    snapshot): one per type and Region would multiply the file's size for nothing."""
    block: dict[str, Any] = {"source": source, "as_of": as_of, "label": SKYPILOT_LABEL, "prices": {}, "notes": {}}
    listed = set(listed)
    snapshot = f"the {SKYPILOT_LABEL} snapshot ({as_of})"
    for t in sorted(set(instance_types)):
        if (why := stale.get(t.split(".", 1)[0])) is not None and t in prices:
            block["notes"][t] = f"unknown in {region}: {why}"
        elif t in prices:
            block["prices"][t] = prices[t]
        elif t in listed:
            block["notes"][t] = (f"unknown in {region}: {snapshot} lists {t} there without a price "
                                 "(an older seed's rate is not used)")
    return block


# --- Spot, live (the shipped Spot snapshot is only a dated guide: Spot prices move) -----------------------------

def spot_prices(ec2_client: PaginatingClient, instance_types: Iterable[str], az: str,
                now: dt.datetime | None = None) -> dict[str, Quote]:
    """Current Linux Spot price per instance type in one AZ, given by name or by AZ ID (use1-az6); types without
    Spot history are left out."""
    now = now or dt.datetime.now(dt.UTC)
    types = sorted(set(instance_types))
    if not types:
        return {}
    latest: dict[str, dict[str, Any]] = {}
    # DescribeSpotPriceHistory takes the AZ by name or by ID, one or the other
    # (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSpotPriceHistory.html).
    key = zone_field(az)
    # With StartTime=now EC2 returns the price in force at that moment (the last change before it) per type.
    pages = ec2_client.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=types, ProductDescriptions=["Linux/UNIX"], StartTime=now, **{key: az})
    for page in pages:
        for rec in page["SpotPriceHistory"]:
            if rec.get(key, az) != az:
                continue
            seen = latest.get(rec["InstanceType"])
            if seen is None or rec["Timestamp"] > seen["Timestamp"]:
                latest[rec["InstanceType"]] = rec
    return {t: Quote(float(r["SpotPrice"]), f"Spot {az} {_utc(r['Timestamp']):%Y-%m-%d %H:%M}Z")
            for t, r in sorted(latest.items())}


def _utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC)

