"""Many objects at once: object groups, archives, Get-Batch, resumable readers and ETL.

Home of the AIStore SDK's multi-object API on every backend. It builds on the
core client and the sync engine's executors and imports nothing from the other
ML layers. See ``docs/architecture.md``.
"""

from __future__ import annotations

__all__: list[str] = []

# --- archives and Get-Batch (issue 13 part B) -------------------------------------------
from .archive import (
    ArchiveConfig,
    ArchiveMember,
    ArchiveMemberNotFoundError,
    ArchiveMode,
    ArchiveWriter,
    ObjectSource,
    extract,
    iter_members,
    list_archive,
    read_member,
    write_archive,
)
from .getbatch import BatchItem, BatchItemInfo, BatchStats, BatchStream, GetBatch, get_batch

__all__ += [
    "ArchiveConfig",
    "ArchiveMember",
    "ArchiveMemberNotFoundError",
    "ArchiveMode",
    "ArchiveWriter",
    "BatchItem",
    "BatchItemInfo",
    "BatchStats",
    "BatchStream",
    "GetBatch",
    "ObjectSource",
    "extract",
    "get_batch",
    "iter_members",
    "list_archive",
    "read_member",
    "write_archive",
]
# --- end of part B ------------------------------------------------------------------------
