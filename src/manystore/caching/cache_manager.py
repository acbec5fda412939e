"""A filesystem read cache shared by every process and thread on one machine.

Layout: ``<cache_path>/<profile>/`` holds ``data/`` (one file per entry) and
``locks/`` (one lock file per entry, used with :mod:`filelock`).

Each entry is a single file: a small JSON header (key, etag, size, last_modified,
stored_at, complete) followed by the payload. It is written to a ``.tmp-*`` file
and renamed into place, so a reader either sees a whole entry or none; a file
whose length disagrees with its header (e.g. left by a killed writer on a
filesystem without atomic rename) is ignored. Times live in the file's stat:

* ``mtime`` — when the entry was last validated against the source (its ETag);
* ``atime`` — when it was last used (set explicitly, for LRU eviction).

Kinds of entry:

* object entries, keyed by the object key: the whole object (``complete``), or only
  its metadata (large objects, whose bytes are cached as blocks);
* block entries, keyed by ``(key, etag, offset)``: one cache line (``cache_line_size``,
  :attr:`CacheManager.line_size`) of a given version, so they never need validating.

A miss takes the entry's lock, looks again (another process may have filled it
meanwhile), and only then fetches: concurrent readers download an object once.
Inserts happen under one profile-wide lock that first evicts (policy ``fifo``, ``lru``,
``mru`` or ``random``) until the new entry fits under the size limit, or further down to
``size * (1 - purge_factor/100)``; ``no_eviction`` never deletes (the cache outgrows its
size). Readers never lock: an entry evicted while being read stays readable through the
open descriptor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..types import ObjectMetadata
from .cache_config import CacheConfig

__all__ = ["CacheHit", "CacheManager"]

_MAGIC = b"MSC\x01"
_PREFIX = struct.Struct(">4sI")
_TMP = ".tmp-"
_OBJ = ".obj"
_FIRST_READ = 64 << 10
_BLK = ".blk"


@dataclass
class CacheHit:
    """The result of an object lookup.

    Attributes:
        meta: The object's metadata (validated per the version-check setting).
        data: The whole object, when it was asked for and fits the cache.
        complete: True if the cache holds the whole object (slices can be read from it).
    """

    meta: ObjectMetadata
    data: bytes | None
    complete: bool


@dataclass
class _Entry:
    header: dict[str, Any]
    payload: bytes | None
    mtime: float

    @property
    def complete(self) -> bool:
        return bool(self.header.get("complete"))

    @property
    def etag(self) -> str | None:
        return self.header.get("etag")

    def meta(self) -> ObjectMetadata:
        h = self.header
        return ObjectMetadata(
            key=h["key"],
            content_length=h["size"],
            last_modified=datetime.fromisoformat(h["last_modified"]),
            etag=h["etag"],
        )


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _safe_dir_name(profile: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in profile).lstrip(".")
    return cleaned or "_"


class CacheManager:
    """The read cache of one profile (see the module docs).

    Holds no open files or locks between calls, so it is safe to use after ``fork``
    and from many threads.

    Args:
        config: The cache configuration (size, policy, refresh interval, location).
        profile: The profile whose objects are cached (its own subdirectory).
    """

    def __init__(self, config: CacheConfig, profile: str) -> None:
        self._config = config
        self._limit = config.size_bytes()
        self._policy = config.get_eviction_policy()
        self._refresh = float(config.eviction_policy.refresh_interval)
        self._purge = config.eviction_policy.purge_factor
        #: Size of the block entries: the configured ``cache_line_size`` in bytes.
        self.line_size = config.cache_line_size_bytes()
        self.root = os.path.join(config.backend.cache_path, _safe_dir_name(profile))
        self._data = os.path.join(self.root, "data")
        self._data_dir = self._data + os.sep
        self._locks = os.path.join(self.root, "locks")
        os.makedirs(self._data, exist_ok=True)
        os.makedirs(self._locks, exist_ok=True)

    @property
    def config(self) -> CacheConfig:
        """The cache configuration."""
        return self._config

    # ------------------------------------------------------------ low level
    def _lock(self, name: str) -> Any:
        from filelock import FileLock  # lazy: ``import manystore`` stays free of filelock

        return FileLock(os.path.join(self._locks, name + ".lock"))

    def _file(self, name: str) -> str:
        return self._data_dir + name

    def _load(self, name: str, with_payload: bool = True) -> _Entry | None:
        """The entry ``name`` if it is present and whole, else None.

        One read of :data:`_FIRST_READ` bytes holds the prefix, the header and (for small
        objects, the hot path) the payload; a bigger payload takes one more read.
        """
        try:
            with open(self._file(name), "rb") as fh:
                st = os.fstat(fh.fileno())
                head = fh.read(_FIRST_READ)
                magic, hlen = _PREFIX.unpack_from(head)
                if magic != _MAGIC:
                    return None
                start = _PREFIX.size + hlen
                header = json.loads(head[_PREFIX.size : start])
                complete = header.get("complete")
                if st.st_size != start + (header["size"] if complete else 0):
                    return None
                payload = None
                if with_payload and complete:
                    payload = head[start:] if st.st_size <= len(head) else head[start:] + fh.read()
                return _Entry(header, payload, st.st_mtime)
        except (OSError, ValueError, KeyError, struct.error):
            return None

    def _touch(self, name: str, validated: bool = False, mtime: float | None = None) -> None:
        """Record a use (atime) and, with ``validated``, a successful validation (mtime).

        ``mtime``: the entry's modification time when the caller has it (saves a ``stat``).
        """
        now = time.time()
        with contextlib.suppress(OSError):
            path = self._file(name)
            if validated:
                mtime = now
            elif mtime is None:
                mtime = os.stat(path).st_mtime
            os.utime(path, (now, mtime))

    def _fresh(self, entry: _Entry) -> bool:
        return time.time() - entry.mtime < self._refresh

    def _scan(self) -> Iterator[tuple[str, os.stat_result]]:
        with os.scandir(self._data) as it:
            for de in it:
                with contextlib.suppress(OSError):
                    yield de.name, de.stat()

    def _store(self, name: str, header: dict[str, Any], payload: bytes = b"") -> bool:
        """Write entry ``name`` atomically, evicting others first so the total stays in bounds."""
        raw = json.dumps(header, separators=(",", ":")).encode()
        blob_size = _PREFIX.size + len(raw) + len(payload)
        evicting = self._policy != "no_eviction"
        if blob_size > self._limit and evicting:
            return False
        with self._lock(".evict"):
            entries: list[tuple[str, os.stat_result]] = []
            for fname, st in self._scan():
                if fname.startswith(_TMP):  # every write holds this lock: a temp file here is orphaned
                    with contextlib.suppress(OSError):
                        os.unlink(self._file(fname))
                elif fname != name:
                    entries.append((fname, st))
            total = sum(st.st_size for _, st in entries)
            if evicting and total + blob_size > self._limit:
                target = self._limit * (100 - self._purge) // 100
                self._evict(entries, max(total + blob_size - self._limit, total + blob_size - target))
            tmp = self._file(f"{_TMP}{os.getpid()}-{uuid.uuid4().hex}")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(_PREFIX.pack(_MAGIC, len(raw)))
                    fh.write(raw)
                    fh.write(payload)
                os.replace(tmp, self._file(name))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return True

    def _evict(self, entries: list[tuple[str, os.stat_result]], need: int) -> None:
        """Remove entries per the policy until at least ``need`` bytes are freed."""
        if self._policy == "random":
            random.shuffle(entries)
        elif self._policy == "fifo":
            entries.sort(key=lambda e: self._stored_at(e[0], e[1]))
        else:  # lru: least recently used first; mru: most recently used first
            entries.sort(key=lambda e: e[1].st_atime, reverse=self._policy == "mru")
        freed = 0
        for fname, st in entries:
            if freed >= need:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file(fname))
            freed += st.st_size

    def _stored_at(self, name: str, st: os.stat_result) -> float:
        entry = self._load(name, with_payload=False)
        return float(entry.header.get("stored_at", st.st_mtime)) if entry else 0.0

    # ---------------------------------------------------------------- public
    def get_object(
        self,
        key: str,
        head: Callable[[], ObjectMetadata],
        get: Callable[[ObjectMetadata], bytes],
        check: bool,
        payload_limit: int | None = None,
    ) -> CacheHit:
        """Look up ``key``, validating and filling the cache as needed.

        Args:
            key: The object key (profile-relative).
            head: Fetches the source's current metadata (one HEAD).
            get: Fetches the whole object of the given version (one GET).
            check: Validate against the source's ETag (after ``refresh_interval``).
            payload_limit: Return (and cache) the bytes only if the object is at most this
                big; ``None`` means always, a negative value never.

        Returns:
            The validated metadata, and the bytes when asked for.
        """
        name = _digest(key) + _OBJ

        def wants(size: int) -> bool:
            return payload_limit is None or size <= payload_limit

        def usable(entry: _Entry | None) -> bool:
            return (
                entry is not None
                and entry.header.get("key") == key
                and (entry.complete or not wants(entry.header["size"]))
                and (not check or self._fresh(entry))
            )

        entry = self._load(name)
        if usable(entry):
            assert entry is not None
            self._touch(name, mtime=entry.mtime)
            return self._hit(entry, wants)
        with self._lock(name):
            entry = self._load(name)
            if usable(entry):
                assert entry is not None
                self._touch(name, mtime=entry.mtime)
                return self._hit(entry, wants)
            try:
                meta = head()
            except FileNotFoundError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._file(name))
                raise
            same = entry is not None and meta.etag is not None and entry.etag == meta.etag
            if same and entry is not None and (entry.complete or not wants(meta.content_length)):
                self._touch(name, validated=True)
                return self._hit(entry, wants)
            data = get(meta) if wants(meta.content_length) else None
            header = {
                "key": key,
                "etag": meta.etag,
                "size": meta.content_length if data is None else len(data),
                "last_modified": meta.last_modified.isoformat(),
                "stored_at": time.time(),
                "complete": data is not None,
            }
            if meta.etag is not None:
                self._store(name, header, data or b"")
            return CacheHit(meta, data, False)

    def _hit(self, entry: _Entry, wants: Callable[[int], bool]) -> CacheHit:
        data = entry.payload if wants(entry.header["size"]) else None
        return CacheHit(entry.meta(), data, entry.complete)

    def read_slice(self, key: str, etag: str, offset: int, size: int) -> bytes | None:
        """``size`` bytes at ``offset`` of the whole-object entry of ``key`` version ``etag``, if cached."""
        name = _digest(key) + _OBJ
        try:
            with open(self._file(name), "rb") as fh:
                magic, hlen = _PREFIX.unpack(fh.read(_PREFIX.size))
                header = json.loads(fh.read(hlen))
                if magic != _MAGIC or header.get("etag") != etag or not header.get("complete"):
                    return None
                if os.fstat(fh.fileno()).st_size != _PREFIX.size + hlen + header["size"]:
                    return None
                fh.seek(offset, os.SEEK_CUR)
                data = fh.read(size)
        except (OSError, ValueError, KeyError, struct.error):
            return None
        self._touch(name)
        return data

    def get_block(self, key: str, etag: str, offset: int, fetch: Callable[[], bytes]) -> bytes:
        """The block of ``key`` version ``etag`` starting at ``offset``; ``fetch`` fills a miss."""
        name = _digest(key, etag, str(offset)) + _BLK
        entry = self._load(name)
        if entry is not None and entry.payload is not None:
            self._touch(name, mtime=entry.mtime)
            return entry.payload
        with self._lock(name):
            entry = self._load(name)
            if entry is not None and entry.payload is not None:
                self._touch(name, mtime=entry.mtime)
                return entry.payload
            data = fetch()
            header = {
                "key": key,
                "etag": etag,
                "offset": offset,
                "size": len(data),
                "stored_at": time.time(),
                "complete": True,
            }
            self._store(name, header, data)
            return data

    def payload_file(self, key: str, etag: str | None) -> tuple[str, int, int] | None:
        """Where the whole-object entry of ``key`` (version ``etag``) keeps its bytes, if cached.

        For memory-mapping a cached object (``manystore.numpy.load(..., mmap_mode=)``): an
        entry evicted later stays readable through an existing mapping.

        Returns:
            ``(file, offset, size)``: the entry's file and where its payload starts and how
            long it is; None when the object is not cached whole at that version.
        """
        name = _digest(key) + _OBJ
        entry = self._load(name, with_payload=False)
        if entry is None or not entry.complete or entry.header.get("key") != key:
            return None
        if etag is not None and entry.etag != etag:
            return None
        path = self._file(name)
        size = int(entry.header["size"])
        try:  # _load checked that the file is the header followed by exactly ``size`` bytes
            offset = os.path.getsize(path) - size
        except OSError:
            return None
        return path, offset, size

    def invalidate(self, key: str) -> None:
        """Forget the cached object ``key`` (its blocks become unreachable and age out)."""
        name = _digest(key) + _OBJ
        with self._lock(name), contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(name))

    def invalidate_prefix(self, prefix: str) -> None:
        """Forget every cached object whose key starts with ``prefix``."""
        for fname, _ in list(self._scan()):
            if fname.endswith(_OBJ):
                entry = self._load(fname, with_payload=False)
                if entry is not None and str(entry.header.get("key", "")).startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._file(fname))

    def total_size(self) -> int:
        """Bytes used by the cache's entries."""
        return sum(st.st_size for _, st in self._scan())
