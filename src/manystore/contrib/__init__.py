"""Adapters named as in the reference's ``multistorageclient.contrib``.

Each submodule imports its third-party library lazily (on first use), so importing
``manystore.contrib`` costs nothing. Submodules re-export from the layer that owns
the code (``manystore.torch``, ``manystore.arrays``) instead of repeating it:

* ``async_fs`` — fsspec filesystem for the ``msc`` protocol (also ``manystore.async_fs``; docs/fsspec.md);
* ``numpy``, ``zarr``, ``xarray`` — arrays (owned by ``manystore.arrays``);
* ``torch`` — ``load``/``save`` and DCP readers/writers (owned by ``manystore.torch``);
* ``pickle``, ``os`` — the reference's small helpers.
"""

from __future__ import annotations

__all__: list[str] = []
