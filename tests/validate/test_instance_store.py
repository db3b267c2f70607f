"""A node group's NVMe instance store as scratch: on by default where the type has it, an error where it is asked for
on a type without, and a mount path of its own (not a system directory nor the users' homes, not the FSx mount, in
either direction)."""

from __future__ import annotations

import pytest

from rackform.spec.models import json_schema, parse_spec
from rackform.validate import validate_spec

H100 = ("racks", 2, "node_groups", 0)  # p5.48xlarge: 8 NVMe instance store disks
HEAD = ("racks", 0, "node_groups", 0)  # c8g.4xlarge: none


def store_problems(demo, catalog, where=H100, **store):
    demo[where[0]][where[1]][where[2]][where[3]]["instance_store"] = store
    return [(p.path, p.message) for p in validate_spec(parse_spec(demo), catalog) if p.rule == "instance-store"]


def test_the_default_is_valid_on_types_with_and_without_instance_store(demo, catalog):
    assert store_problems(demo, catalog) == []
    assert store_problems(demo, catalog, where=HEAD) == []


def test_asking_for_it_on_a_type_without_names_the_field_and_the_type(demo, catalog):
    [(path, message)] = store_problems(demo, catalog, where=HEAD, enabled=True)
    assert path == "racks[0].node_groups[0].instance_store.enabled"
    assert message.startswith("c8g.4xlarge has no instance store: remove instance_store.enabled")


def test_turning_it_off_is_valid_anywhere_and_skips_the_path(demo, catalog):
    assert store_problems(demo, catalog, where=HEAD, enabled=False) == []
    assert store_problems(demo, catalog, enabled=False, mount_path="/etc") == []


@pytest.mark.parametrize("path, words", [
    ("scratch", "is not an absolute path"),
    ("/scratch/../etc", "has a '..' component"),
    ("/scratch/", "has an empty component"),
    ("/var/lib/docker", "is inside /var/lib, which the nodes or the job images need: the instance store is mounted"),
    ("/opt", "is /opt"),
    ("/", "is the root directory"),
    ("/var", "holds /var/lib"),
    ("/home", "is /home, which the nodes or the job images need: the instance store is mounted there on every node "
              "and in every job container; choose a directory of its own, e.g. /scratch or /mnt/scratch"),
    ("/home/ec2-user", "is inside /home"),
    ("/fsx", "is /fsx, the FSx mount path (storage.fsx_lustre.mount_path)"),
    ("/fsx/nvme", "is inside /fsx, the FSx mount path"),
])
def test_a_mount_path_that_is_not_a_directory_of_its_own_is_refused(demo, catalog, path, words):
    [(field, message)] = store_problems(demo, catalog, mount_path=path)
    assert field == "racks[2].node_groups[0].instance_store.mount_path"
    assert words in message, message


def test_a_path_holding_the_fsx_mount_is_refused(demo, catalog):
    demo["storage"]["fsx_lustre"]["mount_path"] = "/mnt/fsx"
    [(_, message)] = store_problems(demo, catalog, mount_path="/mnt")
    assert "holds /mnt/fsx, the FSx mount path" in message


@pytest.mark.parametrize("path", ["/scratch", "/mnt/nvme", "/local/scratch"])
def test_the_jobs_work_directory_and_plain_paths_are_accepted(demo, catalog, path):
    # /scratch is the jobs' work directory, which the FSx mount may not take; the instance store becomes it.
    assert store_problems(demo, catalog, mount_path=path) == []


def test_schema_states_the_fields_their_defaults_and_units(catalog):
    defs = json_schema()["$defs"]
    store = defs["InstanceStore"]["properties"]
    assert store["mount_path"]["default"] == "/scratch"
    assert store["enabled"]["default"] is None and "NVMe instance store" in store["enabled"]["description"]
    assert defs["NodeGroup"]["properties"]["instance_store"]["$ref"].endswith("/InstanceStore")
    assert defs["InstanceStore"]["additionalProperties"] is False
