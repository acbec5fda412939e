"""The unit of work a sync hands to a worker process or a Ray task: one partition.

:func:`sync_partition` lists its partition's source; a partition of at most
``split_above`` objects is then synced on the spot (target listed, changes transferred on
threads, unmatched objects deleted), a bigger one only answers with cut keys every
``split_above`` objects, and the driver sends out its key ranges as new partitions. So the
driver holds a handful of keys per partition — never the listing — and a flat directory
of millions of objects still spreads over every worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..types import ObjectMetadata
from .plan import Partition, PartitionPlan, SyncSpec, files, iter_plan
from .transfer import Transfer, portable_error, transfer_jobs

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["Outcome", "sync_partition"]

#: Objects per key range when a partition is cut (and the most a worker lists before syncing).
SPLIT_ABOVE = 2000


@dataclass
class Outcome:
    """What a worker did with a partition (picklable).

    Attributes:
        objects: Source objects examined (those the include/exclude globs select).
        cuts: Set when the partition was too big to sync at once: the keys to cut it after.
        deleted_keys: Target keys deleted (the driver updates a metadata provider with them).
        to_add: Dry runs that record: the source objects that would be copied.
        to_delete: Dry runs that record: the target objects that would be deleted.
    """

    objects: int = 0
    copied: int = 0
    skipped: int = 0
    deleted: int = 0
    bytes_copied: int = 0
    failures: dict[str, BaseException] = field(default_factory=dict)
    deleted_keys: list[str] = field(default_factory=list)
    cuts: list[str] | None = None
    to_add: list[ObjectMetadata] = field(default_factory=list)
    to_delete: list[ObjectMetadata] = field(default_factory=list)


def _survey(
    source: StorageClient, spec: SyncSpec, part: Partition, limit: int
) -> tuple[list[ObjectMetadata], Outcome | None]:
    """The partition's source listing if it has at most ``limit`` objects, else cut keys."""
    listing = files(source, spec.src_prefix, part, spec)
    held: list[ObjectMetadata] = []
    for meta in listing:
        held.append(meta)
        if len(held) > limit:
            break
    else:
        return held, None
    cut = len(spec.src_prefix)
    cuts = [held[limit - 1].key[cut:]]
    count = len(held)
    selected = sum(1 for m in held if spec.selected(m.key[cut:]))
    for meta in listing:
        count += 1
        rel = meta.key[cut:]
        selected += spec.selected(rel)
        if count % limit == 0:
            cuts.append(rel)
    return [], Outcome(objects=selected, cuts=cuts)


def sync_partition(
    source: StorageClient,
    target: StorageClient,
    spec: SyncSpec,
    part: Partition,
    threads: int,
    dry_run: bool,
    split_above: int | None = SPLIT_ABOVE,
    record: bool = False,
) -> Outcome:
    """Sync one partition (or, above ``split_above`` objects, only say where to cut it).

    Failures of single objects are collected in the outcome; a failing listing raises.
    ``record`` (dry runs): the outcome carries the metadata of what would be copied and deleted.
    """
    held: list[ObjectMetadata] | None = None
    if split_above is not None:
        held, cut = _survey(source, spec, part, split_above)
        if cut is not None:
            return cut
    plan = PartitionPlan(record=record)
    jobs = iter_plan(source, target, spec, part, plan, held)
    out = Outcome()
    if dry_run:
        listed = list(jobs)
        out.copied, out.bytes_copied = len(listed), sum(job[2] for job in listed)
        out.objects, out.deleted = plan.skipped + len(listed), len(plan.unmatched)
        out.to_add, out.to_delete = plan.added, plan.unmatched_meta
    else:
        done = transfer_jobs(Transfer(source, target), jobs, threads)
        out.copied, out.bytes_copied, out.failures = done.copied, done.bytes_copied, done.failures
        out.objects = plan.skipped + done.copied + len(done.failures)
        for key in plan.unmatched:
            try:
                target.delete(key)
            except FileNotFoundError:
                pass  # gone already: the goal holds
            except Exception as exc:
                out.failures[key] = exc
                continue
            out.deleted += 1
            out.deleted_keys.append(key)
    out.skipped = plan.skipped
    out.failures = {k: portable_error(v) for k, v in out.failures.items()}
    return out
