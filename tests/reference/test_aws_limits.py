"""EC2 vCPU quotas by family and market, as AWS's On-Demand and Spot quota pages group the families."""

from __future__ import annotations

import pytest

from rackform.reference.aws_limits import vcpu_quota
from rackform.spec.models import parse_spec
from rackform.validate import validate_spec

STANDARD_SPOT = ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests")


@pytest.mark.parametrize("instance_type", ["c7gn.16xlarge", "c8g.4xlarge", "m7i.large", "r8g.xlarge", "c6i.32xlarge"])
def test_standard_families_on_spot(instance_type):
    spot = vcpu_quota(instance_type, spot=True)
    assert (spot.code, spot.name) == STANDARD_SPOT
    assert vcpu_quota(instance_type).code == "L-1216C47A"


@pytest.mark.parametrize(("instance_type", "on_demand", "spot"), [
    ("inf2.48xlarge", "L-1945791B", "L-B5D1601B"),
    ("trn2.48xlarge", "L-2C3B7624", "L-6B0D517C"),
    ("trn1n.32xlarge", "L-2C3B7624", "L-6B0D517C"),
    ("g6e.48xlarge", "L-DB2E81BA", "L-3819A6DF"),
    ("p4d.24xlarge", "L-417A185B", "L-7212CCBC"),
    ("p5.48xlarge", "L-417A185B", "L-C4BD4855"),
    ("p5e.48xlarge", "L-417A185B", "L-C4BD4855"),
    ("p5en.48xlarge", "L-417A185B", "L-C4BD4855"),
])
def test_accelerated_families_have_their_own_quotas(instance_type, on_demand, spot):
    assert vcpu_quota(instance_type).code == on_demand
    assert vcpu_quota(instance_type, spot=True).code == spot


def test_spot_p_is_split_at_p5_and_p6_is_on_neither_list():
    assert vcpu_quota("p4de.24xlarge", spot=True).name == "All P4, P3 and P2 Spot Instance Requests"
    assert vcpu_quota("p5en.48xlarge", spot=True).name == "All P5 Spot Instance Requests"
    for p6 in ("p6-b200.48xlarge", "p6-b300.48xlarge"):
        assert vcpu_quota(p6, spot=True).code is None and vcpu_quota(p6).code == "L-417A185B"


def test_hpc_is_its_own_on_demand_quota_not_standard():
    assert vcpu_quota("hpc7g.16xlarge").code == "L-F7808C92"


def test_an_hpc_group_on_spot_is_a_spec_error_not_a_crash(catalog, demo):
    # AWS sells HPC instances no Spot, so no Spot quota exists for them; validation sizes every group's addresses
    # (node_group_plan, which looks the quota up) before it reports the usage class, and must still report it.
    cpu = demo["racks"][0]["node_groups"][1]
    cpu.update(instance_type="hpc7g.16xlarge", capacity={"type": "spot"})
    problems = validate_spec(parse_spec(demo), catalog)
    assert any(p.level == "error" and p.message.startswith("hpc7g.16xlarge cannot be bought as spot")
               for p in problems), problems
