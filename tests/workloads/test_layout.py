"""The S3 key layout read back: what the operator side parses out of a key comes from workloads/layout.py, the
place that writes it, so a change of the layout cannot leave a reader behind."""

from __future__ import annotations

import pytest

from workloads.layout import jobs_prefix, log_key, parse_log_key, submission_key


@pytest.mark.parametrize(("rack", "group", "benchmark", "index"), [
    ("gpu", "h100", "allreduce-nccl", 0), ("graviton", "cpu", "accept", 17), ("a", "b", "c", 1000)])
def test_a_node_logs_key_parses_back_to_what_wrote_it(rack, group, benchmark, index):
    assert parse_log_key(log_key("run-1", rack, group, benchmark, index)) == ("run-1", rack, group, benchmark, index)


@pytest.mark.parametrize("key", [
    "results/run-1/gpu/h100/gemm/record.json", "results/run-1/gpu/h100/gemm/health-node-0.json",
    "results/run-1/gpu/h100/gemm/node-x.log", "results/run-1/gpu/h100/gemm/node-\u0663.log",  # an Arabic-Indic 3
    "results/run-1/gpu/h100/node-0.log", "other/run-1/gpu/h100/gemm/node-0.log",
    "results/run-1/_jobs/run-1-gpu-h100-gemm.json"])
def test_no_other_key_is_taken_for_a_node_log(key):
    assert parse_log_key(key) is None


def test_a_runs_job_markers_are_under_its_jobs_prefix():
    assert submission_key("run-1", "run-1-gpu-h100-gemm").startswith(jobs_prefix("run-1"))
