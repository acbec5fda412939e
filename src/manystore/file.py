"""File objects returned by :meth:`manystore.StorageClient.open`.

* :class:`ObjectFile` — objects in an object store. Reads of objects up to
  ``memory_load_limit`` fetch the object in one request; larger objects are read
  by ranged requests pinned to the ETag seen at open time, so a replaced object
  raises instead of returning mixed bytes. Writes are spooled (memory up to one
  part, then a temporary file) and stored on ``close()`` with one PUT or a
  multipart upload: nothing is visible before, and nothing is stored if the
  ``with`` block raises.
* :class:`PosixFile` — local files. Writes go to a temporary file renamed over
  the target on ``close()`` when ``atomic`` is true (the default).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from .client_links import symlink_target_of
from .objectio import READ_BLOCK_SIZE
from .providers.posix_file import temp_file_beside
from .types import ObjectMetadata

if TYPE_CHECKING:
    from .providers.base import ObjectWriter

if TYPE_CHECKING:
    from .objectio import ObjectIO

__all__ = ["READ_BLOCK_SIZE", "SPOOL_MEMORY_LIMIT", "VALID_MODES", "ObjectFile", "PosixFile", "check_mode"]

VALID_MODES = ("r", "rb", "w", "wb", "a", "ab")
#: Blocks fetched ahead while an object is read in order.
READAHEAD_BLOCKS = 2
#: Bytes an ObjectFile being written keeps in memory before spilling to a temp file.
SPOOL_MEMORY_LIMIT = 8 << 20


def check_mode(mode: str) -> None:
    """Raise :class:`ValueError` naming ``mode`` unless it is one of :data:`VALID_MODES`."""
    if mode not in VALID_MODES:
        raise ValueError(f"invalid mode {mode!r}: expected one of {list(VALID_MODES)}")


class _RangeReader(io.RawIOBase):
    """Raw reader over ranged GETs of :data:`READ_BLOCK_SIZE`, all pinned to one ETag.

    After two consecutive blocks are read in order, the next :data:`READAHEAD_BLOCKS`
    blocks are fetched in the background, so streaming overlaps network and consumer.
    A seek elsewhere cancels the read-ahead; random access fetches only what it reads.
    """

    def __init__(self, store: ObjectIO, path: str, meta: ObjectMetadata, cached: bool = False) -> None:
        self._io, self._path, self._meta = store, path, meta
        self._cached = cached
        self._size = meta.content_length
        self._pos = 0
        self._block: memoryview | None = None
        self._block_start = 0
        self._ahead: deque[tuple[int, Future[bytes]]] = deque()
        self._in_order = 0
        self._pool: ThreadPoolExecutor | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def _fetch(self, start: int) -> bytes:
        size = min(READ_BLOCK_SIZE, self._size - start)
        return self._io.fetch_block(self._path, start, size, self._meta.etag, self._cached, self._size)

    def _load_block(self, start: int) -> memoryview:
        while self._ahead and self._ahead[0][0] != start:
            self._ahead.popleft()[1].cancel()
        if self._ahead:
            data = self._ahead.popleft()[1].result()
        else:
            data = self._fetch(start)
        sequential = self._block is not None and start == self._block_start + len(self._block)
        self._in_order = self._in_order + 1 if sequential else 0
        if self._in_order >= 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(READAHEAD_BLOCKS, thread_name_prefix="manystore-readahead")
            nxt = self._ahead[-1][0] + READ_BLOCK_SIZE if self._ahead else start + len(data)
            while len(self._ahead) < READAHEAD_BLOCKS and nxt < self._size:
                self._ahead.append((nxt, self._pool.submit(self._fetch, nxt)))
                nxt += READ_BLOCK_SIZE
        return memoryview(data)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        done = 0
        while done < want:
            block = self._block
            if block is None or not (self._block_start <= self._pos < self._block_start + len(block)):
                start = self._pos - self._pos % READ_BLOCK_SIZE
                block = self._block = self._load_block(start)
                self._block_start = start
            offset = self._pos - self._block_start
            take = min(want - done, len(block) - offset)
            view[done : done + take] = block[offset : offset + take]
            done += take
            self._pos += take
        return max(done, 0)

    def close(self) -> None:
        for _, fut in self._ahead:
            fut.cancel()
        self._ahead.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._block = None
        super().close()


class _Sink(io.RawIOBase):
    """Where an ObjectFile's written bytes go until ``commit`` (store) or ``discard``."""

    size = 0

    def writable(self) -> bool:
        return True

    def close(self) -> None:  # the owner decides when the sink goes away
        pass

    def commit(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        """Free resources after a successful commit."""
        super().close()

    def discard(self) -> None:
        """Drop everything written; nothing is stored."""
        super().close()


class _Spool(_Sink):
    """Memory up to :data:`SPOOL_MEMORY_LIMIT`, then a temp file; stored in one call on commit."""

    def __init__(self, store: ObjectIO, path: str, attributes: dict[str, str] | None = None) -> None:
        self._io, self._path, self._attributes = store, path, attributes
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_LIMIT)  # noqa: SIM115

    def write(self, data: Any) -> int:
        n = self.file.write(data)
        self.size += n
        return n

    def commit(self) -> None:
        self._io.store_spool(self._path, self.file, self.size, self._attributes)

    def release(self) -> None:
        self.file.close()
        super().release()

    def discard(self) -> None:
        self.file.close()
        super().discard()


class _Streamer(_Sink):
    """Sends bytes as they are written (a multipart upload); completes it on commit."""

    def __init__(self, writer: ObjectWriter) -> None:
        self._writer = writer

    def write(self, data: Any) -> int:
        # Copy: the transport may keep the buffer after returning, and callers reuse theirs.
        n = self._writer.write(bytes(data))
        self.size += n
        return n

    def commit(self) -> None:
        self._writer.close()

    def discard(self) -> None:
        self._writer.abort()
        super().discard()


class ObjectFile(io.IOBase):
    """A file object over one object of an object store (see the module docs).

    Not thread-safe: share a client, not a file object, between threads.

    ``cache_check`` (set by :meth:`manystore.StorageClient.open`) reads through the
    client's read cache, validating against the source's ETag when True; ``None``
    reads straight from the store.
    """

    def __init__(
        self,
        store: ObjectIO,
        path: str,
        mode: str = "rb",
        encoding: str | None = None,
        memory_load_limit: int = 512 << 20,
        on_commit: Callable[[], None] | None = None,
        cache_check: bool | None = None,
        attributes: dict[str, str] | None = None,
        follow: Callable[[str], str] | None = None,
    ) -> None:
        check_mode(mode)
        self._io, self._path, self._mode = store, path, mode
        self._on_commit = on_commit
        self._sink: _Sink | None = None
        self._stored = False
        binary: IO[bytes]
        if mode.startswith("r"):
            meta, data = self._fetch(path, memory_load_limit, cache_check)
            if follow is not None and meta.content_length == 0 and symlink_target_of(meta):
                self._path = path = follow(path)
                meta, data = self._fetch(path, memory_load_limit, cache_check)
            self._meta: ObjectMetadata | None = meta
            if data is not None:
                binary = io.BytesIO(data)
            else:
                reader = _RangeReader(store, path, meta, cached=cache_check is not None)
                binary = io.BufferedReader(reader, buffer_size=READ_BLOCK_SIZE)
        else:
            self._meta = None
            # User metadata goes with the one request that stores the object: spool, no streaming.
            writer = store.open_writer(path) if mode.startswith("w") and not attributes else None
            if writer is not None:
                self._sink = _Streamer(writer)
            else:
                spool = self._sink = _Spool(store, path, attributes)
                if mode.startswith("a"):
                    with contextlib.suppress(FileNotFoundError):
                        store.download_into(path, spool.file)
                        spool.size = spool.file.tell()
            binary = io.BufferedWriter(self._sink, buffer_size=1 << 20)
        self._stream: IO[Any] = (
            binary if "b" in mode else io.TextIOWrapper(binary, encoding=encoding or "utf-8")
        )

    def _fetch(
        self, path: str, memory_load_limit: int, cache_check: bool | None
    ) -> tuple[ObjectMetadata, bytes | None]:
        if cache_check is not None:
            return self._io.cached_open(path, memory_load_limit, cache_check)
        meta = self._io.head(path)
        small = meta.content_length <= memory_load_limit
        return meta, self._io.get_range(path, None, meta.etag) if small else None

    # ---------------------------------------------------------- properties
    @property
    def name(self) -> str:
        return self._path

    @property
    def mode(self) -> str:
        return self._mode

    def readable(self) -> bool:
        return self._mode.startswith("r")

    def writable(self) -> bool:
        return not self._mode.startswith("r")

    def seekable(self) -> bool:
        return self.readable()

    # ------------------------------------------------------------- reading
    def read(self, size: int = -1) -> Any:
        """Read up to ``size`` bytes (characters in text mode); all that is left when ``size`` is -1."""
        return self._stream.read(size)

    def readline(self, size: int | None = -1) -> Any:
        return self._stream.readline(-1 if size is None else size)

    def readlines(self, hint: int = -1) -> list[Any]:
        return self._stream.readlines(hint)

    def readinto(self, buffer: Any) -> int:
        """Read bytes into the writable ``buffer``; returns how many were read (0 at the end)."""
        return self._stream.readinto(buffer)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._stream)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        if self._sink is not None:
            self._stream.flush()
            return self._sink.size
        return self._stream.tell()

    # ------------------------------------------------------------- writing
    def write(self, data: Any) -> int:
        """Write ``data`` (bytes, or str in text mode); returns how much was written."""
        return self._stream.write(data)

    def writelines(self, lines: Any) -> None:
        self._stream.writelines(lines)

    def flush(self) -> None:
        if not self.closed and self._sink is not None and not self._stream.closed:
            self._stream.flush()

    # ------------------------------------------------------------- closing
    def close(self) -> None:
        """Store the written bytes (write modes), then release buffers."""
        if self.closed:
            return
        try:
            if self._sink is not None:
                self._stream.flush()
                self._sink.commit()
                self._stored = True
                if self._on_commit is not None:
                    self._on_commit()
        finally:
            self._release()

    def abort(self) -> None:
        """Discard written bytes without storing anything."""
        if not self.closed:
            self._release()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        if self._sink is not None:
            if self._stored:
                self._sink.release()
            else:
                self._sink.discard()
        super().close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and self.writable():
            self.abort()
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<ObjectFile {self._path!r} mode={self._mode!r}>"


class PosixFile(io.IOBase):
    """A local file; with ``atomic`` writes go to a temp file renamed over the target on close."""

    def __init__(
        self,
        real_path: str,
        mode: str = "rb",
        buffering: int = -1,
        encoding: str | None = None,
        atomic: bool = True,
        on_commit: Callable[[], None] | None = None,
        name: str | None = None,
    ) -> None:
        check_mode(mode)
        self._real_path, self._mode, self._on_commit = real_path, mode, on_commit
        self._name = real_path if name is None else name
        self._tmp: str | None = None
        text_encoding = None if "b" in mode else (encoding or "utf-8")
        if mode.startswith("r"):
            self._fh: IO[Any] = open(real_path, mode, buffering, encoding=text_encoding)  # noqa: SIM115
            return
        os.makedirs(os.path.dirname(real_path) or ".", exist_ok=True)
        if not atomic:
            self._fh = open(real_path, mode, buffering, encoding=text_encoding)  # noqa: SIM115
            return
        fd, self._tmp = temp_file_beside(real_path)
        os.close(fd)
        if mode.startswith("a") and os.path.exists(real_path):
            shutil.copyfile(real_path, self._tmp)
        self._fh = open(self._tmp, mode, buffering, encoding=text_encoding)  # noqa: SIM115

    @property
    def name(self) -> str:
        """The key or path given to ``open`` (the file's path when opened directly)."""
        return self._name

    @property
    def real_path(self) -> str:
        """The file's path on the local file system."""
        return self._real_path

    @property
    def mode(self) -> str:
        return self._mode

    def readable(self) -> bool:
        return self._fh.readable()

    def writable(self) -> bool:
        return self._fh.writable()

    def seekable(self) -> bool:
        return self._fh.seekable()

    def fileno(self) -> int:
        return self._fh.fileno()

    def read(self, size: int = -1) -> Any:
        """Read up to ``size`` bytes (characters in text mode); all that is left when ``size`` is -1."""
        return self._fh.read(size)

    def readline(self, size: int | None = -1) -> Any:
        return self._fh.readline(-1 if size is None else size)

    def readlines(self, hint: int = -1) -> list[Any]:
        return self._fh.readlines(hint)

    def readinto(self, buffer: Any) -> int:
        """Read bytes into the writable ``buffer``; returns how many were read (0 at the end)."""
        return self._fh.readinto(buffer)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._fh)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def write(self, data: Any) -> int:
        """Write ``data`` (bytes, or str in text mode); returns how much was written."""
        return self._fh.write(data)

    def writelines(self, lines: Any) -> None:
        self._fh.writelines(lines)

    def flush(self) -> None:
        if not self.closed and not self._fh.closed:
            self._fh.flush()

    def truncate(self, size: int | None = None) -> int:
        return self._fh.truncate(size)

    def close(self) -> None:
        """Close; for an atomic write, rename the temp file over the target."""
        if self.closed:
            return
        try:
            self._fh.close()
            if self._tmp is not None:
                os.replace(self._tmp, self._real_path)
                self._tmp = None
            if self._on_commit is not None and self._mode[0] in "wa":
                self._on_commit()
        finally:
            self._discard_tmp()
            super().close()

    def abort(self) -> None:
        """Discard an atomic write: the target is left as it was."""
        if not self.closed:
            with contextlib.suppress(Exception):
                self._fh.close()
            self._discard_tmp()
            super().close()

    def _discard_tmp(self) -> None:
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and self._tmp is not None:
            self.abort()
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<PosixFile {self._real_path!r} mode={self._mode!r}>"
