"""Where the cluster runs and what it runs on: the Region, the AZ, the instance types offered there."""

from __future__ import annotations

from ..reference.catalog import Catalog
from ..spec.models import Spec
from .core import Found, Rule, SpecRule, groups, hint, known_groups, not_an_ec2_id


def region_known(spec: Spec, catalog: Catalog) -> Found:
    if spec.region not in catalog.availability_zones:
        yield "region", (f"{spec.region!r} is not a Region in the catalog{hint(spec.region, catalog.offerings)} "
                         f"Known Regions: {', '.join(sorted(catalog.availability_zones))}")


def az_in_region(spec: Spec, catalog: Catalog) -> Found:
    # An AZ name or an AZ ID: IDs name the same zone in every account, names do not in the oldest Regions.
    # https://docs.aws.amazon.com/global-infrastructure/latest/regions/az-ids.html
    names = catalog.availability_zones.get(spec.region)
    if names is None:
        return
    ids = catalog.region_zone_ids(spec.region)
    az = spec.availability_zone
    if az not in names and az not in ids:
        yield "availability_zone", (f"{az!r} is not an Availability Zone name or AZ ID of {spec.region}"
                                    f"{hint(az, names + ids) or '.'} Choose a name ({', '.join(names)}) or an AZ "
                                    f"ID ({', '.join(ids)})")


def instance_type_known(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g in groups(spec):
        if catalog.get(g.instance_type) is None:
            family = g.instance_type.split(".", 1)[0]
            why = (f"family {family!r} is not supported by rackform (supported: {', '.join(catalog.families)})"
                   if family not in catalog.families else "no such instance type in the catalog")
            close = catalog.suggest_instance_type(g.instance_type)
            hint = f"; did you mean {' or '.join(repr(t) for t in close)}?" if close else ""
            yield f"{path}.instance_type", f"{g.instance_type!r}: {why}{hint}"


def _zones_text(catalog: Catalog, region: str, zone_ids: tuple[str, ...]) -> str:
    return ", ".join(catalog.zone_label(region, z) for z in zone_ids)


def instance_offered_in_az(spec: Spec, catalog: Catalog) -> Found:
    # Offerings are kept by AZ ID; an AZ name is checked through its ID where every account maps it alike (else
    # instance_offered_in_az_name warns instead).
    region, az = spec.region, spec.availability_zone
    if region not in catalog.offerings:
        return
    zone_id = catalog.zone_id(region, az)
    where_az = az if zone_id in (None, az) else f"{az} ({zone_id})"
    # Where the whole cluster can go: one AZ must offer every type, since EFA does not cross AZs.
    offered = [set(catalog.azs_offering(region, it.name)) for _, _, _g, it in known_groups(spec, catalog)]
    common = tuple(sorted(set.intersection(*offered))) if offered else ()
    move = (f"Move the cluster to an AZ that offers every type of the spec (EFA does not cross AZs): "
            f"{_zones_text(catalog, region, common)}" if common else
            f"No AZ of {region} offers every type of the spec, and EFA does not cross AZs: move the cluster to "
            "another Region, or split its racks across specs")
    for path, _, _g, it in known_groups(spec, catalog):
        ids = catalog.azs_offering(region, it.name)
        if ids and (zone_id is None or zone_id in ids):
            continue  # an unknown AZ is az-in-region's to report
        if ids:
            where = f"in {region} it is offered in {_zones_text(catalog, region, ids)}"
        else:
            regions = catalog.regions_offering(it.name)
            where = (f"it is not offered anywhere in {region}; Regions that offer it: "
                     f"{', '.join(regions) or 'none in the catalog'}")
        yield f"{path}.instance_type", f"{it.name} is not offered in {where_az}: {where}. {move}"


def instance_offered_in_az_name(spec: Spec, catalog: Catalog) -> Found:
    # In Regions that map AZ names per account, which zone a name is depends on the account: offline, a type that
    # only some zones offer can only be a warning.
    # https://docs.aws.amazon.com/global-infrastructure/latest/regions/az-ids.html
    region, az = spec.region, spec.availability_zone
    if az not in catalog.availability_zones.get(region, ()) or catalog.mapping_known(region):
        return
    every = set(catalog.region_zone_ids(region))
    for path, _, _g, it in known_groups(spec, catalog):
        ids = catalog.azs_offering(region, it.name)
        if ids and set(ids) != every:
            yield f"{path}.instance_type", (
                f"{it.name} is offered only in AZ IDs {', '.join(ids)} of {region}, which maps AZ names to zones per "
                f"account: whether {az} is one of them depends on your account. Run `rackform validate --live` to "
                f"check with your account's mapping, or set availability_zone to one of those AZ IDs")


def tier_matches_instance(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g, it in known_groups(spec, catalog):
        if g.tier is not None and g.tier != it.tier:
            yield f"{path}.tier", (f"{g.tier!r} contradicts {it.name}, which is a {it.tier!r} instance; "
                                   f"write tier: {it.tier} or leave tier out")


def image_id(spec: Spec, catalog: Catalog) -> Found:
    for path, _, g in groups(spec):
        if g.image_id is not None and (problem := not_an_ec2_id(g.image_id, "ami", "an AMI id")):
            yield f"{path}.image_id", f"{problem}, e.g. ami-0123456789abcdef0"


RULES: tuple[SpecRule, ...] = (
    Rule(region_known, "error", "the Region exists",
         "https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html"),
    Rule(az_in_region, "error", "the AZ belongs to the Region",
         "https://docs.aws.amazon.com/global-infrastructure/latest/regions/az-ids.html"),
    Rule(instance_type_known, "error", "the instance type is in the catalog",
         "https://docs.aws.amazon.com/ec2/latest/instancetypes/instance-types.html"),
    Rule(instance_offered_in_az, "error", "the type is offered in the AZ",
         "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html"),
    Rule(instance_offered_in_az_name, "warning",
         "an AZ name in a Region that maps names per account: the type is offered in every AZ",
         "https://docs.aws.amazon.com/global-infrastructure/latest/regions/az-ids.html"),
    Rule(tier_matches_instance, "error", "a given tier matches the instance",
         "https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html"),
    Rule(image_id, "error", "a custom AMI is given by its id",
         "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/resource-ids.html"),
)
