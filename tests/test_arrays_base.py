"""The interface base's primitives on every backend: put/get/readinto/metadata/list/copy/delete."""

from __future__ import annotations

import json

import pytest

from manystore.arrays import DefaultInterface, _base, get_interface

from .conftest import Backend


def test_primitives_round_trip(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base, "RANGE_CHUNK", 64 * 1024)
    monkeypatch.setattr(_base, "SMALL_PUT", 64 * 1024)
    cci = DefaultInterface(backend.client, "pre", threads=3)
    small = b"hello"
    big = bytes(range(256)) * 1200  # 300 KiB: streamed put, ranged parallel get
    cci._put("a/small", small, {"dtype": "<f4", "shape": "1,2"})
    cci._put("a/big", memoryview(big), {"k": "v"})
    assert cci._get("a/small") == small
    assert cci._metadata("a/small") == {"dtype": "<f4", "shape": "1,2"}
    assert cci._metadata("a/big") == {"k": "v"}
    buf = bytearray(len(big) + 10)
    assert cci._readinto("a/big", memoryview(buf)) == len(big)
    assert bytes(buf[: len(big)]) == big
    with cci._open("a/big") as fh:
        assert fh.read(10) == big[:10]
    assert cci._exists("a/big") and not cci._exists("a/none")
    assert [m.key for m in cci._list("a/")] == ["a/big", "a/small"]
    cci._copy("a/small", "b/copy")
    # rclone adds its own "mtime" on a server-side copy: ours must all be there
    assert cci._metadata("b/copy").items() >= {"dtype": "<f4", "shape": "1,2"}.items()
    cci._put("a/small", b"x")  # no metadata now: a stale sidecar must go
    assert cci._metadata("a/small") == {}
    cci._delete("b/copy")
    assert not cci._exists("b/copy")
    assert [m.key for m in cci._list("")] == ["a/big", "a/small"]
    with pytest.raises(ValueError, match="expected at most"):
        cci._readinto("a/big", memoryview(bytearray(10)))
    with pytest.raises(FileNotFoundError):
        cci._metadata("a/none")


def test_sidecar_is_cottoncandys_local_format(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cci = get_interface(str(tmp_path), verbose=False)
    cci._put("x", b"data", {"dtype": "<i8"})
    assert json.loads((tmp_path / "x.meta.json").read_text()) == {"dtype": "<i8"}
    assert cci.uses_sidecars


def test_acl_and_threads_are_checked(backend: Backend) -> None:
    with pytest.raises(ValueError, match="threads=0"):
        DefaultInterface(backend.client, "", threads=0)
    with pytest.raises(ValueError, match="acl='public-read'"):
        DefaultInterface._check_acl("public-read")
    DefaultInterface._check_acl("authenticated-read")


def test_cottoncandy_keywords_are_applied_or_refused(backend: Backend) -> None:
    from types import SimpleNamespace

    from manystore.arrays import get_interface, interfaces

    with pytest.raises(TypeError, match="unexpected keyword argument 'aws_session'"):
        get_interface("bucket", aws_session=object(), verbose=False)
    sigv2 = SimpleNamespace(signature_version="s3", connect_timeout=None, read_timeout=None, retries=None)
    with pytest.raises(ValueError, match="signature_version='s3'"):
        get_interface("bucket", config=sigv2, verbose=False)
    with pytest.raises(ValueError, match="config= applies to"):
        get_interface(backend.client, config=SimpleNamespace(connect_timeout=5), verbose=False)
    with pytest.raises(TypeError, match="SECRET_KEY does not go with a StorageClient"):
        interfaces.DefaultInterface(backend.client, "p", "secret")
    timeouts = SimpleNamespace(connect_timeout=7, read_timeout=9, retries={"max_attempts": 2})
    cci = get_interface("some-bucket", config=timeouts, endpoint_url="http://127.0.0.1:9", verbose=False)
    options = (
        cci.client.config.storage_provider._connect_timeout,
        cci.client.config.storage_provider._read_timeout,
    )
    assert options == (7, 9)


def test_readinto_never_mixes_two_versions(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """An object replaced between the parallel ranged GETs of one read raises, not a blend."""
    from manystore.errors import PreconditionFailedError

    if backend.name in ("s3-rclone", "ais_s3-rclone"):
        pytest.skip(f"{backend.name}: rclone serve s3 ignores If-Match on GET (server limitation)")

    monkeypatch.setattr(_base, "RANGE_CHUNK", 64 * 1024)
    cci = DefaultInterface(backend.client, "ver", threads=1)
    old, new = b"a" * (300 * 1024), b"b" * (300 * 1024)
    cci._put("obj", old, {})
    real = backend.client._io.get_range
    calls = []

    def replacing(path: str, byte_range: object, etag: object) -> bytes:
        calls.append(etag)
        if len(calls) == 2:  # after the first part: another writer replaces the object
            backend.other_client().write(cci._key("obj"), new)
        return real(path, byte_range, etag)  # type: ignore[arg-type]

    monkeypatch.setattr(backend.client._io, "get_range", replacing)
    out = bytearray(len(old))
    if backend.name == "file":  # one open file read to its end: a rename-replacement cannot blend
        assert cci._readinto("obj", memoryview(out)) == len(old) and out == old and calls == []
        return
    with pytest.raises(PreconditionFailedError):
        cci._readinto("obj", memoryview(out))
    assert calls and all(e == calls[0] and e for e in calls)  # every part pinned to one ETag


def test_compressed_reader_never_mixes_two_versions(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ranged GETs feeding a decompressor are pinned to one version too, and come in order."""
    from manystore.errors import PreconditionFailedError

    monkeypatch.setattr(_base, "RANGE_CHUNK", 64 * 1024)
    cci = DefaultInterface(backend.client, "ver", threads=3)
    old = bytes(range(256)) * (300 * 4)  # 300 KiB: five blocks, each different
    cci._put("obj", old, {})
    with cci._compressed("obj") as stream:
        got = [stream.read(100_000), stream.read(7), stream.read()]
    assert b"".join(got) == old
    if backend.name != "file":  # ranged GETs: a whole block as fetched (uncopied), then a slice
        assert [len(g) for g in got[:2]] == [64 * 1024, 7]
    if backend.name in ("file", "s3-rclone", "ais_s3-rclone"):
        return  # file: one open file; rclone serve s3 ignores If-Match on GET (server limitation)
    real = backend.client._io.get_range
    calls = []

    def replacing(path: str, byte_range: object, etag: object) -> bytes:
        calls.append(etag)
        if len(calls) == 1:  # while the first blocks download, another writer replaces the object
            backend.other_client().write(cci._key("obj"), b"b" * len(old))
        return real(path, byte_range, etag)  # type: ignore[arg-type]

    monkeypatch.setattr(backend.client._io, "get_range", replacing)
    with pytest.raises(PreconditionFailedError), cci._compressed("obj") as stream:
        while stream.read(64 * 1024):
            pass
    assert calls and all(e == calls[0] and e for e in calls)
