"""File-like readers the interface uploads from: a buffer without copying it, and a
restartable stream of generated chunks (compressed data) that a retry can replay."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator


class BufferReader(io.RawIOBase):
    """A seekable binary reader over a buffer: ``read`` hands out slices, nothing is copied
    until the consumer copies the bytes it asked for.

    Args:
        buffer: The bytes to serve (kept as a flat ``memoryview``).
    """

    def __init__(self, buffer: bytes | bytearray | memoryview) -> None:
        super().__init__()
        view = memoryview(buffer)
        self._view = view if view.format == "B" and view.ndim == 1 else view.cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError(f"seek to {base + offset}: negative position")
        self._pos = base + offset
        return self._pos

    def getbuffer(self) -> memoryview:
        """The whole buffer (as ``io.BytesIO.getbuffer``): uploads send it without copying."""
        return self._view

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        n = max(0, min(len(out), len(self._view) - self._pos))
        out[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        start, self._pos = self._pos, max(self._pos, end)
        return bytes(self._view[start:end])

    def readall(self) -> bytes:
        return self.read(-1)


class ChunkStream(io.RawIOBase):
    """A forward-only binary reader over chunks from ``factory()``; ``seek(0)`` restarts it
    (a retried upload replays the same bytes), any other seek is refused.

    Args:
        factory: Returns a fresh iterator of the stream's chunks.
    """

    def __init__(self, factory: Callable[[], Iterator[bytes | memoryview]]) -> None:
        super().__init__()
        self._factory = factory
        self._chunks = factory()
        self._pending = memoryview(b"")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR and offset == 0:
            return self._pos
        if whence != io.SEEK_SET or offset != 0:
            raise io.UnsupportedOperation(f"seek({offset}, {whence}): a chunk stream only restarts (seek(0))")
        if self._pos:
            self._chunks, self._pending, self._pos = self._factory(), memoryview(b""), 0
        return 0

    def _fill(self) -> bool:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            self._pending = memoryview(chunk).cast("B")
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        if not out or not self._fill():
            return 0
        n = min(len(out), len(self._pending))
        out[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        while size > 0 and self._fill():
            n = min(size, len(self._pending))
            parts.append(bytes(self._pending[:n]))
            self._pending = self._pending[n:]
            self._pos += n
            size -= n
        return b"".join(parts)

    def readall(self) -> bytes:
        parts = []
        while self._fill():
            parts.append(bytes(self._pending))
            self._pos += len(self._pending)
            self._pending = memoryview(b"")
        return b"".join(parts)


class BlockSource:
    """The bytes of one object, in order, for a decompressor: ``workers`` ranged GETs of
    ``chunk`` bytes in flight ahead of the reader, so fetching overlaps decompressing.

    ``read(n)`` with ``n`` at least ``chunk`` returns each fetched block as it came (no copy);
    a smaller ``n`` hands out slices of it; ``read()`` joins the rest. At most ``workers``
    blocks are held at a time.

    Args:
        fetch: ``fetch(offset, length)``: those bytes of the object (pinned to one version).
        size: The object's size.
        chunk: Bytes per ranged GET.
        workers: GETs in flight.
    """

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, chunk: int, workers: int) -> None:
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        self._fetch, self._size, self._chunk = fetch, size, chunk
        self._offsets = iter(range(0, size, chunk))
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="manystore-arrays-get")
        self._pending: deque[Future[bytes]] = deque()
        self._rest = memoryview(b"")
        for _ in range(max(1, workers)):
            self._submit()

    def _submit(self) -> None:
        offset = next(self._offsets, None)
        if offset is not None:
            length = min(self._chunk, self._size - offset)
            self._pending.append(self._pool.submit(self._checked, offset, length))

    def _checked(self, offset: int, length: int) -> bytes:
        data = self._fetch(offset, length)
        if len(data) != length:
            raise OSError(f"short read at offset {offset}: got {len(data)} of {length} bytes")
        return data

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``-1``: all the rest); ``b""`` at the end."""
        if n is None or n < 0:
            parts = [bytes(self._rest)]
            self._rest = memoryview(b"")
            while block := self.read(self._chunk):
                parts.append(block)
            return b"".join(parts)
        if not self._rest:
            if not self._pending:
                return b""
            data = self._pending.popleft().result()
            self._submit()
            if len(data) <= n:
                return data
            self._rest = memoryview(data)
        take = min(n, len(self._rest))
        out, self._rest = bytes(self._rest[:take]), self._rest[take:]
        return out

    def close(self) -> None:
        """Cancel the GETs not started yet and let the rest finish in the background."""
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> BlockSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
