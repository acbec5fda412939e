"""Module-level functions taking URLs: ``manystore.open("s3://bucket/key")`` and friends.

Clients are built once per profile and cached. The cache is thread-safe and is
emptied in a forked child, so a child never reuses its parent's connections.
"""

from __future__ import annotations

import builtins
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from .client import StorageClient
from .config import StorageClientConfig, read_msc_config
from .errors import ObjectNotFoundError
from .file import READ_BLOCK_SIZE as STREAM_BLOCK
from .types import ExecutionMode, ObjectMetadata, PatternList, Range, SignerType, SymlinkHandling
from .urls import PathMapping, parse_url

if TYPE_CHECKING:
    from .file import ObjectFile, PosixFile
    from .mirror import SyncResult
    from .telemetry import Telemetry

__all__ = [
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
    "make_symlink",
    "generate_presigned_url",
    "open",
    "read",
    "resolve_storage_client",
    "set_telemetry",
    "set_telemetry_provider",
    "sync",
    "upload_file",
    "write",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def _names_url(function: _F) -> _F:
    """A missing object is reported by the URL as the caller gave it (also a mapped one)."""

    @functools.wraps(function)
    def wrapper(url: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(url, *args, **kwargs)
        except ObjectNotFoundError as exc:
            raise exc.named(os.fspath(url)) from exc

    return cast("_F", wrapper)


_lock = threading.Lock()
_clients: dict[str, StorageClient] = {}
_config_cache: dict[str, Any] = {}
_telemetry: Telemetry | None = None
_telemetry_provider: Callable[[], Telemetry] | None = None


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _clients.clear()
    _config_cache.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def _loaded_config() -> tuple[dict[str, Any], PathMapping]:
    if "dict" not in _config_cache:
        config_dict, path = read_msc_config()
        _config_cache["dict"] = config_dict
        _config_cache["path"] = path
        _config_cache["mapping"] = PathMapping.from_config(config_dict.get("path_mapping"))
    return _config_cache["dict"], _config_cache["mapping"]


def reset_cache() -> None:
    """Forget cached clients and the loaded config (e.g. after changing ``MSC_CONFIG``)."""
    with _lock:
        _clients.clear()
        _config_cache.clear()


def resolve_storage_client(url: str) -> tuple[StorageClient, str]:
    """The cached client serving ``url`` and the key within its profile.

    Path mappings from the config are applied first; then ``msc://profile/...``
    names a configured profile, ``s3://``/``gs://``/``ais://``/``az://`` an implicit
    one, and ``file://`` or a plain path the local file system.

    Raises:
        InvalidURLError: The URL cannot be parsed.
        UnknownProfileError: ``msc://`` names a profile that is not configured.
    """
    with _lock:
        config_dict, mapping = _loaded_config()
    mapped = mapping.find_mapping(url) if isinstance(url, (str, os.PathLike)) else None
    if mapped is not None:
        profile, path = mapped
    else:
        parsed = parse_url(url)
        profile, path = parsed.profile, parsed.path
    client = _clients.get(profile)
    if client is None:
        with _lock:
            client = _clients.get(profile)
            if client is None:
                config = StorageClientConfig.from_dict(
                    config_dict,
                    profile,
                    skip_validation=True,
                    telemetry=_telemetry,
                    telemetry_provider=_telemetry_provider,
                )
                client = StorageClient(config)
                _clients[profile] = client
    return client, path


@_names_url
def open(url: str, mode: str = "rb", **kwargs: Any) -> PosixFile | ObjectFile:
    """Open ``url`` as a file object; keyword arguments as :meth:`StorageClient.open`."""
    client, path = resolve_storage_client(url)
    return client.open(path, mode, **kwargs)


@_names_url
def read(url: str, byte_range: Range | None = None) -> bytes:
    """The bytes of the object at ``url`` (or a ``byte_range`` slice)."""
    client, path = resolve_storage_client(url)
    return client.read(path, byte_range)


def write(url: str, body: bytes, attributes: dict[str, str] | None = None) -> None:
    """Store ``body`` at ``url`` atomically."""
    client, path = resolve_storage_client(url)
    client.write(path, body, attributes)


def list(
    url: str,
    start_after: str | None = None,
    end_at: str | None = None,
    include_directories: bool = False,
    attribute_filter_expression: str | None = None,
    show_attributes: bool = False,
    patterns: PatternList | None = None,
    symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
) -> Iterator[ObjectMetadata]:
    """Objects under the URL prefix; their keys are full URLs.

    ``attribute_filter_expression``, ``show_attributes``, ``patterns`` and
    ``symlink_handling`` are as in :meth:`StorageClient.list`.
    """
    client, path = resolve_storage_client(url)
    return client.list(
        path,
        start_after,
        end_at,
        include_directories,
        include_url_prefix=True,
        attribute_filter_expression=attribute_filter_expression,
        show_attributes=show_attributes,
        patterns=patterns,
        symlink_handling=symlink_handling,
    )


def list_recursive(
    url: str,
    start_after: str | None = None,
    end_at: str | None = None,
    max_workers: int = 32,
    look_ahead: int = 2,
    patterns: PatternList | None = None,
    symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
) -> Iterator[ObjectMetadata]:
    """Every object under the directory ``url``; keys are full URLs (see :meth:`StorageClient.list_recursive`)."""
    client, path = resolve_storage_client(url)
    return client.list_recursive(
        path,
        start_after,
        end_at,
        max_workers,
        look_ahead,
        include_url_prefix=True,
        patterns=patterns,
        symlink_handling=symlink_handling,
    )


def make_symlink(url: str, target_url: str) -> None:
    """Create a symlink at ``url`` pointing at ``target_url`` (see :meth:`StorageClient.make_symlink`).

    Raises:
        ValueError: The two URLs belong to different profiles.
    """
    client, path = resolve_storage_client(url)
    target_client, target_path = resolve_storage_client(target_url)
    if client is not target_client:
        raise ValueError(
            f"make_symlink: {url!r} and target {target_url!r} are in different profiles "
            f"({client.profile!r}, {target_client.profile!r}); expected one profile"
        )
    client.make_symlink(path, target_path)


def generate_presigned_url(
    url: str,
    *,
    method: str = "GET",
    signer_type: SignerType | None = None,
    signer_options: dict[str, Any] | None = None,
) -> str:
    """A time-limited URL granting ``method`` on ``url`` (see :meth:`StorageClient.generate_presigned_url`)."""
    client, path = resolve_storage_client(url)
    return client.generate_presigned_url(
        path, method=method, signer_type=signer_type, signer_options=signer_options
    )


def glob(pattern: str, attribute_filter_expression: str | None = None) -> builtins.list[str]:
    """URLs matching a glob such as ``msc://profile/data/**/*.tar`` (optionally filtered by attributes)."""
    client, path = resolve_storage_client(pattern)
    return client.glob(path, include_url_prefix=True, attribute_filter_expression=attribute_filter_expression)


@_names_url
def info(url: str, strict: bool = True) -> ObjectMetadata:
    """Metadata of the object at ``url``."""
    client, path = resolve_storage_client(url)
    return client.info(path, strict)


def is_file(url: str) -> bool:
    """True if an object exists at ``url``."""
    client, path = resolve_storage_client(url)
    return client.is_file(path)


def is_empty(url: str) -> bool:
    """True if no object lies under ``url``."""
    client, path = resolve_storage_client(url)
    return client.is_empty(path)


@_names_url
def delete(url: str, recursive: bool = False) -> None:
    """Delete the object at ``url`` (and, with ``recursive``, everything under it)."""
    client, path = resolve_storage_client(url)
    client.delete(path, recursive)


def copy(src_url: str, dest_url: str) -> None:
    """Copy one object. Server-side within a profile; streamed between profiles."""
    src_client, src_path = resolve_storage_client(src_url)
    dest_client, dest_path = resolve_storage_client(dest_url)
    if src_client is dest_client:
        src_client.copy(src_path, dest_path)
        return
    with (
        src_client.open(src_path, "rb", memory_load_limit=STREAM_BLOCK) as src,
        dest_client.open(dest_path, "wb") as dest,
    ):
        while chunk := src.read(STREAM_BLOCK):
            dest.write(chunk)


def upload_file(url: str, local_path: str | IO, attributes: dict[str, str] | None = None) -> None:
    """Upload a local file to ``url``, with ``attributes`` as user metadata."""
    client, path = resolve_storage_client(url)
    client.upload_file(path, local_path, attributes)


@_names_url
def download_file(url: str, local_path: str | IO) -> None:
    """Download ``url`` to a local path (atomically) or a binary file object."""
    client, path = resolve_storage_client(url)
    client.download_file(path, local_path)


def commit_metadata(url: str) -> None:
    """Persist pending metadata-provider updates of the profile serving ``url``."""
    client, path = resolve_storage_client(url)
    client.commit_metadata(path or None)


def sync(
    source_url: str,
    target_url: str,
    delete_unmatched_files: bool = False,
    execution_mode: ExecutionMode = ExecutionMode.LOCAL,
    patterns: PatternList | None = None,
    preserve_source_attributes: bool = False,
    ignore_hidden: bool = True,
    dryrun: bool = False,
    dryrun_output_path: str | None = None,
    symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    *,
    num_worker_processes: int | None = None,
    execution: str = "local",
    ray_address: str | None = None,
    threads: int | None = None,
    include: builtins.list[str] | None = None,
    exclude: builtins.list[str] | None = None,
    dry_run: bool = False,
    progress: bool | None = None,
) -> SyncResult:
    """Make ``target_url`` mirror ``source_url``: new and changed objects are copied.

    The options are those of :meth:`StorageClient.sync_from`; ``execution="ray"``
    (or ``execution_mode=ExecutionMode.RAY``, 1.3.1's spelling) splits the work across a
    Ray cluster.

    Raises:
        SyncError: Some objects failed (each named with its cause); the rest were synced.
    """
    source_client, source_path = resolve_storage_client(source_url)
    target_client, target_path = resolve_storage_client(target_url)
    return target_client.sync_from(
        source_client,
        source_path,
        target_path,
        delete_unmatched_files,
        num_worker_processes=num_worker_processes,
        execution_mode=execution_mode,
        patterns=patterns,
        preserve_source_attributes=preserve_source_attributes,
        ignore_hidden=ignore_hidden,
        dryrun=dryrun,
        dryrun_output_path=dryrun_output_path,
        symlink_handling=symlink_handling,
        execution=execution,
        ray_address=ray_address,
        threads=threads,
        include=include,
        exclude=exclude,
        dry_run=dry_run,
        progress=progress,
    )


def sync_replicas(
    source_url: str,
    replica_indices: Sequence[int] | None = None,
    delete_unmatched_files: bool = False,
    execution_mode: ExecutionMode = ExecutionMode.LOCAL,
    patterns: PatternList | None = None,
    ignore_hidden: bool = True,
    symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
) -> None:
    """Copy ``source_url`` (``msc://profile/dir``) to the same path of its profile's replicas.

    See :meth:`StorageClient.sync_replicas` (``replica_indices``: positions in
    ``StorageClient.replicas``; ``None``: every writable replica).

    Raises:
        ValueError: A bad replica index, or one naming a read-only replica.
    """
    source_client, source_path = resolve_storage_client(source_url)
    source_client.sync_replicas(
        source_path,
        replica_indices=replica_indices,
        delete_unmatched_files=delete_unmatched_files,
        execution_mode=execution_mode,
        patterns=patterns,
        ignore_hidden=ignore_hidden,
        symlink_handling=symlink_handling,
    )


def get_telemetry() -> Telemetry | None:
    """The telemetry instance given to clients built by these functions."""
    return _telemetry


def set_telemetry(telemetry: Telemetry | None) -> None:
    """Set the telemetry instance for clients built from now on."""
    global _telemetry
    _telemetry = telemetry


def get_telemetry_provider() -> Callable[[], Telemetry] | None:
    """The function that supplies telemetry to clients built by these functions (if set)."""
    return _telemetry_provider


def set_telemetry_provider(telemetry_provider: Callable[[], Telemetry] | None) -> None:
    """Set the function that supplies telemetry to clients built from now on.

    Args:
        telemetry_provider: A top-level function (so that clients pickle) returning a
            :class:`manystore.telemetry.Telemetry`, e.g. ``manystore.telemetry.init``.
    """
    global _telemetry_provider
    _telemetry_provider = telemetry_provider
