"""``Object.get_reader(archive_config=...)``: an :class:`ObjectReader` over what an archive read returns.

With ``archive_config.archpath`` the reader's content is that member's bytes (one ranged
GET once the archive's index is known, see :mod:`manystore.batch.archive`); with
``regex``/``mode`` it is a tar of the matching members, streamed member by member (as an
AIStore GET with an archive config returns). ``read_all``, iteration in ``chunk_size``
chunks, ``as_file`` / ``raw`` and ``head`` / ``attributes`` (those of the archive object)
work as for a plain object. ``byte_range`` selects bytes of that content.

``as_file`` resumes a broken read: it starts the archive read again, checks with one HEAD
that the archive still has the ETag it had when the reader began
(:class:`~manystore.errors.PreconditionFailedError` if not) and skips the bytes already
delivered — so no byte is duplicated, dropped, or taken from another version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import PreconditionFailedError
from .archive import ArchiveConfig, extract_stream
from .reader import ObjectReader, _Source, parse_byte_range

if TYPE_CHECKING:
    from ..client import StorageClient
    from ..types import ObjectMetadata

__all__ = ["ArchiveReader", "as_archive_config"]


def as_archive_config(config: Any) -> ArchiveConfig:
    """``config`` as manystore's :class:`ArchiveConfig` (also from the AIStore SDK's own class).

    Raises:
        TypeError: ``config`` has no ``archpath``/``regex``/``mode`` attributes.
        ValueError: Neither ``archpath`` nor ``regex`` is set, or an invalid combination.
    """
    if isinstance(config, ArchiveConfig):
        result = config
    elif all(hasattr(config, name) for name in ("archpath", "regex", "mode")):
        result = ArchiveConfig(archpath=config.archpath or "", regex=config.regex or "", mode=config.mode)
    else:
        raise TypeError(
            f"archive_config of type {type(config).__name__}: expected an ArchiveConfig(archpath=... | regex=..., mode=...)"
        )
    if not result.archpath and not result.regex:
        raise ValueError(
            "archive_config: expected archpath= (one member) or regex= with mode= (matching members)"
        )
    return result


def _slices(chunks: Iterator[bytes], start: int, end: int | None, size: int) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of the concatenated ``chunks``, re-cut into pieces of ``size``."""
    pos = 0
    pending = bytearray()
    for chunk in chunks:
        lo, hi = pos, pos + len(chunk)
        pos = hi
        if hi <= start:
            continue
        piece = memoryview(chunk)[
            max(0, start - lo) : len(chunk) if end is None else max(0, min(hi, end) - lo)
        ]
        pending += piece
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
        if end is not None and pos >= end:
            break
    if pending:
        yield bytes(pending)


class _ArchiveSource(_Source):
    """The archive read's content ``[start, end)`` from one archive version, in chunks."""

    def __init__(
        self,
        client: StorageClient,
        key: str,
        url: str,
        meta: ObjectMetadata,
        config: ArchiveConfig,
        byte_range: str | None,
        chunk: int,
    ) -> None:
        super().__init__(client, key, meta, 0, -1, chunk, 1)
        self.url, self.config, self.byte_range = url, config, byte_range
        self._first = True
        self._bounds: tuple[int, int | None] | None = None

    def _check_version(self) -> None:
        now = self.client.info(self.key)
        if self.meta.etag and now.etag != self.meta.etag:
            raise PreconditionFailedError(
                f"{self.url}: the archive changed (ETag {self.meta.etag!r} -> {now.etag!r}) while it was being read"
            )

    def bounds(self) -> tuple[int, int | None]:
        """``(start, end)`` of the content to deliver (the end may be unknown: None)."""
        if self._bounds is None:
            if self.byte_range is None:
                self._bounds = (0, None)
            else:
                # a member's size comes with its bytes: read the content once to bound the range
                total = sum(len(c) for c in extract_stream(self.client, self.key, self.config))
                self._bounds = parse_byte_range(self.byte_range, total)
        return self._bounds

    def chunks(self, offset: int) -> Iterator[bytes]:
        """Chunks from ``offset`` (of the whole content) to the end, in order."""
        if not self._first:
            self._check_version()
        self._first = False
        start, end = self.bounds()
        stream = extract_stream(self.client, self.key, self.config)
        yield from _slices(stream, max(start, offset), end, self.chunk)


class ArchiveReader(ObjectReader):
    """An :class:`ObjectReader` over one member, or a tar of the matching members, of an archive object.

    Args:
        client: The profile's client.
        key: The archive object's key.
        url: Its URL (for messages).
        archive_config: Which member(s) (see :class:`~manystore.batch.ArchiveConfig`).
        byte_range: RFC 7233 single range of the content (the member's bytes, or the tar).
        chunk_size: Bytes per iterated chunk.
    """

    def __init__(
        self,
        client: StorageClient,
        key: str,
        url: str,
        archive_config: ArchiveConfig,
        byte_range: str | None = None,
        chunk_size: int = 8 << 20,
    ) -> None:
        super().__init__(client, key, url, byte_range, chunk_size, 1)
        self._config = archive_config

    @property
    def archive_config(self) -> ArchiveConfig:
        """The member selection."""
        return self._config

    def _source(self, chunk_size: int | None = None) -> _Source:
        meta = self._client.info(self._key)
        self._meta = meta
        source = _ArchiveSource(
            self._client,
            self._key,
            self._url,
            meta,
            self._config,
            self._byte_range,
            chunk_size or self._chunk_size,
        )
        source.start = source.bounds()[0]
        return source

    def read_all(self) -> bytes:
        """The member's bytes, or the tar of the matching members (or ``byte_range`` of it).

        Raises:
            ArchiveMemberNotFoundError: ``archpath`` names no member (a :class:`FileNotFoundError`).
            FileNotFoundError: The archive object does not exist.
            ValueError: Not an archive of the format its name says, or a bad ``byte_range``.
        """
        data = b"".join(extract_stream(self._client, self._key, self._config))
        if self._byte_range is None:
            return data
        start, end = parse_byte_range(self._byte_range, len(data))
        return data[start:end]

    def __iter__(self) -> Iterator[bytes]:
        """The content in chunks of ``chunk_size`` bytes (the last may be shorter)."""
        source = self._source()
        yield from source.chunks(source.start)
