"""Get-Batch on any backend: many objects and archive members, fetched concurrently, delivered in order.

A :class:`GetBatch` holds items (an object, a byte range of one, or a member of an
archive object), possibly from different buckets and profiles. Its :meth:`GetBatch.get`
fetches them on a thread pool and delivers ``(BatchItemInfo, bytes)`` pairs in request
order, or (``raw=True``) one archive stream (tar by default) holding them in order.

Memory is bounded by ``byte_budget``, not by the batch size: a fetch is started only
while the bytes reserved for fetched-but-undelivered items stay within the budget. An
object of unknown size is read with one ranged GET of ``probe`` bytes, which returns all
of it when it is smaller; a larger one is fetched again whole once its size is known and
the budget has room for it — or, when it is the next item to deliver, at once. So the
bytes held never exceed ``byte_budget`` plus one object.

A failed item (missing object, missing member, bad range) is reported in place: an info
whose ``err_msg`` says why, empty data, and in an archive stream a zero-length member
named ``__404__/<bucket>/<name>`` (as AIStore does). With ``cont_on_err=False`` the first
failure (in request order) raises instead. See ``docs/batch-archives.md``.
"""

from __future__ import annotations

import io
import threading
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ..errors import ManystoreError
from ..types import Range
from . import _tarfmt

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = [
    "DEFAULT_BYTE_BUDGET",
    "MISSING_DIR",
    "BatchItem",
    "BatchItemInfo",
    "BatchStats",
    "BatchStream",
    "GetBatch",
    "get_batch",
]

#: Default bound on bytes fetched and not yet delivered.
DEFAULT_BYTE_BUDGET = 64 << 20
#: Default number of fetching threads (each has one request in flight).
DEFAULT_WORKERS = 16
#: Archive-stream directory of the markers for failed items (AIStore's name).
MISSING_DIR = "__404__"
_OUTPUT_FORMATS = (".tar", ".tar.gz", ".tgz", ".zip")
_ITEM_ERRORS = (OSError, ManystoreError, ValueError, NotImplementedError)


@dataclass(frozen=True)
class BatchItem:
    """One thing to fetch.

    Attributes:
        client: The profile's client.
        key: The object's key in it.
        archpath: A member of the object (an archive) to fetch instead of the object.
        start: First byte of a range (of the object, or of the member with ``archpath``).
        length: Bytes from ``start``; ``-1`` (or None with ``start``) to the end.
        opaque: Caller's data, returned in the item's info.
    """

    client: StorageClient
    key: str
    archpath: str = ""
    start: int | None = None
    length: int | None = None
    opaque: bytes | None = None


@dataclass
class BatchItemInfo:
    """What was delivered for one item (AIStore's ``MossOut``).

    Attributes:
        obj_name: The object's key.
        archpath: The member, for an archive item.
        bucket: The profile the object is in.
        provider: Its storage provider (``s3``, ``file``...).
        opaque: The item's ``opaque`` data.
        err_msg: Why the item failed, or None.
        size: Bytes delivered.
    """

    obj_name: str
    archpath: str
    bucket: str
    provider: str
    opaque: bytes | None
    err_msg: str | None = None
    size: int = 0


@dataclass
class BatchStats:
    """Counters of one :meth:`GetBatch.get` run.

    Attributes:
        items: Items delivered.
        errors: Items delivered as failures.
        bytes: Bytes delivered.
        refetches: Objects larger than the probe, fetched a second time whole.
        peak_held_bytes: Most bytes reserved at once for fetched-but-undelivered items
            (fetches in flight count for what they may return).
    """

    items: int = 0
    errors: int = 0
    bytes: int = 0
    refetches: int = 0
    peak_held_bytes: int = 0


#: An item as given: a :class:`BatchItem`, an object URL, or ``(client-or-URL, key[, archpath])``.
ItemSpec = Union[BatchItem, str, tuple[Any, ...]]  # noqa: UP007 (runtime alias on 3.10)


@dataclass
class _Large:
    size: int


@dataclass
class _Slot:
    item: BatchItem
    reserved: int
    future: Future[Any] | None = None
    result: Any = None
    done: bool = False
    large: int | None = None


def _provider_name(client: StorageClient) -> str:
    return str(getattr(client._storage_provider, "provider_name", type(client._storage_provider).__name__))


def _range_of(item: BatchItem, total: int | None) -> tuple[int, int | None]:
    """``(start, length)`` of the item's range; None length means to the end."""
    start = item.start or 0
    length = None if item.length is None or item.length == -1 else item.length
    if start < 0 or (length is not None and length < 0):
        raise ValueError(
            f"{item.key!r}: range start={item.start!r} length={item.length!r}; expected start >= 0, length >= 0 or -1"
        )
    if total is not None and start > total:
        raise ValueError(f"{item.key!r}: range start {start} is past its end ({total} bytes)")
    return start, length


class GetBatch:
    """A Get-Batch request: add items, then :meth:`get` them (in order, concurrently).

    Args:
        items: Initial items (see :meth:`add` for the accepted forms).
        output_format: Archive format of ``get(raw=True)``: ``.tar``, ``.tar.gz``/``.tgz``, ``.zip``.
        cont_on_err: Report a failed item in place and go on; False raises at the first one.
        streaming_get: Deliver items as they arrive. False first checks every item (one
            HEAD each, or the archive's index) so sizes and failures are known before the
            first byte is delivered — and with ``cont_on_err=False`` a failure raises
            before anything is delivered.
        only_obj_name: Name archive members ``<key>`` instead of ``<bucket>/<key>``.
        byte_budget: Bound on bytes fetched and not yet delivered (plus one object).
        workers: Fetching threads.
        probe: Bytes of the first ranged GET of an object of unknown size (default:
            ``byte_budget / (2 * workers)`` within 64 KiB..1 MiB).

    Raises:
        ValueError: An unknown ``output_format``, a budget or worker count below 1.
    """

    def __init__(
        self,
        items: Iterable[ItemSpec] | None = None,
        *,
        output_format: str = ".tar",
        cont_on_err: bool = True,
        streaming_get: bool = True,
        only_obj_name: bool = False,
        byte_budget: int = DEFAULT_BYTE_BUDGET,
        workers: int = DEFAULT_WORKERS,
        probe: int | None = None,
    ) -> None:
        if output_format not in _OUTPUT_FORMATS:
            raise ValueError(f"output_format={output_format!r}: expected one of {list(_OUTPUT_FORMATS)}")
        if byte_budget < 1 or workers < 1:
            raise ValueError(f"byte_budget={byte_budget!r}, workers={workers!r}: expected both >= 1")
        self.output_format, self.cont_on_err, self.streaming_get = output_format, cont_on_err, streaming_get
        self.only_obj_name, self.byte_budget, self.workers = only_obj_name, byte_budget, workers
        self.probe = probe if probe is not None else max(64 << 10, min(1 << 20, byte_budget // (2 * workers)))
        if self.probe < 1:
            raise ValueError(f"probe={probe!r}: expected >= 1")
        self.items: list[BatchItem] = []
        #: Counters of the last :meth:`get` run.
        self.stats = BatchStats()
        for spec in items or ():
            self.add(spec)

    # ------------------------------------------------------------ building
    def add(
        self,
        source: ItemSpec | StorageClient,
        key: str = "",
        archpath: str = "",
        start: int | None = None,
        length: int | None = None,
        opaque: bytes | None = None,
    ) -> GetBatch:
        """Add one item; returns the batch (for chaining).

        ``source`` is a :class:`BatchItem`; a URL (``s3://b/k``, ``msc://profile/k``, a
        path) naming the object, or with ``key`` a bucket prefix it is under; a client
        with ``key``; or a tuple ``(client-or-URL, key[, archpath])``.

        Raises:
            ValueError: An unparseable URL, a missing key, or a bad range.
            TypeError: A ``source`` of another type.
        """
        if isinstance(source, BatchItem):
            self.items.append(source)
            return self
        if isinstance(source, tuple):
            if not 1 <= len(source) <= 3:
                raise ValueError(f"batch item {source!r}: expected (client-or-URL, key[, archpath])")
            return self.add(*source, start=start, length=length, opaque=opaque)  # type: ignore[misc]
        if isinstance(source, str):
            from ..shortcuts import resolve_storage_client

            url = source.rstrip("/") + "/" + key.lstrip("/") if key else source
            client, key = resolve_storage_client(url)
        else:
            from ..client import StorageClient

            if not isinstance(source, StorageClient):
                raise TypeError(
                    f"batch item source of type {type(source).__name__}; expected a URL or a StorageClient"
                )
            client = source
        if not key:
            raise ValueError(f"batch item {source!r}: no object key")
        _range_of(BatchItem(client, key, start=start, length=length), None)
        self.items.append(BatchItem(client, key, archpath, start, length, opaque))
        return self

    def __len__(self) -> int:
        return len(self.items)

    # ------------------------------------------------------------ fetching
    def _info(self, item: BatchItem) -> BatchItemInfo:
        return BatchItemInfo(
            item.key, item.archpath, item.client.profile, _provider_name(item.client), item.opaque
        )

    def _known_size(self, item: BatchItem) -> int:
        """Bytes the item will deliver (one HEAD, or the archive's index)."""
        start, length = _range_of(item, None)
        if item.archpath:
            from .archive import _missing, archive_format, archive_index, list_archive

            if archive_format(item.key) == "tar.gz":
                sizes = {m.name: m.size for m in list_archive(item.client, item.key)}
                total = sizes.get(item.archpath)
            else:
                member = archive_index(item.client, item.key).get(item.archpath)
                total = None if member is None else member.size
            if total is None:
                raise _missing(item.client, item.key, item.archpath)
        else:
            total = item.client.info(item.key).content_length
        _range_of(item, total)
        return min(total - start, length) if length is not None else total - start

    def _fetch(self, item: BatchItem, reserved: int, whole: bool) -> bytes | _Large:
        """The item's bytes; or, if it may exceed ``reserved`` bytes and not ``whole``, its size."""
        start, length = _range_of(item, None)
        if item.archpath:
            from .archive import archive_format, archive_index, read_member

            if not whole and archive_format(item.key) != "tar.gz":
                member = archive_index(item.client, item.key).get(item.archpath)
                if member is not None:
                    want = member.size - start if length is None else min(length, member.size - start)
                    if want > reserved:
                        return _Large(want)
            data = read_member(item.client, item.key, item.archpath)
            _range_of(item, len(data))
            return data[start : None if length is None else start + length]
        if length is not None and (whole or length <= reserved):
            data = item.client.read(item.key, Range(start, length))
            if not data and length and start:  # empty: the range may start past the end
                _range_of(item, item.client.info(item.key).content_length)
            return data
        if whole:
            if start == 0:
                return item.client.read(item.key)
            total = item.client.info(item.key).content_length
            _range_of(item, total)
            return item.client.read(item.key, Range(start, total - start))
        client = item.client
        if start == 0 and length is None and client._io.cache() is None and not client._reads_replicas():
            got = client._io.get_if_smaller(item.key, reserved)  # one GET for a small object
            if isinstance(got, int):
                return _Large(got)
            return got or client.read(item.key)  # an empty object may be a symlink marker
        data = item.client.read(item.key, Range(start, reserved))
        if len(data) < reserved:
            return data
        total = item.client.info(item.key).content_length
        return _Large(total - start if length is None else min(length, total - start))

    def _run(self) -> Iterator[tuple[BatchItemInfo, bytes]]:
        self.stats = stats = BatchStats()
        items = self.items
        known: list[int | None] = [None] * len(items)
        failed: dict[int, BaseException] = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="manystore-getbatch")
        try:
            if not self.streaming_get:
                checks = [pool.submit(self._known_size, item) for item in items]
                for i, check in enumerate(checks):
                    try:
                        known[i] = check.result()
                    except _ITEM_ERRORS as exc:
                        if not self.cont_on_err:
                            raise
                        failed[i] = exc
            yield from self._deliver(pool, known, failed, stats)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _deliver(
        self,
        pool: ThreadPoolExecutor,
        known: list[int | None],
        failed: dict[int, BaseException],
        stats: BatchStats,
    ) -> Iterator[tuple[BatchItemInfo, bytes]]:
        items, budget = self.items, self.byte_budget
        slots: dict[int, _Slot] = {}
        held = 0
        lock = threading.Lock()
        next_submit = head = 0
        ahead = max(4 * self.workers, 64)

        def reserve(n: int) -> None:
            nonlocal held
            with lock:
                held += n
                stats.peak_held_bytes = max(stats.peak_held_bytes, held)

        def submit(i: int, slot: _Slot, whole: bool) -> None:
            slot.done = False
            slot.future = pool.submit(self._fetch, slot.item, slot.reserved, whole)

        while head < len(items):
            # start fetches in order while the budget (and the look-ahead cap) allows
            while next_submit < len(items) and next_submit - head < ahead:
                i = next_submit
                if i in failed:
                    slots[i] = _Slot(items[i], 0, done=True, result=failed[i])
                    next_submit += 1
                    continue
                size = known[i]
                want = size if size is not None else self.probe
                if held + want > budget and i != head:
                    break
                reserve(want)
                slots[i] = _Slot(items[i], want)
                submit(i, slots[i], whole=size is not None)
                next_submit += 1
            # objects larger than their probe: fetch whole when they fit, or when next to deliver
            for i in sorted(j for j, s in slots.items() if s.large is not None and s.future is None):
                slot = slots[i]
                assert slot.large is not None
                if held - slot.reserved + slot.large > budget and i != head:
                    break
                reserve(slot.large - slot.reserved)
                slot.reserved, slot.large = slot.large, None
                stats.refetches += 1
                submit(i, slot, whole=True)
            slot = slots[head]
            if not slot.done and slot.future is not None and slot.future.done():
                self._settle(slot)
            if slot.done:
                del slots[head]
                with lock:
                    held -= slot.reserved
                head += 1
                yield self._outcome(slot, stats)
                continue
            running = [s.future for s in slots.values() if s.future is not None and not s.done]
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for s in slots.values():
                if s.future in finished and not s.done:
                    self._settle(s)
            for s in slots.values():
                if s.done and isinstance(s.result, bytes):
                    with lock:
                        held += len(s.result) - s.reserved
                    s.reserved = len(s.result)

    def _settle(self, slot: _Slot) -> None:
        assert slot.future is not None
        try:
            result = slot.future.result()
        except _ITEM_ERRORS as exc:
            result = exc
        slot.future = None
        if isinstance(result, _Large):
            slot.large = result.size
            return
        slot.result, slot.done = result, True

    def _outcome(self, slot: _Slot, stats: BatchStats) -> tuple[BatchItemInfo, bytes]:
        info = self._info(slot.item)
        stats.items += 1
        if isinstance(slot.result, BaseException):
            if not self.cont_on_err:
                raise slot.result
            stats.errors += 1
            info.err_msg = f"{type(slot.result).__name__}: {slot.result}"
            return info, b""
        data: bytes = slot.result
        info.size = len(data)
        stats.bytes += len(data)
        return info, data

    # ------------------------------------------------------------ delivery
    def get(self, raw: bool = False) -> Iterator[tuple[BatchItemInfo, bytes]] | BatchStream:
        """Fetch the items.

        Args:
            raw: Return one archive stream (``output_format``) instead of pairs.

        Returns:
            An iterator of ``(info, bytes)`` in request order, or (``raw``) a
            :class:`BatchStream` (a readable file object; close it when done).

        Raises:
            Exception: With ``cont_on_err=False``, the first item's failure (e.g.
                :class:`FileNotFoundError`), raised while iterating.
        """
        if raw:
            return BatchStream(self.iter_archive())
        return self._run()

    def __iter__(self) -> Iterator[tuple[BatchItemInfo, bytes]]:
        return self._run()

    def member_name(self, info: BatchItemInfo) -> str:
        """The name of ``info``'s item in the archive stream (``__404__/...`` for a failure)."""
        name = info.obj_name if self.only_obj_name else f"{info.bucket}/{info.obj_name}"
        if info.archpath:
            name = f"{name}/{info.archpath.lstrip('/')}"
        return f"{MISSING_DIR}/{name}" if info.err_msg else name

    def iter_archive(self) -> Iterator[bytes]:
        """The archive stream (``output_format``) of the items, as chunks."""
        if self.output_format == ".zip":
            yield from self._iter_zip()
            return
        chunks = self._iter_tar()
        if self.output_format == ".tar":
            yield from chunks
            return
        gz = zlib.compressobj(6, zlib.DEFLATED, 31)
        for chunk in chunks:
            out = gz.compress(chunk)
            if out:
                yield out
        yield gz.flush()

    def _iter_tar(self) -> Iterator[bytes]:
        for info, data in self._run():
            yield _tarfmt.header(self.member_name(info), len(data))
            yield data
            yield _tarfmt.padding(len(data))
        yield _tarfmt.END

    def _iter_zip(self) -> Iterator[bytes]:
        import zipfile

        sink = _Drain()
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zf:  # type: ignore[call-overload]
            for info, data in self._run():
                zf.writestr(self.member_name(info), data)
                yield sink.take()
        yield sink.take()


class _Drain:
    """A write-only, non-seekable sink whose bytes are taken as they come."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        """Nothing buffered."""

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class BatchStream(io.RawIOBase):
    """A readable file object over a Get-Batch archive stream (``GetBatch.get(raw=True)``).

    Closing it early stops the fetching.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes of the stream into ``buffer``; returns how many (0 at the end)."""
        while not self._buf:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buf = memoryview(chunk)
        n = min(len(buffer), len(self._buf))
        buffer[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        super().close()


def get_batch(
    items: Iterable[ItemSpec],
    *,
    output_format: str = ".tar",
    cont_on_err: bool = True,
    streaming_get: bool = True,
    only_obj_name: bool = False,
    byte_budget: int = DEFAULT_BYTE_BUDGET,
    workers: int = DEFAULT_WORKERS,
) -> GetBatch:
    """A :class:`GetBatch` of ``items``: iterate it for ``(info, bytes)``, or ``.get(raw=True)`` for a stream.

    Example:
        >>> for info, data in get_batch(["s3://b/a.jpg", ("s3://b/shard.tar", "x/1.cls")]):  # doctest: +SKIP
        ...     print(info.obj_name, info.archpath, len(data))
    """
    return GetBatch(
        items,
        output_format=output_format,
        cont_on_err=cont_on_err,
        streaming_get=streaming_get,
        only_obj_name=only_obj_name,
        byte_budget=byte_budget,
        workers=workers,
    )
