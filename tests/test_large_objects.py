"""Large objects on S3: whole reads and downloads use parallel ranged GETs; bytes must be exact."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from manystore import StorageClient, StorageClientConfig

from .conftest import s3_profile
from .servers import S3Server

CHUNK = 5 << 20


@pytest.fixture(params=["rclone_server", "moto_server"])
def client(request: pytest.FixtureRequest) -> StorageClient:
    server: S3Server = request.getfixturevalue(request.param)
    profile = s3_profile(server, "manystore-test/large", multipart_chunksize=CHUNK, io_chunksize=1 << 20)
    return StorageClient(StorageClientConfig.from_dict({"profiles": {"l": profile}}, "l"))


def test_whole_read_of_large_object_is_exact(client: StorageClient) -> None:
    data = os.urandom(3 * CHUNK + 12345)
    client.write("big.bin", data)
    out = client.read("big.bin")
    assert isinstance(out, bytes)
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()


def test_download_of_large_object_is_exact(client: StorageClient, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 7)
    client.write("dl.bin", data)
    client.download_file("dl.bin", str(tmp_path / "dl.bin"))
    assert (tmp_path / "dl.bin").read_bytes() == data
    assert os.listdir(tmp_path) == ["dl.bin"]


def test_streaming_read_with_readahead_and_seeks(
    client: StorageClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import manystore.file

    monkeypatch.setattr(manystore.file, "READ_BLOCK_SIZE", 1 << 20)
    data = os.urandom((7 << 20) + 333)
    client.write("stream.bin", data)
    with client.open("stream.bin", "rb", memory_load_limit=0) as f:
        out = b"".join(iter(lambda: f.read(300_001), b""))
        assert out == data
        f.seek(5 << 20)
        assert f.read(10) == data[5 << 20 : (5 << 20) + 10]
        f.seek(100)
        assert f.read(2 << 20) == data[100 : 100 + (2 << 20)]
        f.seek(-50, os.SEEK_END)
        assert f.read() == data[-50:]
