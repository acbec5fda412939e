"""Where a dataset's shards come from: the :class:`DataSource` protocol and two sources on any profile.

A source names its shards (:meth:`DataSource.list_shards`) and opens one as a binary
stream (:meth:`DataSource.open_shard`); :meth:`DataSource.shards` yields ``(shard id,
stream)`` pairs, one shard open at a time (atdata's protocol). :class:`URLSource` takes
a URL, a brace pattern (``msc://p/train-{000000..000099}.tar``) or a list of them;
:class:`StoreSource` lists a prefix of any profile. Both read through the profile's
:class:`~manystore.client.StorageClient`: a shard stream is a sequence of ranged GETs
pinned to the shard's ETag, fetched ahead on a thread and resumed after a broken
connection (:mod:`manystore.samples._tarstream`), so any DataSource of theirs is also
readable at a sample offset by the loader.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["DataSource", "StoreSource", "URLSource", "expand_urls"]


@runtime_checkable
class DataSource(Protocol):
    """Anything that names shards and opens them (atdata's ``DataSource``)."""

    @property
    def shards(self) -> Iterator[tuple[str, IO[bytes]]]:
        """``(shard id, binary stream)`` pairs, one shard open at a time, in order."""
        ...

    def list_shards(self) -> list[str]:
        """The shard ids, in order, without opening any."""
        ...

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """A binary stream over shard ``shard_id`` (one of :meth:`list_shards`).

        Raises:
            KeyError: ``shard_id`` is not one of this source's shards.
        """
        ...


def expand_urls(urls: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """The shard URLs a URL, a brace pattern or a list of them stand for, in order.

    Brace groups follow :class:`manystore.batch.templates.ObjectTemplate` (``{000..099}``,
    ``{a,b}``, several groups); a malformed pattern is an error, never an empty list.

    Raises:
        ValueError: A pattern is malformed, or the result is empty.
        TypeError: ``urls`` is not a string, path or sequence of them.
    """
    from ..batch.templates import expand_template

    items: list[str | os.PathLike[str]]
    if isinstance(urls, (str, os.PathLike)):
        items = [urls]
    elif isinstance(urls, Sequence):
        items = list(urls)
    else:
        raise TypeError(f"urls={urls!r}: expected a URL, a brace pattern or a list of them")
    out: list[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"shard URL {item!r}: expected a str or path")
        text = os.fspath(item)
        out.extend(expand_template(text) if "{" in text or "}" in text else [text])
    if not out:
        raise ValueError(f"urls={urls!r}: expected at least one shard URL")
    return out


class _StoreShards:
    """Shared behaviour of the sources that read shards through storage clients."""

    _urls: list[str]

    def __init__(self, *, readahead: int = 1, chunk_size: int = 4 << 20, max_resume: int = 5) -> None:
        if not isinstance(readahead, int) or readahead < 0:
            raise ValueError(f"readahead={readahead!r}: expected an int >= 0")
        if not isinstance(chunk_size, int) or chunk_size < 512:
            raise ValueError(f"chunk_size={chunk_size!r}: expected an int >= 512 bytes")
        if not isinstance(max_resume, int) or max_resume < 0:
            raise ValueError(f"max_resume={max_resume!r}: expected an int >= 0")
        self.readahead, self.chunk_size, self.max_resume = readahead, chunk_size, max_resume

    def list_shards(self) -> list[str]:
        """The shard URLs, in order."""
        return list(self._urls)

    @property
    def shards(self) -> Iterator[tuple[str, IO[bytes]]]:
        """``(URL, stream)`` for each shard, opened one at a time."""
        for url in self._urls:
            stream = self.open_shard(url)
            try:
                yield url, stream
            finally:
                stream.close()

    def locate(self, shard_id: str) -> tuple[StorageClient, str]:
        """The client and key of shard ``shard_id``.

        Raises:
            KeyError: Not one of this source's shards.
        """
        if shard_id not in self._known():
            raise KeyError(f"shard {shard_id!r}: not one of this source's {len(self._urls)} shards")
        from ..shortcuts import resolve_storage_client

        return resolve_storage_client(shard_id)

    def _known(self) -> set[str]:
        known = getattr(self, "_known_set", None)
        if known is None or len(known) != len(self._urls):
            known = self._known_set = set(self._urls)
        return known

    def open_shard(self, shard_id: str, offset: int = 0, etag: str | None = None) -> IO[bytes]:
        """A resuming stream over shard ``shard_id`` from byte ``offset``, pinned to ``etag``.

        Args:
            shard_id: One of :meth:`list_shards`.
            offset: First byte to read.
            etag: The version to read (default: the current one, found with one HEAD).

        Raises:
            KeyError: Not one of this source's shards.
            FileNotFoundError: The shard does not exist.
        """
        from ._tarstream import ShardStream

        client, key = self.locate(shard_id)
        return ShardStream(  # type: ignore[return-value]
            client,
            key,
            shard_id,
            offset=offset,
            etag=etag,
            chunk_size=self.chunk_size,
            readahead=self.readahead,
            max_resume=self.max_resume,
        )


class URLSource(_StoreShards):
    """Shards named by URL: one, a brace pattern, or a list (atdata's ``URLSource``).

    Args:
        url: ``msc://p/train-{000000..000099}.tar``, ``s3://b/x.tar``, a local path, or a
            list of them.
        readahead: Chunks fetched ahead of the reader per open shard (0: none).
        chunk_size: Bytes per ranged GET.
        max_resume: Times one shard stream may resume after a broken connection.

    Raises:
        ValueError: A brace pattern is malformed or names nothing.
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        readahead: int = 1,
        chunk_size: int = 4 << 20,
        max_resume: int = 5,
    ) -> None:
        super().__init__(readahead=readahead, chunk_size=chunk_size, max_resume=max_resume)
        self.url = url if isinstance(url, str) else None
        self._urls = expand_urls(url)

    def __repr__(self) -> str:
        return f"URLSource({self.url or self._urls!r})"


class StoreSource(_StoreShards):
    """The shards under a prefix of any profile, listed once, in key order.

    Args:
        prefix: A URL prefix (``msc://p/train/``, ``s3://b/data/``, a local directory).
        pattern: Glob the shard's name (the part after ``prefix``) must match; sidecar
            indexes (``*.idx``) never count.
        readahead: As :class:`URLSource`.
        chunk_size: As :class:`URLSource`.
        max_resume: As :class:`URLSource`.

    Raises:
        FileNotFoundError: Nothing under ``prefix`` matches ``pattern``.
    """

    def __init__(
        self,
        prefix: str | os.PathLike[str],
        pattern: str = "*.tar",
        *,
        readahead: int = 1,
        chunk_size: int = 4 << 20,
        max_resume: int = 5,
    ) -> None:
        super().__init__(readahead=readahead, chunk_size=chunk_size, max_resume=max_resume)
        from ..shortcuts import resolve_storage_client

        self.prefix, self.pattern = os.fspath(prefix), pattern
        client, key = resolve_storage_client(self.prefix)
        base = self.prefix[: len(self.prefix) - len(key)] if key and self.prefix.endswith(key) else None
        urls: list[str] = []
        for meta in client.list(key):
            name = meta.key[len(key) :] if meta.key.startswith(key) else meta.key
            if meta.key.endswith(".idx") or not fnmatch.fnmatchcase(name, pattern):
                continue
            urls.append(base + meta.key if base is not None else client.url_prefix + meta.key)
        if not urls:
            raise FileNotFoundError(f"{self.prefix!r}: no shard matches pattern {pattern!r}")
        self._urls = urls

    def __repr__(self) -> str:
        return f"StoreSource({self.prefix!r}, pattern={self.pattern!r})"
