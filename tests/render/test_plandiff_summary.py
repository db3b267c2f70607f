"""Issue 25 item 5: `plan --against` opens with a count of what CloudFormation adds, changes, replaces and deletes,
and a red warning where the racks' data would be left behind (a new, empty file system)."""

from __future__ import annotations

import yaml

from rackform.pipeline import load_plan
from rackform.plan.diff import diff_plans
from rackform.render.plandiff import render_diff
from tests.conftest import ROOT, dump, run_cli

SPEC = str(ROOT / "examples" / "demo.yaml")


def _edited(tmp_path, edit) -> str:
    data = yaml.safe_load(open(SPEC))
    edit(data)
    return str(dump(tmp_path, data, "new.yaml"))


def _scratch_and_no_gpu(d) -> None:
    d["storage"]["fsx_lustre"]["deployment_type"] = "SCRATCH_2"  # replaces the file system
    del d["storage"]["fsx_lustre"]["per_unit_storage_throughput"]
    d["racks"] = d["racks"][:2]  # the gpu rack's stack deleted
    d["racks"][0]["node_groups"][0]["count"] = 2


def test_the_summary_counts_stacks_by_what_cloudformation_does_and_warns_of_the_empty_file_system(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "plan", _edited(tmp_path, _scratch_and_no_gpu), "--against", SPEC)
    lines = out.splitlines()
    assert code == 0 and lines[1] == "stacks: 0 to add, 2 to change, 1 to replace, 1 to delete"
    [warning] = [line for line in lines if line.startswith("warning: data:")]
    assert warning.startswith("warning: data: demo-storage: FSx file system replaced (deployment_type, "
                              "per_unit_storage_throughput): a new, empty file system, the old one retained")
    assert "demo-rack-gpu" not in warning  # a rack stack holds no data


def test_a_change_in_place_warns_of_nothing_and_the_warning_is_red_on_a_terminal(tmp_path):
    grown = _edited(tmp_path, lambda d: d["racks"][0]["node_groups"][0].update(count=3))
    text = render_diff(diff_plans(load_plan(SPEC), load_plan(grown)), SPEC, grown, colour=True)
    assert text.splitlines()[1] == "stacks: 0 to add, 1 to change, 0 to replace, 0 to delete"
    assert "warning" not in text and "\x1b[" not in text
    replaced = _edited(tmp_path, _scratch_and_no_gpu)
    text = render_diff(diff_plans(load_plan(SPEC), load_plan(replaced)), SPEC, replaced, colour=True)
    assert "\x1b[1;31mwarning: data: demo-storage" in text
