"""1.3.1's presigned URLs, symlinks, list patterns/symlink handling, open/read options, parallel list_recursive."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

import manystore
from manystore.errors import InvalidPathError
from manystore.types import MAX_SYMLINK_DEPTH, ObjectMetadata, PatternType, SignerType, SymlinkHandling

from .conftest import Backend


def test_presigned_url_fetches_the_bytes(backend: Backend) -> None:
    c = backend.client
    c.write("ps/a b.bin", b"presigned bytes")
    if backend.name == "gcs-emulator":  # anonymous emulator credentials hold no key to sign with
        with pytest.raises(PermissionError, match=r"cannot sign a GCS URL.*anonymous"):
            c.generate_presigned_url("ps/a b.bin")
        return
    url = c.generate_presigned_url("ps/a b.bin", signer_options={"expires_in": 120})
    if backend.name == "file":
        assert url.startswith("file://")
    else:
        assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"presigned bytes"
    with pytest.raises(ValueError, match="signer_type 'cloudfront' is not supported"):
        c.generate_presigned_url("ps/a b.bin", signer_type=SignerType.CLOUDFRONT)
    with pytest.raises(ValueError, match="expires_in must be a positive int"):
        c.generate_presigned_url("ps/a b.bin", signer_options={"expires_in": 0})
    with pytest.raises(ValueError, match="method must be one of"):
        c.generate_presigned_url("ps/a b.bin", method="PATCH")


def test_presigned_put_uploads(backend: Backend) -> None:
    c = backend.client
    if backend.name == "file":
        with pytest.raises(ValueError, match="can only be read"):
            c.generate_presigned_url("ps/put.bin", method="PUT")
        return
    if backend.name == "gcs-emulator":
        with pytest.raises(PermissionError, match="cannot sign"):
            c.generate_presigned_url("ps/put.bin", method="PUT")
        return
    url = c.generate_presigned_url("ps/put.bin", method="PUT")
    headers = {"Content-Type": "application/octet-stream"}  # urllib's default is a form body
    if backend.name.startswith("azure"):
        headers["x-ms-blob-type"] = "BlockBlob"
    request = urllib.request.Request(url, data=b"uploaded", method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status in (200, 201)
    assert c.read("ps/put.bin") == b"uploaded"


def test_presigned_url_shortcut(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "s.txt").write_bytes(b"short")
    url = manystore.generate_presigned_url(str(root / "s.txt"))
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"short"


def test_symlink_reads_follow(backend: Backend) -> None:
    c = backend.client
    c.write("sl/data/target.bin", b"target bytes")
    c.make_symlink("sl/links/one", "sl/data/target.bin")
    c.make_symlink("sl/links/two", "sl/links/one")
    meta = c.info("sl/links/one")
    assert meta.symlink_target == "../data/target.bin"
    assert ObjectMetadata.resolve_symlink_target("sl/links/one", meta.symlink_target) == "sl/data/target.bin"
    assert c.read("sl/links/two") == b"target bytes"
    assert c.read("sl/links/two", byte_range=manystore.Range(7, 5)) == b"bytes"
    with c.open("sl/links/two", "rb") as f:
        assert f.read() == b"target bytes"
    if backend.name == "file":
        assert os.path.islink(c.get_posix_path("sl/links/one") or "")
    with pytest.raises(InvalidPathError):
        c.make_symlink("sl/links/out", "../../outside")


def test_symlink_cycle_and_depth(backend: Backend) -> None:
    c = backend.client
    if backend.name == "file":  # the OS refuses cycles itself
        c.make_symlink("cy/a", "cy/b")
        c.make_symlink("cy/b", "cy/a")
        with pytest.raises(OSError):
            c.read("cy/a")
        return
    c.make_symlink("cy/a", "cy/b")
    c.make_symlink("cy/b", "cy/a")
    with pytest.raises(ValueError, match="symlink cycle"):
        c.read("cy/a")
    c.write("dp/0", b"end")
    for i in range(1, MAX_SYMLINK_DEPTH + 2):
        c.make_symlink(f"dp/{i}", f"dp/{i - 1}")
    assert c.read(f"dp/{MAX_SYMLINK_DEPTH}") == b"end"
    with pytest.raises(ValueError, match="MAX_SYMLINK_DEPTH"):
        c.read(f"dp/{MAX_SYMLINK_DEPTH + 1}")


def test_list_symlink_handling_and_patterns(backend: Backend) -> None:
    c = backend.client
    c.write("lh/a.txt", b"a")
    c.write("lh/b.log", b"bb")
    c.write("lh/sub/c.txt", b"ccc")
    c.make_symlink("lh/link.txt", "lh/a.txt")
    everything = [m.key for m in c.list("lh/")]
    assert everything == ["lh/a.txt", "lh/b.log", "lh/link.txt", "lh/sub/c.txt"]
    skipped = [m.key for m in c.list("lh/", symlink_handling=SymlinkHandling.SKIP)]
    assert skipped == ["lh/a.txt", "lh/b.log", "lh/sub/c.txt"]
    kept = {m.key: m.symlink_target for m in c.list("lh/", symlink_handling=SymlinkHandling.PRESERVE)}
    assert kept["lh/link.txt"] == "a.txt" and kept["lh/a.txt"] is None
    only_txt = [(PatternType.INCLUDE, "*.txt")]
    assert [m.key for m in c.list("lh/", patterns=only_txt)] == ["lh/a.txt", "lh/link.txt", "lh/sub/c.txt"]
    no_sub = [(PatternType.EXCLUDE, "sub/*"), (PatternType.EXCLUDE, "*.log")]
    assert [m.key for m in c.list_recursive("lh", patterns=no_sub, symlink_handling="skip")] == ["lh/a.txt"]
    with pytest.raises(TypeError, match="PatternType"):
        list(c.list("lh/", patterns=[("nope", "*")]))  # type: ignore[list-item]


def test_list_recursive_parallel_matches_serial(backend: Backend) -> None:
    c = backend.client
    keys = [f"pr/{d}/{i}.bin" for d in ("a", "b", "b-c", "c/d") for i in range(3)] + ["pr/a0", "pr/top"]
    for k in keys:
        c.write(k, b"x")
    serial = [m.key for m in c.list_recursive("pr", max_workers=1)]
    assert serial == sorted(keys)
    assert [m.key for m in c.list_recursive("pr", max_workers=3, look_ahead=1)] == serial
    bounded = [
        m.key for m in c.list_recursive("pr", start_after="pr/a/2.bin", end_at="pr/b/1.bin", max_workers=4)
    ]
    assert bounded == ["pr/a0", "pr/b-c/0.bin", "pr/b-c/1.bin", "pr/b-c/2.bin", "pr/b/0.bin", "pr/b/1.bin"]
    urls = [m.key for m in c.list_recursive("pr/c", include_url_prefix=True)]
    assert urls == [c.url_prefix + f"pr/c/d/{i}.bin" for i in range(3)]


def test_open_attributes_and_prefetch(backend: Backend) -> None:
    c = backend.client
    with c.open("oa/x.bin", "wb", attributes={"kind": "weights"}) as f:
        f.write(b"0123456789")
    if backend.name != "file":  # the POSIX provider keeps no user metadata
        assert (c.info("oa/x.bin").metadata or {}).get("kind") == "weights"
    with c.open("oa/x.bin", "rb", prefetch_file=False) as f:
        if backend.name != "file":
            assert not hasattr(f._stream, "getvalue")  # ranged reader, not an in-memory copy
        f.seek(4)
        assert f.read(3) == b"456"
    assert c.read("oa/x.bin", check_source_version=manystore.SourceVersionCheckMode.ENABLE) == b"0123456789"


def test_object_metadata_helpers() -> None:
    from datetime import datetime, timezone

    meta = ObjectMetadata("k", 1, datetime.now(timezone.utc))
    other = meta.replace(key="j", content_length=5)
    assert (meta.key, other.key, other.content_length) == ("k", "j", 5)
    with pytest.raises(TypeError):
        meta.replace(nonsense=1)
    assert ObjectMetadata.encode_symlink_target("a/b/link", "a/c/f") == "../c/f"
    assert ObjectMetadata.encode_symlink_target("link", "d/f") == "d/f"
    assert ObjectMetadata.resolve_symlink_target("a/b/link", "../c/f") == "a/c/f"
