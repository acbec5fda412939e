"""Encodings of manifest part files: JSON lines and Parquet, as in multi-storage-client 1.3.1.

A part holds one record per object with the reference's field names: ``key``,
``size_bytes``, ``last_modified`` (ISO 8601), and, where known, ``type``, ``etag``,
``content_type``, ``storage_class``, ``metadata``, ``symlink_target``, ``physical_path``.

* **JSONL** (``.jsonl``): one JSON object per line.
* **Parquet** (``.parquet``): one row per object; the reference's columns ``key``,
  ``size_bytes``, ``last_modified``, ``metadata`` (a JSON string) and ``physical_path``,
  plus manystore's ``type``, ``etag``, ``content_type``, ``storage_class`` and
  ``symlink_target`` (which the reference's reader ignores). Needs ``pyarrow``, imported only
  when a Parquet part is read or written.

The format of a part is told by its file name's suffix, else by the index's ``format``.
"""

from __future__ import annotations

import enum
import io
import json
from typing import Any

__all__ = ["ManifestFormat", "decode_part", "encode_part", "format_of", "part_suffix"]


class ManifestFormat(str, enum.Enum):
    """Encoding of a manifest's part files."""

    JSONL = "jsonl"
    PARQUET = "parquet"


#: Parquet columns besides ``key``/``size_bytes``/``last_modified``, all nullable strings.
_PARQUET_TEXT_COLUMNS = ("type", "etag", "content_type", "storage_class", "symlink_target", "physical_path")


def format_of(value: ManifestFormat | str) -> ManifestFormat:
    """``value`` as a :class:`ManifestFormat`.

    Raises:
        ValueError: ``value`` names no supported format.
    """
    try:
        return ManifestFormat(value)
    except ValueError:
        allowed = [f.value for f in ManifestFormat]
        raise ValueError(f"unsupported manifest format {value!r}; expected one of {allowed}") from None


def part_suffix(manifest_format: ManifestFormat | str) -> str:
    """The file name suffix of a part in ``manifest_format`` (``.jsonl`` or ``.parquet``)."""
    return "." + format_of(manifest_format).value


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError(
            "Parquet manifests need pyarrow: pip install pyarrow (it is in manystore[test])"
        ) from exc
    return pyarrow, pyarrow.parquet


def encode_part(records: list[dict[str, Any]], manifest_format: ManifestFormat | str) -> bytes:
    """The bytes of a part holding ``records`` (dicts with the field names above).

    Raises:
        ValueError: Unsupported format.
        ImportError: Parquet without pyarrow installed.
    """
    fmt = format_of(manifest_format)
    if fmt is ManifestFormat.JSONL:
        return "\n".join(json.dumps(r) for r in records).encode()
    pa, pq = _pyarrow()
    columns: dict[str, list[Any]] = {
        "key": [r["key"] for r in records],
        "size_bytes": [int(r["size_bytes"]) for r in records],
        "last_modified": [r["last_modified"] for r in records],
        "metadata": [json.dumps(r["metadata"]) if r.get("metadata") else None for r in records],
    }
    for name in _PARQUET_TEXT_COLUMNS:
        columns[name] = [r.get(name) for r in records]
    columns["physical_path"] = [r.get("physical_path") or r["key"] for r in records]
    schema = pa.schema(
        [("key", pa.string()), ("size_bytes", pa.int64()), ("last_modified", pa.string())]
        + [(name, pa.string()) for name in ("metadata", *_PARQUET_TEXT_COLUMNS)]
    )
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns, schema=schema), buffer)
    return buffer.getvalue()


def decode_part(data: bytes, manifest_format: ManifestFormat | str) -> list[dict[str, Any]]:
    """The records of a part (JSONL blank lines skipped; Parquet nulls left out).

    Raises:
        ValueError: Unsupported format, or a malformed JSONL line.
        ImportError: Parquet without pyarrow installed.
    """
    fmt = format_of(manifest_format)
    if fmt is ManifestFormat.JSONL:
        lines = [line for line in data.splitlines() if line.strip()]
        try:  # one C-level parse of the whole part is much faster than a call per line
            records = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            records = None
        if not isinstance(records, list) or len(records) != len(lines):
            records = [json.loads(line) for line in lines]  # a line holding several values: per-line errors
        return records
    _, pq = _pyarrow()
    out: list[dict[str, Any]] = []
    for row in pq.read_table(io.BytesIO(data)).to_pylist():
        record = {k: v for k, v in row.items() if v is not None}
        if isinstance(record.get("metadata"), str):
            record["metadata"] = json.loads(record["metadata"])
        out.append(record)
    return out
