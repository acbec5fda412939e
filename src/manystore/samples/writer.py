"""Writing samples as WebDataset tar shards, streamed straight to the store.

Each shard is written by the archive layer's :class:`~manystore.batch._archwrite.ArchiveWriter`:
the tar streams into ``client.open(key, "wb")`` (a multipart upload on S3 and GCS, a temp
file renamed on close for a local directory), so a shard is visible only once complete,
and an exception aborts it (nothing stored). Each shard also gets the archive layer's
sidecar member index ``<shard>.idx``, so ``manystore.batch`` reads any sample with
one ranged GET. A sample is one member ``{key}.msgpack`` (atdata's and WebDataset's
layout).

Shard names come from a pattern with one shard-number placeholder: printf style
(``msc://p/train-%06d.tar``, as webdataset's ``ShardWriter``) or format style
(``msc://p/train-{shard:06d}.tar``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._codec import encode_member

if TYPE_CHECKING:
    from ..batch._archwrite import ArchiveWriter
    from ..client import StorageClient

__all__ = ["ShardWriter", "write_samples"]

_PRINTF = re.compile(r"%(0?\d*)d")
_BRACE = re.compile(r"\{(?:shard)?(:0?\d*d?)?\}")
_BLOCK = 512
_RECORD = 20 * _BLOCK  # tarfile pads a closed archive to a multiple of this
DEFAULT_MAXCOUNT = 100_000
DEFAULT_MAXSIZE = 3_000_000_000


def _padded(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def _member_cost(name: str, size: int) -> int:
    """Bytes a member takes in a PAX tar (header(s), data, padding)."""
    raw = name.encode("utf-8")
    header = _BLOCK if name.isascii() and len(raw) <= 100 else 2 * _BLOCK + _padded(len(raw) + 24)
    return header + _padded(size)


def _closed_size(used: int) -> int:
    """The tar's object size once closed: two zero blocks, then padding to a record."""
    return -(-(used + 2 * _BLOCK) // _RECORD) * _RECORD


def _shard_formatter(pattern: str) -> Callable[[int], str] | None:
    """A function shard number -> name, or None when ``pattern`` has no placeholder.

    Raises:
        ValueError: More than one placeholder.
    """
    printf, brace = _PRINTF.findall(pattern), _BRACE.findall(pattern)
    if len(printf) + len(brace) > 1:
        raise ValueError(
            f"shard pattern {pattern!r}: expected one shard-number placeholder (%06d or {{shard:06d}}), "
            f"found {len(printf) + len(brace)}"
        )
    if printf:
        return lambda n: _PRINTF.sub(lambda m: format(n, (m.group(1) or "") + "d"), pattern, count=1)
    if brace:
        return lambda n: _BRACE.sub(
            lambda m: format(n, (m.group(1) or ":d")[1:].rstrip("d") + "d"), pattern, count=1
        )
    return None


class ShardWriter:
    """Write samples into numbered tar shards, each streamed to the store and indexed.

    A new shard starts before a sample that would take the current one past ``maxcount``
    samples or ``maxsize`` bytes (the tar object's size, headers and end padding
    included; a single sample larger than ``maxsize`` gets a shard of its own).

    Args:
        url_pattern: Shard URL (or key, with ``client``) with one placeholder:
            ``msc://p/train-%06d.tar`` or ``msc://p/train-{shard:06d}.tar``. Without a
            placeholder everything goes to one shard, and ``maxcount``/``maxsize`` must
            be left unset.
        maxcount: Samples per shard at most (default 100,000).
        maxsize: Bytes per shard at most (default 3e9).
        start_shard: Number of the first shard.
        client: Write through this client; ``url_pattern`` is then a key in its profile.
        post: Called with each shard's URL once it is complete (after its index).

    Raises:
        ValueError: A bad pattern, or a limit below 1.

    Example:
        >>> with ShardWriter("msc://data/train-%06d.tar", maxcount=10_000) as sink:
        ...     for sample in samples:
        ...         sink.write(sample)
        >>> sink.urls
    """

    def __init__(
        self,
        url_pattern: str,
        maxcount: int | None = None,
        maxsize: int | float | None = None,
        *,
        start_shard: int = 0,
        client: StorageClient | None = None,
        post: Callable[[str], Any] | None = None,
    ) -> None:
        for label, limit in (("maxcount", maxcount), ("maxsize", maxsize)):
            if limit is not None and limit < 1:
                raise ValueError(f"{label} must be >= 1, got {limit!r}")
        self._format = _shard_formatter(url_pattern)
        if self._format is None and (maxcount is not None or maxsize is not None):
            raise ValueError(
                f"shard pattern {url_pattern!r} has no shard-number placeholder (%06d or {{shard:06d}}), "
                "so it names one shard: maxcount/maxsize cannot split it"
            )
        self.url_pattern = url_pattern
        self.maxcount = int(maxcount) if maxcount is not None else DEFAULT_MAXCOUNT
        self.maxsize = int(maxsize) if maxsize is not None else DEFAULT_MAXSIZE
        self._client = client
        self._post = post
        self.shard = start_shard
        #: URLs of the complete shards, in order.
        self.urls: list[str] = []
        #: Samples in the current shard.
        self.count = 0
        #: Samples written in all.
        self.total = 0
        self._used = 0
        self._writer: ArchiveWriter | None = None
        self._url: str | None = None
        self._written: list[tuple[StorageClient, str]] = []
        self._closed = False

    def _target(self, n: int) -> tuple[StorageClient, str, str]:
        name = self.url_pattern if self._format is None else self._format(n)
        if self._client is not None:
            return self._client, name, self._client.url_prefix + name
        from ..shortcuts import resolve_storage_client

        client, key = resolve_storage_client(name)
        return client, key, name

    def _open(self) -> ArchiveWriter:
        from ..batch._archwrite import ArchiveWriter

        if self._format is None and self.urls:
            raise ValueError(f"shard pattern {self.url_pattern!r} names one shard, which is already complete")
        client, key, url = self._target(self.shard)
        self._writer = ArchiveWriter(client, key, "tar")
        self._url, self.count, self._used = url, 0, 0
        return self._writer

    def _finish(self) -> None:
        writer, url = self._writer, self._url
        self._writer = self._url = None
        if writer is None or url is None:
            return
        writer.close()
        self.urls.append(url)
        self._written.append((writer.client, writer.key))
        self.shard += 1
        if self._post is not None:
            self._post(url)

    def write(self, sample: Any, key: str | None = None) -> str:
        """Append a sample (a packable sample, a DictSample, or ``{"__key__", "msgpack"}``).

        Args:
            sample: The sample.
            key: Its key (default: the ``__key__`` of a dict, else a running number
                ``%09d`` of all samples this writer wrote).

        Returns:
            The key used.

        Raises:
            ValueError: The writer is closed, or a bad key.
            SampleTypeError: A field no longer matches its type.
        """
        if self._closed:
            raise ValueError(f"ShardWriter({self.url_pattern!r}) is closed")
        if isinstance(sample, dict) and "msgpack" in sample:
            key = key or str(sample.get("__key__") or f"{self.total:09d}")
            name, data = encode_member(_Raw(sample["msgpack"]), key)
        else:
            key = key or f"{self.total:09d}"
            name, data = encode_member(sample, key)
        cost = _member_cost(name, len(data))
        writer = self._writer
        if (
            writer is not None
            and self.count
            and (self.count >= self.maxcount or _closed_size(self._used + cost) > self.maxsize)
        ):
            self._finish()
            writer = None
        if writer is None:
            writer = self._open()
        writer.add(name, data)
        self._used += cost
        self.count += 1
        self.total += 1
        return key

    def close(self) -> list[str]:
        """Complete the current shard; returns the URLs of all shards written."""
        if not self._closed:
            self._closed = True
            self._finish()
        return list(self.urls)

    def abort(self) -> None:
        """Drop the shard being written (nothing of it is stored); complete shards stay."""
        self._closed = True
        writer, self._writer, self._url = self._writer, None, None
        if writer is not None:
            writer.abort()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class _Raw:
    """Pre-packed msgpack bytes with the ``packed`` property :func:`encode_member` reads."""

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"a WebDataset dict's 'msgpack' must be bytes, got {type(data).__name__}")
        self.packed = bytes(data)


def write_samples(
    samples: Iterable[Any],
    url_pattern: str,
    maxcount: int | None = None,
    maxsize: int | float | None = None,
    *,
    start_shard: int = 0,
    client: StorageClient | None = None,
) -> list[str]:
    """Write ``samples`` as tar shards (see :class:`ShardWriter`); all or nothing.

    If writing fails (a sample of the wrong type, a generator that raises, a store
    error), the shard in progress is aborted and the shards already completed are
    deleted (with their indexes) before the error propagates.

    Args:
        samples: Packable samples (or DictSamples, or WebDataset dicts).
        url_pattern: See :class:`ShardWriter`.
        maxcount: Samples per shard at most.
        maxsize: Bytes per shard at most.
        start_shard: Number of the first shard.
        client: Write through this client (``url_pattern`` is then a key).

    Returns:
        The shard URLs, in order (empty if ``samples`` was empty).
    """
    sink = ShardWriter(url_pattern, maxcount, maxsize, start_shard=start_shard, client=client)
    try:
        with sink:
            for sample in samples:
                sink.write(sample)
    except BaseException:
        _remove(sink)
        raise
    return list(sink.urls)


def _remove(sink: ShardWriter) -> None:
    from ..batch._archindex import SIDECAR_SUFFIX

    for client, key in sink._written:
        for k in (key, key + SIDECAR_SUFFIX):
            try:
                client.delete(k)
            except FileNotFoundError:
                pass
