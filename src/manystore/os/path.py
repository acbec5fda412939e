"""``os.path``-style predicates over URLs and paths (MSC's ``contrib.os.path``)."""

from __future__ import annotations

import os as _os

__all__ = ["exists", "isdir", "isfile"]


def exists(path: str | _os.PathLike[str]) -> bool:
    """True if ``path`` (a URL or path) is an object, a file or a directory."""
    from ..pathlib import MultiStoragePath as Path

    return Path(path).exists()


def isdir(path: str | _os.PathLike[str], strict: bool = True) -> bool:
    """True if ``path`` is a directory (on object stores: a prefix with objects under it).

    Args:
        path: A URL or a local path.
        strict: On object stores, verify with a listing that objects exist under the
            prefix. With ``strict=False`` no listing is made: a path that is not an object
            (one metadata request) is taken to be a directory, as in the reference. Local
            paths are always checked exactly.
    """
    from ..pathlib import MultiStoragePath as Path

    if strict:
        return Path(path).is_dir()
    from ..shortcuts import resolve_storage_client

    client, key = resolve_storage_client(str(path))
    local = client.get_posix_path(key)
    if local is not None:
        return _os.path.isdir(local)
    return not client.is_file(key.rstrip("/"))


def isfile(path: str | _os.PathLike[str]) -> bool:
    """True if ``path`` is a file or an object."""
    from ..pathlib import MultiStoragePath as Path

    return Path(path).is_file()
