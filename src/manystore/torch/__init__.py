"""The PyTorch layer: datasets, readers, a streaming writer and checkpoints on every backend.

Home of s3torchconnector's API (``MapDataset``/``IterableDataset``, readers,
``Writer``, ``Checkpoint``, ``dcp``, ``lightning``) and of the reference's
``torch.load``/``torch.save`` helpers (:func:`load`, :func:`save`). It imports only the
core (``client``, ``shortcuts`` and below) and never runs when ``import manystore``
does: torch is the optional extra ``manystore[torch]``, imported on first call.
See ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
import os
from typing import IO, Any

#: Public name -> module (relative to this package) defining it; imported on first access.
_LAZY: dict[str, str] = {}
# --- torchds: datasets, readers, client config ---
_LAZY.update(
    {
        "ClientConfig": "client_config",
        "S3ClientConfig": "client_config",
        "IterableDataset": "datasets",
        "MapDataset": "datasets",
        "S3IterableDataset": "datasets",
        "S3MapDataset": "datasets",
        "RangedReader": "_reader",
        "Reader": "_reader",
        "S3Reader": "_reader",
        "SequentialReader": "_reader",
        "ReaderConstructor": "reader_constructor",
        "S3ReaderConstructor": "reader_constructor",
    }
)
# --- end torchds ---
# --- writer, checkpoints, DCP (engineer "torchdcp") ---
_LAZY.update(
    {
        "Writer": "writer",
        "S3Writer": "writer",
        "Checkpoint": "checkpoint",
        "S3Checkpoint": "checkpoint",
        "MultiStorageFileSystem": "filesystem",
        "MultiStorageFileSystemReader": "filesystem",
        "MultiStorageFileSystemWriter": "filesystem",
    }
)
# --- end torchdcp ---
# --- Lightning: the submodule ``manystore.torch.lightning`` (LightningCheckpoint) ---
_LAZY["lightning"] = "lightning"

__all__ = ["load", "save", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'manystore.torch' has no attribute {name!r}")
    imported = importlib.import_module(f".{module}", __name__)
    value = imported if module == name else getattr(imported, name)  # a submodule, or a name in one
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError("manystore.torch.load/save need PyTorch: pip install 'manystore[torch]'") from exc
    return torch


def load(f: str | os.PathLike[str] | IO[bytes], *args: Any, **kwargs: Any) -> Any:
    """``torch.load`` of a URL (``msc://``, ``s3://``...), a path or a binary file object.

    Args:
        f: Where to read. A URL or path is read whole through its client.
        *args: Passed to ``torch.load``.
        **kwargs: Passed to ``torch.load`` (``map_location``, ``weights_only``...).

    Raises:
        ImportError: PyTorch is not installed (names the extra ``manystore[torch]``).
    """
    torch = _torch()
    if isinstance(f, (str, os.PathLike)):
        from ._dcp_reader import ObjectReader

        # Parallel ranged parts, served without a join copy.
        return torch.load(ObjectReader(os.fspath(f)), *args, **kwargs)
    return torch.load(f, *args, **kwargs)


def save(obj: object, f: str | os.PathLike[str] | IO[bytes], *args: Any, **kwargs: Any) -> None:
    """``torch.save`` to a URL, a path or a binary file object.

    A URL or path is streamed as it is serialised (a multipart upload on object stores, see
    ``manystore.torch.Writer``): nothing is visible until the save completes, and a
    failed save leaves no object.

    Raises:
        ImportError: PyTorch is not installed (names the extra ``manystore[torch]``).
    """
    torch = _torch()
    if isinstance(f, (str, os.PathLike)):
        from .writer import Writer

        with Writer(f) as writer:
            torch.save(obj, writer, *args, **kwargs)
        return
    torch.save(obj, f, *args, **kwargs)
