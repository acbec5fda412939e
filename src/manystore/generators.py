"""Generate a metadata manifest for a :class:`manystore.providers.manifest_metadata.ManifestMetadataProvider`.

The generator lists a data client's objects (optionally in concurrent key ranges) and
writes, with a manifest client::

    .msc_manifests/
    ├── msc_manifest_index.json
    └── parts/
        ├── msc_manifest_part000001.jsonl   (or .parquet)
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

from .providers.manifest_formats import ManifestFormat, format_of
from .providers.manifest_metadata import (
    DEFAULT_MANIFEST_BASE_DIR,
    MANIFEST_INDEX_FILENAME,
    MANIFEST_VERSION,
    MAX_ENTRIES_PER_PART,
    Entry,
    Manifest,
    ManifestMetadataProvider,
    ManifestPartReference,
    encode_entries,
    entry_to_metadata,
    part_path,
)
from .types import ObjectMetadata

if TYPE_CHECKING:
    from .client import StorageClient

__all__ = ["ManifestFormat", "ManifestMetadataGenerator", "partition_bounds"]

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


def entry_of(meta: ObjectMetadata) -> Entry:
    """The manifest entry of ``meta``."""
    extra = {
        name: getattr(meta, name)
        for name in ("type", "content_type", "storage_class", "metadata", "symlink_target")
        if getattr(meta, name) is not None
    }
    return (meta.content_length, meta.last_modified.isoformat(), meta.etag, extra or None)


def write_manifest(
    client: StorageClient,
    entries: Iterable[ObjectMetadata],
    manifest_dir: str = DEFAULT_MANIFEST_BASE_DIR,
    max_entries_per_part: int = MAX_ENTRIES_PER_PART,
    manifest_format: ManifestFormat | str = ManifestFormat.JSONL,
) -> Manifest:
    """Write ``entries`` (in key order) as parts, then the index, under ``manifest_dir`` of ``client``.

    Args:
        client: The client writing the manifest.
        entries: The objects, in key order.
        manifest_dir: Directory of the index, relative to the client's base.
        max_entries_per_part: Most entries per part file.
        manifest_format: Encoding of the parts (``"jsonl"`` or ``"parquet"``).

    Returns:
        The index written.

    Raises:
        ValueError: ``max_entries_per_part`` < 1, or an unsupported format.
    """
    if max_entries_per_part < 1:
        raise ValueError(f"max_entries_per_part must be >= 1, got {max_entries_per_part}")
    fmt = format_of(manifest_format)
    refs: list[ManifestPartReference] = []
    chunk: list[tuple[str, Entry]] = []

    def flush() -> None:
        rel = part_path(len(refs) + 1, fmt)
        client.write(posixpath.join(manifest_dir, rel), encode_entries(chunk, fmt))
        refs.append(ManifestPartReference(rel))
        chunk.clear()

    for meta in entries:
        chunk.append((meta.key, entry_of(meta)))
        if len(chunk) >= max_entries_per_part:
            flush()
    if chunk:
        flush()
    manifest = Manifest(version=MANIFEST_VERSION, parts=refs, format=fmt.value)
    client.write(posixpath.join(manifest_dir, MANIFEST_INDEX_FILENAME), manifest.to_json().encode())
    return manifest


class ManifestMetadataGenerator:
    """Generates a file metadata manifest for a ``ManifestMetadataProvider``."""

    @staticmethod
    def generate_and_write_manifest(
        data_storage_client: StorageClient,
        manifest_storage_client: StorageClient,
        partition_keys: list[str] | None = None,
        manifest_format: ManifestFormat = ManifestFormat.JSONL,
        allow_overwrites: bool = True,
    ) -> None:
        """List the data client's objects and write their manifest with the manifest client.

        As in multi-storage-client 1.3.1, the manifest already under the manifest client's
        ``.msc_manifests/`` (either layout) is updated: its entries are kept, the listed
        objects are added or replace theirs.

        Args:
            data_storage_client: Client whose base path is the root of the data objects.
            manifest_storage_client: Client whose base path is the root for the manifest;
                the manifest goes to ``.msc_manifests/`` under it.
            partition_keys: Optional boundary keys; the ranges between them are listed
                concurrently (see :func:`partition_bounds`).
            manifest_format: Encoding of the part files: ``ManifestFormat.JSONL`` or
                ``ManifestFormat.PARQUET`` (needs ``pyarrow``); the strings work too.
            allow_overwrites: When False, a listed object the existing manifest already
                holds raises :class:`FileExistsError` and nothing is written.

        Raises:
            FileExistsError: ``allow_overwrites`` is False and an object is in the manifest already.
            ValueError: Unsupported ``manifest_format``.
        """
        fmt = format_of(manifest_format)
        existing = ManifestMetadataProvider(
            manifest_storage_client._storage_provider, DEFAULT_MANIFEST_BASE_DIR, writable=True
        )
        merged = {meta.key: entry_of(meta) for meta in existing.list_objects("")}
        fresh = collect_entries(data_storage_client, "", partition_keys)
        if not allow_overwrites:
            clash = [meta.key for meta in fresh if meta.key in merged]
            if clash:
                more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
                raise FileExistsError(
                    f"{clash[0]!r}{more} is already in the manifest of "
                    f"{manifest_storage_client.url_prefix}{DEFAULT_MANIFEST_BASE_DIR}/ and "
                    "allow_overwrites=False; pass allow_overwrites=True to replace entries"
                )
        if not merged:
            write_manifest(manifest_storage_client, fresh, DEFAULT_MANIFEST_BASE_DIR, manifest_format=fmt)
            return
        merged.update((meta.key, entry_of(meta)) for meta in fresh)
        keys = sorted(merged)
        write_manifest(
            manifest_storage_client,
            (entry_to_metadata(k, merged[k]) for k in keys),
            DEFAULT_MANIFEST_BASE_DIR,
            manifest_format=fmt,
        )
