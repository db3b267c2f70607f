"""Every validation rule, good and bad, with the message asserted: field path, bad value, what is valid."""

from __future__ import annotations

import pytest

from rackform.spec.problems import SpecError
from rackform.spec.models import parse_spec
from rackform.validate import RULES, validate_spec


def check(data, catalog):
    return validate_spec(parse_spec(data), catalog)


def only(problems, rule):
    found = [p for p in problems if p.rule == rule]
    assert found, f"rule {rule} did not fire; got {problems}"
    return found


def clean(problems):
    """All but the example's one expected problem: its Capacity Block group's warning that AWS Batch does not
    document Capacity Blocks (asserted in test_example_is_valid)."""
    return [p for p in problems if p.rule != "capacity-block-batch"]


def test_example_is_valid(demo, catalog):
    assert [(p.level, p.rule, p.path) for p in check(demo, catalog)] == [
        ("warning", "capacity-block-batch", "racks[1].node_groups[0].capacity.type")]


def test_every_rule_has_a_unique_id_and_a_doc():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(r.doc and r.level in ("error", "warning") for r in RULES)


# --- schema: unknown keys, names, counts ---------------------------------------------------------------------

def schema_problems(data):
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    return e.value.problems


def test_unknown_key_suggests_the_right_one(demo):
    demo["racks"][1]["node_groups"][0]["instanc_type"] = "trn2.48xlarge"
    [p] = [p for p in schema_problems(demo) if "instanc_type" in p.path]
    assert p.path == "racks[1].node_groups[0].instanc_type"
    assert "did you mean 'instance_type'" in p.message


def test_unknown_top_level_key_lists_allowed_keys(demo):
    demo["regoin"] = "us-east-2"
    [p] = schema_problems(demo)
    assert p.path == "regoin" and "did you mean 'region'" in p.message and "availability_zone" in p.message


@pytest.mark.parametrize("bad", ["Demo", "demo_1", "-demo", "demo-", "a" * 25, "", "1demo"])
def test_bad_names(demo, bad):
    demo["racks"][0]["name"] = bad
    [p] = schema_problems(demo)
    assert p.path == "racks[0].name" and repr(bad) in p.message and "lowercase" in p.message


@pytest.mark.parametrize("count", [0, -3])
def test_count_below_one(demo, count):
    demo["racks"][0]["node_groups"][0]["count"] = count
    [p] = schema_problems(demo)
    assert p.path == "racks[0].node_groups[0].count" and "at least 1" in p.message and str(count) in p.message


def test_all_schema_problems_are_collected(demo):
    demo["racks"][0]["node_groups"][0]["count"] = 0
    demo["racks"][2]["node_groups"][0]["tier"] = "gpus"
    demo["storage"]["fsx_lustre"]["deployment_type"] = "PERSISTENT_3"
    paths = {p.path for p in schema_problems(demo)}
    assert paths == {"racks[0].node_groups[0].count", "racks[2].node_groups[0].tier",
                     "storage.fsx_lustre.deployment_type"}


def test_bad_literal_says_what_is_allowed(demo):
    demo["racks"][2]["node_groups"][0]["capacity"] = {"type": "spott"}
    [p] = schema_problems(demo)
    assert "did you mean 'spot'" in p.message and "capacity-block" in p.message


def test_missing_racks(demo):
    del demo["racks"]
    [p] = schema_problems(demo)
    assert p.path == "racks" and "required" in p.message


def test_duplicate_rack_names(demo, catalog):
    demo["racks"][2]["name"] = "graviton"
    [p] = only(check(demo, catalog), "unique-rack-names")
    assert p.path == "racks[2].name" and "racks[0]" in p.message


def test_duplicate_node_group_names(demo, catalog):
    demo["racks"][0]["node_groups"][1]["name"] = "head"
    [p] = only(check(demo, catalog), "unique-node-group-names")
    assert p.path == "racks[0].node_groups[1].name"


def test_derived_names_collide(demo, catalog):
    demo["racks"] = [
        {"name": "a-b", "node_groups": [{"name": "c", "instance_type": "c8g.4xlarge", "count": 1}]},
        {"name": "a", "node_groups": [{"name": "b-c", "instance_type": "c8g.4xlarge", "count": 1}]},
    ]
    [p] = only(check(demo, catalog), "unique-resource-names")
    assert "trn2-a-b-c" in p.message


# --- where ---------------------------------------------------------------------------------------------------

def test_az_not_in_region(demo, catalog):
    demo["availability_zone"] = "us-east-1a"
    [p] = only(check(demo, catalog), "az-in-region")
    assert p.path == "availability_zone" and "us-east-2a, us-east-2b, us-east-2c" in p.message


def test_unknown_region_suggests(demo, catalog):
    demo["region"] = "us-east-22"
    [p] = only(check(demo, catalog), "region-known")
    assert "did you mean 'us-east-2'" in p.message


# --- instances -----------------------------------------------------------------------------------------------

def test_misspelt_instance_type(demo, catalog):
    demo["racks"][1]["node_groups"][0]["instance_type"] = "trn2.48xlage"
    [p] = only(check(demo, catalog), "instance-type-known")
    assert p.path == "racks[1].node_groups[0].instance_type" and "did you mean 'trn2.48xlarge'" in p.message


def test_a_size_the_family_lacks_suggests_its_nearest_sizes(demo, catalog):
    demo["racks"][2]["node_groups"][0]["instance_type"] = "p5.96xlarge"
    [p] = only(check(demo, catalog), "instance-type-known")
    assert "did you mean 'p5.48xlarge' or 'p5.4xlarge'?" in p.message


def test_unsupported_family(demo, catalog):
    demo["racks"][0]["node_groups"][0]["instance_type"] = "t3.micro"
    [p] = only(check(demo, catalog), "instance-type-known")
    assert "family 't3' is not supported" in p.message


def test_trn2_in_us_east_1a_names_the_azs_and_regions_that_offer_it(demo, catalog):
    demo.update(region="us-east-1", availability_zone="us-east-1a")
    problems = [p for p in only(check(demo, catalog), "instance-offered-in-az")
                if p.path == "racks[1].node_groups[0].instance_type"]
    [p] = problems
    assert "not offered in us-east-1a" in p.message and "us-east-2" in p.message


def test_type_offered_in_other_azs_of_the_region(demo, catalog):
    demo.update(region="us-east-1", availability_zone="use1-az1")
    demo["racks"] = [{"name": "r", "node_groups": [{"name": "g", "instance_type": "p5en.48xlarge", "count": 1}]}]
    [p] = only(check(demo, catalog), "instance-offered-in-az")
    assert "offered in use1-az2, use1-az6" in p.message


def test_tier_contradicts_instance(demo, catalog):
    demo["racks"][2]["node_groups"][0]["tier"] = "trainium"
    [p] = only(check(demo, catalog), "tier-matches-instance")
    assert p.path == "racks[2].node_groups[0].tier" and "'gpu'" in p.message


def test_tier_matching_instance_is_fine(demo, catalog):
    demo["racks"][2]["node_groups"][0]["tier"] = "gpu"
    demo["racks"][0]["node_groups"][0]["tier"] = "graviton"
    assert clean(check(demo, catalog)) == []


def test_efa_on_a_type_without_efa(demo, catalog):
    demo["racks"][0]["node_groups"][0]["efa"] = True  # c8g.4xlarge
    [p] = only(check(demo, catalog), "efa-supported")
    assert p.path == "racks[0].node_groups[0].efa" and "c8g.4xlarge does not support EFA" in p.message
    assert "c8g.48xlarge" in p.message  # names the family's types that do


def test_multi_node_accelerators_without_efa_is_a_warning(demo, catalog):
    demo["racks"][2]["node_groups"][0]["efa"] = False
    [p] = only(check(demo, catalog), "multi-node-accelerators-without-efa")
    assert p.level == "warning" and p.path == "racks[2].node_groups[0].count"


def test_single_node_accelerator_without_efa_is_fine(demo, catalog):
    demo["racks"][2]["node_groups"][0].update(efa=False, count=1)
    assert clean(check(demo, catalog)) == []


# --- capacity ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rid", ["cr-123", "cr-0123456789ABCDEF0", "r-0123456789abcdef0", "cr-0123456789abcdef0x"])
def test_malformed_reservation_ids(demo, catalog, rid):
    demo["racks"][1]["node_groups"][0]["capacity"]["reservation_id"] = rid
    [p] = only(check(demo, catalog), "reservation-id")
    assert p.path == "racks[1].node_groups[0].capacity.reservation_id" and repr(rid) in p.message


def test_reservation_without_id(demo, catalog):
    demo["racks"][1]["node_groups"][0]["capacity"] = {"type": "reservation"}
    [p] = only(check(demo, catalog), "reservation-id")
    assert "needs reservation_id" in p.message


def test_reservation_id_with_on_demand(demo, catalog):
    demo["racks"][1]["node_groups"][0]["capacity"]["type"] = "on-demand"
    [p] = only(check(demo, catalog), "reservation-id")
    assert "only used with type reservation or capacity-block" in p.message


def test_short_reservation_id_is_fine(demo, catalog):
    demo["racks"][1]["node_groups"][0]["capacity"]["reservation_id"] = "cr-0123abcd"
    assert clean(check(demo, catalog)) == []


def test_spot_for_multi_node_efa_warns(demo, catalog):
    demo["racks"][2]["node_groups"][0]["capacity"] = {"type": "spot"}
    [p] = only(check(demo, catalog), "spot-multi-node")
    assert p.level == "warning"


# --- storage -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gib,next_valid", [(1000, 1200), (1800, 2400), (5000, 7200)])
def test_fsx_capacity(demo, catalog, gib, next_valid):
    demo["storage"]["fsx_lustre"]["storage_capacity_gib"] = gib
    [p] = only(check(demo, catalog), "fsx-capacity")
    assert p.path == "storage.fsx_lustre.storage_capacity_gib" and f"next valid size is {next_valid}" in p.message


@pytest.mark.parametrize("gib", [1200, 2400, 9600])
def test_fsx_capacity_valid(demo, catalog, gib):
    demo["storage"]["fsx_lustre"]["storage_capacity_gib"] = gib
    assert clean(check(demo, catalog)) == []


@pytest.mark.parametrize("kind,throughput,fragment", [
    ("PERSISTENT_2", 200, "125, 250, 500, 1000"),
    ("PERSISTENT_1", 250, "50, 100, 200"),
    ("SCRATCH_2", 250, "no throughput setting"),
    ("PERSISTENT_2", None, "needs per_unit_storage_throughput"),
])
def test_fsx_throughput(demo, catalog, kind, throughput, fragment):
    demo["storage"]["fsx_lustre"].update(deployment_type=kind, per_unit_storage_throughput=throughput)
    [p] = only(check(demo, catalog), "fsx-throughput")
    assert p.path == "storage.fsx_lustre.per_unit_storage_throughput" and fragment in p.message


@pytest.mark.parametrize("path", ["my-datasets/train", "s3:/bucket", "https://bucket.s3.amazonaws.com/x", "s3://B"])
def test_fsx_data_repository_must_be_s3(demo, catalog, path):
    demo["storage"]["fsx_lustre"]["data_repository_path"] = path
    [p] = only(check(demo, catalog), "fsx-data-repository")
    assert "s3://bucket-name" in p.message


@pytest.mark.parametrize("path, why", [
    ("/fsx/../etc", "has a '..' component"),
    ("/./fsx", "has a '.' component"),
    ("/fsx//data", "has an empty component ('//' or a trailing '/'); write /fsx/data"),
    ("/fsx/", "has an empty component"),
    ("/", "is the root directory"),
    ("/etc", "is /etc,"),
    ("/usr/local/fsx", "is inside /usr,"),
    ("/var/lib/docker", "is inside /var/lib,"),
    ("/var", "holds /var/lib,"),
    ("/var/lock", "is /var/lock,"),  # a link to /run/lock
    ("/var/lock/fsx", "is inside /var/lock,"),
    ("/var/cache", "holds /var/cache/ecs,"),  # ecs-init's cached agent image
    ("/opt/fsx", "is inside /opt,"),
    ("/scratch", "is /scratch,"),  # the jobs' scratch volume in every container
])
def test_fsx_mount_path_is_a_directory_of_its_own(demo, catalog, path, why):
    demo["storage"]["fsx_lustre"]["mount_path"] = path
    [p] = only(check(demo, catalog), "fsx-mount-path")
    assert p.path == "storage.fsx_lustre.mount_path" and p.message.startswith(f"{path!r} {why}")


@pytest.mark.parametrize("path", ["/fsx", "/mnt/fsx", "/data/lustre.v2", "/home/shared", "/variable",
                                  "/var/cache/fsx"])
def test_fsx_mount_path_of_its_own_is_accepted(demo, catalog, path):
    demo["storage"]["fsx_lustre"]["mount_path"] = path
    assert not [p for p in check(demo, catalog) if p.rule == "fsx-mount-path"]


# --- network and quotas --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cidr", ["10.40.0.0/33", "10.40.0.1/16", "banana", "fd00::/56"])
def test_invalid_vpc_cidr(demo, catalog, cidr):
    demo["network"]["vpc_cidr"] = cidr
    [p] = only(check(demo, catalog), "vpc-cidr-valid")
    assert p.path == "network.vpc_cidr"


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.40.0.0/28"])
def test_vpc_prefix_out_of_range(demo, catalog, cidr):
    # a /28 is a valid VPC, but its private half (/29) would be below the smallest subnet AWS allows
    demo["network"]["vpc_cidr"] = cidr
    [p] = only(check(demo, catalog), "vpc-cidr-valid")
    assert "/16 to /27" in p.message


def test_vpc_too_small_for_the_plan(demo, catalog):
    demo["network"]["vpc_cidr"] = "10.40.0.0/25"  # private half: /26, 59 usable; the demo needs 149
    [p] = only(check(demo, catalog), "vpc-cidr-large-enough")
    assert "need 149 addresses" in p.message and "(/26, 59 usable" in p.message
    assert "use a /23 VPC or larger" in p.message


def test_vpc_just_large_enough(demo, catalog):
    demo["network"]["vpc_cidr"] = "10.40.0.0/23"  # private /24: 251 usable >= 149
    assert clean(check(demo, catalog)) == []


def test_large_cluster_needs_a_larger_vpc(demo, catalog):
    demo["racks"][2]["node_groups"][0]["count"] = 40  # 40 x p5: 33 IPs each
    demo["network"]["vpc_cidr"] = "10.40.0.0/22"
    [p] = only(check(demo, catalog), "vpc-cidr-large-enough")
    assert "use a /20 VPC or larger" in p.message


def test_cluster_beyond_a_16(demo, catalog):
    demo["racks"][2]["node_groups"][0]["count"] = 1000
    [p] = only(check(demo, catalog), "vpc-cidr-large-enough")
    assert "more than a /16 VPC holds" in p.message


@pytest.mark.parametrize("layout,needed", [("efa", 83 + 100 * (4 + 1)), ("efa-only", 83 + 100 * 2)])
def test_subnet_check_follows_the_efa_layout(demo, catalog, layout, needed):
    # 100 x p4d.24xlarge beside the example's other groups (83 addresses) in a /22: the private /23 holds 507
    demo["racks"][2]["node_groups"][0].update(instance_type="p4d.24xlarge", count=100, efa_interfaces=layout)
    demo["network"]["vpc_cidr"] = "10.40.0.0/22"
    problems = [p for p in check(demo, catalog) if p.rule == "vpc-cidr-large-enough"]
    if needed > 507:
        [p] = problems
        assert f"need {needed:,} addresses" in p.message and "use a /21 VPC or larger" in p.message
    else:
        assert problems == []


@pytest.mark.parametrize("change,why", [
    ({"instance_type": "c8g.4xlarge", "efa_interfaces": "efa-only"}, "c8g.4xlarge has no EFA"),
    ({"efa": False, "efa_interfaces": "efa"}, "efa is false"),
])
def test_efa_interfaces_need_efa(demo, catalog, change, why):
    demo["racks"][2]["node_groups"][0].update(change)
    [p] = only(check(demo, catalog), "efa-interfaces")
    assert p.level == "error" and p.path == "racks[2].node_groups[0].efa_interfaces" and why in p.message


def test_efa_only_on_a_two_interface_card_0_leaves_no_slot_for_multi_node_jobs(demo, catalog):
    demo["racks"][2]["node_groups"][0]["efa_interfaces"] = "efa-only"  # 2 x p5.48xlarge
    [p] = only(check(demo, catalog), "efa-interfaces")
    assert p.path == "racks[2].node_groups[0].efa_interfaces"
    assert "fills network card 0 of p5.48xlarge (2 interfaces" in p.message and "efa_interfaces: efa" in p.message


@pytest.mark.parametrize("group", [
    {"efa_interfaces": "efa-only", "count": 1},  # single-node jobs only: no task ENI
    {"efa_interfaces": "efa-only", "capacity": {"type": "spot"}},  # Spot: no multi-node jobs
    {"efa_interfaces": "efa-only", "instance_type": "p4d.24xlarge"},  # card 0 holds 15
    {"efa_interfaces": "efa"},
])
def test_efa_layouts_that_keep_batch_working(demo, catalog, group):
    demo["racks"][2]["node_groups"][0].update(group)
    assert [p for p in check(demo, catalog) if p.rule == "efa-interfaces"] == []


def test_unknown_efa_layout_is_a_schema_error(demo, catalog):
    demo["racks"][2]["node_groups"][0]["efa_interfaces"] = "efa_only"
    with pytest.raises(SpecError) as e:
        parse_spec(demo)
    assert "efa_interfaces" in str(e.value) and "efa-only" in str(e.value)


def test_public_cidr_warns(demo, catalog):
    demo["network"]["vpc_cidr"] = "52.0.0.0/16"
    [p] = only(check(demo, catalog), "vpc-cidr-private")
    assert p.level == "warning"


def test_more_node_groups_than_batch_allows(demo, catalog):
    groups = [{"name": f"g{i}", "instance_type": "c8g.4xlarge", "count": 1} for i in range(18)]
    demo["racks"] = [{"name": n, "node_groups": groups} for n in ("a", "b", "c")]
    [p] = only(check(demo, catalog), "batch-quotas")
    assert p.path == "racks" and "54 node groups" in p.message and "50" in p.message


def test_fifty_node_groups_are_allowed(demo, catalog):
    groups = [{"name": f"g{i}", "instance_type": "c8g.4xlarge", "count": 1} for i in range(10)]
    demo["racks"] = [{"name": n, "node_groups": groups} for n in ("a", "b", "c", "d", "e")]
    assert [p for p in check(demo, catalog) if p.rule == "batch-quotas"] == []


def test_too_many_node_groups_in_one_rack(demo, catalog):
    from rackform.plan.stack_limits import max_node_groups_per_rack

    ceiling = max_node_groups_per_rack()
    groups = [{"name": f"g{i}", "instance_type": "c8g.4xlarge", "count": 1} for i in range(ceiling + 1)]
    demo["racks"] = [{"name": "a", "node_groups": groups}]
    [p] = only(check(demo, catalog), "rack-stack-size")
    assert p.path == "racks[0].node_groups" and f"at most {ceiling} node groups" in p.message


@pytest.mark.parametrize(("instance_type", "fsx_path", "store_path"), [
    ("c8g.4xlarge", "/mnt/fsx/shared-datasets", None),  # no instance store: the FSx path alone
    ("p5.48xlarge", "/fsx", "/mnt/nvme/local-scratch"),
])
def test_longer_mount_paths_lower_a_racks_ceiling(demo, catalog, instance_type, fsx_path, store_path):
    # Both mount paths are written into every node group's template share (about 14 and 17 bytes a character, as
    # measured): the ceiling's groups fit at /fsx and /scratch, not with paths a few words longer.
    from rackform.plan.stack_limits import max_node_groups_per_rack

    ceiling = max_node_groups_per_rack()
    demo["racks"] = [{"name": "a", "node_groups": [{"name": f"g{i}", "instance_type": instance_type, "count": 1}
                                                   for i in range(ceiling)]}]
    assert [p for p in check(demo, catalog) if p.rule == "rack-stack-size"] == []
    demo["storage"]["fsx_lustre"]["mount_path"] = fsx_path
    for group in demo["racks"][0]["node_groups"]:
        group["instance_store"] = {"mount_path": store_path or "/scratch"}
    [p] = only(check(demo, catalog), "rack-stack-size")
    assert f"at most {ceiling - 1} node groups with mount paths longer than /fsx and /scratch" in p.message
    assert "shorten storage.fsx_lustre.mount_path or instance_store.mount_path" in p.message


def test_the_rack_ceiling_follows_the_measured_template_share():
    from rackform.plan.stack_limits import max_node_groups_per_rack

    measured = {"per_group_bytes": 36_000, "base_bytes": 3_000, "per_group_resources": 6, "base_resources": 4}
    assert max_node_groups_per_rack(measured) == (950_000 - 3_000) // 36_000 == 26
    assert max_node_groups_per_rack({**measured, "per_group_bytes": 47_000}) == 20
    assert max_node_groups_per_rack({**measured, "per_group_bytes": 1_000, "per_group_resources": 20}) == 24
