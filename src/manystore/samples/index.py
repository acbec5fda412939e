"""An index of datasets and their schemas: :class:`Index` (alias :class:`LocalIndex`), atdata's API.

The index maps a dataset name to an :class:`IndexEntry` (schema reference, shard URLs,
metadata) and a schema reference to its schema record (:mod:`manystore.samples.schema`).
Where it lives depends on ``location``:

* a local path: one SQLite file, changed in place (WAL, one transaction per change);
* a URL of any profile (``msc://p/index.db``, ``s3://b/index.db``): the SQLite file kept in the
  store, each change uploaded with a conditional write so two writers never lose an entry;
* ``redis://host:port/db``: two hashes on a Redis server (see :class:`RedisIndex`).

Names and references are unique: inserting one that exists with the same content returns the
existing entry, with other content raises :class:`FileExistsError`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from . import schema as _schema

__all__ = ["AbstractIndex", "Index", "IndexEntry", "LocalIndex", "content_cid"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


# ------------------------------------------------------------------ CID (atdata's entry identity)
def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError(f"length {n} does not fit CBOR")


def _dag_cbor(value: Any) -> bytes:
    """DAG-CBOR of str / list / dict-of-str-keys values (keys sorted by length, then bytes)."""
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, list):
        return _cbor_head(4, len(value)) + b"".join(_dag_cbor(v) for v in value)
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return _cbor_head(5, len(value)) + b"".join(_dag_cbor(k) + _dag_cbor(value[k]) for k in keys)
    raise TypeError(f"content_cid encodes str, list and dict values, got {type(value).__name__}")


def content_cid(data: dict[str, Any]) -> str:
    """The CIDv1 (dag-cbor, sha2-256, base32) of ``data``, as atdata computes entry and schema CIDs."""
    digest = hashlib.sha256(_dag_cbor(data)).digest()
    raw = bytes([0x01, 0x71, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


# ------------------------------------------------------------------ entries and protocol
@dataclass(frozen=True)
class IndexEntry:
    """One dataset in an index (atdata's ``IndexEntry``/``LocalDatasetEntry``).

    Attributes:
        name: The dataset's unique name in the index.
        schema_ref: Reference of its sample type's schema (``local://schemas/{module.Name}@{version}``).
        data_urls: The shard URLs (readable by :class:`~manystore.samples.Dataset`).
        metadata: Free JSON-able metadata, or None.
        created_at: When the entry was inserted (ISO 8601, UTC).
    """

    name: str
    schema_ref: str
    data_urls: list[str]
    metadata: dict[str, Any] | None = None
    created_at: str = field(default="", compare=False)

    @property
    def cid(self) -> str:
        """Content identifier of ``schema_ref`` + ``data_urls`` (atdata's CIDv1 of the same content)."""
        return content_cid({"schema_ref": self.schema_ref, "data_urls": list(self.data_urls)})

    @property
    def wds_url(self) -> str:
        """The first shard URL (atdata's legacy name), or ``""``."""
        return self.data_urls[0] if self.data_urls else ""

    @property
    def sample_kind(self) -> str:
        """``schema_ref`` (atdata's legacy name)."""
        return self.schema_ref

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form stored in the index."""
        return {
            "name": self.name,
            "schema_ref": self.schema_ref,
            "data_urls": list(self.data_urls),
            "metadata": self.metadata,
            "cid": self.cid,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexEntry:
        """The entry stored as ``data`` (see :meth:`to_dict`)."""
        return cls(
            name=data["name"],
            schema_ref=data["schema_ref"],
            data_urls=list(data["data_urls"]),
            metadata=data.get("metadata"),
            created_at=data.get("created_at", ""),
        )


@runtime_checkable
class AbstractIndex(Protocol):
    """What every index offers (atdata's ``AbstractIndex``): :class:`Index`, :class:`RedisIndex`."""

    @property
    def data_store(self) -> Any:
        """The data store shards of this index are written with, or None."""
        ...

    def insert_dataset(
        self, ds: Any, *, name: str, schema_ref: str | None = None, metadata: dict[str, Any] | None = None
    ) -> IndexEntry:
        """Add a dataset; returns its entry."""
        ...

    def get_dataset(self, ref: str) -> IndexEntry:
        """The entry named ``ref``; ``KeyError`` if none."""
        ...

    @property
    def datasets(self) -> Iterator[IndexEntry]:
        """Every entry, lazily."""
        ...

    def list_datasets(self) -> list[IndexEntry]:
        """Every entry."""
        ...

    def publish_schema(self, sample_type: type, *, version: str = "1.0.0") -> str:
        """Store the schema of ``sample_type``; returns its reference."""
        ...

    def get_schema(self, ref: str) -> dict[str, Any]:
        """The schema record of ``ref``; ``KeyError`` if none."""
        ...

    @property
    def schemas(self) -> Iterator[dict[str, Any]]:
        """Every schema record, lazily."""
        ...

    def list_schemas(self) -> list[dict[str, Any]]:
        """Every schema record."""
        ...

    def decode_schema(self, ref: str) -> type:
        """A packable type generated from the schema ``ref``."""
        ...


class _Store(Protocol):
    url: str

    def put_schema(self, ref: str, record: str) -> str | None: ...
    def get_schema(self, ref: str) -> str | None: ...
    def schemas(self) -> list[str]: ...
    def put_dataset(self, name: str, entry: str) -> str | None: ...
    def get_dataset(self, name: str) -> str | None: ...
    def datasets(self) -> list[str]: ...


def _data_urls(ds: Any) -> list[str]:
    if isinstance(ds, str):
        return [ds]
    if hasattr(ds, "list_shards"):
        urls = ds.list_shards()
    elif isinstance(ds, Sequence):
        urls = ds
    else:
        raise TypeError(f"insert a samples Dataset, a URL or a list of URLs, got {type(ds).__name__}")
    urls = [os.fspath(u) for u in urls]
    if not urls or not all(isinstance(u, str) and u for u in urls):
        raise ValueError(f"a dataset needs at least one shard URL (strings), got {urls!r}")
    return urls


class Index:
    """An index of datasets and schemas (atdata's ``Index``/``LocalIndex``).

    Args:
        location: A local path to the SQLite file, a URL of any profile (``msc://p/index.db``,
            ``s3://bucket/index.db``; kept in the store, updated with conditional writes), or a
            ``redis://`` URL (see :class:`RedisIndex`).
        data_store: The :class:`~manystore.samples.DataStore` this index's shards are written
            with; returned by :attr:`data_store` (atdata's protocol).

    Example:
        >>> index = Index(tmp / "index.db")  # doctest: +SKIP
        >>> ref = index.publish_schema(ImageSample, version="1.0.0")  # doctest: +SKIP
        >>> index.insert_dataset(["msc://p/train-000000.tar"], name="train", schema_ref=ref)  # doctest: +SKIP
    """

    def __init__(
        self, location: str | os.PathLike[str], *, data_store: Any = None, _store: Any = None
    ) -> None:
        if _store is None:
            if isinstance(location, str) and location.startswith(_REDIS_SCHEMES):
                from ._redis_index import RedisStore

                _store = RedisStore(location)
            else:
                from ._sqlite_index import open_sqlite_store

                _store = open_sqlite_store(location)
        self._store: _Store = _store
        self._data_store = data_store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store.url!r})"

    @property
    def location(self) -> str:
        """Where the index lives (a path or URL; passwords redacted)."""
        return self._store.url

    @property
    def data_store(self) -> Any:
        """The data store given at construction, or None."""
        return self._data_store

    # ------------------------------------------------------------ schemas
    def publish_schema(
        self, sample_type: type, *, version: str = "1.0.0", description: str | None = None
    ) -> str:
        """Store the schema record of ``sample_type`` at ``version``; returns its reference.

        Publishing the same type and version again is a no-op.

        Raises:
            TypeError: Not a packable dataclass, or an unsupported field type (named).
            FileExistsError: The reference exists with other fields (publish a new version).
        """
        record = _schema.schema_record(sample_type, version=version, description=description)
        ref = str(record["$ref"])
        existing = self._store.put_schema(ref, json.dumps(record, sort_keys=True))
        if existing is not None and not _schema.same_schema(json.loads(existing), record):
            raise FileExistsError(
                f"schema {ref} is already in index {self.location} with other fields; publish a new version"
            )
        return ref

    def get_schema(self, ref: str) -> dict[str, Any]:
        """The schema record of ``ref``.

        Raises:
            KeyError: No schema ``ref`` in this index.
        """
        raw = self._store.get_schema(ref)
        if raw is None:
            raise KeyError(f"no schema {ref!r} in index {self.location}")
        return dict(json.loads(raw))

    @property
    def schemas(self) -> Iterator[dict[str, Any]]:
        """Every schema record, ordered by reference."""
        return iter(self.list_schemas())

    def list_schemas(self) -> list[dict[str, Any]]:
        """Every schema record, ordered by reference."""
        return [json.loads(raw) for raw in self._store.schemas()]

    def decode_schema(self, ref: str) -> type:
        """A packable type generated from the schema ``ref`` (its samples equal the original's).

        Raises:
            KeyError: No schema ``ref`` in this index.
            ValueError: The record holds a field kind that cannot be rebuilt.
        """
        return _schema.decode_schema(self.get_schema(ref))

    # ------------------------------------------------------------ datasets
    def insert_dataset(
        self, ds: Any, *, name: str, schema_ref: str | None = None, metadata: dict[str, Any] | None = None
    ) -> IndexEntry:
        """Add the dataset ``ds`` under ``name``.

        Args:
            ds: A samples ``Dataset`` (its shards are ``ds.list_shards()``), a shard URL or a
                list of shard URLs.
            name: Unique name of the dataset in this index.
            schema_ref: Its schema's reference; when omitted, the schema of ``ds.sample_type``
                is published at version ``1.0.0`` and used.
            metadata: Free JSON-able metadata stored with the entry.

        Raises:
            ValueError: No ``schema_ref`` and ``ds`` has no sample type; empty name or shard list.
            KeyError: ``schema_ref`` is not in this index.
            FileExistsError: ``name`` exists with other content.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a dataset name is a non-empty string, got {name!r}")
        urls = _data_urls(ds)
        if schema_ref is None:
            sample_type = getattr(ds, "sample_type", None)
            if not isinstance(sample_type, type):
                raise ValueError(f"dataset {name!r}: pass schema_ref= (no sample type known for {ds!r})")
            schema_ref = self.publish_schema(sample_type)
        elif self._store.get_schema(schema_ref) is None:
            raise KeyError(
                f"dataset {name!r}: schema {schema_ref!r} is not in index {self.location}; publish it"
            )
        json.dumps(metadata)  # refuse non-JSON metadata before anything is written
        entry = IndexEntry(name, schema_ref, urls, metadata, datetime.now(timezone.utc).isoformat())
        existing = self._store.put_dataset(name, json.dumps(entry.to_dict(), sort_keys=True))
        if existing is None:
            return entry
        old = IndexEntry.from_dict(json.loads(existing))
        if old != entry:
            raise FileExistsError(f"dataset {name!r} is already in index {self.location} with other content")
        return old

    def get_dataset(self, ref: str) -> IndexEntry:
        """The entry named ``ref``.

        Raises:
            KeyError: No dataset ``ref`` in this index.
        """
        raw = self._store.get_dataset(ref)
        if raw is None:
            raise KeyError(f"no dataset {ref!r} in index {self.location}")
        return IndexEntry.from_dict(json.loads(raw))

    @property
    def datasets(self) -> Iterator[IndexEntry]:
        """Every entry, ordered by name."""
        return iter(self.list_datasets())

    def list_datasets(self) -> list[IndexEntry]:
        """Every entry, ordered by name."""
        return [IndexEntry.from_dict(json.loads(raw)) for raw in self._store.datasets()]


#: atdata's name of the embedded index.
LocalIndex = Index
