"""``os``-style helpers over URLs and paths (MSC's ``contrib.os``): :func:`makedirs` and
:mod:`manystore.os.path` (``exists``, ``isdir``, ``isfile``), built on :class:`manystore.Path`."""

from __future__ import annotations

import os as _os

from . import path
from .path import exists, isdir, isfile

__all__ = ["exists", "isdir", "isfile", "makedirs", "path"]


def makedirs(name: str | _os.PathLike[str], mode: int = 0o777, exist_ok: bool = False) -> None:
    """Create directory ``name`` and its parents (on object stores: nothing to create).

    Args:
        name: A URL or path.
        mode: Permission bits for new local directories.
        exist_ok: Do not raise if it already exists.

    Raises:
        FileExistsError: It exists and ``exist_ok`` is False.
    """
    from ..pathlib import MultiStoragePath as Path

    Path(name).mkdir(mode=mode, parents=True, exist_ok=exist_ok)
