"""Uploads of the arrays interface: ``threads=`` sets the multipart concurrency, a reader of
another obstore client can be the body, and ``force_bucket_creation`` on object stores."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.arrays import DefaultInterface, _base, get_interface
from manystore.providers.s3 import S3StorageProvider

from .conftest import Backend, s3_profile
from .servers import S3Server


@pytest.fixture(params=["s3-rclone", "s3-moto"])
def server(request: pytest.FixtureRequest) -> S3Server:
    return request.getfixturevalue("moto_server" if request.param == "s3-moto" else "rclone_server")


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Records the obstore write calls (name and keywords) of every S3-family provider; the
    calls still go to the real server."""
    calls: list[tuple[str, dict[str, Any]]] = []
    real = S3StorageProvider._obs

    def obs(self: S3StorageProvider, name: str) -> Any:
        fn = real(self, name)
        if name not in ("put", "open_writer"):
            return fn

        def record(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, kwargs))
            return fn(*args, **kwargs)

        return record

    monkeypatch.setattr(S3StorageProvider, "_obs", obs)
    yield calls


def test_threads_sets_the_upload_concurrency(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, spy: list[tuple[str, dict[str, Any]]]
) -> None:
    monkeypatch.setattr(_base, "SMALL_PUT", 64 * 1024)
    cci = DefaultInterface(backend.client, "t")
    array = np.arange(200_000, dtype="f8")  # 1.6 MB: above SMALL_PUT, streamed
    parallel = bool(getattr(backend.client.config.storage_provider, "supports_upload_concurrency", False))
    for threads in (1, 3, 7) if parallel else (1, _base.THREADS):
        spy.clear()
        cci.upload_raw_array("a", array, compression=False, threads=threads)
        np.testing.assert_array_equal(cci.download_raw_array("a"), array)
        cci.upload_npy_array("n", array, threads=threads)
        np.testing.assert_array_equal(cci.download_npy_array("n"), array)
        body = array.tobytes()  # a file without a buffer or a descriptor: the streaming writer
        cci.upload_object("o", io.BufferedReader(io.BytesIO(body)), threads=threads)  # type: ignore[arg-type]
        assert cci.download_object("o") == body
        if parallel:
            used = [(name, kw["max_concurrency"]) for name, kw in spy]
            assert used == [("put", threads), ("put", threads), ("open_writer", threads)], spy
    if not parallel:
        with pytest.raises(ValueError, match=r"threads=8: .* uploads one part at a time"):
            cci.upload_raw_array("a", array, compression=False, threads=8)
        assert not spy
    with pytest.raises(ValueError, match="threads=0"):
        cci.upload_raw_array("a", array, threads=0)


def test_client_upload_file_max_concurrency(backend: Backend, tmp_path: Any) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    provider = backend.client.config.storage_provider
    if getattr(provider, "supports_upload_concurrency", False):
        backend.client.upload_file("f.bin", str(path), max_concurrency=2)
        assert backend.client.read("f.bin") == b"x" * 1000
    else:
        with pytest.raises(ValueError, match="does not upload in parallel parts"):
            backend.client.upload_file("f.bin", str(path), max_concurrency=2)
    with pytest.raises(ValueError, match="max_concurrency=0"):
        backend.client.upload_file("f.bin", str(path), max_concurrency=0)


def test_put_from_another_clients_reader(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A streaming reader of one client is the body of another client's upload (it used to panic
    with "Cannot start a runtime from within a runtime" on obstore-backed stores)."""
    monkeypatch.setattr(_base, "SMALL_PUT", 64 * 1024)
    source = DefaultInterface(backend.client, "src")
    dest = DefaultInterface(backend.other_client(), "dst")
    data = bytes(range(256)) * 12_000  # 3 MB
    source._put("obj", data, {"k": "v"})
    with source._open("obj") as reader:
        dest._put("copy", reader, {"k": "copied"})
    assert dest._get("copy") == data
    assert dest._metadata("copy") == {"k": "copied"}


def test_put_from_another_s3_servers_reader(rclone_server: S3Server, moto_server: S3Server) -> None:
    """Two S3 clients on two servers: rclone's reader streams into moto."""

    def client(server: S3Server) -> StorageClient:
        profile = s3_profile(server, f"manystore-test/{uuid.uuid4().hex}")
        return StorageClient(StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p"))

    source, dest = DefaultInterface(client(rclone_server), ""), DefaultInterface(client(moto_server), "")
    data = b"0123456789abcdef" * (3 * 2**20 // 16)  # 3 MiB: a multi-part stream on the way
    source._put("obj", data)
    with source._open("obj") as reader:
        dest._put("copy", reader)
    assert dest._get("copy") == data


def test_force_bucket_creation_on_object_stores(server: S3Server) -> None:
    keys = {
        "ACCESS_KEY": server.access_key,
        "SECRET_KEY": server.secret_key,
        "endpoint_url": server.endpoint_url,
    }
    existing = get_interface("manystore-test", force_bucket_creation=True, verbose=False, **keys)
    existing.upload_object("fbc/x", b"1")
    assert existing.download_object("fbc/x") == b"1"
    missing = f"no-such-{uuid.uuid4().hex[:12]}"
    with pytest.raises(NotImplementedError, match=rf"{missing}.*S3StorageProvider cannot create buckets"):
        get_interface(missing, force_bucket_creation=True, verbose=False, **keys)
    with pytest.raises(NotImplementedError, match="S3StorageProvider cannot create buckets"):
        existing.create_bucket(missing)
