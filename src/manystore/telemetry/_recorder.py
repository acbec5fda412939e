"""The per-process buffer between instrumented providers and :class:`Telemetry`.

Records are kept per :class:`Group` (sink, attribute items, status): an operation appends
its latency (a float) and, if it moved bytes, their count (an int) to its group's deques
— no lock, no tuple, nothing the garbage collector tracks, no OpenTelemetry call, no IPC.
A daemon thread sends the aggregated records every :data:`FLUSH_INTERVAL` seconds with one
``record_batch`` call per sink, and so does the exit of the process (``atexit``, and
multiprocessing's exit finalizers for forked workers, which skip ``atexit``). A forked
child starts with no groups: the parent's pending records are the parent's to send.

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
import operator
import os
import threading
from itertools import repeat
from typing import Any

__all__ = ["FLUSH_INTERVAL", "GROUPS", "Group", "flush_buffer", "group_for", "pending", "start"]

logger = logging.getLogger(__name__)

#: Seconds between background flushes.
FLUSH_INTERVAL = 1.0


class Group:
    """Where records go: ``sink``, ``attrs`` (attribute items) and ``status``, shared by
    every record of that kind, with their pending ``lat`` (latencies in seconds) and ``nb``
    (byte counts of the records that moved bytes). Hashed by identity (cheap)."""

    __slots__ = ("attrs", "lat", "nb", "sink", "status")

    def __init__(self, sink: Any, attrs: tuple[tuple[str, Any], ...], status: str) -> None:
        self.sink, self.attrs, self.status = sink, attrs, status
        self.lat: collections.deque[float] = collections.deque()
        self.nb: collections.deque[int] = collections.deque()


#: Every group of this process, by ``(sink, attrs, status)`` (cleared in a forked child).
GROUPS: dict[tuple[Any, tuple[tuple[str, Any], ...], str], Group] = {}
#: Whether this process's flusher runs (reset in a forked child).
STARTED = False
#: This process's id (updated in a forked child).
PID = os.getpid()

_start_lock = threading.Lock()
_groups_lock = threading.Lock()
_flush_lock = threading.Lock()
_wake = threading.Event()
_exit_token = object()  # keeps the multiprocessing finalizer registered


def _call_py(f: Any) -> Any:  # operator.call before Python 3.11
    return f()


_call = getattr(operator, "call", _call_py)


def group_for(sink: Any, attrs: tuple[tuple[str, Any], ...], status: str) -> Group:
    """The group of records with these ``sink``, attribute items and ``status`` (made once)."""
    if not STARTED:
        start()
    key = (sink, attrs, status)
    found = GROUPS.get(key)
    if found is None:
        with _groups_lock:
            found = GROUPS.get(key)
            if found is None:
                found = GROUPS[key] = Group(sink, attrs, status)
    return found


def pending() -> list[tuple[Group, list[float], list[int]]]:
    """A snapshot of the unsent records: ``(group, latencies, byte counts)`` per group with any."""
    return [(g, list(g.lat), list(g.nb)) for g in list(GROUPS.values()) if g.lat or g.nb]


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
        groups: dict[Any, list[tuple[Any, ...]]] = {}  # a sink -> its batch
        for group in list(GROUPS.values()):
            count = len(group.lat)
            if not count:
                continue
            # popleft ``count`` times, in C (operator.call over a repeated bound method):
            # appends by other threads meanwhile land after them and wait for the next flush.
            latencies = list(map(_call, repeat(group.lat.popleft, count)))
            moved = len(group.nb)  # a size is appended before its latency: never left behind
            nbytes = sum(map(_call, repeat(group.nb.popleft, moved))) if moved else None
            groups.setdefault(group.sink, []).append((group.attrs, group.status, count, nbytes, latencies))
        ok = True
        for sink, batch in groups.items():
            try:
                sink.telemetry().record_batch(sink.metrics_config, batch)
            except Exception:
                ok = False
                logger.exception("telemetry: %d record(s) could not be sent", sum(r[2] for r in batch))
        return ok


def _after_fork_in_child() -> None:
    global STARTED, PID, _start_lock, _flush_lock, _wake, _groups_lock
    GROUPS.clear()  # groups hold per-process attributes; the parent's records stay its own
    STARTED = False
    PID = os.getpid()
    _start_lock, _flush_lock, _wake = threading.Lock(), threading.Lock(), threading.Event()
    _groups_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
