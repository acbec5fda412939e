"""``MapDataset`` and ``IterableDataset`` (s3torchconnector's ``S3MapDataset``/``S3IterableDataset``).

Both list once, in the process that builds them; items are readers (see
:mod:`manystore.torch._reader`) passed through ``transform``. Objects are fetched ahead
on threads within a byte budget (``prefetch``/``prefetch_bytes``), and the iterable
dataset shards across DataLoader workers and distributed ranks, shuffles per epoch and
resumes mid-epoch (see ``docs/torch.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch.utils.data

from ._lookahead import BatchFetcher, MapSampler, Plan, Predictor, worker_count
from ._objects import ObjectList, list_prefix, objects_from_urls, resolve
from ._order import Prefetcher, Sharding, worker_order
from ._reader import Reader, SequentialReader
from .client_config import ClientConfig
from .reader_constructor import ReaderConstructor

__all__ = ["IterableDataset", "MapDataset", "S3IterableDataset", "S3MapDataset", "identity"]

#: Objects fetched ahead per process (per DataLoader worker) by default.
DEFAULT_PREFETCH = 8
#: Bytes held by the objects fetched ahead, per process, by default.
DEFAULT_PREFETCH_BYTES = 64 << 20


def identity(reader: Reader) -> Reader:
    """The default ``transform``: the reader itself."""
    return reader


class _Objects:
    """What both datasets share: the object list, the reader constructor, the transform, prefetching."""

    def __init__(
        self,
        objects: ObjectList,
        *,
        transform: Callable[[Reader], Any] = identity,
        reader_constructor: Any = None,
        region: str | None = None,
        endpoint: str | None = None,
        prefetch: int | None = None,
        prefetch_bytes: int = DEFAULT_PREFETCH_BYTES,
    ) -> None:
        self._objects = objects
        self._transform = transform
        self._constructor = reader_constructor or ReaderConstructor.default()
        self._region, self._endpoint = region, endpoint
        sequential = ReaderConstructor.get_reader_type_string(self._constructor) == "sequential"
        if prefetch is None:
            prefetch = DEFAULT_PREFETCH if sequential else 0
        if not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch={prefetch!r}: expected an int >= 0 (objects fetched ahead)")
        if prefetch > 1 and not sequential:
            raise ValueError(
                f"prefetch={prefetch!r} needs whole-object (sequential) readers; the reader constructor "
                "here reads ranges: expected prefetch=0"
            )
        if not isinstance(prefetch_bytes, int) or prefetch_bytes < 1:
            raise ValueError(f"prefetch_bytes={prefetch_bytes!r}: expected an int >= 1")
        self._prefetch, self._prefetch_bytes = prefetch, prefetch_bytes
        #: The prefetcher of the last iteration or batch in this process (its ``peak_held``).
        self.last_prefetcher: Prefetcher | BatchFetcher | None = None

    @property
    def region(self) -> str | None:
        """The ``region`` given (``s3://`` URLs only)."""
        return self._region

    @property
    def endpoint(self) -> str | None:
        """The ``endpoint`` given (``s3://`` URLs only)."""
        return self._endpoint

    @property
    def urls(self) -> list[str]:
        """The URLs of the objects, in dataset order."""
        return [self._objects.url(i) for i in range(len(self._objects))]

    def _reader(self, index: int) -> Reader:
        objects = self._objects
        source = objects.source(index)
        bucket, key = objects.bucket_key(index)
        reader: Reader = self._constructor(bucket, key, source.info, source)
        return reader

    def _fetch(self, index: int) -> bytes:
        return self._objects.source(index).read_whole()

    def _items(self, indices: Iterable[int]) -> Iterator[Any]:
        """Transformed readers of ``indices``, bodies fetched ahead when prefetching."""
        if self._prefetch <= 1:
            for index in indices:
                yield self._transform(self._reader(index))
            return
        sizes = self._objects.sizes
        prefetcher = Prefetcher(self._fetch, sizes.__getitem__, self._prefetch, self._prefetch_bytes)
        self.last_prefetcher = prefetcher
        for index, data in prefetcher.run(iter(indices)):
            reader = self._reader(index)
            if isinstance(reader, SequentialReader):
                reader._preload(data)
            yield self._transform(reader)

    @classmethod
    def _build_prefix(
        cls, url: str, region: str | None, endpoint: str | None, config: ClientConfig | None, manifest: Any
    ) -> ObjectList:
        client, path = resolve(url, region, endpoint, config)
        return list_prefix(client, path, manifest)


class MapDataset(_Objects, torch.utils.data.Dataset):
    """A map-style dataset over objects (the seed's ``S3MapDataset``); build it with a ``from_*`` method.

    ``len()`` is known right after the one listing. A DataLoader fetching a batch calls
    :meth:`__getitems__`, which fetches the batch's objects concurrently (``prefetch``) and
    then, on the same threads and within ``prefetch_bytes``, the batch this process is
    expected to be asked for next (see ``docs/torch.md``): the indices shifted by the stride
    the batches follow, or the next positions of the order of :meth:`sampler`. Shard across
    ranks and shuffle with :meth:`sampler` (or ``torch.utils.data.DistributedSampler``).
    """

    def __init__(self, objects: ObjectList, **kwargs: Any) -> None:
        super().__init__(objects, **kwargs)
        self._plan: Plan | None = None
        self._batches: tuple[int, Predictor, BatchFetcher] | None = None  # (pid, ...) of this process

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_batches"] = None  # threads stay in their process
        state["last_prefetcher"] = None
        return state

    def sampler(
        self,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        uneven: str = "pad",
    ) -> MapSampler:
        """A seeded sampler over this dataset whose order the dataset knows, for exact look-ahead.

        Pass it as the DataLoader's ``sampler`` and call its ``set_epoch(n)`` before each
        epoch. Its order is a pure function of ``(seed, epoch, rank, world_size)``; each
        rank draws ``ceil(n / world_size)`` indices (``uneven="pad"``: the first of the
        epoch's order twice) or ``n // world_size`` (``"drop"``). The dataset remembers the
        last sampler made (and its epoch), so workers fetch each next batch while the current
        one is collated, shuffled or not.

        Args:
            shuffle: Permute the indices per epoch (the same permutation on every rank).
            seed: The permutation's seed.
            rank: This rank (default: ``torch.distributed``'s when initialised, else 0).
            world_size: Number of ranks (default: ``torch.distributed``'s, else 1).
            uneven: ``"pad"`` or ``"drop"`` (equal counts per rank either way).

        Raises:
            ValueError: A bad rank, world size, or ``uneven``.
        """
        dist_rank, dist_world = _distributed()
        rank = (dist_rank or 0) if rank is None else rank
        world_size = (dist_world or 1) if world_size is None else world_size
        plan = Plan(Sharding(rank, world_size, uneven, bool(shuffle), seed))
        self._plan = plan
        return MapSampler(len(self._objects), plan)

    @classmethod
    def from_objects(
        cls,
        object_uris: str | Iterable[str],
        *,
        region: str | None = None,
        endpoint: str | None = None,
        transform: Callable[[Reader], Any] = identity,
        s3client_config: ClientConfig | None = None,
        reader_constructor: Any = None,
        prefetch: int | None = None,
        prefetch_bytes: int = DEFAULT_PREFETCH_BYTES,
    ) -> MapDataset:
        """A dataset of the objects named by ``object_uris`` (no request is sent).

        Args:
            object_uris: URL(s) of the objects.
            region: AWS region (``s3://`` URLs only; an ``msc://`` profile has its own).
            endpoint: S3 endpoint URL (``s3://`` URLs only).
            transform: Called with each item's reader; its result is the item.
            s3client_config: :class:`~manystore.torch.ClientConfig` (``s3://`` URLs only).
            reader_constructor: From :class:`~manystore.torch.ReaderConstructor` (default: sequential).
            prefetch: Objects fetched ahead on threads per process (default 8 with sequential
                readers, else 0; ``0``/``1``: none).
            prefetch_bytes: Byte budget of the objects fetched ahead (default 64 MiB).

        Raises:
            ValueError: S3 arguments given for a URL that is not ``s3://``, or a bad knob.
        """
        objects = objects_from_urls(object_uris, region, endpoint, s3client_config)
        return cls(
            objects,
            transform=transform,
            reader_constructor=reader_constructor,
            region=region,
            endpoint=endpoint,
            prefetch=prefetch,
            prefetch_bytes=prefetch_bytes,
        )

    @classmethod
    def from_prefix(
        cls,
        s3_uri: str,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        transform: Callable[[Reader], Any] = identity,
        s3client_config: ClientConfig | None = None,
        reader_constructor: Any = None,
        prefetch: int | None = None,
        prefetch_bytes: int = DEFAULT_PREFETCH_BYTES,
        manifest_path: str | None = None,
    ) -> MapDataset:
        """A dataset of every object whose URL starts with ``s3_uri``, listed once, now.

        Args:
            s3_uri: The prefix URL (``msc://``, ``s3://``, ``gs://``, ``az://``, ``ais://``, a path).
            region: AWS region (``s3://`` URLs only; an ``msc://`` profile has its own).
            endpoint: S3 endpoint URL (``s3://`` URLs only).
            transform: Called with each item's reader; its result is the item.
            s3client_config: :class:`~manystore.torch.ClientConfig` (``s3://`` URLs only).
            reader_constructor: From :class:`~manystore.torch.ReaderConstructor` (default: sequential).
            prefetch: Objects fetched ahead on threads per process (default 8 with sequential
                readers, else 0; ``0``/``1``: none).
            prefetch_bytes: Byte budget of the objects fetched ahead (default 64 MiB).
            manifest_path: List from the manifest at this path of the profile (no LIST request).

        Raises:
            ValueError: S3 arguments given for a URL that is not ``s3://``, or a bad knob.
        """
        objects = cls._build_prefix(s3_uri, region, endpoint, s3client_config, manifest_path)
        return cls(
            objects,
            transform=transform,
            reader_constructor=reader_constructor,
            region=region,
            endpoint=endpoint,
            prefetch=prefetch,
            prefetch_bytes=prefetch_bytes,
        )

    @classmethod
    def from_manifest(cls, url: str, *, manifest_path: str = ".msc_manifests", **kwargs: Any) -> MapDataset:
        """:meth:`from_prefix` listed from a manifest: no LIST request.

        Args:
            url: The prefix URL (its profile holds the manifest).
            manifest_path: The manifest's directory within the profile, used when the profile
                has no manifest metadata provider of its own.
            **kwargs: As :meth:`from_prefix`.
        """
        return cls.from_prefix(url, manifest_path=_manifest_for(url, manifest_path), **kwargs)

    def __len__(self) -> int:
        return len(self._objects)

    def __getitem__(self, index: int) -> Any:
        n = len(self._objects)
        position = index + n if isinstance(index, int) and index < 0 else index
        if not isinstance(position, int) or not 0 <= position < n:
            raise IndexError(f"index {index!r} out of range for a dataset of {n} objects")
        return self._transform(self._reader(position))

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """The items at ``indices``, their objects fetched concurrently (DataLoader batches).

        The batch expected next in this process is then fetched ahead within the byte budget.
        """
        n = len(self._objects)
        for index in indices:
            if not -n <= index < n:
                raise IndexError(f"index {index!r} out of range for a dataset of {n} objects")
        positions = [i % n for i in indices]
        if self._prefetch <= 1:
            return [self._transform(self._reader(i)) for i in positions]
        predictor, fetcher = self._batch_state()
        bodies = fetcher.fetch_batch(positions, predictor.next(positions, worker_count()))
        items = []
        for index, data in zip(positions, bodies, strict=True):
            reader = self._reader(index)
            if isinstance(reader, SequentialReader):
                reader._preload(data)
            items.append(self._transform(reader))
        return items

    def _batch_state(self) -> tuple[Predictor, BatchFetcher]:
        """This process's predictor and fetcher (a forked copy builds its own)."""
        state = self._batches
        if state is None or state[0] != os.getpid():
            sizes = self._objects.sizes
            fetcher = BatchFetcher(self._fetch, sizes.__getitem__, self._prefetch, self._prefetch_bytes)
            state = self._batches = (os.getpid(), Predictor(len(self._objects), self._plan), fetcher)
            self.last_prefetcher = fetcher
        state[1].plan = self._plan  # a sampler made after the first batch
        return state[1], state[2]


class IterableDataset(_Objects, torch.utils.data.IterableDataset):
    """An iterable dataset over objects (the seed's ``S3IterableDataset``); build it with ``from_*``.

    With ``enable_sharding``, each rank reads an equal share (``uneven``) and each DataLoader
    worker a part of it. ``shuffle`` permutes the order per epoch (:meth:`set_epoch`),
    ``shuffle_buffer`` also shuffles within a sliding window; :meth:`state_dict` /
    :meth:`load_state_dict` resume mid-epoch exactly (also through torchdata's
    ``StatefulDataLoader``, which keeps one state per worker).
    """

    def __init__(
        self,
        objects: ObjectList,
        *,
        enable_sharding: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        uneven: str = "pad",
        shuffle: bool = False,
        seed: int = 0,
        shuffle_buffer: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(objects, **kwargs)
        if not enable_sharding and (rank is not None or world_size is not None):
            raise ValueError(
                f"rank={rank!r}/world_size={world_size!r} shard only with enable_sharding=True; "
                "expected enable_sharding=True or neither argument"
            )
        if enable_sharding and (rank is None or world_size is None):
            dist_rank, dist_world = _distributed()
            rank = dist_rank if rank is None else rank
            world_size = dist_world if world_size is None else world_size
        self._enable_sharding = enable_sharding
        self._sharding = Sharding(rank or 0, world_size or 1, uneven, shuffle, seed, shuffle_buffer)
        self._epoch = 0
        self._position = 0
        self._worker = (0, 1)
        self._resume: dict[str, int] | None = None

    @classmethod
    def from_objects(cls, object_uris: str | Iterable[str], **kwargs: Any) -> IterableDataset:
        """A dataset of the objects named by ``object_uris`` (no request is sent).

        Args:
            object_uris: URL(s) of the objects.
            **kwargs: ``region``, ``endpoint``, ``transform``, ``s3client_config``,
                ``reader_constructor``, ``prefetch``, ``prefetch_bytes`` as
                :meth:`MapDataset.from_objects`; ``enable_sharding``, ``rank``, ``world_size``,
                ``uneven``, ``shuffle``, ``seed``, ``shuffle_buffer`` as the class.

        Raises:
            ValueError: An argument is invalid or does not apply (see the message).
        """
        region, endpoint, config = _s3_args(kwargs)
        objects = objects_from_urls(object_uris, region, endpoint, config)
        return cls(objects, region=region, endpoint=endpoint, **kwargs)

    @classmethod
    def from_prefix(cls, s3_uri: str, *, manifest_path: str | None = None, **kwargs: Any) -> IterableDataset:
        """A dataset of every object whose URL starts with ``s3_uri``, listed once, now.

        Args:
            s3_uri: The prefix URL.
            manifest_path: List from the manifest at this path of the profile (no LIST request).
            **kwargs: As :meth:`from_objects`.
        """
        region, endpoint, config = _s3_args(kwargs)
        objects = cls._build_prefix(s3_uri, region, endpoint, config, manifest_path)
        return cls(objects, region=region, endpoint=endpoint, **kwargs)

    @classmethod
    def from_manifest(
        cls, url: str, *, manifest_path: str = ".msc_manifests", **kwargs: Any
    ) -> IterableDataset:
        """:meth:`from_prefix` listed from a manifest: no LIST request (see :meth:`MapDataset.from_manifest`)."""
        return cls.from_prefix(url, manifest_path=_manifest_for(url, manifest_path), **kwargs)

    # ------------------------------------------------------------------ epochs and state
    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order from the next iteration on (the shuffle depends on it)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"set_epoch({epoch!r}): expected an int >= 0")
        self._epoch, self._position = epoch, 0

    def state_dict(self) -> dict[str, int]:
        """Where this process's (or DataLoader worker's) iteration stands: epoch and items yielded."""
        worker, workers = self._worker
        return {
            "epoch": self._epoch,
            "position": self._position,
            "seed": self._sharding.seed,
            "rank": self._sharding.rank,
            "world_size": self._sharding.world_size,
            "worker": worker,
            "num_workers": workers,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from :meth:`state_dict`: the next iteration continues right after the items yielded.

        Raises:
            ValueError: The state is from a different seed, rank or world size.
        """
        for name in ("seed", "rank", "world_size"):
            mine = getattr(self._sharding, name)
            if name in state and state[name] != mine:
                raise ValueError(f"load_state_dict: state has {name}={state[name]!r}, this dataset {mine!r}")
        self._epoch = int(state["epoch"])
        self._position = int(state["position"])
        self._resume = dict(state)

    def __len__(self) -> int:
        """Items this rank reads per epoch (all workers together)."""
        n = len(self._objects)
        return self._sharding.rank_count(n) if self._enable_sharding else n

    def __iter__(self) -> Iterator[Any]:
        worker, workers = 0, 1
        info = torch.utils.data.get_worker_info()
        if self._enable_sharding and info is not None:
            worker, workers = info.id, info.num_workers
        if self._enable_sharding:
            sharding = self._sharding
        else:
            sharding = Sharding(shuffle=self._sharding.shuffle, seed=self._sharding.seed,
                                shuffle_buffer=self._sharding.shuffle_buffer)  # fmt: skip
        resume = self._resume
        self._resume = None
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
        order = worker_order(len(self._objects), sharding, self._epoch, worker, workers)
        return self._run(order, start)

    def _run(self, order: list[int], start: int) -> Iterator[Any]:
        self._position = start
        for item in self._items(order[start:]):
            self._position += 1
            yield item


def _distributed() -> tuple[int | None, int | None]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None, None


def _s3_args(kwargs: dict[str, Any]) -> tuple[str | None, str | None, ClientConfig | None]:
    region = kwargs.pop("region", None)
    endpoint = kwargs.pop("endpoint", None)
    config = kwargs.pop("s3client_config", None)
    return region, endpoint, config


def _manifest_for(url: str, manifest_path: str) -> str | None:
    """``None`` when ``url``'s profile answers listings from its own manifest, else ``manifest_path``."""
    from ..shortcuts import resolve_storage_client

    client, _ = resolve_storage_client(os.fspath(url))
    return None if client.config.metadata_provider is not None else manifest_path


S3MapDataset = MapDataset
S3IterableDataset = IterableDataset
