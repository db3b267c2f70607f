"""Issue 23 item 2: the AWS layer's clients read timestamps without dateutil (about 0.2 ms a value, one per object
listed and per GET: seconds of a 10,000-record report), to the same datetimes botocore's own parser gives."""

from __future__ import annotations

import boto3
import botocore.utils
import pytest

from rackform import aws
from tests.conftest import moto_aws

VALUES = ["2026-12-06T07:58:00.000Z", "2026-12-06T07:58:00Z", "2026-12-06T07:58:00.123456Z",
          "2026-12-06T07:58:00+01:00", "2026-12-06T07:58:00", "2026-12-06", "Sun, 06 Dec 2026 07:58:00 GMT",
          "Sun, 06 Dec 2026 07:58:00 +0200", 1764921600, 1764921600.5, "1764921600"]


@pytest.mark.parametrize("value", VALUES)
def test_a_timestamp_reads_as_botocore_reads_it(value):
    ours, botocore_s = aws.timestamp(value), botocore.utils.parse_timestamp(value)
    assert ours == botocore_s and (ours.tzinfo is None) == (botocore_s.tzinfo is None)
    assert ours.utcoffset() == botocore_s.utcoffset()


def test_a_listing_and_a_get_parse_their_timestamps_without_dateutil(monkeypatch):
    parsed: list[object] = []
    real = aws.timestamp
    monkeypatch.setattr(aws, "timestamp", lambda value: parsed.append(value) or real(value))
    with moto_aws(monkeypatch, "us-east-1"):
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="rackform-timestamps")
        s3 = aws.client(aws.Target(region="us-east-1"), "s3")
        s3.put_object(Bucket="rackform-timestamps", Key="k", Body=b"x")
        listed = s3.list_object_versions(Bucket="rackform-timestamps")["Versions"][0]["LastModified"]
        got = s3.get_object(Bucket="rackform-timestamps", Key="k")["LastModified"]
    # the listing's ISO 8601 LastModified and the GET's HTTP-date header, each through aws.timestamp
    assert [type(v) for v in parsed] == [str, str] and parsed[1].endswith("GMT")
    assert listed.tzinfo is not None and got.tzinfo is not None
    assert abs((listed - got).total_seconds()) < 1
