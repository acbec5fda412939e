"""The per-process buffer between instrumented providers and :class:`Telemetry`.

An operation appends one tuple to a deque (no lock, no OpenTelemetry call, no IPC); a
daemon thread sends the aggregated records every :data:`FLUSH_INTERVAL` seconds with one
``record_batch`` call per sink, and so does the exit of the process (``atexit``, and
multiprocessing's exit finalizers for forked workers, which skip ``atexit``). A forked
child starts with an empty buffer: the parent's pending records are the parent's to send.

The first flush builds the exporter, and the SDK does that on a thread pool, which
refuses work once the interpreter starts shutting down; so a process that ends before
its first background flush also flushes at the start of shutdown, before thread pools
close (see :func:`_before_shutdown`).
"""

from __future__ import annotations

import atexit
import collections
import logging
import multiprocessing.util
import os
import threading
from typing import Any

__all__ = ["BUFFER", "FLUSH_INTERVAL", "flush_buffer", "start"]

logger = logging.getLogger(__name__)

#: Seconds between background flushes.
FLUSH_INTERVAL = 1.0
#: ``(group, latency_seconds, nbytes_or_None)`` records; a group has ``sink``, ``attrs``
#: (attribute items) and ``status`` attributes and is usually shared by many records.
BUFFER: collections.deque[tuple[Any, float, int | None]] = collections.deque()
#: Whether this process's flusher runs (reset in a forked child).
STARTED = False
#: This process's id (updated in a forked child).
PID = os.getpid()

_start_lock = threading.Lock()
_flush_lock = threading.Lock()
_wake = threading.Event()
_exit_token = object()  # keeps the multiprocessing finalizer registered


def start() -> None:
    """Start this process's flusher and exit hooks (once per process)."""
    global STARTED
    with _start_lock:
        if STARTED:
            return
        threading.Thread(target=_loop, name="manystore-telemetry-flush", daemon=True).start()
        atexit.register(_at_exit, os.getpid())
        _register_before_shutdown(os.getpid())
        multiprocessing.util.Finalize(None, _at_exit, args=(os.getpid(),), exitpriority=100)
        STARTED = True


def _register_before_shutdown(pid: int) -> None:
    import concurrent.futures.thread  # noqa: F401  its hook must be registered first: hooks run in reverse

    try:
        threading._register_atexit(_before_shutdown, pid)  # type: ignore[attr-defined]
    except RuntimeError:  # already shutting down: atexit alone will flush
        pass


def _before_shutdown(pid: int) -> None:
    """At the start of interpreter shutdown (thread pools still open): send what is buffered."""
    if os.getpid() == pid:
        flush_buffer()


def _loop() -> None:
    pid = os.getpid()
    while not _wake.wait(FLUSH_INTERVAL):
        if os.getpid() != pid:
            return
        flush_buffer()


def _at_exit(pid: int) -> None:
    if os.getpid() != pid:
        return
    flush_buffer()
    from . import _local_exit

    _local_exit()


def flush_buffer() -> bool:
    """Send every buffered record now; True unless a sink failed (its records are dropped)."""
    with _flush_lock:
        by_group: dict[Any, list[Any]] = {}  # a group object -> [nbytes, latencies]
        pop = BUFFER.popleft
        for _ in range(len(BUFFER)):
            group, latency, nbytes = pop()
            slot = by_group.get(group)
            if slot is None:
                slot = by_group[group] = [None, []]
            if nbytes is not None:
                slot[0] = (slot[0] or 0) + nbytes
            slot[1].append(latency)
        # Equal groups (per-call attributes, a group re-made after a fork...) merge here.
        groups: dict[Any, dict[tuple[Any, str], list[Any]]] = {}
        for group, (nbytes, latencies) in by_group.items():
            records = groups.setdefault(group.sink, {})
            key = (group.attrs, group.status)
            slot = records.get(key)
            if slot is None:
                records[key] = [len(latencies), nbytes, latencies]
                continue
            slot[0] += len(latencies)
            if nbytes is not None:
                slot[1] = (slot[1] or 0) + nbytes
            slot[2].extend(latencies)
        ok = True
        for sink, records in groups.items():
            batch = [(attrs, status, c, n, lat) for (attrs, status), (c, n, lat) in records.items()]
            try:
                sink.telemetry().record_batch(sink.metrics_config, batch)
            except Exception:
                ok = False
                logger.exception(
                    "telemetry: %d record(s) could not be sent", sum(r[0] for r in records.values())
                )
        return ok


def _after_fork_in_child() -> None:
    global STARTED, PID, _start_lock, _flush_lock, _wake
    BUFFER.clear()
    STARTED = False
    PID = os.getpid()
    _start_lock, _flush_lock, _wake = threading.Lock(), threading.Lock(), threading.Event()


os.register_at_fork(after_in_child=_after_fork_in_child)
