"""A zarr 3 store over any manystore URL or client: :class:`LazyZarrStore`.

The store keeps a URL (``msc://profile/data.zarr``, ``s3://bucket/x.zarr``, ``gs://``,
``az://``, a local path) or a :class:`~manystore.StorageClient` plus a key prefix. With a URL
the client is resolved on first use ("lazy"), so building a store costs nothing and a
pickled store (dask, multiprocessing) carries only the URL. Every call runs the client's
blocking operations on a shared thread pool (``msc_max_workers`` threads, default
``MSC_MAX_WORKERS`` or 16), so zarr's concurrent chunk requests, :meth:`get_partial_values`
and the multi-key fetch ``_get_many`` overlap on the network. Byte ranges are ranged reads:
a partial read of a sharded array fetches only the bytes it needs.

zarr is imported when this module is; ``import manystore`` never imports it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from ..types import Range

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest

    from ..client import StorageClient

__all__ = ["LazyZarrStore"]

_T = TypeVar("_T")
_DEFAULT_WORKERS_ENV = "MSC_MAX_WORKERS"
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _workers(requested: int | None) -> int:
    """The thread count: ``requested``, else ``$MSC_MAX_WORKERS``, else 16.

    Raises:
        ValueError: Not a positive integer.
    """
    if requested is None:
        raw = os.environ.get(_DEFAULT_WORKERS_ENV, "16")
        if not raw.strip().isdigit() or int(raw) < 1:
            raise ValueError(f"{_DEFAULT_WORKERS_ENV} must be a positive integer, got {raw!r}")
        return int(raw)
    if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
        raise ValueError(f"msc_max_workers must be a positive integer or None, got {requested!r}")
    return requested


def _pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool per thread count (stores are cheap; their threads are not)."""
    pool = _pools.get(workers)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(workers)
            if pool is None:
                pool = ThreadPoolExecutor(workers, thread_name_prefix="manystore-zarr")
                _pools[workers] = pool
    return pool


def _after_fork() -> None:
    _pools.clear()  # a child has none of the parent's threads


os.register_at_fork(after_in_child=_after_fork)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


class LazyZarrStore(Store):
    """A zarr 3 :class:`zarr.abc.store.Store` whose keys are objects under a manystore prefix.

    Args:
        storage_client: A :class:`~manystore.StorageClient`, or a URL (``msc://p/a.zarr``,
            ``s3://b/a.zarr``, a local path...) resolved to one on first use.
        prefix: Key prefix under the client's root (joined after the URL's own path).
        msc_max_workers: Threads running the client's calls (default ``$MSC_MAX_WORKERS``
            or 16); bounds how many requests :meth:`get_partial_values` and multi-key
            fetches have in flight.
        read_only: Refuse writes and deletes (``ValueError`` from zarr's check).

    Raises:
        TypeError: ``storage_client`` is neither a client nor a URL/path.
        ValueError: ``msc_max_workers`` is not a positive integer.

    Example:
        >>> store = LazyZarrStore("msc://train/arrays/a.zarr")  # doctest: +SKIP
        >>> arr = zarr.open_array(store, mode="r")  # doctest: +SKIP
    """

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    def __init__(
        self,
        storage_client: StorageClient | str | os.PathLike[str],
        prefix: str = "",
        msc_max_workers: int | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(read_only=read_only)
        from ..client import StorageClient

        if isinstance(storage_client, os.PathLike):
            storage_client = os.fspath(storage_client)
        if not isinstance(storage_client, (StorageClient, str)):
            raise TypeError(
                f"LazyZarrStore needs a StorageClient or a URL, got {type(storage_client).__name__}"
            )
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        self._url: str | None = storage_client if isinstance(storage_client, str) else None
        self._client: StorageClient | None = (
            storage_client if isinstance(storage_client, StorageClient) else None
        )
        self._extra_prefix = prefix.strip("/")
        self._prefix: str | None = self._extra_prefix if self._client is not None else None
        self._max_workers = msc_max_workers
        self._workers = _workers(msc_max_workers)

    # ------------------------------------------------------------ resolution
    @property
    def client(self) -> StorageClient:
        """The storage client (resolved from the URL on first use)."""
        if self._client is None:
            self._resolve()
        assert self._client is not None
        return self._client

    @property
    def prefix(self) -> str:
        """The key prefix of the store's root within :attr:`client` (no trailing ``/``)."""
        if self._prefix is None:
            self._resolve()
        assert self._prefix is not None
        return self._prefix

    def _resolve(self) -> None:
        from ..shortcuts import resolve_storage_client

        assert self._url is not None
        client, path = resolve_storage_client(self._url)
        self._prefix = "/".join(p for p in (path.strip("/"), self._extra_prefix) if p)
        self._client = client

    def _key(self, key: str) -> str:
        return _join(self.prefix, key)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(_pool(self._workers), fn, *args)

    # ------------------------------------------------------------- identity
    def _identity(self) -> tuple[Any, ...]:
        return (self.client.profile, self.prefix, self.read_only)

    def __eq__(self, value: object) -> bool:
        if not isinstance(value, LazyZarrStore):
            return False
        if self._url is not None and self._url == value._url:
            return (self._extra_prefix, self.read_only) == (value._extra_prefix, value.read_only)
        return self._identity() == value._identity()

    def __hash__(self) -> int:
        return hash(self._identity())  # consistent with ==, which compares places

    def __repr__(self) -> str:
        where = self._url if self._url is not None else f"{self.client.url_prefix}"
        return f"LazyZarrStore({where!r}, prefix={self._extra_prefix!r}, read_only={self.read_only})"

    def __str__(self) -> str:
        if self._url is not None:
            return _join(self._url.rstrip("/"), self._extra_prefix)
        return self.client.url_prefix + self.prefix

    def __getstate__(self) -> dict[str, Any]:
        # A URL store pickles as its URL (the client is resolved again on the other side); a
        # client store carries the client, which pickles as its configuration.
        state = self.__dict__.copy()
        if self._url is not None:
            state["_client"] = None
            state["_prefix"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def with_read_only(self, read_only: bool = False) -> LazyZarrStore:
        """The same location with another ``read_only`` setting (not opened).

        Args:
            read_only: The new store's setting.
        """
        source: Any = self._url if self._url is not None else self._client
        return type(self)(source, self._extra_prefix, self._max_workers, read_only=read_only)

    # ----------------------------------------------------------------- reads
    def _read(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        client, path = self.client, self._key(key)
        try:
            if byte_range is None:
                return client.read(path)
            if isinstance(byte_range, RangeByteRequest):
                size = max(0, byte_range.end - byte_range.start)
                return client.read(path, byte_range=Range(byte_range.start, size))
            if isinstance(byte_range, OffsetByteRequest):
                total = client.info(path).content_length
                start = min(byte_range.offset, total)
                return client.read(path, byte_range=Range(start, total - start))
            if isinstance(byte_range, SuffixByteRequest):
                total = client.info(path).content_length
                start = max(0, total - byte_range.suffix)
                return client.read(path, byte_range=Range(start, total - start))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        raise TypeError(
            f"byte_range must be a RangeByteRequest, OffsetByteRequest or SuffixByteRequest, got {byte_range!r}"
        )

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The bytes at ``key`` (or ``byte_range`` of them); None when there is no such key.

        Args:
            key: Key relative to the store's root.
            prototype: zarr's buffer prototype for the result.
            byte_range: A ``RangeByteRequest``, ``OffsetByteRequest`` or ``SuffixByteRequest``
                (offset and suffix requests first read the object's size: one HEAD).
        """
        data = await self._run(self._read, key, byte_range)
        return None if data is None else prototype.buffer.from_bytes(data)

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Synchronous :meth:`get` (zarr's ``SupportsGetSync``), on the calling thread."""
        data = self._read(key, byte_range)
        proto = prototype if prototype is not None else default_buffer_prototype()
        return None if data is None else proto.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Many ``(key, byte_range)`` reads at once, ``msc_max_workers`` in flight; results in order.

        Args:
            prototype: zarr's buffer prototype for the results.
            key_ranges: ``(key, byte_range or None)`` pairs.
        """
        return list(await asyncio.gather(*(self.get(key, prototype, rng) for key, rng in key_ranges)))

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        """Concurrent multi-key fetch: yields ``(key, buffer)`` as each read completes."""

        async def one(key: str, proto: BufferPrototype, rng: ByteRequest | None) -> tuple[str, Buffer | None]:
            return key, await self.get(key, proto, rng)

        for done in asyncio.as_completed([one(*request) for request in requests]):
            yield await done

    async def exists(self, key: str) -> bool:
        """True if an object exists at ``key``."""
        return await self._run(self.client.is_file, self._key(key))

    async def getsize(self, key: str) -> int:
        """The size in bytes of the object at ``key`` (one HEAD).

        Raises:
            FileNotFoundError: No object at ``key``.
        """
        meta = await self._run(self.client.info, self._key(key))
        return int(meta.content_length)

    # ---------------------------------------------------------------- writes
    def _write(self, key: str, value: Buffer) -> None:
        if not isinstance(value, Buffer):
            raise TypeError(f"LazyZarrStore.set expects a zarr Buffer, got {type(value).__name__}")
        self.client.write(self._key(key), value.to_bytes())

    async def set(self, key: str, value: Buffer) -> None:
        """Store ``value`` at ``key`` (one atomic write).

        Raises:
            ValueError: The store is read-only.
            TypeError: ``value`` is not a zarr ``Buffer``.
        """
        self._check_writable()
        await self._run(self._write, key, value)

    def set_sync(self, key: str, value: Buffer) -> None:
        """Synchronous :meth:`set` (zarr's ``SupportsSetSync``)."""
        self._check_writable()
        self._write(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Store ``value`` at ``key`` unless an object is there (checked, then written)."""
        self._check_writable()
        if not await self.exists(key):
            await self._run(self._write, key, value)

    def _remove(self, key: str) -> None:
        try:
            self.client.delete(self._key(key))
        except FileNotFoundError:
            pass  # zarr: deleting a missing key is not an error

    async def delete(self, key: str) -> None:
        """Remove ``key`` (a missing key is not an error).

        Raises:
            ValueError: The store is read-only.
        """
        self._check_writable()
        await self._run(self._remove, key)

    def delete_sync(self, key: str) -> None:
        """Synchronous :meth:`delete` (zarr's ``SupportsDeleteSync``)."""
        self._check_writable()
        self._remove(key)

    async def delete_dir(self, prefix: str) -> None:
        """Remove every key under ``prefix`` (concurrently).

        Raises:
            ValueError: The store is read-only.
        """
        self._check_writable()
        keys = [key async for key in self.list_prefix(prefix.rstrip("/") + "/" if prefix else "")]
        await asyncio.gather(*(self._run(self._remove, key) for key in keys))

    # --------------------------------------------------------------- listing
    def _list_keys(self, below: str, directories: bool) -> list[str]:
        root = self.prefix + "/" if self.prefix else ""
        out = []
        for meta in self.client.list(root + below, include_directories=directories):
            key = meta.key
            if key.startswith(root):
                key = key[len(root) :]
            if directories:
                out.append(key.rstrip("/").rpartition("/")[2])
            else:
                out.append(key)
        return out

    async def list(self) -> AsyncIterator[str]:
        """Every key in the store."""
        for key in await self._run(self._list_keys, "", False):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Every key starting with ``prefix`` (keys relative to the store's root)."""
        for key in await self._run(self._list_keys, prefix, False):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """Names of the keys and sub-directories directly under ``prefix`` (no trailing ``/``)."""
        below = prefix.strip("/") + "/" if prefix.strip("/") else ""
        for name in await self._run(self._list_keys, below, True):
            yield name
