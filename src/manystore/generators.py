"""Generate a metadata manifest for a :class:`manystore.providers.manifest_metadata.ManifestMetadataProvider`.

The generator lists a data client's objects (optionally in concurrent key ranges) and
writes, with a manifest client::

    .msc_manifests/
    ├── msc_manifest_index.json
    └── parts/
        ├── msc_manifest_part000001.jsonl
        └── ...

Partition keys ``k1 < k2 < ... < kn`` split the key space into the ranges
``(-inf, k1], (k1, k2], ..., (kn, +inf)`` — exactly the ``start_after`` (exclusive) /
``end_at`` (inclusive) bounds of :meth:`manystore.StorageClient.list`, so the ranges
neither overlap nor leave gaps, and their concatenation is in key order.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .providers.manifest_metadata import (
    DEFAULT_MANIFEST_BASE_DIR,
    MANIFEST_INDEX_FILENAME,
    MANIFEST_VERSION,
    MAX_ENTRIES_PER_PART,
    Manifest,
    ManifestPartReference,
    entry_to_line,
    part_path,
)
from .types import ObjectMetadata

if TYPE_CHECKING:
    from .client import StorageClient

__all__ = ["ManifestMetadataGenerator", "partition_bounds"]

_MAX_WORKERS = 16


def partition_bounds(partition_keys: Sequence[str] | None) -> list[tuple[str | None, str | None]]:
    """``(start_after, end_at)`` pairs covering every key exactly once.

    Args:
        partition_keys: Boundary keys (any order, duplicates ignored); ``None`` or empty: one range.

    Returns:
        ``[(None, k1), (k1, k2), ..., (kn, None)]`` for the sorted distinct keys.
    """
    keys = sorted(set(partition_keys or ()))
    lows: list[str | None] = [None, *keys]
    highs: list[str | None] = [*keys, None]
    return list(zip(lows, highs, strict=True))


def _is_manifest_key(key: str) -> bool:
    return DEFAULT_MANIFEST_BASE_DIR in key.split("/")


def collect_entries(
    client: StorageClient, prefix: str = "", partition_keys: Sequence[str] | None = None
) -> list[ObjectMetadata]:
    """Objects of ``client`` under ``prefix`` in key order, manifest files excluded.

    With ``partition_keys`` the ranges of :func:`partition_bounds` are listed concurrently.
    """

    def list_range(bounds: tuple[str | None, str | None]) -> list[ObjectMetadata]:
        start_after, end_at = bounds
        return [m for m in client.list(prefix, start_after, end_at) if not _is_manifest_key(m.key)]

    ranges = partition_bounds(partition_keys)
    if len(ranges) == 1:
        return list_range(ranges[0])
    with ThreadPoolExecutor(min(_MAX_WORKERS, len(ranges))) as pool:
        chunks = list(pool.map(list_range, ranges))
    return [meta for chunk in chunks for meta in chunk]


def write_manifest(
    client: StorageClient,
    entries: Iterable[ObjectMetadata],
    manifest_dir: str = DEFAULT_MANIFEST_BASE_DIR,
    max_entries_per_part: int = MAX_ENTRIES_PER_PART,
) -> Manifest:
    """Write ``entries`` (in key order) as parts, then the index, under ``manifest_dir`` of ``client``.

    Returns:
        The index written.
    """
    if max_entries_per_part < 1:
        raise ValueError(f"max_entries_per_part must be >= 1, got {max_entries_per_part}")
    refs: list[ManifestPartReference] = []
    lines: list[str] = []

    def flush() -> None:
        rel = part_path(len(refs) + 1)
        client.write(posixpath.join(manifest_dir, rel), "\n".join(lines).encode())
        refs.append(ManifestPartReference(rel))
        lines.clear()

    for meta in entries:
        extra = {
            name: getattr(meta, name)
            for name in ("type", "content_type", "storage_class", "metadata")
            if getattr(meta, name) is not None
        }
        entry = (meta.content_length, meta.last_modified.isoformat(), meta.etag, extra or None)
        lines.append(entry_to_line(meta.key, entry))
        if len(lines) >= max_entries_per_part:
            flush()
    if lines:
        flush()
    manifest = Manifest(version=MANIFEST_VERSION, parts=refs)
    client.write(posixpath.join(manifest_dir, MANIFEST_INDEX_FILENAME), manifest.to_json().encode())
    return manifest


class ManifestMetadataGenerator:
    """Generates a file metadata manifest for a ``ManifestMetadataProvider``."""

    @staticmethod
    def generate_and_write_manifest(
        data_storage_client: StorageClient,
        manifest_storage_client: StorageClient,
        partition_keys: list[str] | None = None,
    ) -> None:
        """List the data client's objects and write their manifest with the manifest client.

        Args:
            data_storage_client: Client whose base path is the root of the data objects.
            manifest_storage_client: Client whose base path is the root for the manifest;
                the manifest goes to ``.msc_manifests/`` under it.
            partition_keys: Optional boundary keys; the ranges between them are listed
                concurrently (see :func:`partition_bounds`).
        """
        entries = collect_entries(data_storage_client, "", partition_keys)
        write_manifest(manifest_storage_client, entries, DEFAULT_MANIFEST_BASE_DIR)
