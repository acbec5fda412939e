"""Streaming a tar shard: resuming ranged reads, and sample groups out of the byte stream.

:class:`ShardStream` reads one version of a shard (its ETag, found by one HEAD or
given) as ranged GETs of ``chunk_size`` bytes, ``readahead`` chunks fetched ahead on a
thread while the caller parses the current one. A GET that still fails after the
profile's retries with a transient error (connection reset, a body cut short) is
fetched again from its first byte, at most ``max_resume`` times per stream: every chunk
is delivered whole, so the stream never skips or repeats a byte, and a shard that
changed while being read fails with :class:`~manystore.errors.PreconditionFailedError`
instead of mixing versions.

:func:`iter_groups` parses the tar headers itself (:func:`manystore.batch._tarfmt.parse_entry`:
ustar, GNU long names, pax) and groups members WebDataset's way: members whose names
share the part before the first dot of the basename form one sample, ``{key: {ext:
bytes}}``. A bad header, a shard that ends inside a member or without the end marker
raises :class:`ShardCorruptError` naming the shard URL and the member.
"""

from __future__ import annotations

import io
import re
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..batch import _tarfmt
from ..errors import PreconditionFailedError, RetryableError
from ..types import Range
from .errors import SampleDecodeError

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["GroupReader", "SampleGroup", "ShardCorruptError", "ShardStream", "iter_groups"]

_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
_UNKNOWN = 1 << 62


class Readable(Protocol):
    """A binary stream: ``read(n)`` returns up to ``n`` bytes, ``b""`` at the end."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); ``b""`` at the end."""
        ...


class ShardCorruptError(SampleDecodeError):
    """A shard is not a readable tar of samples (a :class:`SampleDecodeError`, so a ``ValueError``).

    Attributes:
        url: The shard.
        member: The member being read (or the last one read before a bad header), if any.
        offset: Byte offset in the shard where the problem was found.
    """

    def __init__(self, url: str, member: str | None, offset: int, reason: str) -> None:
        where = f"member {member!r}" if member else "the first member"
        super().__init__(f"shard {url}: corrupt at byte {offset} ({where}): {reason}", member=member, url=url)
        self.offset = offset

    def __str__(self) -> str:
        return self.reason


def _resumable(exc: BaseException) -> bool:
    if isinstance(exc, (PreconditionFailedError, FileNotFoundError, PermissionError, ValueError)):
        return False
    return isinstance(exc, (RetryableError, ConnectionError, TimeoutError, OSError))


class ShardStream(io.RawIOBase):
    """A read-only stream over one shard version from ``offset``, fetched ahead and resumed.

    Args:
        client: The profile's client.
        key: The shard's key in the profile.
        url: The shard's URL (for messages).
        offset: First byte to read.
        etag: The version to read (None: the current one, one HEAD).
        chunk_size: Bytes per ranged GET.
        readahead: Chunks in flight ahead of the one being read (0: fetch on demand).
        max_resume: Times a failed chunk may be fetched again over the stream's life.

    Attributes:
        resumes: Chunks fetched again after a broken connection.
        peak_held: Most bytes held at once (chunks fetched or in flight plus the current one).
    """

    def __init__(
        self,
        client: StorageClient,
        key: str,
        url: str,
        *,
        offset: int = 0,
        etag: str | None = None,
        size: int | None = None,
        chunk_size: int = 4 << 20,
        readahead: int = 1,
        max_resume: int = 5,
    ) -> None:
        super().__init__()
        if etag is None or size is None:
            meta = client._io.head(key)
            etag, size = meta.etag, meta.content_length
        self.client, self.key, self.url = client, key, url
        self.etag, self.size = etag, size
        self.chunk_size, self.readahead, self.max_resume = chunk_size, readahead, max_resume
        self.resumes = 0
        self.peak_held = 0
        self._next = offset  # first byte not yet requested
        self._buffer, self._pos = b"", 0
        self._lock = threading.Lock()
        self._window: deque[Future[bytes]] = deque()
        self._pool: ThreadPoolExecutor | None = None

    def readable(self) -> bool:
        return True

    def prime(self) -> None:
        """Start fetching the first ``readahead`` chunks now (the shard is prefetched)."""
        while len(self._window) < self.readahead and self._submit():
            pass

    @property
    def held(self) -> int:
        """Bytes held now: chunks fetched ahead or in flight and the current chunk."""
        return len(self._window) * self.chunk_size + len(self._buffer)

    def _fetch(self, offset: int, length: int) -> bytes:
        while True:
            try:
                data = self.client._io.get_range(self.key, Range(offset, length), self.etag)
                if len(data) != length:
                    raise ConnectionError(
                        f"{self.url}: short read at byte {offset}: got {len(data)} of {length} bytes"
                    )
                return data
            except Exception as exc:
                if not _resumable(exc):
                    raise
                with self._lock:
                    if self.resumes >= self.max_resume:
                        raise ConnectionError(
                            f"shard {self.url}: stream broke {self.resumes + 1} times "
                            f"(max_resume={self.max_resume}) at byte {offset}: {exc}"
                        ) from exc
                    self.resumes += 1

    def _submit(self) -> bool:
        if self._next >= self.size:
            return False
        length = min(self.chunk_size, self.size - self._next)
        if self.readahead == 0:
            future: Future[bytes] = Future()
            future.set_result(self._fetch(self._next, length))
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="manystore-shard")
            future = self._pool.submit(self._fetch, self._next, length)
        self._window.append(future)
        self._next += length
        return True

    def _next_chunk(self) -> bytes:
        if not self._window:
            self._submit()
        if not self._window:
            return b""
        data = self._window.popleft().result()
        while len(self._window) < self.readahead and self._submit():
            pass
        self.peak_held = max(self.peak_held, len(self._window) * self.chunk_size + len(data))
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all the rest for ``-1``); ``b""`` at the end."""
        if self.closed:
            raise ValueError(f"shard {self.url}: I/O operation on closed stream")
        want = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        got = 0
        while want < 0 or got < want:
            if self._pos >= len(self._buffer):
                self._buffer, self._pos = self._next_chunk(), 0
                if not self._buffer:
                    break
            if self._pos == 0 and (want < 0 or want - got >= len(self._buffer)):
                piece = self._buffer
            else:
                take = len(self._buffer) - self._pos if want < 0 else want - got
                piece = self._buffer[self._pos : self._pos + take]
            self._pos += len(piece)
            parts.append(piece)
            got += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, b: Any) -> int:
        """Read into the buffer ``b``; returns the number of bytes read (0 at the end)."""
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        for future in self._window:
            future.cancel()
        self._window.clear()
        self._buffer = b""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        super().close()


@dataclass
class SampleGroup:
    """One sample's members: ``key`` (name before the first dot) and ``{ext: bytes}``.

    Attributes:
        key: The sample key.
        members: Extension (``"msgpack"``, ``"json"``...) to content.
        offset: Offset of its first member's first header in the shard.
        nbytes: Content bytes of all its members.
    """

    key: str
    members: dict[str, bytes]
    offset: int
    nbytes: int


class _Window:
    """A forward-only view of a stream by absolute offset (for :func:`_tarfmt.parse_entry`)."""

    def __init__(self, stream: Readable, base: int, block: int) -> None:
        self._stream, self._base, self._block = stream, base, block
        self._buf = bytearray()
        self.eof = False

    def get(self, offset: int, n: int) -> bytes:
        rel = offset - self._base
        while len(self._buf) < rel + n and not self.eof:
            chunk = self._stream.read(max(self._block, rel + n - len(self._buf)))
            if not chunk:
                self.eof = True
                break
            self._buf += chunk
        with memoryview(self._buf) as view:  # one copy (a bytearray slice would be a second)
            return bytes(view[rel : rel + n])

    def drop_before(self, offset: int) -> None:
        rel = offset - self._base
        if rel > 0:
            del self._buf[:rel]
            self._base = offset


def _fast_entry(block: bytes, offset: int) -> _tarfmt.TarEntry | None:
    """The entry of a plain ustar/GNU regular-file header (the common case), else None.

    None sends the header to :func:`manystore.batch._tarfmt.parse_entry`, which handles
    every form (pax and long-name headers, a signed checksum) and reports corruption.
    """
    if (
        len(block) < _tarfmt.BLOCK
        or block[156:157] not in (b"0", b"\0")
        or block[345:346] not in (b"\0", b"")
    ):
        return None
    stored = block[148:156].replace(b"\0", b" ").strip()
    size_field = block[124:136].replace(b"\0", b" ").strip()
    if not stored or not size_field or size_field[0] & 0x80:
        return None
    try:
        if int(stored, 8) != sum(block[:148]) + 256 + sum(block[156:]):
            return None
        size = int(size_field, 8)
    except ValueError:
        return None
    name = block[0:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return _tarfmt.TarEntry(name, block[156:157], size, offset, offset + _tarfmt.BLOCK)


class GroupReader:
    """The samples of a tar stream that starts at byte ``offset`` of shard ``url``, in order.

    Members whose names do not have the ``key.ext`` form (directories, ``README``) are skipped.

    Args:
        stream: The tar bytes from ``offset`` on.
        url: The shard (for messages).
        offset: Where ``stream`` starts in the shard (a header boundary).
        block: Bytes read from ``stream`` at a time.

    Raises:
        ShardCorruptError: (while iterating) A header is corrupt, or the stream ends inside
            a member or before the end-of-archive marker.
    """

    def __init__(self, stream: Readable, url: str, offset: int = 0, block: int = 1 << 20) -> None:
        self._window = _Window(stream, offset, block)
        self.url, self.offset = url, offset

    @property
    def held(self) -> int:
        """Bytes read from the stream and not yet parsed past."""
        return len(self._window._buf)

    def __iter__(self) -> Iterator[SampleGroup]:
        window, url, offset = self._window, self.url, self.offset
        member: str | None = None
        current: SampleGroup | None = None
        while True:
            try:
                entry = _fast_entry(window.get(offset, _tarfmt.BLOCK), offset)
                if entry is None:
                    entry = _tarfmt.parse_entry(window.get, offset, _UNKNOWN)
            except ValueError as exc:
                raise ShardCorruptError(url, member, offset, str(exc)) from None
            if entry is None:
                if window.eof:
                    raise ShardCorruptError(
                        url, member, offset, "truncated: the shard ends without the end marker"
                    )
                break
            member = entry.name
            if entry.is_file:
                data = window.get(entry.data_offset, entry.size)
                if len(data) < entry.size:
                    where = entry.data_offset + len(data)
                    raise ShardCorruptError(
                        url, member, where, f"truncated: {len(data)} of {entry.size} bytes"
                    )
                match = _NAME.match(entry.name)
                if match is not None:
                    key, ext = match.group(1), match.group(2)
                    if current is not None and current.key != key:
                        yield current
                        current = None
                    if current is None:
                        current = SampleGroup(key, {}, entry.header_offset, 0)
                    current.members[ext] = data
                    current.nbytes += len(data)
            offset = entry.next_offset
            window.drop_before(offset)
        if current is not None:
            yield current


def iter_groups(stream: Readable, url: str, offset: int = 0, block: int = 1 << 20) -> Iterator[SampleGroup]:
    """The samples of a tar stream (see :class:`GroupReader`)."""
    return iter(GroupReader(stream, url, offset, block))
