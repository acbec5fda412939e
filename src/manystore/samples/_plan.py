"""Which samples a rank's DataLoader worker reads in an epoch, and in which order — over indices only.

Everything here is a pure function of the shards' sample counts (and sizes) and of
``(seed, epoch, rank, world_size, worker, num_workers)``: no I/O, the same on every run,
so a resume recomputes the plan and continues after the samples already yielded.

1. **Shard order**: the shards in list order, or (shuffled) a permutation drawn from
   ``seed`` and ``epoch`` — the same on every rank.
2. **Rank split**: the epoch's samples (shards concatenated in that order) are cut into
   ``world_size`` contiguous, EQUAL ranges; a shard may be split between two ranks (its
   second part is read from the member offset the index gives). ``drop_uneven=False``
   pads the last ranges by wrapping to the epoch's first samples (``ceil(T / W)`` each);
   ``True`` leaves out the last ``T % W`` samples (``T // W`` each).
3. **Worker split**: a rank's range is cut into ``num_workers`` contiguous ranges.
4. **Sample shuffle** (shuffled): ``buffer_shards`` pieces are open at once; each step
   takes the next sample of a randomly chosen open piece into a buffer, and once it
   holds ``buffer_samples`` samples (or the next would pass ``buffer_bytes``) a random one leaves;
   with ``buffer_initial``, samples start leaving once it holds that many, two in per one out
   until it is full (webdataset's ``initial``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

__all__ = ["OrderedSteps", "Piece", "Step", "rank_range", "schedule", "shard_order", "split_pieces"]


@dataclass(frozen=True)
class Piece:
    """Samples ``[start, stop)`` of shard ``shard`` (an index into the shard list)."""

    shard: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


#: ``(is_intake, piece number, sample index in the shard)``: take a sample in, or yield one.
Step = tuple[bool, int, int]


def shard_order(n: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The shard indices of ``epoch`` in order (a permutation from ``seed`` and ``epoch`` if shuffled)."""
    order = list(range(n))
    if shuffle:
        random.Random(f"samples:{seed}:{epoch}").shuffle(order)
    return order


def rank_range(total: int, rank: int, world_size: int, drop_uneven: bool) -> tuple[int, int]:
    """``[first, last)`` of the epoch's samples rank ``rank`` reads; ``last`` may pass ``total`` (wrap)."""
    per = total // world_size if drop_uneven else -(-total // world_size)
    return rank * per, (rank + 1) * per


def split_pieces(counts: Sequence[int], order: Sequence[int], first: int, last: int) -> list[Piece]:
    """Samples ``[first, last)`` of the shards concatenated in ``order`` (wrapping past the end)."""
    total = sum(counts[i] for i in order)
    pieces: list[Piece] = []
    if total == 0 or last <= first:
        return pieces
    lap_start = (first // total) * total
    while first < last:
        offset = lap_start
        lap_end = lap_start + total
        for shard in order:
            lo, hi = offset, offset + counts[shard]
            a, b = max(lo, first), min(hi, last)
            if a < b:
                pieces.append(Piece(shard, a - lo, b - lo))
            offset = hi
        first = max(first, lap_end)
        lap_start = lap_end
    return pieces


def worker_pieces(pieces: Sequence[Piece], worker: int, num_workers: int) -> list[Piece]:
    """Worker ``worker``'s contiguous share of ``pieces`` (the rank's samples cut in ``num_workers``)."""
    total = sum(len(p) for p in pieces)
    first, last = worker * total // num_workers, (worker + 1) * total // num_workers
    out: list[Piece] = []
    offset = 0
    for piece in pieces:
        lo, hi = offset, offset + len(piece)
        a, b = max(lo, first), min(hi, last)
        if a < b:
            out.append(Piece(piece.shard, piece.start + a - lo, piece.start + b - lo))
        offset = hi
    return out


class OrderedSteps:
    """The steps of an unshuffled epoch (each sample taken in, then yielded), made on demand
    (re-iterable; a list of them would cost more than reading a small epoch)."""

    def __init__(self, pieces: Sequence[Piece]) -> None:
        self.pieces = list(pieces)

    def __len__(self) -> int:
        return 2 * sum(len(p) for p in self.pieces)

    def __iter__(self) -> Iterator[Step]:
        for number, piece in enumerate(self.pieces):
            for i in range(piece.start, piece.stop):
                yield (True, number, i)
                yield (False, number, i)


def schedule(
    pieces: Sequence[Piece],
    sizes: Sequence[Sequence[int]] | None,
    *,
    shuffle: bool,
    rng: random.Random,
    buffer_shards: int,
    buffer_samples: int,
    buffer_bytes: int,
    buffer_initial: int | None = None,
) -> Iterable[Step]:
    """The intake and yield steps of one worker's epoch.

    Args:
        pieces: The worker's pieces in order.
        sizes: ``sizes[shard][i]``: bytes of sample ``i`` (for the byte bound), or None.
        shuffle: Interleave ``buffer_shards`` open pieces through a sample buffer;
            otherwise every sample is yielded as soon as it is taken in.
        rng: The worker's random generator for this epoch.
        buffer_shards: Pieces open at once.
        buffer_samples: Samples the buffer fills up to before one leaves.
        buffer_bytes: Bytes the buffer may hold: samples leave before one that would pass
            it comes in (a single larger sample is still held, alone).
        buffer_initial: Start yielding once the buffer holds this many samples, then take
            two in per sample out until it holds ``buffer_samples`` (webdataset's
            ``initial``: the first samples come sooner); None: fill it first.
    """
    if not shuffle:
        return OrderedSteps(pieces)
    steps: list[Step] = []
    upcoming = iter(enumerate(pieces))
    open_: list[list[int]] = []  # [piece number, next index, stop]
    buffer: list[tuple[int, int, int]] = []
    held = released = 0
    ramp = buffer_samples if buffer_initial is None else min(buffer_samples, buffer_initial)
    while True:
        while len(open_) < buffer_shards:
            nxt = next(upcoming, None)
            if nxt is None:
                break
            open_.append([nxt[0], nxt[1].start, nxt[1].stop])
        if not open_:
            break
        j = rng.randrange(len(open_))
        cursor = open_[j]
        number, index = cursor[0], cursor[1]
        size = sizes[pieces[number].shard][index] if sizes is not None else 0
        while buffer and (len(buffer) >= min(buffer_samples, ramp + released) or held + size > buffer_bytes):
            k = rng.randrange(len(buffer))
            buffer[k], buffer[-1] = buffer[-1], buffer[k]
            out_number, out_index, out_size = buffer.pop()
            held -= out_size
            released += 1
            steps.append((False, out_number, out_index))
        steps.append((True, number, index))
        buffer.append((number, index, size))
        held += size
        cursor[1] += 1
        if cursor[1] >= cursor[2]:
            open_.pop(j)
    rng.shuffle(buffer)
    steps.extend((False, number, index) for number, index, _ in buffer)
    return steps
