#!/usr/bin/env python3
"""Refresh the EC2 on-demand prices in rackform/reference/data/prices.json from the AWS Price List API.

    python scripts/refresh_prices.py                                  # us-east-1, every catalog type offered there
    python scripts/refresh_prices.py --regions us-east-1 us-east-2
    python scripts/refresh_prices.py --instance-types p5.48xlarge trn1.32xlarge -o /tmp/prices.json
    python scripts/refresh_prices.py --from-skypilot-csv vms.csv --commit SHA --as-of 2026-12-01

Needs AWS credentials allowed to call pricing:GetProducts. The Price List API answers only in a few Regions
(us-east-1 among them) but lists prices for every Region. Each refreshed Region's block is replaced whole and
dated today (a seed block it replaces is kept as that Region's seed); other Regions and the hand-maintained FSx,
NAT gateway and endpoint sections are kept as they are.

--from-skypilot-csv reads skypilot-org/skypilot-catalog's catalogs/v7/aws/vms.csv instead (a public catalog
that copies the Price List's Linux On-Demand rates per Region and AZ; no credentials; --path names another of its
files with the same columns, such as catalogs/v8/aws/vms.csv): every Region it prices, dated --as-of (the commit's
date) and citing --commit. Where a Region's block came from the Price List API, the seed's block goes beside it
(ec2_on_demand.seed_regions) and prices only the types the Price List block neither prices nor notes, each quoted
with the seed's own source and date. Its SpotPrice column, per AZ ID, becomes the ec2_spot section (every catalog
Region the file prices), the guide `cost` and `place` use where no live Spot price is read.
Seeds from several files or commits stack per Region, On-Demand and Spot alike: a file imported again replaces its
own blocks where they are; another goes in front of the seeds already there (import the older first), so a newer
extract of a few families prices those and the older seed still prices the rest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rackform.reference.catalog import Catalog, load_catalog  # noqa: E402
from rackform.reference.prices import PRICES_PATH, PriceBook  # noqa: E402
from rackform.reference.refresh import (  # noqa: E402
    SKYPILOT_LABEL,
    ec2_region_block,
    listed_in_skypilot_csv,
    on_demand_from_skypilot_csv,
    skypilot_region_block,
    spot_from_skypilot_csv,
    stale_families,
)

SPOT_UNIT = "USD per instance-hour, Linux/UNIX Spot, per AZ ID; a dated record: Spot prices move"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", nargs="+", help="Regions to price (default: us-east-1; with "
                        "--from-skypilot-csv every catalog Region it prices)")
    parser.add_argument("--instance-types", nargs="+", help="default: every catalog type (the supported families) "
                        "that the catalog says the Region offers")
    parser.add_argument("-o", "--output", type=Path, default=PRICES_PATH,
                        help="snapshot to update (default: rackform/reference/data/prices.json)")
    parser.add_argument("--from-skypilot-csv", type=Path, metavar="FILE",
                        help="skypilot-catalog's catalogs/v7/aws/vms.csv instead of the Price List API")
    parser.add_argument("--commit", help="with --from-skypilot-csv: the skypilot-catalog commit the file is from")
    parser.add_argument("--path", default="catalogs/v7/aws/vms.csv",
                        help="with --from-skypilot-csv: the file's path in skypilot-catalog (default: %(default)s)")
    parser.add_argument("--as-of", help="with --from-skypilot-csv: that commit's date (YYYY-MM-DD)")
    parser.add_argument("--note", default="", help="with --from-skypilot-csv: added to each block's source, e.g. "
                        "which rows of the file were read")
    args = parser.parse_args(argv)

    catalog = load_catalog()
    source = args.output if args.output.exists() else PRICES_PATH
    data = json.loads(source.read_text())
    if args.from_skypilot_csv:
        return _from_skypilot(args, catalog, data)

    import boto3

    pricing = boto3.client("pricing", region_name="us-east-1")
    today = dt.date.today()
    for region in args.regions or ["us-east-1"]:
        types = args.instance_types or sorted(catalog.offerings.get(region, {}))
        if not types:
            print(f"error: the catalog lists no instance types offered in {region}; give --instance-types",
                  file=sys.stderr)
            return 2
        block = ec2_region_block(pricing, region, types, today)
        on_demand = data["ec2_on_demand"]
        if _is_seed(on_demand["regions"].get(region, {})):
            # the seed still prices what this refresh did not ask about
            seeds = on_demand.setdefault("seed_regions", {})
            seeds[region] = [on_demand["regions"][region], *seeds.get(region, [])]
        on_demand["regions"][region] = block
        print(f"{region}: {len(block['prices'])} prices, {len(block['notes'])} types without one")
    return _write(args.output, data)


def _write(output: Path, data: dict[str, Any]) -> int:
    PriceBook.model_validate(data)  # never write a snapshot rackform cannot read back
    output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {output}")
    return 0


def _is_seed(block: dict[str, Any]) -> bool:
    return bool(block.get("label") == SKYPILOT_LABEL)


def _stack(firsts: dict[str, Any], seeds: dict[str, list[Any]], region: str, block: dict[str, Any],
           origin: str) -> None:
    """Put one Region's seed block among its blocks (`firsts`: the Region's first; `seeds`: the others, newest
    first): in place of the block from the same file and commit (its source starts with `origin`), else in front of
    the other seeds, behind a Price List block, which stays first."""
    chain = [*([firsts[region]] if region in firsts else []), *seeds.get(region, [])]
    same = next((i for i, b in enumerate(chain) if b["source"].startswith(origin)), None)
    if same is not None:
        chain[same] = block
    else:
        chain.insert(1 if chain and not _is_seed(chain[0]) else 0, block)
    firsts[region] = chain[0]
    if chain[1:]:
        seeds[region] = chain[1:]


def _seed_blocks(args: argparse.Namespace, catalog: Catalog, priced: Mapping[str, Mapping[str, object]], *,
                 source: str, stale: Mapping[str, str], listed: Mapping[str, set[str]]) -> dict[str, dict[str, Any]]:
    """Region -> its block from the file's prices (`priced`, on-demand or Spot): each Region asked for (--regions,
    else every one the file prices) that the file and the catalog both price, for the types wanted there."""
    return {region: skypilot_region_block(priced[region], region,
                                          args.instance_types or sorted(catalog.offerings[region]), source=source,
                                          as_of=args.as_of, stale=stale, listed=listed.get(region, set()))
            for region in sorted(r for r in args.regions or priced if r in priced and r in catalog.offerings)}


def _from_skypilot(args: argparse.Namespace, catalog: Catalog, data: dict[str, Any]) -> int:
    if not (args.commit and args.as_of):
        print("error: --from-skypilot-csv needs --commit (the skypilot-catalog commit) and --as-of (its date)",
              file=sys.stderr)
        return 2
    try:
        text = args.from_skypilot_csv.read_text()
        by_region, spot_by_region = on_demand_from_skypilot_csv(text), spot_from_skypilot_csv(text)
        listed = listed_in_skypilot_csv(text)
    except (OSError, ValueError) as e:
        print(f"error: {args.from_skypilot_csv}: {e}", file=sys.stderr)
        return 2
    # A Region named with --regions that the file or the catalog does not price would get an empty block written over
    # what prices.json holds for it: refused, nothing written.
    if unpriced := [r for r in args.regions or () if r not in catalog.offerings
                    or (r not in by_region and r not in spot_by_region)]:
        print(f"error: {args.from_skypilot_csv} (or the catalog) prices nothing in {', '.join(unpriced)}; leave it out "
              "of --regions", file=sys.stderr)
        return 2
    blocks, seeds = data["ec2_on_demand"]["regions"], data["ec2_on_demand"].setdefault("seed_regions", {})
    origin = f"https://github.com/skypilot-org/skypilot-catalog {args.path} at commit {args.commit}"
    note = f"; {args.note}" if args.note else ""
    source = f"{origin} (column Price: Linux On-Demand USD/hour, copied from the AWS Price List){note}"
    # Where the Price List API priced a Region, the seed is checked against it; families it disagrees on stay unknown.
    primary = {r: b["prices"] for r, b in blocks.items() if not _is_seed(b)}
    stale = stale_families(by_region, primary)
    for family, why in stale.items():
        print(f"{family}: left unknown, {why}")
    for region, block in _seed_blocks(args, catalog, by_region, source=source, stale=stale, listed=listed).items():
        # The primary source is never overwritten: beside a Price List block the seed only fills what it lacks.
        _stack(blocks, seeds, region, block, origin)
        print(f"{region}: {len(block['prices'])} prices, {len(block['notes'])} types without one"
              + (" (seed beside the Price List's)" if region in primary else ""))
    data["ec2_on_demand"]["regions"] = dict(sorted(blocks.items()))
    data["ec2_on_demand"]["seed_regions"] = dict(sorted(seeds.items()))
    # Spot has no Price List to defer to: every catalog Region the file prices, its rates as the file recorded them,
    # less the families whose On-Demand rates moved since: Batch buys Spot only below a share of the current
    # On-Demand price (bidPercentage, 100% by default:
    # https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeResource.html), and the file's Spot rates
    # were read under the old one (its p5.48xlarge Spot rates reach 127.816, the pre-cut On-Demand rate there).
    spot_source = f"{origin} (column SpotPrice: Linux Spot USD/hour per AZ ID, as the file recorded it){note}"
    spot = data.setdefault("ec2_spot", {"unit": SPOT_UNIT, "regions": {}})
    spot_blocks, spot_seeds = spot["regions"], spot.setdefault("seed_regions", {})
    for region, block in _seed_blocks(args, catalog, spot_by_region, source=spot_source, stale=stale,
                                      listed=listed).items():
        _stack(spot_blocks, spot_seeds, region, block, origin)
        print(f"{region}: Spot prices for {len(block['prices'])} types, {len(block['notes'])} without")
    spot["regions"], spot["seed_regions"] = dict(sorted(spot_blocks.items())), dict(sorted(spot_seeds.items()))
    return _write(args.output, data)


if __name__ == "__main__":
    raise SystemExit(main())
