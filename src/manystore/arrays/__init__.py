"""Arrays in object storage: cottoncandy's interface (raw, ``.npy``, chunked, sparse, encrypted).

It builds on the core client only; ``manystore.contrib.numpy``, ``zarr`` and
``xarray`` re-export from here where this layer owns the code. See
``docs/architecture.md``.
"""

from __future__ import annotations

__all__: list[str] = []
