"""``MapDataset`` look-ahead: guess the next batch a process will be asked for, fetch it early.

A DataLoader hands each worker whole batches (``__getitems__``): with the default
sequential sampler worker ``w`` of ``W`` gets batches ``w, w + W, w + 2W, ...``, so the
indices of its next batch are those of the current one shifted by ``W * batch_size``.
:class:`Predictor` learns that shift — from two consecutive batches of this process, or,
for the first batch, from its own step times the batch size times the number of workers —
in one of two *position spaces*: the indices themselves (sequential samplers,
``DistributedSampler(shuffle=False)``), or the positions in the epoch order of a
:class:`MapSampler` the dataset knows (shuffled epochs). :class:`BatchFetcher` fetches the
current batch concurrently and then starts the predicted one on the same threads, within
the byte budget. A wrong guess costs the reads already started, never a wrong item: a body
is used only for the index it was fetched for, and guesses that are not asked for are
cancelled (or dropped when they arrive).

Threads are daemon threads that end after :data:`IDLE_SECONDS` without work, so a worker
process exits at once at the end of an epoch and an idle dataset holds no thread.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch.utils.data

from ._order import Sharding, worker_order

__all__ = ["BatchFetcher", "MapSampler", "Plan", "Predictor", "IDLE_SECONDS"]

#: Seconds a look-ahead thread waits for work before it ends.
IDLE_SECONDS = 1.0


@dataclass
class Plan:
    """The order a :class:`MapSampler` draws in: its sharding and current epoch."""

    sharding: Sharding
    epoch: int = 0


class MapSampler(torch.utils.data.Sampler[int]):
    """A seeded, rank-aware sampler whose order its :class:`~manystore.torch.MapDataset` knows.

    Build it with :meth:`MapDataset.sampler`. It yields this rank's share of the indices
    (equal counts per rank, ``uneven="pad"`` or ``"drop"``), permuted per epoch when
    ``shuffle`` (the same permutation on every rank); the order is a pure function of
    ``(seed, epoch, rank, world_size)``. Because the dataset knows it, DataLoader workers
    fetch their next batch while the current one is collated, also in shuffled epochs.
    """

    def __init__(self, n: int, plan: Plan) -> None:
        self._n, self._plan = n, plan

    @property
    def epoch(self) -> int:
        """The epoch whose order :meth:`__iter__` yields."""
        return self._plan.epoch

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order from the next iteration on (call before creating the iterator)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"set_epoch({epoch!r}): expected an int >= 0")
        self._plan.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(worker_order(self._n, self._plan.sharding, self._plan.epoch))

    def __len__(self) -> int:
        return self._plan.sharding.rank_count(self._n)


class _OrderSpace:
    """Positions in one epoch's order of a :class:`MapSampler`."""

    def __init__(self, n: int, sharding: Sharding, epoch: int) -> None:
        self.epoch = epoch
        self.order = worker_order(n, sharding, epoch)
        self.position: dict[int, int] = {}
        for pos, index in enumerate(self.order):
            self.position.setdefault(index, pos)


class Predictor:
    """Guesses the indices of the next batch this process will be asked for (see the module docs).

    Args:
        n: Number of objects of the dataset.
        plan: The order of the dataset's :class:`MapSampler`, if it has one.
    """

    def __init__(self, n: int, plan: Plan | None) -> None:
        self._n, self.plan = n, plan
        self._spaces: list[_OrderSpace] = []
        self._last: tuple[int, list[int]] | None = None  # (space: -1 = indices, else epoch), positions

    def _order_positions(self, batch: list[int]) -> tuple[_OrderSpace, list[int]] | None:
        plan = self.plan
        if plan is None or not batch:
            return None
        if not self._spaces or self._spaces[0].epoch < plan.epoch:
            self._spaces = [_OrderSpace(self._n, plan.sharding, plan.epoch)]
        for tries in range(2):  # this epoch, then the next (persistent workers see no set_epoch)
            if tries == len(self._spaces):
                self._spaces.append(_OrderSpace(self._n, plan.sharding, self._spaces[-1].epoch + 1))
            space = self._spaces[tries]
            first = space.position.get(batch[0])
            if first is not None and space.order[first : first + len(batch)] == batch:
                if tries:  # workers moved on to the next epoch: keep that one
                    self._spaces = self._spaces[tries:]
                return space, list(range(first, first + len(batch)))
        return None

    def _shift(self, tag: int, positions: list[int], workers: int) -> int:
        last = self._last
        if last is not None and last[0] == tag and len(last[1]) == len(positions):
            diffs = {p - q for p, q in zip(positions, last[1], strict=True)}
            if len(diffs) == 1 and (d := diffs.pop()) != 0:
                return d
        if len(positions) == 1:
            return workers
        steps = {b - a for a, b in itertools.pairwise(positions)}
        if len(steps) == 1 and (step := steps.pop()) != 0:
            return step * len(positions) * workers
        return 0

    def next(self, batch: list[int], workers: int) -> list[int]:
        """The indices expected after ``batch`` (``[]``: no guess); ``workers`` share the batches."""
        found = self._order_positions(batch)
        if found is not None:
            space, positions = found
            tag, limit = space.epoch, len(space.order)
        else:
            space, positions, tag, limit = None, batch, -1, self._n
        shift = self._shift(tag, positions, workers)
        self._last = (tag, positions)
        if not shift:
            return []
        ahead = [p + shift for p in positions if 0 <= p + shift < limit]
        return [space.order[p] for p in ahead] if space is not None else ahead


class _Pool:
    """Daemon threads draining a queue of calls; each ends after :data:`IDLE_SECONDS` idle."""

    def __init__(self, threads: int) -> None:
        self._max = max(1, threads)
        self._queue: queue.SimpleQueue[tuple[Future[bytes], Callable[[int], bytes], int]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self.alive = 0

    def submit(self, fn: Callable[[int], bytes], arg: int) -> Future[bytes]:
        future: Future[bytes] = Future()
        with self._lock:
            self._queue.put((future, fn, arg))
            if self.alive < self._max:
                self.alive += 1
                threading.Thread(target=self._work, name="manystore-lookahead", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            try:
                future, fn, arg = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self.alive -= 1
                        return
                continue
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(arg))
            except BaseException as exc:  # handed to the caller through the future
                future.set_exception(exc)


class BatchFetcher:
    """Fetches a batch's objects concurrently, then the predicted next batch, within a byte budget.

    Bytes held are those of objects queued, in flight, or fetched and not yet handed out
    (look-ahead included); an object counts at its listed size (unlisted: the largest size
    seen so far, first guess ``max_bytes // max_items``). The current batch always
    proceeds (one object at a time if it alone exceeds the budget); a guess starts only
    within the budget.

    Args:
        fetch: Fetches object ``index``'s bytes.
        size_of: Object ``index``'s listed size, or ``None``.
        max_items: Threads (objects in flight at once), at least 1.
        max_bytes: The byte budget.
    """

    def __init__(
        self,
        fetch: Callable[[int], bytes],
        size_of: Callable[[int], int | None],
        max_items: int,
        max_bytes: int,
    ) -> None:
        self._fetch, self._size_of = fetch, size_of
        self._max_bytes = max(1, max_bytes)
        self._guess = max(1, self._max_bytes // max(1, max_items))
        self._pool = _Pool(max_items)
        self._lock = threading.Lock()
        self._ahead: dict[int, tuple[Future[bytes], int]] = {}
        self.held = 0
        #: The most bytes held at once.
        self.peak_held = 0
        #: Objects handed out whose fetch a previous batch's look-ahead had started.
        self.hits = 0
        #: Look-ahead fetches started, and those dropped because their index was not asked for.
        self.started = 0
        self.wasted = 0

    @property
    def threads(self) -> int:
        """Look-ahead threads alive now."""
        return self._pool.alive

    def _cost(self, index: int) -> int:
        listed = self._size_of(index)
        return self._guess if listed is None else listed

    def _take(self, cost: int) -> None:
        with self._lock:
            self.held += cost
            self.peak_held = max(self.peak_held, self.held)

    def _release(self, cost: int) -> None:
        with self._lock:
            self.held -= cost

    def _fits(self, cost: int) -> bool:
        with self._lock:
            return self.held + cost <= self._max_bytes

    def _drop(self, index: int) -> None:
        future, cost = self._ahead.pop(index)
        self.wasted += 1
        if future.cancel():
            self._release(cost)
        else:  # running: its bytes are held until they arrive
            future.add_done_callback(lambda _: self._release(cost))

    def _look_ahead(self, upcoming: list[int], current: set[int]) -> None:
        for index in upcoming:
            if index in self._ahead or index in current:
                continue
            cost = self._cost(index)
            if not self._fits(cost):
                return
            self._take(cost)
            self._ahead[index] = (self._pool.submit(self._fetch, index), cost)
            self.started += 1

    def fetch_batch(self, indices: list[int], upcoming: list[int]) -> list[bytes]:
        """The bodies of ``indices`` in order; ``upcoming`` is fetched ahead for the next call."""
        current = set(indices)
        keep = current | set(upcoming)
        for index in [i for i in self._ahead if i not in keep]:
            self._drop(index)
        out: list[bytes] = []
        pending: deque[tuple[int, Future[bytes], int, bool]] = deque()
        todo = iter(indices)
        nxt: int | None = next(todo, None)
        looked = False
        try:
            while pending or nxt is not None:
                while nxt is not None:
                    claimed = self._ahead.pop(nxt, None)
                    if claimed is not None:
                        pending.append((nxt, claimed[0], claimed[1], True))
                        self.hits += 1
                    else:
                        cost = self._cost(nxt)
                        if pending and not self._fits(cost):
                            break
                        self._take(cost)
                        pending.append((nxt, self._pool.submit(self._fetch, nxt), cost, False))
                    nxt = next(todo, None)
                if nxt is None and not looked:  # the whole batch is queued: the guess goes next
                    self._look_ahead(upcoming, current)
                    looked = True
                index, future, cost, ahead = pending[0]
                try:
                    data = future.result()
                except Exception:
                    if not ahead:
                        raise
                    data = self._fetch(index)  # a failed guess is fetched again, as if never guessed
                pending.popleft()
                self._release(cost)
                if self._size_of(index) is None:
                    self._guess = max(self._guess, len(data))
                out.append(data)
        finally:
            for _, future, cost, _ in pending:  # an error: release what is still queued or in flight
                if future.cancel():
                    self._release(cost)
                else:
                    future.add_done_callback(lambda _, cost=cost: self._release(cost))  # type: ignore[misc]
        self._look_ahead(upcoming, current)  # with the budget the handed-out bodies freed
        return out

    def close(self) -> None:
        """Cancel every guess not started yet (running ones finish on their daemon threads)."""
        for index in list(self._ahead):
            self._drop(index)


def worker_count() -> int:
    """DataLoader workers sharing the batches (1 outside a worker)."""
    info: Any = torch.utils.data.get_worker_info()
    return 1 if info is None else int(info.num_workers)
