"""Batch operations of :class:`manystore.StorageClient`: many uploads, downloads or deletes at once.

A mixin: the methods use only the client's public single-object operations, so each
object gets the client's retries, metadata-provider bookkeeping and cache invalidation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._contract import check_lengths, parallel_listing, run_batch
from .client_links import PatternMatcher
from .providers.base import BaseStorageProvider
from .sync_types import (
    BatchTransferCallback,
    PatternList,
    SymlinkHandling,
)

if TYPE_CHECKING:
    from .types import ObjectMetadata

__all__ = ["BatchMixin"]

logger = logging.getLogger(__name__)


def _with_url(entries: Iterator[ObjectMetadata], url: str) -> Iterator[ObjectMetadata]:
    for meta in entries:
        meta.key = url + meta.key
        yield meta


def _parallel_listing(
    client: Any, prefix: str, start_after: str | None, end_at: str | None, workers: int, look_ahead: int
) -> Iterator[ObjectMetadata]:
    """Files under ``prefix`` in key order, sub-directories listed on a thread pool (see
    :func:`manystore._contract.parallel_listing`), each listing resumed after transient errors."""

    def level(where: str, after: str | None, end: str | None, dirs: bool) -> Iterator[ObjectMetadata]:
        return client._list(where, after, end, dirs, False, None, False)

    return parallel_listing(level, prefix, start_after, end_at, workers, look_ahead)


def _client(mixin: BatchMixin) -> Any:
    return mixin  # the StorageClient this mixin is part of


class BatchMixin:
    """``upload_files``, ``download_files``, ``delete_many``, ``list_recursive`` and ``get_posix_path``."""

    # Provided by StorageClient.
    _storage_provider: Any

    def upload_files(
        self,
        remote_paths: Sequence[str],
        local_paths: Sequence[str],
        attributes: Sequence[dict[str, Any] | None] | None = None,
        max_workers: int = 16,
        transfer_callback: BatchTransferCallback | None = None,
    ) -> None:
        """Upload ``local_paths[i]`` to ``remote_paths[i]`` for every ``i``, ``max_workers`` at a time.

        Args:
            remote_paths: Keys to write.
            local_paths: Local files to read, one per key.
            attributes: User metadata per file (``None`` entries for none), or ``None``.
            max_workers: Concurrent uploads.
            transfer_callback: Called with ``(local, remote, state)``, ``state`` being
                ``"started"``, ``"completed"`` or ``"failed"``; its exceptions are logged.

        Raises:
            ValueError: The sequences differ in length, or ``max_workers`` < 1.
            BatchTransferError: Some files failed (the others were uploaded); ``failures``
                names each with its cause. A batch of one re-raises that file's error.
        """
        check_lengths("upload_files", remote_paths, local_paths, "local_paths")
        check_lengths("upload_files", remote_paths, attributes, "attributes")
        pairs = [(local, remote) for remote, local in zip(remote_paths, local_paths, strict=True)]

        def work(i: int) -> None:
            _client(self).upload_file(
                remote_paths[i], local_paths[i], attributes[i] if attributes is not None else None
            )

        run_batch("upload_files", pairs, work, max_workers, transfer_callback)

    def download_files(
        self,
        remote_paths: Sequence[str],
        local_paths: Sequence[str],
        metadata: Sequence[ObjectMetadata | None] | None = None,
        max_workers: int = 16,
        transfer_callback: BatchTransferCallback | None = None,
    ) -> None:
        """Download ``remote_paths[i]`` to ``local_paths[i]`` for every ``i``, ``max_workers`` at a time.

        Args:
            remote_paths: Keys to read.
            local_paths: Local files to write (atomically), one per key.
            metadata: Each object's :class:`ObjectMetadata` if already known (saves a lookup), or ``None``.
            max_workers: Concurrent downloads.
            transfer_callback: Called with ``(remote, local, state)`` as in :meth:`upload_files`.

        Raises:
            ValueError: The sequences differ in length, or ``max_workers`` < 1.
            BatchTransferError: Some files failed (the others were downloaded). A batch of
                one re-raises that file's error (e.g. :class:`FileNotFoundError`).
        """
        check_lengths("download_files", remote_paths, local_paths, "local_paths")
        check_lengths("download_files", remote_paths, metadata, "metadata")
        pairs = list(zip(remote_paths, local_paths, strict=True))

        def work(i: int) -> None:
            _client(self).download_file(
                remote_paths[i], local_paths[i], metadata[i] if metadata is not None else None
            )

        run_batch("download_files", pairs, work, max_workers, transfer_callback)

    def delete_many(self, paths: Sequence[str]) -> None:
        """Delete the objects at ``paths`` (files only); a path that does not exist is no error.

        Raises:
            BatchTransferError: Some deletions failed for another reason (the others were done).
        """

        def work(i: int) -> None:
            try:
                _client(self).delete(paths[i])
            except FileNotFoundError:
                pass

        run_batch("delete_many", [(p, p) for p in paths], work, 16, None)

    def list_recursive(
        self,
        path: str = "",
        start_after: str | None = None,
        end_at: str | None = None,
        max_workers: int = 32,
        look_ahead: int = 2,
        include_url_prefix: bool = False,
        patterns: PatternList | None = None,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    ) -> Iterator[ObjectMetadata]:
        """Every object under the directory ``path``, lazily, in lexicographic key order.

        ``path`` names a directory (``"data"`` and ``"data/"`` both list ``data/...``; ``""``
        lists everything); unlike :meth:`list` it is not a raw key prefix.

        The first level is listed with a delimiter; each sub-directory is then listed in
        full on a pool of ``max_workers`` threads, at most ``max_workers * look_ahead``
        sub-directories ahead of the one being yielded (their entries are held in memory).
        Results come in key order all the same. With a metadata provider, or
        ``max_workers=1``, one listing stream is used.

        Args:
            path: Directory to list.
            start_after: Exclusive lower bound on keys.
            end_at: Inclusive upper bound on keys.
            max_workers: Concurrent sub-directory listings (>= 1).
            look_ahead: Sub-directories listed ahead per worker (>= 1).
            include_url_prefix: Return keys as full URLs.
            patterns: Include/exclude globs on keys relative to ``path`` (see :meth:`list`).
            symlink_handling: What to do with symlinks (see :meth:`list`).
        """
        for name, value in (("max_workers", max_workers), ("look_ahead", look_ahead)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"list_recursive: {name} must be an int >= 1, got {value!r}")
        client = _client(self)
        prefix = path.strip("/")
        prefix = prefix + "/" if prefix else ""
        matcher = PatternMatcher(patterns) if patterns else None
        handling = SymlinkHandling(symlink_handling)
        if start_after is not None and end_at is not None and start_after > end_at:
            raise ValueError(f"start_after {start_after!r} is after end_at {end_at!r}")
        if client._metadata_provider is not None or max_workers == 1:
            entries = client._list(prefix, start_after, end_at, False, False, None, False)
        else:
            entries = _parallel_listing(client, prefix, start_after, end_at, max_workers, look_ahead)
        if matcher is not None or handling is not SymlinkHandling.FOLLOW:
            entries = client._filter_listing(entries, prefix, "", matcher, handling)
        if include_url_prefix:
            entries = _with_url(entries, client.url_prefix)
        return entries

    def get_posix_path(self, path: str) -> str | None:
        """The local file-system path of ``path`` on a POSIX profile, else ``None``."""
        sp = self._storage_provider
        if isinstance(sp, BaseStorageProvider):
            local = sp.local_path(path)
            return None if local is None else str(local)
        return None
