"""Planning a sync: which objects to copy, which to skip, which to delete.

The work is split into :class:`Partition` s (a directory's own files, a whole sub-tree,
or a key range of one) so that listing, too, can run in parallel — on processes or a Ray
cluster. Each partition is planned by listing the source and target side by side
(:func:`iter_plan`), its transfers streaming out as the source listing comes in.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..client_links import PatternMatcher
from ..providers.posix_file import PosixFileStorageProvider
from ..types import ObjectMetadata, PatternType, SymlinkHandling
from ..utils import match_glob

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = [
    "Job",
    "Partition",
    "PartitionPlan",
    "SyncSpec",
    "dir_prefix",
    "discover_partitions",
    "files",
    "iter_plan",
    "plan_partition",
    "unchanged",
]

#: ``(source key, target key, size, symlink target)`` of one object to transfer; the last is the
#: stored target of a symlink to recreate (``symlink_handling=PRESERVE``), else ``None``.
Job = tuple[str, str, int, str | None]
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MAX_DISCOVERY_DEPTH = 4
_SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class SyncSpec:
    """What to sync: directory prefixes on both sides and the key filters (picklable).

    ``include``/``exclude`` globs select keys on both sides (an excluded target object is
    never deleted). ``patterns`` (1.3.1's) only decide which source objects are copied.
    ``ignore_hidden`` leaves out keys with a path component starting with ``.`` on both sides.
    """

    src_prefix: str
    dst_prefix: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    delete_unmatched_files: bool = False
    patterns: tuple[tuple[PatternType, str], ...] = ()
    ignore_hidden: bool = False
    symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW
    preserve_attributes: bool = False

    def selected(self, rel: str) -> bool:
        """``rel`` is not hidden (with ``ignore_hidden``), matches some include glob (if any) and no exclude glob."""
        if self.ignore_hidden and (rel.startswith(".") or "/." in rel):  # a component starting with "."
            return False
        if self.include and not any(match_glob(p, rel) for p in self.include):
            return False
        return not self.exclude or not any(match_glob(p, rel) for p in self.exclude)

    @functools.cached_property
    def plain(self) -> bool:
        """No key filter at all (no globs, patterns or ``ignore_hidden``): every key is selected and copied."""
        return not (self.include or self.exclude or self.patterns or self.ignore_hidden)

    @functools.cached_property
    def _matcher(self) -> PatternMatcher | None:
        return PatternMatcher(list(self.patterns)) if self.patterns else None

    def copies(self, rel: str) -> bool:
        """The ``patterns`` let the source object ``rel`` be copied."""
        matcher = self._matcher
        return matcher is None or matcher.matches(rel)


@dataclass(frozen=True)
class Partition:
    """A share of the tree: the files directly in ``rel`` or, ``recursive``, all below it,
    optionally only keys in ``(after, upto]``.

    ``rel`` is ``""`` or a directory path ending in ``/``; ``rel``, ``after`` and ``upto`` are
    relative to the sync's source and target prefixes alike.
    """

    rel: str = ""
    recursive: bool = True
    after: str | None = None
    upto: str | None = None

    def bounds(self, prefix: str) -> tuple[str | None, str | None]:
        """``(start_after, end_at)`` for a listing under the side whose prefix is ``prefix``."""
        return (
            None if self.after is None else prefix + self.after,
            None if self.upto is None else prefix + self.upto,
        )

    def split(self, cuts: list[str]) -> list[Partition]:
        """Sub-partitions covering this one, cut after each key of the sorted ``cuts``."""
        edges = [self.after, *cuts, self.upto]
        return [Partition(self.rel, self.recursive, lo, hi) for lo, hi in itertools.pairwise(edges)]

    def describe(self, spec: SyncSpec) -> str:
        """The source prefix and key range, for messages."""
        where = spec.src_prefix + self.rel + ("" if self.recursive else " (this level)")
        if self.after is None and self.upto is None:
            return where
        return f"{where} keys ({self.after or ''}, {self.upto or ''}]"


@dataclass
class PartitionPlan:
    """What one partition needs: transfers, the number already in sync, and target-only keys."""

    jobs: list[Job] = field(default_factory=list)
    skipped: int = 0
    unmatched: list[str] = field(default_factory=list)
    record: bool = False
    added: list[ObjectMetadata] = field(default_factory=list)
    unmatched_meta: list[ObjectMetadata] = field(default_factory=list)


def dir_prefix(path: str) -> str:
    """``path`` as a directory prefix: ``""`` or ``"a/b/"``."""
    path = path.strip("/")
    return path + "/" if path else ""


def unchanged(src: ObjectMetadata, dst: ObjectMetadata | None) -> bool:
    """Whether ``dst`` already holds ``src``'s content.

    Sizes must match. When both ETags are content MD5s (single-part S3-style) they decide;
    otherwise equal ETags mean unchanged, and failing that a target at least as new as
    the source (to the whole second) is taken as a completed earlier copy.
    """
    if dst is None:
        return False
    if src.symlink_target is not None or dst.symlink_target is not None:
        return src.symlink_target == dst.symlink_target
    if src.content_length != dst.content_length:
        return False
    a, b = (src.etag or "").strip('"'), (dst.etag or "").strip('"')
    if _MD5.match(a) and _MD5.match(b):
        return a == b
    if a and a == b:
        return True
    # Many stores keep whole seconds (S3 and Azure listings, HTTP dates): compare at that precision.
    return dst.last_modified >= src.last_modified.replace(microsecond=0)


def files(
    client: StorageClient, prefix: str, part: Partition, spec: SyncSpec | None = None
) -> Iterator[ObjectMetadata]:
    """The objects of ``part`` on the side whose sync prefix is ``prefix`` (directories dropped),
    listed with ``spec``'s symlink handling."""
    lo, hi = part.bounds(prefix)
    listing = client.list(
        prefix + part.rel,
        start_after=lo,
        end_at=hi,
        include_directories=not part.recursive,
        symlink_handling=spec.symlink_handling if spec is not None else SymlinkHandling.FOLLOW,
    )
    for meta in listing:
        if meta.type != "directory":
            yield meta


def _subdirs(client: StorageClient, prefix: str) -> set[str]:
    return {
        meta.key[len(prefix) :].rstrip("/") + "/"
        for meta in client.list(prefix, include_directories=True)
        if meta.type == "directory"
    }


def _posix_pair(
    source: StorageClient, target: StorageClient, spec: SyncSpec, part: Partition
) -> tuple[PosixFileStorageProvider, PosixFileStorageProvider] | None:
    """Both providers when the plan can list them with ``scan_files``: plain POSIX profiles (no
    metadata provider), symlinks followed, a recursive partition."""
    if spec.symlink_handling is not SymlinkHandling.FOLLOW or not part.recursive:
        return None
    src_sp, dst_sp = source._storage_provider, target._storage_provider
    if source._metadata_provider is not None or target._metadata_provider is not None:
        return None
    if isinstance(src_sp, PosixFileStorageProvider) and isinstance(dst_sp, PosixFileStorageProvider):
        return src_sp, dst_sp
    return None


def _iter_posix_plan(
    src_sp: PosixFileStorageProvider,
    dst_sp: PosixFileStorageProvider,
    spec: SyncSpec,
    part: Partition,
    plan: PartitionPlan,
) -> Iterator[Job]:
    """:func:`iter_plan` between two local directories: the same decisions as :func:`unchanged`
    (POSIX ETags are never MD5s: equal size and mtime, or a target at least as new as the
    source to the whole second) on ``(key, size, mtime)`` tuples instead of metadata objects."""
    existing: dict[str, tuple[int, int]] = {}
    plain = spec.plain
    cut = len(spec.dst_prefix)
    for chunk in dst_sp.scan_chunks(spec.dst_prefix + part.rel, *part.bounds(spec.dst_prefix)):
        for key, size, mtime in chunk:
            rel = key[cut:]
            if plain or spec.selected(rel):
                existing[rel] = (size, mtime)
    cut = len(spec.src_prefix)
    dst_prefix = spec.dst_prefix
    same = spec.src_prefix == dst_prefix  # then a target key is its source key
    for chunk in src_sp.scan_chunks(spec.src_prefix + part.rel, *part.bounds(spec.src_prefix)):
        if plain and not existing:  # nothing to compare with or filter: copy the lot
            if same:
                for key, size, _ in chunk:
                    yield (key, key, size, None)
            else:
                for key, size, _ in chunk:
                    yield (key, dst_prefix + key[cut:], size, None)
            continue
        for key, size, mtime in chunk:
            rel = key[cut:]
            if not plain and not spec.selected(rel):
                continue
            dst = existing.pop(rel, None) if existing else None
            if not plain and not spec.copies(rel):
                continue  # as in iter_plan
            if (
                dst is not None
                and dst[0] == size
                and (dst[1] == mtime or dst[1] >= mtime - mtime % _SECOND_NS)
            ):
                plan.skipped += 1
                continue
            yield (key, dst_prefix + rel, size, None)
    if spec.delete_unmatched_files:
        plan.unmatched = sorted(dst_prefix + rel for rel in existing)


def iter_plan(
    source: StorageClient,
    target: StorageClient,
    spec: SyncSpec,
    part: Partition,
    plan: PartitionPlan,
    source_listing: Iterable[ObjectMetadata] | None = None,
) -> Iterator[Job]:
    """Yield the transfers of one partition as the source listing streams in.

    The target side is listed first (held as a dict); ``plan`` receives the skipped count,
    and once the generator is exhausted, the target-only keys to delete.
    ``source_listing``: the partition's source objects when the caller has listed them already.
    """
    if source_listing is None and not plan.record:
        pair = _posix_pair(source, target, spec, part)
        if pair is not None:
            yield from _iter_posix_plan(*pair, spec, part, plan)
            return
    existing: dict[str, ObjectMetadata] = {}
    for meta in files(target, spec.dst_prefix, part, spec):
        rel = meta.key[len(spec.dst_prefix) :]
        if spec.selected(rel):
            existing[rel] = meta
    listing = files(source, spec.src_prefix, part, spec) if source_listing is None else source_listing
    for meta in listing:
        rel = meta.key[len(spec.src_prefix) :]
        if not spec.selected(rel):
            continue
        dst = existing.pop(rel, None)
        if not spec.copies(rel):
            continue  # as in 1.3.1: not copied, and a target object of the same key is kept
        if unchanged(meta, dst):
            plan.skipped += 1
            continue
        if plan.record:
            plan.added.append(meta)
        yield (meta.key, spec.dst_prefix + rel, meta.content_length, meta.symlink_target)
    if spec.delete_unmatched_files:
        plan.unmatched = sorted(spec.dst_prefix + rel for rel in existing)
        if plan.record:
            plan.unmatched_meta = [existing[rel] for rel in sorted(existing)]


def plan_partition(
    source: StorageClient,
    target: StorageClient,
    spec: SyncSpec,
    part: Partition,
    record: bool = False,
    source_listing: Iterable[ObjectMetadata] | None = None,
) -> PartitionPlan:
    """List one partition on both sides and decide each object's fate (a worker entry point).

    ``record``: also keep the metadata of the objects to copy and to delete (dry runs).
    """
    plan = PartitionPlan(record=record)
    plan.jobs = list(iter_plan(source, target, spec, part, plan, source_listing))
    return plan


def discover_partitions(
    source: StorageClient, target: StorageClient, spec: SyncSpec, wanted: int
) -> list[Partition]:
    """Split the tree into at least ``wanted`` partitions where its directories allow.

    Walks directories breadth-first with delimiter listings (of the source, and of the
    target too when unmatched files are deleted) until enough sub-trees are found.
    """
    if wanted <= 1:
        return [Partition()]
    parts: list[Partition] = []
    frontier, depth = [""], 0
    while frontier and len(parts) + len(frontier) < wanted and depth < _MAX_DISCOVERY_DEPTH:
        level: list[str] = []
        for rel in frontier:
            subdirs = _subdirs(source, spec.src_prefix + rel)
            if spec.delete_unmatched_files:
                subdirs |= _subdirs(target, spec.dst_prefix + rel)
            # A level without sub-directories is listed flat, so that it can be cut into key ranges.
            parts.append(Partition(rel, recursive=not subdirs))
            level.extend(rel + d for d in sorted(subdirs))
        frontier, depth = level, depth + 1
    parts.extend(Partition(rel, recursive=True) for rel in frontier)
    return parts
