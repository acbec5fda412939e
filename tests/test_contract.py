"""The provider contract: the same cases on every backend (see ``conftest.BACKENDS``)."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import pickle
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from manystore import Range, StorageClient
from manystore.errors import InvalidPathError, ObjectNotFoundError, PreconditionFailedError

from .conftest import Backend

# ----------------------------------------------------------------- read/write


def test_write_read_roundtrip(backend: Backend) -> None:
    c = backend.client
    c.write("a/b/c.bin", b"\x00\x01payload")
    assert c.read("a/b/c.bin") == b"\x00\x01payload"
    assert backend.other_client().read("a/b/c.bin") == b"\x00\x01payload"


def test_overwrite_replaces_whole_object(backend: Backend) -> None:
    c = backend.client
    c.write("k", b"x" * 1000)
    c.write("k", b"short")
    assert c.read("k") == b"short"


def test_empty_object(backend: Backend) -> None:
    c = backend.client
    c.write("empty", b"")
    assert c.read("empty") == b""
    assert c.info("empty").content_length == 0


def test_read_missing_raises_file_not_found(backend: Backend) -> None:
    with pytest.raises(FileNotFoundError) as info:
        backend.client.read("no/such/key")
    assert isinstance(info.value, ObjectNotFoundError)
    assert "no/such/key" in str(info.value)


def test_ranged_read(backend: Backend) -> None:
    c = backend.client
    c.write("r", bytes(range(100)))
    assert c.read("r", Range(10, 5)) == bytes(range(10, 15))
    assert c.read("r", Range(0, 1)) == b"\x00"
    assert c.read("r", Range(95, 50)) == bytes(range(95, 100))


def test_unicode_and_space_keys(backend: Backend) -> None:
    c = backend.client
    key = "dir with space/naïve-文件.txt"
    c.write(key, b"u")
    assert c.read(key) == b"u"
    assert [m.key for m in c.list("dir with space/")] == [key]


def test_dotdot_key_refused_and_nothing_written(backend: Backend) -> None:
    c = backend.client
    with pytest.raises(InvalidPathError, match=r"\.\."):
        c.write("../escape", b"x")
    with pytest.raises(InvalidPathError):
        c.read("a/../../escape")
    assert list(c.list("")) == []


# ---------------------------------------------------------------- metadata


def test_info_and_is_file(backend: Backend) -> None:
    c = backend.client
    c.write("d/obj", b"12345")
    meta = c.info("d/obj")
    assert meta.key == "d/obj"
    assert meta.content_length == 5
    assert meta.type == "file"
    assert meta.etag
    assert meta.last_modified.tzinfo is not None
    assert meta.last_modified.astimezone(timezone.utc).year >= 2024
    assert c.is_file("d/obj")
    assert not c.is_file("d")
    assert not c.is_file("d/missing")
    with pytest.raises(FileNotFoundError):
        c.info("d")
    assert c.info("d", strict=False).type == "directory"


def test_etag_changes_with_content(backend: Backend) -> None:
    c = backend.client
    c.write("e", b"one")
    first = c.info("e").etag
    c.write("e", b"two-two")
    assert c.info("e").etag != first


def test_is_empty(backend: Backend) -> None:
    c = backend.client
    assert c.is_empty("x")
    c.write("x/y", b"1")
    assert not c.is_empty("x")
    assert c.is_empty("xy")


# ------------------------------------------------------------------ listing

KEYS = ["a-b", "a/b", "a/c/d", "a0", "b/x1", "b/x2", "b/y"]


def _populate(c: StorageClient, keys: list[str] = KEYS) -> None:
    for k in keys:
        c.write(k, k.encode())


def test_list_is_lexicographic_and_recursive(backend: Backend) -> None:
    c = backend.client
    _populate(c)
    assert [m.key for m in c.list("")] == sorted(KEYS)


def test_list_raw_prefix(backend: Backend) -> None:
    c = backend.client
    _populate(c)
    assert [m.key for m in c.list("b/x")] == ["b/x1", "b/x2"]
    assert [m.key for m in c.list("a")] == ["a-b", "a/b", "a/c/d", "a0"]
    assert [m.key for m in c.list("a/")] == ["a/b", "a/c/d"]
    assert list(c.list("zzz")) == []


def test_list_bounds(backend: Backend) -> None:
    c = backend.client
    _populate(c)
    assert [m.key for m in c.list("", start_after="a0")] == ["b/x1", "b/x2", "b/y"]
    assert [m.key for m in c.list("", end_at="a/c/d")] == ["a-b", "a/b", "a/c/d"]
    assert [m.key for m in c.list("b/", start_after="b/x1", end_at="b/x2")] == ["b/x2"]
    with pytest.raises(ValueError, match="start_after"):
        list(c.list("", start_after="z", end_at="a"))


def test_list_include_directories(backend: Backend) -> None:
    c = backend.client
    _populate(c)
    entries = [(m.key.rstrip("/"), m.type) for m in c.list("a/", include_directories=True)]
    assert entries == [("a/b", "file"), ("a/c", "directory")]


def test_list_include_url_prefix(backend: Backend) -> None:
    c = backend.client
    c.write("p/q", b"1")
    (meta,) = c.list("p/", include_url_prefix=True)
    assert meta.key == "msc://test/p/q"


def test_list_is_lazy(backend: Backend) -> None:
    c = backend.client
    _populate(c)
    it = c.list("")
    assert next(it).key == "a-b"


def test_glob(backend: Backend) -> None:
    c = backend.client
    _populate(c, [*KEYS, "b/z.tar", "b/deep/er/w.tar"])
    assert c.glob("b/x?") == ["b/x1", "b/x2"]
    assert c.glob("b/*") == ["b/x1", "b/x2", "b/y", "b/z.tar"]
    assert c.glob("b/[xy]*") == ["b/x1", "b/x2", "b/y"]
    assert c.glob("**/*.tar") == ["b/deep/er/w.tar", "b/z.tar"]
    assert c.glob("b/**") == ["b/deep/er/w.tar", "b/x1", "b/x2", "b/y", "b/z.tar"]
    assert c.glob("b/*.tar", include_url_prefix=True) == ["msc://test/b/z.tar"]


# --------------------------------------------------------- copy and delete


def test_copy(backend: Backend) -> None:
    c = backend.client
    c.write("src", b"copy me")
    c.copy("src", "dst/nested")
    assert c.read("dst/nested") == b"copy me"
    assert c.read("src") == b"copy me"
    with pytest.raises(FileNotFoundError):
        c.copy("missing", "x")


def test_delete(backend: Backend) -> None:
    c = backend.client
    c.write("del/me", b"1")
    c.delete("del/me")
    assert not c.is_file("del/me")
    with pytest.raises(FileNotFoundError):
        c.delete("del/me")


def test_delete_recursive(backend: Backend) -> None:
    c = backend.client
    _populate(c)
    c.delete("a", recursive=True)
    assert [m.key for m in c.list("")] == ["a-b", "a0", "b/x1", "b/x2", "b/y"]
    with pytest.raises(FileNotFoundError):
        c.delete("nothing-here", recursive=True)


# ------------------------------------------------------------ file transfer


def test_upload_download_file(backend: Backend, tmp_path: Path) -> None:
    c = backend.client
    data = os.urandom(6 << 20)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    c.upload_file("big/up.bin", str(src))
    assert c.info("big/up.bin").content_length == len(data)
    dest = tmp_path / "out" / "down.bin"
    c.download_file("big/up.bin", str(dest))
    assert dest.read_bytes() == data
    buf = io.BytesIO()
    c.download_file("big/up.bin", buf)
    assert hashlib.sha256(buf.getvalue()).digest() == hashlib.sha256(data).digest()
    assert [p.name for p in dest.parent.iterdir()] == ["down.bin"]  # no temp files left


class _ShortReads(io.RawIOBase):
    """A raw stream (no file number: size unknown) that returns at most 1000 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = (
            offset if whence == 0 else (self._pos + offset if whence == 1 else len(self._data) + offset)
        )
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), 1000, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def test_upload_stream_with_short_reads(backend: Backend) -> None:
    """A stream that returns fewer bytes than asked is uploaded whole (not cut at a short read)."""
    data = os.urandom((1 << 20) + 12345)
    backend.client.upload_file("short/reads.bin", _ShortReads(data))
    assert backend.client.read("short/reads.bin") == data


def test_upload_missing_local_file(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        backend.client.upload_file("x", str(tmp_path / "nope"))
    assert list(backend.client.list("")) == []


# ---------------------------------------------------------------- open()


def test_open_binary_and_text(backend: Backend) -> None:
    c = backend.client
    with c.open("t/bin", "wb") as f:
        f.write(b"abc")
        f.write(b"def")
    with c.open("t/bin", "rb") as f:
        assert f.read(2) == b"ab"
        assert f.tell() == 2
        f.seek(4)
        assert f.read() == b"ef"
    with c.open("t/text", "w", encoding="utf-8") as f:
        f.write("héllo\nwörld\n")
    with c.open("t/text", "r") as f:
        assert f.readlines() == ["héllo\n", "wörld\n"]


def test_open_append(backend: Backend) -> None:
    c = backend.client
    with c.open("ap", "ab") as f:
        f.write(b"one,")
    with c.open("ap", "ab") as f:
        f.write(b"two")
    assert c.read("ap") == b"one,two"


def test_open_write_is_invisible_until_close_and_discarded_on_error(backend: Backend) -> None:
    c = backend.client
    c.write("w", b"original")
    with pytest.raises(RuntimeError), c.open("w", "wb") as f:
        f.write(b"partial")
        assert c.read("w") == b"original"
        raise RuntimeError("boom")
    assert c.read("w") == b"original"


def test_open_missing_for_read(backend: Backend) -> None:
    with pytest.raises(FileNotFoundError):
        backend.client.open("missing", "rb")


def test_open_invalid_mode(backend: Backend) -> None:
    with pytest.raises(ValueError, match="'rw'"):
        backend.client.open("x", "rw")


def test_open_streams_large_object_in_ranges(backend: Backend) -> None:
    c = backend.client
    data = os.urandom(3 << 20)
    with c.open("large", "wb") as f:
        for i in range(0, len(data), 1 << 20):
            f.write(data[i : i + (1 << 20)])
    with c.open("large", "rb", memory_load_limit=1024) as f:
        f.seek(len(data) - 10)
        assert f.read() == data[-10:]
        f.seek(0)
        out = b"".join(iter(lambda: f.read(300_000), b""))
    assert out == data


def test_open_large_write_multipart(backend: Backend) -> None:
    c = backend.client
    chunk = os.urandom(1 << 20)
    with c.open("mp/obj", "wb") as f:
        for _ in range(12):
            f.write(chunk)
    assert c.info("mp/obj").content_length == 12 << 20
    assert c.read("mp/obj", Range(11 << 20, 16)) == chunk[:16]


def test_read_never_mixes_versions(backend: Backend) -> None:
    c = backend.client
    old = b"A" * (2 << 20)
    c.write("v", old)
    f = c.open("v", "rb", memory_load_limit=0)
    first = f.read(1 << 20)
    c.write("v", b"B" * (2 << 20))
    try:
        rest = f.read()
    except PreconditionFailedError:
        pass  # object stores: the ETag pinned at open no longer matches
    else:
        assert first + rest == old  # POSIX: the open file keeps reading the old inode
    finally:
        f.close()


# ------------------------------------------------------ conditional writes


def test_conditional_create(backend: Backend) -> None:
    if not backend.enforces_conditional_writes:
        pytest.skip(f"{backend.name}: this server does not enforce If-None-Match (server limitation)")
    c = backend.client
    c.put_object("cond", b"first", if_none_match="*")
    with pytest.raises(PreconditionFailedError):
        c.put_object("cond", b"second", if_none_match="*")
    assert c.read("cond") == b"first"


def test_conditional_replace(backend: Backend) -> None:
    if not backend.enforces_conditional_writes:
        pytest.skip(f"{backend.name}: this server does not enforce If-Match (server limitation)")
    c = backend.client
    c.write("cm", b"v1")
    etag = c.info("cm").etag
    assert etag
    with pytest.raises(PreconditionFailedError):
        c.put_object("cm", b"v2", if_match="not-the-etag")
    assert c.read("cm") == b"v1"
    c.put_object("cm", b"v2", if_match=etag)
    assert c.read("cm") == b"v2"


# ------------------------------------------------------ processes and pickling


def test_provider_pickles(backend: Backend) -> None:
    """A provider crosses a process boundary (sync workers, DataLoader workers) and works there."""
    c = backend.client
    c.write("pp", b"provider pickled")
    clone = pickle.loads(pickle.dumps(c.config.storage_provider))
    assert type(clone) is type(c.config.storage_provider)
    assert clone.get_object("pp") == b"provider pickled"


def test_client_pickles(backend: Backend) -> None:
    c = backend.client
    c.write("pk", b"pickled")
    clone = pickle.loads(pickle.dumps(c))
    assert clone.read("pk") == b"pickled"
    assert "secret" not in repr(clone).lower()


def _child_read(client: StorageClient, key: str, queue: multiprocessing.Queue) -> None:
    try:
        queue.put(client.read(key))
    except Exception as exc:  # report, don't hang the parent
        queue.put(repr(exc))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_client_used_in_child_process(backend: Backend, method: str) -> None:
    c = backend.client
    c.write("child", b"from parent")
    assert c.read("child") == b"from parent"  # the parent's connections now exist
    ctx = multiprocessing.get_context(method)
    queue: multiprocessing.Queue = ctx.Queue()
    proc = ctx.Process(target=_child_read, args=(c, "child", queue))
    proc.start()
    result = queue.get(timeout=60)
    proc.join(30)
    assert result == b"from parent"
    assert c.read("child") == b"from parent"  # and the parent still works


def test_non_strict_metadata_sees_only_whole_path_segments(backend: Backend) -> None:
    # "ab/x" makes "ab" a directory; "abc" and "ab/x" do not make "a" one.
    provider = backend.client._storage_provider
    provider.put_object("ab/x", b"1")
    provider.put_object("abc", b"2")
    assert provider.get_object_metadata("ab", strict=False).type == "directory"
    assert provider.get_object_metadata("ab/", strict=False).type == "directory"
    with pytest.raises(ObjectNotFoundError):
        provider.get_object_metadata("a", strict=False)
