"""manystore: one fast client for S3, GCS, Azure, AIStore, OCI and POSIX storage.

The public API mirrors the Multi-Storage Client: ``StorageClient``,
``StorageClientConfig``, ``msc://profile/path`` URLs and module-level shortcuts
(``manystore.open``, ``manystore.list``...). Names are loaded on first use, so
``import manystore`` stays fast and imports no cloud SDK.
"""

from __future__ import annotations

import builtins
import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "list_recursive": "shortcuts",
    "make_symlink": "shortcuts",
    "generate_presigned_url": "shortcuts",
    "SymlinkHandling": "types",
    "SignerType": "types",
    "ResolvedPathState": "types",
    "ResolvedPath": "types",
    "SyncResult": "types",
    "DryrunResult": "types",
    "StorageClient": "client",
    "StorageClientConfig": "config",
    "CacheConfig": "caching.cache_config",
    "Path": "pathlib:MultiStoragePath",
    "MultiStoragePath": "pathlib",
    "ObjectMetadata": "types",
    "ProviderBundleV2": "types",
    "StorageBackend": "types",
    "Range": "types",
    "RetryConfig": "types",
    "SourceVersionCheckMode": "types",
    "commit_metadata": "shortcuts",
    "copy": "shortcuts",
    "delete": "shortcuts",
    "download_file": "shortcuts",
    "get_telemetry": "shortcuts",
    "get_telemetry_provider": "shortcuts",
    "glob": "shortcuts",
    "info": "shortcuts",
    "is_empty": "shortcuts",
    "is_file": "shortcuts",
    "list": "shortcuts",
    "open": "shortcuts",
    "read": "shortcuts",
    "resolve_storage_client": "shortcuts",
    "set_telemetry": "shortcuts",
    "set_telemetry_provider": "shortcuts",
    "sync": "shortcuts",
    "sync_replicas": "shortcuts",
    "upload_file": "shortcuts",
    "write": "shortcuts",
}

__all__ = [
    "list_recursive",
    "make_symlink",
    "generate_presigned_url",
    "SymlinkHandling",
    "SignerType",
    "ResolvedPathState",
    "ResolvedPath",
    "SyncResult",
    "DryrunResult",
    "CacheConfig",
    "MultiStoragePath",
    "ObjectMetadata",
    "Path",
    "ProviderBundleV2",
    "Range",
    "RetryConfig",
    "SourceVersionCheckMode",
    "StorageBackend",
    "StorageClient",
    "StorageClientConfig",
    "commit_metadata",
    "copy",
    "delete",
    "download_file",
    "get_telemetry",
    "get_telemetry_provider",
    "glob",
    "info",
    "is_empty",
    "is_file",
    "list",
    "open",
    "read",
    "resolve_storage_client",
    "set_telemetry",
    "set_telemetry_provider",
    "sync",
    "sync_replicas",
    "upload_file",
    "write",
]


#: Submodules reachable as attributes without an import (``manystore.numpy.load(...)``), as in the reference.
_LAZY_SUBMODULES = frozenset({"numpy", "pickle", "os", "torch", "async_fs", "contrib", "ray", "hydra"})
#: Lazy names served by a ``contrib`` module (no top-level module of that name exists).
_CONTRIB_ONLY = frozenset({"ray", "hydra"})


def __getattr__(name: str) -> Any:
    if name in _CONTRIB_ONLY:
        module = importlib.import_module(f"{__name__}.contrib.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'manystore' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), attr or name)
    globals()[name] = value
    return value


def __dir__() -> builtins.list[str]:
    return sorted(set(globals()) | set(_LAZY) | _LAZY_SUBMODULES)


if TYPE_CHECKING:
    from .caching.cache_config import CacheConfig
    from .client import StorageClient
    from .config import StorageClientConfig
    from .pathlib import MultiStoragePath
    from .pathlib import MultiStoragePath as Path
    from .shortcuts import (
        commit_metadata,
        copy,
        delete,
        download_file,
        get_telemetry,
        get_telemetry_provider,
        glob,
        info,
        is_empty,
        is_file,
        list,
        list_recursive,
        open,
        read,
        resolve_storage_client,
        set_telemetry,
        set_telemetry_provider,
        sync,
        sync_replicas,
        upload_file,
        write,
    )
    from .types import (
        DryrunResult,
        ObjectMetadata,
        ProviderBundleV2,
        Range,
        ResolvedPath,
        ResolvedPathState,
        RetryConfig,
        SignerType,
        SourceVersionCheckMode,
        StorageBackend,
        SymlinkHandling,
        SyncResult,
    )
