"""The index of an archive object: where each member's headers and data are.

An :class:`ArchiveIndex` is built once per archive version and kept:

* in the profile's read cache (``cache:`` in the config, :mod:`manystore.caching.cache_manager`) as an
  entry of its own, so other processes on the machine reuse it; and
* in an in-process LRU of :data:`MEMO_ENTRIES` indexes (the only place when the profile
  has no read cache, e.g. a local directory or a profile without ``cache:``).

How it is built, by format:

* **tar written by manystore** — the sidecar object ``<key>.idx`` (JSON, see
  :func:`sidecar_bytes`), checked against the archive's size and ETag (one HEAD);
* **foreign tar** — by walking its 512-byte headers with ranged GETs
  (:class:`ScanPolicy`: a small probe per header when members are far apart, large
  read-through windows when they are close together);
* **zip** — from its central directory, read from the end of the object.

A member is read later with one ranged GET pinned to the indexed ETag that also covers
its tar header (or zip local header), which is checked against the index; a mismatch
means the object was replaced (or an ETag pin was ignored, as ``rclone serve s3`` does):
the index is dropped and rebuilt once.
"""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..types import ObjectMetadata, Range
from . import _tarfmt, _zip

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = [
    "MEMO_ENTRIES",
    "SIDECAR_SUFFIX",
    "ArchiveIndex",
    "ArchiveMember",
    "ScanPolicy",
    "build_index",
    "forget",
    "lookup",
    "remember",
    "sidecar_bytes",
]

#: Indexes kept in the in-process LRU.
MEMO_ENTRIES = 256
#: Suffix of the sidecar index object manystore writes beside a tar: ``shard.tar.idx``.
SIDECAR_SUFFIX = ".idx"
_SIDECAR_TAG = "manystore-archive-index"
_CACHE_KEY = "\0manystore.batch.archive-index\0"


@dataclass(frozen=True)
class ArchiveMember:
    """One file inside an archive.

    Attributes:
        name: Its path inside the archive.
        size: Its size in bytes (uncompressed).
        offset: Offset of its data in the archive object (tar), of its local header (zip),
            or None (tar.gz: only reachable by streaming).
        header_offset: Offset of its first header (tar), local header (zip), or None.
        compressed_size: Bytes stored (zip; equals ``size`` for tar).
        method: Zip compression method (0 stored, 8 deflated); 0 for tar.
        crc: Zip CRC-32 of the content; None for tar.
        extra_len: Zip central extra-field length (sizes the one ranged read); 0 for tar.
    """

    name: str
    size: int
    offset: int | None = None
    header_offset: int | None = None
    compressed_size: int | None = None
    method: int = 0
    crc: int | None = None
    extra_len: int = 0


@dataclass(frozen=True)
class ScanPolicy:
    """How a foreign tar's headers are walked with ranged GETs.

    Each GET reads a window starting at the next header. After a member whose stride
    (headers + data) is at most ``max_gap`` the next window is ``read_through`` bytes
    (many small members per GET); after a larger one it is ``probe`` bytes (one header,
    skipping the data). The best ``max_gap`` is about one round trip's worth of
    bandwidth: small on loopback, larger across a network.

    Attributes:
        first: Size of the first window.
        probe: Window read at a header that follows a large member.
        read_through: Window read when members are small.
        max_gap: Stride up to which members count as small.
    """

    first: int = 64 << 10
    probe: int = 4 << 10
    read_through: int = 4 << 20
    max_gap: int = 256 << 10

    def __post_init__(self) -> None:
        for name in ("first", "probe", "read_through"):
            if getattr(self, name) < _tarfmt.BLOCK:
                raise ValueError(f"ScanPolicy.{name}={getattr(self, name)!r}: expected at least 512 bytes")
        if self.max_gap < 0:
            raise ValueError(f"ScanPolicy.max_gap={self.max_gap!r}: expected a size >= 0")


@dataclass
class ArchiveIndex:
    """The members of one version of an archive object.

    Attributes:
        fmt: ``"tar"`` or ``"zip"``.
        size: Size of the archive object.
        etag: Its ETag (the version the offsets belong to), if the store has one.
        end: Tar: offset of the end-of-archive marker (where an append starts).
        members: Its files, in archive order.
        source: ``"sidecar"``, ``"scan"``, ``"directory"`` (zip) or ``"written"``.
        requests: Ranged GETs (and HEADs) it took to build.
    """

    fmt: str
    size: int
    etag: str | None
    end: int
    members: list[ArchiveMember]
    source: str = "scan"
    requests: int = 0
    _by_name: dict[str, ArchiveMember] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for member in self.members:
            self._by_name.setdefault(member.name, member)

    def get(self, name: str) -> ArchiveMember | None:
        """The member called ``name`` (the first, if the archive repeats it), or None."""
        return self._by_name.get(name)

    def to_json(self) -> bytes:
        """The index as JSON (the sidecar and cache format)."""
        rows = [
            [m.name, m.size, m.offset, m.header_offset, m.compressed_size, m.method, m.crc, m.extra_len]
            for m in self.members
        ]
        body = {"kind": _SIDECAR_TAG, "version": 1, "format": self.fmt, "size": self.size, "etag": self.etag}
        return json.dumps({**body, "end": self.end, "members": rows}, separators=(",", ":")).encode()

    @staticmethod
    def from_json(data: bytes, source: str) -> ArchiveIndex:
        """Parse :meth:`to_json` output.

        Raises:
            ValueError: Not an index of this version.
        """
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("kind") != _SIDECAR_TAG or body.get("version") != 1:
            raise ValueError(f"not a {_SIDECAR_TAG} (version 1) document")
        members = [ArchiveMember(*row) for row in body["members"]]
        return ArchiveIndex(body["format"], body["size"], body["etag"], body["end"], members, source)


def sidecar_bytes(index: ArchiveIndex) -> bytes:
    """The content of the ``<key>.idx`` sidecar for ``index``."""
    return index.to_json()


# ---------------------------------------------------------------- memo
_lock = threading.RLock()
_memo: OrderedDict[tuple[int, str], ArchiveIndex] = OrderedDict()
_tokens: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_counter = itertools.count()


class _Absent(FileNotFoundError):
    pass


def _token(client: StorageClient) -> int:
    with _lock:
        token = _tokens.get(client)
        if token is None:
            token = _tokens[client] = next(_counter)
        return token


def lookup(client: StorageClient, key: str) -> ArchiveIndex | None:
    """The remembered index of ``key``: in-process LRU first, then the profile's read cache."""
    memo_key = (_token(client), key)
    with _lock:
        index = _memo.get(memo_key)
        if index is not None:
            _memo.move_to_end(memo_key)
            return index
    cache = client._io.cache()
    if cache is None:
        return None

    def absent() -> ObjectMetadata:
        raise _Absent(key)

    try:
        hit = cache.get_object(_CACHE_KEY + key, absent, lambda meta: b"", check=False)
    except _Absent:
        return None
    if not hit.data:
        return None
    try:
        index = ArchiveIndex.from_json(hit.data, "cache")
    except (ValueError, KeyError, TypeError):
        return None
    _memo_put(memo_key, index)
    return index


def _memo_put(memo_key: tuple[int, str], index: ArchiveIndex) -> None:
    with _lock:
        _memo[memo_key] = index
        _memo.move_to_end(memo_key)
        while len(_memo) > MEMO_ENTRIES:
            _memo.popitem(last=False)


def remember(client: StorageClient, key: str, index: ArchiveIndex) -> None:
    """Keep ``index`` for ``key`` (in-process and, if the profile has one, in its read cache)."""
    _memo_put((_token(client), key), index)
    cache = client._io.cache()
    if cache is None:
        return
    payload = index.to_json()
    cache_key = _CACHE_KEY + key
    cache.invalidate(cache_key)
    meta = ObjectMetadata(
        key=cache_key,
        content_length=len(payload),
        last_modified=datetime.now(timezone.utc),
        etag=index.etag or "-",
    )
    cache.get_object(cache_key, lambda: meta, lambda m: payload, check=False)


def forget(client: StorageClient, key: str) -> None:
    """Drop the remembered index of ``key`` (both places)."""
    with _lock:
        _memo.pop((_token(client), key), None)
    cache = client._io.cache()
    if cache is not None:
        cache.invalidate(_CACHE_KEY + key)


# ---------------------------------------------------------------- building
class _Window:
    """Ranged reads of one archive version, served from the last window fetched."""

    def __init__(self, fetch: Callable[[int, int], bytes], total: int, first: int) -> None:
        self._fetch, self._total = fetch, total
        self._start, self._buf = 0, b""
        self.next_size = first
        self.requests = 0

    def get(self, offset: int, n: int) -> bytes:
        end = min(offset + n, self._total)
        if self._start <= offset and end <= self._start + len(self._buf):
            return self._buf[offset - self._start : end - self._start]
        size = min(max(end - offset, self.next_size), self._total - offset)
        self._buf, self._start = self._fetch(offset, size), offset
        self.requests += 1
        return self._buf[: end - offset]


def _scan_tar(
    fetch: Callable[[int, int], bytes], total: int, policy: ScanPolicy
) -> tuple[list[ArchiveMember], int, int]:
    window = _Window(fetch, total, policy.first)
    members: list[ArchiveMember] = []
    offset = 0
    while True:
        entry = _tarfmt.parse_entry(window.get, offset, total)
        if entry is None:
            return members, offset, window.requests
        stride = entry.next_offset - offset
        window.next_size = policy.read_through if stride <= policy.max_gap else policy.probe
        if entry.is_file:
            members.append(
                ArchiveMember(entry.name, entry.size, entry.data_offset, entry.header_offset, entry.size)
            )
        offset = entry.next_offset


def _sidecar(client: StorageClient, key: str, meta: ObjectMetadata) -> ArchiveIndex | None:
    try:
        data = client._io.get_range(key + SIDECAR_SUFFIX, None, None)
    except FileNotFoundError:
        return None
    try:
        index = ArchiveIndex.from_json(data, "sidecar")
    except (ValueError, KeyError, TypeError):
        return None
    if index.fmt != "tar" or index.size != meta.content_length:
        return None
    if index.etag is not None and meta.etag is not None and index.etag != meta.etag:
        return None
    index.etag = meta.etag
    return index


def build_index(client: StorageClient, key: str, fmt: str, policy: ScanPolicy | None = None) -> ArchiveIndex:
    """Build the index of the current version of ``key`` (a ``tar`` or ``zip``) and remember it.

    Raises:
        FileNotFoundError: No object at ``key``.
        ValueError: The object is not a valid archive of ``fmt``.
    """
    meta = client._io.head(key)
    total, etag = meta.content_length, meta.etag
    where = f"{client.url_prefix}{key}"

    def fetch(offset: int, n: int) -> bytes:
        return client._io.get_range(key, Range(offset, n), etag)

    if fmt == "zip":
        entries, reads = _zip.read_directory(fetch, total, where)
        members = [
            ArchiveMember(
                e.name,
                e.size,
                e.header_offset,
                e.header_offset,
                e.compressed_size,
                e.method,
                e.crc,
                e.extra_len,
            )
            for e in entries
        ]
        index = ArchiveIndex("zip", total, etag, total, members, "directory", reads + 1)
    else:
        found = _sidecar(client, key, meta)
        if found is not None:
            found.requests = 2
            index = found
        else:
            try:
                members, end, reads = _scan_tar(fetch, total, policy or ScanPolicy())
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            index = ArchiveIndex("tar", total, etag, end, members, "scan", reads + 2)
    remember(client, key, index)
    return index
