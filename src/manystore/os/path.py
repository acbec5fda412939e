"""``os.path``-style predicates over URLs and paths (MSC's ``contrib.os.path``)."""

from __future__ import annotations

import os as _os

__all__ = ["exists", "isdir", "isfile"]


def exists(path: str | _os.PathLike[str]) -> bool:
    """True if ``path`` (a URL or path) is an object, a file or a directory."""
    from ..pathlib import MultiStoragePath as Path

    return Path(path).exists()


def isdir(path: str | _os.PathLike[str]) -> bool:
    """True if ``path`` is a directory (on object stores: a prefix with objects under it).

    MSC's ``strict`` flag is not offered: a prefix is always checked by listing.
    """
    from ..pathlib import MultiStoragePath as Path

    return Path(path).is_dir()


def isfile(path: str | _os.PathLike[str]) -> bool:
    """True if ``path`` is a file or an object."""
    from ..pathlib import MultiStoragePath as Path

    return Path(path).is_file()
