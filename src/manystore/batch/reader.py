"""``ObjectReader`` and ``ObjectFileReader``: chunked, parallel and resumable object reads.

A reader fetches the object as ranged GETs of ``chunk_size`` bytes, each pinned to the
ETag the object had when the read began (a changed object fails the read with
:class:`~manystore.errors.PreconditionFailedError` instead of mixing two versions). With
``num_workers > 1`` up to that many chunks are in flight at once, delivered in order (at
most ``2 * num_workers`` chunks are held). Reads go through the profile's read cache when
it has one. Each GET already gets the profile's retries; on top of that,
:meth:`ObjectReader.as_file` resumes from the first byte not yet fetched when a GET still
fails with a transient error (at most ``max_resume`` times per file): every chunk is
either delivered whole or fetched again from its start, so no byte is duplicated or lost.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import PreconditionFailedError, RetryableError
from ..types import ObjectMetadata
from .props import ObjectAttributes

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ObjectFileReader",
    "ObjectFileReaderMaxResumeError",
    "ObjectFileReaderStreamError",
    "ObjectReader",
    "parse_byte_range",
]

#: Bytes per ranged GET unless ``chunk_size`` says otherwise (the SDK's default is 32 KiB;
#: a GET per 32 KiB is too many round trips to an object store).
DEFAULT_CHUNK_SIZE = 8 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class ObjectFileReaderStreamError(ConnectionError):
    """The object's stream could not be (re)opened."""


class ObjectFileReaderMaxResumeError(ConnectionError):
    """The stream broke more often than ``max_resume`` allows; the last error is the cause.

    Attributes:
        max_retries: The ``max_resume`` that was exhausted.
    """

    def __init__(self, err: BaseException, max_retries: int) -> None:
        super().__init__(f"object stream broke {max_retries + 1} times (max_resume={max_retries}): {err}")
        self.max_retries = max_retries


def parse_byte_range(spec: str, size: int) -> tuple[int, int]:
    """``(start, end)`` (end exclusive) of an RFC 7233 single range within ``size`` bytes.

    Args:
        spec: ``"bytes=0-499"``, ``"bytes=500-"`` or ``"bytes=-500"`` (the last 500).
        size: The object's size.

    Raises:
        ValueError: Not one of these forms, ``first > last``, or a start at or past the end
            of a non-empty object.
    """
    match = _RANGE.match(spec.strip()) if isinstance(spec, str) else None
    if match is None or match.group(1) == match.group(2) == "":
        raise ValueError(
            f"byte_range {spec!r}: expected 'bytes=FIRST-LAST', 'bytes=FIRST-' or 'bytes=-SUFFIX'"
        )
    first, last = match.groups()
    if first == "":
        return max(0, size - int(last)), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if last != "" and int(last) < start:
        raise ValueError(f"byte_range {spec!r}: last byte {last} is before first byte {first}")
    if start >= size and size > 0:
        raise ValueError(f"byte_range {spec!r}: starts at or past the end of the {size}-byte object")
    return start, max(start, end)


def _resumable(exc: BaseException) -> bool:
    if isinstance(exc, (PreconditionFailedError, FileNotFoundError, PermissionError, ValueError)):
        return False
    return isinstance(exc, (RetryableError, ConnectionError, TimeoutError, OSError))


class _Source:
    """One object version's bytes ``[start, end)``, fetched in chunks."""

    def __init__(
        self,
        client: StorageClient,
        key: str,
        meta: ObjectMetadata,
        start: int,
        end: int,
        chunk: int,
        workers: int,
    ) -> None:
        self.client, self.key, self.meta = client, key, meta
        self.start, self.end, self.chunk, self.workers = start, end, chunk, workers

    def fetch(self, offset: int, length: int) -> bytes:
        return self.client._io.fetch_block(
            self.key, offset, length, self.meta.etag, cached=True, total=self.meta.content_length
        )

    def chunks(self, offset: int) -> Iterator[bytes]:
        """Chunks from ``offset`` to the end, in order (concurrently with ``workers > 1``)."""
        spans = [(o, min(self.chunk, self.end - o)) for o in range(offset, self.end, self.chunk)]
        if self.workers <= 1 or len(spans) <= 1:
            for o, n in spans:
                yield self.fetch(o, n)
            return
        pool = ThreadPoolExecutor(min(self.workers, len(spans)), thread_name_prefix="manystore-reader")
        window: deque[Future[bytes]] = deque()
        todo = iter(spans)
        try:
            for o, n in todo:
                window.append(pool.submit(self.fetch, o, n))
                if len(window) >= 2 * self.workers:
                    break
            while window:
                data = window.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    window.append(pool.submit(self.fetch, *nxt))
                yield data
        finally:
            for future in window:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)


class ObjectReader:
    """Reads one object (as the SDK's ``ObjectReader``); made by :meth:`Object.get_reader`.

    Args:
        client: The profile's client.
        key: The object's key in the profile.
        url: The object's URL (for messages).
        byte_range: RFC 7233 single range (``"bytes=0-499"``, ``"bytes=500-"``, ``"bytes=-500"``).
        chunk_size: Bytes per ranged GET and per iterated chunk.
        num_workers: Ranged GETs in flight at once (1: one after the other).
    """

    def __init__(
        self,
        client: StorageClient,
        key: str,
        url: str,
        byte_range: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        num_workers: int = 1,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size!r}: expected a positive number of bytes")
        if num_workers < 1:
            raise ValueError(f"num_workers={num_workers!r}: expected >= 1")
        if byte_range is not None:
            parse_byte_range(byte_range, 1 << 62)  # syntax check now, bounds once the size is known
        self._client, self._key, self._url = client, key, url
        self._byte_range, self._chunk_size, self._num_workers = byte_range, chunk_size, num_workers
        self._meta: ObjectMetadata | None = None

    @property
    def chunk_size(self) -> int:
        """Bytes per ranged GET."""
        return self._chunk_size

    def head(self) -> ObjectAttributes:
        """The object's attributes, freshly fetched (one HEAD).

        Raises:
            FileNotFoundError: The object does not exist.
        """
        self._meta = self._client.info(self._key)
        return ObjectAttributes(self._meta)

    @property
    def attributes(self) -> ObjectAttributes:
        """The object's attributes as of the last read or :meth:`head` (fetched if none yet)."""
        if self._meta is None:
            return self.head()
        return ObjectAttributes(self._meta)

    def _source(self, chunk_size: int | None = None) -> _Source:
        meta = self._client.info(self._key)
        self._meta = meta
        start, end = 0, meta.content_length
        if self._byte_range is not None:
            start, end = parse_byte_range(self._byte_range, meta.content_length)
        return _Source(
            self._client, self._key, meta, start, end, chunk_size or self._chunk_size, self._num_workers
        )

    def read_all(self) -> bytes:
        """The whole object (or its ``byte_range``) in memory.

        Raises:
            FileNotFoundError: The object does not exist.
            PreconditionFailedError: It changed while being read.
        """
        if self._byte_range is None and self._num_workers <= 1:
            data = self._client.read(self._key)  # one GET (or the read cache)
            return data
        source = self._source()
        return b"".join(source.chunks(source.start))

    def __iter__(self) -> Iterator[bytes]:
        """Chunks of ``chunk_size`` bytes (the last may be shorter), in order."""
        source = self._source()
        yield from source.chunks(source.start)

    def raw(self) -> io.BufferedIOBase:
        """The content as a read-only stream that does not resume (``as_file(max_resume=0)``)."""
        return self.as_file(max_resume=0)

    def as_file(self, buffer_size: int | None = None, max_resume: int | None = 5) -> ObjectFileReader:
        """A read-only, non-seekable file over the content that resumes a broken stream.

        Args:
            buffer_size: Bytes per ranged GET for this file (default: the reader's ``chunk_size``).
            max_resume: Times the file may resume after a failed GET (0: never).

        Raises:
            ValueError: ``max_resume`` is negative or ``buffer_size`` not positive.
        """
        resumes = 5 if max_resume is None else max_resume
        if not isinstance(resumes, int) or resumes < 0:
            raise ValueError(f"max_resume={max_resume!r}: expected a non-negative integer")
        if buffer_size is not None and buffer_size < 1:
            raise ValueError(f"buffer_size={buffer_size!r}: expected a positive number of bytes")
        return ObjectFileReader(self._source(buffer_size), resumes)


class ObjectFileReader(io.BufferedIOBase):
    """Sequential reads over an object's content, resuming after broken GETs (see the module docs).

    Args:
        source: The object version and span to read (from :meth:`ObjectReader.as_file`).
        max_resume: Resumes allowed over the life of this file.
    """

    def __init__(self, source: _Source, max_resume: int) -> None:
        super().__init__()
        self._source, self._max_resume = source, max_resume
        self._fetched = source.start  # offset of the first byte not yet fetched
        self._buffer = b""
        self._pos = 0  # bytes of _buffer already delivered
        self._chunks: Iterator[bytes] | None = None
        self.resumes = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes | None:
        while True:
            if self._chunks is None:
                self._chunks = self._source.chunks(self._fetched)
            try:
                data = next(self._chunks, None)
            except Exception as exc:
                self._chunks = None
                if not _resumable(exc):
                    raise
                if self.resumes >= self._max_resume:
                    raise ObjectFileReaderMaxResumeError(exc, self._max_resume) from exc
                self.resumes += 1
                continue
            if data is not None:
                self._fetched += len(data)
            return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all the rest when ``size`` is ``-1`` or ``None``); ``b""`` at the end.

        Raises:
            ObjectFileReaderMaxResumeError: The stream broke more than ``max_resume`` times.
            PreconditionFailedError: The object changed since the file was opened.
            ValueError: The file is closed.
        """
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        want = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        got = 0
        while want < 0 or got < want:
            if self._pos >= len(self._buffer):
                chunk = self._next_chunk()
                if not chunk:
                    break
                self._buffer, self._pos = chunk, 0
            take = (
                len(self._buffer) - self._pos if want < 0 else min(want - got, len(self._buffer) - self._pos)
            )
            parts.append(self._buffer[self._pos : self._pos + take])
            self._pos += take
            got += take
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, b: Any) -> int:
        """Read up to ``len(b)`` bytes into ``b``; returns how many (0 at the end)."""
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._chunks = None
        self._buffer = b""
        super().close()
