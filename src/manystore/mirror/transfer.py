"""Moving one object, and a batch of objects, from a source client to a target client.

The cheapest route is taken per object: a server-side copy when both profiles name the
same store, an upload from / download to the local file when one side is a POSIX
profile, one GET and one PUT for small objects, and a streamed copy (bounded memory,
multipart upload) for large ones. Every route writes atomically, so a transfer that is
killed leaves the target's old object (or nothing), never a partial one.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import (
    ConfigError,
    InvalidPathError,
    ManystoreError,
    ObjectNotFoundError,
    ReadOnlyError,
)
from ..file import READ_BLOCK_SIZE
from ..providers.base import BaseStorageProvider
from ..types import ObjectMetadata
from .plan import Job

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["TransferResult", "Transfer", "portable_error", "transfer_jobs"]

#: Objects up to this size are copied with one GET and one PUT (held in memory once).
SMALL_OBJECT = 8 << 20
#: Attempts per object (each attempt already retries transient errors inside the client).
OBJECT_ATTEMPTS = 2
_PERMANENT = (ObjectNotFoundError, PermissionError, ConfigError, InvalidPathError, ReadOnlyError, ValueError)


@dataclass
class TransferResult:
    """Outcome of a batch: what was copied, and each failed key with its error."""

    copied: int = 0
    bytes_copied: int = 0
    failures: dict[str, BaseException] = field(default_factory=dict)


def _provider(client: StorageClient) -> BaseStorageProvider | None:
    sp = client._storage_provider
    return sp if isinstance(sp, BaseStorageProvider) and client._metadata_provider is None else None


class Transfer:
    """Copies objects from ``source`` to ``target``, choosing the route once per pair.

    With ``preserve_attributes`` the source object's user metadata is written with the copy
    (a server-side copy keeps it anyway; POSIX keeps none).
    """

    def __init__(
        self, source: StorageClient, target: StorageClient, preserve_attributes: bool = False
    ) -> None:
        self.source, self.target = source, target
        self.preserve_attributes = preserve_attributes
        self._src_sp, self._dst_sp = src_sp, dst_sp = _provider(source), _provider(target)
        self._server_side = src_sp is not None and dst_sp is not None and dst_sp.can_copy_from(src_sp)

    def _local(self, sp: BaseStorageProvider | None, key: str) -> str | None:
        return sp.local_path(key) if sp is not None else None

    def _attributes(self, src_key: str) -> dict[str, str] | None:
        if not self.preserve_attributes:
            return None
        return self.source.info(src_key).metadata or None

    def copy(self, src_key: str, dst_key: str, size: int, link: str | None = None) -> None:
        """Copy one object (or, given ``link``, recreate a symlink); raises what the last route raised."""
        source, target = self.source, self.target
        if link is not None:
            target.make_symlink(dst_key, ObjectMetadata.resolve_symlink_target(dst_key, link))
            return
        if size == 0 and self._local(self._src_sp, src_key) is None:
            final, meta = source._follow(src_key)  # an empty object may be a symlink: copy what it points at
            if final != src_key.strip("/"):
                src_key, size = final, meta.content_length
        if source is target and not self.preserve_attributes:
            target.copy(src_key, dst_key)
            return
        src_sp, dst_sp = self._src_sp, self._dst_sp
        if self._server_side and src_sp is not None and dst_sp is not None:
            target._io.retry(lambda: dst_sp.copy_from(src_sp, src_key, dst_key), f"copy {src_key}")
            target._io.invalidate(dst_key)
            return
        attributes = self._attributes(src_key)
        local_src = self._local(src_sp, src_key)
        if local_src is not None:
            if size <= SMALL_OBJECT:  # one read and one PUT: cheaper than a streamed upload
                with open(local_src, "rb") as f:
                    target.write(dst_key, f.read(), attributes)
            else:
                target.upload_file(dst_key, local_src, attributes)
            return
        local_dst = self._local(dst_sp, dst_key)
        if local_dst is not None:
            source.download_file(src_key, local_dst)
            return
        if size <= SMALL_OBJECT:  # one GET (retried, past the read cache), one PUT
            target.write(dst_key, source._io.get_range(src_key, None, None), attributes)
            return
        with (
            source.open(src_key, "rb", disable_read_cache=True, memory_load_limit=READ_BLOCK_SIZE) as reader,
            target.open(dst_key, "wb", attributes=attributes) as writer,
        ):
            while block := reader.read(READ_BLOCK_SIZE):
                writer.write(block)

    def copy_with_retry(self, job: Job) -> None:
        """Copy with up to :data:`OBJECT_ATTEMPTS` attempts; permanent errors are not retried."""
        src_key, dst_key, size, link = job
        for attempt in range(1, OBJECT_ATTEMPTS + 1):
            try:
                self.copy(src_key, dst_key, size, link)
                return
            except _PERMANENT:
                raise
            except Exception:
                if attempt == OBJECT_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)


def portable_error(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to cross a process), else a :class:`ManystoreError` naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return ManystoreError(f"{type(exc).__name__}: {exc}")


def transfer_jobs(
    transfer: Transfer,
    jobs: Iterable[Job],
    threads: int,
    on_start: Callable[[Job], None] | None = None,
    on_done: Callable[[Job, BaseException | None], None] | None = None,
) -> TransferResult:
    """Copy ``jobs`` on ``threads`` threads as they arrive (at most ``4 * threads`` queued);
    failures are collected, not raised. ``on_start``/``on_done`` run in the calling thread."""
    result = TransferResult()
    pending: dict[Future[None], Job] = {}

    def settle(done: set[Future[None]]) -> None:
        for fut in done:
            job = pending.pop(fut)
            error = fut.exception()
            if error is None:
                result.copied += 1
                result.bytes_copied += job[2]
            else:
                result.failures[job[0]] = error
            if on_done is not None:
                on_done(job, error)

    with ThreadPoolExecutor(threads) as pool:
        for job in jobs:
            if on_start is not None:
                on_start(job)
            pending[pool.submit(transfer.copy_with_retry, job)] = job
            if len(pending) >= threads * 4:
                settle(wait(pending, return_when=FIRST_COMPLETED).done)
        settle(wait(pending).done)
    return result
