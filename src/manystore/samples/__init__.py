"""Typed sample datasets: packable samples in WebDataset shards, an index of datasets and schemas.

Home of atdata's API on every backend. It may use ``manystore.torch`` (datasets)
and ``manystore.batch`` (archive member reads) below it. See
``docs/architecture.md``.
"""

from __future__ import annotations

__all__: list[str] = []
