"""The one AWS layer of the operator commands: clients (profile, Region, endpoint, retries), pagination, and what
an AWS failure means in one line with its fix.

boto3 and botocore are imported inside the functions: `rackform validate`, `plan` and `schema` import this module
(through the CLI's shared options) and must load neither. The in-job package (`workloads/`) keeps its own S3 client:
the job image carries no `rackform`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from botocore.config import Config
    from botocore.exceptions import ClientError


# botocore's standard retry mode: throttling, 5xx and connection errors, with jittered exponential backoff
# (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html). Five attempts keep a wrong
# --endpoint-url to seconds, not minutes; callers with stronger needs (the result store's writes, SubmitJob with
# none) pass their own Config, merged over this one.
RETRIES = {"mode": "standard", "total_max_attempts": 5}
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30


@dataclass(frozen=True)
class Target:
    """Where AWS calls go: a named profile, a Region and an endpoint, each None for the SDK's usual chain."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None

    def with_region(self, region: str | None) -> Target:
        """The same target in `region` unless a Region was chosen explicitly (--region wins over a spec's)."""
        return Target(self.region or region, self.profile, self.endpoint_url)


# A boto3 client of whichever service was asked for: boto3 ships no types, so each caller names the calls it makes
# in a Protocol (preflight's Ec2Client, PaginatingClient below) and annotates the client with it.
BotoClient: TypeAlias = Any


class Paginator(Protocol):
    def paginate(self, **kwargs: object) -> Iterable[dict[str, Any]]: ...


class PaginatingClient(Protocol):
    """The part of a boto3 client of any service that pages through an operation; its pages are AWS's JSON."""

    def get_paginator(self, operation_name: str) -> Paginator: ...


class Session(Protocol):
    """The part of a boto3 Session used here."""

    def client(self, service_name: str, **kwargs: object) -> BotoClient: ...
    def get_credentials(self) -> object | None: ...


class BatchJobs(Protocol):
    """The part of a Batch client that `describe_jobs` uses; a job is AWS's JSON."""

    def describe_jobs(self, *, jobs: list[str]) -> dict[str, Any]: ...


class AwsError(Exception):
    """An AWS failure explained: `message` says what is wrong, `hint` what to do; both one line."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def session(target: Target) -> Session:
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.register_component("data_loader", _loader(core.get_config_variable("data_path")))
    # Every client of the session parses timestamps with `timestamp`: botocore's default (dateutil) takes about
    # 0.2 ms a value, and a listing has one per object, a GET one more: seconds of a 10,000-record report.
    # set_parser_defaults is botocore's documented hook for it (botocore/parsers.py, ResponseParserFactory).
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=timestamp)
    try:
        s: Session = boto3.Session(botocore_session=core, profile_name=target.profile, region_name=target.region)
        return s
    except Exception as e:  # ProfileNotFound, a broken config file: explained, not a traceback
        raise explained(e, target) from None


@functools.cache
def _loader(data_path: str | None) -> object:
    """One botocore data loader for every session of this process (per data path, as botocore makes its own): each
    new session would otherwise parse endpoints.json and the service models again, about 0.15 s of CPU a client, and
    a command makes several (`submit`: three). The loader holds AWS's static API data, never credentials."""
    from botocore.loaders import create_loader

    return create_loader(data_path)


def timestamp(value: object) -> dt.datetime:
    """A timestamp as AWS sends one, as botocore's own parser reads it: ISO 8601 in XML and JSON bodies (a listing's
    LastModified), an HTTP date in headers (a GET's Last-Modified, RFC 7231), by the standard library in
    microseconds; anything else (epoch seconds, other forms) by botocore's parse_timestamp."""
    from botocore.utils import parse_timestamp

    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        try:
            if (http_date := email.utils.parsedate_to_datetime(value)).tzinfo is not None:
                return http_date
        except (TypeError, ValueError):
            pass
    parsed: dt.datetime = parse_timestamp(value)
    return parsed


def _config(config: Config | None) -> Config:
    from botocore.config import Config

    base = Config(retries=dict(RETRIES), connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
    return base if config is None else base.merge(config)


def client(target: Target, service: str, *, config: Config | None = None) -> BotoClient:
    """A client of `service` for the target, with standard retries and timeouts (`config` merged over them)."""
    return _client(session(target), target, service, config)


def _client(s: Session, target: Target, service: str, config: Config | None) -> BotoClient:
    try:
        made = s.client(service, region_name=target.region, endpoint_url=target.endpoint_url, config=_config(config))
    except Exception as e:  # NoRegionError, a malformed endpoint URL
        raise explained(e, target) from None
    # botocore emits before-send once per HTTP request it sends (a retry is another request), named
    # before-send.<service>.<Operation>: https://boto3.amazonaws.com/v1/documentation/api/latest/guide/events.html
    made.meta.events.register("before-send", REQUESTS.count)
    return made


class RequestCounter:
    """The AWS requests this process has sent, by `<service>.<Operation>` (`--verbose` prints them): counted from
    every client `client` makes, from any thread (the result store reads with several)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_operation: Counter[str] = Counter()

    def count(self, event_name: str = "", **_: object) -> None:
        """botocore's before-send handler; returning None lets the request go."""
        with self._lock:
            self.by_operation[event_name.removeprefix("before-send.")] += 1

    def reset(self) -> None:
        with self._lock:
            self.by_operation.clear()

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    def line(self) -> str:
        """`AWS requests: 12 (s3.GetObject 10, s3.ListObjectVersions 2)`, most frequent first."""
        each = ", ".join(f"{op} {n}" for op, n in self.by_operation.most_common())
        return f"AWS requests: {self.total}" + (f" ({each})" if each else "")


REQUESTS = RequestCounter()


def client_factory(target: Target, s: Session | None = None) -> Callable[[str], BotoClient]:
    """service name -> client, all from one session (preflight asks for several services): `s`, or a new one."""
    s = s or session(target)
    return lambda service: _client(s, target, service, None)


def has_credentials(target: Target, s: Session | None = None) -> bool:
    return (s or session(target)).get_credentials() is not None


def paginate(client: BotoClient, op: str, key: str, **kwargs: object) -> list[dict[str, Any]]:
    """Every item of a paginated boto3 operation."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(op).paginate(**kwargs):
        items.extend(page.get(key, []))
    return items


DESCRIBE_JOBS_MAX = 100  # DescribeJobs takes at most 100 job ids


def describe_jobs(batch: BatchJobs, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Batch's view of each job, by id, DescribeJobs' 100 ids at a time; ids Batch no longer knows are absent."""
    jobs: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), DESCRIBE_JOBS_MAX):
        for job in batch.describe_jobs(jobs=list(ids[i:i + DESCRIBE_JOBS_MAX])).get("jobs", []):
            jobs[job["jobId"]] = job
    return jobs


# --- what went wrong ---------------------------------------------------------------------------------------------

CREDENTIALS_HINT = ("set AWS_PROFILE or pass --profile, run `aws sso login` or `aws configure`, or export "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
_MISSING_STACK = re.compile(r"Stack with id (\S+) does not exist")
_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Unauthorized", "NotAuthorized",
           "AuthorizationError")
_EXPIRED = ("ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired")
_REJECTED = ("InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId", "SignatureDoesNotMatch",
             "AuthFailure", "IncompleteSignature")
_THROTTLED = ("Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown")
# Services spell denial in many codes (EC2's `UnauthorizedOperation`, `Client.UnauthorizedOperation`, IAM's
# `AccessDeniedException`...): a code containing one of these words is a denial too.
_DENIED_WORDS = ("AccessDenied", "Unauthorized", "NotAuthorized")


def _response(e: BaseException) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    return dict(e.response) if isinstance(e, ClientError) else {}


def error_code(e: BaseException) -> str:
    """The AWS error code of a failed call ("" when `e` is not an AWS error response)."""
    return str(_response(e).get("Error", {}).get("Code", ""))


def error_message(e: BaseException) -> str:
    return str(_response(e).get("Error", {}).get("Message", ""))


def http_status(e: BaseException) -> int | None:
    status = _response(e).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def is_throttled(e: BaseException) -> bool:
    return error_code(e) in _THROTTLED or http_status(e) == 429


def is_denied(e: BaseException) -> bool:
    code = error_code(e)
    return code in _DENIED or any(word in code for word in _DENIED_WORDS) or http_status(e) == 403


def is_retryable(e: BaseException) -> bool:
    """Worth trying again: throttled, a 5xx, or no answer at all (a connection or botocore failure)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(e, ClientError):
        return (http_status(e) or 0) >= 500 or is_throttled(e)
    return isinstance(e, (BotoCoreError, ConnectionError, TimeoutError))


def is_aws_error(e: BaseException) -> bool:
    return isinstance(e, AwsError) or type(e).__module__.split(".")[0] in ("botocore", "boto3")


def _short(text: object, limit: int = 200) -> str:
    # One line, cut short: an endpoint's error can be a whole HTML page.
    return " ".join(str(text).split())[:limit]


def explained(e: BaseException, target: Target | None = None, *, bucket: str | None = None) -> AwsError:
    """The one-line message and hint for an AWS failure: each case the user can fix gets its own."""
    if isinstance(e, AwsError):
        return e
    from botocore import exceptions as bx

    endpoint = (target.endpoint_url if target else None) or "AWS"
    where = f" in {target.region}" if target and target.region else ""
    if isinstance(e, bx.ProfileNotFound):
        return AwsError(f"AWS profile {e.kwargs.get('profile')!r} is not in your AWS config",
                        "pass --profile with one that `aws configure list-profiles` shows, or drop it")
    if isinstance(e, bx.NoRegionError):
        return AwsError("no AWS Region: none was given and none is configured",
                        "pass --region (or set AWS_REGION, or a region in your AWS profile)")
    if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError)):
        return AwsError(f"no usable AWS credentials ({_short(e)})", CREDENTIALS_HINT)
    if isinstance(e, (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.TokenRetrievalError)):
        return AwsError(f"the AWS SSO session is missing or expired ({_short(e)})",
                        "run `aws sso login` (with --profile if you use one)")
    if isinstance(e, bx.InvalidEndpointConfigurationError) or isinstance(e, ValueError) and "endpoint" in str(e):
        return AwsError(f"invalid endpoint: {_short(e)}", "give --endpoint-url as http(s)://HOST[:PORT]")
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError)):
        return AwsError(f"cannot connect to {endpoint}{where}: {_short(e)}",
                        "check --endpoint-url, the network or proxy, and that the Region is right")
    if isinstance(e, bx.ReadTimeoutError):
        return AwsError(f"{endpoint} did not answer in time: {_short(e)}", "try again; check the network or proxy")
    from botocore.parsers import ResponseParserError

    if isinstance(e, ResponseParserError):
        return AwsError(f"{endpoint} answered with something that is not an AWS response",
                        "check --endpoint-url: it must be an AWS API endpoint")
    if isinstance(e, bx.ClientError):
        return _client_error(e, where, bucket)
    return AwsError(f"AWS: {type(e).__name__}: {_short(e)}", "check AWS credentials, --profile and --region")


def _client_error(e: ClientError, where: str, bucket: str | None) -> AwsError:
    err = e.response.get("Error", {})
    code, text = error_code(e), _short(error_message(e))
    op = getattr(e, "operation_name", "") or "an AWS call"
    if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and op in ("HeadBucket",)):
        name = err.get("BucketName") or bucket or "the results bucket"
        return AwsError(f"S3 bucket {name} does not exist{where}",
                        "check --bucket or RACKFORM_BUCKET, or deploy the storage stack first")
    if m := _MISSING_STACK.search(text):
        return AwsError(f"stack {m[1]} is not deployed{where}",
                        "deploy first (`cdk deploy --all -c spec=SPEC`) or pass --bucket (or set RACKFORM_BUCKET)")
    if code in _EXPIRED:
        return AwsError(f"the AWS credentials have expired ({code})", "refresh them: `aws sso login`, or new keys")
    if code in _REJECTED:
        return AwsError(f"AWS rejected the credentials ({code}: {text})", CREDENTIALS_HINT)
    if is_denied(e):
        return AwsError(f"access denied to {op}{where} ({code}: {text})".replace(" ()", ""),
                        "your identity needs that permission; check --profile, or ask your account's admin")
    if is_throttled(e):
        return AwsError(f"AWS throttled {op} after retries ({code})", "try again in a minute")
    return AwsError(f"AWS {op} failed{where}: {code}: {text}".rstrip(": "),
                    "check the names given, --region and --profile")
