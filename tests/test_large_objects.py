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
