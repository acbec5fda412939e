"""MSC's ``multistorageclient.contrib.torch``: ``load``/``save`` and the DCP storage classes.

Re-exports :func:`manystore.torch.load`, :func:`manystore.torch.save` and
:mod:`manystore.torch.filesystem`'s ``MultiStorageFileSystem``,
``MultiStorageFileSystemReader`` and ``MultiStorageFileSystemWriter`` (importing this
module imports torch, as the reference's does).
"""

from __future__ import annotations

from ..torch import load, save
from ..torch.filesystem import (
    MultiStorageFileSystem,
    MultiStorageFileSystemReader,
    MultiStorageFileSystemWriter,
)

__all__ = [
    "MultiStorageFileSystem",
    "MultiStorageFileSystemReader",
    "MultiStorageFileSystemWriter",
    "load",
    "save",
]
