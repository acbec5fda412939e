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
from typing import TYPE_CHECKING, Any

from .errors import ManystoreError
from .file import READ_BLOCK_SIZE as STREAM_BLOCK
from .types import ObjectMetadata
from .utils import match_glob

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


def _selected(rel: str, include: list[str] | None, exclude: list[str] | None) -> bool:
    """``rel`` passes when it matches some ``include`` glob (if any) and no ``exclude`` glob."""
    if include and not any(match_glob(p, rel) for p in include):
        return False
    return not (exclude and any(match_glob(p, rel) for p in exclude))


def _progress(description: str, jobs: list[tuple[str, str, int]], enabled: bool) -> Any:
    if not enabled or not jobs:
        return None
    from tqdm import tqdm

    return tqdm(total=sum(n for _, _, n in jobs), unit="B", unit_scale=True, desc=description, leave=False)


def sync_clients(
    source: StorageClient,
    source_path: str,
    target: StorageClient,
    target_path: str,
    delete_unmatched_files: bool = False,
    description: str = "Syncing",
    num_worker_processes: int | None = None,
    threads: int | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    dry_run: bool = False,
    progress: bool = False,
) -> SyncResult:
    """Copy new or changed objects from ``source_path`` to ``target_path``.

    Args:
        include: Glob patterns (on keys relative to ``source_path``); only matching objects sync.
        exclude: Glob patterns of objects to leave alone (on both sides, also for deletion).
        dry_run: Plan only: count what would be copied/deleted, change nothing.
        progress: Show a byte progress bar (tqdm) on stderr.

    Raises:
        SyncError: One or more objects failed; the others were synced.
    """
    src_prefix, dst_prefix = _dir_prefix(source_path), _dir_prefix(target_path)
    existing = {
        rel: m
        for m in target.list(dst_prefix)
        if _selected(rel := m.key[len(dst_prefix) :], include, exclude)
    }
    result = SyncResult()
    seen: set[str] = set()
    jobs: list[tuple[str, str, int]] = []
    for meta in source.list(src_prefix):
        rel = meta.key[len(src_prefix) :]
        if not _selected(rel, include, exclude):
            continue
        seen.add(rel)
        if _unchanged(meta, existing.get(rel)):
            result.skipped += 1
        else:
            jobs.append((meta.key, dst_prefix + rel, meta.content_length))
    unmatched = sorted(set(existing) - seen) if delete_unmatched_files else []
    if dry_run:
        result.copied, result.bytes_copied, result.deleted = (
            len(jobs),
            sum(n for _, _, n in jobs),
            len(unmatched),
        )
        return result
    workers = threads or int(os.environ.get("MANYSTORE_SYNC_THREADS", DEFAULT_SYNC_THREADS))
    bar = _progress(description, jobs, progress)
    try:
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
                if bar is not None:
                    bar.update(size)
    finally:
        if bar is not None:
            bar.close()
    for rel in unmatched:
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
