"""Helpers of :mod:`manystore.contrib.async_fs`: path forms, fsspec entries, the thread pool.

Names follow fsspec conventions: no ``msc://`` (``profile/key``), no trailing ``/``; other
URL forms keep their scheme (``s3://bucket/key``, ``file:///abs/path``).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..client import StorageClient
from ..providers.posix_file import PosixFileStorageProvider
from ..types import ObjectMetadata
from ..urls import MSC_PROTOCOL, implicit_url_prefix

__all__ = [
    "MSC_PREFIX",
    "check_write_mode",
    "entry",
    "executor",
    "is_local",
    "join_name",
    "name_prefix",
    "parent",
    "strip",
]

MSC_PREFIX = f"{MSC_PROTOCOL}://"
_WRITE_MODES = ("overwrite", "create")
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The shared pool the coroutines run client calls on (``MSC_MAX_WORKERS`` threads, default 16).

    Raises:
        ValueError: ``MSC_MAX_WORKERS`` is not a positive integer.
    """
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                raw = os.environ.get("MSC_MAX_WORKERS", "16")
                if not raw.strip().isdigit() or int(raw) < 1:
                    raise ValueError(f"MSC_MAX_WORKERS must be a positive integer, got {raw!r}")
                _pool = ThreadPoolExecutor(int(raw), thread_name_prefix="manystore-fsspec")
    return _pool


def _reset_after_fork() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def strip(text: str) -> str:
    """``msc://profile/key/`` and ``/profile/key`` -> ``profile/key``; other URLs keep their scheme."""
    if text.startswith(MSC_PREFIX):
        text = text[len(MSC_PREFIX) :]
    elif "://" in text:
        scheme, _, rest = text.partition("://")
        stripped = rest.rstrip("/")
        return f"{scheme}://{stripped or ('/' if rest.startswith('/') else '')}"
    return text.strip("/")


def parent(path: str) -> str:
    """The parent of a stripped name (``""`` above a profile; a bucket root is its own parent)."""
    head, sep, rest = path.rpartition("://")
    scheme = head + sep
    if sep and rest.startswith("/"):  # file:///a/b
        return scheme + (rest.rsplit("/", 1)[0] or "/")
    if "/" in rest:
        return scheme + rest.rsplit("/", 1)[0]
    return scheme + rest if sep else ""


def name_prefix(client: StorageClient) -> str:
    """What names of ``client``'s keys start with: ``profile/``, ``s3://bucket/``, ``file:///``."""
    prefix = implicit_url_prefix(client.profile)
    if prefix is None:
        return client.profile + "/"
    return "file:///" if prefix == "/" else prefix


def join_name(prefix: str, key: str) -> str:
    """The fsspec name of ``key`` (the root's name has no trailing ``/`` unless it is ``file:///``)."""
    if key:
        return prefix + key
    root = prefix.rstrip("/")
    return prefix if root.endswith(":") else root


def directory(name: str) -> dict[str, Any]:
    """The fsspec entry of an (implicit) directory."""
    return {"name": name, "size": 0, "type": "directory"}


def entry(prefix: str, meta: ObjectMetadata) -> dict[str, Any]:
    """The fsspec entry of a listed or HEAD-ed object."""
    name = join_name(prefix, meta.key.rstrip("/"))
    if meta.type == "directory":
        return directory(name)
    return {
        "name": name,
        "size": meta.content_length,
        "type": "file",
        "ETag": meta.etag,
        "LastModified": meta.last_modified,
        "ContentType": meta.content_type,
        "StorageClass": meta.storage_class,
        "metadata": meta.metadata,
    }


def is_local(client: StorageClient) -> bool:
    """True for a local profile, whose empty directories are hidden (directories are implicit)."""
    return isinstance(client.config.storage_provider, PosixFileStorageProvider)


def check_write_mode(mode: str) -> None:
    """Raise :class:`ValueError` unless ``mode`` is ``"overwrite"`` or ``"create"``."""
    if mode not in _WRITE_MODES:
        raise ValueError(f"mode must be one of {list(_WRITE_MODES)}, got {mode!r}")
