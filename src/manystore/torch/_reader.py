"""Readers: file-like views of one object (s3torchconnector's ``S3Reader`` family).

A reader constructor is called as ``constructor(bucket, key, get_object_info, get_stream)``
(the seed's protocol). Here ``get_object_info`` returns the object's
:class:`~manystore.types.ObjectMetadata` (from the listing when there was one, else one
HEAD on first call) and ``get_stream`` is an :class:`ObjectSource`: called as
``get_stream(start, end)`` it yields the bytes of ``[start, end)`` (the seed's shape), and
its :meth:`ObjectSource.read_whole` / :meth:`ObjectSource.read_range` are the fast paths
readers use: whole objects through the client's read (parallel ranges, resumed after a
cut, pinned to one ETag) and ranged reads pinned to the listed ETag. No request is sent
before the first read.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..types import ObjectMetadata, Range

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["ObjectSource", "RangedReader", "Reader", "S3Reader", "SequentialReader", "DEFAULT_BUFFER_SIZE"]

#: ``range_based()``'s buffer when none is given (as the seed).
DEFAULT_BUFFER_SIZE = 8 << 20
_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)


class ObjectSource:
    """Where a reader's bytes come from: one object of one client, optionally with listed size/ETag.

    Args:
        client: The client of the object's profile.
        path: The object's key within the profile.
        size: Its size from a listing, if known.
        etag: Its ETag from a listing, if known (ranged reads are pinned to it).
    """

    __slots__ = ("_meta", "client", "path")

    def __init__(self, client: StorageClient, path: str, size: int | None = None, etag: str | None = None):
        self.client, self.path = client, path
        self._meta = (
            ObjectMetadata(key=path, content_length=size, last_modified=_EPOCH, etag=etag)
            if size is not None
            else None
        )

    def info(self) -> ObjectMetadata:
        """The object's metadata: the listed one, else fetched once (a HEAD)."""
        if self._meta is None:
            self._meta = self.client.info(self.path)
        return self._meta

    def read_whole(self) -> bytes:
        """The whole object, checked against the listed size (a short body never passes).

        Raises:
            OSError: The body's length differs from the object's size and a fresh HEAD
                does not confirm the new length (a truncated body).
        """
        data = self.client.read(self.path)
        meta = self._meta
        if meta is not None and len(data) != meta.content_length:
            fresh = self.client.info(self.path)  # replaced since the listing, or cut short?
            if fresh.content_length != len(data):
                raise OSError(
                    f"{self.client.url_prefix}{self.path}: got {len(data)} bytes, expected "
                    f"{fresh.content_length} (a truncated body)"
                )
            self._meta = fresh
        return data

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (clipped to the object), pinned to the object's ETag.

        Raises:
            OSError: Fewer bytes arrived than the range holds.
        """
        meta = self.info()
        end = min(end, meta.content_length)
        if end <= start:
            return b""
        data = self.client._io.get_range(self.path, Range(start, end - start), meta.etag)
        if len(data) != end - start:
            raise OSError(
                f"{self.client.url_prefix}{self.path}: short read at {start}: {len(data)} of {end - start} bytes"
            )
        return data

    def __call__(self, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        """The seed's ``get_stream(start, end)``: an iterator over the bytes of ``[start, end)``."""
        if start is None and end is None:
            yield self.read_whole()
            return
        yield self.read_range(start or 0, self.info().content_length if end is None else end)


class Reader(ABC, io.BufferedIOBase):
    """A read-only, seekable binary file over one object (the seed's ``S3Reader``).

    Subclasses implement :attr:`bucket`, :attr:`key`, :meth:`read`, :meth:`readinto`,
    :meth:`seek` and :meth:`tell`.
    """

    @property
    @abstractmethod
    def bucket(self) -> str:
        """The bucket (or profile, or ``""`` for local paths) of the object."""

    @property
    @abstractmethod
    def key(self) -> str:
        """The object's key within :attr:`bucket`."""

    @abstractmethod
    def read(self, size: int | None = None) -> bytes:
        """Up to ``size`` bytes from the current position (all remaining when ``None`` or negative)."""

    @abstractmethod
    def readinto(self, buf: Any) -> int:
        """Fill the writable buffer ``buf`` from the current position; the count of bytes read."""

    @abstractmethod
    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        """Move the position (``SEEK_SET``, ``SEEK_CUR``, ``SEEK_END``); the new position."""

    @abstractmethod
    def tell(self) -> int:
        """The current position."""

    def seekable(self) -> bool:
        """Always True."""
        return True

    def readable(self) -> bool:
        """Always True."""
        return True

    def writable(self) -> bool:
        """Always False."""
        return False


S3Reader = Reader


class _Base(Reader):
    """Position bookkeeping shared by the two concrete readers."""

    def __init__(
        self, bucket: str, key: str, get_object_info: Callable[[], ObjectMetadata], get_stream: Any
    ) -> None:
        self._bucket, self._key = bucket, key
        self._get_info, self._get_stream = get_object_info, get_stream
        self._pos = 0
        self._size: int | None = None

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def key(self) -> str:
        return self._key

    def _length(self) -> int:
        if self._size is None:
            self._size = int(self._get_info().content_length)
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._length() + offset
        else:
            raise ValueError(f"seek: invalid whence {whence!r}; expected SEEK_SET, SEEK_CUR or SEEK_END")
        if target < 0:
            raise ValueError(f"seek: negative position {target} in {self._key!r}")
        self._pos = target
        return target

    def tell(self) -> int:
        return self._pos

    def _fetch(self, start: int, end: int) -> bytes:
        source = self._get_stream
        if isinstance(source, ObjectSource):
            return source.read_range(start, end)
        return b"".join(bytes(chunk) for chunk in source(start, end))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self._bucket!r}, key={self._key!r}, pos={self._pos})"


class SequentialReader(_Base):
    """Fetches the whole object on first read and serves every read from memory.

    ``read()`` of the whole object returns the fetched bytes themselves and ``readinto``
    copies straight from them into the caller's buffer (one copy, no intermediate).
    """

    def __init__(
        self, bucket: str, key: str, get_object_info: Callable[[], ObjectMetadata], get_stream: Any
    ) -> None:
        super().__init__(bucket, key, get_object_info, get_stream)
        self._data: bytes | None = None

    def _preload(self, data: bytes) -> None:
        """Use ``data`` (fetched ahead by a dataset) as the object's body."""
        self._data, self._size = data, len(data)

    def _body(self) -> bytes:
        if self._data is None:
            source = self._get_stream
            if isinstance(source, ObjectSource):
                data = source.read_whole()
            else:
                data = b"".join(bytes(chunk) for chunk in source())
            self._preload(data)
        assert self._data is not None
        return self._data

    def _length(self) -> int:
        if self._data is not None:
            return len(self._data)
        return super()._length()

    def read(self, size: int | None = None) -> bytes:
        data = self._body()
        start = min(self._pos, len(data))
        if size is None or size < 0:
            end = len(data)
        else:
            end = min(len(data), start + size)
        self._pos = max(self._pos, end)
        return data if start == 0 and end == len(data) else data[start:end]

    def readinto(self, buf: Any) -> int:
        data = self._body()
        view = memoryview(buf).cast("B")
        start = min(self._pos, len(data))
        count = min(len(view), len(data) - start)
        view[:count] = memoryview(data)[start : start + count]
        self._pos = start + count
        return count


class RangedReader(_Base):
    """Fetches only the byte ranges read (each pinned to the object's ETag).

    Reads smaller than ``buffer_size`` fill a ``buffer_size`` buffer from the current
    position, so small sequential reads cost one request per buffer; larger reads (and
    every read with ``buffer_size=0``) are one request each.

    Args:
        buffer_size: Buffer size in bytes (``None``: 8 MiB; ``0``: no buffer).
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        get_object_info: Callable[[], ObjectMetadata],
        get_stream: Any,
        buffer_size: int | None = None,
    ) -> None:
        super().__init__(bucket, key, get_object_info, get_stream)
        size = DEFAULT_BUFFER_SIZE if buffer_size is None else buffer_size
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"range_based: invalid buffer_size {buffer_size!r}; expected an int >= 0")
        self._buffer_size = size
        self._buf, self._buf_start = b"", 0

    def _span(self, size: int | None) -> tuple[int, int]:
        length = self._length()
        start = min(self._pos, length)
        end = length if size is None or size < 0 else min(length, start + size)
        return start, end

    def _get(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        buf, first = self._buf, self._buf_start
        if first <= start and end <= first + len(buf):
            return buf[start - first : end - first]
        if self._buffer_size and end - start < self._buffer_size:
            head = b""
            if first <= start < first + len(buf):  # reuse the buffered prefix of the range
                head = buf[start - first :]
            fill_from = start + len(head)
            self._buf = head + self._fetch(fill_from, start + self._buffer_size)
            self._buf_start = start
            return self._buf[: end - start]
        return self._fetch(start, end)

    def read(self, size: int | None = None) -> bytes:
        start, end = self._span(size)
        data = self._get(start, end)
        self._pos = start + len(data)
        return data

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        start, end = self._span(len(view))
        data = self._get(start, end)
        view[: len(data)] = data
        self._pos = start + len(data)
        return len(data)
