"""StorageClient retries transient failures (and only those) against a real S3 server behind a fault proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.errors import ObjectNotFoundError, RetryableError

from .conftest import s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server


@pytest.fixture
def proxy(rclone_server: S3Server) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(rclone_server.endpoint_url)
    yield fault_proxy
    fault_proxy.close()


def _client(server: S3Server, proxy: FaultProxy, attempts: int) -> StorageClient:
    profile = s3_profile(server, "manystore-test/retry")
    profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
    profile["retry"] = {"attempts": attempts, "delay": 0.01, "backoff_multiplier": 2.0}
    return StorageClient(StorageClientConfig.from_dict({"profiles": {"r": profile}}, "r"))


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, None])
def test_transient_failures_are_retried_until_success(
    rclone_server: S3Server, proxy: FaultProxy, status: int | None
) -> None:
    client = _client(rclone_server, proxy, attempts=4)
    client.write("obj", b"payload")
    proxy.fail_next(3, status)
    before = proxy.requests_seen
    assert client.read("obj") == b"payload"
    assert proxy.requests_seen - before == 4  # three faults, then the real answer
    assert proxy.pending() == 0


def test_retries_stop_at_attempts(rclone_server: S3Server, proxy: FaultProxy) -> None:
    client = _client(rclone_server, proxy, attempts=2)
    client.write("obj", b"payload")
    proxy.fail_next(5, 503)
    before = proxy.requests_seen
    with pytest.raises(RetryableError, match="2 attempts") as info:
        client.read("obj")
    assert info.value.status == 503
    assert proxy.requests_seen - before == 2
    proxy.clear()


def test_writes_are_retried_and_land_once(rclone_server: S3Server, proxy: FaultProxy) -> None:
    client = _client(rclone_server, proxy, attempts=3)
    proxy.fail_next(2, 500)
    client.write("w", b"exactly this")
    assert client.read("w") == b"exactly this"


def test_listing_resumes_after_transient_failure(rclone_server: S3Server, proxy: FaultProxy) -> None:
    client = _client(rclone_server, proxy, attempts=3)
    for i in range(5):
        client.write(f"l/{i}", b"x")
    proxy.fail_next(1, 503)
    assert [m.key for m in client.list("l/")] == [f"l/{i}" for i in range(5)]


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retried(rclone_server: S3Server, proxy: FaultProxy, status: int) -> None:
    client = _client(rclone_server, proxy, attempts=5)
    client.write("obj", b"payload")
    proxy.fail_next(1, status)
    before = proxy.requests_seen
    with pytest.raises(Exception) as info:
        client.read("obj")
    assert not isinstance(info.value, RetryableError)
    if status == 404:
        assert isinstance(info.value, ObjectNotFoundError)
    assert proxy.requests_seen - before == 1
