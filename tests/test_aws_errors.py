"""What AWS errors mean, known in one place (rackform/aws.py), and the Batch job names, built in one place
(workloads/layout.py): every caller asks these rather than reading error codes or spelling names itself."""

import ast
from pathlib import Path

import pytest
from botocore import exceptions as bx

from rackform import aws
from workloads.layout import BenchmarkJob, BenchmarkJobName, WorkloadJob, WorkloadJobName

ROOT = Path(__file__).resolve().parent.parent


def error(code: str, status: int = 400) -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                          "Call")


@pytest.mark.parametrize("code", ["Throttling", "ThrottlingException", "TooManyRequestsException",
                                  "RequestLimitExceeded", "SlowDown"])
def test_each_throttling_code_is_throttled_and_retried(code):
    assert aws.is_throttled(error(code)) and aws.is_retryable(error(code))


@pytest.mark.parametrize("code", ["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Unauthorized",
                                  "NotAuthorized", "AuthorizationError", "Client.UnauthorizedOperation"])
def test_each_denial_code_is_denied(code):
    assert aws.is_denied(error(code)) and not aws.is_retryable(error(code))


def test_the_status_alone_decides_when_the_code_is_unknown():
    assert aws.is_denied(error("Whatever", 403)) and aws.is_throttled(error("Whatever", 429))
    assert aws.is_retryable(error("InternalError", 503)) and not aws.is_retryable(error("ValidationError"))
    assert aws.http_status(error("X", 404)) == 404 and aws.error_code(error("NoSuchBucket")) == "NoSuchBucket"


def test_no_answer_at_all_is_retried_and_has_no_code():
    for e in (bx.EndpointConnectionError(endpoint_url="http://x"), ConnectionResetError(), TimeoutError()):
        assert aws.is_retryable(e) and aws.error_code(e) == "" and aws.http_status(e) is None
    assert not aws.is_retryable(ValueError("no")) and not aws.is_denied(ValueError("AccessDenied"))


def test_only_aws_py_reads_an_error_response():
    readers = []
    for path in (ROOT / "rackform").rglob("*.py"):
        if path.name == "aws.py" and path.parent.name == "rackform":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in ("Error", "ThrottlingException", "AccessDenied"):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers == []


def test_job_names_are_built_from_their_parts_and_a_marker_names_its_own():
    assert str(BenchmarkJobName(run_id="r1", rack="trn2", node_group="workers", benchmark="allreduce")) \
        == "r1-trn2-workers-allreduce"
    assert str(WorkloadJobName(run_id="w6", rack="trainium", node_group="workers", workload="llm-serve")) \
        == "w6-trainium-workers-wl-llm-serve"
    job = BenchmarkJob(job_name="r1-trn2-workers-gemm", queue="q", job_definition="d", rack="trn2",
                       node_group="workers", benchmark="gemm", nodes=1)
    assert str(job.name_in("r1")) == job.job_name and str(job.name_in("r2")) != job.job_name
    wl = WorkloadJob(workload="s", job_name="r1-a-b-wl-s", queue="q", job_definition="d", rack="a", node_group="b",
                     tier="t", nodes=1)
    assert str(wl.name_in("r1")) == wl.job_name


def test_a_bad_run_id_never_becomes_a_job_name():
    with pytest.raises(ValueError, match="run id"):
        str(BenchmarkJobName(run_id="bad run", rack="a", node_group="b", benchmark="c"))
