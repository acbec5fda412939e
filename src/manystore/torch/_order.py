"""Which objects a DataLoader worker reads, in which order, and fetching them ahead.

The order is a pure function of ``(n, seed, epoch, rank, world_size, worker, num_workers,
shuffle_buffer)`` computed over indices only, so it costs no I/O, is the same on every run
with the same arguments, and a resume simply skips the first ``position`` indices.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

__all__ = ["Prefetcher", "Sharding", "worker_order"]

UNEVEN_CHOICES = ("pad", "drop")


@dataclass(frozen=True)
class Sharding:
    """How a rank's share of the objects is chosen and ordered.

    Attributes:
        rank: This process's rank.
        world_size: Number of ranks.
        uneven: ``"pad"`` repeats the first objects so every rank gets ``ceil(n / world_size)``;
            ``"drop"`` leaves out the last ``n % world_size`` so every rank gets ``n // world_size``.
        shuffle: Permute the objects per epoch (the same permutation on every rank).
        seed: The permutation's seed.
        shuffle_buffer: With more than 1, also shuffle within a sliding buffer of this many
            objects per worker (after sharding).
    """

    rank: int = 0
    world_size: int = 1
    uneven: str = "pad"
    shuffle: bool = False
    seed: int = 0
    shuffle_buffer: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.world_size, int) or self.world_size < 1:
            raise ValueError(f"world_size={self.world_size!r}: expected an int >= 1")
        if not isinstance(self.rank, int) or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank={self.rank!r}: expected an int in [0, world_size={self.world_size})")
        if self.uneven not in UNEVEN_CHOICES:
            raise ValueError(f"uneven={self.uneven!r}: expected one of {UNEVEN_CHOICES}")
        if not isinstance(self.shuffle_buffer, int) or self.shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer={self.shuffle_buffer!r}: expected an int >= 0")

    def rank_count(self, n: int) -> int:
        """Objects each rank reads in an epoch over ``n`` objects."""
        if self.world_size == 1:
            return n
        return n // self.world_size if self.uneven == "drop" else -(-n // self.world_size)


def worker_order(n: int, sharding: Sharding, epoch: int, worker: int = 0, num_workers: int = 1) -> list[int]:
    """The object indices worker ``worker`` of ``num_workers`` reads in ``epoch``, in order."""
    order = list(range(n))
    if sharding.shuffle:
        random.Random(f"{sharding.seed}:{epoch}").shuffle(order)
    world = sharding.world_size
    if world > 1 and n:
        if sharding.uneven == "drop":
            order = order[: n - n % world]
        else:
            need = -(-n // world) * world
            while len(order) < need:
                order += order[: need - len(order)]
        order = order[sharding.rank :: world]
    if num_workers > 1:
        order = order[worker::num_workers]
    if sharding.shuffle_buffer > 1:
        rng = random.Random(f"{sharding.seed}:{epoch}:{sharding.rank}:{worker}")
        buffer: list[int] = []
        out: list[int] = []
        for index in order:
            buffer.append(index)
            if len(buffer) >= sharding.shuffle_buffer:
                pick = rng.randrange(len(buffer))
                buffer[pick], buffer[-1] = buffer[-1], buffer[pick]
                out.append(buffer.pop())
        rng.shuffle(buffer)
        out += buffer
        order = out
    return order


class Prefetcher:
    """Fetches up to ``max_items`` objects ahead on threads, within ``max_bytes`` held at once.

    Bytes held are those of objects in flight or fetched and not yet handed out; an object
    counts at its listed size (or, unlisted, at the largest size seen so far, first guess
    ``max_bytes // max_items``) until it arrives, then at its real size. One object larger
    than the budget is still fetched, alone.

    Args:
        fetch: Fetches object ``index``'s bytes.
        size_of: Object ``index``'s listed size, or ``None``.
        max_items: Objects in flight (threads), at least 1.
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
        self._max_items, self._max_bytes = max(1, max_items), max(1, max_bytes)
        self._guess = max(1, self._max_bytes // self._max_items)
        self.held = 0
        #: The most bytes held at once (for tests and tuning).
        self.peak_held = 0

    def run(self, indices: Iterator[int]) -> Iterator[tuple[int, bytes]]:
        """``(index, bytes)`` for each of ``indices``, in order."""
        pending: deque[tuple[int, Future[bytes], int]] = deque()
        upcoming = iter(indices)
        nxt: int | None = next(upcoming, None)
        with ThreadPoolExecutor(self._max_items, thread_name_prefix="manystore-prefetch") as pool:
            try:
                while pending or nxt is not None:
                    while nxt is not None and len(pending) < self._max_items:
                        listed = self._size_of(nxt)
                        cost = self._guess if listed is None else listed
                        if pending and self.held + cost > self._max_bytes:
                            break
                        pending.append((nxt, pool.submit(self._fetch, nxt), cost))
                        self.held += cost
                        self.peak_held = max(self.peak_held, self.held)
                        nxt = next(upcoming, None)
                    index, future, cost = pending.popleft()
                    data = future.result()
                    self.held -= cost
                    if self._size_of(index) is None:
                        self._guess = max(self._guess, len(data))
                    yield index, data
            finally:
                for _, future, _ in pending:
                    future.cancel()
