"""``Dataset[T](source)``: typed samples read from WebDataset tar shards on any store (atdata's ``Dataset``).

``Dataset[MySample]("msc://p/train-{000000..000099}.tar")`` names the shards (a URL, a
brace pattern, a list, or any :class:`~manystore.samples.sources.DataSource`); nothing
is read until it is iterated. :meth:`Dataset.ordered` and :meth:`Dataset.shuffled`
return a :class:`~manystore.samples._loader.SampleLoader` — an iterable that is also a
``torch.utils.data.IterableDataset`` (rank/worker split with equal counts, exact
resume, prefetch, a memory budget); iterating the dataset itself is ``ordered()``.
Each sample's ``{key}.msgpack`` member is decoded with the sample type's
``from_bytes(raw, allow_pickle=...)`` (never unpickling unless ``allow_pickle=True``).
"""

from __future__ import annotations

import bisect
import os
import threading
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._loader import SampleLoader
from ._tarstream import SampleGroup, ShardCorruptError
from .errors import SampleDecodeError
from .sources import DataSource, URLSource

__all__ = ["Dataset"]

_T = TypeVar("_T")
_MEMBER = "msgpack"


@dataclass(frozen=True)
class _Decoder:
    """Raw sample group -> typed sample (picklable, for spawned DataLoader workers)."""

    sample_type: Any
    allow_pickle: bool
    lens: Callable[[Any], Any] | None = None

    def __call__(self, group: SampleGroup, url: str) -> Any:
        raw = group.members.get(_MEMBER)
        member = f"{group.key}.{_MEMBER}"
        if raw is None:
            found = ", ".join(sorted(group.members)) or "none"
            raise ShardCorruptError(
                url, member, group.offset, f"sample has no .{_MEMBER} member (found: {found})"
            )
        try:
            sample = self.sample_type.from_bytes(raw, allow_pickle=self.allow_pickle)
        except SampleDecodeError as exc:  # corrupt payload or a refused pickled array: name where
            exc.url, exc.member = url, member
            raise
        except (TypeError, KeyError):  # the sample does not match the type (names field and types)
            raise
        except Exception as exc:  # a decoder of another kind failing on the bytes
            raise ShardCorruptError(url, member, group.offset, f"{type(exc).__name__}: {exc}") from exc
        return sample if self.lens is None else self.lens(sample)


class Dataset(Generic[_T]):
    """Typed samples in WebDataset shards: ``Dataset[MySample](source)``.

    Args:
        source: A shard URL, a brace pattern (``msc://p/s-{000..009}.tar``), a list of URLs,
            or a :class:`~manystore.samples.sources.DataSource`.
        sample_type: The sample type, when not given as ``Dataset[MySample]``.
        allow_pickle: Let numpy arrays of object dtype be unpickled (runs code from the
            shard: only for shards you trust).

    Raises:
        ValueError: A brace pattern is malformed.
        TypeError: ``source`` is not a URL, a list of URLs or a DataSource.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[str] | DataSource,
        *,
        sample_type: type[_T] | None = None,
        allow_pickle: bool = False,
    ) -> None:
        if isinstance(source, (str, os.PathLike)) or (
            isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray))
        ):
            self._source: Any = URLSource(source)
        elif callable(getattr(source, "list_shards", None)) and callable(getattr(source, "open_shard", None)):
            self._source = source
        else:
            raise TypeError(
                f"source={source!r}: expected a URL, a brace pattern, a list of URLs or a DataSource"
            )
        self._sample_type: Any = sample_type
        self.allow_pickle = allow_pickle
        self._lens: Callable[[Any], Any] | None = None
        self._view_of: Any = None
        self._table: _Table | None = None
        self._table_lock = threading.Lock()

    @property
    def source(self) -> DataSource:
        """Where the shards come from."""
        return typing.cast(DataSource, self._source)

    @property
    def sample_type(self) -> Any:
        """The type samples are decoded to: ``T`` of ``Dataset[T]``, else ``sample_type=``, else
        :class:`~manystore.samples.DictSample` (schema-free, as atdata)."""
        if self._sample_type is None:
            orig = self.__dict__.get("__orig_class__")
            args = typing.get_args(orig) if orig is not None else ()
            if args:
                self._sample_type = args[0]
            else:
                from .sample import DictSample

                return DictSample
        return self._sample_type

    def list_shards(self) -> list[str]:
        """The shard ids (URLs), in order, without opening any."""
        return list(self._source.list_shards())

    @property
    def shards(self) -> Iterator[tuple[str, Any]]:
        """``(shard id, stream)`` pairs from the source, one shard open at a time."""
        return iter(self._source.shards)

    def as_type(self, other: type[Any]) -> Dataset[Any]:
        """The same shards viewed as ``other`` through the lens registered from this type to it.

        Raises:
            ValueError: No lens leads from this dataset's sample type to ``other``
                (the lens registry's error).
        """
        from .lens import LensNetwork

        lens = LensNetwork().transform(self._decoded_type(), other)
        view: Dataset[Any] = Dataset(self._source, sample_type=other, allow_pickle=self.allow_pickle)
        view._view_of = self._decoded_type()
        view._lens = lens if self._lens is None else _Chain(self._lens, lens)
        return view

    def _decoded_type(self) -> Any:
        return self._view_of if self._view_of is not None else self.sample_type

    def _decoder(self) -> _Decoder:
        return _Decoder(self._decoded_type(), self.allow_pickle, self._lens)

    def _collate(self, batch_size: int | None) -> Callable[[list[Any]], Any] | None:
        if batch_size is None:
            return None
        try:
            from .batch import SampleBatch
        except ImportError:  # the batch type arrives with manystore.samples.batch
            return None
        return typing.cast(Callable[[list[Any]], Any], SampleBatch)

    def ordered(self, batch_size: int | None = None, **options: Any) -> SampleLoader:
        """The samples in shard order (each rank/worker reads its contiguous share).

        Args:
            batch_size: Yield ``SampleBatch`` objects of this many samples (the last may be
                smaller) instead of single samples.
            **options: ``rank``, ``world_size``, ``drop_uneven``, ``resampled``,
                ``epoch_length``, ``memory_budget``, ``readahead``, ``skip_corrupt``,
                ``seed`` of :class:`~manystore.samples._loader.SampleLoader`.

        Raises:
            ValueError: An option is out of range (names it).
        """
        return SampleLoader(
            self._source, self._decoder(), batch_size=batch_size, collate=self._collate(batch_size), **options
        )

    def shuffled(
        self,
        buffer_shards: int = 8,
        buffer_samples: int = 10_000,
        batch_size: int | None = None,
        seed: int = 0,
        buffer_initial: int | None = 100,
        **options: Any,
    ) -> SampleLoader:
        """The samples in a random order: shards permuted per epoch, then a sample buffer.

        Args:
            buffer_shards: Shards read at once, interleaved into the buffer.
            buffer_samples: Samples the buffer holds before one leaves at random.
            buffer_initial: Samples start leaving once the buffer holds this many, two taken
                in per one out until it holds ``buffer_samples`` (webdataset's ``initial``: the
                first batch comes sooner); None: fill the buffer first.
            batch_size: As :meth:`ordered`.
            seed: Seed of both shuffles (with the epoch: ``SampleLoader.set_epoch``).
            **options: As :meth:`ordered`.

        Raises:
            ValueError: An option is out of range (names it).
        """
        return SampleLoader(
            self._source,
            self._decoder(),
            shuffle=True,
            buffer_shards=buffer_shards,
            buffer_samples=buffer_samples,
            buffer_initial=buffer_initial,
            batch_size=batch_size,
            collate=self._collate(batch_size),
            seed=seed,
            **options,
        )

    def __iter__(self) -> Iterator[_T]:
        """The samples in order (``ordered()``)."""
        return iter(self.ordered())

    def __len__(self) -> int:
        """Samples in the dataset (from the shards' member indexes; no sample is decoded)."""
        return len(self.ordered(rank=0, world_size=1))

    def get(self, index: int) -> _T:
        """Sample ``index`` (counting through the shards in order), read with one ranged GET.

        The first call reads every shard's member index (the ``.idx`` sidecar manystore
        writes: a HEAD and a GET per shard, on threads; a foreign tar's headers are walked);
        after that each call is one ranged GET of the sample's ``.msgpack`` member, pinned to
        the shard version its index describes.

        Args:
            index: ``0 <= index < len(self)``; negative values count from the end.

        Returns:
            The decoded sample (through the lens of :meth:`as_type`, if any).

        Raises:
            IndexError: ``index`` is out of range.
            TypeError: The source cannot locate shards in a store (a custom ``DataSource``).
            PreconditionFailedError: The shard changed since its index was read.
            SampleDecodeError: The sample's bytes are corrupt (names shard and member).
        """
        table = self._random_access()
        total = table.starts[-1]
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"index={index!r}: expected an int")
        position = index + total if index < 0 else index
        if not 0 <= position < total:
            raise IndexError(f"index {index} out of range: the dataset has {total} samples")
        shard = bisect.bisect_right(table.starts, position) - 1
        entry = table.shards[shard]
        name, offset, size = entry.members[position - table.starts[shard]]
        from ..types import Range

        data = entry.client._io.get_range(entry.key, Range(offset, size), entry.etag)
        key = name.rsplit("/", 1)[-1][: -len("." + _MEMBER)]
        return typing.cast(_T, self._decoder()(SampleGroup(key, {_MEMBER: data}, offset, size), entry.url))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_table"], state["_table_lock"] = None, None  # rebuilt on demand (clients, a lock)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._table_lock = threading.Lock()

    def _random_access(self) -> _Table:
        with self._table_lock:
            if self._table is None:
                self._table = _Table.build(self._source)
            return self._table

    def head(self, n: int = 5) -> list[_T]:
        """The first ``n`` samples."""
        out: list[_T] = []
        for sample in self:
            if len(out) >= n:
                break
            out.append(sample)
        return out

    def __repr__(self) -> str:
        name = getattr(self._sample_type, "__name__", None) or "?"
        return f"Dataset[{name}]({self._source!r})"


@dataclass(frozen=True)
class _ShardMembers:
    url: str
    client: Any
    key: str
    etag: str | None
    members: list[tuple[str, int, int]]  # (name, data offset, size) of each .msgpack member


@dataclass(frozen=True)
class _Table:
    """Where every sample's ``.msgpack`` member is, for :meth:`Dataset.get`."""

    shards: list[_ShardMembers]
    starts: list[int]  # index of each shard's first sample, then the total

    @classmethod
    def build(cls, source: Any) -> _Table:
        locate = getattr(source, "locate", None)
        if locate is None:
            raise TypeError(
                f"random access needs a source that locates shards in a store (URLSource, StoreSource); "
                f"got {type(source).__name__}"
            )
        from concurrent.futures import ThreadPoolExecutor

        from ..batch import _archindex
        from ._loader import COUNT_THREADS

        def one(url: str) -> _ShardMembers:
            client, key = locate(url)
            index = _archindex.lookup(client, key) or _archindex.build_index(client, key, "tar")
            suffix = "." + _MEMBER
            members = [
                (m.name, m.offset, m.size)
                for m in index.members
                if m.offset is not None and m.name.endswith(suffix)
            ]
            return _ShardMembers(url, client, key, index.etag, members)

        urls = list(source.list_shards())
        with ThreadPoolExecutor(min(COUNT_THREADS, max(1, len(urls)))) as pool:
            shards = list(pool.map(one, urls))
        starts = [0]
        for shard in shards:
            starts.append(starts[-1] + len(shard.members))
        return cls(shards, starts)


@dataclass(frozen=True)
class _Chain:
    """Two lenses applied one after the other."""

    first: Callable[[Any], Any]
    second: Callable[[Any], Any]

    def __call__(self, sample: Any) -> Any:
        return self.second(self.first(sample))
