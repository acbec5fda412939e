"""Arrays in object storage: cottoncandy's interface (raw, ``.npy``, chunked, sparse, encrypted).

It builds on the core client only; ``manystore.contrib.numpy``, ``zarr`` and
``xarray`` re-export from here where this layer owns the code. numpy and the codecs are
imported on first use, never by ``import manystore``. See ``docs/arrays.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> module (relative to this package) defining it; imported on first access.
_LAZY: dict[str, str] = {}
# --- arrayscore: interface, basic, arrays, codecs ---
_LAZY.update(
    {
        "get_interface": "interface",
        "get_browser": "interface",
        "interfaces": "interfaces",  # cottoncandy's module of the interface classes
        "DefaultInterface": "interface",
        "InterfaceBase": "_base",
        "BasicInterface": "basic",
        "ArrayInterface": "array",
        "FileSystemInterface": "fs",
        "DEFAULT_ACL": "_base",
    }
)
# --- end arrayscore ---
# --- arrayszarr: the zarr 3 store ---
_LAZY["LazyZarrStore"] = "zarr_store"
# --- end arrayszarr ---
# --- arrayscrypt: EncryptedInterface and its keys ---
_LAZY.update({"EncryptedInterface": "crypto", "generate_key": "crypto"})
# --- end arrayscrypt ---

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'manystore.arrays' has no attribute {name!r}")
    imported = importlib.import_module(f".{module}", __name__)
    value = imported if module == name else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
