"""`rackform cost`: the command line over the pure cost module."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from ..aws import PaginatingClient
from ..capacity import of as capacity_kind
from ..reference.prices import Quote, load_price_file, load_prices, with_live
from .common import Subparsers, aws_options, budget_arg, checked_plan, price_arg


def ec2_client(region: str, profile: str | None = None, endpoint_url: str | None = None) -> PaginatingClient:
    """EC2 client for --spot-live (your credentials); tests replace this with a stubbed client."""
    from .. import aws

    client: PaginatingClient = aws.client(aws.Target(region, profile, endpoint_url), "ec2")
    return client


def pricing_client(profile: str | None = None, endpoint_url: str | None = None) -> PaginatingClient:
    """Price List API client for --live (your credentials); tests replace this with a stubbed client. The API
    answers in us-east-1 (among a few Regions) and lists the prices of every Region
    (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html)."""
    from .. import aws

    client: PaginatingClient = aws.client(aws.Target("us-east-1", profile, endpoint_url), "pricing")
    return client


def _why(e: Exception) -> str:
    """What went wrong reading prices, in one line: AWS's failures explained, anything else by its type."""
    from ..aws import explained, is_aws_error

    return explained(e).message if is_aws_error(e) else f"{type(e).__name__}: {e}"


def cmd_cost(args: argparse.Namespace) -> int:
    from ..plan import cost
    from ..reference.refresh import ec2_region_block, network_rates, spot_prices
    from ..render.cost import render_cost, report_json

    plan = checked_plan(args.spec)
    overrides: dict[str, Quote] = {}
    if args.prices_file:
        try:
            overrides.update({k: Quote(v, f"prices file {args.prices_file}")
                              for k, v in load_price_file(args.prices_file).items()})
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    overrides.update({k: Quote(v, "--price") for k, v in args.price})
    spot: dict[str, Quote] = {}
    spot_types = {g.instance_type for g in plan.node_groups() if capacity_kind(g.capacity.type).price == "spot"}
    if args.spot_live and spot_types:
        try:
            spot = spot_prices(ec2_client(plan.region, args.profile, args.endpoint_url), spot_types,
                               plan.availability_zone)
        except Exception as e:  # credentials, network, permissions: the user's environment, not a bug
            print(f"error: cannot read Spot prices for --spot-live ({_why(e)}). Check AWS credentials, or give "
                  "--price instead", file=sys.stderr)
            return 1
    book = load_prices()
    on_demand_types = {g.instance_type for g in plan.node_groups()
                       if capacity_kind(g.capacity.type).price == "on-demand-snapshot"}
    # An existing network's NAT gateways and endpoints are not priced (its owner pays), so not read either.
    creates_network = plan.network.existing is None
    if args.live and (on_demand_types or creates_network):
        today = dt.date.today()
        try:
            client = pricing_client(args.profile, args.endpoint_url)
            block = ec2_region_block(client, plan.region, on_demand_types, today) if on_demand_types else None
            network = network_rates(client, plan.region, today) if creates_network else {}
        except ValueError as e:  # the Price List answered, with more than one rate where rackform expects one
            print(f"error: cannot read prices for --live: {e}; leave out --live to use the snapshot, or give the "
                  "price with --price", file=sys.stderr)
            return 1
        except Exception as e:  # credentials, network, permissions: the user's environment, not a bug
            print(f"error: cannot read prices for --live ({_why(e)}). Check AWS credentials "
                  "(pricing:GetProducts), or leave out --live to use the snapshot", file=sys.stderr)
            return 1
        book = with_live(book, plan.region, block, network)
    report = cost.cost_plan(plan, book, overrides, spot)
    for key in report.unused_prices:
        print(f"warning: price for {key!r} matches no node group (use an instance type of the spec or "
              f"RACK/GROUP)", file=sys.stderr)
    verdict = None if args.budget is None else cost.check_budget(report, args.budget)
    if args.json:
        print(json.dumps(report_json(report, verdict), indent=2, ensure_ascii=False))
    else:
        print(render_cost(report, verdict))
    if verdict is not None and not verdict.ok:
        print(f"error: {verdict.message}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Subparsers) -> None:
    """Add `rackform cost` to the CLI's subparsers."""
    p = subparsers.add_parser("cost", help="USD per hour and month per node group, rack and cluster "
                              "(exit 1 over --budget)")
    p.add_argument("spec", help="path to the rack spec YAML")
    p.add_argument("--json", action="store_true", help="machine-readable; totals are null when any price is "
                   "unknown, with the priced part in *_known_* fields")
    p.add_argument("--budget", type=budget_arg("USD per hour, e.g. --budget 150"), metavar="USD_PER_HOUR",
                   help="exit 1 unless the whole cluster is priced and costs at most this")
    p.add_argument("--price", action="append", type=price_arg, default=[], metavar="KEY=USD_PER_HOUR",
                   help="price per instance-hour for an instance type or one RACK/GROUP (repeatable); needed for "
                   "capacity blocks and reservations, wins over every other source")
    p.add_argument("--prices-file", metavar="FILE", help="YAML or JSON mapping KEY: USD_PER_HOUR, same keys as "
                   "--price (which wins over it)")
    p.add_argument("--spot-live", action="store_true", help="read current Spot prices for spot node groups from "
                   "EC2 (needs credentials)")
    p.add_argument("--live", action="store_true", help="read On-Demand, NAT gateway and interface endpoint prices "
                   "for the spec's Region from the AWS Price List API instead of the snapshot (needs credentials)")
    aws_options(p, region=False, bucket=False)  # for --live and --spot-live; the Region is the spec's
    p.set_defaults(func=cmd_cost)
