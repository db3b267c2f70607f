"""What the demo synthesizes for the NVMe instance store: the nodes of the types that have it assemble and mount
it, and their jobs mount it as their work directory and are told so (the user data part itself is run in
tests/stacks/test_user_data.py)."""

from __future__ import annotations

import json

from rackform.jobs.jobdefs import HOST_WORK_DIR
from tests.conftest import Synth


def test_the_demo_synthesizes_the_mount_on_the_nodes_and_in_the_jobs(demo_synth: Synth) -> None:
    """p5.48xlarge and trn1.32xlarge have NVMe instance store, m7g and c7gn none: the launch templates of the first
    assemble and mount it, and their job definitions mount it as the jobs' work directory, told to the job."""
    for rack in demo_synth.plan.racks:
        template = demo_synth.raw[rack.stack_name]
        for group in rack.node_groups:
            [lt] = [r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::LaunchTemplate"
                    and r["Properties"]["LaunchTemplateName"] == group.launch_template]
            user_data = json.dumps(lt["Properties"]["LaunchTemplateData"]["UserData"])
            defs = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Batch::JobDefinition"
                    and r["Properties"]["JobDefinitionName"].startswith(f"{group.resource_name}-")]
            containers = [d.get("ContainerProperties") or d["NodeProperties"]["NodeRangeProperties"][0]["Container"]
                          for d in defs]
            assert containers, group.name
            uses = group.instance_store.mount_path is not None
            assert uses == (group.instance_type in ("p5.48xlarge", "trn1.32xlarge")), group.name
            assert ("nvme-Amazon_EC2_NVMe_Instance_Storage_*" in user_data) == uses, group.name
            for c in containers:
                volumes = {v["Name"]: v["Host"]["SourcePath"] for v in c["Volumes"]}
                mounts = {m["SourceVolume"]: m["ContainerPath"] for m in c["MountPoints"]}
                env = {e["Name"]: e["Value"] for e in c["Environment"]}
                if uses:
                    assert volumes["scratch"] == mounts["scratch"] == env["RACKFORM_WORK_DIR"] == "/scratch"
                    assert env["RACKFORM_INSTANCE_STORE"] == "/scratch"
                    assert int(env["RACKFORM_INSTANCE_STORE_GB"]) == group.instance_store.size_gb > 0
                else:
                    assert volumes["scratch"] == HOST_WORK_DIR and "RACKFORM_INSTANCE_STORE" not in env
