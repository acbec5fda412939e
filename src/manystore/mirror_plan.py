"""Planning a sync: which objects to copy, which to skip, which to delete.

The work is split into :class:`Partition` s (a directory's own files, or a whole
sub-tree) so that listing, too, can run in parallel — on threads, processes or a Ray
cluster. Each partition is planned by listing the source and target side by side
(:func:`plan_partition`); the plans' jobs are then batched into :class:`Chunk` s for
transfer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .types import ObjectMetadata
from .utils import match_glob

if TYPE_CHECKING:
    from .client import StorageClient

__all__ = [
    "Chunk",
    "Job",
    "Partition",
    "PartitionPlan",
    "SyncSpec",
    "chunk_jobs",
    "dir_prefix",
    "discover_partitions",
    "iter_plan",
    "plan_partition",
    "unchanged",
]

#: ``(source key, target key, size)`` of one object to transfer.
Job = tuple[str, str, int]
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MAX_DISCOVERY_DEPTH = 4


@dataclass(frozen=True)
class SyncSpec:
    """What to sync: directory prefixes on both sides and the key filters (picklable)."""

    src_prefix: str
    dst_prefix: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    delete_unmatched_files: bool = False

    def selected(self, rel: str) -> bool:
        """``rel`` matches some include glob (if any) and no exclude glob."""
        if self.include and not any(match_glob(p, rel) for p in self.include):
            return False
        return not any(match_glob(p, rel) for p in self.exclude)


@dataclass(frozen=True)
class Partition:
    """A share of the tree: the files directly in ``rel`` or, ``recursive``, all below it.

    ``rel`` is ``""`` or a directory path ending in ``/``, relative to both prefixes.
    """

    rel: str = ""
    recursive: bool = True


@dataclass
class PartitionPlan:
    """What one partition needs: transfers, the number already in sync, and target-only keys."""

    jobs: list[Job] = field(default_factory=list)
    skipped: int = 0
    unmatched: list[str] = field(default_factory=list)


@dataclass
class Chunk:
    """A batch of transfers handed to one worker."""

    jobs: list[Job]

    @property
    def size(self) -> int:
        """Bytes in the batch."""
        return sum(n for _, _, n in self.jobs)


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
    if dst is None or src.content_length != dst.content_length:
        return False
    a, b = (src.etag or "").strip('"'), (dst.etag or "").strip('"')
    if _MD5.match(a) and _MD5.match(b):
        return a == b
    if a and a == b:
        return True
    # Many stores keep whole seconds (S3 and Azure listings, HTTP dates): compare at that precision.
    return dst.last_modified >= src.last_modified.replace(microsecond=0)


def _files(client: StorageClient, prefix: str, recursive: bool) -> Iterator[ObjectMetadata]:
    for meta in client.list(prefix, include_directories=not recursive):
        if meta.type != "directory":
            yield meta


def _subdirs(client: StorageClient, prefix: str) -> set[str]:
    return {
        meta.key[len(prefix) :].rstrip("/") + "/"
        for meta in client.list(prefix, include_directories=True)
        if meta.type == "directory"
    }


def iter_plan(
    source: StorageClient, target: StorageClient, spec: SyncSpec, part: Partition, plan: PartitionPlan
) -> Iterator[Job]:
    """Yield the transfers of one partition as the source listing streams in.

    The target side is listed first (held as a dict); ``plan`` receives the skipped count,
    and once the generator is exhausted, the target-only keys to delete.
    """
    src_prefix, dst_prefix = spec.src_prefix + part.rel, spec.dst_prefix + part.rel
    existing: dict[str, ObjectMetadata] = {}
    for meta in _files(target, dst_prefix, part.recursive):
        rel = part.rel + meta.key[len(dst_prefix) :]
        if spec.selected(rel):
            existing[rel] = meta
    for meta in _files(source, src_prefix, part.recursive):
        rel = part.rel + meta.key[len(src_prefix) :]
        if not spec.selected(rel):
            continue
        if unchanged(meta, existing.pop(rel, None)):
            plan.skipped += 1
        else:
            yield (meta.key, spec.dst_prefix + rel, meta.content_length)
    if spec.delete_unmatched_files:
        plan.unmatched = sorted(spec.dst_prefix + rel for rel in existing)


def plan_partition(
    source: StorageClient, target: StorageClient, spec: SyncSpec, part: Partition
) -> PartitionPlan:
    """List one partition on both sides and decide each object's fate (a worker entry point)."""
    plan = PartitionPlan()
    plan.jobs = list(iter_plan(source, target, spec, part, plan))
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
            parts.append(Partition(rel, recursive=False))
            level.extend(rel + d for d in sorted(subdirs))
        frontier, depth = level, depth + 1
    parts.extend(Partition(rel, recursive=True) for rel in frontier)
    return parts


def chunk_jobs(
    jobs: list[Job], workers: int, max_objects: int = 512, max_bytes: int = 1 << 30
) -> list[Chunk]:
    """Batch ``jobs`` so that ``workers`` workers get several chunks each (for balance and
    progress), none above ``max_objects`` objects or (unless one object) ``max_bytes``."""
    if not jobs:
        return []
    per_chunk = max(1, min(max_objects, -(-len(jobs) // (workers * 4))))
    chunks: list[Chunk] = []
    current: list[Job] = []
    size = 0
    for job in jobs:
        if current and (len(current) >= per_chunk or size + job[2] > max_bytes):
            chunks.append(Chunk(current))
            current, size = [], 0
        current.append(job)
        size += job[2]
    chunks.append(Chunk(current))
    return chunks
