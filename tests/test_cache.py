"""The read cache, against S3 on rclone behind a request-counting proxy."""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.caching import CacheManager
from manystore.types import Range, SourceVersionCheckMode

from .conftest import s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server

PROFILE = "cached"


@pytest.fixture
def proxy(rclone_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(rclone_server.endpoint_url)
    yield p
    p.close()


def cache_config(
    server: S3Server,
    proxy: FaultProxy,
    cache_dir: Path,
    *,
    size: str = "64M",
    policy: str = "lru",
    refresh: int = 60,
    check: bool = True,
) -> dict[str, Any]:
    """A config dict with one cached S3 profile reached through ``proxy``."""
    profile = s3_profile(server, f"manystore-test/{uuid.uuid4().hex}", endpoint_url=proxy.url)
    profile["caching_enabled"] = True
    return {
        "profiles": {PROFILE: profile},
        "cache": {
            "size": size,
            "location": str(cache_dir),
            "check_source_version": check,
            "eviction_policy": {"policy": policy, "refresh_interval": refresh},
        },
    }


def make_client(config: dict[str, Any], caching: bool = True) -> StorageClient:
    if not caching:
        config = {"profiles": {PROFILE: {**config["profiles"][PROFILE], "caching_enabled": False}}}
    return StorageClient(StorageClientConfig.from_dict(config, PROFILE))


class Requests:
    """Counts the proxy's requests made since construction (or the last ``reset``)."""

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self.reset()

    def reset(self) -> None:
        self._start = Counter(self._proxy.requests_by_method)

    def since(self) -> Counter[str]:
        now = Counter(self._proxy.requests_by_method)
        now.subtract(self._start)
        return +now


def disk_usage(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


# ---------------------------------------------------------------- freshness
def test_second_read_within_refresh_interval_makes_no_request(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    client = make_client(cache_config(rclone_server, proxy, tmp_path / "cache"))
    client.write("a.bin", b"hello cache")
    seen = Requests(proxy)
    assert client.read("a.bin") == b"hello cache"
    assert seen.since() == Counter({"HEAD": 1, "GET": 1})
    seen.reset()
    assert client.read("a.bin") == b"hello cache"
    with client.open("a.bin", "rb") as fh:
        assert fh.read() == b"hello cache"
    with client.open("a.bin", "r") as fh:
        assert fh.read() == "hello cache"
    assert seen.since() == Counter()


def test_after_refresh_interval_one_head_and_no_get(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    client = make_client(cache_config(rclone_server, proxy, tmp_path / "cache", refresh=1))
    client.write("a.bin", b"x" * 1000)
    assert client.read("a.bin") == b"x" * 1000
    time.sleep(1.1)
    seen = Requests(proxy)
    assert client.read("a.bin") == b"x" * 1000
    assert seen.since() == Counter({"HEAD": 1})
    seen.reset()  # the HEAD re-validated the entry: fresh again
    assert client.read("a.bin") == b"x" * 1000
    assert seen.since() == Counter()


def test_replaced_object_is_never_served_stale(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    config = cache_config(rclone_server, proxy, tmp_path / "cache", refresh=1)
    client, other = make_client(config), make_client(config, caching=False)
    other.write("obj", b"old bytes")
    assert client.read("obj") == b"old bytes"
    other.write("obj", b"new bytes, different length")
    time.sleep(1.1)
    assert client.read("obj") == b"new bytes, different length"
    other.write("obj", b"third version")
    time.sleep(1.1)
    with client.open("obj", "rb", check_source_version=SourceVersionCheckMode.ENABLE) as fh:
        assert fh.read() == b"third version"


def test_check_source_version_modes(rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path) -> None:
    config = cache_config(rclone_server, proxy, tmp_path / "cache", refresh=1, check=False)
    client, other = make_client(config), make_client(config, caching=False)
    other.write("obj", b"v1")
    assert client.read("obj") == b"v1"
    other.write("obj", b"v2")
    time.sleep(1.1)
    seen = Requests(proxy)
    assert client.read("obj") == b"v1"  # checking off in the config: the cached copy is served
    with client.open("obj", check_source_version=SourceVersionCheckMode.INHERIT) as fh:
        assert fh.read() == b"v1"
    with client.open("obj", check_source_version=SourceVersionCheckMode.DISABLE) as fh:
        assert fh.read() == b"v1"
    assert seen.since() == Counter()
    with client.open("obj", check_source_version=SourceVersionCheckMode.ENABLE) as fh:
        assert fh.read() == b"v2"


def test_writes_and_deletes_through_the_client_invalidate(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    client = make_client(cache_config(rclone_server, proxy, tmp_path / "cache"))
    client.write("k", b"one")
    assert client.read("k") == b"one"
    client.write("k", b"two")
    assert client.read("k") == b"two"
    with client.open("k", "wb") as fh:
        fh.write(b"three")
    assert client.read("k") == b"three"
    client.delete("k")
    with pytest.raises(FileNotFoundError):
        client.read("k")
    client.write("d/x", b"in dir")
    assert client.read("d/x") == b"in dir"
    client.delete("d", recursive=True)
    with pytest.raises(FileNotFoundError):
        client.read("d/x")


# -------------------------------------------------------------- concurrency
def _read_all(config: dict[str, Any], keys: list[str], seed: int) -> dict[str, str]:
    client = make_client(config)
    order = list(keys)
    random.Random(seed).shuffle(order)
    import hashlib

    return {k: hashlib.sha256(client.read(k)).hexdigest() for k in order}


def test_many_processes_download_each_object_once(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    import hashlib

    config = cache_config(rclone_server, proxy, tmp_path / "cache")
    writer = make_client(config, caching=False)
    keys = [f"objs/{i:03d}" for i in range(100)]
    expected = {}
    for i, key in enumerate(keys):
        body = os.urandom(512 + 37 * i)
        writer.write(key, body)
        expected[key] = hashlib.sha256(body).hexdigest()
    seen = Requests(proxy)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        results = pool.starmap(_read_all, [(config, keys, seed) for seed in range(8)])
    assert all(r == expected for r in results)
    counts = seen.since()
    assert counts["GET"] == 100, counts
    assert counts["HEAD"] == 100, counts


def test_threads_share_the_cache(rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    config = cache_config(rclone_server, proxy, tmp_path / "cache")
    writer = make_client(config, caching=False)
    for i in range(20):
        writer.write(f"t/{i}", bytes([i]) * 100)
    client = make_client(config)
    seen = Requests(proxy)
    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(lambda i: client.read(f"t/{i % 20}"), range(160)))
    assert out == [bytes([i % 20]) * 100 for i in range(160)]
    assert seen.since()["GET"] == 20


# ----------------------------------------------------------------- eviction
@pytest.mark.parametrize("policy", ["lru", "fifo", "random"])
def test_cache_stays_under_its_size(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path, policy: str
) -> None:
    cache_dir = tmp_path / "cache"
    config = cache_config(rclone_server, proxy, cache_dir, size="100K", policy=policy)
    writer, client = make_client(config, caching=False), make_client(config)
    for i in range(40):
        writer.write(f"e/{i}", bytes([i]) * 10_000)
    limit = 100 * 1024
    for i in range(40):
        assert client.read(f"e/{i}") == bytes([i]) * 10_000
        if policy == "lru":
            assert client.read("e/0") == bytes([0]) * 10_000  # keep e/0 recently used
        assert disk_usage(cache_dir) <= limit
    assert disk_usage(cache_dir) > limit // 2  # the cache is used, not emptied
    if policy == "lru":
        seen = Requests(proxy)
        assert client.read("e/0") == bytes([0]) * 10_000
        assert seen.since() == Counter()
    writer.write("huge", b"h" * (200 * 1024))  # bigger than the whole cache: served, not cached
    assert client.read("huge") == b"h" * (200 * 1024)
    assert disk_usage(cache_dir) <= limit


def test_fifo_evicts_the_oldest_entry(rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path) -> None:
    config = cache_config(rclone_server, proxy, tmp_path / "cache", size="35K", policy="fifo")
    writer, client = make_client(config, caching=False), make_client(config)
    for i in range(4):
        writer.write(f"f/{i}", bytes([i]) * 10_000)
    for i in range(3):
        client.read(f"f/{i}")
    client.read("f/0")  # a use does not matter to FIFO
    client.read("f/3")  # evicts f/0, the first stored
    seen = Requests(proxy)
    client.read("f/1")
    client.read("f/2")
    assert seen.since() == Counter()
    client.read("f/0")
    assert seen.since()["GET"] == 1


# ------------------------------------------------------------ entry safety
def test_half_written_entries_are_ignored(rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    config = cache_config(rclone_server, proxy, cache_dir)
    client = make_client(config)
    client.write("h", b"0123456789" * 100)
    assert client.read("h") == b"0123456789" * 100
    data_dir = cache_dir / PROFILE / "data"
    (entry,) = list(data_dir.iterdir())
    blob = entry.read_bytes()
    # A writer killed mid-way leaves a temp file (never read) ...
    (data_dir / ".tmp-999999-dead").write_bytes(blob[: len(blob) // 2])
    # ... and, where renames are not atomic, a truncated entry: it must count as a miss.
    entry.write_bytes(blob[: len(blob) - 10])
    fresh = make_client(config)
    seen = Requests(proxy)
    assert fresh.read("h") == b"0123456789" * 100
    assert seen.since() == Counter({"HEAD": 1, "GET": 1})
    assert not (data_dir / ".tmp-999999-dead").exists()  # orphans are cleared on the next insert
    rewritten = entry.read_bytes()  # whole again (its header has a new stored_at)
    assert rewritten.endswith(b"0123456789" * 100) and len(rewritten) > 1000
    seen.reset()
    assert fresh.read("h") == b"0123456789" * 100
    assert seen.since() == Counter()


_KILL_WRITER = """
import os, sys
from manystore.caching import CacheConfig, CacheManager
from manystore.types import ObjectMetadata
from datetime import datetime, timezone
import manystore.caching.cache_manager as cm

real_open = open
def slow_open(path, mode="r", *a, **k):
    fh = real_open(path, mode, *a, **k)
    if "w" in mode and os.path.basename(str(path)).startswith(".tmp-"):
        class Half:
            def __enter__(self): return self
            def __exit__(self, *e): fh.close()
            def write(self, b):
                fh.write(b[: len(b) // 2]); fh.flush()
                if len(b) > 1000: os._exit(9)  # killed mid-write
        return Half()
    return fh
cm.open = slow_open
mgr = CacheManager(CacheConfig.from_dict({"size": "1M", "location": sys.argv[1]}), "cached")
meta = ObjectMetadata("h", 5000, datetime.now(timezone.utc), etag="e1")
mgr.get_object("h", lambda: meta, lambda m: b"z" * 5000, True)
"""


def test_killed_writer_leaves_no_visible_entry(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from manystore.caching import CacheConfig
    from manystore.types import ObjectMetadata

    loc = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", _KILL_WRITER, str(loc)], capture_output=True, timeout=60)
    assert proc.returncode == 9, proc.stderr.decode()
    data_dir = loc / "cached" / "data"
    assert [p.name for p in data_dir.iterdir() if not p.name.startswith(".tmp-")] == []
    mgr = CacheManager(CacheConfig.from_dict({"size": "1M", "location": str(loc)}), "cached")
    meta = ObjectMetadata("h", 5000, datetime.now(timezone.utc), etag="e1")
    fetched: list[int] = []

    def get(m: ObjectMetadata) -> bytes:
        fetched.append(1)
        return b"z" * 5000

    assert mgr.get_object("h", lambda: meta, get, True).data == b"z" * 5000
    assert fetched == [1]
    assert [p for p in data_dir.iterdir() if p.name.startswith(".tmp-")] == []


# ------------------------------------------------------------ bypass, blocks
def test_disable_read_cache_bypasses(rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    client = make_client(cache_config(rclone_server, proxy, cache_dir))
    client.write("b", b"bypass me")
    seen = Requests(proxy)
    for _ in range(2):
        with client.open("b", "rb", disable_read_cache=True) as fh:
            assert fh.read() == b"bypass me"
    assert seen.since() == Counter({"HEAD": 2, "GET": 2})
    assert not list((cache_dir / PROFILE / "data").iterdir())


def test_ranged_reads_of_a_large_object_hit_blocks(
    rclone_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    from manystore.file import READ_BLOCK_SIZE

    config = cache_config(rclone_server, proxy, tmp_path / "cache")
    config["cache"]["cache_line_size"] = f"{READ_BLOCK_SIZE >> 20}M"  # one cache line per read block
    client = make_client(config)
    body = os.urandom(2 * READ_BLOCK_SIZE + 12345)
    client.write("big", body)
    ranges = [Range(10, 100), Range(READ_BLOCK_SIZE - 50, 100), Range(2 * READ_BLOCK_SIZE, 20000)]
    seen = Requests(proxy)
    for r in ranges:
        assert client.read("big", r) == body[r.offset : r.offset + r.size]
    first = seen.since()
    # One GET per block (3); the S3 provider may add one probing how the server answers ranges.
    assert first["HEAD"] == 1 and 3 <= first["GET"] <= 4, first
    seen.reset()
    for r in ranges:
        assert client.read("big", r) == body[r.offset : r.offset + r.size]
    with client.open("big", "rb", memory_load_limit=1 << 20) as fh:
        fh.seek(READ_BLOCK_SIZE + 7)
        assert fh.read(1000) == body[READ_BLOCK_SIZE + 7 : READ_BLOCK_SIZE + 1007]
        fh.seek(0)
        assert fh.read() == body
    assert seen.since() == Counter()


# ------------------------------------------------------------------ scoping
def test_file_profiles_are_not_cached(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    config = {
        "profiles": {"loc": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}},
        "cache": {"size": "1M", "location": str(tmp_path / "cache")},
    }
    client = StorageClient(StorageClientConfig.from_dict(config, "loc"))
    client.write("f", b"local")
    assert client.read("f") == b"local"
    assert client.read("f", Range(1, 2)) == b"oc"
    assert not (tmp_path / "cache").exists()


def test_import_does_not_load_filelock() -> None:
    code = "import sys, manystore, manystore.caching; assert 'filelock' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
