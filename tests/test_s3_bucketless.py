"""Bucket-less S3-family profiles (empty or ``/`` base_path): as in MSC 1.3.1, the first key
component is the bucket. Run on every backend of the obstore S3 family (and Azure, which shares
its machinery); the file and GCS providers have their own base_path rules (not bucket-based)."""

from __future__ import annotations

import copy
import pickle
import uuid
from pathlib import Path

import pytest

from manystore import StorageClient, StorageClientConfig

from .conftest import BACKENDS, Backend, make_backend

BUCKET_BACKENDS = [name for name in BACKENDS if name.startswith(("s3-", "ais_s3-", "azure-"))]


def _bucketless(backend: Backend, base_path: str) -> tuple[StorageClient, str]:
    """A client of ``backend``'s store with ``base_path`` (``""`` or ``"/"``), and the
    ``bucket/prefix`` the backend's own profile was rooted at."""
    config = copy.deepcopy(backend.config)
    options = config["profiles"]["test"]["storage_provider"]["options"]
    root = options["base_path"].strip("/")
    options["base_path"] = base_path
    return StorageClient(StorageClientConfig.from_dict(config, "test")), root


@pytest.fixture(params=BUCKET_BACKENDS)
def bucket_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


@pytest.mark.parametrize("base_path", ["", "/"])
def test_bucketless_round_trip(bucket_backend: Backend, base_path: str, tmp_path: Path) -> None:
    client, root = _bucketless(bucket_backend, base_path)
    client.write(f"{root}/a/x.bin", b"x" * 10)
    client.write(f"/{root}/a/y.bin", b"y" * 3)  # a leading slash is dropped, as in 1.3.1
    # The bucketed profile sees the same objects under its prefix.
    assert bucket_backend.client.read("a/x.bin") == b"x" * 10
    assert client.read(f"{root}/a/x.bin") == b"x" * 10
    assert client.read(f"{root}/a/x.bin", byte_range=None) == b"x" * 10
    meta = client.info(f"{root}/a/y.bin")
    assert meta.content_length == 3 and meta.key == f"{root}/a/y.bin"
    assert client.info(f"{root}/a", strict=False).type == "directory"
    keys = [m.key for m in client.list(f"{root}/a/")]
    assert keys == [f"{root}/a/x.bin", f"{root}/a/y.bin"]
    bucket = root.split("/", 1)[0]
    assert f"{root}/a/x.bin" in [m.key for m in client.list(bucket)]  # the whole bucket
    dirs = list(client.list(f"{root}/", include_directories=True))
    assert [(m.key, m.type) for m in dirs] == [(f"{root}/a", "directory")]
    assert sorted(client.glob(f"{root}/a/*.bin")) == [f"{root}/a/x.bin", f"{root}/a/y.bin"]
    client.copy(f"{root}/a/x.bin", f"{root}/b/x.bin")
    assert bucket_backend.client.read("b/x.bin") == b"x" * 10
    with client.open(f"{root}/c/stream.bin", "wb") as f:
        f.write(b"streamed")
    assert bucket_backend.client.read("c/stream.bin") == b"streamed"
    target = tmp_path / "down.bin"
    client.download_file(f"{root}/a/x.bin", str(target))
    assert target.read_bytes() == b"x" * 10
    client.delete(f"{root}/a/y.bin")
    assert not client.is_file(f"{root}/a/y.bin")
    # A pickled copy (worker processes) routes the same way.
    clone = pickle.loads(pickle.dumps(client))
    assert clone.read(f"{root}/a/x.bin") == b"x" * 10


def test_bucketless_listing_needs_a_bucket(bucket_backend: Backend) -> None:
    client, _ = _bucketless(bucket_backend, "")
    with pytest.raises(ValueError, match="must name a bucket"):
        list(client.list(""))
    with pytest.raises(ValueError, match="names no bucket"):
        client.read("/")


def test_bucketless_missing_object_names_its_bucket(bucket_backend: Backend) -> None:
    client, root = _bucketless(bucket_backend, "")
    with pytest.raises(FileNotFoundError, match=f"{root}/missing"):
        client.read(f"{root}/missing")


def test_bucketless_two_buckets(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Keys in two buckets through one profile; a copy between them moves the bytes."""
    backend = make_backend("s3-moto", request, tmp_path)
    other = f"manystore-other-{uuid.uuid4().hex[:8]}"
    backend.server.create_bucket(other)
    client, root = _bucketless(backend, "")
    client.write(f"{root}/one.bin", b"1")
    client.write(f"{other}/two.bin", b"22")
    assert [m.key for m in client.list(f"{other}/")] == [f"{other}/two.bin"]
    client.copy(f"{root}/one.bin", f"{other}/copied.bin")
    assert client.read(f"{other}/copied.bin") == b"1"
    client.delete(f"{other}/", recursive=True)
    assert list(client.list(f"{other}/")) == []
    provider = client.config.storage_provider
    assert sorted(provider._views) == sorted({root.split("/", 1)[0], other})  # one store per bucket
