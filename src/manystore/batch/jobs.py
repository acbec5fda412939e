"""Jobs: long multi-object operations run on background threads, observable from any process.

Each job (a group copy, delete, prefetch, evict...) gets an id and a small JSON state file
``<cache dir>/batch-jobs/<id>.json`` (the cache directory is the profile's
``cache.location``, else manystore's per-user default, ``$TMPDIR/manystore_cache_<uid>``).
The process that started the job runs it on its own threads and rewrites the file
atomically as it goes (at most every :data:`FLUSH_INTERVAL` seconds, and at the end), so
``Client().job(id).status()`` answers in any process on the machine.

A job lives in the process that started it. If that process exits or dies first, the
file still says ``running`` but its process is gone: :meth:`Job.status` then reports the
state ``abandoned`` (``aborted=True``), and :meth:`Job.wait` returns an unsuccessful
result instead of waiting for a job that will never end.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from ..caching.cache_config import default_cache_path

__all__ = ["SKIPPED", "Job", "JobStatus", "Skipped", "WaitResult", "jobs_dir", "start_job"]

logger = logging.getLogger(__name__)

#: Seconds between state-file rewrites while a job runs.
FLUSH_INTERVAL = 0.2
#: Per-object errors kept in the state file (the counts are always exact).
MAX_ERRORS_KEPT = 1000
#: Default wait, as the SDK's (5 minutes).
DEFAULT_JOB_WAIT_TIMEOUT = 300
_T = TypeVar("_T")


class Skipped(int):
    """A work result meaning the item needed no work (e.g. an ETL output already current).

    It is an ``int`` (bytes moved: 0), so callers that add results up are unaffected; the
    job counts it as done and also in :attr:`JobStatus.objects_skipped`.
    """


#: The result ``work`` returns for an item it skipped.
SKIPPED = Skipped(0)


def jobs_dir(cache_location: str | None = None) -> str:
    """The directory of job state files under ``cache_location`` (default: manystore's cache dir)."""
    return os.path.join(cache_location or default_cache_path(), "batch-jobs")


@dataclass
class JobStatus:
    """A job's state, as the SDK's ``JobStatus`` plus counts.

    Attributes:
        uuid: The job id.
        kind: What it does (``copy-objects``, ``delete-objects``, ``prefetch-objects``...).
        state: ``running``, ``done``, ``failed`` (stopped at the first error), or
            ``abandoned`` (its process died before it ended).
        err: The errors joined into one message (empty when none).
        end_time: When it ended, nanoseconds since the epoch (0 while running).
        aborted: True when it stopped early (``failed`` or ``abandoned``).
        total: Objects it was given.
        objects_done: Objects finished successfully (planned, for a dry run), skipped ones included.
        objects_failed: Objects that failed.
        objects_skipped: Of ``objects_done``, those that needed no work (:data:`SKIPPED`).
        bytes: Bytes moved.
        errors: Per-object error messages by object name (up to :data:`MAX_ERRORS_KEPT`).
        dry_run: True when nothing was changed, only planned.
        planned: For a dry run: the actions it would take (up to :data:`MAX_ERRORS_KEPT`).
        pid: Process that ran it; host: that process's machine.
        start_time: When it started, nanoseconds since the epoch.
    """

    uuid: str
    kind: str = ""
    state: str = "running"
    err: str = ""
    end_time: int = 0
    aborted: bool = False
    total: int = 0
    objects_done: int = 0
    objects_failed: int = 0
    objects_skipped: int = 0
    bytes: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    planned: list[str] = field(default_factory=list)
    pid: int = 0
    host: str = ""
    start_time: int = 0

    @property
    def finished(self) -> bool:
        """True once the job will change no more (done, failed or abandoned)."""
        return self.state != "running"


@dataclass
class WaitResult:
    """Outcome of :meth:`Job.wait` (as the SDK's): truthy when the job succeeded."""

    job_id: str
    success: bool
    error: str | None = None
    end_time: datetime | None = None

    def __bool__(self) -> bool:
        return self.success


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # another machine's process: cannot tell, assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Recorder:
    """Counts of one running job, written to its state file."""

    def __init__(self, path: str, status: JobStatus) -> None:
        self.path, self.status = path, status
        self.lock = threading.Lock()
        self._last_write = 0.0
        self.write(force=True)

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < FLUSH_INTERVAL:
            return
        self._last_write = now
        data = json.dumps(self.status.__dict__)
        tmp = f"{self.path}.tmp-{os.getpid()}-{threading.get_ident()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.replace(tmp, self.path)

    def record(self, name: str, moved: int | None, error: BaseException | None, plan: str | None) -> None:
        with self.lock:
            st = self.status
            if error is not None:
                st.objects_failed += 1
                if len(st.errors) < MAX_ERRORS_KEPT:
                    st.errors[name] = f"{type(error).__name__}: {error}"
            else:
                st.objects_done += 1
                st.objects_skipped += isinstance(moved, Skipped)
                st.bytes += moved or 0
                if plan is not None and len(st.planned) < MAX_ERRORS_KEPT:
                    st.planned.append(plan)
            self.write()

    def finish(self, stopped_early: bool) -> None:
        with self.lock:
            st = self.status
            st.state = "failed" if stopped_early else "done"
            st.aborted = stopped_early
            st.err = "; ".join(f"{k}: {v}" for k, v in list(st.errors.items())[:20])
            if st.objects_failed > 20:
                st.err += f"; ... {st.objects_failed - 20} more"
            st.end_time = time.time_ns()
            self.write(force=True)


def start_job(
    kind: str,
    items: Iterable[_T],
    work: Callable[[_T], int | None],
    *,
    name_of: Callable[[_T], str] = str,
    continue_on_error: bool = False,
    num_workers: int = 16,
    dry_run: bool = False,
    plan_of: Callable[[_T], str] | None = None,
    cache_location: str | None = None,
    finalize: Callable[[bool], None] | None = None,
) -> str:
    """Start ``work(item)`` for every item on background threads; return the job id at once.

    Args:
        kind: The job kind shown in its status.
        items: What to work on (materialised now, so the total is known).
        work: Does one item and returns the bytes it moved (or None; :data:`SKIPPED` when
            the item needed no work); raises on failure.
        name_of: The name an item is reported under.
        continue_on_error: Keep going after a failure (each is recorded); else stop
            submitting new items at the first failure (the job ends ``failed``).
        num_workers: Threads (at least 1).
        dry_run: Call ``plan_of(item)`` instead of ``work`` and record it as planned.
        plan_of: Describes what ``work`` would do (required with ``dry_run``).
        cache_location: The cache directory holding the state files (default: manystore's).
        finalize: Called once after the last item with True if the job stopped early (a
            failure without ``continue_on_error``); an exception it raises fails the job
            (recorded under ``"<job>"``). Not called for a dry run.

    Raises:
        ValueError: ``num_workers < 1``, or ``dry_run`` without ``plan_of``.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers={num_workers!r}: expected >= 1")
    if dry_run and plan_of is None:
        raise ValueError(f"job kind {kind!r}: dry_run needs plan_of")
    todo = list(items)
    job_id = uuid.uuid4().hex[:16]
    directory = jobs_dir(cache_location)
    os.makedirs(directory, exist_ok=True)
    status = JobStatus(
        uuid=job_id,
        kind=kind,
        total=len(todo),
        dry_run=dry_run,
        pid=os.getpid(),
        host=socket.gethostname(),
        start_time=time.time_ns(),
    )
    recorder = _Recorder(os.path.join(directory, f"{job_id}.json"), status)

    def one(item: _T) -> tuple[str, int | None, str | None]:
        if dry_run:
            assert plan_of is not None
            return name_of(item), 0, plan_of(item)
        return name_of(item), work(item), None

    def run() -> None:
        stopped = False
        pending: set[Future[tuple[str, int | None, str | None]]] = set()
        names: dict[Future[Any], str] = {}
        queue = iter(todo)
        with ThreadPoolExecutor(num_workers, thread_name_prefix=f"manystore-job-{job_id}") as pool:
            while True:
                while not stopped and len(pending) < num_workers * 2:
                    item = next(queue, None)
                    if item is None:
                        break
                    future = pool.submit(one, item)
                    names[future] = name_of(item)
                    pending.add(future)
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    name = names.pop(future)
                    try:
                        _, moved, plan = future.result()
                        recorder.record(name, moved, None, plan)
                    except Exception as exc:
                        recorder.record(name, None, exc, None)
                        if not continue_on_error:
                            stopped = True
        if finalize is not None and not dry_run:
            try:
                finalize(stopped)
            except Exception as exc:
                with recorder.lock:
                    recorder.status.errors["<job>"] = f"{type(exc).__name__}: {exc}"
                stopped = True
        recorder.finish(stopped)

    def guarded() -> None:
        try:
            run()
        except BaseException as exc:  # never leave a "running" file behind in a live process
            logger.exception("job %s (%s) crashed", job_id, kind)
            recorder.status.errors.setdefault("<job>", f"{type(exc).__name__}: {exc}")
            recorder.finish(True)

    threading.Thread(target=guarded, name=f"manystore-job-{job_id}", daemon=True).start()
    return job_id


class Job:
    """A job started by a group operation, by id (as the SDK's ``Job``).

    Args:
        job_id: The id an operation returned.
        job_kind: Optional kind; when given, :meth:`status` checks it matches.
        cache_location: The cache directory holding the state files (default: manystore's).
    """

    def __init__(self, job_id: str = "", job_kind: str = "", cache_location: str | None = None) -> None:
        self._job_id, self._job_kind = job_id, job_kind
        self._dir = jobs_dir(cache_location)

    @property
    def job_id(self) -> str:
        """The job id."""
        return self._job_id

    @property
    def job_kind(self) -> str:
        """The job kind (as given, or as read from its state once :meth:`status` ran)."""
        return self._job_kind

    def status(self) -> JobStatus:
        """The job's current state (reads its state file; no network).

        Raises:
            ValueError: No job id was given.
            FileNotFoundError: No job with this id on this machine.
        """
        if not self._job_id:
            raise ValueError("Job has no job_id: pass the id an operation returned")
        path = os.path.join(self._dir, f"{self._job_id}.json")
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise FileNotFoundError(f"job {self._job_id!r}: no such job (looked for {path})") from None
        status = JobStatus(**data)
        if self._job_kind and status.kind != self._job_kind:
            raise ValueError(f"job {self._job_id!r} is of kind {status.kind!r}, not {self._job_kind!r}")
        self._job_kind = status.kind
        if status.state == "running" and not _alive(status.pid, status.host):
            status.state, status.aborted = "abandoned", True
            status.err = f"abandoned: process {status.pid} that ran it is gone" + (
                f"; {status.err}" if status.err else ""
            )
        return status

    def wait(self, timeout: float = DEFAULT_JOB_WAIT_TIMEOUT, verbose: bool = True) -> WaitResult:
        """Wait until the job ends.

        Args:
            timeout: Seconds to wait at most.
            verbose: Log progress (at INFO) while waiting.

        Returns:
            Whether it succeeded (no object failed, not stopped, not abandoned) and why not.

        Raises:
            TimeoutError: Still running after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            status = self.status()
            if status.finished:
                success = status.state == "done" and status.objects_failed == 0
                end = (
                    datetime.fromtimestamp(status.end_time / 1e9, tz=timezone.utc)
                    if status.end_time
                    else None
                )
                return WaitResult(status.uuid, success, status.err or None, end)
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"job {self._job_id!r} ({status.kind}) still running after {timeout}s: "
                    f"{status.objects_done + status.objects_failed}/{status.total} objects"
                )
            if verbose:
                logger.info(
                    "waiting on job %s: %d/%d",
                    self._job_id,
                    status.objects_done + status.objects_failed,
                    status.total,
                )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

    def wait_for_idle(self, timeout: float = DEFAULT_JOB_WAIT_TIMEOUT, verbose: bool = True) -> WaitResult:
        """Wait until the job has no work left; here the same as :meth:`wait` (jobs end when idle)."""
        return self.wait(timeout, verbose)

    def wait_single_node(self, timeout: float = DEFAULT_JOB_WAIT_TIMEOUT, verbose: bool = True) -> WaitResult:
        """As :meth:`wait`: every job runs in one process."""
        return self.wait(timeout, verbose)

    def __repr__(self) -> str:
        return f"Job(job_id={self._job_id!r}, job_kind={self._job_kind!r})"
