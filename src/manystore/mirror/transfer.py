"""Moving one object, and a batch of objects, from a source client to a target client.

The cheapest route is taken per object: a server-side copy when both profiles name the
same store, an upload from / download to the local file when one side is a POSIX
profile, one GET and one PUT for small objects, and a streamed copy (bounded memory,
multipart upload) for large ones. Every route writes atomically, so a transfer that is
killed leaves the target's old object (or nothing), never a partial one.
"""

from __future__ import annotations

import os
import pickle
import re
import time
from collections.abc import Callable, Iterable, Sequence
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
from ..providers.posix_file import PosixFileStorageProvider
from ..types import ObjectMetadata
from .plan import Job

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = [
    "Transfer",
    "TransferResult",
    "is_local_pair",
    "local_pair_threads",
    "local_threads",
    "mount_fs_type",
    "portable_error",
    "transfer_jobs",
]

#: Objects up to this size are copied with one GET and one PUT (held in memory once).
SMALL_OBJECT = 8 << 20
#: Attempts per object (each attempt already retries transient errors inside the client).
OBJECT_ATTEMPTS = 2
#: Local -> local copies go to the threads in batches of up to this many objects (or
#: :data:`BATCH_BYTES`): one task per batch, not per file, and one directory lookup per
#: batch. Routes over the network keep one object per task (their parallelism is the point).
LOCAL_BATCH = 128
BATCH_BYTES = 8 << 20


#: File systems held in memory: a copy there is pure CPU work, and one thread does it best.
MEMORY_FILE_SYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs"})
#: File systems over a network (or a user-space daemon): each call waits on a round trip, so
#: many threads overlap the waits, as for object stores.
REMOTE_FILE_SYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "virtiofs",
        "lustre",
        "gpfs",
        "beegfs",
        "ceph",
        "glusterfs",
    }
)


def mount_fs_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the file system holding ``path`` (e.g. ``"ext4"``, ``"tmpfs"``, ``"fuse.sshfs"``),
    from ``mountinfo`` (the text of ``/proc/self/mountinfo``, read when ``None``); ``None`` when
    it cannot be told (no ``/proc``: not Linux)."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return None
    real = os.path.realpath(path)
    best, best_type = -1, None
    for line in mountinfo.splitlines():
        fields, sep, tail = line.partition(" - ")
        parts = fields.split()
        if not sep or len(parts) < 5 or not tail:
            continue
        # The mount point, with space, tab, newline and backslash escaped as octal (\040 ...).
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # the deepest mount point wins; of equal ones the last
            best, best_type = len(point), tail.split()[0]
    return best_type


def local_threads(*paths: str) -> int:
    """Default threads of a local -> local sync between the directories ``paths``, by what bounds the copy.

    * Any of them on a network or FUSE file system (see :data:`REMOTE_FILE_SYSTEMS`): every
      call waits on a round trip, and threads overlap the waits: 16, as for object stores.
    * All in memory (:data:`MEMORY_FILE_SYSTEMS`): the copy is CPU work in the interpreter
      and the kernel, and the interpreter's lock lets one thread at a time run: 1.
    * Otherwise (local disks, or no path given): half the CPUs, 1 to 4. Small-file copies
      there mostly hit the page cache (CPU-bound like memory); more threads only help while
      the kernel waits on the disk (on 2 cores 16 threads took 1.8x the time of 1 on ext4).

    An explicit ``threads`` (or ``MANYSTORE_SYNC_THREADS``) still wins.
    """
    types = [mount_fs_type(path) for path in paths] if paths else []
    if any(t is not None and (t in REMOTE_FILE_SYSTEMS or t.startswith("fuse")) for t in types):
        return 16
    if types and all(t in MEMORY_FILE_SYSTEMS for t in types):
        return 1
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def local_pair_threads(
    source: StorageClient, source_path: str, target: StorageClient, target_path: str
) -> int:
    """:func:`local_threads` of the directories a local -> local sync reads and writes."""
    paths = []
    for client, path in ((source, source_path), (target, target_path)):
        sp = _provider(client)
        local = sp.local_path(path.strip("/")) if sp is not None else None
        if local is not None:
            paths.append(local)
    return local_threads(*paths)


def is_local_pair(source: StorageClient, target: StorageClient) -> bool:
    """Both clients are plain POSIX profiles (no metadata provider): the batched local route."""
    return isinstance(_provider(source), PosixFileStorageProvider) and isinstance(
        _provider(target), PosixFileStorageProvider
    )


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
        self._local_pair: tuple[PosixFileStorageProvider, PosixFileStorageProvider] | None = None
        if isinstance(src_sp, PosixFileStorageProvider) and isinstance(dst_sp, PosixFileStorageProvider):
            self._local_pair = (src_sp, dst_sp)  # see is_local_pair
        #: Objects per thread task (see :data:`LOCAL_BATCH`).
        self.batch_size = LOCAL_BATCH if self._local_pair is not None else 1

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

    def copy_batch(self, jobs: list[Job]) -> list[BaseException | None]:
        """Copy ``jobs`` (in one thread); per job ``None`` or its error after all attempts.

        Local pairs go through the provider's batch copy first; what fails there is
        retried on the per-object route, so errors and retries are those of :meth:`copy`.
        """
        pair = self._local_pair
        if pair is not None and all(job[3] is None for job in jobs):  # the common case: plain files
            errors = pair[1].copy_many_from(pair[0], [(job[0], job[1]) for job in jobs])
            batched: Sequence[int] = range(len(jobs))
        else:  # symlinks to recreate take the per-object route
            errors = [None] * len(jobs)
            batched = [i for i, job in enumerate(jobs) if job[3] is None] if pair is not None else []
            if batched and pair is not None:
                done = pair[1].copy_many_from(pair[0], [(jobs[i][0], jobs[i][1]) for i in batched])
                for i, error in zip(batched, done, strict=True):
                    errors[i] = error
        io = self.target._io
        cached = io.cache() is not None
        if not cached and len(batched) == len(jobs) and not any(errors):
            return errors
        in_batch = set(batched)
        for i, job in enumerate(jobs):
            if i not in in_batch or errors[i] is not None:
                try:
                    self.copy_with_retry(job)
                    errors[i] = None
                except Exception as exc:
                    errors[i] = exc
            elif cached:
                io.invalidate(job[1])
        return errors


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
    """Copy ``jobs`` on ``threads`` threads as they arrive, in tasks of ``transfer.batch_size``
    objects (at most ``4 * threads`` tasks queued); failures are collected, not raised.
    ``on_start``/``on_done`` run in the calling thread."""
    result = TransferResult()
    pending: dict[Future[list[BaseException | None]], list[Job]] = {}

    def settle(done: set[Future[list[BaseException | None]]]) -> None:
        for fut in done:
            batch = pending.pop(fut)
            _account(result, batch, fut.result(), on_done)

    size = transfer.batch_size
    if threads == 1 and size > 1:  # one batched copier: it runs here, no lock handoffs to a thread
        _transfer_inline(transfer, jobs, result, on_start, on_done)
        return result
    batch: list[Job] = []
    nbytes = 0
    folder = ""  # target directory of the batch: a batch never spans two (one directory fd each side)
    with ThreadPoolExecutor(threads) as pool:
        for job in jobs:
            if on_start is not None:
                on_start(job)
            if size > 1:
                where = job[1].rpartition("/")[0]
                if where != folder:
                    if batch:
                        pending[pool.submit(transfer.copy_batch, batch)] = batch
                        batch, nbytes = [], 0
                    folder = where
            batch.append(job)
            nbytes += job[2]
            if len(batch) >= size or nbytes >= BATCH_BYTES:
                pending[pool.submit(transfer.copy_batch, batch)] = batch
                batch, nbytes = [], 0
            if len(pending) >= threads * 4:
                settle(wait(pending, return_when=FIRST_COMPLETED).done)
        if batch:
            pending[pool.submit(transfer.copy_batch, batch)] = batch
        settle(wait(pending).done)
    return result


def _transfer_inline(
    transfer: Transfer,
    jobs: Iterable[Job],
    result: TransferResult,
    on_start: Callable[[Job], None] | None,
    on_done: Callable[[Job, BaseException | None], None] | None,
) -> None:
    """:func:`transfer_jobs` on one thread, the calling one: each batch is copied as soon as it is
    complete, between the planner's steps (listing and copying still interleave)."""
    batch: list[Job] = []
    nbytes, size, folder = 0, transfer.batch_size, ""

    for job in jobs:
        if on_start is not None:
            on_start(job)
        where = job[1].rpartition("/")[0]
        if (where != folder or len(batch) >= size or nbytes >= BATCH_BYTES) and batch:
            _account(result, batch, transfer.copy_batch(batch), on_done)
            batch, nbytes = [], 0
        folder = where
        batch.append(job)
        nbytes += job[2]
    if batch:
        _account(result, batch, transfer.copy_batch(batch), on_done)


def _account(
    result: TransferResult,
    batch: list[Job],
    errors: list[BaseException | None],
    on_done: Callable[[Job, BaseException | None], None] | None,
) -> None:
    """Count a finished batch into ``result`` (and report each job to ``on_done``)."""
    if on_done is None and not any(errors):  # all copied: count them in one go
        result.copied += len(batch)
        result.bytes_copied += sum(job[2] for job in batch)
        return
    for job, error in zip(batch, errors, strict=True):
        if error is None:
            result.copied += 1
            result.bytes_copied += job[2]
        else:
            result.failures[job[0]] = error
        if on_done is not None:
            on_done(job, error)
