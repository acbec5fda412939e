"""Alias of :mod:`manystore.contrib.async_fs` (the reference exposes ``multistorageclient.async_fs``).

Importing this module imports fsspec; ``import manystore`` alone does not.
"""

from __future__ import annotations

from .contrib.async_fs import MultiStorageAsyncFileSystem

__all__ = ["MultiStorageAsyncFileSystem"]
