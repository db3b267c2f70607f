"""Every session the AWS layer makes reads AWS's static API data (endpoints, service models) through one loader: a
command that makes several clients, or the demo calling the CLI many times in one process, parses each file once."""

from __future__ import annotations

from collections import Counter

import pytest
from botocore import loaders

from rackform import aws


def test_clients_of_separate_sessions_parse_aws_data_once(monkeypatch: pytest.MonkeyPatch) -> None:
    aws._loader.cache_clear()  # as a fresh process starts
    parsed: Counter[str] = Counter()
    real = loaders.JSONFileLoader.load_file

    def counted(self: loaders.JSONFileLoader, file_path: str) -> object:
        parsed[file_path.rsplit("/", 2)[-1] if "endpoints" in file_path else file_path] += 1
        return real(self, file_path)

    monkeypatch.setattr(loaders.JSONFileLoader, "load_file", counted)
    target = aws.Target(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    clients = [aws.client(target, service) for service in ("s3", "batch", "s3", "batch")]
    assert [c.meta.service_model.service_name for c in clients] == ["s3", "batch", "s3", "batch"]
    found = [path for path, n in parsed.items() if n and path.endswith(("endpoints", "service-2"))]
    assert found and all(parsed[path] == 1 for path in found), parsed
    # a session of another data path (AWS_DATA_PATH) reads its own
    assert aws._loader(None) is aws._loader(None) and aws._loader("/elsewhere") is not aws._loader(None)
