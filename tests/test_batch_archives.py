"""manystore.batch archives on every backend: reads equal tarfile/zipfile, index once, streamed writes."""

from __future__ import annotations

import io
import os
import random
import tarfile
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.batch import (
    ArchiveConfig,
    ArchiveMemberNotFoundError,
    ArchiveMode,
    ArchiveWriter,
    ObjectSource,
    extract,
    iter_members,
    list_archive,
    read_member,
    write_archive,
)
from manystore.batch.archive import ScanPolicy, archive_index

from .conftest import Backend, s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server


def _tar_bytes(members: list[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT, extras: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        if extras:
            d = tarfile.TarInfo("dir")
            d.type = tarfile.DIRTYPE
            tf.addfile(d)
            link = tarfile.TarInfo("dir/link")
            link.type, link.linkname = tarfile.SYMTYPE, "../a"
            tf.addfile(link)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _members(rng: random.Random, n: int = 24) -> list[tuple[str, bytes]]:
    out = [
        ("empty", b""),
        ("d/" + "long-name-" * 15 + ".bin", rng.randbytes(700)),
        ("ünïcode/名.txt", b"u" * 33),
    ]
    for i in range(n):
        out.append((f"shard/{i:04d}.{('jpg', 'cls', 'json')[i % 3]}", rng.randbytes(rng.randrange(0, 9000))))
    return out


def _tarfile_view(raw: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


# --------------------------------------------------------------- reads equal the stdlib
@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_member_reads_equal_tarfile(backend: Backend, fmt: int) -> None:
    members = _members(random.Random(fmt))
    if fmt == tarfile.USTAR_FORMAT:  # ustar cannot hold names over 255 bytes or non-ASCII
        members = [(n, d) for n, d in members if len(n) < 100 and n.isascii()]
    raw = _tar_bytes(members, fmt)
    c = backend.client
    c.write("foreign.tar", raw)
    expected = _tarfile_view(raw)
    listed = list_archive(c, "foreign.tar")
    assert [(m.name, m.size) for m in listed] == [(n, len(d)) for n, d in expected.items()]
    for member in listed:
        assert member.offset is not None
        assert raw[member.offset : member.offset + member.size] == expected[member.name]
        assert read_member(c, "foreign.tar", member.name) == expected[member.name]


def test_zip_member_reads_equal_zipfile(backend: Backend) -> None:
    rng = random.Random(7)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dir/", b"")
        for i, (name, data) in enumerate(_members(rng)):
            zf.writestr(name, data, zipfile.ZIP_DEFLATED if i % 2 else zipfile.ZIP_STORED)
        zf.comment = b"a comment before the end record"
    raw = buf.getvalue()
    c = backend.client
    c.write("a.zip", raw)
    ref = zipfile.ZipFile(io.BytesIO(raw))
    files = [i for i in ref.infolist() if not i.is_dir()]
    assert [(m.name, m.size) for m in list_archive(c, "a.zip")] == [(i.filename, i.file_size) for i in files]
    for info in files:
        assert read_member(c, "a.zip", info.filename) == ref.read(info)


def test_tgz_member_reads_equal_tarfile(backend: Backend) -> None:
    members = _members(random.Random(3), 8)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    c = backend.client
    c.write("s.tgz", buf.getvalue())
    expected = _tarfile_view(buf.getvalue())
    assert [m.name for m in list_archive(c, "s.tgz")] == list(expected)
    name = members[5][0]
    assert read_member(c, "s.tgz", name) == expected[name]
    got = dict((m.name, d) for m, d in iter_members(c, "s.tgz", regex="shard/", mode="prefix"))
    assert got == {n: d for n, d in expected.items() if n.startswith("shard/")}


def test_missing_member_and_missing_archive(backend: Backend) -> None:
    c = backend.client
    c.write("x.tar", _tar_bytes([("a", b"1")]))
    with pytest.raises(ArchiveMemberNotFoundError, match="no member 'b'") as err:
        read_member(c, "x.tar", "b")
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        read_member(c, "absent.tar", "a")
    c.write("not-a.tar", b"hello" * 300)
    with pytest.raises(ValueError, match=r"not-a\.tar"):
        list_archive(c, "not-a.tar")


# --------------------------------------------------------------- selection
def test_regex_modes_select_members(backend: Backend) -> None:
    c = backend.client
    members = [("a/001.jpg", b"j1"), ("a/001.cls", b"c1"), ("a/002.jpg", b"j2"), ("b/001.jpg", b"x")]
    write_archive(c, "sel.tar", members)
    cases = {
        (ArchiveMode.PREFIX, "a/"): ["a/001.jpg", "a/001.cls", "a/002.jpg"],
        (ArchiveMode.SUFFIX, ".jpg"): ["a/001.jpg", "a/002.jpg", "b/001.jpg"],
        (ArchiveMode.SUBSTR, "001"): ["a/001.jpg", "a/001.cls", "b/001.jpg"],
        (ArchiveMode.REGEXP, r"^a/00[12]\.jpg$"): ["a/001.jpg", "a/002.jpg"],
        (ArchiveMode.WDSKEY, "a/001"): ["a/001.jpg", "a/001.cls"],
    }
    for (mode, regex), names in cases.items():
        got = list(iter_members(c, "sel.tar", regex=regex, mode=mode))
        assert [m.name for m, _ in got] == names, mode
        assert all(data == dict(members)[m.name] for m, data in got)
    tar = extract(c, "sel.tar", ArchiveConfig(regex="a/001", mode="wdskey"))
    assert _tarfile_view(tar) == {"a/001.jpg": b"j1", "a/001.cls": b"c1"}
    assert extract(c, "sel.tar", ArchiveConfig(archpath="b/001.jpg")) == b"x"


def test_archive_config_validation() -> None:
    with pytest.raises(ValueError, match="needs a regex"):
        ArchiveConfig(mode="prefix")
    with pytest.raises(ValueError, match="needs a mode"):
        ArchiveConfig(regex="x")
    with pytest.raises(ValueError, match="both archpath='a' and regex='x'"):
        ArchiveConfig(archpath="a", regex="x", mode="prefix")
    with pytest.raises(ValueError, match="mode='glob'"):
        ArchiveConfig(regex="x", mode="glob")
    with pytest.raises(ValueError, match=r"regex='\('"):
        ArchiveConfig(regex="(", mode="regexp")
    assert ArchiveConfig(regex="x", mode="suffix").mode is ArchiveMode.SUFFIX


# --------------------------------------------------------------- writing
@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".zip"])
def test_written_archives_open_with_stdlib_and_append(backend: Backend, suffix: str) -> None:
    c = backend.client
    key = "out/shard" + suffix
    c.write("src/big.bin", os.urandom(300_000))
    first = [
        ("a.txt", b"alpha"),
        ("b.bin", (io.BytesIO(b"B" * 5000), 5000)),
        ("c.bin", ObjectSource(c, "src/big.bin")),
    ]
    write_archive(c, key, first)
    write_archive(c, key, [("d.txt", b"delta")], allow_append=True)
    raw = backend.other_client().read(key)
    if suffix == ".zip":
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            view = {n: zf.read(n) for n in zf.namelist()}
    else:
        view = _tarfile_view(raw)
    assert list(view) == ["a.txt", "b.bin", "c.bin", "d.txt"]
    assert (
        view["b.bin"] == b"B" * 5000 and view["c.bin"] == c.read("src/big.bin") and view["d.txt"] == b"delta"
    )
    assert [m.name for m in list_archive(c, key)] == list(view)
    assert read_member(c, key, "c.bin") == view["c.bin"]
    assert c.is_file(key + ".idx") == (suffix == ".tar")


def test_tar_append_keeps_offsets_and_sidecar_is_current(backend: Backend) -> None:
    c = backend.client
    before = write_archive(c, "s.tar", [(f"m{i}", bytes([i]) * 1000 * i) for i in range(5)])
    after = write_archive(c, "s.tar", [("new", b"n" * 10)], allow_append=True)
    assert before is not None and after is not None
    assert after.members[:5] == before.members and after.members[5].name == "new"
    assert after.etag == c.info("s.tar").etag
    fresh = backend.other_client()
    assert archive_index(fresh, "s.tar", fresh=True).source == "sidecar"
    assert read_member(fresh, "s.tar", "m3") == bytes([3]) * 3000


def test_writer_exception_stores_nothing(backend: Backend) -> None:
    c = backend.client
    with pytest.raises(RuntimeError, match="boom"), ArchiveWriter(c, "never.tar") as w:
        w.add("a", b"x" * 100_000)
        raise RuntimeError("boom")
    assert not c.is_file("never.tar") and not c.is_file("never.tar.idx")
    with pytest.raises(TypeError, match="data of type int"), ArchiveWriter(c, "never.tar") as w:
        w.add("a", 5)  # type: ignore[arg-type]
    assert not c.is_file("never.tar")


def test_replaced_archive_is_reindexed(backend: Backend) -> None:
    c = backend.client
    c.write("r.tar", _tar_bytes([("a", b"old-a"), ("b", b"old-b" * 100)]))
    assert read_member(c, "r.tar", "b") == b"old-b" * 100
    c.write("r.tar", _tar_bytes([("zzzz" * 30, b"pad" * 500), ("b", b"new-b")]))  # b moved
    assert read_member(c, "r.tar", "b") == b"new-b"
    assert [m.name for m in list_archive(c, "r.tar")] == ["zzzz" * 30, "b"]


# --------------------------------------------------------------- GET counts (S3 behind a counting proxy)
# On moto: rclone answers a ranged GET with 200 + Content-Range, which costs the S3 provider one
# extra GET per client the first time (it then presigns ranged GETs), blurring the counts.
@pytest.fixture
def proxy(moto_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_server.endpoint_url)
    yield p
    p.close()


def _proxied(server: S3Server, proxy: FaultProxy, base: str, cache_dir: Path | None = None) -> StorageClient:
    profile = s3_profile(server, base, endpoint_url=proxy.url)
    config: dict[str, Any] = {"profiles": {"p": profile}}
    if cache_dir is not None:
        profile["caching_enabled"] = True
        config["cache"] = {"size": "64M", "location": str(cache_dir)}
    return StorageClient(StorageClientConfig.from_dict(config, "p"))


def _count(proxy: FaultProxy, fn: Any) -> tuple[Any, Counter[str]]:
    before = Counter(proxy.requests_by_method)
    result = fn()
    after = Counter(proxy.requests_by_method)
    after.subtract(before)
    return result, +after


def test_foreign_tar_indexed_once_then_one_get_per_member(
    moto_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    rng = random.Random(11)
    small = [(f"s/{i:04d}.bin", rng.randbytes(4096)) for i in range(200)]
    large = [(f"l/{i:02d}.bin", rng.randbytes(600_000)) for i in range(8)]
    raw = _tar_bytes(small + large, extras=False)
    base = f"manystore-test/{uuid.uuid4().hex}"
    c = _proxied(moto_server, proxy, base, tmp_path / "cache")
    c.write("f.tar", raw)
    data, cold = _count(proxy, lambda: read_member(c, "f.tar", "l/05.bin"))
    assert data == large[5][1]
    index = archive_index(c, "f.tar")
    # HEAD + sidecar probe (404) + header windows: 64 KiB, then read-through over the small
    # members (4 MiB covers them), then one small probe per large member
    # (index.requests counts the HEAD; the member read adds one GET)
    assert cold["HEAD"] == 1 and cold["GET"] == index.requests - 1 + 1
    assert cold["GET"] <= 1 + 2 + len(large) + 1 + 1
    data, warm = _count(proxy, lambda: read_member(c, "f.tar", "s/0123.bin"))
    assert data == small[123][1] and warm == Counter({"GET": 1})
    # another client (another process) with the same read cache: the index comes from the cache
    other = _proxied(moto_server, proxy, base, tmp_path / "cache")
    data, warm2 = _count(proxy, lambda: read_member(other, "f.tar", "l/07.bin"))
    assert data == large[7][1] and warm2 == Counter({"GET": 1})
    # without a read cache, the in-process index serves the same client
    nocache = _proxied(moto_server, proxy, base)
    _count(proxy, lambda: read_member(nocache, "f.tar", "s/0001.bin"))
    _, again = _count(proxy, lambda: read_member(nocache, "f.tar", "s/0002.bin"))
    assert again == Counter({"GET": 1})
    # headers-only walk when every member is large: one probe GET per member, few bytes
    hop = _proxied(moto_server, proxy, base)
    before = proxy.body_bytes_by_method["GET"]
    _, scan = _count(
        proxy, lambda: archive_index(hop, "f.tar", scan=ScanPolicy(max_gap=0, first=4096), fresh=True)
    )
    assert scan["GET"] == 1 + len(small) + len(large) + 1  # sidecar probe, one per member, the end marker
    # at most 4 KiB per probe, plus the sidecar probe's 404 error body (an XML document)
    assert proxy.body_bytes_by_method["GET"] - before <= (len(small) + len(large) + 1) * 4096 + 4096 + 2048


def test_written_tar_and_zip_member_cost(moto_server: S3Server, proxy: FaultProxy) -> None:
    base = f"manystore-test/{uuid.uuid4().hex}"
    writer = _proxied(moto_server, proxy, base)
    members = [(f"m{i}", os.urandom(20_000)) for i in range(50)]
    write_archive(writer, "w.tar", members)
    write_archive(writer, "w.zip", members)
    reader = _proxied(moto_server, proxy, base)
    data, cold = _count(proxy, lambda: read_member(reader, "w.tar", "m7"))
    assert data == members[7][1] and cold == Counter({"HEAD": 1, "GET": 2})  # sidecar + member
    data, warm = _count(proxy, lambda: read_member(reader, "w.tar", "m8"))
    assert data == members[8][1] and warm == Counter({"GET": 1})
    data, cold = _count(proxy, lambda: read_member(reader, "w.zip", "m9"))
    assert data == members[9][1] and cold == Counter({"HEAD": 1, "GET": 2})  # tail + member
    data, warm = _count(proxy, lambda: read_member(reader, "w.zip", "m10"))
    assert data == members[10][1] and warm == Counter({"GET": 1})
    # a run of neighbouring members: one GET
    got, run = _count(proxy, lambda: list(iter_members(reader, "w.tar", regex=r"^m1\d$", mode="regexp")))
    assert [m.name for m, _ in got] == [f"m{i}" for i in range(10, 20)] and run == Counter({"GET": 1})


def test_missing_source_is_skippable_but_a_short_source_breaks_the_writer(backend: Backend) -> None:
    c = backend.client
    with ArchiveWriter(c, "skip.tar") as w:
        with pytest.raises(FileNotFoundError):
            w.add("gone", ObjectSource(c, "no/such/object"))
        w.add("kept", b"k")
    assert _tarfile_view(c.read("skip.tar")) == {"kept": b"k"}
    with pytest.raises(OSError, match="ended 5 bytes early"), ArchiveWriter(c, "short.tar") as w:
        w.add("short", (io.BytesIO(b"12345"), 10))
    assert not c.is_file("short.tar")
    with pytest.raises(ValueError, match="is broken"):
        w.add("more", b"x")


@pytest.mark.parametrize("server_name", ["rclone_server", "moto_server"])
def test_first_ranged_gets_learn_server_behaviour_once(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    # rclone answers ranged GETs with 200 + Content-Range, which obstore refuses; the provider
    # sends its first ranged GET alone to learn that, so 16 concurrent first reads cost at most
    # one refused GET, not one per thread.
    from concurrent.futures import ThreadPoolExecutor

    from manystore.types import Range

    server: S3Server = request.getfixturevalue(server_name)
    proxy = FaultProxy(server.endpoint_url)
    try:
        base = f"manystore-test/{uuid.uuid4().hex}"
        writer = _proxied(server, proxy, base)
        body = os.urandom(64 * 1024)
        writer.write("r.bin", body)
        reader = _proxied(server, proxy, base)
        spans = [(i * 1000, 500) for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            got, counts = _count(
                proxy, lambda: list(pool.map(lambda s: reader.read("r.bin", Range(s[0], s[1])), spans))
            )
        assert got == [body[lo : lo + n] for lo, n in spans]
        refused = 1 if server_name == "rclone_server" else 0
        assert counts["GET"] == len(spans) + refused, counts
    finally:
        proxy.close()
