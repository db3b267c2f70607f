"""Names and values: one function names benchmark and workload job definitions, and a workload whose definition would
take another definition's name is refused before anything is registered; a workload's environment variable names
follow AWS Batch's rules and leave rackform's own job environment alone."""

from __future__ import annotations

import pytest

from rackform.plan import naming
from rackform.cli import main
from rackform.spec.problems import SpecError
from rackform.pipeline import parse_workload


def test_one_function_names_benchmark_and_workload_definitions():
    assert naming.job_definition("c", "r", "a", "single") == "c-r-a-single"
    assert naming.job_definition("c", "r", "a", workload="llm-serve") == "c-r-a-wl-llm-serve"
    for neither_or_both in ({}, {"kind": "single", "workload": "w"}):
        with pytest.raises(ValueError):
            naming.job_definition("c", "r", "a", **neither_or_both)


def test_a_workload_named_like_a_job_kind_collides_with_a_wl_node_groups_benchmark_definition():
    # issue 18 item 11: workload `single` on node group `a` and node group `a-wl`'s benchmark definition
    assert naming.job_definition("c", "r", "a", workload="single") == naming.job_definition("c", "r", "a-wl", "single")
    found = naming.job_definition_collisions("c", [("r", "a"), ("r", "a-wl")], [("single", "r", "a")])
    assert found == ["workload 'single' on r/a would register its job definition as 'c-r-a-wl-single', already the "
                     "name of the single benchmark definition of node group r/a-wl; rename the workload or the node "
                     "group"]


def test_two_workloads_whose_definitions_meet_are_found_and_distinct_names_are_not():
    # workload `x-wl-y` on `a` and workload `y` on `a-wl-x` are both c-r-a-wl-x-wl-y
    found = naming.job_definition_collisions("c", [("r", "a"), ("r", "a-wl-x")],
                                             [("x-wl-y", "r", "a"), ("y", "r", "a-wl-x")])
    assert len(found) == 1 and "workload 'y' on r/a-wl-x" in found[0] and "workload 'x-wl-y' on r/a" in found[0]
    assert naming.job_definition_collisions("c", [("r", "a"), ("r", "b")],
                                            [("single", "r", "a"), ("single", "r", "b"), ("w", "r", "a")]) == []


SPEC = """name: c
region: us-east-1
availability_zone: use1-az6
racks:
  - name: r
    node_groups:
      - {name: a, instance_type: m7g.xlarge, count: 1}
      - {name: a-wl, instance_type: m7g.xlarge, count: 1}
"""


@pytest.mark.parametrize("command", ["place", "run"])
def test_place_and_run_refuse_a_workload_whose_definition_takes_another_name(tmp_path, capsys, command):
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "w.yaml").write_text("name: single\nclass: general\ntiers: {graviton: {image: i, command: [c]}}\n")
    assert main([command, str(tmp_path / "w.yaml"), "--spec", str(tmp_path / "spec.yaml"), "--no-live"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert ("error: workload 'single' on r/a would register its job definition as 'c-r-a-wl-single', already the "
            "name of the single benchmark definition of node group r/a-wl") in err


# --- a workload's environment variable names ------------------------------------------------------------------------

def with_environment(environment: dict[str, str]):
    return parse_workload({"name": "w", "class": "general",
                           "tiers": {"cpu": {"image": "i", "command": ["c"], "environment": environment}}})


@pytest.mark.parametrize("name, why", [
    ("", "an empty name is no environment variable"),
    ("A=B", "contains =, which cannot be part of an environment variable's name"),
    ("A\0B", "contains a NUL"),
    ("AWS_BATCH_JOB_ID", "starts with AWS_BATCH, which AWS Batch reserves for the variables it sets"),
    ("AWS_BATCHX", "starts with AWS_BATCH,"),
    ("RACKFORM_BUCKET", "starts with RACKFORM_, which rackform reserves for the job environment it writes"),
])
def test_environment_names_batch_or_rackform_would_refuse_or_overwrite_are_refused(name, why):
    with pytest.raises(SpecError) as e:
        with_environment({"OK": "1", name: "x"})
    [p] = e.value.problems
    assert p.path == "tiers.cpu.environment"
    assert p.message.startswith(f"{name!r} {why}") and p.message.endswith("; rename it")


def test_ordinary_environment_names_are_kept():
    env = {"NCCL_DEBUG": "INFO", "MY_AWS_BATCH": "1", "MY_RACKFORM_": "1", "_": "x"}
    assert with_environment(env).tiers["cpu"].environment == env


# --- what is already registered under the name --------------------------------------------------------------------

class Registered:
    """describe_job_definitions answering `revisions`; register_job_definition recorded."""

    def __init__(self, *revisions: dict):
        self.revisions, self.registered = list(revisions), []

    def describe_job_definitions(self, jobDefinitionName: str, status: str) -> dict:
        return {"jobDefinitions": [r for r in self.revisions if r["jobDefinitionName"] == jobDefinitionName]}

    def register_job_definition(self, **request) -> dict:
        self.registered.append(request)
        return {"jobDefinitionArn": f"arn:new:{len(self.registered)}"}


def request(name: str = "c-r-a-wl-single", digest: str = "d1") -> dict:
    return {"jobDefinitionName": name, "tags": {"rackform:spec": "c", "rackform:workload": "single",
                                                 "rackform:digest": digest}}


def revision(revision: int, **tags: str) -> dict:
    return {"jobDefinitionName": "c-r-a-wl-single", "revision": revision,
            "jobDefinitionArn": f"arn:c-r-a-wl-single:{revision}", "tags": tags}


@pytest.mark.parametrize("theirs, what", [
    ({"rackform:spec": "c", "rackform:job-kind": "single"}, "spec 'c''s single benchmark definition"),
    ({"rackform:spec": "c-r", "rackform:workload": "single", "rackform:digest": "d1"},
     "workload 'single' of spec 'c-r'"),
    ({}, "not registered by rackform"),
])
def test_a_name_another_definition_holds_is_never_given_a_revision(theirs, what):
    from rackform.jobs.workload_jobs import PlacementError, ensure_job_definition

    batch = Registered(revision(1, **theirs))
    with pytest.raises(PlacementError) as e:
        ensure_job_definition(batch, request())
    assert str(e.value) == (f"job definition c-r-a-wl-single is already {what} (revision 1); workload 'single' would "
                            "add a revision to it: rename the workload")
    assert batch.registered == []


def test_the_workloads_own_revisions_are_reused_or_added_to():
    from rackform.jobs.workload_jobs import ensure_job_definition

    own = {"rackform:spec": "c", "rackform:workload": "single"}
    batch = Registered(revision(1, **own, **{"rackform:digest": "d0"}),
                       revision(2, **own, **{"rackform:digest": "d1"}))
    assert ensure_job_definition(batch, request()) == "arn:c-r-a-wl-single:2" and batch.registered == []
    assert ensure_job_definition(batch, request(digest="d2")) == "arn:new:1"
    assert [r["tags"]["rackform:digest"] for r in batch.registered] == ["d2"]
