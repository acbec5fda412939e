"""MSC's ``multistorageclient.contrib.ray``: a queue and an event shared by Ray tasks and actors.

:class:`SharedQueue` behaves like :class:`queue.Queue` and :class:`SharedEvent` like
:class:`threading.Event`, but their state lives in one Ray actor, so every task, actor
and driver holding the object (it is passed to tasks like any argument) sees the same
queue or flag — on one machine or across a cluster. Typical use: producers list or
download objects in Ray tasks and feed a consumer through a :class:`SharedQueue`; a
:class:`SharedEvent` tells all workers to stop.

Ray is imported on first use (``pip install 'manystore[ray]'``); importing this module
does not import it. The actor starts in the Ray instance the caller is connected to
(``ray.init()`` starts a local one if none is running).
"""

from __future__ import annotations

import asyncio
import functools
import math
import queue
import time
from typing import Any

__all__ = ["SharedEvent", "SharedQueue"]


class _QueueState:
    """The actor behind :class:`SharedQueue`: an :class:`asyncio.Queue` served concurrently.

    Its methods are coroutines, so Ray runs it as an async actor: a ``get`` waiting for
    an item does not keep a ``put`` from running. Each call answers ``(done, value)``
    instead of raising, so callers raise :class:`queue.Empty`/:class:`queue.Full` themselves.
    """

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(maxsize, 0))

    async def put(self, item: Any, block: bool, timeout: float | None) -> bool:
        if not block:
            try:
                self._queue.put_nowait(item)
            except asyncio.QueueFull:
                return False
            return True
        try:
            await asyncio.wait_for(self._queue.put(item), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def get(self, block: bool, timeout: float | None) -> tuple[bool, Any]:
        if not block:
            try:
                return True, self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return False, None
        try:
            return True, await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return False, None

    async def sizes(self) -> tuple[int, int]:
        return self._queue.qsize(), self._queue.maxsize


class _EventState:
    """The actor behind :class:`SharedEvent`: one flag, and waiters woken when it is set."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def set(self) -> None:
        self._event.set()

    async def clear(self) -> None:
        self._event.clear()

    async def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self._event.is_set()


def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            "manystore.contrib.ray needs Ray, which is not installed: pip install 'manystore[ray]'"
        ) from err
    return ray


@functools.cache
def _actor_class(state: type) -> Any:
    """``state`` as a Ray actor class (made once per process, on first use)."""
    return _ray().remote(num_cpus=0)(state)


def _check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(f"timeout must be None or a non-negative number of seconds, got {timeout!r}")
    if math.isinf(timeout):
        raise ValueError(f"timeout must be finite (use None to wait forever), got {timeout!r}")


class SharedQueue:
    """A FIFO queue shared by Ray tasks, actors and the driver, with :class:`queue.Queue`'s methods.

    The items live in one Ray actor (it takes no CPU slot); the object itself is small
    and can be passed to remote tasks and actors, which then use the same queue. Items
    must be serializable by Ray.

    Example::

        q = SharedQueue(maxsize=100)
        ray.get([produce.remote(q, shard) for shard in shards])  # tasks call q.put(...)
        while not q.empty():
            handle(q.get())
    """

    def __init__(self, maxsize: int = 0) -> None:
        """Start the queue's actor.

        Args:
            maxsize: Most items the queue holds; ``put`` waits (or fails) when it is full.
                0 or a negative number means no limit, as for :class:`queue.Queue`.

        Raises:
            TypeError: ``maxsize`` is not an integer.
            ImportError: Ray is not installed.
        """
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int (0 or less: unbounded), got {maxsize!r}")
        self._actor = _actor_class(_QueueState).remote(maxsize)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item`` at the end of the queue.

        Args:
            item: The value to add (serialized by Ray).
            block: Wait for a free slot when the queue is full; when False, fail at once.
            timeout: With ``block``, the most seconds to wait (None: no limit).

        Raises:
            queue.Full: The queue stayed full (at once without ``block``, else after ``timeout``).
            ValueError: ``timeout`` is negative or not a number.
        """
        _check_timeout(timeout)
        if not _ray().get(self._actor.put.remote(item, block, timeout)):
            wait = "without waiting" if not block else f"within {timeout} s"
            raise queue.Full(f"the shared queue is full: no free slot {wait}")

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the first item of the queue.

        Args:
            block: Wait for an item when the queue is empty; when False, fail at once.
            timeout: With ``block``, the most seconds to wait (None: no limit).

        Raises:
            queue.Empty: No item came (at once without ``block``, else after ``timeout``).
            ValueError: ``timeout`` is negative or not a number.
        """
        _check_timeout(timeout)
        done, item = _ray().get(self._actor.get.remote(block, timeout))
        if not done:
            wait = "without waiting" if not block else f"within {timeout} s"
            raise queue.Empty(f"the shared queue is empty: no item {wait}")
        return item

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def _sizes(self) -> tuple[int, int]:
        size, maxsize = _ray().get(self._actor.sizes.remote())
        return int(size), int(maxsize)

    def qsize(self) -> int:
        """Number of items in the queue now (other workers may change it at any time)."""
        return self._sizes()[0]

    def empty(self) -> bool:
        """True if the queue holds no item now."""
        return self._sizes()[0] == 0

    def full(self) -> bool:
        """True if the queue is bounded and holds ``maxsize`` items now."""
        size, maxsize = self._sizes()
        return 0 < maxsize <= size

    def __repr__(self) -> str:
        return f"SharedQueue(actor={self._actor!r})"


class SharedEvent:
    """A flag shared by Ray tasks, actors and the driver, with :class:`threading.Event`'s methods.

    The flag lives in one Ray actor (it takes no CPU slot). So that thousands of workers
    polling :meth:`is_set` do not flood that actor, each copy of the object remembers
    the answer: once seen set, it answers True without asking again (until its own
    :meth:`clear`); while not set, it asks the actor at most once per ``cache_ttl``
    seconds. :meth:`wait` always asks the actor.
    """

    def __init__(self, cache_ttl: float = 1.0) -> None:
        """Start the event's actor, with the flag not set.

        Args:
            cache_ttl: Seconds a "not set" answer of :meth:`is_set` is reused by this
                copy before the actor is asked again (0: ask every time).

        Raises:
            ValueError: ``cache_ttl`` is negative or not a number.
            ImportError: Ray is not installed.
        """
        if isinstance(cache_ttl, bool) or not isinstance(cache_ttl, (int, float)) or not cache_ttl >= 0:
            raise ValueError(f"cache_ttl must be a non-negative number of seconds, got {cache_ttl!r}")
        self._actor = _actor_class(_EventState).remote()
        self._cache_ttl = float(cache_ttl)
        self._seen_set = False
        self._checked_at: float | None = None

    def set(self) -> None:
        """Set the flag for every holder of this event and wake those waiting in :meth:`wait`."""
        _ray().get(self._actor.set.remote())
        self._seen_set = True

    def clear(self) -> None:
        """Reset the flag (copies that already saw it set keep answering True until they clear)."""
        _ray().get(self._actor.clear.remote())
        self._seen_set = False
        self._checked_at = None

    def is_set(self) -> bool:
        """True if the flag is set (possibly ``cache_ttl`` seconds late, see the class)."""
        if self._seen_set:
            return True
        if self._checked_at is not None and time.monotonic() - self._checked_at < self._cache_ttl:
            return False
        self._seen_set = bool(_ray().get(self._actor.is_set.remote()))
        self._checked_at = time.monotonic()
        return self._seen_set

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout`` seconds pass; return whether it is set.

        Raises:
            ValueError: ``timeout`` is negative or not a number.
        """
        _check_timeout(timeout)
        self._seen_set = bool(_ray().get(self._actor.wait.remote(timeout)))
        self._checked_at = time.monotonic()
        return self._seen_set

    def __repr__(self) -> str:
        return f"SharedEvent(actor={self._actor!r}, cache_ttl={self._cache_ttl})"
