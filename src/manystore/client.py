"""``StorageClient``: one profile's storage, with retries, metadata providers and file objects."""

from __future__ import annotations

import builtins
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import IO, Any, TypeVar, cast

from .attribute_filter import AttributeFilter, compile_attribute_filter, matches
from .client_autocommit import start_autocommit
from .client_batch import BatchMixin
from .client_links import LinksMixin, PatternMatcher, symlink_target_of
from .client_sync import SyncMixin
from .config import StorageClientConfig
from .errors import ObjectNotFoundError, RetryableError
from .file import ObjectFile, PosixFile, check_mode
from .objectio import ObjectIO
from .providers.base import BaseStorageProvider
from .providers.seed_contract import adapt_metadata_provider, adapt_storage_provider
from .retry import backoff_delay, call_with_retry
from .schema import RESERVED_POSIX_PROFILE
from .types import (
    MetadataProvider,
    ObjectMetadata,
    PatternList,
    Range,
    RetryConfig,
    SourceVersionCheckMode,
    StorageProvider,
    SymlinkHandling,
)
from .urls import implicit_url_prefix
from .utils import filter_glob, glob_literal_prefix, normalize_key

__all__ = ["StorageClient"]

DEFAULT_MEMORY_LOAD_LIMIT = 512 << 20
_DELETE_WORKERS = 16
_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)
_F = TypeVar("_F", bound=Callable[..., Any])


def _names_url(method: _F) -> _F:
    """A missing object is reported by the URL the caller used (``msc://profile/key``), not by
    the store's internal location (``s3://bucket/base/key``, a local path)."""

    @functools.wraps(method)
    def wrapper(self: StorageClient, path: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, path, *args, **kwargs)
        except ObjectNotFoundError as exc:
            prefix = self.url_prefix
            raise exc.named(prefix + path.lstrip("/") if prefix.endswith("/") else prefix + path) from exc

    return cast("_F", wrapper)


class StorageClient(BatchMixin, LinksMixin, SyncMixin):
    """A client for one profile: read, write, list and manage objects.

    Keys are relative to the profile (its ``base_path``). Transient failures
    (throttling, 5xx, dropped connections) are retried per the profile's
    :class:`manystore.types.RetryConfig`; nothing else is.

    When the profile has a metadata provider (e.g. a manifest), ``list``, ``glob``
    and ``info`` are answered from it and writes are registered with it; a
    read-only metadata provider refuses writes with :class:`manystore.errors.ReadOnlyError`.
    With ``replicas`` in the profile, reads try them first (see :mod:`manystore.client_sync`).

    Args:
        config: The profile's configuration.
    """

    def __init__(self, config: StorageClientConfig) -> None:
        if config.storage_provider is None:
            raise ValueError(
                f"profile {config.profile!r}: storage_provider_profiles={config.storage_provider_profiles!r}: "
                "multi-backend (composite) clients are not supported; expected a config with a storage_provider"
            )
        self._config = config
        # A provider written for the older seed contract is seen through 1.3.1's.
        self._storage_provider: StorageProvider = adapt_storage_provider(config.storage_provider)
        self._metadata_provider: MetadataProvider | None = adapt_metadata_provider(config.metadata_provider)
        self._retry_config = config.retry_config
        self._io = ObjectIO(
            self._storage_provider,
            self._metadata_provider,
            config.retry_config,
            config.profile,
            implicit_url_prefix(config.profile) or f"msc://{config.profile}/",
            config.cache_config if config.caching_enabled else None,
            config.cache_manager,
        )
        self._commit_lock = threading.Lock()
        self._autocommit_stop: threading.Event | None = None
        if config.metadata_provider is not None and config.autocommit_config is not None:
            self._autocommit_stop = start_autocommit(self, config.autocommit_config)

    # ------------------------------------------------------------- identity
    @property
    def profile(self) -> str:
        """The profile name."""
        return self._config.profile

    @property
    def config(self) -> StorageClientConfig:
        """The configuration this client was built from."""
        return self._config

    def is_default_profile(self) -> bool:
        """True if this client serves the local file system's ``__filesystem__`` profile (as in MSC 1.3.1)."""
        return self._config.profile == RESERVED_POSIX_PROFILE

    @property
    def url_prefix(self) -> str:
        """The URL prefix of this profile's keys: ``msc://profile/``, ``s3://bucket/`` or ``/``."""
        return implicit_url_prefix(self.profile) or f"msc://{self.profile}/"

    def __repr__(self) -> str:
        return f"StorageClient(profile={self.profile!r}, provider={self._storage_provider!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (StorageClient, (self._config,))

    # ---------------------------------------------------------------- reads
    @_names_url
    def read(
        self,
        path: str,
        byte_range: Range | None = None,
        check_source_version: SourceVersionCheckMode = SourceVersionCheckMode.INHERIT,
    ) -> bytes:
        """The object's bytes, or the ``byte_range`` slice of them; symlinks are followed.

        Args:
            path: Key of the object.
            byte_range: Only these bytes.
            check_source_version: With a read cache: ``ENABLE`` validates the cached copy
                against the store's ETag (one HEAD), ``DISABLE`` trusts it, ``INHERIT``
                follows the profile's cache config. Without a cache it has no effect.

        Raises:
            FileNotFoundError: No object at ``path``.
            ValueError: A symlink cycle or chain longer than ``MAX_SYMLINK_DEPTH``.
        """
        data = self._read_one(path, byte_range, check_source_version)
        if data or self._is_local():
            return data
        final, _ = self._follow(path)  # an empty object may be a symlink marker
        return (
            data if final == normalize_key(path) else self._read_one(final, byte_range, check_source_version)
        )

    def _is_local(self) -> bool:
        sp = self._storage_provider
        return (
            self._metadata_provider is None
            and isinstance(sp, BaseStorageProvider)
            and sp.local_path("") is not None
        )

    def _read_one(self, path: str, byte_range: Range | None, mode: SourceVersionCheckMode) -> bytes:
        cache = self._io.cache()
        if cache is None:
            if self._reads_replicas():
                data = self._replica_read(path)
                return (
                    data
                    if byte_range is None
                    else data[byte_range.offset : byte_range.offset + byte_range.size]
                )
            return self._io.get_range(path, byte_range, None)
        check = self._io.check_version(SourceVersionCheckMode(mode))
        if byte_range is not None:
            return self._io.cached_range(cache, path, byte_range, check)
        hit = cache.get_object(
            path, lambda: self._io.head(path), lambda m: self._io.get_range(path, None, m.etag), check
        )
        assert hit.data is not None
        return hit.data

    @_names_url
    def info(self, path: str, strict: bool = True) -> ObjectMetadata:
        """Metadata of the object at ``path``.

        Args:
            path: Key of the object.
            strict: When False, a directory (a prefix with objects under it) also answers,
                with ``type="directory"``.
        """
        if self._metadata_provider is not None:
            try:
                meta = self._metadata_provider.get_object_metadata(path)
                symlink_target_of(meta)
                return meta
            except FileNotFoundError:
                if strict:
                    raise
                for _ in self._metadata_provider.list_objects(path.rstrip("/") + "/"):
                    return ObjectMetadata(
                        key=path.rstrip("/"), content_length=0, last_modified=_EPOCH, type="directory"
                    )
                raise
        meta = self._io.retry(
            lambda: self._storage_provider.get_object_metadata(path, strict), f"info {path}"
        )
        sp = self._storage_provider
        local = sp.local_path(path) if isinstance(sp, BaseStorageProvider) and meta.type == "file" else None
        if local is not None and os.path.islink(local):
            raw = os.readlink(local)
            meta.symlink_target = os.path.relpath(raw, os.path.dirname(local)) if os.path.isabs(raw) else raw
        else:
            symlink_target_of(meta)
        return meta

    def is_file(self, path: str) -> bool:
        """True if an object exists at ``path`` (a directory is not a file)."""
        try:
            return self.info(path, strict=True).type == "file"
        except FileNotFoundError:
            return False

    def is_empty(self, path: str) -> bool:
        """True if no object's key starts with ``path`` (taken as a directory)."""
        prefix = path.rstrip("/") + "/" if path.strip("/") else ""
        return next(iter(self.list(prefix)), None) is None

    def list(
        self,
        path: str = "",
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
        include_url_prefix: bool = False,
        attribute_filter_expression: str | None = None,
        show_attributes: bool = False,
        patterns: PatternList | None = None,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
        *,
        prefix: str | None = None,
    ) -> Iterator[ObjectMetadata]:
        """Objects whose keys start with ``path``, lazily, in lexicographic key order.

        Args:
            path: Raw key prefix (``"data/"`` lists a directory, ``"data/x"`` also matches ``data/x1``).
            start_after: Exclusive lower bound on keys (need not exist).
            end_at: Inclusive upper bound on keys (need not exist).
            include_directories: List one level and yield sub-directories as ``type="directory"``.
            include_url_prefix: Return keys as full URLs (``msc://profile/...``, ``s3://bucket/...``).
            attribute_filter_expression: Only objects whose user metadata satisfies this
                expression (see :mod:`manystore.attribute_filter`), e.g. ``'model = "a" AND epoch > 3'``.
            show_attributes: Fill in each object's user metadata (one metadata request per
                object where the listing does not carry it).
            patterns: Include/exclude globs (``[(PatternType.EXCLUDE, "*.tmp")]``) matched
                against each file's key relative to the directory part of ``path``; see
                :class:`manystore.client_links.PatternMatcher`.
            symlink_handling: ``FOLLOW`` lists links as the store has them (POSIX: what an
                internal link points at; object stores: the link entry). ``SKIP`` leaves links
                out; ``PRESERVE`` lists them with ``symlink_target`` set; ``*_STRICT`` raise
                :class:`~manystore.errors.InvalidPathError` on a link leaving the profile. All
                but ``FOLLOW`` cost an ``lstat`` per file on POSIX and a HEAD per empty object
                elsewhere. (POSIX listings already leave out links escaping ``base_path``, and
                linked directories are listed through.)
            prefix: The older name of ``path`` (keyword only).

        A transient failure mid-listing resumes after the last key yielded.

        Raises:
            ValueError: ``start_after`` is after ``end_at``, both ``path`` and ``prefix`` are
                given, or the filter expression is invalid.
        """
        if prefix is not None:
            if path:
                raise ValueError(f"list() got both path={path!r} and prefix={prefix!r}; pass one")
            path = prefix
        if start_after is not None and end_at is not None and start_after > end_at:
            raise ValueError(f"start_after {start_after!r} is after end_at {end_at!r}")
        predicate = compile_attribute_filter(attribute_filter_expression)
        with_attributes = show_attributes or predicate is not None
        matcher = PatternMatcher(patterns) if patterns else None
        handling = SymlinkHandling(symlink_handling)
        entries = self._list(
            path, start_after, end_at, include_directories, include_url_prefix, predicate, with_attributes
        )
        if matcher is None and handling is SymlinkHandling.FOLLOW:
            return entries
        base = path.rpartition("/")[0] + "/" if "/" in path else ""
        url = self.url_prefix if include_url_prefix else ""
        return self._filter_listing(entries, base, url, matcher, handling)

    def _list(
        self,
        prefix: str,
        start_after: str | None,
        end_at: str | None,
        include_directories: bool,
        include_url_prefix: bool,
        predicate: AttributeFilter | None,
        with_attributes: bool,
    ) -> Iterator[ObjectMetadata]:
        mp = self._metadata_provider  # not `or`: an empty manifest is falsy (it has a __len__)
        source = mp if mp is not None else self._storage_provider
        url = self.url_prefix if include_url_prefix else ""
        last = start_after
        attempts = 0
        while True:
            try:
                listing = source.list_objects(
                    prefix, start_after=last, end_at=end_at, include_directories=include_directories
                )
                for meta in listing:
                    last = meta.key
                    attempts = 0
                    if with_attributes and meta.metadata is None and meta.type == "file":
                        meta.metadata = self.info(meta.key).metadata
                    if not matches(meta, predicate):
                        continue
                    if url:
                        meta.key = url + meta.key
                    yield meta
                return
            except RetryableError:
                attempts += 1
                config = self._retry_config or RetryConfig()
                if attempts >= config.attempts:
                    raise
                time.sleep(backoff_delay(config, attempts))

    def glob(
        self, pattern: str, include_url_prefix: bool = False, attribute_filter_expression: str | None = None
    ) -> builtins.list[str]:
        """Keys matching ``pattern`` (``*``, ``?``, ``[...]``, ``**``), sorted.

        Only the part of the store under the pattern's literal prefix is listed. With
        ``attribute_filter_expression``, only objects whose user metadata satisfies it
        (see :meth:`list`).
        """
        predicate = compile_attribute_filter(attribute_filter_expression)
        if self._metadata_provider is not None:
            keys = sorted(self._metadata_provider.glob(pattern))
        else:
            keys = list(filter_glob(pattern, self.list(glob_literal_prefix(pattern))))
        if predicate is not None:
            keys = [k for k in keys if matches(self.info(k), predicate)]
        if include_url_prefix:
            keys = [self.url_prefix + k for k in keys]
        return keys

    @_names_url
    def open(
        self,
        path: str,
        mode: str = "rb",
        buffering: int = -1,
        encoding: str | None = None,
        disable_read_cache: bool = False,
        memory_load_limit: int = DEFAULT_MEMORY_LOAD_LIMIT,
        atomic: bool = True,
        check_source_version: SourceVersionCheckMode = SourceVersionCheckMode.INHERIT,
        attributes: dict[str, str] | None = None,
        prefetch_file: bool | None = None,
    ) -> PosixFile | ObjectFile:
        """Open ``path`` as a file object.

        Args:
            path: Key of the object.
            mode: One of ``r``, ``rb``, ``w``, ``wb``, ``a``, ``ab``.
            buffering: Buffer size for :class:`PosixFile` (as :func:`open`).
            encoding: Text encoding for ``r``/``w``/``a`` (default UTF-8).
            disable_read_cache: Bypass the read cache for this file.
            memory_load_limit: Objects up to this size are fetched in one request; larger
                ones are streamed with ranged requests (:class:`ObjectFile` only).
            atomic: Write to a temp file and rename on close (:class:`PosixFile` only;
                object stores are always atomic).
            check_source_version: Whether a cached copy is validated against the source.
            attributes: User metadata stored with the object written (``w``/``a`` modes;
                the object is then spooled and stored with one request instead of streamed).
                Like :meth:`write`, the POSIX provider does not keep user metadata.
            prefetch_file: ``False`` never fetches the whole object on open: reads are
                ranged requests (:class:`ObjectFile`). ``True`` or ``None`` fetch it whole
                when it is at most ``memory_load_limit`` bytes.

        Returns:
            A :class:`PosixFile` for local profiles, else an :class:`ObjectFile`.
        """
        check_mode(mode)
        writing = mode[0] in "wa"
        physical = (
            self._io.physical(path, for_write=writing) if (writing or self._metadata_provider) else path
        )
        on_commit = (lambda: self._io.track(path, physical)) if writing and self._metadata_provider else None
        sp = self._storage_provider
        local = sp.local_path(physical) if isinstance(sp, BaseStorageProvider) else None
        if local is not None:
            if not writing and not os.path.isfile(local):
                raise ObjectNotFoundError(f"{self.url_prefix}{path}: no such file")
            return PosixFile(local, mode, buffering, encoding, atomic, on_commit, name=path)
        cache = self._io.cache()
        if writing and cache is not None:
            track = on_commit

            def on_commit() -> None:
                self._io.invalidate(path)
                if track is not None:
                    track()

        cached = cache is not None and not writing and not disable_read_cache
        check = self._io.check_version(check_source_version) if cached else None
        limit = -1 if prefetch_file is False else memory_load_limit
        return ObjectFile(
            self._io,
            path,
            mode,
            encoding,
            limit,
            on_commit,
            cache_check=check,
            attributes=attributes,
            follow=lambda p: self._follow(p)[0],
        )

    # --------------------------------------------------------------- writes
    def write(self, path: str, body: bytes, attributes: dict[str, str] | None = None) -> None:
        """Store ``body`` at ``path`` atomically (one PUT, or a completed multipart upload)."""
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"write() body must be bytes-like, got {type(body).__name__}")
        physical = self._io.physical(path, for_write=True) if self._metadata_provider is not None else path
        data = body if isinstance(body, bytes) else bytes(body)  # a snapshot: retries resend the same bytes

        def attempt() -> None:
            self._storage_provider.put_object(physical, data, attributes=attributes)

        try:  # first attempt inline: the common case pays for no retry machinery
            attempt()
        except RetryableError as exc:
            call_with_retry(attempt, self._retry_config, f"write {path}", first_error=exc)
        self._io.invalidate(path)
        self._io.track(path, physical)

    def put_object(
        self,
        path: str,
        body: bytes,
        if_match: str | None = None,
        if_none_match: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Conditional write: ``if_none_match="*"`` creates only; ``if_match=etag`` replaces only that version.

        Raises:
            PreconditionFailedError: The condition did not hold; nothing was written.
        """
        physical = self._io.physical(path, for_write=True)
        self._io.retry(
            lambda: self._storage_provider.put_object(
                physical, bytes(body), if_match=if_match, if_none_match=if_none_match, attributes=attributes
            ),
            f"write {path}",
        )
        self._io.invalidate(path)
        self._io.track(path, physical)

    def upload_file(
        self,
        remote_path: str,
        local_path: str | IO,
        attributes: dict[str, str] | None = None,
        *,
        max_concurrency: int | None = None,
    ) -> None:
        """Upload a local file (path or binary file object), streaming; multipart when large.

        ``max_concurrency``: parts uploaded in parallel for this call (default: the profile's),
        on stores whose provider has ``supports_upload_concurrency`` (S3-compatible, Azure).

        Raises:
            FileNotFoundError: ``local_path`` names no file.
            ValueError: Bad ``max_concurrency``, or a store that cannot upload parallel parts.
        """
        if isinstance(local_path, str) and not os.path.isfile(local_path):
            raise FileNotFoundError(f"upload_file: local file {local_path!r} does not exist")
        options: dict[str, int] = {}
        if max_concurrency is not None:
            if (
                isinstance(max_concurrency, bool)
                or not isinstance(max_concurrency, int)
                or max_concurrency < 1
            ):
                raise ValueError(f"max_concurrency={max_concurrency!r}: expected a positive integer")
            if not getattr(self._storage_provider, "supports_upload_concurrency", False):
                raise ValueError(
                    f"max_concurrency={max_concurrency}: {type(self._storage_provider).__name__} does not "
                    "upload in parallel parts; expected None"
                )
            options["max_concurrency"] = max_concurrency
        physical = self._io.physical(remote_path, for_write=True)

        def attempt() -> None:
            if not isinstance(local_path, str):
                local_path.seek(0)
            self._storage_provider.upload_file(physical, local_path, attributes, **options)

        self._io.retry(attempt, f"upload {remote_path}")
        self._io.invalidate(remote_path)
        self._io.track(remote_path, physical)

    @_names_url
    def download_file(
        self, remote_path: str, local_path: str | IO, metadata: ObjectMetadata | None = None
    ) -> None:
        """Download to a local path (written atomically) or a binary file object.

        Args:
            remote_path: Key of the object.
            local_path: Local file path or binary file object.
            metadata: The object's metadata from :meth:`info`, if known (saves a lookup on a
                local-path download).
        """
        if self._reads_replicas():
            self._replica_download(remote_path, local_path)
            return
        physical = self._io.physical(remote_path)
        if isinstance(local_path, str):
            os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
            self._io.retry(
                lambda: self._storage_provider.download_file(physical, local_path, metadata),
                f"download {remote_path}",
            )
        else:
            self._io.download_into(remote_path, local_path)

    def copy(self, src_path: str, dest_path: str) -> None:
        """Copy an object within this profile (server-side where the store supports it)."""
        src = self._io.physical(src_path)
        dest = self._io.physical(dest_path, for_write=True)
        self._io.retry(lambda: self._storage_provider.copy_object(src, dest), f"copy {src_path}")
        self._io.invalidate(dest_path)
        self._io.track(dest_path, dest)

    @_names_url
    def delete(self, path: str, recursive: bool = False) -> None:
        """Delete the object at ``path``; with ``recursive``, also everything under ``path/``.

        Raises:
            FileNotFoundError: Nothing exists at ``path`` (and, recursively, nothing under it).
        """
        if self._metadata_provider is not None:
            self._io.check_writable(path)
        if not recursive:
            physical = self._io.physical(path)
            if self._metadata_provider is not None and self._metadata_provider.should_use_soft_delete():
                self._io.invalidate(path)  # soft delete: the entry goes, the stored object stays
                self._metadata_provider.remove_file(path)
                return
            try:
                self._storage_provider.delete_object(physical)
            except RetryableError as exc:

                def again() -> None:
                    try:
                        self._storage_provider.delete_object(physical)
                    except FileNotFoundError:
                        pass  # an earlier attempt deleted it but its answer was lost

                call_with_retry(again, self._retry_config, f"delete {path}", first_error=exc)
            self._io.invalidate(path)
            if self._metadata_provider is not None:
                self._metadata_provider.remove_file(path)
            self._delete_from_replicas(path)
            return
        prefix = normalize_key(path).rstrip("/")
        prefix = prefix + "/" if prefix else ""
        self._io.invalidate(path, recursive=True)
        deleted = 0
        if prefix and self.is_file(prefix.rstrip("/")):
            self.delete(prefix.rstrip("/"))
            deleted += 1
        if self._metadata_provider is not None:
            keys = [m.key for m in self.list(prefix)]
            with ThreadPoolExecutor(_DELETE_WORKERS) as pool:
                list(pool.map(lambda k: self.delete(k), keys))
            deleted += len(keys)
        else:
            sp = self._storage_provider
            if isinstance(sp, BaseStorageProvider):
                deleted += self._io.retry(lambda: sp.delete_prefix(prefix), f"delete {prefix}")
            else:
                keys = [meta.key for meta in sp.list_objects(prefix)]
                self._io.retry(lambda: sp.delete_objects(keys), f"delete {prefix}")
                deleted += len(keys)
        if deleted == 0 and self._metadata_provider is None and prefix:
            raise ObjectNotFoundError(f"{self.url_prefix}{path}: nothing to delete")

    def commit_metadata(self, prefix: str | None = None) -> None:
        """Persist pending metadata-provider updates; with ``prefix``, first register what the store has there."""
        mp = self._metadata_provider
        if mp is None:
            return
        with self._commit_lock:  # autocommit may run on another thread
            if prefix is not None:
                for meta in self._storage_provider.list_objects(prefix):
                    mp.add_file(meta.key, meta)
            mp.commit_updates()
