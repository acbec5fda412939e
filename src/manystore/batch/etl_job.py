"""Bulk ETL: a registered transform applied to many objects into another bucket, as a job.

Every selected object is read (pinned to the version it had when selected), passed
through the transform's stages and written to the target as ``prepend + name`` with its
extension renamed by ``ext``. Each write is atomic (nothing partial is ever visible) and
the output records what it was made from — the ETL names, their arguments, the source's
size and ETag — in the object's user metadata (object stores) or the extended attribute
``user.manystore.etl`` (POSIX). A rerun of a finished, failed or killed transform skips
every output whose record matches its source (``force=True`` redoes them).

The objects run on threads of this process, or — ``execution="ray"`` or
``num_worker_processes`` > 1 — in batches on the sync engine's executors
(:mod:`manystore.mirror.executors`): each batch is one picklable call
(:func:`transform_batch`) that builds its clients from their pickled configuration and
imports the transform by reference. Per-object results come back to the job, so
``continue_on_error`` and the counts are per object whatever runs them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..mirror.executors import SyncExecutor, make_executor
from ..mirror.transfer import portable_error
from ..types import ObjectMetadata
from .etl import Registration, importable
from .etl_apply import local_path_of, run_stages, source_input
from .jobs import SKIPPED, Job, start_job
from .reader import _Source

if TYPE_CHECKING:
    from ..client import StorageClient
    from .bucket import Bucket

__all__ = [
    "RECORD_ATTRIBUTE",
    "RECORD_XATTR",
    "Task",
    "start_transform",
    "transform_batch",
    "transform_objects",
    "transform_one",
]

logger = logging.getLogger(__name__)

#: User-metadata key of an output's record on object stores.
RECORD_ATTRIBUTE = "manystore_etl"
#: Extended attribute of an output's record on POSIX.
RECORD_XATTR = "user.manystore.etl"
#: Objects per call sent to a worker process or Ray task.
BATCH_OBJECTS = 32
#: Bytes per ranged GET of a source object.
READ_CHUNK = 8 << 20
_CLIENTS: dict[bytes, StorageClient] = {}
_CLIENTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Task:
    """One object to transform.

    Attributes:
        name: Its name in the source bucket (the job reports it under this name).
        src_key: Its key in the source profile.
        src_url: Its URL (the transform's ``path``).
        dst_key: The output's key in the target profile.
        src_meta: Its metadata from the listing (None: fetched when it runs).
        dst_exists: Whether the target listing had the output (False: no record to check).
    """

    name: str
    src_key: str
    src_url: str
    dst_key: str
    src_meta: ObjectMetadata | None
    dst_exists: bool = True


class _OnePassSource(_Source):
    """A source read once, past the read cache (a bulk transform would only churn it)."""

    def fetch(self, offset: int, length: int) -> bytes:
        return self.client._io.fetch_block(self.key, offset, length, self.meta.etag, cached=False)


def record_of(stages: list[Registration], args: str, meta: ObjectMetadata) -> str:
    """The record an output of ``meta``'s version through ``stages`` with ``args`` carries (ASCII)."""
    names = ">".join(reg.name for reg in stages)
    return quote(f"{names}|{args}|{meta.content_length}|{meta.etag or ''}", safe="")


def current_record(client: StorageClient, key: str) -> str | None:
    """The record of the output at ``key`` (None: missing, or not made by a transform)."""
    local = local_path_of(client, key)
    if local is not None:
        try:
            return os.getxattr(local, RECORD_XATTR).decode("ascii")
        except OSError:  # missing file, no attribute, or a file system without xattrs
            return None
    try:
        meta = client.info(key)
    except FileNotFoundError:
        return None
    return (meta.metadata or {}).get(RECORD_ATTRIBUTE)


def transform_one(
    src: StorageClient,
    dst: StorageClient,
    stages: list[Registration],
    args: str,
    task: Task,
    force: bool = False,
) -> int:
    """Transform one object into its output unless the output is current; returns bytes written.

    An output already current (and not ``force``) is left alone: the result is
    :data:`~manystore.batch.jobs.SKIPPED` (an ``int`` equal to 0).

    Raises:
        FileNotFoundError: The source object does not exist.
        PreconditionFailedError: It changed after it was listed.
        TimeoutError: The transform took longer than its ``obj_timeout``.
        Exception: Whatever the transform raised (no output is written).
    """
    meta = task.src_meta or src.info(task.src_key)
    record = record_of(stages, args, meta)
    if not force and task.dst_exists and current_record(dst, task.dst_key) == record:
        return SKIPPED
    source = _OnePassSource(src, task.src_key, meta, 0, meta.content_length, READ_CHUNK, 1)
    data = source_input(src, source, stages[0], max_resume=5)
    written = 0
    local_dst = local_path_of(dst, task.dst_key)
    attributes = None if local_dst is not None else {RECORD_ATTRIBUTE: record}
    with dst.open(task.dst_key, "wb", attributes=attributes) as out:
        for chunk in run_stages(stages, data, task.src_url, args):
            out.write(chunk)
            written += len(chunk)
    if local_dst is not None:
        try:
            os.setxattr(local_dst, RECORD_XATTR, record.encode("ascii"))
        except OSError as exc:  # a file system without user xattrs: the output is redone next run
            logger.warning("cannot record the ETL source of %s (%s); a rerun redoes it", local_dst, exc)
    return written


def _client(blob: bytes) -> StorageClient:
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(blob)
        if client is None:
            client = _CLIENTS[blob] = pickle.loads(blob)
        return client


def transform_batch(
    src_blob: bytes,
    dst_blob: bytes,
    stages: list[Registration],
    args: str,
    tasks: list[Task],
    threads: int,
    force: bool,
) -> list[tuple[int, BaseException | None]]:
    """Transform ``tasks`` in a worker (process or Ray task) on ``threads`` threads.

    The clients come as pickled bytes (their configuration) and are built once per
    worker. Returns, per task in order, the bytes written and the error (None when it
    succeeded), errors made picklable.
    """
    from concurrent.futures import ThreadPoolExecutor

    src, dst = _client(src_blob), _client(dst_blob)

    def one(task: Task) -> tuple[int, BaseException | None]:
        try:
            return transform_one(src, dst, stages, args, task, force), None
        except Exception as exc:
            return 0, portable_error(exc)

    with ThreadPoolExecutor(max(1, min(threads, len(tasks)))) as pool:
        return list(pool.map(one, tasks))


class _Dispatcher:
    """Collects the job threads' tasks into batches for an executor; each thread waits on its own."""

    def __init__(self, executor: SyncExecutor, call: Callable[[list[Task]], Future[Any]]) -> None:
        self._executor, self._call = executor, call
        self._queue: queue.Queue[tuple[Task, Future[int]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="manystore-etl-dispatch", daemon=True)
        self._thread.start()

    def run(self, task: Task) -> int:
        future: Future[int] = Future()
        self._queue.put((task, future))
        return future.result()

    def _loop(self) -> None:
        closed = False
        while not closed:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            deadline = time.monotonic() + 0.01
            while len(batch) < BATCH_OBJECTS:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    closed = True
                    break
                batch.append(nxt)
            try:
                sent = self._call([task for task, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            sent.add_done_callback(functools.partial(self._deliver, batch=batch))

    @staticmethod
    def _deliver(done: Future[Any], batch: list[tuple[Task, Future[int]]]) -> None:
        error = done.exception()
        if error is not None:  # the worker died, or the batch could not be sent
            for _, fut in batch:
                fut.set_exception(error)
            return
        for (_, fut), (written, exc) in zip(batch, done.result(), strict=True):
            if exc is None:
                fut.set_result(written)
            else:
                fut.set_exception(exc)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def _check_portable(stages: list[Registration], execution: str) -> None:
    for reg in stages:
        if execution == "ray":
            try:
                import ray.cloudpickle as cloudpickle

                cloudpickle.dumps(reg)
                continue
            except ImportError:
                pass  # make_executor says Ray is missing
            except Exception as exc:
                raise TypeError(
                    f"ETL {reg.name!r}: {reg.reference} cannot be sent to Ray tasks: {exc}"
                ) from exc
        if not importable(reg.target):
            raise TypeError(
                f"ETL {reg.name!r}: {reg.reference} cannot go to worker processes (lambdas, nested "
                "functions and objects of an interactive session cannot be imported there); "
                "define it at module level of an importable module"
            )
        try:
            pickle.loads(pickle.dumps(reg))
        except Exception as exc:
            raise TypeError(
                f"ETL {reg.name!r}: {reg.reference} cannot go to worker processes: {exc}"
            ) from exc


def _close_when_done(
    job_id: str, location: str | None, dispatcher: _Dispatcher, executor: SyncExecutor
) -> None:
    job = Job(job_id, cache_location=location)
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                job.wait(timeout=3600, verbose=False)
                break
    finally:
        dispatcher.close()
        executor.close()


def start_transform(
    src: Bucket,
    dst: Bucket,
    items: Sequence[tuple[str, ObjectMetadata | None]],
    stages: list[Registration],
    args: str,
    *,
    rename: Callable[[str], str],
    kind: str,
    continue_on_error: bool,
    dry_run: bool,
    force: bool,
    threads: int,
    execution: str,
    num_worker_processes: int | None,
    ray_address: str | None,
    deadline: float | None = None,
) -> str:
    """Start a transform job over ``items`` (names with their listed metadata, if known); returns its id.

    Objects not started by ``deadline`` (a ``time.monotonic()`` value) fail with :class:`TimeoutError`.

    Raises:
        TypeError: The transform cannot go to the chosen workers.
        ConfigError: Bad ``execution``/``num_worker_processes``/``ray_address``.
        ManystoreError: Ray is wanted but missing or unreachable.
    """
    existing = {m.key for m in dst.client.list(dst.prefix) if m.type == "file"}
    tasks = [
        Task(
            name,
            src._key(name),
            src._url(name),
            dst._key(rename(name)),
            meta,
            dst._key(rename(name)) in existing,
        )
        for name, meta in items
    ]
    src_client, dst_client = src.client, dst.client

    def plan(task: Task) -> str:
        meta = task.src_meta or src_client.info(task.src_key)
        target = dst._url(task.dst_key[len(dst.prefix) :])
        if (
            not force
            and task.dst_exists
            and current_record(dst_client, task.dst_key) == record_of(stages, args, meta)
        ):
            return f"skip {task.src_url} -> {target} (output is current)"
        return f"transform {task.src_url} -> {target} (etl {'>>'.join(r.name for r in stages)})"

    executor = None
    if not dry_run:
        if execution == "ray" or (num_worker_processes or 1) > 1:
            _check_portable(stages, execution)
        executor = make_executor(execution, num_worker_processes, ray_address)
        reaper = getattr(dst_client._storage_provider, "reap_temp_files", None)
        if reaper is not None:  # temp files of killed writers (POSIX)
            reaper(dst.prefix)

    def launch(work: Callable[[Task], int], workers: int) -> str:
        def timed(task: Task) -> int:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"transform job timeout passed before {task.src_url} started")
            return work(task)

        return start_job(
            kind,
            tasks,
            timed,
            name_of=lambda task: task.name,
            continue_on_error=continue_on_error,
            num_workers=workers,
            dry_run=dry_run,
            plan_of=plan,
            cache_location=src._jobs_location,
        )

    if executor is None:
        return launch(lambda task: transform_one(src_client, dst_client, stages, args, task, force), threads)
    src_blob, dst_blob = pickle.dumps(src_client), pickle.dumps(dst_client)
    runner = executor

    def send(batch: list[Task]) -> Future[Any]:
        return runner.submit(transform_batch, src_blob, dst_blob, stages, args, batch, threads, force)

    dispatcher = _Dispatcher(executor, send)
    try:
        job_id = launch(dispatcher.run, executor.slots * BATCH_OBJECTS * 2)
    except BaseException:
        dispatcher.close()
        executor.close()
        raise
    threading.Thread(
        target=_close_when_done,
        args=(job_id, src._jobs_location, dispatcher, executor),
        name=f"manystore-etl-{job_id}",
        daemon=True,
    ).start()
    return job_id


def transform_objects(
    src: Bucket,
    to_bck: Bucket,
    items: Sequence[tuple[str, ObjectMetadata | None]],
    etl_name: str,
    *,
    kind: str,
    etl_pipeline: list[str] | None,
    timeout: str | float | None,
    prepend: str,
    ext: dict[str, str] | None,
    continue_on_error: bool,
    dry_run: bool,
    force: bool,
    sync: bool,
    num_workers: int | None,
    execution: str,
    num_worker_processes: int | None,
    ray_address: str | None,
    etl_args: str | dict[str, Any] | None = None,
) -> str:
    """The shared body of ``Bucket.transform`` and ``ObjectGroup.transform`` (see their docs).

    ``etl_args`` reach every transform call as the SDK sends per-request arguments (a
    dict as compact JSON, a string as is; None: ``""``) and are part of each output's record.

    Raises:
        NotImplementedError: ``sync=True``.
        LookupError: An ETL name is not registered.
        RuntimeError: An ETL is stopped.
        TypeError: The transform cannot go to the chosen workers.
        ValueError: A bad ``timeout`` or ``num_workers``.
    """
    from .bucket import apply_ext
    from .etl import parse_duration
    from .etl_apply import etl_args_text, resolve_stages
    from .group import worker_count

    if sync:
        raise NotImplementedError(
            f"transform(sync=True) of {src.name}: AIS remote-bucket sync has no equivalent"
        )
    if not isinstance(etl_name, str):
        raise TypeError(f"etl_name={etl_name!r}: expected the name of a registered ETL")
    stages, _ = resolve_stages(etl_name, src._jobs_location, etl_pipeline)
    args = etl_args_text(etl_args)
    deadline = None if timeout is None else time.monotonic() + parse_duration(timeout, "timeout")
    return start_transform(
        src,
        to_bck,
        items,
        stages,
        args,
        rename=lambda name: prepend + apply_ext(name, ext),
        kind=kind,
        continue_on_error=continue_on_error,
        dry_run=dry_run,
        force=force,
        threads=worker_count(num_workers),
        execution=execution,
        num_worker_processes=num_worker_processes,
        ray_address=ray_address,
        deadline=deadline,
    )
