"""MSC 1.3.1 sync parameters and profile replicas, on every backend."""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

import manystore
from manystore import StorageClient, StorageClientConfig
from manystore.errors import ConfigError
from manystore.schema import config_problems
from manystore.types import PatternType, SymlinkHandling

from .conftest import Backend


def _keys(client: StorageClient, prefix: str) -> dict[str, bytes]:
    return {m.key[len(prefix) :]: client.read(m.key) for m in client.list(prefix)}


def _fill(client: StorageClient, prefix: str, files: dict[str, bytes]) -> None:
    for key, body in files.items():
        client.write(prefix + key, body)


# ------------------------------------------------------------------------- sync parameters
def test_patterns_decide_what_is_copied(backend: Backend) -> None:
    client = backend.client
    _fill(client, "src/", {"a.txt": b"a", "b.tmp": b"new", "d/c.txt": b"c"})
    _fill(client, "dst/", {"b.tmp": b"old-target", "gone.txt": b"g"})
    result = client.sync_from(
        client, "src", "dst", delete_unmatched_files=True, patterns=[(PatternType.EXCLUDE, "*.tmp")]
    )
    # As in 1.3.1: an excluded source object is not copied, and its target twin is kept.
    assert _keys(client, "dst/") == {"a.txt": b"a", "b.tmp": b"old-target", "d/c.txt": b"c"}
    assert (result.total_files_added, result.total_files_deleted) == (2, 1)
    only = client.sync_from(client, "src", "only", patterns=[(PatternType.INCLUDE, "d/*")])
    assert _keys(client, "only/") == {"d/c.txt": b"c"} and only.total_files_added == 1


def test_ignore_hidden(backend: Backend) -> None:
    client = backend.client
    _fill(client, "src/", {"v.txt": b"v", ".dot": b"d", ".cache/x": b"x"})
    _fill(client, "dst/", {".keep": b"k"})
    client.sync_from(client, "src", "dst", delete_unmatched_files=True)
    assert _keys(client, "dst/") == {"v.txt": b"v", ".keep": b"k"}  # hidden left alone on both sides
    manystore_result = client.sync_from(
        client, "src", "dst", delete_unmatched_files=True, ignore_hidden=False
    )
    assert _keys(client, "dst/") == {"v.txt": b"v", ".dot": b"d", ".cache/x": b"x"}
    assert manystore_result.total_files_deleted == 1


def test_dryrun_writes_jsonl_files(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = backend.client
    config_file = tmp_path / "msc.json"
    config_file.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config_file))
    _fill(client, "src/", {"new.txt": b"12345", "same.txt": b"s"})
    _fill(client, "dst/", {"extra.bin": b"xyz"})
    client.sync_from(client, "src", "dst", source_files=["same.txt"])
    out = tmp_path / "dry"
    result = client.sync_from(
        client, "src", "dst", delete_unmatched_files=True, dryrun=True, dryrun_output_path=str(out)
    )
    assert result.dryrun is not None
    assert result.dryrun.files_to_add == str(out / "files_to_add.jsonl")
    added = [json.loads(line) for line in Path(result.dryrun.files_to_add).read_text().splitlines()]
    deleted = [json.loads(line) for line in Path(result.dryrun.files_to_delete).read_text().splitlines()]
    assert [(r["key"], r["content_length"]) for r in added] == [("src/new.txt", 5)]
    assert [r["key"] for r in deleted] == ["dst/extra.bin"]
    assert added[0]["last_modified"].endswith("Z") and added[0]["type"] == "file"
    assert (result.total_files_added, result.total_bytes_added) == (1, 5)
    assert (result.total_files_deleted, result.total_bytes_deleted) == (1, 3)
    assert _keys(client, "dst/") == {"extra.bin": b"xyz", "same.txt": b"s"}  # nothing changed
    temp = manystore.sync("msc://test/src", "msc://test/dst", dryrun=True)
    assert temp.dryrun is not None and os.path.isfile(temp.dryrun.files_to_delete)
    assert "manystore_dryrun_" in temp.dryrun.files_to_add
    shutil.rmtree(os.path.dirname(temp.dryrun.files_to_add))  # the caller's to remove
    assert (
        client.sync_from(client, "src", "dst", dry_run=True).dryrun is None
    )  # the older keyword: counts only


def test_source_files(backend: Backend) -> None:
    client = backend.client
    _fill(client, "src/", {"a": b"1", "b/c": b"2", "d": b"3"})
    result = client.sync_from(client, "src", "dst", source_files=["b/c", "/a", "missing", "a"])
    assert _keys(client, "dst/") == {"a": b"1", "b/c": b"2"}
    assert result.total_files_added == 2
    with pytest.raises(ValueError, match=r"both source_files.*patterns"):
        client.sync_from(client, "src", "dst", source_files=["a"], patterns=[(PatternType.INCLUDE, "*")])


def test_preserve_source_attributes(backend: Backend, tmp_path: Path) -> None:
    client = backend.client
    client.write("src/m.txt", b"meta", attributes={"owner": "ann"})
    local = StorageClient(
        StorageClientConfig.from_dict(
            {
                "profiles": {
                    "l": {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path)}}}
                }
            },
            "l",
        )
    )
    local.write("src/m.txt", b"local")
    # A store-to-store copy through this process (not server-side): attributes only when asked.
    other = copy.deepcopy(backend.config)
    other["profiles"]["test"]["storage_provider"]["options"]["base_path"] += "-copy"
    if backend.name == "file":
        os.makedirs(other["profiles"]["test"]["storage_provider"]["options"]["base_path"], exist_ok=True)
    target = StorageClient(StorageClientConfig.from_dict(other, "test"))
    target.sync_from(client, "src", "kept", preserve_source_attributes=True)
    assert target.read("kept/m.txt") == b"meta"
    if backend.name != "file":  # POSIX keeps no user metadata
        assert (target.info("kept/m.txt").metadata or {}).get("owner") == "ann"
    target.sync_from(local, "src", "plain", preserve_source_attributes=True)
    assert target.read("plain/m.txt") == b"local" and not target.info("plain/m.txt").metadata


@pytest.mark.parametrize("handling", [SymlinkHandling.FOLLOW, SymlinkHandling.SKIP, SymlinkHandling.PRESERVE])
def test_symlink_handling(backend: Backend, handling: SymlinkHandling) -> None:
    client = backend.client
    client.write("src/a.txt", b"target bytes")
    client.make_symlink("src/link", "src/a.txt")
    client.sync_from(client, "src", "dst", symlink_handling=handling)
    if handling is SymlinkHandling.SKIP:
        assert not client.is_file("dst/link")
        return
    assert client.read("dst/link") == b"target bytes"
    target = client.info("dst/link").symlink_target
    if handling is SymlinkHandling.PRESERVE:
        assert target == "a.txt"
    else:
        assert target is None


def test_commit_metadata_false_leaves_the_manifest_pending(backend: Backend) -> None:
    config = copy.deepcopy(backend.config)
    config["profiles"]["test"]["metadata_provider"] = {"type": "manifest", "options": {"writable": True}}
    target = StorageClient(StorageClientConfig.from_dict(config, "test"))
    target.write("seed", b"s")  # a manifest with an entry (an empty one is answered by the store)
    target.commit_metadata()
    source = backend.client
    _fill(source, "src/", {"one": b"1"})
    target.sync_from(source, "src", "dst", commit_metadata=False)
    assert [m.key for m in StorageClient(StorageClientConfig.from_dict(config, "test")).list("dst/")] == []
    target.commit_metadata()
    assert [m.key for m in StorageClient(StorageClientConfig.from_dict(config, "test")).list("dst/")] == [
        "dst/one"
    ]


# -------------------------------------------------------------------------------- replicas
def _replica_config(backend: Backend) -> dict[str, Any]:
    config = copy.deepcopy(backend.config)
    base = config["profiles"]["test"]
    for name in ("r1", "r2"):
        profile = copy.deepcopy(base)
        profile["storage_provider"]["options"]["base_path"] += "-" + name
        if backend.name == "file":
            os.makedirs(profile["storage_provider"]["options"]["base_path"], exist_ok=True)
        config["profiles"][name] = profile
    base["replicas"] = [
        {"replica_profile": "r2", "read_priority": 2, "read_only": True},
        {"replica_profile": "r1", "read_priority": 1},
    ]
    return config


def _wait_for(check: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_replica_reads_fill_and_deletes(backend: Backend, tmp_path: Path) -> None:
    config = _replica_config(backend)
    client = StorageClient(StorageClientConfig.from_dict(config, "test"))
    r1, r2 = client.replicas
    assert [r.profile for r in client.replicas] == ["r1", "r2"]
    assert [r.profile for r in client.writable_replicas] == ["r1"]
    # Read from the primary: the writable replica is filled in the background.
    client.write("k", b"primary")
    assert client.read("k") == b"primary"
    assert _wait_for(lambda: r1.is_file("k")) and r1.read("k") == b"primary"
    assert not r2.is_file("k")  # read-only replicas are never written
    # The first replica holding an object serves it.
    r1.write("k", b"from r1")
    assert client.read("k") == b"from r1"
    assert client.read("k", manystore.types.Range(offset=5, size=2)) == b"r1"
    # Only the read-only replica has it, and the primary does not: served, but not spread.
    r2.write("ro", b"archive")
    assert client.read("ro") == b"archive"
    time.sleep(0.3)
    assert not r1.is_file("ro")
    # download_file goes the same way.
    client.download_file("ro", str(tmp_path / "ro.bin"))
    assert (tmp_path / "ro.bin").read_bytes() == b"archive"
    # Deletes reach the writable replicas only.
    r2.write("k", b"archived k")
    client.delete("k")
    assert not r1.is_file("k") and r2.is_file("k")
    with pytest.raises(FileNotFoundError):
        StorageClient(StorageClientConfig.from_dict(backend.config, "test")).read("k")


def test_sync_replicas(backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = _replica_config(backend)
    client = StorageClient(StorageClientConfig.from_dict(config, "test"))
    r1, r2 = client.replicas
    _fill(client, "data/", {"a": b"1", "b/c": b"2", ".hidden": b"h"})
    r1.write("data/stale", b"s")
    client.sync_replicas("data", delete_unmatched_files=True)
    assert _keys(r1, "data/") == {"a": b"1", "b/c": b"2"}
    assert _keys(r2, "data/") == {}
    with pytest.raises(ValueError, match=r"index 1 .*'r2'.* read-only"):
        client.sync_replicas("data", replica_indices=[1])
    with pytest.raises(ValueError, match=r"index 5 out of range.*2 replica"):
        client.sync_replicas("data", replica_indices=[5])
    config_file = tmp_path / "msc.json"
    config_file.write_text(json.dumps(config))
    monkeypatch.setenv("MSC_CONFIG", str(config_file))
    client.write("data/d", b"4")
    manystore.sync_replicas("msc://test/data", replica_indices=[0], ignore_hidden=False)
    assert _keys(r1, "data/") == {"a": b"1", "b/c": b"2", ".hidden": b"h", "d": b"4"}


def test_replica_config_is_checked(tmp_path: Path) -> None:
    def profile(**extra: Any) -> dict[str, Any]:
        return {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path)}}, **extra}

    def problems(replicas: Any, **others: Any) -> list[str]:
        return config_problems({"profiles": {"p": profile(replicas=replicas), "q": profile(), **others}})

    assert problems([{"replica_profile": "q", "read_priority": 1}]) == []
    assert "is the profile itself" in problems([{"replica_profile": "p", "read_priority": 1}])[0]
    assert "no profile 'nope'" in problems([{"replica_profile": "nope", "read_priority": 1}])[0]
    assert "missing required key(s) ['read_priority']" in problems([{"replica_profile": "q"}])[0]
    assert "duplicate" in problems([{"replica_profile": "q", "read_priority": 1}] * 2)[0]
    assert (
        "unknown key 'priority'" in problems([{"replica_profile": "q", "read_priority": 1, "priority": 2}])[0]
    )
    nested = problems([{"replica_profile": "q", "read_priority": 1}], q=profile(replicas=[]), r=profile())
    assert nested == []
    chained = config_problems(
        {
            "profiles": {
                "p": profile(replicas=[{"replica_profile": "q", "read_priority": 1}]),
                "q": profile(replicas=[{"replica_profile": "r", "read_priority": 1}]),
                "r": profile(),
            }
        }
    )
    assert any("has replicas of its own" in p for p in chained)
    with pytest.raises(ConfigError, match="replicas"):
        StorageClientConfig.from_dict(
            {"profiles": {"p": profile(replicas=[{"replica_profile": "x", "read_priority": 1}])}}, "p"
        )
