"""``StorageClient`` methods of syncing and replicas: ``sync_from``, ``sync_replicas``, ``replicas``.

A profile's ``replicas`` (as in multi-storage-client 1.3.1) name other profiles holding
copies of its objects, each with a ``read_priority`` (lower first) and optionally
``read_only``::

    profiles:
      data:
        storage_provider: {type: s3, options: {base_path: bucket/data}}
        replicas:
          - {replica_profile: data-local, read_priority: 1}
          - {replica_profile: data-archive, read_priority: 2, read_only: true}

What the client does with them, as 1.3.1 does:

* **Reads** (``read`` without a read cache, ``download_file``; not through a metadata
  provider) try the replicas in priority order and take the object from the first that has
  it, else from the profile's own store. The writable replicas found lacking it before that
  are filled in the background (skipped when the copy came from a read-only replica and
  the primary no longer has the object). ``open`` and cached reads use the primary.
* **Writes** go to the primary only; ``sync_replicas`` copies them over.
* **Deletes** of one object also delete it from the writable replicas (failures logged).
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING

from .types import ExecutionMode, PatternList, SymlinkHandling

if TYPE_CHECKING:
    from .client import StorageClient
    from .sync_types import SyncResult

__all__ = ["SyncMixin"]

logger = logging.getLogger(__name__)
#: Background threads filling replicas after reads (``MANYSTORE_REPLICA_UPLOAD_THREADS``).
DEFAULT_REPLICA_UPLOAD_THREADS = 8
_backfill_lock = threading.Lock()
_backfill_pool: ThreadPoolExecutor | None = None
_backfilling: set[tuple[str, str]] = set()


def _pool() -> ThreadPoolExecutor:
    global _backfill_pool
    with _backfill_lock:
        if _backfill_pool is None:
            threads = int(os.environ.get("MANYSTORE_REPLICA_UPLOAD_THREADS", DEFAULT_REPLICA_UPLOAD_THREADS))
            _backfill_pool = ThreadPoolExecutor(threads, thread_name_prefix="manystore-replica")
        return _backfill_pool


def _fill(path: str, data: bytes, replicas: builtins.list[StorageClient]) -> None:
    try:
        for replica in replicas:
            try:
                replica.write(path, data)
            except Exception as exc:  # a replica that cannot take it stays behind; the read succeeded
                logger.warning("replica %s: filling %s failed: %s", replica.profile, path, exc)
    finally:
        with _backfill_lock:
            for replica in replicas:
                _backfilling.discard((replica.profile, path))


def _primary_has(client: StorageClient, path: str) -> bool:
    try:
        client._io.head(path)
    except FileNotFoundError:
        return False
    except Exception as exc:  # unknown: do not fill replicas with what may be gone
        logger.warning("replica fill of %s skipped: cannot check the primary: %s", path, exc)
        return False
    return True


class SyncMixin:
    """Sync and replica methods of :class:`manystore.StorageClient`."""

    _use_replicas: bool = True

    # ------------------------------------------------------------ replicas
    def _replica_entries(self: StorageClient) -> builtins.list[tuple[StorageClient, bool]]:  # type: ignore[misc]
        """``(client, read_only)`` of each replica, in priority order (built once)."""
        built = self.__dict__.get("_replica_clients")
        if built is None:
            from .config import StorageClientConfig

            config = self._config
            source = config._config_dict if config._config_dict is not None else config._bundle_dict
            built = []
            for replica in sorted(config.replicas or [], key=lambda r: r.read_priority):
                if source is None:
                    raise ValueError(
                        f"profile {self.profile!r}: replica {replica.replica_profile!r} needs a config that "
                        "defines it (build the config with from_dict/from_file/from_provider_bundle), got none"
                    )
                replica_config = StorageClientConfig.from_dict(source, replica.replica_profile)
                built.append((type(self)(replica_config), replica.read_only))
            self.__dict__["_replica_clients"] = built
        return built

    @property
    def replicas(self: StorageClient) -> builtins.list[StorageClient]:  # type: ignore[misc]
        """Clients of the profile's replicas, in read-priority order (empty without ``replicas``)."""
        return [client for client, _ in self._replica_entries()]

    @property
    def writable_replicas(self: StorageClient) -> builtins.list[StorageClient]:  # type: ignore[misc]
        """The replicas not marked ``read_only``, in read-priority order."""
        return [client for client, read_only in self._replica_entries() if not read_only]

    def _reads_replicas(self: StorageClient) -> bool:  # type: ignore[misc]
        return self._use_replicas and self._metadata_provider is None and bool(self._config.replicas)

    def _without_replicas(self: StorageClient) -> StorageClient:  # type: ignore[misc]
        """This profile's client reading its own store only (a sync source)."""
        if not self._reads_replicas():
            return self
        plain = type(self)(self._config)
        plain._use_replicas = False
        return plain

    def _replica_read(self: StorageClient, path: str) -> bytes:  # type: ignore[misc]
        """The whole object from the first replica holding it, else from the primary; writable
        replicas found lacking it are filled in the background."""
        lacking: builtins.list[StorageClient] = []
        data: bytes | None = None
        from_read_only = False
        for replica, read_only in self._replica_entries():
            try:
                if replica.is_file(path):
                    data, from_read_only = replica.read(path), read_only
                    break
                if not read_only:
                    lacking.append(replica)
            except Exception as exc:  # an unreachable replica: try the next one, then the primary
                logger.warning("replica %s: reading %s failed: %s", replica.profile, path, exc)
        if data is None:
            data = self._io.get_range(path, None, None)
        elif lacking and from_read_only and not _primary_has(self, path):
            lacking = []  # gone from the primary: do not resurrect it on the replicas
        if lacking:
            with _backfill_lock:
                lacking = [r for r in lacking if (r.profile, path) not in _backfilling]
                _backfilling.update((r.profile, path) for r in lacking)
            if lacking:
                _pool().submit(_fill, path, data, lacking)
        return data

    def _replica_download(self: StorageClient, path: str, local: str | IO) -> None:  # type: ignore[misc]
        data = self._replica_read(path)
        if isinstance(local, str):
            os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
            tmp = f"{local}.{os.getpid()}.{threading.get_ident()}.part"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, local)
        else:
            local.write(data)
            if hasattr(local, "seek"):
                local.seek(0)

    def _delete_from_replicas(self: StorageClient, path: str) -> None:  # type: ignore[misc]
        for replica in self.writable_replicas if self._reads_replicas() else []:
            try:
                replica.delete(path)
            except FileNotFoundError:
                pass
            except Exception as exc:
                logger.error("replica %s: deleting %s failed: %s", replica.profile, path, exc)

    def sync_replicas(  # type: ignore[misc]
        self: StorageClient,
        source_path: str,
        replica_indices: Sequence[int] | None = None,
        delete_unmatched_files: bool = False,
        description: str = "Syncing replica",
        num_worker_processes: int | None = None,
        execution_mode: ExecutionMode = ExecutionMode.LOCAL,
        patterns: PatternList | None = None,
        ignore_hidden: bool = True,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    ) -> None:
        """Copy ``source_path`` of this profile to the same path of its replicas.

        Args:
            source_path: Directory to sync (``""``: everything).
            replica_indices: Positions in :attr:`replicas` to sync (``None`` or empty: every
                writable replica).
            delete_unmatched_files: Delete replica objects this profile lacks.
            description: Progress label (the replica's profile is appended).
            num_worker_processes: Worker processes (see :meth:`sync_from`).
            execution_mode: ``LOCAL`` or ``RAY``.
            patterns: Include/exclude patterns (see :meth:`sync_from`).
            ignore_hidden: Leave out keys with a component starting with ``.``.
            symlink_handling: See :meth:`sync_from`.

        Raises:
            ValueError: An index out of range, or one naming a read-only replica.
            SyncError: Objects failed to sync to a replica (the replicas before it were synced).
        """
        entries = self._replica_entries()
        if not entries:
            logger.warning(
                "profile %r has no replicas: nothing to sync (add a 'replicas' list)", self.profile
            )
            return
        if replica_indices:
            chosen = []
            for index in replica_indices:
                if not 0 <= index < len(entries):
                    raise ValueError(
                        f"replica index {index} out of range: profile {self.profile!r} has "
                        f"{len(entries)} replica(s), indices 0..{len(entries) - 1}"
                    )
                replica, read_only = entries[index]
                if read_only:
                    raise ValueError(
                        f"replica index {index} ({replica.profile!r}) is read-only and cannot be synced"
                    )
                chosen.append(replica)
        else:
            chosen = self.writable_replicas
        if not chosen:
            logger.warning("profile %r has only read-only replicas: nothing to sync", self.profile)
            return
        source = self._without_replicas()
        for replica in chosen:
            replica.sync_from(
                source,
                source_path,
                source_path,
                delete_unmatched_files=delete_unmatched_files,
                description=f"{description} ({replica.profile})",
                num_worker_processes=num_worker_processes,
                execution_mode=execution_mode,
                patterns=patterns,
                ignore_hidden=ignore_hidden,
                symlink_handling=symlink_handling,
            )

    # ---------------------------------------------------------------- sync
    def sync_from(  # type: ignore[misc]
        self: StorageClient,
        source_client: StorageClient,
        source_path: str = "",
        target_path: str = "",
        delete_unmatched_files: bool = False,
        description: str = "Syncing",
        num_worker_processes: int | None = None,
        execution_mode: ExecutionMode = ExecutionMode.LOCAL,
        patterns: PatternList | None = None,
        preserve_source_attributes: bool = False,
        source_files: builtins.list[str] | None = None,
        ignore_hidden: bool = True,
        commit_metadata: bool = True,
        dryrun: bool = False,
        dryrun_output_path: str | None = None,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
        *,
        execution: str = "local",
        ray_address: str | None = None,
        threads: int | None = None,
        include: builtins.list[str] | None = None,
        exclude: builtins.list[str] | None = None,
        dry_run: bool = False,
        progress: bool | None = None,
    ) -> SyncResult:
        """Make ``target_path`` here mirror ``source_path`` of ``source_client``.

        Only new or changed objects are transferred (size, content MD5 or ETag, else mtime);
        server-side when both profiles name the same store. A failing object is retried,
        then reported at the end in :class:`~manystore.mirror.SyncError`; the rest complete.
        The source is read from its own store, never from its replicas.

        Args:
            source_client: Client to read from.
            source_path: Directory under the source to mirror (``""``: everything).
            target_path: Directory here to write to.
            delete_unmatched_files: Delete objects under ``target_path`` the source lacks.
            description: Progress bar label.
            num_worker_processes: Worker processes on this machine (``None``: threads only).
            execution_mode: 1.3.1's spelling of ``execution``: ``ExecutionMode.LOCAL`` or
                ``ExecutionMode.RAY`` (the same as ``execution="ray"``).
            patterns: ``[(PatternType.INCLUDE|EXCLUDE, glob), ...]`` on keys relative to
                ``source_path`` (see :class:`~manystore.client_links.PatternMatcher`): a source
                object they exclude is not copied. Not with ``source_files``.
            preserve_source_attributes: Copy each object's user metadata too (one metadata
                request per copied object; POSIX keeps none).
            source_files: Only these keys (relative to ``source_path``), looked up one by one
                instead of listing the source (missing ones are logged and left out); synced
                on threads in this process. Not with ``patterns``.
            ignore_hidden: Leave out keys with a path component starting with ``.`` (on both
                sides, also for deletion).
            commit_metadata: Commit the target's metadata provider (manifest) at the end;
                ``False`` leaves the updates pending for a later :meth:`commit_metadata`.
            dryrun: Change nothing; write what would be copied and deleted as JSON lines
                (``files_to_add.jsonl``, ``files_to_delete.jsonl``) and return their paths in
                ``SyncResult.dryrun`` (see :mod:`manystore.mirror.dryrun`).
            dryrun_output_path: Directory for those files (``None``: a new temporary one,
                which the caller removes).
            symlink_handling: ``FOLLOW`` copies what links point at, ``SKIP`` leaves links
                out, ``PRESERVE`` recreates them on the target with :meth:`make_symlink`
                (``*_STRICT`` raise on links leaving the profile).
            execution: ``"local"``, or ``"ray"`` to split listing and transfers across a Ray
                cluster (needs the ``ray`` extra).
            ray_address: Ray cluster address with ``execution="ray"`` (``None``: local).
            threads: Transfer threads per process or Ray task (default 16).
            include: Only keys (relative to ``source_path``) matching one of these globs.
            exclude: Leave keys matching these globs alone (also when deleting).
            dry_run: Count what would change; change nothing, write no files.
            progress: Progress bar on stderr (``None``: when stderr is a terminal).

        Returns:
            Counts of objects copied, skipped and deleted, and bytes copied.

        Raises:
            ValueError: Both ``source_files`` and ``patterns``.

        See :mod:`manystore.mirror` for how the work is split and what a rerun does.
        """
        from .mirror import sync_clients

        if ExecutionMode(execution_mode) is ExecutionMode.RAY:
            if execution not in ("local", "ray"):
                raise ValueError(
                    f"execution={execution!r} contradicts execution_mode=ExecutionMode.RAY; pass one"
                )
            execution = "ray"

        return sync_clients(
            source_client._without_replicas(),
            source_path,
            self,
            target_path,
            delete_unmatched_files=delete_unmatched_files,
            description=description,
            num_worker_processes=num_worker_processes,
            threads=threads,
            include=include,
            exclude=exclude,
            dry_run=dry_run or dryrun,
            progress=progress,
            execution=execution,
            ray_address=ray_address,
            patterns=patterns,
            ignore_hidden=ignore_hidden,
            symlink_handling=symlink_handling,
            preserve_source_attributes=preserve_source_attributes,
            source_files=source_files,
            commit_metadata=commit_metadata,
            dryrun_output_path=dryrun_output_path,
            write_dryrun=dryrun,
        )
