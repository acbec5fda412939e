"""Mirroring a prefix of one client into another (``StorageClient.sync_from``, ``manystore.sync``).

An object is transferred when the target lacks it or differs in size, or (same
store type) in ETag, or when the source is newer. Transfers run on a thread pool;
a failing object does not stop the others: all failures are reported at the end
in one :class:`SyncError`.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ManystoreError
from .file import READ_BLOCK_SIZE as STREAM_BLOCK
from .types import ObjectMetadata

if TYPE_CHECKING:
    from .client import StorageClient

__all__ = ["SyncError", "SyncResult", "sync_clients"]

logger = logging.getLogger(__name__)
DEFAULT_SYNC_THREADS = 16


class SyncError(ManystoreError):
    """Some objects failed to sync; ``failures`` maps each key to its error."""

    def __init__(self, failures: dict[str, BaseException], result: SyncResult) -> None:
        sample = "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:5])
        super().__init__(f"{len(failures)} object(s) failed to sync: {sample}")
        self.failures = failures
        self.result = result


@dataclass
class SyncResult:
    """What a sync did."""

    copied: int = 0
    skipped: int = 0
    deleted: int = 0
    bytes_copied: int = 0
    failures: dict[str, BaseException] = field(default_factory=dict)


def _dir_prefix(path: str) -> str:
    path = path.strip("/")
    return path + "/" if path else ""


def _unchanged(src: ObjectMetadata, dst: ObjectMetadata | None) -> bool:
    if dst is None or src.content_length != dst.content_length:
        return False
    if src.etag and dst.etag and src.etag == dst.etag:
        return True
    return dst.last_modified >= src.last_modified


def _transfer(source: StorageClient, src_key: str, target: StorageClient, dst_key: str) -> None:
    if source is target:
        target.copy(src_key, dst_key)
        return
    with (
        source.open(src_key, "rb", memory_load_limit=STREAM_BLOCK) as reader,
        target.open(dst_key, "wb") as writer,
    ):
        while chunk := reader.read(STREAM_BLOCK):
            writer.write(chunk)


def sync_clients(
    source: StorageClient,
    source_path: str,
    target: StorageClient,
    target_path: str,
    delete_unmatched_files: bool = False,
    description: str = "Syncing",
    num_worker_processes: int | None = None,
    threads: int | None = None,
) -> SyncResult:
    """Copy new or changed objects from ``source_path`` to ``target_path``.

    Raises:
        SyncError: One or more objects failed; the others were synced.
    """
    src_prefix, dst_prefix = _dir_prefix(source_path), _dir_prefix(target_path)
    existing = {m.key[len(dst_prefix) :]: m for m in target.list(dst_prefix)}
    result = SyncResult()
    seen: set[str] = set()
    jobs: list[tuple[str, str, int]] = []
    for meta in source.list(src_prefix):
        rel = meta.key[len(src_prefix) :]
        seen.add(rel)
        if _unchanged(meta, existing.get(rel)):
            result.skipped += 1
        else:
            jobs.append((meta.key, dst_prefix + rel, meta.content_length))
    workers = threads or int(os.environ.get("MANYSTORE_SYNC_THREADS", DEFAULT_SYNC_THREADS))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = {pool.submit(_transfer, source, s, target, d): (s, n) for s, d, n in jobs}
        for fut in as_completed(futures):
            key, size = futures[fut]
            try:
                fut.result()
                result.copied += 1
                result.bytes_copied += size
            except Exception as exc:
                result.failures[key] = exc
    if delete_unmatched_files:
        for rel in sorted(set(existing) - seen):
            try:
                target.delete(dst_prefix + rel)
                result.deleted += 1
            except Exception as exc:
                result.failures[dst_prefix + rel] = exc
    if target.config.metadata_provider is not None:
        target.commit_metadata()
    logger.info(
        "%s: %d copied, %d skipped, %d deleted", description, result.copied, result.skipped, result.deleted
    )
    if result.failures:
        raise SyncError(result.failures, result)
    return result
