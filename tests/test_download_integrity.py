"""download_file resumes a cut-short stream from the byte where it stopped (same ETag), and verifies
the MD5 of single-part objects."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig

from .conftest import s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server


@pytest.fixture
def proxy(rclone_server: S3Server) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(rclone_server.endpoint_url)
    yield fault_proxy
    fault_proxy.close()


def _client(server: S3Server, endpoint: str, **options: Any) -> StorageClient:
    profile = s3_profile(server, "manystore-test/integrity", **options)
    profile["storage_provider"]["options"]["endpoint_url"] = endpoint
    profile["retry"] = {"attempts": 3, "delay": 0.01}
    return StorageClient(StorageClientConfig.from_dict({"profiles": {"i": profile}}, "i"))


def test_cut_short_download_resumes_from_where_it_stopped(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 << 20)
    direct = _client(rclone_server, rclone_server.endpoint_url)
    direct.write("obj.bin", data)
    client = _client(rclone_server, proxy.url)
    provider = client.config.storage_provider
    ranges: list[tuple[int, int]] = []
    original = provider._read_range  # type: ignore[attr-defined]

    def spy(key: str, lo: int, hi: int, options: dict[str, Any]) -> Any:
        ranges.append((lo, hi))
        assert options.get("if_match")  # the resume is pinned to the first response's ETag
        return original(key, lo, hi, options)

    monkeypatch.setattr(provider, "_read_range", spy)
    proxy.inject("truncate", 1, method="GET", keep=0.5)
    client.download_file("obj.bin", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == data
    assert len(ranges) == 1
    lo, hi = ranges[0]
    assert 0 < lo < len(data) and hi == len(data)  # resumed mid-object, not restarted


def test_checksum_mismatch_raises_and_leaves_no_file(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = os.urandom(1 << 20)
    direct = _client(rclone_server, rclone_server.endpoint_url)
    direct.write("sum.bin", data)
    assert direct.info("sum.bin").etag == hashlib.md5(data).hexdigest()
    client = _client(rclone_server, proxy.url)
    proxy.inject("corrupt", 10, method="GET")
    from manystore.errors import ChecksumMismatchError

    with pytest.raises(ChecksumMismatchError, match="MD5"):
        client.download_file("sum.bin", str(tmp_path / "dest.bin"))
    assert os.listdir(tmp_path) == []  # neither the destination nor a temp file
    proxy.clear()
    client.download_file("sum.bin", str(tmp_path / "dest.bin"))
    assert (tmp_path / "dest.bin").read_bytes() == data


def test_cut_short_read_resumes_from_where_it_stopped(
    rclone_server: S3Server, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 << 20)
    _client(rclone_server, rclone_server.endpoint_url).write("r.bin", data)
    client = _client(rclone_server, proxy.url)
    provider = client.config.storage_provider
    ranges: list[tuple[int, int]] = []
    original = provider._read_range  # type: ignore[attr-defined]

    def spy(key: str, lo: int, hi: int, options: dict[str, Any]) -> Any:
        ranges.append((lo, hi))
        assert options.get("if_match")
        return original(key, lo, hi, options)

    monkeypatch.setattr(provider, "_read_range", spy)
    proxy.inject("truncate", 1, method="GET", keep=0.6)
    assert client.read("r.bin") == data
    assert len(ranges) == 1 and 0 < ranges[0][0] < len(data)
