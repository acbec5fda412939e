"""Custom providers: one written against MSC 1.3.1's contract plugs in unchanged, and one
written against the older seed-000 contract keeps working through an adapter.

The 1.3.1 providers below implement exactly 1.3.1's abstract methods with its signatures
(a directory-backed storage provider; an in-memory index that stores each write under a
new versioned physical path). They are passed through ``ProviderBundle`` /
``ProviderBundleV2`` and driven through :class:`manystore.StorageClient`. The same
contract's new methods are also checked on every built-in backend.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.errors import InvalidPathError
from manystore.providers.seed_contract import SeedStorageProvider, adapt_storage_provider
from manystore.types import (
    BatchTransferCallback,
    CredentialsProvider,
    MetadataProvider,
    ObjectMetadata,
    ProviderBundle,
    ProviderBundleV2,
    Range,
    ResolvedPath,
    ResolvedPathState,
    StorageBackend,
    StorageProvider,
    StorageProviderConfig,
    SymlinkHandling,
)
from tests.conftest import Backend

HERE = __name__
_ATTRS: dict[str, dict[str, dict[str, Any]]] = {}  # base_path -> key -> attributes (the 1.3.1 provider's)


def _meta(root: str, key: str) -> ObjectMetadata:
    st = os.stat(os.path.join(root, key))
    return ObjectMetadata(
        key=key,
        content_length=st.st_size,
        last_modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
        etag=f"{st.st_mtime_ns}-{st.st_size}",
    )


def _walk(root: str, path: str) -> list[str]:
    keys = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            key = os.path.relpath(os.path.join(dirpath, name), root)
            if key.startswith(path):
                keys.append(key)
    return sorted(keys)


class Dir131StorageProvider(StorageProvider):
    """A user's provider written for multi-storage-client 1.3.1 (its abstract methods, its signatures)."""

    def __init__(self, base_path: str) -> None:
        self.root = base_path
        self.calls: list[tuple[str, dict[str, Any]]] = []
        _ATTRS.setdefault(base_path, {})

    def _file(self, path: str) -> str:
        return os.path.join(self.root, path)

    def put_object(
        self,
        path: str,
        body: bytes,
        if_match: str | None = None,
        if_none_match: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self.calls.append(("put_object", {"path": path, "attributes": attributes}))
        if if_none_match == "*" and os.path.exists(self._file(path)):
            raise FileExistsError(path)
        os.makedirs(os.path.dirname(self._file(path)), exist_ok=True)
        Path(self._file(path)).write_bytes(body)
        _ATTRS[self.root][path] = dict(attributes or {})

    def get_object(self, path: str, byte_range: Range | None = None) -> bytes:
        try:
            data = Path(self._file(path)).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(path) from None
        return data if byte_range is None else data[byte_range.offset : byte_range.offset + byte_range.size]

    def copy_object(self, src_path: str, dest_path: str) -> None:
        self.put_object(dest_path, self.get_object(src_path), attributes=_ATTRS[self.root].get(src_path))

    def delete_object(self, path: str, if_match: str | None = None) -> None:
        os.remove(self._file(path))
        _ATTRS[self.root].pop(path, None)

    def delete_objects(self, paths: Sequence[str]) -> None:
        self.calls.append(("delete_objects", {"paths": list(paths)}))
        for p in paths:
            self.delete_object(p)

    def make_symlink(self, path: str, target: str) -> None:
        self.calls.append(("make_symlink", {"path": path, "target": target}))
        relative = ObjectMetadata.encode_symlink_target(path, target)
        self.put_object(path, b"", attributes={"msc-symlink-target": relative})

    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        if os.path.isfile(self._file(path)):
            meta = _meta(self.root, path)
            meta.metadata = dict(_ATTRS[self.root].get(path) or {}) or None
            return meta
        if not strict and _walk(self.root, path.rstrip("/") + "/"):
            return ObjectMetadata(
                key=path, content_length=0, last_modified=datetime.now(timezone.utc), type="directory"
            )
        raise FileNotFoundError(path)

    def list_objects(
        self,
        path: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
        attribute_filter_expression: str | None = None,
        show_attributes: bool = False,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    ) -> Iterator[ObjectMetadata]:
        self.calls.append(("list_objects", {"path": path, "include_directories": include_directories}))
        seen_dirs: set[str] = set()
        for key in _walk(self.root, path):
            if include_directories and "/" in key[len(path) :]:
                directory = path + key[len(path) :].split("/")[0]
                if directory not in seen_dirs:
                    seen_dirs.add(directory)
                    yield ObjectMetadata(directory, 0, datetime.now(timezone.utc), type="directory")
                continue
            if (start_after is not None and key <= start_after) or (end_at is not None and key > end_at):
                continue
            meta = self.get_object_metadata(key)
            if attribute_filter_expression is not None:  # this toy understands only 'name = "value"'
                name, _, value = attribute_filter_expression.partition("=")
                if (meta.metadata or {}).get(name.strip()) != value.strip().strip('"'):
                    continue
            yield meta

    def list_objects_recursive(
        self,
        path: str = "",
        start_after: str | None = None,
        end_at: str | None = None,
        max_workers: int = 32,
        look_ahead: int = 2,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    ) -> Iterator[ObjectMetadata]:
        return self.list_objects(path, start_after, end_at, symlink_handling=symlink_handling)

    def upload_file(self, remote_path: str, f: str | IO, attributes: dict[str, Any] | None = None) -> None:
        data = Path(f).read_bytes() if isinstance(f, str) else f.read()
        self.put_object(remote_path, data, attributes=attributes)

    def download_file(self, remote_path: str, f: str | IO, metadata: ObjectMetadata | None = None) -> None:
        data = self.get_object(remote_path)
        if isinstance(f, str):
            os.makedirs(os.path.dirname(f) or ".", exist_ok=True)
            Path(f).write_bytes(data)
        else:
            f.write(data)

    def download_files(
        self,
        remote_paths: Sequence[str],
        local_paths: Sequence[str],
        metadata: Sequence[ObjectMetadata | None] | None = None,
        max_workers: int = 16,
        transfer_callback: BatchTransferCallback | None = None,
    ) -> None:
        for remote, local in zip(remote_paths, local_paths, strict=True):
            self.download_file(remote, local)

    def upload_files(
        self,
        local_paths: Sequence[str],
        remote_paths: Sequence[str],
        attributes: Sequence[dict[str, Any] | None] | None = None,
        max_workers: int = 16,
        transfer_callback: BatchTransferCallback | None = None,
    ) -> None:
        for i, (local, remote) in enumerate(zip(local_paths, remote_paths, strict=True)):
            self.upload_file(remote, local, attributes[i] if attributes else None)

    def glob(self, pattern: str, attribute_filter_expression: str | None = None) -> list[str]:
        listing = self.list_objects("", attribute_filter_expression=attribute_filter_expression)
        return [m.key for m in listing if fnmatch.fnmatchcase(m.key, pattern)]

    def is_file(self, path: str) -> bool:
        return os.path.isfile(self._file(path))


class Versioned131MetadataProvider(MetadataProvider):
    """A 1.3.1 metadata provider: every write goes to a new physical path ``<key>.v<n>``."""

    def __init__(self, allow_overwrites: bool = True, soft_delete: bool = False) -> None:
        self._committed: dict[str, ObjectMetadata] = {}
        self._pending: dict[str, ObjectMetadata | None] = {}
        self._physical: dict[str, str] = {}
        self._versions: dict[str, int] = {}
        self._allow, self._soft = allow_overwrites, soft_delete

    def list_objects(
        self,
        path: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
        attribute_filter_expression: str | None = None,
        show_attributes: bool = False,
    ) -> Iterator[ObjectMetadata]:
        for key in sorted(self._committed):
            after = start_after is None or key > start_after
            if key.startswith(path) and after and (end_at is None or key <= end_at):
                yield self._committed[key]

    def get_object_metadata(self, path: str, include_pending: bool = False) -> ObjectMetadata:
        if include_pending and path in self._pending:
            entry = self._pending[path]
            if entry is None:
                raise FileNotFoundError(path)
            return entry
        if path not in self._committed:
            raise FileNotFoundError(path)
        return self._committed[path]

    def glob(self, pattern: str, attribute_filter_expression: str | None = None) -> list[str]:
        return [k for k in sorted(self._committed) if fnmatch.fnmatchcase(k, pattern)]

    def realpath(self, logical_path: str) -> ResolvedPath:
        if logical_path in self._committed:
            return ResolvedPath(self._physical[logical_path], ResolvedPathState.EXISTS)
        if logical_path in self._physical:
            return ResolvedPath(logical_path, ResolvedPathState.DELETED)
        return ResolvedPath(logical_path, ResolvedPathState.UNTRACKED)

    def generate_physical_path(self, logical_path: str, for_overwrite: bool = False) -> ResolvedPath:
        self._versions[logical_path] = self._versions.get(logical_path, 0) + 1
        physical = f"{logical_path}.v{self._versions[logical_path]}"
        state = ResolvedPathState.EXISTS if for_overwrite else ResolvedPathState.UNTRACKED
        return ResolvedPath(physical, state)

    def add_file(self, path: str, metadata: ObjectMetadata) -> None:
        self._pending[path] = ObjectMetadata(
            key=path, content_length=metadata.content_length, last_modified=metadata.last_modified,
            metadata=metadata.metadata,
        )  # fmt: skip
        self._physical[path] = metadata.key

    def remove_file(self, path: str) -> None:
        self._pending[path] = None

    def commit_updates(self) -> None:
        for key, entry in self._pending.items():
            if entry is None:
                self._committed.pop(key, None)
            else:
                self._committed[key] = entry
        self._pending.clear()

    def is_writable(self) -> bool:
        return True

    def allow_overwrites(self) -> bool:
        return self._allow

    def should_use_soft_delete(self) -> bool:
        return self._soft


class Bundle131(ProviderBundle):
    def __init__(self, base_path: str, metadata_provider: MetadataProvider | None = None) -> None:
        self._base, self._mp = base_path, metadata_provider

    @property
    def storage_provider_config(self) -> StorageProviderConfig:
        return StorageProviderConfig(f"{HERE}.Dir131StorageProvider", {"base_path": self._base})

    @property
    def credentials_provider(self) -> CredentialsProvider | None:
        return None

    @property
    def metadata_provider(self) -> MetadataProvider | None:
        return self._mp


class Bundle131V2(ProviderBundleV2):
    def __init__(self, base_path: str, metadata_provider: MetadataProvider | None) -> None:
        self._base, self._mp = base_path, metadata_provider

    @property
    def storage_backends(self) -> dict[str, StorageBackend]:
        config = StorageProviderConfig(f"{HERE}.Dir131StorageProvider", {"base_path": self._base})
        return {"only": StorageBackend(config)}

    @property
    def metadata_provider(self) -> MetadataProvider | None:
        return self._mp


def _local(tmp_path: Path, name: str) -> StorageClient:
    config = {
        "profiles": {
            name: {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path / name)}}}
        }
    }
    return StorageClient(StorageClientConfig.from_dict(config, name))


def test_131_storage_provider_through_bundle(tmp_path: Path) -> None:
    root = tmp_path / "custom"
    root.mkdir()
    client = StorageClient(StorageClientConfig.from_provider_bundle({}, Bundle131(str(root))))
    provider = client.config.storage_provider
    assert isinstance(provider, Dir131StorageProvider)
    assert client._storage_provider is provider  # 1.3.1's contract: used as it is, no adapter

    client.write("d/a.txt", b"alpha", attributes={"tier": "hot"})
    client.write("d/b.txt", b"beta", attributes={"tier": "cold"})
    client.write("e/c.bin", b"gamma")
    assert ("put_object", {"path": "d/a.txt", "attributes": {"tier": "hot"}}) in provider.calls
    assert client.read("d/a.txt") == b"alpha"
    assert client.read("d/b.txt", byte_range=Range(1, 2)) == b"et"
    assert client.info("d/a.txt").metadata == {"tier": "hot"}
    assert [m.key for m in client.list("d/")] == ["d/a.txt", "d/b.txt"]
    assert [m.key for m in client.list("", include_directories=True)] == ["d", "e"]
    assert [m.key for m in client.list("d/", attribute_filter_expression='tier = "cold"')] == ["d/b.txt"]
    assert client.glob("d/*.txt") == ["d/a.txt", "d/b.txt"]
    assert client.glob("**/*.txt", attribute_filter_expression='tier = "hot"') == ["d/a.txt"]

    client.copy("d/a.txt", "d/copy.txt")
    assert client.read("d/copy.txt") == b"alpha"
    client.make_symlink("e/link", "d/a.txt")
    assert ("make_symlink", {"path": "e/link", "target": "d/a.txt"}) in provider.calls
    assert client.read("e/link") == b"alpha"  # followed through the marker object
    preserved = {
        m.key: m.symlink_target for m in client.list("e/", symlink_handling=SymlinkHandling.PRESERVE)
    }
    assert preserved == {"e/c.bin": None, "e/link": "../d/a.txt"}

    client.delete("d/copy.txt")
    assert not (root / "d" / "copy.txt").exists()
    client.delete("e", recursive=True)
    assert not (root / "e").exists() or not any((root / "e").iterdir())
    with pytest.raises(FileNotFoundError):
        client.read("e/c.bin")

    target = _local(tmp_path, "mirror")
    target.sync_from(client, "d/", "d/")
    assert sorted(m.key for m in target.list("d/")) == ["d/a.txt", "d/b.txt"]
    assert target.read("d/b.txt") == b"beta"
    target.write("d/new.txt", b"from posix")
    client.sync_from(target, "d/", "d/")
    assert client.read("d/new.txt") == b"from posix"


def test_131_metadata_provider_through_bundle_v2(tmp_path: Path) -> None:
    root = tmp_path / "versioned"
    root.mkdir()
    mp = Versioned131MetadataProvider()
    client = StorageClient(StorageClientConfig.from_provider_bundle({}, Bundle131V2(str(root), mp)))
    client.write("k", b"one")
    client.commit_metadata()
    client.write("k", b"two")  # an overwrite: a new physical version
    client.commit_metadata()
    assert sorted(os.listdir(root)) == ["k.v1", "k.v2"]
    assert client.read("k") == b"two"
    assert [m.key for m in client.list("")] == ["k"]
    assert client.glob("*") == ["k"]
    client.delete("k")  # hard delete (should_use_soft_delete is False): the stored object goes
    client.commit_metadata()
    assert sorted(os.listdir(root)) == ["k.v1"]
    with pytest.raises(FileNotFoundError):
        client.read("k")


def test_131_metadata_provider_soft_delete_and_no_overwrites(tmp_path: Path) -> None:
    root = tmp_path / "soft"
    root.mkdir()
    mp = Versioned131MetadataProvider(allow_overwrites=False, soft_delete=True)
    client = StorageClient(StorageClientConfig.from_provider_bundle({}, Bundle131(str(root), mp)))
    client.write("k", b"one")
    client.commit_metadata()
    with pytest.raises(FileExistsError, match="does not allow overwrites"):
        client.write("k", b"two")
    client.delete("k")
    client.commit_metadata()
    assert os.listdir(root) == ["k.v1"]  # soft delete: the object stays, the entry is gone
    assert list(client.list("")) == []
    with pytest.raises(FileExistsError):  # a deleted path counts as existing for overwrites
        client.write("k", b"three")


class SeedStorageProvider000:
    """A user's provider written against the older seed-000 contract (no 1.3.1 methods)."""

    def __init__(self, base_path: str) -> None:
        self.root = base_path
        self.attrs: dict[str, dict[str, str]] = {}
        self.put_calls: list[tuple[str, dict[str, str] | None]] = []

    def put_object(
        self,
        path: str,
        body: bytes,
        metadata: dict[str, str] | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> None:
        self.put_calls.append((path, metadata))
        os.makedirs(os.path.dirname(os.path.join(self.root, path)), exist_ok=True)
        Path(self.root, path).write_bytes(body)
        self.attrs[path] = dict(metadata or {})

    def get_object(self, path: str, byte_range: Range | None = None) -> bytes:
        data = Path(self.root, path).read_bytes()
        return data if byte_range is None else data[byte_range.offset : byte_range.end]

    def copy_object(self, src_path: str, dest_path: str) -> None:
        self.put_object(dest_path, self.get_object(src_path), self.attrs.get(src_path))

    def delete_object(self, path: str, if_match: str | None = None) -> None:
        os.remove(os.path.join(self.root, path))

    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        if not os.path.isfile(os.path.join(self.root, path)):
            raise FileNotFoundError(path)
        meta = _meta(self.root, path)
        meta.metadata = self.attrs.get(path) or None
        return meta

    def list_objects(
        self,
        prefix: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
    ) -> Iterator[ObjectMetadata]:
        for key in _walk(self.root, prefix):
            if (start_after is None or key > start_after) and (end_at is None or key <= end_at):
                yield _meta(self.root, key)

    def upload_file(self, remote_path: str, f: str | IO, attributes: dict[str, str] | None = None) -> None:
        self.put_object(remote_path, Path(f).read_bytes() if isinstance(f, str) else f.read(), attributes)

    def download_file(self, remote_path: str, f: str | IO, metadata: ObjectMetadata | None = None) -> None:
        data = self.get_object(remote_path)
        if isinstance(f, str):
            Path(f).write_bytes(data)
        else:
            f.write(data)

    def glob(self, pattern: str) -> list[str]:
        return [k for k in _walk(self.root, "") if fnmatch.fnmatchcase(k, pattern)]

    def is_file(self, path: str) -> bool:
        return os.path.isfile(os.path.join(self.root, path))


class SeedBundle(Bundle131):
    @property
    def storage_provider_config(self) -> StorageProviderConfig:
        return StorageProviderConfig(f"{HERE}.SeedStorageProvider000", {"base_path": self._base})


def test_seed000_storage_provider_is_adapted(tmp_path: Path) -> None:
    root = tmp_path / "seed"
    root.mkdir()
    client = StorageClient(StorageClientConfig.from_provider_bundle({}, SeedBundle(str(root))))
    raw = client.config.storage_provider
    assert isinstance(raw, SeedStorageProvider000)
    assert isinstance(client._storage_provider, SeedStorageProvider)
    client.write("x/a", b"1", attributes={"k": "v"})
    client.write("x/b", b"22")
    assert raw.put_calls[0] == ("x/a", {"k": "v"})  # 1.3.1's attributes reach the older `metadata`
    client.put_object("x/c", b"333", attributes={"k": "w"})
    assert raw.attrs["x/c"] == {"k": "w"}
    assert [m.key for m in client.list("x/")] == ["x/a", "x/b", "x/c"]
    assert [m.key for m in client.list("x/", attribute_filter_expression='k = "v"')] == ["x/a"]
    assert client.glob("x/*", attribute_filter_expression='k = "w"') == ["x/c"]
    client.copy("x/a", "x/d")
    client.make_symlink("x/link", "x/b")  # the generic marker object, written with put_object
    assert raw.attrs["x/link"] == {"msc-symlink-target": "b"}
    assert client.read("x/link") == b"22"
    client.delete("x", recursive=True)  # the generic delete_objects
    assert list(client.list("")) == []

    # The adapter alone: 1.3.1-style calls become older calls, options applied to the results.
    adapted = adapt_storage_provider(raw)  # type: ignore[arg-type]
    adapted.put_object("y/1", b"a", attributes={"t": "1"})
    adapted.put_object("y/2", b"b")
    listing = adapted.list_objects(path="y/", attribute_filter_expression='t = "1"', show_attributes=True)
    assert [(m.key, m.metadata) for m in listing] == [("y/1", {"t": "1"})]
    assert [m.key for m in adapted.list_objects_recursive("y", max_workers=2)] == ["y/1", "y/2"]
    with pytest.raises(NotImplementedError, match="SeedStorageProvider000"):
        adapted.generate_presigned_url("y/1")
    assert adapt_storage_provider(client._storage_provider) is client._storage_provider


def test_seed000_subclass_of_the_abc_still_instantiates(tmp_path: Path) -> None:
    """The new 1.3.1 methods have defaults, so a subclass with only the older ones is concrete."""

    class Old(SeedStorageProvider000, StorageProvider):  # type: ignore[misc]
        pass

    root = tmp_path / "old"
    root.mkdir()
    old = Old(str(root))
    for i in range(3):
        old.put_object(f"f{i}", b"x" * i)
    old.delete_objects(["f0", "missing"])
    assert sorted(os.listdir(root)) == ["f1", "f2"]
    states: list[tuple[str, str, str]] = []
    out = tmp_path / "out"
    out.mkdir()
    old.download_files(
        ["f1", "f2"], [str(out / "1"), str(out / "2")], None, 2, lambda s, d, st: states.append((s, d, st))
    )
    assert (out / "2").read_bytes() == b"xx"
    assert sorted(st for _, _, st in states) == ["completed", "completed", "started", "started"]
    with pytest.raises(ValueError, match="local_paths has 1 item"):
        old.download_files(["f1", "f2"], [str(out / "1")])
    with pytest.raises(NotImplementedError, match="Old"):
        old.generate_presigned_url("f1")


# ---------------------------------------------------------------- built-in providers, every backend
def test_builtin_provider_implements_131_contract(backend: Backend, tmp_path: Path) -> None:
    sp = backend.client.config.storage_provider
    sp.put_object("c/a.txt", b"A", attributes={"tier": "hot"})
    sp.put_object("c/b.txt", b"BB", if_none_match="*", attributes={"tier": "cold"})
    sp.put_object("c/sub/z.txt", b"Z")
    sp.make_symlink("c/link", "c/b.txt")

    everything = {m.key for m in sp.list_objects(path="c/")}
    assert {"c/a.txt", "c/b.txt", "c/sub/z.txt", "c/link"} <= everything
    skipped = {m.key for m in sp.list_objects("c/", symlink_handling=SymlinkHandling.SKIP)}
    assert skipped == {"c/a.txt", "c/b.txt", "c/sub/z.txt"}
    preserved = {m.key: m.symlink_target for m in sp.list_objects("c/", symlink_handling="preserve")}
    assert preserved["c/link"] == "b.txt" and preserved["c/a.txt"] is None
    if backend.name != "file":  # POSIX keeps no user metadata (documented)
        hot = list(sp.list_objects("c/", attribute_filter_expression='tier = "hot"'))
        assert [m.key for m in hot] == ["c/a.txt"]
        shown = {m.key: m.metadata for m in sp.list_objects("c/", show_attributes=True)}
        assert shown["c/b.txt"] == {"tier": "cold"}
        assert sp.glob("c/*.txt", attribute_filter_expression='tier = "cold"') == ["c/b.txt"]
    assert sp.glob("c/*.txt") == ["c/a.txt", "c/b.txt"]
    assert [m.key for m in sp.list_objects_recursive("c", max_workers=4, look_ahead=1)] == sorted(everything)

    local = tmp_path / "up"
    local.mkdir()
    (local / "1").write_bytes(b"one")
    (local / "2").write_bytes(b"two")
    sp.upload_files([str(local / "1"), str(local / "2")], ["u/1", "u/2"], max_workers=2)
    sp.download_files(["u/1", "u/2"], [str(tmp_path / "d1"), str(tmp_path / "d2")])
    assert (tmp_path / "d2").read_bytes() == b"two"
    sp.delete_objects(["u/1", "u/2", "c/a.txt"])
    assert not sp.is_file("u/1") and not sp.is_file("c/a.txt") and sp.is_file("c/b.txt")
    with pytest.raises(InvalidPathError):
        sp.make_symlink("c/escape", "../outside")
    shutil.rmtree(tmp_path / "up")
