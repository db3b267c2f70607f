"""Price List API answers for the NAT gateway and interface endpoint rates `cost --live` reads, shared by
tests/reference/test_pricing.py (refresh.network_rates) and tests/plan/test_cost.py (the command)."""

from __future__ import annotations

import json

from rackform.reference.refresh import NETWORK_PRODUCTS


def network_product(usagetype: str, unit: str, *tiers: tuple[str, str]) -> str:
    """One PriceList entry of a NAT gateway or endpoint usage type, a price dimension per (beginRange, USD) tier."""
    sku = "SKU" + usagetype.replace("-", "").upper()
    return json.dumps({
        "product": {"sku": sku, "attributes": {"usagetype": usagetype, "regionCode": "us-east-2"}},
        "terms": {"OnDemand": {f"{sku}.T": {"priceDimensions": {
            f"{sku}.T.{begin}": {"unit": unit, "beginRange": begin, "pricePerUnit": {"USD": usd}}
            for begin, usd in tiers}}}},
    })


def network_request(key: str, region: str = "us-east-2") -> dict:
    service, family, _, _ = NETWORK_PRODUCTS[key]
    return {"ServiceCode": service, "Filters": [{"Type": "TERM_MATCH", "Field": "productFamily", "Value": family},
                                                {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]}


NAT_PAGE = {"PriceList": [
    network_product("USE2-NatGateway-Hours", "Hrs", ("0", "0.0450000000")),
    network_product("USE2-NatGateway-Bytes", "GB", ("0", "0.0450000000")),
    # Same family, not the NAT gateway rackform creates: never taken for it.
    network_product("USE2-RegionalNatGateway-Hours", "Hrs", ("0", "0.0900000000")),
    network_product("USE2-NatGateway-Provisioned-Gbps", "Gbps-hrs", ("0", "0.0000000000")),
]}
ENDPOINT_PAGE = {"PriceList": [
    network_product("USE2-VpcEndpoint-Hours", "Hrs", ("0", "0.0100000000")),
    # Per-GB processing is tiered by monthly volume: the first tier is the rate a cluster pays.
    network_product("USE2-VpcEndpoint-Bytes", "GB", ("0", "0.0100000000"), ("1048576", "0.0060000000")),
    network_product("USE2-VpcEndpoint-GWLBE-Hours", "Hrs", ("0", "0.0125000000")),
]}
