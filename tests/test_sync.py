"""Sync engine: every route between backends, processes, change detection, failures, kill-and-rerun.

Servers: rclone and moto S3 on 127.0.0.1 (session fixtures), a fault proxy in front of
rclone where latency or errors are needed, and local directories.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.errors import ConfigError, ManystoreError
from manystore.mirror import SyncError, sync_clients
from manystore.mirror.plan import Partition, SyncSpec, discover_partitions, plan_partition, unchanged
from manystore.mirror.work import sync_partition
from manystore.providers._tempfile import TEMP_SUFFIX
from manystore.types import ObjectMetadata

from .conftest import OPTIONAL_BACKENDS, optional_server, s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server

TREE = {
    "a.bin": os.urandom(1000),
    "empty": b"",
    "d1/b.txt": b"bee",
    "d1/deep/c.txt": b"sea" * 100,
    "d2/e.log": os.urandom(3000),
    "d2/f.txt": b"f",
}


def _client(profile: dict[str, Any], name: str = "p") -> StorageClient:
    return StorageClient(StorageClientConfig.from_dict({"profiles": {name: profile}}, name))


def _file_profile(root: Path) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    return {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}


def _contents(client: StorageClient, prefix: str = "") -> dict[str, bytes]:
    return {m.key[len(prefix) :]: client.read(m.key) for m in client.list(prefix)}


def _fill(client: StorageClient, prefix: str, tree: dict[str, bytes]) -> None:
    for key, body in tree.items():
        client.write(prefix + key, body)


@pytest.fixture
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], StorageClient]:
    """``side(kind)``: a fresh client of ``file``, ``s3-rclone``, ``s3-moto``, ``azure-azurite``
    or ``gcs-emulator`` (each on its own new prefix)."""

    def make(kind: str) -> StorageClient:
        tag = uuid.uuid4().hex[:8]
        if kind == "file":
            return _client(_file_profile(tmp_path / tag))
        if kind in OPTIONAL_BACKENDS:
            module, server = optional_server(request, kind)
            return _client(module.profile(server, f"sync-{tag}"))
        server: S3Server = request.getfixturevalue("moto_server" if kind == "s3-moto" else "rclone_server")
        return _client(s3_profile(server, f"manystore-test/sync-{tag}"))

    return make


PAIRS = [
    ("file", "file"),
    ("file", "s3-rclone"),
    ("s3-moto", "file"),
    ("s3-moto", "s3-rclone"),
    ("s3-rclone", "s3-moto"),
    ("file", "azure-azurite"),
    ("azure-azurite", "azure-azurite"),
    ("gcs-emulator", "gcs-emulator"),
    ("gcs-emulator", "s3-moto"),
]


@pytest.mark.parametrize(("src_kind", "dst_kind"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_sync_between_backends_then_nothing_to_do(
    side: Callable[[str], StorageClient], src_kind: str, dst_kind: str
) -> None:
    source, target = side(src_kind), side(dst_kind)
    _fill(source, "data/", TREE)
    server_side: list[str] = []
    provider: Any = target._storage_provider
    real_copy_from = provider.copy_from
    provider.copy_from = lambda src, key, dst: server_side.append(key) or real_copy_from(src, key, dst)
    if dst_kind == "file":  # local pairs go in batches (see manystore.mirror.transfer.LOCAL_BATCH)
        real_many = provider.copy_many_from
        provider.copy_many_from = lambda src, pairs: (
            server_side.extend(k for k, _ in pairs) or real_many(src, pairs)
        )
    result = target.sync_from(source, "data", "copy", progress=False)
    # Same kind here means same store (one server): every object is copied server-side.
    assert len(server_side) == (len(TREE) if src_kind == dst_kind else 0)
    assert (result.copied, result.skipped, result.bytes_copied) == (6, 0, sum(map(len, TREE.values())))
    assert _contents(target, "copy/") == TREE
    again = target.sync_from(source, "data/", "copy/", progress=False)
    assert (again.copied, again.skipped) == (0, 6)
    source.write("data/d1/b.txt", b"BEE!")  # changed size
    assert target.sync_from(source, "data", "copy", progress=False).copied == 1
    assert target.read("copy/d1/b.txt") == b"BEE!"


def test_same_store_across_profiles_copies_server_side(rclone_server: S3Server) -> None:
    proxy = FaultProxy(rclone_server.endpoint_url)
    try:
        tag = uuid.uuid4().hex[:8]
        src_profile = s3_profile(rclone_server, f"manystore-test/ss-{tag}/src")
        dst_profile = s3_profile(rclone_server, f"manystore-test/ss-{tag}/dst")
        for profile in (src_profile, dst_profile):
            profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
        source, target = _client(src_profile, "src"), _client(dst_profile, "dst")
        _fill(source, "", TREE)
        proxy.requests_log.clear()
        result = target.sync_from(source, "", "mirror", progress=False)
        assert result.copied == len(TREE)
        object_reads = [p for m, p in proxy.requests_log if m == "GET" and "list-type" not in p]
        assert object_reads == [], "a same-store sync must not download objects"
        assert sum(1 for m, _ in proxy.requests_log if m == "PUT") == len(TREE)  # one CopyObject each
        assert _contents(target, "mirror/") == TREE
    finally:
        proxy.close()


def test_worker_processes_with_delete_include_exclude(
    side: Callable[[str], StorageClient], tmp_path: Path
) -> None:
    source, target = side("file"), side("s3-rclone")
    _fill(source, "", TREE)
    _fill(target, "out/", {"d3/stale.txt": b"old", "d1/stale.bin": b"old", "keep.log": b"mine"})
    result = target.sync_from(
        source,
        "",
        "out",
        delete_unmatched_files=True,
        num_worker_processes=2,
        threads=4,
        exclude=["**/*.log", "*.log"],
        progress=False,
    )
    expected = {k: v for k, v in TREE.items() if not k.endswith(".log")}
    assert (result.copied, result.deleted) == (len(expected), 2)
    assert _contents(target, "out/") == {**expected, "keep.log": b"mine"}  # excluded: not deleted
    again = target.sync_from(source, "", "out", num_worker_processes=2, include=["d1/**"], progress=False)
    assert (again.copied, again.skipped) == (0, 2)


def test_dry_run_changes_nothing_in_either_mode(side: Callable[[str], StorageClient]) -> None:
    source, target = side("file"), side("file")
    _fill(source, "", TREE)
    _fill(target, "", {"zzz": b"extra"})
    for processes in (None, 2):
        plan = target.sync_from(
            source, delete_unmatched_files=True, dry_run=True, num_worker_processes=processes, progress=False
        )
        assert (plan.copied, plan.deleted, plan.bytes_copied) == (6, 1, sum(map(len, TREE.values())))
        assert _contents(target) == {"zzz": b"extra"}


def test_failing_object_is_retried_then_reported_and_the_rest_complete(
    rclone_server: S3Server, tmp_path: Path
) -> None:
    proxy = FaultProxy(rclone_server.endpoint_url)
    try:
        profile = s3_profile(rclone_server, f"manystore-test/fail-{uuid.uuid4().hex[:8]}")
        profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
        profile["retry"] = {"attempts": 2, "delay": 0.01}
        target = _client(profile)
        source = _client(_file_profile(tmp_path / "src"))
        _fill(source, "", TREE)
        proxy.fail_next(1000, 500, method="PUT", path="/d2/e.log")
        proxy.fail_next(1, 503, method="PUT", path="/d1/b.txt")  # transient: retried, succeeds
        with pytest.raises(SyncError) as info:
            sync_clients(source, "", target, "", threads=3)
        assert list(info.value.failures) == ["d2/e.log"]
        assert "500" in str(info.value.failures["d2/e.log"])
        assert info.value.result.copied == len(TREE) - 1
        proxy.clear()
        assert set(_contents(target)) == set(TREE) - {"d2/e.log"}
        assert target.sync_from(source, progress=False).copied == 1  # a rerun completes it
        assert _contents(target) == TREE
    finally:
        proxy.close()


def test_progress_bar_shows_objects_bytes(side: Callable[[str], StorageClient], capsys: Any) -> None:
    source, target = side("file"), side("file")
    _fill(source, "", TREE)
    target.sync_from(source, progress=True, description="Mirroring")
    err = capsys.readouterr().err
    assert "Mirroring" in err and "6/6 objects" in err and "B/s" in err
    other = side("file")
    other.sync_from(source, progress=True, num_worker_processes=2, description="Spread")
    err = capsys.readouterr().err
    assert "Spread" in err and "6/6" in err and "obj/s" in err and "copied" in err


def _meta(size: int, etag: str, age: float) -> ObjectMetadata:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=age)
    return ObjectMetadata(key="k", content_length=size, last_modified=when, etag=etag)


def test_change_detection_rules() -> None:
    md5_a, md5_b = "0" * 32, "f" * 32
    assert not unchanged(_meta(1, "x", 0), None)
    assert not unchanged(_meta(1, "x", 0), _meta(2, "x", 10))  # size differs
    assert not unchanged(_meta(1, md5_a, 0), _meta(1, md5_b, 10))  # checksums differ, though newer
    assert unchanged(_meta(1, md5_a, 10), _meta(1, f'"{md5_a}"', 0))  # same checksum, though older
    assert unchanged(_meta(1, "x", 10), _meta(1, "x", 0))  # same etag
    assert unchanged(_meta(1, "x", 0), _meta(1, "y", 10))  # newer target
    assert not unchanged(_meta(1, "x", 10), _meta(1, "y", 0))  # older target


def test_bad_options_are_named(side: Callable[[str], StorageClient]) -> None:
    source, target = side("file"), side("file")
    with pytest.raises(ConfigError, match="'spark'"):
        target.sync_from(source, execution="spark")
    with pytest.raises(ConfigError, match="num_worker_processes must be >= 1, got 0"):
        target.sync_from(source, num_worker_processes=0)
    with pytest.raises(ConfigError, match="threads must be >= 1, got 0"):
        target.sync_from(source, threads=0)
    with pytest.raises(ConfigError, match="ray_address='ray://head:10001' given without execution='ray'"):
        target.sync_from(source, ray_address="ray://head:10001")


def test_ray_execution_without_ray_names_the_extra(
    side: Callable[[str], StorageClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    source, target = side("file"), side("file")
    with pytest.raises(ManystoreError, match=r"pip install 'manystore\[ray\]'"):
        target.sync_from(source, execution="ray")


def test_stale_temp_files_of_dead_writers_are_reaped(tmp_path: Path) -> None:
    source, target = _client(_file_profile(tmp_path / "s")), _client(_file_profile(tmp_path / "t"))
    _fill(source, "", TREE)
    (tmp_path / "t" / "d1").mkdir()
    dead = tmp_path / "t" / "d1" / f".b.txt.999999999-1-0{TEMP_SUFFIX}"  # pid above pid_max: dead
    live = tmp_path / "t" / "d1" / f".x.txt.{os.getpid()}-1-0{TEMP_SUFFIX}"  # this process: alive
    dead.write_bytes(b"half")
    live.write_bytes(b"busy")
    target.sync_from(source, progress=False)
    assert not dead.exists() and live.exists()
    assert _contents(target) == TREE


# ------------------------------------------------------------------ kill and rerun
@pytest.fixture
def slow_s3(rclone_server: S3Server, tmp_path: Path) -> Iterator[tuple[FaultProxy, Path, StorageClient]]:
    """A fault proxy before rclone, an MSC config naming it as profile ``slow``, and a direct client."""
    proxy = FaultProxy(rclone_server.endpoint_url)
    base = f"manystore-test/kill-{uuid.uuid4().hex[:8]}"
    slow = s3_profile(rclone_server, base)
    slow["storage_provider"]["options"]["endpoint_url"] = proxy.url
    config = tmp_path / "msc.json"
    config.write_text(json.dumps({"profiles": {"slow": slow}}))
    yield proxy, config, _client(s3_profile(rclone_server, base))
    proxy.close()


def _kill_midway(args: list[str], config: Path, done: Callable[[], int], total: int) -> None:
    env = {**os.environ, "MSC_CONFIG": str(config)}
    proc = subprocess.Popen([sys.executable, "-m", "manystore.cli", *args], env=env)
    try:
        deadline = time.monotonic() + 60
        while done() < total // 5:
            assert proc.poll() is None, "the sync ended before it could be killed"
            assert time.monotonic() < deadline, "the sync made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()


KILL_FILES = {f"part-{i:04d}/shard.bin": os.urandom(16 << 10) for i in range(150)}


def test_kill_local_to_s3_midway_then_rerun(
    slow_s3: tuple[FaultProxy, Path, StorageClient], tmp_path: Path
) -> None:
    proxy, config, direct = slow_s3
    source = _client(_file_profile(tmp_path / "src"))
    _fill(source, "", KILL_FILES)
    proxy.delay_next(100_000, 0.08, method="PUT")
    done = lambda: sum(1 for _ in direct.list(""))  # noqa: E731
    _kill_midway(["sync", str(tmp_path / "src"), "msc://slow/", "--workers", "2", "-q"], config, done, 150)
    present = done()
    assert 0 < present < 150, present
    proxy.clear()
    result = direct.sync_from(source, progress=False)
    assert (result.copied, result.skipped) == (150 - present, present)  # nothing copied twice
    assert _contents(direct) == KILL_FILES  # complete, nothing partial


def test_kill_s3_to_local_midway_then_rerun(
    slow_s3: tuple[FaultProxy, Path, StorageClient], tmp_path: Path
) -> None:
    proxy, config, direct = slow_s3
    _fill(direct, "", KILL_FILES)
    dst = tmp_path / "dst"
    proxy.delay_next(100_000, 0.08, method="GET", path="/part-")
    done = lambda: sum(1 for p in dst.rglob("*.bin") if p.is_file())  # noqa: E731
    _kill_midway(["sync", "msc://slow/", str(dst), "--workers", "2", "-q"], config, done, 150)
    present = done()
    assert 0 < present < 150, present
    proxy.clear()
    target = _client(_file_profile(dst))
    result = target.sync_from(direct, progress=False)
    assert (result.copied, result.skipped) == (150 - present, present)
    assert _contents(target) == KILL_FILES
    assert not [p for p in dst.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def test_partitions_cover_the_tree_once(side: Callable[[str], StorageClient]) -> None:
    source, target = side("file"), side("file")
    _fill(source, "", TREE)
    _fill(target, "", {"only/here.txt": b"x"})
    spec = SyncSpec("", "", delete_unmatched_files=True)
    parts = discover_partitions(source, target, spec, wanted=4)
    assert Partition("", recursive=False) in parts and Partition("only/", recursive=True) in parts
    assert len(parts) >= 4
    plans = [plan_partition(source, target, spec, p) for p in parts]
    copied = sorted(job[0] for plan in plans for job in plan.jobs)
    assert copied == sorted(TREE)  # every object in exactly one partition
    assert [k for plan in plans for k in plan.unmatched] == ["only/here.txt"]


@pytest.mark.parametrize("processes", [None, 2])
def test_manifest_of_the_target_is_committed(
    rclone_server: S3Server, tmp_path: Path, processes: int | None
) -> None:
    profile = s3_profile(rclone_server, f"manystore-test/manifest-{uuid.uuid4().hex[:8]}")
    profile["metadata_provider"] = {
        "type": "manifest",
        "options": {"manifest_path": ".msc_manifests", "writable": True},
    }
    source = _client(_file_profile(tmp_path / "src"))
    _fill(source, "", TREE)
    target = _client(profile)
    result = target.sync_from(source, "", "ds", num_worker_processes=processes, progress=False)
    assert result.copied == len(TREE)
    fresh = _client(profile)  # a new client sees the objects through the committed manifest alone
    listed = {m.key: m.content_length for m in fresh.list("ds/")}
    assert listed == {f"ds/{k}": len(v) for k, v in TREE.items()}
    source.delete("d2/f.txt")
    target = _client(profile)
    assert target.sync_from(source, "", "ds", delete_unmatched_files=True, progress=False).deleted == 1
    assert "ds/d2/f.txt" not in {m.key for m in _client(profile).list("ds/")}


FLAT = {f"f{i:03d}": bytes([i]) * (i + 1) for i in range(25)}


@pytest.mark.parametrize("kind", ["file", "s3-rclone"])
def test_a_big_partition_is_cut_into_key_ranges_that_cover_it(
    side: Callable[[str], StorageClient], kind: str
) -> None:
    source, target = side("file"), side(kind)
    _fill(source, "in/", FLAT)
    extra = {"a-first": b"1", "f005x": b"2", "f0999": b"3", "zz-last": b"4"}  # before, between, after
    _fill(target, "out/", extra)
    spec = SyncSpec("in/", "out/", delete_unmatched_files=True)
    whole = Partition("", recursive=True)
    survey = sync_partition(source, target, spec, whole, threads=2, dry_run=False, split_above=4)
    assert survey.cuts == [f"f{i:03d}" for i in range(3, 25, 4)] and survey.objects == 25
    assert set(_contents(target, "out/")) == set(extra), "a survey changes nothing"
    filtered = SyncSpec("in/", "out/", include=("f00*",))
    assert sync_partition(source, target, filtered, whole, 2, False, 4).objects == 10  # f000-f009 selected
    ranges = whole.split(survey.cuts)
    outcomes = [sync_partition(source, target, spec, r, 2, False, None) for r in ranges]
    assert sum(o.copied for o in outcomes) == 25 and sum(o.objects for o in outcomes) == 25
    assert sorted(k for o in outcomes for k in o.deleted_keys) == sorted(f"out/{k}" for k in extra)
    assert _contents(target, "out/") == FLAT


def test_worker_processes_split_a_flat_directory(
    side: Callable[[str], StorageClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    import manystore.mirror

    monkeypatch.setattr(manystore.mirror, "SPLIT_ABOVE", 5)  # the driver passes it to the workers
    source, target = side("file"), side("s3-rclone")
    _fill(source, "", FLAT)
    _fill(target, "", {"stale": b"x"})
    result = target.sync_from(source, delete_unmatched_files=True, num_worker_processes=2, progress=False)
    assert (result.copied, result.deleted, result.skipped) == (25, 1, 0)
    assert _contents(target) == FLAT
    again = target.sync_from(source, num_worker_processes=2, dry_run=True, progress=False)
    assert (again.copied, again.skipped) == (0, 25)


def test_cross_store_small_objects_cost_one_get_each(rclone_server: S3Server, moto_server: S3Server) -> None:
    proxy = FaultProxy(rclone_server.endpoint_url)
    try:
        profile = s3_profile(rclone_server, f"manystore-test/one-get-{uuid.uuid4().hex[:8]}")
        profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
        source = _client(profile, "src")
        target = _client(s3_profile(moto_server, f"manystore-test/one-get-{uuid.uuid4().hex[:8]}"), "dst")
        _fill(source, "", TREE)
        proxy.requests_log.clear()
        assert target.sync_from(source, progress=False).copied == len(TREE)
        methods = [m for m, p in proxy.requests_log if "list-type" not in p]
        empty = sum(1 for body in TREE.values() if not body)
        # One GET per object; a HEAD only for an empty object (it may be a symlink to follow).
        assert sorted(methods) == ["GET"] * len(TREE) + ["HEAD"] * empty, "one GET per object"
        assert _contents(target) == TREE
    finally:
        proxy.close()
