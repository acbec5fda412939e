"""The iterable a :class:`~manystore.samples.Dataset` returns from ``ordered``/``shuffled``.

:class:`SampleLoader` is a ``torch.utils.data.IterableDataset`` when PyTorch is installed
(a plain iterable otherwise), so it goes straight into a ``DataLoader`` (with
``batch_size=None`` when the loader batches itself) or torchdata's
``StatefulDataLoader``. What each rank and DataLoader worker reads is planned over
sample indices (:mod:`manystore.samples._plan`) from per-shard sample counts, which come
from each shard's member index (the ``.idx`` sidecar manystore writes, or a walk of the
tar headers, :func:`manystore.batch._archindex.build_index`); the counts are gathered
once, on the first iteration or ``len()`` (do that in the main process before forking
workers to count only once).

Memory: ``memory_budget`` bytes cover the sample buffer (raw sample bytes) plus the shard
streams (the chunks fetched ahead, the current chunk and the parser's window, for each
open shard and the one prefetched). ``peak_bytes`` reports the most held at once.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import _plan
from ._tarstream import _NAME, GroupReader, Readable, SampleGroup, ShardCorruptError, ShardStream
from .errors import SampleDecodeError

try:  # a torch IterableDataset when torch is there (DataLoader checks the type)
    from torch.utils.data import IterableDataset as _Base
    from torch.utils.data import get_worker_info as _worker_info
except ImportError:  # pragma: no cover - torch is an optional extra
    _Base = object  # type: ignore[assignment,misc]

    def _worker_info() -> Any:
        return None


__all__ = ["SampleLoader", "ShardInfo", "shard_info"]

#: Shards counted at once when gathering sample counts.
COUNT_THREADS = 8


@dataclass(frozen=True)
class ShardInfo:
    """A shard's samples: where each starts and its size; the version they belong to.

    Attributes:
        url: The shard id.
        offsets: Offset of each sample's first tar header.
        sizes: Content bytes of each sample.
        etag: The indexed version (None when the store or source has none).
        size: The shard's size in bytes, if known.
        corrupt: Why the shard is unreadable (it was skipped), or None.
    """

    url: str
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    etag: str | None = None
    size: int | None = None
    corrupt: str | None = None

    @property
    def count(self) -> int:
        """Samples in the shard."""
        return len(self.offsets)


def _from_groups(url: str, groups: Iterator[SampleGroup]) -> ShardInfo:
    offsets, sizes = [], []
    for group in groups:
        offsets.append(group.offset)
        sizes.append(group.nbytes)
    return ShardInfo(url, tuple(offsets), tuple(sizes))


def shard_info(source: Any, shard_id: str) -> ShardInfo:
    """The samples of shard ``shard_id``: from its member index, else by streaming it once.

    Raises:
        ShardCorruptError: The shard is not a readable tar (names the member).
    """
    locate = getattr(source, "locate", None)
    if locate is None:
        stream = source.open_shard(shard_id)
        try:
            return _from_groups(shard_id, iter_groups_of(stream, shard_id))
        finally:
            stream.close()
    from ..batch import _archindex

    client, key = locate(shard_id)
    try:
        index = _archindex.lookup(client, key) or _archindex.build_index(client, key, "tar")
    except ValueError:  # a corrupt header: stream it to name the member
        with ShardStream(client, key, shard_id, readahead=0) as stream:
            _from_groups(shard_id, iter_groups_of(stream, shard_id))
        raise
    cut = next((m for m in index.members if m.offset is not None and m.offset + m.size > index.size), None)
    if cut is not None or index.end + 512 > index.size:
        name = cut.name if cut is not None else (index.members[-1].name if index.members else None)
        raise ShardCorruptError(shard_id, name, index.end, "truncated: the shard ends without the end marker")
    offsets: list[int] = []
    sizes: list[int] = []
    last = None
    for member in index.members:
        match = _NAME.match(member.name)
        if match is None:
            continue
        if match.group(1) != last:
            last = match.group(1)
            offsets.append(member.header_offset if member.header_offset is not None else 0)
            sizes.append(0)
        sizes[-1] += member.size
    return ShardInfo(shard_id, tuple(offsets), tuple(sizes), index.etag, index.size)


def iter_groups_of(stream: Readable, url: str, offset: int = 0) -> Iterator[SampleGroup]:
    """The sample groups of ``stream`` (see :class:`~manystore.samples._tarstream.GroupReader`)."""
    return iter(GroupReader(stream, url, offset))


class _Piece:
    """An open piece of a shard: its stream and the next sample index it yields."""

    def __init__(self, loader: SampleLoader, info: ShardInfo, first: int) -> None:
        self.info, self.index = info, first
        offset = info.offsets[first] if first < info.count else 0
        locate = getattr(loader.source, "locate", None)
        self.stream: Any
        if locate is not None:
            client, key = locate(info.url)
            stream = ShardStream(
                client,
                key,
                info.url,
                offset=offset,
                etag=info.etag,
                size=info.size,
                chunk_size=loader.chunk_size,
                readahead=0 if client._is_local() else loader.readahead,  # local: the OS reads ahead
            )
            stream.prime()
            self.stream, self.reader = stream, GroupReader(stream, info.url, offset, loader.chunk_size)
        else:
            self.stream = loader.source.open_shard(info.url)
            self.reader = GroupReader(self.stream, info.url, 0, loader.chunk_size)
            self.index = 0
        self._groups = iter(self.reader)

    @property
    def held(self) -> int:
        stream = self.stream
        return self.reader.held + (stream.held if isinstance(stream, ShardStream) else 0)

    def take(self, index: int) -> SampleGroup:
        while True:
            group = next(self._groups, None)
            if group is None:
                raise ShardCorruptError(
                    self.info.url, None, -1, f"has fewer samples than its index's {self.info.count}"
                )
            self.index += 1
            if self.index - 1 == index:
                return group

    def finish(self) -> None:
        """Check that the shard ends right after its last sample (its end marker is there)."""
        extra = next(self._groups, None)
        if extra is not None:
            raise ShardCorruptError(
                self.info.url,
                f"{extra.key}",
                extra.offset,
                f"has more samples than its index's {self.info.count}",
            )

    def close(self) -> None:
        self.stream.close()


class SampleLoader(_Base):
    """One pass (per epoch) over a dataset's samples; made by ``Dataset.ordered``/``shuffled``.

    Iterating yields decoded samples (or batches of ``batch_size``). Across ranks
    (``rank``/``world_size``, default ``torch.distributed`` when initialised) every rank
    yields the same number of samples per epoch; inside a DataLoader each worker reads a
    contiguous part of its rank's share. See the module docs and ``docs/samples.md``.

    Attributes:
        peak_bytes: Most bytes held at once by the last iteration (buffer + streams).
        peak_buffer_bytes: Most sample bytes held in the shuffle buffer.
        peak_open_shards: Most shard streams open at once (the pieces read plus the one prefetched).
        corrupt_shards: Shards skipped as corrupt (``skip_corrupt=True``), with the reason.
    """

    def __init__(
        self,
        source: Any,
        decode: Callable[[SampleGroup, str], Any],
        *,
        shuffle: bool = False,
        buffer_shards: int = 8,
        buffer_samples: int = 10_000,
        buffer_initial: int | None = 100,
        batch_size: int | None = None,
        collate: Callable[[list[Any]], Any] | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_uneven: bool = False,
        resampled: bool = False,
        epoch_length: int | None = None,
        memory_budget: int = 1 << 30,
        readahead: int = 1,
        skip_corrupt: bool = False,
    ) -> None:
        for name, value, low in (
            ("buffer_shards", buffer_shards, 1),
            ("buffer_samples", buffer_samples, 1),
            ("readahead", readahead, 0),
            ("memory_budget", memory_budget, 1 << 20),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}={value!r}: expected an int >= {low}")
        if buffer_initial is not None and (
            not isinstance(buffer_initial, int) or isinstance(buffer_initial, bool) or buffer_initial < 1
        ):
            raise ValueError(f"buffer_initial={buffer_initial!r}: expected None or an int >= 1")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size={batch_size!r}: expected None or an int >= 1")
        if epoch_length is not None and (
            not resampled or not isinstance(epoch_length, int) or epoch_length < 0
        ):
            raise ValueError(f"epoch_length={epoch_length!r}: expected an int >= 0, with resampled=True")
        if rank is None or world_size is None:
            dist_rank, dist_world = _distributed()
            rank = (dist_rank or 0) if rank is None else rank
            world_size = (dist_world or 1) if world_size is None else world_size
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size={world_size!r}: expected an int >= 1")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank!r}: expected an int in [0, world_size={world_size})")
        self.source, self._decode, self._collate = source, decode, collate
        self.shuffle, self.buffer_shards, self.buffer_samples = shuffle, buffer_shards, buffer_samples
        self.buffer_initial = buffer_initial
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.drop_uneven, self.resampled, self.epoch_length = drop_uneven, resampled, epoch_length
        self.memory_budget, self.readahead, self.skip_corrupt = memory_budget, readahead, skip_corrupt
        streams = (buffer_shards if shuffle else 1) + 1  # open pieces + the one prefetched
        per_stream = readahead + 2  # chunks ahead, the current one, the parser's window
        # Shuffled, ``buffer_shards`` streams are read at once: 1 MiB GETs keep them all busy
        # with a quarter of the memory of 4 MiB ones.
        cap = (1 << 20) if shuffle else (4 << 20)
        self.chunk_size = max(64 << 10, min(cap, memory_budget // (2 * streams * per_stream)))
        self.buffer_bytes = memory_budget - streams * per_stream * self.chunk_size
        if self.buffer_bytes <= 0:
            raise ValueError(
                f"memory_budget={memory_budget!r}: too small for {streams} shard streams of "
                f"{per_stream} x {self.chunk_size} bytes; expected a larger budget or fewer buffer_shards"
            )
        self._shard_ids: list[str] = list(source.list_shards())
        self._infos: list[ShardInfo] | None = None
        self._epoch = 0
        self._position = 0
        self._worker = (0, 1)
        self._resume: dict[str, int] | None = None
        self.peak_bytes = 0
        self.peak_buffer_bytes = 0
        self.peak_open_shards = 0
        self.corrupt_shards: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ counts
    def shard_infos(self) -> list[ShardInfo]:
        """Every shard's sample offsets and sizes (gathered once, on threads).

        Raises:
            ShardCorruptError: A shard is corrupt (unless ``skip_corrupt``).
        """
        if self._infos is None:

            def one(shard_id: str) -> ShardInfo:
                try:
                    return shard_info(self.source, shard_id)
                except ShardCorruptError as exc:
                    if not self.skip_corrupt:
                        raise
                    return ShardInfo(shard_id, (), (), corrupt=str(exc))

            with ThreadPoolExecutor(min(COUNT_THREADS, max(1, len(self._shard_ids)))) as pool:
                infos = list(pool.map(one, self._shard_ids))
            for info in infos:
                if info.corrupt is not None:
                    self._report(info.url, info.corrupt)
            self._infos = infos
        return self._infos

    def _report(self, url: str, reason: str) -> None:
        self.corrupt_shards.append((url, reason))
        warnings.warn(f"skipping corrupt shard {url}: {reason}", RuntimeWarning, stacklevel=3)

    def __len__(self) -> int:
        """Samples this rank yields per epoch (all its workers together; batches not counted)."""
        if self.resampled and self.epoch_length is not None:
            return self.epoch_length
        total = sum(info.count for info in self.shard_infos())
        first, last = _plan.rank_range(total, self.rank, self.world_size, self.drop_uneven)
        return last - first

    # ------------------------------------------------------------------ epochs and state
    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order from the next iteration on (both shuffle levels depend on it)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"set_epoch({epoch!r}): expected an int >= 0")
        self._epoch, self._position = epoch, 0

    def state_dict(self) -> dict[str, int]:
        """Where this process's (or DataLoader worker's) iteration stands: epoch and samples yielded."""
        worker, workers = self._worker
        return {
            "epoch": self._epoch,
            "position": self._position,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "worker": worker,
            "num_workers": workers,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from :meth:`state_dict`: the next iteration continues right after the samples yielded.

        Raises:
            ValueError: The state is from a different seed, rank or world size.
        """
        for name in ("seed", "rank", "world_size"):
            mine = getattr(self, name)
            if name in state and state[name] != mine:
                raise ValueError(
                    f"load_state_dict: state has {name}={state[name]!r}; this loader has {mine!r}"
                )
        self._epoch, self._position = int(state["epoch"]), int(state["position"])
        self._resume = dict(state)

    # ------------------------------------------------------------------ planning
    def _pieces(self, infos: Sequence[ShardInfo], worker: int, workers: int) -> list[_plan.Piece]:
        counts = [info.count for info in infos]
        total = sum(counts)
        if self.resampled:
            quota = self.epoch_length if self.epoch_length is not None else len(self)
            want = (worker + 1) * quota // workers - worker * quota // workers
            rng = random.Random(f"samples:{self.seed}:{self._epoch}:{self.rank}:{worker}:resampled")
            usable = [i for i, c in enumerate(counts) if c]
            pieces: list[_plan.Piece] = []
            while want > 0 and usable:
                shard = rng.choice(usable)
                take = min(want, counts[shard])
                pieces.append(_plan.Piece(shard, 0, take))
                want -= take
            return pieces
        order = _plan.shard_order(len(counts), self.seed, self._epoch, self.shuffle)
        first, last = _plan.rank_range(total, self.rank, self.world_size, self.drop_uneven)
        return _plan.worker_pieces(_plan.split_pieces(counts, order, first, last), worker, workers)

    def __iter__(self) -> Iterator[Any]:
        info = _worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        resume, self._resume = self._resume, None
        if resume is not None and (resume.get("worker", worker), resume.get("num_workers", workers)) != (
            worker,
            workers,
        ):
            raise ValueError(
                f"load_state_dict: state of worker {resume.get('worker')}/{resume.get('num_workers')} "
                f"resumed in worker {worker}/{workers}; expected the same number of workers"
            )
        start = self._position if resume is not None else 0
        self._worker = (worker, workers)
        infos = self.shard_infos()
        pieces = self._pieces(infos, worker, workers)
        rng = random.Random(f"samples:{self.seed}:{self._epoch}:{self.rank}:{worker}")
        steps = _plan.schedule(
            pieces,
            [info.sizes for info in infos],
            shuffle=self.shuffle,
            rng=rng,
            buffer_shards=self.buffer_shards,
            buffer_samples=self.buffer_samples,
            buffer_bytes=self.buffer_bytes,
            buffer_initial=self.buffer_initial,
        )
        return self._run(infos, pieces, steps, start)

    # ------------------------------------------------------------------ reading
    def _run(
        self, infos: list[ShardInfo], pieces: list[_plan.Piece], steps: Iterable[_plan.Step], start: int
    ) -> Iterator[Any]:
        self._position = start
        samples = self._samples(infos, pieces, steps, start)
        if self.batch_size is None:
            for sample in samples:
                self._position += 1
                yield sample
            return
        batch: list[Any] = []
        for sample in samples:
            batch.append(sample)
            if len(batch) == self.batch_size:
                self._position += len(batch)
                yield self._batch(batch)
                batch = []
        if batch:
            self._position += len(batch)
            yield self._batch(batch)

    def _batch(self, samples: list[Any]) -> Any:
        return self._collate(samples) if self._collate is not None else samples

    def _samples(
        self, infos: list[ShardInfo], pieces: list[_plan.Piece], steps: Iterable[_plan.Step], start: int
    ) -> Iterator[Any]:
        done: set[tuple[int, int]] = set()  # samples yielded before ``start`` (a resume)
        for intake, number, index in steps:
            if len(done) >= start:
                break
            if not intake:
                done.add((number, index))
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        if isinstance(steps, _plan.OrderedSteps) and not done:  # the bounds are the pieces'
            for number, part in enumerate(pieces):
                if len(part):
                    first[number], last[number] = part.start, part.stop - 1
        else:
            for intake, number, index in steps:
                if intake and (number, index) not in done:
                    first.setdefault(number, index)
                    last[number] = index
        upcoming = sorted(first)
        opened: dict[int, _Piece] = {}
        broken: set[int] = set()
        buffer: dict[tuple[int, int], SampleGroup] = {}
        held = 0
        self.peak_bytes = self.peak_buffer_bytes = self.peak_open_shards = 0
        try:
            for intake, number, index in steps:
                if intake:
                    if (number, index) in done or number in broken:
                        continue
                    piece = opened.get(number)
                    if piece is None:
                        piece = opened[number] = _Piece(self, infos[pieces[number].shard], first[number])
                        upcoming = [n for n in upcoming if n != number]
                        if upcoming and upcoming[0] not in opened:  # prefetch the next piece
                            nxt = upcoming[0]
                            opened[nxt] = _Piece(self, infos[pieces[nxt].shard], first[nxt])
                    try:
                        group = piece.take(index)
                    except ShardCorruptError as exc:
                        if not self.skip_corrupt:
                            raise
                        self._report(piece.info.url, str(exc))
                        broken.add(number)
                        opened.pop(number).close()
                        continue
                    buffer[(number, index)] = group
                    held += group.nbytes
                    self.peak_buffer_bytes = max(self.peak_buffer_bytes, held)
                    streams = sum(p.held for p in opened.values())
                    self.peak_open_shards = max(self.peak_open_shards, len(opened))
                    self.peak_bytes = max(self.peak_bytes, held + streams)
                    if index == last[number]:
                        if index == piece.info.count - 1 and isinstance(piece.stream, ShardStream):
                            piece.finish()
                        opened.pop(number).close()
                    continue
                if (number, index) in done:
                    continue
                group_or_none = buffer.pop((number, index), None)
                if group_or_none is None:  # its shard was skipped as corrupt
                    continue
                held -= group_or_none.nbytes
                url = infos[pieces[number].shard].url
                try:
                    sample = self._decode(group_or_none, url)
                except SampleDecodeError as exc:
                    if not self.skip_corrupt:
                        raise
                    self._report(url, str(exc))
                    continue
                yield sample
        finally:
            for piece in opened.values():
                piece.close()


def _distributed() -> tuple[int | None, int | None]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is optional
        return None, None
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None, None
