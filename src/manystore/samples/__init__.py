"""Typed sample datasets: packable samples in WebDataset shards, an index of datasets and schemas.

Home of atdata's API on every backend. It may use ``manystore.torch`` (datasets)
and ``manystore.batch`` (archive member reads) below it. See
``docs/architecture.md``. Names are imported on first access (``import
manystore.samples`` loads neither numpy, msgpack nor torch).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> module (relative to this package) defining it; imported on first access.
_LAZY: dict[str, str] = {}
# --- samplecore: samples, wire format, lenses, batches, shard writer ---
_LAZY.update(
    {
        "packable": "sample",
        "PackableSample": "sample",
        "Packable": "sample",
        "NDArray": "sample",
        "DictSample": "sample",
        "SampleTypeError": "errors",
        "SampleDecodeError": "errors",
        "PickledArrayError": "errors",
        "LensNotFoundError": "errors",
        "decode_sample": "_codec",
        "encode_member": "_codec",
        "SampleBatch": "batch",
        "ShardWriter": "writer",
        "write_samples": "writer",
    }
)
# --- end samplecore ---
# --- sampleindex: schemas, index (SQLite, Redis), data store ---
_LAZY.update(
    {
        "Index": "index",
        "LocalIndex": "index",
        "IndexEntry": "index",
        "AbstractIndex": "index",
        "RedisIndex": "_redis_index",
        "DataStore": "store",
        "AbstractDataStore": "store",
        "schema_record": "schema",
        "schema_ref": "schema",
        "decode_schema": "schema",
        "parse_schema_ref": "schema",
    }
)
# --- end sampleindex ---

# --- sampleread: datasets, sources, the loader ---
_LAZY.update(
    {
        "Dataset": "dataset",
        "DataSource": "sources",
        "URLSource": "sources",
        "StoreSource": "sources",
        "SampleLoader": "_loader",
        "ShardCorruptError": "_tarstream",
    }
)
# --- end sampleread ---

# The lens API is imported now (a light module: no numpy): the function ``lens`` must shadow
# the submodule ``manystore.samples.lens``, which the import system would otherwise bind here.
from .lens import Lens, LensNetwork, find_lens, lens, register_lens, view_as  # noqa: E402

__all__ = [*_LAZY, "Lens", "LensNetwork", "find_lens", "lens", "register_lens", "view_as"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'manystore.samples' has no attribute {name!r}")
    imported = importlib.import_module(f".{module}", __name__)
    value = imported if module == name else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
