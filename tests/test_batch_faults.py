"""ObjectReader.as_file resumes broken streams exactly, against S3 behind a fault-injecting proxy.

The profile retries nothing itself (``attempts: 1``), so every failed ranged GET — a body
cut mid-way (``reset``), a dropped connection, a 503 — reaches the reader, and ``as_file``
must resume from the first byte not yet fetched, never duplicating or dropping a byte.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from manystore.batch import Client, ObjectFileReaderMaxResumeError
from manystore.errors import PreconditionFailedError, RetryableError

from .conftest import s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server

MiB = 1 << 20
CHUNK = 256 << 10


def payload(size: int) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32) + b"t" * (size % 32)


@pytest.fixture
def proxied(rclone_server: S3Server) -> Iterator[tuple[Client, FaultProxy, dict[str, Any]]]:
    proxy = FaultProxy(rclone_server.endpoint_url)
    profile = s3_profile(rclone_server, f"manystore-test/batch-faults-{uuid.uuid4().hex}")
    direct = {
        "profiles": {"d": s3_profile(rclone_server, profile["storage_provider"]["options"]["base_path"])}
    }
    profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
    profile["retry"] = {"attempts": 1, "delay": 0.005}
    try:
        yield Client(config={"profiles": {"p": profile}}), proxy, direct
    finally:
        proxy.close()


@pytest.mark.parametrize("workers", [1, 4])
def test_as_file_resumes_several_cuts_without_losing_a_byte(
    proxied: tuple[Client, FaultProxy, dict[str, Any]], workers: int
) -> None:
    client, proxy, _ = proxied
    data = payload(2 * MiB + 77)
    obj = client.bucket("msc://p/").object("big.bin")
    obj.get_writer().put_content(data)
    fh = obj.get_reader(chunk_size=CHUNK, num_workers=workers).as_file(max_resume=5)
    gets_before = proxy.requests_by_method["GET"]
    pieces = [fh.read(100_001)]
    proxy.reset_next(2, keep=0.5, method="GET")  # cut mid-body
    proxy.fail_next(2, None, method="GET")  # connection dropped before any answer
    proxy.fail_next(1, 503, code="SlowDown", method="GET")
    while piece := fh.read(100_001):
        pieces.append(piece)
    got = b"".join(pieces)
    assert len(got) == len(data) and hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert (proxy.injected["reset"], proxy.injected["drop"], proxy.injected["status_503"]) == (2, 2, 1)
    assert proxy.pending() == 0
    assert 1 <= fh.resumes <= 5  # concurrent GETs may fail together and cost one resume
    if workers == 1:  # each failed GET costs one resume and is repeated from its chunk, not from 0
        assert fh.resumes == 5
        chunks = -(-len(data) // CHUNK)
        assert chunks + 5 <= proxy.requests_by_method["GET"] - gets_before <= chunks + 7


def test_as_file_gives_up_after_max_resume(proxied: tuple[Client, FaultProxy, dict[str, Any]]) -> None:
    client, proxy, _ = proxied
    data = payload(MiB)
    obj = client.bucket("msc://p/").object("obj")
    obj.get_writer().put_content(data)
    fh = obj.get_reader(chunk_size=CHUNK).as_file(max_resume=2)
    first = fh.read(CHUNK)
    proxy.fail_next(3, 503, code="SlowDown", method="GET")
    with pytest.raises(ObjectFileReaderMaxResumeError, match="max_resume=2") as info:
        fh.read()
    assert isinstance(info.value, ConnectionError) and info.value.__cause__ is not None
    assert first == data[:CHUNK]


def test_plain_iteration_does_not_resume(proxied: tuple[Client, FaultProxy, dict[str, Any]]) -> None:
    client, proxy, _ = proxied
    obj = client.bucket("msc://p/").object("obj")
    obj.get_writer().put_content(payload(MiB))
    proxy.fail_next(1, None, method="GET")
    with pytest.raises(RetryableError):
        b"".join(obj.get_reader(chunk_size=CHUNK))
    assert proxy.injected["drop"] == 1


def test_resume_is_pinned_to_the_etag(moto_server: S3Server) -> None:
    profile = s3_profile(moto_server, f"manystore-test/batch-etag-{uuid.uuid4().hex}")
    client = Client(config={"profiles": {"m": profile}})
    obj = client.bucket("msc://m/").object("obj")
    obj.get_writer().put_content(payload(MiB))
    fh = obj.get_reader(chunk_size=CHUNK).as_file()
    assert len(fh.read(10)) == 10
    obj.get_writer().put_content(b"replaced" * 100_000)
    with pytest.raises(PreconditionFailedError):
        fh.read()
