"""Mirroring a prefix of one client into another (``StorageClient.sync_from``, ``manystore.sync``).

How it runs:

* **Plan.** Source and target are listed side by side; an object is transferred when the
  target lacks it or differs in size, or in content MD5 where both sides expose one (S3
  single-part ETags), or when the target is older than the source. Unchanged objects
  are skipped, so rerunning a sync — also one that was killed — copies only the rest.
* **Transfer.** Threads in this process (``threads``, default 16; local → local by the file systems, 1 to 16), transfers starting while
  the source is still listed. With ``num_worker_processes`` > 1 the tree is split into
  partitions (directories, and key ranges of big ones — see :mod:`manystore.mirror.work`)
  that worker processes list and sync, each on ``threads`` threads; ``execution="ray"``
  does the same with Ray tasks across a cluster. Each object takes the
  cheapest route (see :mod:`manystore.mirror.transfer`), server-side when both profiles
  name the same store, and is written atomically.
* **Failures.** A failing object is retried, then recorded; the others still complete and
  :class:`SyncError` lists every failure with its cause at the end.
* **Then** unmatched target objects are deleted (``delete_unmatched_files``), and a
  target's metadata provider (manifest) is committed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from typing import TYPE_CHECKING, Any

from ..client_links import PatternMatcher
from ..errors import ConfigError, InvalidPathError
from ..providers.base import BaseStorageProvider
from ..sync_types import SyncError, SyncResult
from ..types import ObjectMetadata, PatternList, SymlinkHandling
from .dryrun import DryrunReport, listed_files
from .executors import SyncExecutor, make_executor
from .plan import (
    Partition,
    PartitionPlan,
    SyncSpec,
    dir_prefix,
    discover_partitions,
    iter_plan,
    plan_partition,
)
from .transfer import Transfer, TransferResult, is_local_pair, local_pair_threads, transfer_jobs
from .work import SPLIT_ABOVE, Outcome, sync_partition

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["EmptySourceWarning", "SyncError", "SyncResult", "sync_clients"]

logger = logging.getLogger(__name__)
DEFAULT_SYNC_THREADS = 16
_DELETE_THREADS = 16


class EmptySourceWarning(UserWarning):
    """A sync found no object under its source. ``url`` names the source; ``missing`` is True
    when the source does not exist at all (no such directory, or no object under the prefix);
    ``reason`` says which, without the URL."""

    def __init__(self, message: str, url: str, missing: bool, reason: str) -> None:
        super().__init__(message)
        self.url = url
        self.missing = missing
        self.reason = reason


class _Progress:
    """A tqdm bar on stderr: rate and ETA, with ``done/total objects`` and bytes copied.

    In-process syncs know each transfer's size and count bytes; worker syncs learn of
    objects a partition at a time and count objects.
    """

    def __init__(self, description: str, enabled: bool, by_objects: bool = False) -> None:
        self.objects = self.total_objects = self.nbytes = 0
        self._by_objects = by_objects
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            unit = {"unit": "obj"} if by_objects else {"unit": "B", "unit_scale": True, "unit_divisor": 1024}
            self._bar = tqdm(total=0, desc=description, leave=False, **unit)

    def plan(self, objects: int, nbytes: int) -> None:
        self.total_objects += objects
        if self._bar is not None:
            self._bar.total += objects if self._by_objects else nbytes
            self._show()

    def advance(self, objects: int, nbytes: int) -> None:
        self.objects += objects
        self.nbytes += nbytes
        if self._bar is not None:
            self._bar.update(objects if self._by_objects else nbytes)
            self._show()

    def _show(self) -> None:
        text = f"{self.objects}/{self.total_objects} objects"
        if self._by_objects:
            text = f"{self._bar.format_sizeof(self.nbytes, 'B', 1024)} copied"
        self._bar.set_postfix_str(text, refresh=False)
        self._bar.refresh()

    @property
    def shown(self) -> bool:
        """A bar is drawn (else the counts are not needed)."""
        return self._bar is not None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _merge(result: SyncResult, part: TransferResult | Outcome) -> None:
    result.copied += part.copied
    result.bytes_copied += part.bytes_copied
    result.failures.update(part.failures)


def _run_threads(
    source: StorageClient,
    target: StorageClient,
    spec: SyncSpec,
    threads: int,
    progress: _Progress,
    source_listing: Iterable[ObjectMetadata] | None = None,
) -> tuple[SyncResult, list[str]]:
    """Plan and transfer in this process, transfers starting while the source is still listed."""
    plan = PartitionPlan()
    shown = progress.shown  # no bar: no calls per object
    done = transfer_jobs(
        Transfer(source, target, spec.preserve_attributes),
        iter_plan(source, target, spec, Partition(), plan, source_listing),
        threads,
        on_start=(lambda job: progress.plan(1, job[2])) if shown else None,
        on_done=(lambda job, _: progress.advance(1, job[2])) if shown else None,
    )
    result = SyncResult(skipped=plan.skipped)
    _merge(result, done)
    return result, plan.unmatched


def _run_executor(
    source: StorageClient,
    target: StorageClient,
    spec: SyncSpec,
    threads: int,
    executor: SyncExecutor,
    progress: _Progress,
    dry_run: bool,
    report: DryrunReport | None = None,
) -> tuple[SyncResult, list[str]]:
    """Sync partitions on the executor's workers; a partition too big for one worker comes
    back as cut keys and goes out again as key ranges. Returns the result and deleted keys.
    A dry run with a ``report`` gets the metadata of what would change written into it."""
    result, deleted_keys = SyncResult(), []
    pending: dict[Future[Outcome], Partition] = {}

    def submit(part: Partition, split_above: int | None) -> None:
        args = (source, target, spec, part, threads, dry_run, split_above, report is not None)
        pending[executor.submit(sync_partition, *args)] = part

    for part in discover_partitions(source, target, spec, executor.slots * 4):
        submit(part, SPLIT_ABOVE)
    while pending:
        for fut in wait(pending, return_when=FIRST_COMPLETED).done:
            part = pending.pop(fut)
            try:
                out: Outcome = fut.result()
            except Exception as exc:  # its listing failed (after retries), or the worker died
                result.failures[part.describe(spec)] = exc
                continue
            if out.cuts is not None:
                progress.plan(out.objects, 0)
                for sub in part.split(out.cuts):
                    submit(sub, None)
                continue
            if part.after is None and part.upto is None:
                progress.plan(out.objects, 0)
            _merge(result, out)
            if report is not None:
                report.write(out.to_add, out.to_delete)
            result.skipped += out.skipped
            result.deleted += out.deleted
            deleted_keys.extend(out.deleted_keys)
            progress.advance(out.objects, out.bytes_copied)
    return result, deleted_keys


def _delete(target: StorageClient, keys: list[str], result: SyncResult) -> None:
    def remove(key: str) -> None:
        try:
            target.delete(key)
        except FileNotFoundError:
            pass  # gone already: the goal holds

    with ThreadPoolExecutor(_DELETE_THREADS) as pool:
        futures = {pool.submit(remove, k): k for k in keys}
        for fut in as_completed(futures):
            error = fut.exception()
            if error is None:
                result.deleted += 1
            else:
                result.failures[futures[fut]] = error


def _finish(result: SyncResult, started: float) -> SyncResult:
    result.total_work_units = result.copied + result.deleted + len(result.failures)
    result.total_time_seconds = time.monotonic() - started
    return result


def _names_one_object(client: StorageClient, path: str) -> bool:
    try:
        return bool(path.strip("/")) and client.is_file(path.strip("/"))
    except Exception:  # an unreadable answer is not a reason to fail an empty sync
        return False


def _warn_empty_source(client: StorageClient, path: str) -> None:
    """Warn (and log) that the source holds nothing, saying whether it exists at all."""
    key = path.strip("/")
    url = client.url_prefix + (key + "/" if key else "")
    sp = client._storage_provider
    local = (
        sp.local_path(key)
        if isinstance(sp, BaseStorageProvider) and client._metadata_provider is None
        else None
    )
    if local is not None:
        missing = not os.path.isdir(local)
        what = "no such directory" if missing else "empty directory"
    else:  # a prefix exists only through its objects; the bucket exists (listing it worked)
        missing = bool(key)
        what = "no such prefix (no object under it)" if missing else "empty bucket"
    message = f"sync: source {url}: {what}: nothing to sync"
    logger.warning("%s", message)
    warnings.warn(EmptySourceWarning(message, url, missing, what), stacklevel=3)


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
    progress: bool | None = False,
    execution: str = "local",
    ray_address: str | None = None,
    *,
    patterns: PatternList | None = None,
    ignore_hidden: bool = False,
    symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    preserve_source_attributes: bool = False,
    source_files: list[str] | None = None,
    commit_metadata: bool = True,
    dryrun_output_path: str | None = None,
    write_dryrun: bool = False,
) -> SyncResult:
    """Copy new or changed objects from ``source_path`` to ``target_path``.

    Args:
        delete_unmatched_files: Delete target objects the source lacks (after the copies).
        description: Label of the progress bar and the log line.
        num_worker_processes: Worker processes (``None`` or 1: threads in this process only).
        threads: Transfer threads per process or Ray task (default ``MANYSTORE_SYNC_THREADS``, else
            16, or for local -> local by the file systems: 1 in memory, 16 over a network, else half
            the CPUs, 1 to 4: see :func:`~manystore.mirror.transfer.local_threads`).
        include: Glob patterns (on keys relative to ``source_path``); only matching objects sync.
        exclude: Glob patterns of objects to leave alone (on both sides, also for deletion).
        dry_run: Plan only: count what would be copied/deleted, change nothing.
        progress: Show a progress bar (objects, bytes, rate, ETA) on stderr; ``None``: when
            stderr is a terminal.
        execution: ``"local"`` (threads, or processes) or ``"ray"`` (tasks on a Ray cluster).
        ray_address: Cluster to join with ``execution="ray"`` (``None``: start or join a local one).
        patterns: 1.3.1's include/exclude list (see :class:`manystore.client_links.PatternMatcher`),
            on keys relative to ``source_path``: a source object they exclude is not copied
            (a target object of the same key is kept; other target objects may be deleted).
        ignore_hidden: Leave out keys with a component starting with ``.`` on both sides.
        symlink_handling: Listing of both sides (see :meth:`manystore.StorageClient.list`);
            ``PRESERVE`` recreates links on the target with ``make_symlink`` instead of
            copying what they point at; ``SKIP`` leaves them out.
        preserve_source_attributes: Write each source object's user metadata with its copy
            (one metadata request per copied object).
        source_files: Only these keys (relative to ``source_path``), looked up one by one
            instead of listing the source; a missing one is logged and left out. Synced by
            threads in this process (``num_worker_processes``/Ray are not used).
        commit_metadata: Commit the target's metadata provider at the end.
        dryrun_output_path: With ``dry_run``: the directory for 1.3.1's dry-run listing
            files (``files_to_add.jsonl``, ``files_to_delete.jsonl``).
        write_dryrun: With ``dry_run``: write those files (into a new temporary directory
            when ``dryrun_output_path`` is ``None``) and return them in ``SyncResult.dryrun``.

    Returns:
        The counts of what was copied, skipped and deleted.

    Warns:
        EmptySourceWarning: No object under ``source_path`` (also logged); its ``missing``
            tells an empty source from one that does not exist.

    Raises:
        SyncError: One or more objects failed (each with its cause); the others were synced.
        ConfigError: A bad option value.
        InvalidPathError: ``source_path`` names one object, not a directory.
        ValueError: Both ``source_files`` and ``patterns`` given.
    """
    if source_files and patterns:
        raise ValueError(
            f"sync: got both source_files ({len(source_files)} keys) and patterns={patterns!r}; pass one"
        )
    started = time.monotonic()
    if threads is not None:
        workers = threads
    elif "MANYSTORE_SYNC_THREADS" in os.environ:
        workers = int(os.environ["MANYSTORE_SYNC_THREADS"])
    else:
        local = is_local_pair(source, target)
        workers = (
            local_pair_threads(source, source_path, target, target_path) if local else DEFAULT_SYNC_THREADS
        )
    if workers < 1:
        raise ConfigError(f"sync threads must be >= 1, got {workers!r}")
    spec = SyncSpec(
        dir_prefix(source_path),
        dir_prefix(target_path),
        tuple(include or ()),
        tuple(exclude or ()),
        delete_unmatched_files,
        tuple(PatternMatcher(patterns).patterns) if patterns else (),
        ignore_hidden,
        SymlinkHandling(symlink_handling),
        preserve_source_attributes,
    )
    listing = None if source_files is None else listed_files(source, spec.src_prefix, source_files, spec)
    executor = None if listing is not None else make_executor(execution, num_worker_processes, ray_address)
    report = DryrunReport(dryrun_output_path) if dry_run and write_dryrun else None
    bar = _Progress(description, sys.stderr.isatty() if progress is None else progress, executor is not None)
    unmatched: list[str] = []  # target-only keys, deleted below (in-process syncs)
    deleted_keys: list[str] = []  # keys the workers deleted
    try:
        sp = target._storage_provider
        if not dry_run and isinstance(sp, BaseStorageProvider):
            reaped = sp.reap_temp_files(spec.dst_prefix)
            if reaped:
                logger.info("%s: removed %d temp file(s) of an interrupted run", description, reaped)
        if executor is not None:
            result, deleted_keys = _run_executor(
                source, target, spec, workers, executor, bar, dry_run, report
            )
        elif dry_run:
            plan = plan_partition(source, target, spec, Partition(), report is not None, listing)
            result, unmatched = SyncResult(skipped=plan.skipped), plan.unmatched
            result.copied, result.bytes_copied = len(plan.jobs), sum(job[2] for job in plan.jobs)
            if report is not None:
                report.write(plan.added, plan.unmatched_meta)
        else:
            result, unmatched = _run_threads(source, target, spec, workers, bar, listing)
    finally:
        bar.close()
        if executor is not None:
            executor.close()
        if report is not None:
            report.close()
    if not (result.copied or result.skipped or result.failures):
        if _names_one_object(source, source_path):
            raise InvalidPathError(
                f"{source.url_prefix}{source_path.strip('/')} is an object, not a directory: "
                "sync mirrors a prefix; copy one object with cp / StorageClient.copy"
            )
        _warn_empty_source(source, source_path)
    if dry_run:
        result.deleted += len(unmatched)
        if report is not None:
            result.dryrun, result.total_bytes_deleted = report.result(), report.bytes_deleted
        return _finish(result, started)
    _delete(target, unmatched, result)
    mp = target._metadata_provider
    if mp is not None and executor is None:
        if commit_metadata:
            target.commit_metadata()
    elif mp is not None:  # the workers' own metadata providers are gone: record it all here
        for key in deleted_keys:
            mp.remove_file(key)
        if commit_metadata:
            target.commit_metadata(spec.dst_prefix)
        else:  # registered, left for the caller's commit
            for meta in target._storage_provider.list_objects(spec.dst_prefix):
                mp.add_file(meta.key, meta)
    logger.info(
        "%s: %d copied, %d skipped, %d deleted, %d failed",
        description,
        result.copied,
        result.skipped,
        result.deleted,
        len(result.failures),
    )
    _finish(result, started)
    if result.failures:
        sample = "; ".join(f"{k}: {v}" for k, v in list(result.failures.items())[:5])
        more = f" (and {len(result.failures) - 5} more)" if len(result.failures) > 5 else ""
        raise SyncError(f"{len(result.failures)} object(s) failed to sync: {sample}{more}", result)
    return result
