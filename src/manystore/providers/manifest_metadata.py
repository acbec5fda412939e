"""A metadata provider answering ``list``/``glob``/``info`` from a manifest instead of the store.

On-disk layout, under the manifest directory (``manifest_path``, relative to the storage
provider's base, default ``.msc_manifests``)::

    msc_manifest_index.json          {"version": "1", "parts": [{"path": "parts/..."}], "format": "jsonl"}
    parts/msc_manifest_part000001.jsonl
    parts/msc_manifest_part000002.jsonl   one object's metadata per line; the size is "size_bytes"

Parts are JSON lines or Parquet (:mod:`manystore.providers.manifest_formats`). Part paths in
the index are relative to the index's directory. Without an index in the manifest directory,
the newest one in a sub-directory (``.msc_manifests/<timestamp>/msc_manifest_index.json``,
where multi-storage-client 1.3.1 writes them) is loaded. The whole manifest is
loaded once; entries are held as compact tuples in a dict plus a sorted key list, so
listings are answered with :mod:`bisect` and never send a LIST request to the store.
"""

from __future__ import annotations

import bisect
import json
import posixpath
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..attribute_filter import compile_attribute_filter, matches
from ..errors import ObjectNotFoundError, ReadOnlyError
from ..types import MetadataProvider, ObjectMetadata, ResolvedPath, ResolvedPathState, StorageProvider
from ..utils import filter_glob, glob_literal_prefix, normalize_key, within_bounds
from .manifest_formats import ManifestFormat, decode_part, encode_part, format_of, part_suffix

__all__ = [
    "DEFAULT_MANIFEST_BASE_DIR",
    "MANIFEST_INDEX_FILENAME",
    "MANIFEST_PARTS_CHILD_DIR",
    "MANIFEST_PART_PREFIX",
    "MAX_ENTRIES_PER_PART",
    "Manifest",
    "ManifestMetadataProvider",
    "ManifestPartReference",
    "encode_entries",
    "entry_record",
    "entry_to_line",
    "entry_to_metadata",
    "parse_part",
    "part_path",
]

DEFAULT_MANIFEST_BASE_DIR = ".msc_manifests"
MANIFEST_INDEX_FILENAME = "msc_manifest_index.json"
MANIFEST_PARTS_CHILD_DIR = "parts"
MANIFEST_PART_PREFIX = "msc_manifest_part"
MANIFEST_VERSION = "1"
SEQUENCE_PADDING = 6
#: Most entries written to one part file.
MAX_ENTRIES_PER_PART = 100_000
_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)
_OBJECT_FIELDS = ("type", "content_type", "storage_class", "metadata")

#: A loaded entry: (size, last_modified as stored, etag, other fields or None).
Entry = tuple[int, str, str | None, dict[str, Any] | None]


@dataclass
class ManifestPartReference:
    """A reference to one manifest part.

    Attributes:
        path: The part's path, relative to the index's directory.
    """

    path: str

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ManifestPartReference:
        """Build from ``{"path": ...}``.

        Raises:
            ValueError: ``path`` is missing.
        """
        if not isinstance(data, dict) or "path" not in data:
            raise ValueError(f"manifest part reference needs a 'path': {data!r}")
        return ManifestPartReference(path=str(data["path"]))

    def to_dict(self) -> dict[str, Any]:
        """``{"path": ...}``."""
        return {"path": self.path}


@dataclass
class Manifest:
    """A manifest index: the schema version and the parts holding the entries.

    Attributes:
        version: Schema version (``"1"``).
        parts: References to the parts, in key order.
        format: Format of the parts: ``"jsonl"`` or ``"parquet"`` (a part's suffix overrides it).
    """

    version: str
    parts: list[ManifestPartReference] = field(default_factory=list)
    format: str = "jsonl"

    @staticmethod
    def from_dict(data: dict) -> Manifest:
        """Build from parsed index JSON.

        Raises:
            ValueError: A required field is missing.
        """
        try:
            parts = [ManifestPartReference.from_dict(p) for p in data["parts"]]
            return Manifest(version=str(data["version"]), parts=parts, format=data.get("format", "jsonl"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid manifest index: missing or bad field ({exc})") from exc

    def to_dict(self) -> dict[str, Any]:
        """The index as a JSON-serialisable dict."""
        return {"version": self.version, "parts": [p.to_dict() for p in self.parts], "format": self.format}

    def to_json(self) -> str:
        """The index as JSON text."""
        return json.dumps(self.to_dict())


def part_path(sequence: int, manifest_format: ManifestFormat | str = ManifestFormat.JSONL) -> str:
    """The relative path of part number ``sequence`` (``parts/msc_manifest_part000001.jsonl``)."""
    name = f"{MANIFEST_PART_PREFIX}{sequence:0{SEQUENCE_PADDING}d}{part_suffix(manifest_format)}"
    return f"{MANIFEST_PARTS_CHILD_DIR}/{name}"


def parse_part(
    data: bytes, manifest_format: ManifestFormat | str = ManifestFormat.JSONL
) -> list[dict[str, Any]]:
    """The records of a part (JSONL by default; blank lines skipped)."""
    return decode_part(data, manifest_format)


def part_format(path: str, index_format: str) -> ManifestFormat:
    """A part's format: told by its suffix (``.jsonl``, ``.parquet``), else the index's ``format``."""
    suffix = posixpath.splitext(path)[1][1:]
    return format_of(suffix if suffix in {f.value for f in ManifestFormat} else index_format)


def entry_to_line(key: str, entry: Entry) -> str:
    """One JSONL line for ``entry``, with the reference's field names."""
    return json.dumps(entry_record(key, entry))


def entry_record(key: str, entry: Entry) -> dict[str, Any]:
    """The part record of ``entry`` (the reference's field names)."""
    size, last_modified, etag, extra = entry
    record: dict[str, Any] = {"key": key, "size_bytes": size, "last_modified": last_modified}
    record["type"] = extra.get("type", "file") if extra else "file"
    if etag is not None:
        record["etag"] = etag
    if extra:
        record.update((k, v) for k, v in extra.items() if k != "type")
    return record


def encode_entries(entries: list[tuple[str, Entry]], manifest_format: ManifestFormat | str) -> bytes:
    """One part's bytes holding ``entries`` (``(key, entry)`` in key order)."""
    return encode_part([entry_record(k, e) for k, e in entries], manifest_format)


def _entry_from_record(record: dict[str, Any]) -> tuple[str, Entry]:
    key = record.pop("key")
    size = record.pop("size_bytes", None)
    if size is None:
        size = record.pop("content_length")
    last_modified = record.pop("last_modified")
    etag = record.pop("etag", None)
    if record.get("physical_path") == key:
        del record["physical_path"]
    if record.get("type") == "file":
        del record["type"]
    return key, (int(size), last_modified, etag, record or None)


def _entry_from_metadata(meta: ObjectMetadata) -> Entry:
    extra = {name: getattr(meta, name) for name in _OBJECT_FIELDS if getattr(meta, name) is not None}
    if extra.get("type") == "file":
        del extra["type"]
    return (meta.content_length, meta.last_modified.isoformat(), meta.etag, extra or None)


def _parse_time(value: str) -> datetime:
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


def entry_to_metadata(key: str, entry: Entry) -> ObjectMetadata:
    """The :class:`ObjectMetadata` of manifest entry ``entry`` for ``key``."""
    size, last_modified, etag, extra = entry
    meta = ObjectMetadata(key=key, content_length=size, last_modified=_parse_time(last_modified), etag=etag)
    if extra:
        for name in _OBJECT_FIELDS:
            if name in extra:
                setattr(meta, name, extra[name])
    return meta


class ManifestMetadataProvider(MetadataProvider):
    """Object metadata from a manifest stored through ``storage_provider``.

    Args:
        storage_provider: The profile's storage provider; the manifest is read and written with it.
        manifest_path: The manifest directory (holding ``msc_manifest_index.json``), relative to
            the provider's base; a path ending in ``.json`` names the index file itself.
        writable: Allow :meth:`add_file`/:meth:`remove_file` and :meth:`commit_updates`.
        manifest_format: Format of the parts :meth:`commit_updates` writes (``"jsonl"`` or
            ``"parquet"``); any format is read.

    Raises:
        ValueError: ``manifest_format`` names no supported format.
        FileNotFoundError: Read-only and no manifest index exists at ``manifest_path``
            (a writable provider starts empty instead).
    """

    def __init__(
        self,
        storage_provider: StorageProvider,
        manifest_path: str = DEFAULT_MANIFEST_BASE_DIR,
        writable: bool = False,
        manifest_format: ManifestFormat | str = ManifestFormat.JSONL,
    ) -> None:
        self._storage_provider = storage_provider
        self._writable = bool(writable)
        self._format = format_of(manifest_format)
        path = normalize_key(manifest_path).rstrip("/")
        if path.endswith(".json"):
            self._index_path = path
            self._manifest_dir = posixpath.dirname(path)
        else:
            self._manifest_dir = path
            self._index_path = (
                posixpath.join(path, MANIFEST_INDEX_FILENAME) if path else MANIFEST_INDEX_FILENAME
            )
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._keys: list[str] = []
        self._part_paths: list[str] = []
        self._pending_adds: dict[str, Entry] = {}
        self._pending_removes: set[str] = set()
        self._load()

    def __repr__(self) -> str:
        return (
            f"ManifestMetadataProvider(index={self._index_path!r}, entries={len(self._keys)}, "
            f"writable={self._writable})"
        )

    # ------------------------------------------------------------------ loading
    def _resolve(self, relative: str) -> str:
        if relative.startswith("/"):
            return relative
        return posixpath.join(self._manifest_dir, relative) if self._manifest_dir else relative

    def _newest_dated_index(self) -> str | None:
        """The newest ``<manifest dir>/<name>/msc_manifest_index.json`` (1.3.1's layout), if any."""
        base = self._manifest_dir
        if DEFAULT_MANIFEST_BASE_DIR not in base.split("/"):
            base = posixpath.join(base, DEFAULT_MANIFEST_BASE_DIR) if base else DEFAULT_MANIFEST_BASE_DIR
        found = [
            meta.key
            for meta in self._storage_provider.list_objects(base + "/")
            if meta.key.count("/") == base.count("/") + 2 and meta.key.endswith("/" + MANIFEST_INDEX_FILENAME)
        ]
        return max(found) if found else None

    def _read_index(self) -> tuple[bytes, str]:
        """The index's bytes and the directory its part paths are relative to."""
        try:
            return self._storage_provider.get_object(self._index_path), self._manifest_dir
        except FileNotFoundError:
            if self._index_path.endswith(".json") and posixpath.basename(self._index_path) != (
                MANIFEST_INDEX_FILENAME
            ):
                raise
            dated = self._newest_dated_index()
            if dated is None:
                raise
            return self._storage_provider.get_object(dated), posixpath.dirname(dated)

    def _load(self) -> None:
        for attempt in range(3):  # a part may vanish if a writer commits while we read: reread the index
            try:
                raw, directory = self._read_index()
            except FileNotFoundError as exc:
                if self._writable:
                    return
                raise ObjectNotFoundError(f"manifest index {self._index_path!r} not found") from exc
            manifest = Manifest.from_dict(json.loads(raw))
            if manifest.version != MANIFEST_VERSION:
                raise ValueError(f"manifest {self._index_path!r}: unsupported version {manifest.version!r}")
            format_of(manifest.format)
            try:
                entries: dict[str, Entry] = {}
                paths = [
                    p.path
                    if p.path.startswith("/")
                    else posixpath.join(directory, p.path)
                    if directory
                    else p.path
                    for p in manifest.parts
                ]
                for path in paths:
                    fmt = part_format(path, manifest.format)
                    for record in decode_part(self._storage_provider.get_object(path), fmt):
                        key, entry = _entry_from_record(record)
                        entries[key] = entry
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            self._entries = entries
            self._keys = sorted(entries)
            self._part_paths = paths
            return

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._keys)

    def list_objects(
        self,
        path: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
        attribute_filter_expression: str | None = None,
        show_attributes: bool = False,
        *,
        include_pending: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """Committed entries whose keys start with ``path``, in lexicographic order.

        Args:
            path: Raw key prefix.
            start_after: Exclusive lower bound (need not exist).
            end_at: Inclusive upper bound (need not exist).
            include_directories: List one level below the prefix's parent directory and yield
                sub-directories as ``type="directory"`` entries (key without trailing ``/``).
            attribute_filter_expression: Keep only entries whose recorded user metadata
                satisfies it (directories are then left out).
            show_attributes: Entries always carry the user metadata the manifest records, so
                this costs nothing here (1.3.1's parameter, kept for its callers).
            include_pending: Also list uncommitted :meth:`add_file` entries and leave out
                uncommitted :meth:`remove_file` ones.

        Raises:
            ValueError: Invalid filter expression.
        """
        predicate = compile_attribute_filter(attribute_filter_expression)
        entries = self._list(path, start_after, end_at, include_directories, include_pending)
        if predicate is None:
            return entries
        return (m for m in entries if m.type == "file" and matches(m, predicate))

    def _list(
        self,
        prefix: str,
        start_after: str | None,
        end_at: str | None,
        include_directories: bool,
        include_pending: bool,
    ) -> Iterator[ObjectMetadata]:
        prefix = normalize_key(prefix) if prefix else ""
        keys, entries = self._keys, self._entries  # a snapshot: commits replace, never mutate
        if include_pending:
            with self._lock:
                if self._pending_adds or self._pending_removes:
                    entries = {k: v for k, v in entries.items() if k not in self._pending_removes}
                    entries.update(self._pending_adds)
                    keys = sorted(entries)
        lo = bisect.bisect_left(keys, prefix)
        if start_after is not None:
            lo = max(lo, bisect.bisect_right(keys, start_after))
        if include_directories:
            yield from self._list_one_level(keys, entries, lo, prefix, start_after, end_at)
            return
        for i in range(lo, len(keys)):
            key = keys[i]
            if not key.startswith(prefix) or (end_at is not None and key > end_at):
                return
            yield entry_to_metadata(key, entries[key])

    @staticmethod
    def _list_one_level(
        keys: list[str],
        entries: dict[str, Entry],
        lo: int,
        prefix: str,
        start_after: str | None,
        end_at: str | None,
    ) -> Iterator[ObjectMetadata]:
        parent = prefix[: prefix.rfind("/") + 1]
        found: list[ObjectMetadata] = []
        i, n = lo, len(keys)
        while i < n:
            key = keys[i]
            if not key.startswith(prefix):
                break
            slash = key.find("/", len(parent))
            if slash < 0:
                if within_bounds(key, start_after, end_at):
                    found.append(entry_to_metadata(key, entries[key]))
                i += 1
                continue
            directory = key[:slash]
            if within_bounds(directory, start_after, end_at):
                found.append(
                    ObjectMetadata(key=directory, content_length=0, last_modified=_EPOCH, type="directory")
                )
            i = bisect.bisect_left(keys, directory + "0", i + 1)  # "0" follows "/": skip the subtree
        found.sort(key=lambda m: m.key)
        yield from found

    def get_object_metadata(self, path: str, include_pending: bool = False) -> ObjectMetadata:
        """Metadata of the entry at ``path``.

        Args:
            path: The key.
            include_pending: Also consider uncommitted :meth:`add_file`/:meth:`remove_file` calls.

        Raises:
            FileNotFoundError: No such entry.
        """
        key = normalize_key(path)
        if include_pending:
            with self._lock:
                if key in self._pending_adds:
                    return entry_to_metadata(key, self._pending_adds[key])
                if key in self._pending_removes:
                    raise ObjectNotFoundError(
                        f"{key!r}: removed (pending commit) from manifest {self._index_path!r}"
                    )
        entry = self._entries.get(key)
        if entry is None:
            raise ObjectNotFoundError(f"{key!r}: not in manifest {self._index_path!r}")
        return entry_to_metadata(key, entry)

    def glob(self, pattern: str, attribute_filter_expression: str | None = None) -> list[str]:
        """Committed keys matching ``pattern`` (and the filter expression, if given), sorted."""
        prefix = glob_literal_prefix(pattern)
        return list(
            filter_glob(
                pattern, self.list_objects(prefix, attribute_filter_expression=attribute_filter_expression)
            )
        )

    def realpath(self, logical_path: str) -> ResolvedPath:
        """The physical path of ``logical_path`` and its state: pending additions exist, pending
        removals are ``DELETED``, keys never tracked ``UNTRACKED`` (physical path: the key)."""
        key = normalize_key(logical_path)
        with self._lock:
            entry = self._pending_adds.get(key)
            removed = key in self._pending_removes
        if removed:
            return ResolvedPath(key, ResolvedPathState.DELETED)
        if entry is None:
            entry = self._entries.get(key)
        if entry is None:
            return ResolvedPath(key, ResolvedPathState.UNTRACKED)
        extra = entry[3]
        physical = extra.get("physical_path") if extra else None
        return ResolvedPath(
            physical if isinstance(physical, str) and physical else key, ResolvedPathState.EXISTS
        )

    # ------------------------------------------------------------------ updates
    def is_writable(self) -> bool:
        """True if the provider was built with ``writable=True``."""
        return self._writable

    def _check_writable(self, what: str, path: str) -> None:
        if not self._writable:
            raise ReadOnlyError(f"{what} {path!r}: manifest {self._index_path!r} is read-only")

    def add_file(self, path: str, metadata: ObjectMetadata) -> None:
        """Track ``path`` with ``metadata`` from the next :meth:`commit_updates` on. Idempotent.

        Raises:
            ReadOnlyError: The provider is read-only.
        """
        self._check_writable("add_file", path)
        key = normalize_key(path)
        with self._lock:
            self._pending_removes.discard(key)
            self._pending_adds[key] = _entry_from_metadata(metadata)

    def remove_file(self, path: str) -> None:
        """Stop tracking ``path`` from the next :meth:`commit_updates` on. Idempotent.

        Raises:
            ReadOnlyError: The provider is read-only.
        """
        self._check_writable("remove_file", path)
        key = normalize_key(path)
        with self._lock:
            self._pending_adds.pop(key, None)
            self._pending_removes.add(key)

    def commit_updates(self) -> None:
        """Write the updated manifest: new part files first, then the index in one PUT.

        Parts are numbered after the ones in use, so a reader of the previous index never
        sees them change; the previous parts are deleted once the new index is in place.
        Nothing is written when nothing is pending.

        Raises:
            ReadOnlyError: The provider is read-only.
        """
        self._check_writable("commit_updates", self._index_path)
        with self._lock:
            adds, removes = self._pending_adds, self._pending_removes
            if not adds and not removes:
                return
            entries = dict(self._entries)
            for key in removes:
                entries.pop(key, None)
            entries.update(adds)
            keys = sorted(entries)
            old_parts = self._part_paths
            first = _next_sequence(old_parts)
            relative: list[str] = []
            for n, start in enumerate(range(0, len(keys), MAX_ENTRIES_PER_PART)):
                rel = part_path(first + n, self._format)
                chunk = keys[start : start + MAX_ENTRIES_PER_PART]
                body = encode_entries([(k, entries[k]) for k in chunk], self._format)
                self._storage_provider.put_object(self._resolve(rel), body)
                relative.append(rel)
            manifest = Manifest(
                version=MANIFEST_VERSION,
                parts=[ManifestPartReference(p) for p in relative],
                format=self._format.value,
            )
            self._storage_provider.put_object(self._index_path, manifest.to_json().encode())
            self._entries, self._keys = entries, keys
            self._part_paths = [self._resolve(p) for p in relative]
            self._pending_adds, self._pending_removes = {}, set()
        own = self._resolve(MANIFEST_PARTS_CHILD_DIR) + "/"
        for path in old_parts:  # parts of another index (1.3.1's dated directories) stay
            if path not in self._part_paths and path.startswith(own):
                try:
                    self._storage_provider.delete_object(path)
                except FileNotFoundError:
                    pass


def _next_sequence(paths: list[str]) -> int:
    highest = 0
    for path in paths:
        name = posixpath.basename(path)
        digits = name[len(MANIFEST_PART_PREFIX) :].split(".", 1)[0]
        if name.startswith(MANIFEST_PART_PREFIX) and digits.isdigit():
            highest = max(highest, int(digits))
    return highest + 1
