"""Generic pieces of the provider contract, shared by the ABCs, the providers and the client.

MSC 1.3.1's :class:`~manystore.types.StorageProvider` asks every provider for batch
transfers, recursive listings, attribute filters and symlink handling. These functions
implement them once on top of a provider's single-object operations, so the contract's
default methods, :class:`manystore.providers.base.BaseStorageProvider` and the client
all behave the same.
"""

from __future__ import annotations

import logging
import posixpath
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .errors import InvalidPathError
from .sync_types import (
    BatchTransferCallback,
    BatchTransferError,
    BatchTransferFailure,
    ResolvedPath,
    ResolvedPathState,
    SymlinkHandling,
)
from .utils import within_bounds

if TYPE_CHECKING:
    from .types import ObjectMetadata

__all__ = [
    "SYMLINK_ATTRIBUTE",
    "SYMLINK_ATTRIBUTES",
    "apply_list_options",
    "as_resolved",
    "check_lengths",
    "keep_listed_link",
    "notify",
    "parallel_listing",
    "resolve_inside",
    "run_batch",
    "symlink_target_of",
]

logger = logging.getLogger(__name__)

#: User-metadata key holding a symlink's target on object stores (1.3.1's format).
SYMLINK_ATTRIBUTE = "msc-symlink-target"
#: Every spelling read back (Azure metadata names cannot contain ``-``).
SYMLINK_ATTRIBUTES = (SYMLINK_ATTRIBUTE, "msc_symlink_target")

#: ``list_level(prefix, start_after, end_at, include_directories)`` -> entries in key order.
ListLevel = Callable[[str, "str | None", "str | None", bool], Iterable["ObjectMetadata"]]


# ------------------------------------------------------------------ symlinks
def symlink_target_of(meta: ObjectMetadata) -> str | None:
    """The stored (link-relative) target of ``meta`` if it describes a symlink, else ``None``."""
    if meta.symlink_target:
        return meta.symlink_target
    if meta.type == "file" and meta.content_length == 0 and meta.metadata:
        for name in SYMLINK_ATTRIBUTES:
            target = meta.metadata.get(name)
            if isinstance(target, str) and target:
                meta.symlink_target = target
                return target
    return None


def resolve_inside(link: str, target: str) -> str:
    """The key the link ``link`` with stored ``target`` points at.

    Raises:
        InvalidPathError: The target lies outside the profile (above its root).
    """
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
    if resolved == ".." or resolved.startswith("../") or posixpath.isabs(resolved):
        raise InvalidPathError(f"symlink {link!r} points at {target!r}, outside the profile's base_path")
    return resolved


def keep_listed_link(key: str, meta: ObjectMetadata, target: str | None, handling: SymlinkHandling) -> bool:
    """Apply ``handling`` to a listed entry whose stored link target is ``target`` (``None``: no link).

    Returns False when the entry is left out; sets ``meta.symlink_target`` for ``PRESERVE*``
    and clears it for ``FOLLOW*``.

    Raises:
        InvalidPathError: ``*_STRICT`` and the link leaves the profile.
    """
    if target is None:
        return True
    if handling is SymlinkHandling.SKIP:
        return False
    try:
        resolve_inside(key, target)
    except InvalidPathError:
        if handling in (SymlinkHandling.FOLLOW_STRICT, SymlinkHandling.PRESERVE_STRICT):
            raise
        return False
    preserve = (SymlinkHandling.PRESERVE, SymlinkHandling.PRESERVE_STRICT)
    meta.symlink_target = target if handling in preserve else None
    return True


# ------------------------------------------------------------------ listings
def apply_list_options(
    entries: Iterable[ObjectMetadata],
    attribute_filter_expression: str | None,
    show_attributes: bool,
    symlink_handling: SymlinkHandling | str,
    head: Callable[[str], ObjectMetadata],
    link_of: Callable[[ObjectMetadata], str | None] | None = None,
) -> Iterator[ObjectMetadata]:
    """The listing options of ``list_objects`` applied to a plain listing.

    Args:
        entries: The plain listing (keys relative to the provider).
        attribute_filter_expression: Keep only files whose user metadata satisfies it.
        show_attributes: Fill in each file's user metadata (``head`` where the listing lacks it).
        symlink_handling: What to do with symlinks (see :class:`SymlinkHandling`).
        head: ``head(key)`` -> the object's metadata (with its user metadata).
        link_of: ``link_of(meta)`` -> the stored link target of a listed file, or ``None``;
            by default the user metadata of empty objects is read with ``head``.

    Raises:
        ValueError: The filter expression is invalid, or ``symlink_handling`` unknown.
    """
    from .attribute_filter import compile_attribute_filter, matches

    predicate = compile_attribute_filter(attribute_filter_expression)
    handling = SymlinkHandling(symlink_handling)
    if predicate is None and not show_attributes and handling is SymlinkHandling.FOLLOW:
        yield from entries
        return

    def default_link_of(meta: ObjectMetadata) -> str | None:
        if meta.symlink_target or meta.content_length != 0:
            return meta.symlink_target
        if meta.metadata is None:
            try:
                meta.metadata = head(meta.key).metadata
            except FileNotFoundError:
                return None
        return symlink_target_of(meta)

    find_link = link_of or default_link_of
    for meta in entries:
        if meta.type == "file":
            if handling is not SymlinkHandling.FOLLOW and not keep_listed_link(
                meta.key, meta, find_link(meta), handling
            ):
                continue
            if (show_attributes or predicate is not None) and meta.metadata is None:
                meta.metadata = head(meta.key).metadata
            if not matches(meta, predicate):
                continue
        elif predicate is not None:
            continue  # a directory has no attributes to match
        yield meta


def parallel_listing(
    list_level: ListLevel,
    prefix: str,
    start_after: str | None,
    end_at: str | None,
    workers: int,
    look_ahead: int,
) -> Iterator[ObjectMetadata]:
    """Files under ``prefix`` in key order: one delimited listing of the first level (held in
    memory), then every sub-directory listed in full on a pool of ``workers`` threads, at most
    ``workers * look_ahead`` of them ahead of the one being yielded.

    Raises:
        ValueError: ``workers`` or ``look_ahead`` is not an int >= 1.
    """
    for name, value in (("max_workers", workers), ("look_ahead", look_ahead)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"list_objects_recursive: {name} must be an int >= 1, got {value!r}")
    if workers == 1:
        yield from list_level(prefix, start_after, end_at, False)
        return

    def sub_listing(directory: str) -> list[ObjectMetadata]:
        return list(list_level(directory, start_after, end_at, False))

    pending: deque[Future[list[ObjectMetadata]] | ObjectMetadata] = deque()
    window = workers * look_ahead
    with ThreadPoolExecutor(workers, thread_name_prefix="manystore-list") as pool:
        try:
            level = list(list_level(prefix, None, None, True))
            # Key order of what each entry stands for: a directory "d" sorts as "d/".
            level.sort(key=lambda m: m.key.rstrip("/") + "/" if m.type == "directory" else m.key)
            for meta in level:
                if meta.type == "directory":
                    sub = meta.key.rstrip("/") + "/"
                    if end_at is not None and sub > end_at and not end_at.startswith(sub):
                        break
                    if start_after is not None and start_after >= sub and not start_after.startswith(sub):
                        continue
                    pending.append(pool.submit(sub_listing, sub))
                elif within_bounds(meta.key, start_after, end_at):
                    pending.append(meta)
                while len(pending) > window or (pending and not isinstance(pending[0], Future)):
                    yield from _drain_one(pending)
            while pending:
                yield from _drain_one(pending)
        finally:
            for item in pending:
                if isinstance(item, Future):
                    item.cancel()


def _drain_one(pending: deque[Any]) -> Iterator[ObjectMetadata]:
    item = pending.popleft()
    if isinstance(item, Future):
        yield from item.result()
    else:
        yield item


# ------------------------------------------------------------------ batches
def check_lengths(name: str, first: Sequence[Any], other: Sequence[Any] | None, what: str) -> None:
    """Refuse a per-item sequence whose length differs from ``first``'s.

    Raises:
        ValueError: ``other`` is given and has another length.
    """
    if other is not None and len(other) != len(first):
        raise ValueError(
            f"{name}: {what} has {len(other)} item(s), expected {len(first)} (one per remote path)"
        )


def notify(callback: BatchTransferCallback | None, src: str, dst: str, state: Any) -> None:
    """Call a transfer observer; its failure is logged, never raised."""
    if callback is None:
        return
    try:
        callback(src, dst, state)
    except Exception:  # an observer's failure must not fail the transfer
        logger.exception("transfer_callback raised for %s -> %s (%s)", src, dst, state)


def run_batch(
    name: str,
    pairs: Sequence[tuple[str, str]],
    work: Callable[[int], None],
    max_workers: int,
    callback: BatchTransferCallback | None,
) -> None:
    """Run ``work(i)`` for each ``(source, destination)`` pair on up to ``max_workers`` threads.

    Raises:
        ValueError: ``max_workers`` is not an int >= 1.
        BatchTransferError: Some items failed (the others were done); a batch of one
            re-raises its own error.
    """
    if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
        raise ValueError(f"{name}: max_workers must be an int >= 1, got {max_workers!r}")
    failures: list[BatchTransferFailure] = []

    def one(index: int) -> None:
        src, dst = pairs[index]
        notify(callback, src, dst, "started")
        try:
            work(index)
        except Exception as exc:
            notify(callback, src, dst, "failed")
            failures.append(BatchTransferFailure(index, src, dst, exc))
            return
        notify(callback, src, dst, "completed")

    with ThreadPoolExecutor(min(max_workers, max(1, len(pairs)))) as pool:
        list(pool.map(one, range(len(pairs))))
    if failures:
        failures.sort(key=lambda f: f.index)
        if len(failures) == 1 and len(pairs) == 1:
            raise failures[0].error
        raise BatchTransferError(failures)


# ------------------------------------------------------------------ metadata providers
def as_resolved(result: Any, logical_path: str, who: object) -> ResolvedPath:
    """A metadata provider's ``realpath`` answer as a :class:`ResolvedPath`.

    Accepts 1.3.1's :class:`ResolvedPath` and the seed-000 form ``(physical_path, exists)``.

    Raises:
        TypeError: Neither form.
    """
    if isinstance(result, ResolvedPath):
        return result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], str):
        state = ResolvedPathState.EXISTS if result[1] else ResolvedPathState.UNTRACKED
        return ResolvedPath(result[0], state)
    raise TypeError(
        f"{who!r}.realpath({logical_path!r}) returned {result!r}; expected a ResolvedPath "
        "(or the older (physical_path, exists) tuple)"
    )
