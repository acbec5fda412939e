"""Manifest metadata provider, generator and CLI, on every backend."""

from __future__ import annotations

import copy
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.cli import main
from manystore.errors import ReadOnlyError
from manystore.generators import ManifestMetadataGenerator, partition_bounds
from manystore.providers.manifest_metadata import (
    Manifest,
    ManifestMetadataProvider,
    ManifestPartReference,
    part_path,
)
from manystore.providers.posix_file import PosixFileStorageProvider
from manystore.types import ObjectMetadata, ResolvedPath, ResolvedPathState

from .conftest import Backend, s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server

KEYS = ["a/1.txt", "a/2.txt", "a/b/3.txt", "a/b/c/4.txt", "a/c.bin", "d.bin", "e/f.txt", "e/g/h.txt"]
LIST_CASES: list[tuple[str, str | None, str | None, bool]] = [
    ("", None, None, False),
    ("a/", None, None, False),
    ("a/b", None, None, False),
    ("", "a/2.txt", None, False),
    ("", None, "a/b/c/4.txt", False),
    ("", "a/1.txt", "e/f.txt", False),
    ("a/", "a/b/3.txt", "e", False),
    ("", None, None, True),
    ("a/", None, None, True),
    ("a/", "a/2.txt", None, True),
    ("a/", None, "a/b/zzz", True),
    ("e/", None, None, True),
    ("zzz/", None, None, False),
]
GLOBS = ["**/*.txt", "a/*", "a/b/**", "*.bin", "e/?/h.txt", "nothing/*"]


def _manifest_config(backend: Backend, writable: bool = False) -> dict[str, Any]:
    config = copy.deepcopy(backend.config)
    options: dict[str, Any] = {"manifest_path": ".msc_manifests"}
    if writable:
        options["writable"] = True
    config["profiles"]["test"]["metadata_provider"] = {"type": "manifest", "options": options}
    return config


def _client(config: dict[str, Any]) -> StorageClient:
    return StorageClient(StorageClientConfig.from_dict(config, "test"))


def _populate(client: StorageClient) -> None:
    for i, key in enumerate(KEYS):
        client.write(key, b"x" * (i + 1))
    ManifestMetadataGenerator.generate_and_write_manifest(client, client)


def _view(metas: Any) -> list[tuple[str, str, int]]:
    return [(m.key, m.type, m.content_length if m.type == "file" else 0) for m in metas]


def test_manifest_answers_like_the_store(backend: Backend) -> None:
    plain = backend.client
    _populate(plain)
    managed = _client(_manifest_config(backend))
    for prefix, start_after, end_at, dirs in LIST_CASES:
        expected = [
            m for m in plain.list(prefix, start_after, end_at, dirs) if not m.key.startswith(".msc_manifests")
        ]
        got = list(managed.list(prefix, start_after, end_at, dirs))
        assert _view(got) == _view(expected), (prefix, start_after, end_at, dirs)
    for pattern in GLOBS:
        assert managed.glob(pattern) == plain.glob(pattern), pattern
    for key in KEYS:
        mine, theirs = managed.info(key), plain.info(key)
        assert (mine.key, mine.content_length, mine.etag) == (theirs.key, theirs.content_length, theirs.etag)
        assert abs((mine.last_modified - theirs.last_modified).total_seconds()) < 1
        assert managed.read(key) == plain.read(key)
    assert managed.info("a/b", strict=False).type == "directory"
    with pytest.raises(FileNotFoundError):
        managed.info("a/nope.txt")
    with pytest.raises(FileNotFoundError):
        managed.read("a/nope.txt")


def test_read_only_manifest_refuses_writes(backend: Backend) -> None:
    _populate(backend.client)
    managed = _client(_manifest_config(backend))
    before = _view(managed.list(""))
    with pytest.raises(ReadOnlyError):
        managed.write("new.txt", b"n")
    with pytest.raises(ReadOnlyError):
        managed.delete("a/1.txt")
    with pytest.raises(ReadOnlyError):
        managed.commit_metadata()
    assert _view(managed.list("")) == before
    assert not backend.client.is_file("new.txt")
    assert backend.client.read("a/1.txt") == b"x"


def test_writable_manifest_commits(backend: Backend) -> None:
    _populate(backend.client)
    config = _manifest_config(backend, writable=True)
    managed = _client(config)
    managed.write("new/n.txt", b"fresh")
    assert managed.read("new/n.txt") == b"fresh"
    assert not any(m.key == "new/n.txt" for m in _client(config).list(""))
    managed.commit_metadata()
    fresh = _client(config)
    assert fresh.info("new/n.txt").content_length == 5
    assert "new/n.txt" in fresh.glob("**/*.txt")
    fresh.delete("a/1.txt")
    fresh.commit_metadata()
    again = _client(config)
    with pytest.raises(FileNotFoundError):
        again.info("a/1.txt")
    assert [m.key for m in again.list("a/", end_at="a/2.txt")] == ["a/2.txt"]
    assert not backend.client.is_file("a/1.txt")
    parts = [m.key for m in backend.client.list(".msc_manifests/parts/")]
    assert len(parts) == 1  # superseded parts are removed after the new index is written


def test_pending_updates_and_idempotence(tmp_path: Path) -> None:
    sp = PosixFileStorageProvider(base_path=str(tmp_path))
    mp = ManifestMetadataProvider(sp, ".msc_manifests", writable=True)
    assert list(mp.list_objects("")) == []
    meta = ObjectMetadata(key="k", content_length=3, last_modified=datetime.now(timezone.utc), etag="e")
    mp.add_file("k", meta)
    mp.add_file("k", meta)
    assert mp.get_object_metadata("k", include_pending=True).content_length == 3
    with pytest.raises(FileNotFoundError):
        mp.get_object_metadata("k")
    assert mp.realpath("k") == ResolvedPath("k", ResolvedPathState.EXISTS)
    assert mp.realpath("other").state is ResolvedPathState.UNTRACKED
    mp.commit_updates()
    assert [m.key for m in mp.list_objects("")] == ["k"]
    mp.remove_file("k")
    mp.remove_file("k")
    with pytest.raises(FileNotFoundError):
        mp.get_object_metadata("k", include_pending=True)
    assert mp.realpath("k").state is ResolvedPathState.DELETED
    assert mp.get_object_metadata("k").etag == "e"
    mp.commit_updates()
    assert list(ManifestMetadataProvider(sp, ".msc_manifests").list_objects("")) == []
    with pytest.raises(FileNotFoundError, match=r"msc_manifest_index\.json"):
        ManifestMetadataProvider(sp, "elsewhere")


def test_manifest_dataclasses_round_trip() -> None:
    manifest = Manifest(version="1", parts=[ManifestPartReference(part_path(1))])
    data = json.loads(manifest.to_json())
    assert data["parts"] == [{"path": "parts/msc_manifest_part000001.jsonl"}]
    assert Manifest.from_dict(data) == manifest
    with pytest.raises(ValueError):
        Manifest.from_dict({"parts": []})


def test_partition_bounds_are_exact() -> None:
    assert partition_bounds(None) == [(None, None)]
    assert partition_bounds(["m", "c", "m"]) == [(None, "c"), ("c", "m"), ("m", None)]


def test_partitioned_generation_matches_unpartitioned(backend: Backend) -> None:
    client = backend.client
    for key in KEYS:
        client.write(key, b"data")

    def generate(keys: list[str] | None) -> list[bytes]:
        ManifestMetadataGenerator.generate_and_write_manifest(client, client, keys)
        index = json.loads(client.read(".msc_manifests/msc_manifest_index.json"))
        return [client.read(".msc_manifests/" + p["path"]) for p in index["parts"]]

    whole = generate(None)
    assert len(whole[0].splitlines()) == len(KEYS)
    for keys in (["a/b"], ["a/2.txt", "d.bin", "0", "zzz", "a/2.txt"], ["a/", "a/b/", "a/b/c/", "e"]):
        assert generate(keys) == whole, keys


def test_zero_list_requests_through_manifest(rclone_server: S3Server) -> None:
    proxy = FaultProxy(rclone_server.endpoint_url)
    try:
        profile = s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")
        profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
        config = {"profiles": {"test": profile}}
        _populate(_client(config))
        profile["metadata_provider"] = {"type": "manifest", "options": {"manifest_path": ".msc_manifests"}}
        managed = _client(config)
        seen_before, gets_before = proxy.requests_seen, proxy.requests_by_method["GET"]
        assert len(list(managed.list(""))) == len(KEYS)
        assert [m.key for m in managed.list("a/", include_directories=True)] == [
            "a/1.txt",
            "a/2.txt",
            "a/b",
            "a/c.bin",
        ]
        assert len(managed.glob("**/*.txt")) == 6
        assert managed.info("a/b/3.txt").content_length == 3
        assert managed.info("a/b", strict=False).type == "directory"
        # answered from memory: no request at all, so in particular no LIST (a GET)
        assert proxy.requests_by_method["GET"] == gets_before
        assert proxy.requests_seen == seen_before
    finally:
        proxy.close()


def test_million_entry_manifest_loads_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    parts_dir = root / ".msc_manifests" / "parts"
    parts_dir.mkdir(parents=True)
    total, per_part = 1_000_000, 100_000
    stamp = "2024-05-01T12:00:00+00:00"
    refs = []
    for p in range(total // per_part):
        lines = [
            json.dumps(
                {
                    "key": f"shard-{i // 1000:04d}/sample-{i:07d}.tar",
                    "size_bytes": i,
                    "last_modified": stamp,
                    "type": "file",
                    "etag": f"{i:032x}",
                }
            )
            for i in range(p * per_part, (p + 1) * per_part)
        ]
        (parts_dir / f"msc_manifest_part{p + 1:06d}.jsonl").write_text("\n".join(lines))
        refs.append({"path": part_path(p + 1)})
    (root / ".msc_manifests" / "msc_manifest_index.json").write_text(
        json.dumps({"version": "1", "parts": refs})
    )
    config = {
        "profiles": {
            "test": {
                "storage_provider": {"type": "file", "options": {"base_path": str(root)}},
                "metadata_provider": {"type": "manifest", "options": {"manifest_path": ".msc_manifests"}},
            }
        }
    }
    start = time.perf_counter()
    client = _client(config)
    loaded = time.perf_counter()
    found = list(client.list("shard-0500/"))
    dirs = list(client.list("", include_directories=True))
    listed = time.perf_counter()
    assert len(found) == 1000 and found[0].key == "shard-0500/sample-0500000.tar"
    assert len(dirs) == 1000 and dirs[0].type == "directory"
    assert client.info("shard-0999/sample-0999999.tar").content_length == 999_999
    with capsys.disabled():
        print(
            f"\n1M-entry manifest: load {loaded - start:.2f}s, prefix + one-level list {listed - loaded:.3f}s"
        )


def test_cli_generate_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    for key in KEYS:
        (data / key).parent.mkdir(parents=True, exist_ok=True)
        (data / key).write_bytes(b"cli")
    assert main(["manifest", "generate", str(data), "--partition-key", str(data / "a/b")]) == 0
    out = capsys.readouterr().out
    assert f"{len(KEYS)} entries in 1 part(s)" in out
    sp = PosixFileStorageProvider(base_path="/")
    mp = ManifestMetadataProvider(sp, str(data / ".msc_manifests").lstrip("/"))
    assert [m.key for m in mp.list_objects("")] == [str(data / k).lstrip("/") for k in KEYS]

    assert main(["manifest", "show", str(data), "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "msc_manifest_index.json" in out and '"version": "1"' in out
    entries = [json.loads(line) for line in out.splitlines() if line.startswith('{"key"')]
    assert [e["key"] for e in entries] == [str(data / k).lstrip("/") for k in KEYS[:3]]
    assert all("size_bytes" in e for e in entries)

    other = tmp_path / "manifests"
    assert main(["manifest", "generate", str(data / "a"), "--manifest-url", str(other)]) == 0
    capsys.readouterr()
    assert (other / ".msc_manifests" / "msc_manifest_index.json").is_file()
    assert main(["manifest", "show", str(other / ".msc_manifests"), "--limit", "100"]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith('{"key"') for line in out.splitlines()) == 5
    assert main(["manifest", "show", str(tmp_path / "missing")]) == 1
    assert "not found" in capsys.readouterr().err
