"""``numpy.load`` / ``numpy.save`` / ``numpy.memmap`` for URLs (``msc://``, ``s3://``...) and paths.

numpy is imported on first use (``import manystore`` never imports it). Objects on a
store are read whole through the client; local files are handed to numpy by path, so
``mmap_mode`` and ``memmap`` work on them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["load", "memmap", "save"]


def _np() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise ImportError("manystore.numpy needs numpy: pip install numpy") from exc
    return numpy


def _local_path(file: Any) -> str | None:
    """The local file behind ``file`` (a URL or path) when its profile is a file system, else None."""
    from .shortcuts import resolve_storage_client

    client, path = resolve_storage_client(str(file))
    local = getattr(client.config.storage_provider, "local_path", None)
    return local(path) if callable(local) else None


def load(file: Any, *args: Any, **kwargs: Any) -> Any:
    """``numpy.load`` of a URL, a path or a binary file object.

    Args:
        file: ``msc://profile/x.npy``, ``s3://bucket/x.npz``, a local path, or a file object.
        *args: Passed to ``numpy.load`` (``mmap_mode``, ``allow_pickle``...).
        **kwargs: Passed to ``numpy.load``. ``allow_pickle`` keeps numpy's default (False).

    Returns:
        What ``numpy.load`` returns (an array, or an ``NpzFile`` for ``.npz``).
    """
    np_ = _np()
    if not isinstance(file, (str, bytes)) and not hasattr(file, "__fspath__"):
        return np_.load(file, *args, **kwargs)
    local = _local_path(file)
    if local is not None:
        return np_.load(local, *args, **kwargs)
    from .shortcuts import read

    return np_.load(io.BytesIO(read(str(file))), *args, **kwargs)


def save(file: Any, arr: Any, *args: Any, **kwargs: Any) -> None:
    """``numpy.save`` to a URL or path (the object is written when the array is serialised).

    Args:
        file: Destination URL or path (no ``.npy`` is appended).
        arr: The array.
        *args: Passed to ``numpy.save``.
        **kwargs: Passed to ``numpy.save``.
    """
    np_ = _np()
    if not isinstance(file, (str, bytes)) and not hasattr(file, "__fspath__"):
        np_.save(file, arr, *args, **kwargs)
        return
    buffer = io.BytesIO()
    np_.save(buffer, arr, *args, **kwargs)
    from .shortcuts import write

    write(str(file), buffer.getvalue())


def memmap(filename: Any, *args: Any, **kwargs: Any) -> np.memmap:
    """``numpy.memmap`` of a file on a file-system profile.

    Raises:
        ValueError: ``filename`` names an object on an object store (it cannot be mapped).
    """
    local = _local_path(filename)
    if local is None:
        raise ValueError(
            f"memmap: {filename!r} is on an object store; expected a path or URL of a file-system profile "
            "(use manystore.numpy.load to read it into memory)"
        )
    return _np().memmap(local, *args, **kwargs)
