"""Dry-run listing files and explicit source lists of a sync (1.3.1's ``dryrun``/``source_files``).

A dry run with output writes, as multi-storage-client 1.3.1 does, two JSON-lines files into
one directory: ``files_to_add.jsonl`` (the source objects that would be copied) and
``files_to_delete.jsonl`` (the target objects that would be deleted), one object's
metadata per line with 1.3.1's field names (``key``, ``content_length``, ``last_modified``
as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC, ``type``, and ``etag``, ``content_type``,
``storage_class``, ``metadata``, ``symlink_target`` where set).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import timezone
from typing import IO, TYPE_CHECKING, Any

from ..sync_types import DryrunResult
from ..types import ObjectMetadata, SymlinkHandling

if TYPE_CHECKING:
    from ..client import StorageClient
    from .plan import SyncSpec

__all__ = ["DRYRUN_ADD_FILE", "DRYRUN_DELETE_FILE", "DryrunReport", "dryrun_record", "listed_files"]

logger = logging.getLogger(__name__)
DRYRUN_ADD_FILE = "files_to_add.jsonl"
DRYRUN_DELETE_FILE = "files_to_delete.jsonl"


def dryrun_record(meta: ObjectMetadata) -> dict[str, Any]:
    """One line's record of ``meta`` (1.3.1's field names and time format; unset fields left out)."""
    record = meta.to_dict()
    stamp = meta.last_modified
    record["last_modified"] = (stamp.astimezone(timezone.utc) if stamp.tzinfo else stamp).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    return record


class DryrunReport:
    """The two listing files of one dry run, written as the plan comes in.

    Args:
        directory: Where to write them (created if missing); ``None``: a new temporary
            directory (``manystore_dryrun_*``), which the caller removes when done.
    """

    def __init__(self, directory: str | None) -> None:
        if directory is None:
            directory = tempfile.mkdtemp(prefix="manystore_dryrun_")
        else:
            os.makedirs(directory, exist_ok=True)
        self.add_path = os.path.join(directory, DRYRUN_ADD_FILE)
        self.delete_path = os.path.join(directory, DRYRUN_DELETE_FILE)
        # Both stay open while the plan streams in; close() closes them.
        self._add: IO[str] = open(self.add_path, "w", encoding="utf-8")  # noqa: SIM115
        self._delete: IO[str] = open(self.delete_path, "w", encoding="utf-8")  # noqa: SIM115
        self.bytes_deleted = 0

    def write(self, to_add: list[ObjectMetadata], to_delete: list[ObjectMetadata]) -> None:
        """Append objects that would be copied and deleted."""
        for meta in to_add:
            self._add.write(json.dumps(dryrun_record(meta)) + "\n")
        for meta in to_delete:
            self._delete.write(json.dumps(dryrun_record(meta)) + "\n")
            self.bytes_deleted += meta.content_length

    def close(self) -> None:
        """Flush and close both files."""
        self._add.close()
        self._delete.close()

    def result(self) -> DryrunResult:
        """The paths, as :class:`~manystore.types.DryrunResult`."""
        return DryrunResult(files_to_add=self.add_path, files_to_delete=self.delete_path)


def listed_files(
    source: StorageClient, prefix: str, source_files: list[str], spec: SyncSpec
) -> Iterator[ObjectMetadata]:
    """The metadata of ``source_files`` (keys relative to ``prefix``), sorted and de-duplicated.

    A key with no object is logged and left out. Symlinks are handled per
    ``spec.symlink_handling``: followed (``FOLLOW*``), left out (``SKIP``) or recreated (``PRESERVE*``).
    """
    handling = spec.symlink_handling
    for rel in sorted({name.lstrip("/") for name in source_files}):
        key = prefix + rel
        try:
            meta = source.info(key)
        except FileNotFoundError:
            logger.warning("sync: %s%s (in source_files) does not exist: left out", source.url_prefix, key)
            continue
        if meta.type != "file":
            continue
        if meta.symlink_target is not None:
            if handling is SymlinkHandling.SKIP:
                continue
            if handling not in (SymlinkHandling.PRESERVE, SymlinkHandling.PRESERVE_STRICT):
                meta = source.info(source._follow(key)[0])
                meta = meta.replace(key=key, symlink_target=None)
        yield meta
