"""Single-object I/O of one profile: the narrow interface file objects and the client build on.

:class:`ObjectIO` holds a profile's storage provider, metadata provider, retry
policy and read cache, and offers the handful of operations that
:class:`~manystore.file.ObjectFile`, the sync engine and
:class:`~manystore.client.StorageClient` share: metadata (``head``), ranged reads
pinned to an ETag (``get_range``, ``fetch_block``), reads through the cache,
downloads, and the two ways of storing bytes (``open_writer`` for streaming,
``store_spool`` for one PUT). It sits below the client and imports nothing above
the providers and the cache.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from ._contract import as_resolved
from .errors import ObjectNotFoundError, ReadOnlyError, RetryableError
from .providers.base import BaseStorageProvider, ObjectWriter
from .retry import call_with_retry
from .types import (
    MetadataProvider,
    ObjectMetadata,
    Range,
    ResolvedPathState,
    RetryConfig,
    SourceVersionCheckMode,
    StorageProvider,
)
from .utils import normalize_key

if TYPE_CHECKING:
    from .caching.cache_config import CacheConfig
    from .caching.cache_manager import CacheManager

__all__ = ["READ_BLOCK_SIZE", "ObjectIO"]

#: Bytes fetched per ranged request when streaming a large object.
READ_BLOCK_SIZE = 8 << 20


class ObjectIO:
    """Retried single-object operations of one profile (see the module docs).

    Args:
        storage_provider: The profile's storage provider.
        metadata_provider: Its metadata provider (a manifest), or None.
        retry_config: The retry policy applied to every request.
        profile: The profile name (in error messages).
        url_prefix: The URL prefix of the profile's keys (in error messages).
        cache_config: The read cache's configuration, or None for no cache.
        cache_manager: A cache manager to use instead of building one.
    """

    def __init__(
        self,
        storage_provider: StorageProvider,
        metadata_provider: MetadataProvider | None,
        retry_config: RetryConfig | None,
        profile: str,
        url_prefix: str,
        cache_config: CacheConfig | None = None,
        cache_manager: Any = None,
    ) -> None:
        self._storage_provider = storage_provider
        self._metadata_provider = metadata_provider
        self._retry_config = retry_config
        self.profile, self.url_prefix = profile, url_prefix
        self._cache_config = cache_config
        self._given_cache = cache_manager
        self._cache_manager: CacheManager | None = None
        self._cache_usable: bool | None = None

    # ---------------------------------------------------------------- cache
    def cache(self) -> CacheManager | None:
        """The read cache, built on first use; None unless caching is on for an object store."""
        if self._cache_manager is not None or self._cache_usable is False:
            return self._cache_manager
        sp = self._storage_provider
        usable = self._cache_config is not None
        if usable and isinstance(sp, BaseStorageProvider):
            try:
                usable = sp.local_path("") is None
            except Exception:
                usable = False
        self._cache_usable = usable
        if usable and self._cache_config is not None:
            from .caching.cache_manager import CacheManager

            given = self._given_cache
            self._cache_manager = (
                given if isinstance(given, CacheManager) else CacheManager(self._cache_config, self.profile)
            )
        return self._cache_manager

    def _prefetch_whole(self) -> bool:
        """``cache.prefetch_file``: open() caches whole objects (else only the lines read)."""
        return self._cache_config is None or self._cache_config.prefetch_file

    def check_version(self, mode: SourceVersionCheckMode) -> bool:
        """Whether reads through the cache validate against the source's ETag under ``mode``."""
        if mode is SourceVersionCheckMode.ENABLE:
            return True
        if mode is SourceVersionCheckMode.DISABLE:
            return False
        return bool(self._cache_config is None or self._cache_config.use_etag)

    def invalidate(self, path: str, recursive: bool = False) -> None:
        """Drop ``path`` (and with ``recursive`` everything under it) from the read cache."""
        cache = self.cache()
        if cache is not None:
            cache.invalidate(path)
            if recursive:
                prefix = normalize_key(path).rstrip("/")
                cache.invalidate_prefix(prefix + "/" if prefix else "")

    def cached_open(
        self, path: str, memory_load_limit: int, check: bool
    ) -> tuple[ObjectMetadata, bytes | None]:
        """Metadata of ``path`` and, if it is at most ``memory_load_limit`` bytes, its content (via the cache)."""
        cache = self.cache()
        if cache is None:
            meta = self.head(path)
            small = meta.content_length <= memory_load_limit
            return meta, self.get_range(path, None, meta.etag) if small else None
        hit = cache.get_object(
            path,
            lambda: self.head(path),
            lambda m: self.get_range(path, None, m.etag),
            check,
            payload_limit=memory_load_limit
            if self._prefetch_whole()
            else min(memory_load_limit, cache.line_size),
        )
        return hit.meta, hit.data

    def fetch_block(
        self, path: str, start: int, size: int, etag: str | None, cached: bool, total: int | None = None
    ) -> bytes:
        """``size`` bytes at ``start`` of version ``etag`` (one block), via the cache when ``cached``.

        Through the cache, the bytes come from whole cache lines (``cache_line_size``
        aligned blocks, each fetched once); ``total`` (the object's size) bounds the last
        line. Without ``total`` the block itself is cached under its offset.
        """

        def fetch_range(offset: int, length: int) -> bytes:
            data = self.get_range(path, Range(offset, length), etag)
            if len(data) != length:
                raise OSError(f"{path}: short read at offset {offset}: got {len(data)} of {length} bytes")
            return data

        cache = self.cache() if cached and etag is not None else None
        if cache is None or etag is None:
            return fetch_range(start, size)
        data = cache.read_slice(path, etag, start, size)
        if data is not None and len(data) == size:
            return data
        if total is None:
            return cache.get_block(path, etag, start, lambda: fetch_range(start, size))
        line = cache.line_size
        first, end = start - start % line, min(start + size, total)
        parts = [
            cache.get_block(
                path,
                etag,
                offset,
                lambda o=offset: fetch_range(o, min(line, total - o)),  # type: ignore[misc]
            )
            for offset in range(first, end, line)
        ]
        joined = parts[0] if len(parts) == 1 else b"".join(parts)
        return joined[start - first : end - first]

    def cached_range(self, cache: CacheManager, path: str, byte_range: Range, check: bool) -> bytes:
        """``byte_range`` of the object through the read cache, whole blocks fetched and kept."""
        hit = cache.get_object(
            path, lambda: self.head(path), lambda m: self.get_range(path, None, m.etag), check, -1
        )
        etag, total = hit.meta.etag, hit.meta.content_length
        if etag is None:
            return self.get_range(path, byte_range, None)
        start, end = byte_range.offset, min(total, byte_range.offset + byte_range.size)
        if start >= end:
            return b""
        if hit.complete:
            data = cache.read_slice(path, etag, start, end - start)
            if data is not None and len(data) == end - start:
                return data
        return self.fetch_block(path, start, end - start, etag, True, total)

    # -------------------------------------------------------------- helpers
    def retry(self, fn: Any, what: str) -> Any:
        """Call ``fn`` under the profile's retry policy; ``what`` names the operation in errors."""
        return call_with_retry(fn, self._retry_config, what)

    def check_writable(self, path: str) -> None:
        """Refuse a change of ``path`` through a read-only metadata provider.

        Raises:
            ReadOnlyError: The profile's metadata provider is read-only.
        """
        mp = self._metadata_provider
        if mp is not None and not mp.is_writable():
            raise ReadOnlyError(
                f"{self.url_prefix}{path}: profile {self.profile!r} has a read-only metadata provider; "
                "set it writable to write through it"
            )

    def physical(self, path: str, for_write: bool = False) -> str:
        """The storage key behind logical ``path`` (through the metadata provider, if any)."""
        mp = self._metadata_provider
        if mp is None:
            return path
        if for_write:
            self.check_writable(path)
        resolved = as_resolved(mp.realpath(path), path, mp)
        if not for_write:
            if not resolved.exists:
                raise ObjectNotFoundError(f"{self.url_prefix}{path}: not found in the metadata provider")
            return resolved.physical_path
        overwrite = resolved.state in (ResolvedPathState.EXISTS, ResolvedPathState.DELETED)
        if overwrite and not mp.allow_overwrites():
            raise FileExistsError(
                f"{self.url_prefix}{path}: exists, and profile {self.profile!r}'s metadata provider "
                "does not allow overwrites"
            )
        placed = mp.generate_physical_path(path, for_overwrite=overwrite)
        return as_resolved(placed, path, mp).physical_path

    def track(self, path: str, physical: str) -> None:
        """Register a just-written object with the metadata provider (a no-op without one)."""
        if self._metadata_provider is not None:
            meta = self.retry(lambda: self._storage_provider.get_object_metadata(physical), f"info {path}")
            self._metadata_provider.add_file(path, meta)

    def head(self, path: str) -> ObjectMetadata:
        """The object's metadata (retried); :class:`FileNotFoundError` if it does not exist."""
        physical = self.physical(path)
        return self.retry(lambda: self._storage_provider.get_object_metadata(physical), f"info {path}")

    def get_range(self, path: str, byte_range: Range | None, etag: str | None) -> bytes:
        """The object's bytes (or ``byte_range`` of them), pinned to ``etag`` when given."""
        physical = self.physical(path) if self._metadata_provider is not None else path
        sp = self._storage_provider
        if isinstance(sp, BaseStorageProvider):

            def attempt() -> bytes:
                return sp.get_object(physical, byte_range, if_match=etag)
        else:

            def attempt() -> bytes:
                return sp.get_object(physical, byte_range)

        try:  # first attempt inline: the common case pays for no retry machinery
            return attempt()
        except RetryableError as exc:
            return call_with_retry(attempt, self._retry_config, f"read {path}", first_error=exc)

    def get_if_smaller(self, path: str, limit: int) -> bytes | int:
        """The object's bytes if it has at most ``limit`` bytes, else its size (retried).

        Providers without the operation (seed-style ones) get a ranged GET of ``limit``
        bytes and, when it comes back full, a HEAD.
        """
        physical = self.physical(path) if self._metadata_provider is not None else path
        sp = self._storage_provider

        def attempt() -> bytes | int:
            if isinstance(sp, BaseStorageProvider):
                return sp.get_object_if_smaller(physical, limit)
            data = sp.get_object(physical, Range(0, limit))
            return data if len(data) < limit else sp.get_object_metadata(physical).content_length

        return self.retry(attempt, f"read {path}")

    def download_into(self, path: str, fileobj: IO[bytes]) -> None:
        """Write the whole object into ``fileobj`` (truncated and rewritten on each retry)."""
        physical = self.physical(path)

        def attempt() -> None:
            fileobj.seek(0)
            fileobj.truncate()
            self._storage_provider.download_file(physical, fileobj)

        self.retry(attempt, f"download {path}")

    def open_writer(self, path: str) -> ObjectWriter | None:
        """A streaming (multipart) writer for ``path``, or None when the provider has none."""
        sp = self._storage_provider
        if not isinstance(sp, BaseStorageProvider):
            return None
        return sp.open_writer(self.physical(path, for_write=True), self._retry_config)

    def store_spool(
        self, path: str, spool: IO[bytes], size: int, attributes: dict[str, str] | None = None
    ) -> None:
        """Store ``size`` spooled bytes (with user metadata ``attributes``) at ``path``: one PUT up
        to 8 MiB, else an upload."""
        physical = self.physical(path, for_write=True)

        def attempt() -> None:
            spool.seek(0)
            if size <= 8 << 20:
                self._storage_provider.put_object(physical, spool.read(), attributes=attributes)
            else:
                self._storage_provider.upload_file(physical, spool, attributes)

        self.retry(attempt, f"write {path}")
