#!/usr/bin/env python3
"""Rebuild rackform/reference/data/catalog.json from the EC2 API.

    python scripts/refresh_catalog.py                  # real AWS: your credentials, every enabled Region
    python scripts/refresh_catalog.py --embedded       # moto's copy of AWS's EC2 data, no credentials
    python scripts/refresh_catalog.py --endpoint-url http://127.0.0.1:5000

Only `describe_regions`, `describe_availability_zones`, `describe_instance_types` and
`describe_instance_type_offerings` (by AZ ID) are called, so the snapshot carries exactly what `rackform validate
--live` would read. Each Region's AZ name -> AZ ID pairs are those of the account that ran the refresh (moto's with
--embedded): in Regions that map names per account they are an example, which validation does not trust. Accelerator
figures the EC2 data gets wrong are replaced by the reviewed ones in rackform.reference.refresh.ACCELERATOR_CORRECTIONS. The
output is sorted and stable: a refresh that changes nothing in AWS changes nothing in git.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rackform.reference.catalog import CATALOG_PATH, SUPPORTED_FAMILIES  # noqa: E402
from rackform.reference.refresh import catalog_from_api  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedded", action="store_true", help="read moto's EC2 data instead of AWS")
    parser.add_argument("--endpoint-url", help="EC2-compatible endpoint (e.g. a moto server)")
    parser.add_argument("--regions", nargs="*", help="limit to these Regions (default: all the API lists)")
    parser.add_argument("-o", "--output", type=Path, default=CATALOG_PATH)
    args = parser.parse_args(argv)

    import boto3

    ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
    source = "AWS EC2 API"
    if args.embedded:
        import moto
        from moto import mock_aws

        ctx = mock_aws()
        source = f"moto {moto.__version__} EC2 data (AWS DescribeInstanceTypes/DescribeInstanceTypeOfferings)"
    elif args.endpoint_url:
        source = f"EC2 API at {args.endpoint_url}"

    with ctx:
        session = boto3.Session(region_name="us-east-1")

        def client(region: str):
            return session.client("ec2", region_name=region, endpoint_url=args.endpoint_url)

        data = catalog_from_api(client, regions=args.regions, families=SUPPORTED_FAMILIES)
    data["source"] = source
    data["generated_on"] = dt.date.today().isoformat()
    args.output.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    n_types = len(data["instance_types"])
    n_regions = len(data["offerings"])
    size_kib = args.output.stat().st_size / 1024
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}: "
          f"{n_types} instance types, {n_regions} Regions, {size_kib:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
