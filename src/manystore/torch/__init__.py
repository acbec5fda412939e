"""The PyTorch layer: datasets, readers, a streaming writer and checkpoints on every backend.

Home of s3torchconnector's API (``MapDataset``/``IterableDataset``, readers,
``Writer``, ``Checkpoint``, ``dcp``, ``lightning``) and of the reference's
``torch.load``/``torch.save`` helpers (:func:`load`, :func:`save`). It imports only the
core (``client``, ``shortcuts`` and below) and never runs when ``import manystore``
does: torch is the optional extra ``manystore[torch]``, imported on first call.
See ``docs/architecture.md``.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any

__all__ = ["load", "save"]

#: Names imported on first access (``name -> submodule``), so that ``import manystore.torch``
#: imports neither torch nor Lightning. Each part of the layer keeps its own block.
_LAZY: dict[str, str] = {
    # Lightning: ``manystore.torch.lightning`` (LightningCheckpoint / S3LightningCheckpoint).
    "lightning": "lightning",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f"{__name__}.{module_name}")
    return module if module_name == name else getattr(module, name)


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
        from ..shortcuts import read

        f = io.BytesIO(read(os.fspath(f)))
    return torch.load(f, *args, **kwargs)


def save(obj: object, f: str | os.PathLike[str] | IO[bytes], *args: Any, **kwargs: Any) -> None:
    """``torch.save`` to a URL, a path or a binary file object (a URL is written as one object).

    Raises:
        ImportError: PyTorch is not installed (names the extra ``manystore[torch]``).
    """
    torch = _torch()
    if isinstance(f, (str, os.PathLike)):
        buffer = io.BytesIO()
        torch.save(obj, buffer, *args, **kwargs)
        from ..shortcuts import write

        write(os.fspath(f), buffer.getvalue())
        return
    torch.save(obj, f, *args, **kwargs)
