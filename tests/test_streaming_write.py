"""``open("wb")`` on S3 streams a multipart upload while writing, and aborts it on failure (moto)."""

from __future__ import annotations

import os

import pytest

from manystore import StorageClient, StorageClientConfig

from .conftest import s3_profile
from .servers import S3Server

CHUNK = 5 << 20  # S3's minimum part size


@pytest.fixture
def client(moto_server: S3Server) -> StorageClient:
    profile = s3_profile(moto_server, "manystore-test/stream", multipart_chunksize=CHUNK)
    return StorageClient(StorageClientConfig.from_dict({"profiles": {"s": profile}}, "s"))


def _uploads(server: S3Server) -> list[str]:
    listing = server.boto3_client().list_multipart_uploads(Bucket="manystore-test", Prefix="stream/")
    return [u["Key"] for u in listing.get("Uploads", [])]


def test_parts_are_uploaded_while_writing(client: StorageClient, moto_server: S3Server) -> None:
    data = os.urandom(3 * CHUNK + 1234)
    with client.open("big.bin", "wb") as f:
        f.write(data[: 2 * CHUNK + 10])
        assert _uploads(moto_server) == ["stream/big.bin"]  # a multipart upload is under way
        assert not client.is_file("big.bin")  # ... but nothing is visible yet
        f.write(data[2 * CHUNK + 10 :])
    assert _uploads(moto_server) == []
    assert client.read("big.bin") == data


def test_failure_inside_with_aborts_the_upload(client: StorageClient, moto_server: S3Server) -> None:
    client.write("kept.bin", b"old")
    with pytest.raises(RuntimeError, match="boom"), client.open("kept.bin", "wb") as f:
        f.write(os.urandom(2 * CHUNK + 1))
        raise RuntimeError("boom")
    assert _uploads(moto_server) == []
    assert client.read("kept.bin") == b"old"


def test_small_write_is_one_put(client: StorageClient, moto_server: S3Server) -> None:
    with client.open("small.txt", "w") as f:
        f.write("tiny")
    assert client.read("small.txt") == b"tiny"
    assert _uploads(moto_server) == []
