#!/usr/bin/env python3
"""Refresh the EC2 on-demand prices in rackform/reference/data/prices.json from the AWS Price List API.

    python scripts/refresh_prices.py                                  # us-east-1, every catalog type offered there
    python scripts/refresh_prices.py --regions us-east-1 us-east-2
    python scripts/refresh_prices.py --instance-types p5.48xlarge trn1.32xlarge -o /tmp/prices.json

Needs AWS credentials allowed to call pricing:GetProducts. The Price List API answers only in a few Regions
(us-east-1 among them) but lists prices for every Region. Each refreshed Region's block is replaced whole and
dated today; other Regions and the hand-maintained FSx, NAT gateway and endpoint sections are kept as they are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rackform.reference.catalog import load_catalog  # noqa: E402
from rackform.reference.prices import PRICES_PATH, PriceBook  # noqa: E402
from rackform.reference.refresh import ec2_region_block  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", nargs="+", default=["us-east-1"], help="Regions to price (default: us-east-1)")
    parser.add_argument("--instance-types", nargs="+", help="default: every catalog type (the supported families) "
                        "that the catalog says the Region offers")
    parser.add_argument("-o", "--output", type=Path, default=PRICES_PATH,
                        help="snapshot to update (default: rackform/reference/data/prices.json)")
    args = parser.parse_args(argv)

    import boto3

    catalog = load_catalog()
    source = args.output if args.output.exists() else PRICES_PATH
    data = json.loads(source.read_text())
    pricing = boto3.client("pricing", region_name="us-east-1")
    today = dt.date.today()
    for region in args.regions:
        types = args.instance_types or sorted(catalog.offerings.get(region, {}))
        if not types:
            print(f"error: the catalog lists no instance types offered in {region}; give --instance-types",
                  file=sys.stderr)
            return 2
        block = ec2_region_block(pricing, region, types, today)
        data["ec2_on_demand"]["regions"][region] = block
        print(f"{region}: {len(block['prices'])} prices, {len(block['notes'])} types without one")
    PriceBook.model_validate(data)  # never write a snapshot rackform cannot read back
    args.output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
