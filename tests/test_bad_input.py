"""Bad input: each case raises its specific error, names the offending value, and changes nothing in storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import manystore
from manystore import StorageClient, StorageClientConfig
from manystore.errors import (
    ConfigError,
    InvalidPathError,
    InvalidURLError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ReadOnlyError,
    UnknownProfileError,
)
from manystore.types import MetadataProvider, ObjectMetadata
from manystore.utils import filter_glob, within_bounds

from .conftest import Backend


def snapshot(client: StorageClient) -> dict[str, bytes]:
    """Every object of the profile and its bytes."""
    return {m.key: client.read(m.key) for m in client.list("")}


@pytest.fixture
def seeded(backend: Backend) -> Backend:
    backend.client.write("keep/a", b"A")
    backend.client.write("keep/b", b"B")
    return backend


def test_malformed_url() -> None:
    with pytest.raises(InvalidURLError, match="ftp"):
        manystore.read("ftp://host/file")
    with pytest.raises(InvalidURLError, match="no profile"):
        manystore.read("msc:///key")
    with pytest.raises(InvalidURLError, match="no bucket"):
        manystore.read("s3:///key")


def test_unknown_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"profiles:\n  data:\n    storage_provider:\n      type: file\n      options: {{base_path: {tmp_path}}}\n"
    )
    monkeypatch.setenv("MSC_CONFIG", str(cfg))
    with pytest.raises(UnknownProfileError, match=r"'nope'.*\['data'\]"):
        manystore.write("msc://nope/x", b"1")
    assert os.listdir(tmp_path) == ["c.yaml"]


def test_unknown_provider_type() -> None:
    config = {"profiles": {"p": {"storage_provider": {"type": "s4", "options": {"base_path": "b"}}}}}
    with pytest.raises(ConfigError, match=r"profiles\.p\.storage_provider\.type.*'s4'.*'file'"):
        StorageClientConfig.from_dict(config, "p")


def test_misspelt_config_key(tmp_path: Path) -> None:
    config = {
        "profiles": {"p": {"storage_provider": {"type": "file", "optons": {"base_path": str(tmp_path)}}}}
    }
    with pytest.raises(ConfigError, match=r"profiles\.p\.storage_provider\.optons.*did you mean 'options'"):
        StorageClientConfig.from_dict(config, "p")


def test_unknown_provider_option(tmp_path: Path) -> None:
    config = {
        "profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": "/x", "bse": 1}}}}
    }
    with pytest.raises(ConfigError, match=r"profiles\.p\.storage_provider\.options.*'bse'"):
        StorageClientConfig.from_dict(config, "p")


@pytest.mark.parametrize("key", ["../escape", "a/../../escape", "x\x00y"])
def test_key_escaping_base_path(seeded: Backend, key: str) -> None:
    before = snapshot(seeded.client)
    with pytest.raises(InvalidPathError):
        seeded.client.write(key, b"evil")
    with pytest.raises(InvalidPathError):
        seeded.client.read(key)
    assert snapshot(seeded.client) == before


def test_absolute_key_stays_inside_base(tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}}}
    client = StorageClient(StorageClientConfig.from_dict(config, "p"))
    client.write("/etc/passwd-copy", b"x")
    assert (root / "etc" / "passwd-copy").read_bytes() == b"x"
    assert not Path("/etc/passwd-copy").exists()


def test_symlink_escape_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    os.symlink(outside, root / "link")
    config = {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}}}
    client = StorageClient(StorageClientConfig.from_dict(config, "p"))
    with pytest.raises(InvalidPathError, match="outside base_path"):
        client.read("link/secret")
    with pytest.raises(InvalidPathError, match="outside base_path"):
        client.write("link/new", b"x")
    assert sorted(os.listdir(outside)) == ["secret"]
    assert [m.key for m in client.list("")] == []


def test_missing_object(seeded: Backend) -> None:
    before = snapshot(seeded.client)
    with pytest.raises(FileNotFoundError, match="keep/missing") as info:
        seeded.client.read("keep/missing")
    assert isinstance(info.value, ObjectNotFoundError)
    assert snapshot(seeded.client) == before


def test_conditional_write_conflict(seeded: Backend) -> None:
    if not seeded.enforces_conditional_writes:
        pytest.skip(f"{seeded.name}: this server does not enforce If-None-Match (server limitation)")
    before = snapshot(seeded.client)
    with pytest.raises(PreconditionFailedError):
        seeded.client.put_object("keep/a", b"overwrite", if_none_match="*")
    assert snapshot(seeded.client) == before


def test_bad_if_none_match_value(seeded: Backend) -> None:
    before = snapshot(seeded.client)
    with pytest.raises(ValueError, match="'etag-123'"):
        seeded.client.put_object("keep/a", b"x", if_none_match="etag-123")
    assert snapshot(seeded.client) == before


def test_write_body_type(seeded: Backend) -> None:
    with pytest.raises(TypeError, match="str"):
        seeded.client.write("keep/a", "not bytes")  # type: ignore[arg-type]
    assert seeded.client.read("keep/a") == b"A"


class ReadOnlyIndex(MetadataProvider):
    """A fixed, read-only index of objects (stands in for a read-only manifest)."""

    def __init__(self, storage_provider: object, keys: list[str] | None = None) -> None:
        now = datetime.now(timezone.utc)
        self._entries = {
            k: ObjectMetadata(key=k, content_length=1, last_modified=now) for k in keys or ["keep/a"]
        }

    def list_objects(
        self,
        prefix: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
    ) -> Iterator[ObjectMetadata]:
        for key in sorted(self._entries):
            if key.startswith(prefix) and within_bounds(key, start_after, end_at):
                yield self._entries[key]

    def get_object_metadata(self, path: str, include_pending: bool = False) -> ObjectMetadata:
        if path not in self._entries:
            raise ObjectNotFoundError(path)
        return self._entries[path]

    def glob(self, pattern: str) -> list[str]:
        return list(filter_glob(pattern, self._entries.values()))

    def realpath(self, path: str) -> tuple[str, bool]:
        return path, path in self._entries

    def add_file(self, path: str, metadata: ObjectMetadata) -> None:
        raise AssertionError("add_file must not be called on a read-only provider")

    def remove_file(self, path: str) -> None:
        raise AssertionError("remove_file must not be called on a read-only provider")

    def commit_updates(self) -> None:
        pass

    def is_writable(self) -> bool:
        return False


def test_write_through_read_only_metadata_provider(seeded: Backend) -> None:
    config = dict(seeded.config)
    profile = dict(config["profiles"]["test"])
    profile["metadata_provider"] = {"type": "tests.test_bad_input.ReadOnlyIndex", "options": {}}
    config = {"profiles": {"test": profile}}
    client = StorageClient(StorageClientConfig.from_dict(config, "test"))
    before = snapshot(seeded.client)
    assert client.read("keep/a") == b"A"
    assert [m.key for m in client.list("")] == ["keep/a"]  # answered by the index
    for action in (
        lambda: client.write("keep/new", b"x"),
        lambda: client.write("keep/a", b"x"),
        lambda: client.delete("keep/a"),
        lambda: client.open("keep/new", "wb"),
        lambda: client.copy("keep/a", "keep/c"),
    ):
        with pytest.raises(ReadOnlyError, match="read-only metadata provider"):
            action()
    assert snapshot(seeded.client) == before


def test_symlink_swapped_in_after_use_is_refused(tmp_path: Path) -> None:
    """The POSIX fast path caches verified directories; a directory replaced by an escaping
    symlink (or an escaping symlink as the last component) must still be refused."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    config = {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}}}
    client = StorageClient(StorageClientConfig.from_dict(config, "p"))
    client.write("d/f", b"1")
    assert client.read("d/f") == b"1"  # "d" is now a verified directory
    os.symlink(outside / "secret", root / "d" / "link")
    with pytest.raises(InvalidPathError, match="outside base_path"):
        client.read("d/link")
    (root / "d" / "link").unlink()
    (root / "d" / "f").unlink()
    (root / "d").rmdir()
    os.symlink(outside, root / "d")
    with pytest.raises(InvalidPathError, match="outside base_path"):
        client.read("d/secret")
    with pytest.raises(InvalidPathError, match="outside base_path"):
        client.write("d/new", b"x")
    assert sorted(os.listdir(outside)) == ["secret"]


def test_symlink_inside_base_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "f").write_bytes(b"inside")
    os.symlink(root / "real" / "f", root / "alias")
    config = {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}}}
    client = StorageClient(StorageClientConfig.from_dict(config, "p"))
    assert client.read("alias") == b"inside"
