"""The embedded index store: one SQLite file, on a local path or kept in any object store.

* A local path (or a profile whose provider stores plain files) is opened in place: WAL
  journal, one short transaction per change (``BEGIN IMMEDIATE``), so threads and processes
  on one machine share it safely.
* Any other URL (``msc://p/index.db``, ``s3://b/index.db``...): the file is downloaded, changed
  in a private temp copy, and uploaded with a conditional write -- ``if_match`` the ETag it was
  read at, ``if_none_match="*"`` when it did not exist. A writer that lost the race
  (``PreconditionFailedError``) starts again from a fresh download, so concurrent writers never
  lose an entry. This needs a server that enforces conditional writes (AWS S3, moto, Azure,
  Azurite, GCS); on one that ignores them (``rclone serve s3``) the last upload wins.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import PreconditionFailedError

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["SqliteStore", "open_sqlite_store"]

_T = TypeVar("_T")

_DDL = """
CREATE TABLE IF NOT EXISTS schemas (ref TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (name TEXT PRIMARY KEY, entry TEXT NOT NULL);
"""
#: Conditional-write rounds before giving up on a contended remote index.
MAX_ATTEMPTS = 64


def _insert(table: str, key_col: str, value_col: str) -> Callable[[sqlite3.Connection, str, str], str | None]:
    def run(conn: sqlite3.Connection, key: str, value: str) -> str | None:
        row = conn.execute(f"SELECT {value_col} FROM {table} WHERE {key_col} = ?", (key,)).fetchone()
        if row is not None:
            return str(row[0])
        conn.execute(f"INSERT INTO {table} ({key_col}, {value_col}) VALUES (?, ?)", (key, value))
        return None

    return run


_insert_schema = _insert("schemas", "ref", "record")
_insert_dataset = _insert("datasets", "name", "entry")


def _one(conn: sqlite3.Connection, sql: str, key: str) -> str | None:
    row = conn.execute(sql, (key,)).fetchone()
    return None if row is None else str(row[0])


def _all(conn: sqlite3.Connection, sql: str) -> list[str]:
    return [str(row[0]) for row in conn.execute(sql)]


class SqliteStore:
    """Key/JSON tables of schemas and datasets in one SQLite database (base: the local form)."""

    def __init__(self, path: str, url: str) -> None:
        self._path = path
        self.url = url
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_DDL)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=60, isolation_level=None)

    def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._connect()
        try:
            return fn(conn)
        finally:
            conn.close()

    def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        finally:
            conn.close()

    # The store protocol of manystore.samples.index: JSON text keyed by ref / name.
    def put_schema(self, ref: str, record: str) -> str | None:
        """Insert unless present; the existing record's JSON if ``ref`` was already there."""
        return self._write(lambda c: _insert_schema(c, ref, record))

    def get_schema(self, ref: str) -> str | None:
        """The record JSON of ``ref``, or None."""
        return self._read(lambda c: _one(c, "SELECT record FROM schemas WHERE ref = ?", ref))

    def schemas(self) -> list[str]:
        """Every schema record's JSON, ordered by reference."""
        return self._read(lambda c: _all(c, "SELECT record FROM schemas ORDER BY ref"))

    def put_dataset(self, name: str, entry: str) -> str | None:
        """Insert unless present; the existing entry's JSON if ``name`` was already there."""
        return self._write(lambda c: _insert_dataset(c, name, entry))

    def get_dataset(self, name: str) -> str | None:
        """The entry JSON of ``name``, or None."""
        return self._read(lambda c: _one(c, "SELECT entry FROM datasets WHERE name = ?", name))

    def datasets(self) -> list[str]:
        """Every dataset entry's JSON, ordered by name."""
        return self._read(lambda c: _all(c, "SELECT entry FROM datasets ORDER BY name"))


class RemoteSqliteStore(SqliteStore):
    """The SQLite file kept in an object store; each change is one conditional upload."""

    def __init__(self, client: StorageClient, key: str, url: str) -> None:
        self._client, self._key = client, key
        self.url = url
        self._tmpdir = tempfile.mkdtemp(prefix="manystore-index-")
        self._lock = threading.Lock()
        self._cached_etag: str | None = None  # the ETag the file at self._path was read at
        self._path = os.path.join(self._tmpdir, "cached.db")
        self._serial = 0
        self.uploads = 0  # successful uploads (for tests and telemetry)
        self.conflicts = 0  # lost races, each followed by a fresh download

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_tmpdir", ""), ignore_errors=True)

    def _fetch(self) -> str | None:
        """Refresh the cached copy if the stored file changed; its ETag, or None if there is none."""
        try:
            etag = self._client.info(self._key).etag
        except FileNotFoundError:
            etag = None
        if etag is None:
            with self._lock:
                self._cached_etag = None
                _fresh_db(self._path)
            return None
        with self._lock:
            if etag != self._cached_etag or not os.path.exists(self._path):
                data = self._client.read(self._key)  # newer than ``etag`` at worst: its upload then fails
                part = f"{self._path}.{threading.get_ident()}.part"
                with open(part, "wb") as out:
                    out.write(data)
                os.replace(part, self._path)
                self._cached_etag = etag
        return etag

    def _private_copy(self) -> str:
        with self._lock:
            self._serial += 1
            copy = os.path.join(self._tmpdir, f"w{self._serial}.db")
            shutil.copyfile(self._path, copy)
        return copy

    def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        self._fetch()
        copy = self._private_copy()
        try:
            conn = sqlite3.connect(copy, isolation_level=None)
            try:
                return fn(conn)
            finally:
                conn.close()
        finally:
            os.unlink(copy)

    def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        for attempt in range(MAX_ATTEMPTS):
            etag = self._fetch()
            copy = self._private_copy()
            try:
                conn = sqlite3.connect(copy, isolation_level=None)
                try:
                    conn.execute("BEGIN")
                    before = conn.total_changes
                    result = fn(conn)
                    changed = conn.total_changes != before
                    conn.execute("COMMIT")
                finally:
                    conn.close()
                if not changed:
                    return result
                with open(copy, "rb") as f:
                    body = f.read()
                try:
                    if etag is None:
                        self._client.put_object(self._key, body, if_none_match="*")
                    else:
                        self._client.put_object(self._key, body, if_match=etag)
                except PreconditionFailedError:
                    self.conflicts += 1
                    time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
                    continue
                self.uploads += 1
                return result
            finally:
                os.unlink(copy)
        raise TimeoutError(
            f"index {self.url}: {MAX_ATTEMPTS} conditional uploads lost the race to other writers; try again"
        )


def _fresh_db(path: str) -> None:
    """An empty index database at ``path`` (rollback journal: the file is self-contained)."""
    part = f"{path}.{threading.get_ident()}.new"
    if os.path.exists(part):
        os.unlink(part)
    conn = sqlite3.connect(part, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.executescript(_DDL)
    finally:
        conn.close()
    os.replace(part, path)


def open_sqlite_store(location: str | os.PathLike[str]) -> SqliteStore:
    """The store for a local path, a ``file://`` URL or a URL of any profile.

    A profile whose provider stores plain files is opened in place, like a local path.
    """
    if isinstance(location, os.PathLike) or "://" not in location:
        path = os.path.abspath(os.fspath(location))
        if os.path.isdir(path) or os.fspath(location).endswith("/"):
            raise ValueError(
                f"index location {location!r} is a directory; expected a file such as .../index.db"
            )
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return SqliteStore(path, path)
    from ..providers.base import BaseStorageProvider
    from ..shortcuts import resolve_storage_client

    client, key = resolve_storage_client(location)
    if not key or key.endswith("/"):
        raise ValueError(
            f"index location {location!r} names a directory; expected a file such as .../index.db"
        )
    provider = client.config.storage_provider
    if client.config.metadata_provider is None and isinstance(provider, BaseStorageProvider):
        local = provider.local_path(key)
        if local is not None:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            return SqliteStore(local, location)
    return RemoteSqliteStore(client, key, location)
