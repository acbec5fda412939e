"""The ``dcp_optimized(max_gap_size)`` reader: only the byte ranges a DCP load plan needs.

The ranges of a file are sorted and coalesced (neighbours closer than ``max_gap_size``
share one request), long groups are split into parts of ``part_size`` bytes, and the
parts are fetched concurrently as ranged reads through the profile's client (retries
and all). Readers serve the fetched bytes as zero-copy ``memoryview`` segments: a
:meth:`SegmentReader.view` of one item holds no copy, and ``readinto`` copies straight
from the fetched buffers into the caller's.
"""

from __future__ import annotations

import bisect
import io
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..client import StorageClient
from ..types import Range
from ._ckpt_client import resolve, split_bucket_key

__all__ = [
    "DEFAULT_MAX_GAP_SIZE",
    "DCPOptimizedConstructor",
    "ObjectReader",
    "SegmentReader",
    "coalesce",
    "dcp_optimized",
    "fetch_object",
]

#: Gap between two needed ranges up to which they share one request (as s3torchconnector).
DEFAULT_MAX_GAP_SIZE = 32 << 20
#: Longest single ranged request; longer coalesced groups are split and fetched in parallel.
DEFAULT_PART_SIZE = 16 << 20
#: Gap bytes fetched (to save requests) at most this fraction of the needed bytes, by default.
DEFAULT_MAX_GAP_FRACTION = 0.1
#: Ranged requests in flight.
DEFAULT_MAX_CONCURRENCY = 8
#: Bytes fetched ahead of the file being loaded.
DEFAULT_PREFETCH_BYTES = 512 << 20


def coalesce(
    ranges: Iterable[tuple[int, int]], max_gap_size: float, max_gap_fraction: float | None = None
) -> list[tuple[int, int]]:
    """Sorted ``(start, end)`` ranges, neighbours merged across gaps of at most ``max_gap_size``.

    Empty ranges are dropped; overlapping or touching ones always merge. With
    ``max_gap_fraction``, gaps are merged smallest first only while the gap bytes fetched
    stay within that fraction of the needed bytes (so a load never moves more than
    ``1 + max_gap_fraction`` times the bytes it needs).

    Raises:
        ValueError: A range has ``start < 0`` or ``end < start``.
    """
    spans: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if start < 0 or end < start:
            raise ValueError(f"invalid byte range {start}-{end}: expected 0 <= start <= end")
        if start == end:
            continue
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    gaps = sorted((spans[i + 1][0] - spans[i][1], i) for i in range(len(spans) - 1))
    allowed = math.inf if max_gap_fraction is None else max_gap_fraction * sum(e - s for s, e in spans)
    bridged: set[int] = set()
    spent = 0
    for gap, i in gaps:
        if gap > max_gap_size or spent + gap > allowed:
            break
        spent += gap
        bridged.add(i)
    merged: list[tuple[int, int]] = []
    for i, span in enumerate(spans):
        if merged and i - 1 in bridged:
            merged[-1] = (merged[-1][0], span[1])
        else:
            merged.append(span)
    return merged


def split_parts(groups: Iterable[tuple[int, int]], part_size: int) -> list[tuple[int, int]]:
    """``groups`` cut into consecutive parts of at most ``part_size`` bytes."""
    parts = []
    for start, end in groups:
        while end - start > part_size:
            parts.append((start, start + part_size))
            start += part_size
        parts.append((start, end))
    return parts


class SegmentReader(io.BufferedIOBase):
    """A read-only, seekable view of parts of one object held as ``memoryview`` segments.

    Positions are offsets in the object. Reading bytes no segment holds raises
    :class:`ValueError` naming the range (the load plan did not ask for them).

    Args:
        bucket: Bucket or profile of the object.
        key: Key of the object.
        segments: ``(offset, bytes-like)`` pairs, sorted and non-overlapping.
        start: First position of the view (also the initial position).
        end: End of the view (``None``: the end of the last segment).
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        segments: Sequence[tuple[int, Any]],
        start: int = 0,
        end: int | None = None,
    ) -> None:
        super().__init__()
        self._bucket, self._key = bucket, key
        self._offsets = [off for off, _ in segments]
        self._views = [
            memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf for _, buf in segments
        ]
        self._start = start
        self._end = end if end is not None else (self._offsets[-1] + len(self._views[-1]) if segments else 0)
        self._pos = start

    @property
    def bucket(self) -> str:
        """Bucket or profile of the object."""
        return self._bucket

    @property
    def key(self) -> str:
        """Key of the object."""
        return self._key

    def readable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """Always True."""
        return True

    def tell(self) -> int:
        """Current position, relative to the start of the view."""
        return self._pos - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` (relative to the view's start, the position, or its end)."""
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence!r}: expected SEEK_SET, SEEK_CUR or SEEK_END")
        target = base + offset
        if target < self._start:
            raise ValueError(f"negative seek position {target - self._start}")
        self._pos = target
        return self._pos - self._start

    def readinto(self, buffer: Any) -> int:
        """Copy the next bytes into ``buffer`` (straight from the fetched segments)."""
        dest = memoryview(buffer).cast("B")
        want = min(len(dest), self._end - self._pos)
        done = 0
        while done < want:
            pos = self._pos + done
            i = bisect.bisect_right(self._offsets, pos) - 1
            seg_off = self._offsets[i] if i >= 0 else 0
            if i < 0 or pos >= seg_off + len(self._views[i]):
                raise ValueError(
                    f"{self._bucket}/{self._key}: bytes {pos}-{self._pos + want} were not fetched "
                    "(not in the load plan); use a sequential reader for other access patterns"
                )
            seg = self._views[i][pos - seg_off :]
            n = min(want - done, len(seg))
            dest[done : done + n] = seg[:n]
            done += n
        self._pos += done
        return done

    def read(self, size: int | None = -1) -> bytes:
        """The next ``size`` bytes (all left in the view when ``size`` is -1 or None)."""
        left = self._end - self._pos
        n = left if size is None or size < 0 else min(size, left)
        if n <= 0:
            return b""
        i = bisect.bisect_right(self._offsets, self._pos) - 1
        if i >= 0:  # within one segment: one copy, no scratch buffer
            off = self._pos - self._offsets[i]
            if off + n <= len(self._views[i]):
                self._pos += n
                return self._views[i][off : off + n].tobytes()
        out = bytearray(n)
        got = self.readinto(out)
        return bytes(out[:got])

    def read1(self, size: int = -1) -> bytes:
        """As :meth:`read`."""
        return self.read(size)

    def view(self, offset: int, length: int) -> SegmentReader:
        """A reader of bytes ``offset`` to ``offset + length`` sharing this reader's buffers."""
        return SegmentReader(
            self._bucket,
            self._key,
            list(zip(self._offsets, self._views, strict=True)),
            offset,
            offset + length,
        )


class ObjectReader(SegmentReader):
    """A whole object, fetched on the first read (one request, or parallel parts for a large one).

    Args:
        url: The object's URL or path.
        region: AWS region (``s3://`` URLs only).
        endpoint: S3 endpoint URL (``s3://`` URLs only).
        s3client_config: ``ClientConfig`` options (``s3://`` URLs only).
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        region: str | None = None,
        endpoint: str | None = None,
        s3client_config: Any = None,
    ) -> None:
        bucket, key = split_bucket_key(str(url))
        super().__init__(bucket, key, [])
        self._client, self._path = resolve(url, region, endpoint, s3client_config)
        self._loaded = False
        self._end = -1

    def _load(self) -> None:
        if not self._loaded:
            segments = fetch_object(self._client, self._path)
            self._offsets = [off for off, _ in segments]
            self._views = [memoryview(buf) for _, buf in segments]
            self._end = segments[-1][0] + len(segments[-1][1]) if segments else 0
            self._loaded = True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """As :meth:`SegmentReader.seek` (``SEEK_END`` fetches the object first)."""
        if whence == io.SEEK_END:
            self._load()
        return super().seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        """Copy the next bytes into ``buffer`` (fetching the object on first use)."""
        self._load()
        return super().readinto(buffer)

    def read(self, size: int | None = -1) -> bytes:
        """The next ``size`` bytes (fetching the object on first use)."""
        self._load()
        return super().read(size)


def fetch_object(
    client: StorageClient,
    path: str,
    part_size: int = DEFAULT_PART_SIZE,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> list[tuple[int, bytes]]:
    """A whole object as ``(offset, bytes)`` segments: one GET up to ``part_size``, else parallel
    ranged GETs of ``part_size`` bytes (sized by one HEAD), kept as fetched (no join copy).

    Raises:
        FileNotFoundError: No object at ``path``.
        OSError: The object changed size while it was fetched.
    """
    size = client.info(path).content_length
    if size <= part_size:
        data = client.read(path)
        return [(0, data)] if data else []
    parts = split_parts([(0, size)], part_size)
    with ThreadPoolExecutor(min(max_concurrency, len(parts)), thread_name_prefix="manystore-obj") as pool:
        futures = [pool.submit(client.read, path, Range(offset=s, size=e - s)) for s, e in parts]
        segments = [(s, f.result()) for (s, _), f in zip(parts, futures, strict=True)]
    got = sum(len(b) for _, b in segments)
    if got != size:
        raise OSError(
            f"{client.url_prefix}{path}: fetched {got} bytes, expected {size} (changed while read?)"
        )
    return segments


class _Fetch:
    """The parts of one file, being fetched."""

    def __init__(self, path: str, parts: list[tuple[int, int]], whole: bool = False) -> None:
        self.path, self.parts, self.whole = path, parts, whole
        self.futures: list[Future[bytes]] = []
        self.nbytes = sum(e - s for s, e in parts)


class DCPOptimizedConstructor:
    """Builds readers that fetch only the planned ranges of DCP checkpoint files.

    Called as ``constructor(client, path)`` (the convention of manystore's reader
    constructors), it returns a :class:`SegmentReader` over the ranges registered for that
    file by :meth:`set_item_ranges_by_file`, fetched concurrently; with no ranges
    registered, an :class:`ObjectReader` of the whole file.

    Args:
        max_gap_size: Needed ranges at most this far apart share one request.
        part_size: Longest single request.
        max_concurrency: Requests in flight.
        prefetch_bytes: Bytes fetched ahead of the file being consumed.
        max_gap_fraction: Gap bytes merged (smallest gaps first) at most this fraction of
            the needed bytes; ``None``: every gap up to ``max_gap_size``.

    Raises:
        TypeError, ValueError: A size or count that is not a non-negative number.
    """

    def __init__(
        self,
        max_gap_size: float = DEFAULT_MAX_GAP_SIZE,
        part_size: int = DEFAULT_PART_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        prefetch_bytes: int = DEFAULT_PREFETCH_BYTES,
        max_gap_fraction: float | None = DEFAULT_MAX_GAP_FRACTION,
    ) -> None:
        if max_gap_fraction is not None and (
            isinstance(max_gap_fraction, bool)
            or not isinstance(max_gap_fraction, (int, float))
            or max_gap_fraction < 0
        ):
            raise ValueError(f"max_gap_fraction must be None or a number >= 0, got {max_gap_fraction!r}")
        self.max_gap_fraction = max_gap_fraction
        if isinstance(max_gap_size, bool) or not isinstance(max_gap_size, (int, float)):
            raise TypeError(f"max_gap_size must be an int or float, got {type(max_gap_size).__name__}")
        if max_gap_size < 0:
            raise ValueError(f"max_gap_size must be >= 0, got {max_gap_size!r}")
        for name, value, low in (("part_size", part_size, 1), ("max_concurrency", max_concurrency, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if isinstance(prefetch_bytes, bool) or not isinstance(prefetch_bytes, int) or prefetch_bytes < 0:
            raise ValueError(f"prefetch_bytes must be an int >= 0, got {prefetch_bytes!r}")
        self.max_gap_size = max_gap_size
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.prefetch_bytes = prefetch_bytes
        self._ranges_by_file: dict[str, list[tuple[int, int]]] = {}

    def __repr__(self) -> str:
        return f"dcp_optimized(max_gap_size={self.max_gap_size!r})"

    def set_item_ranges_by_file(
        self, plan_items: Sequence[Any], storage_data: dict[Any, Any], base_path: Any
    ) -> None:
        """Register the byte ranges of a DCP load plan (``ReadItem``s and their ``_StorageInfo``).

        Args:
            plan_items: The plan's ``ReadItem`` list.
            storage_data: ``MetadataIndex`` -> ``_StorageInfo`` of the checkpoint's metadata.
            base_path: The checkpoint's URL; files are keyed by ``base_path/relative_path``.
        """
        base = str(base_path).rstrip("/")
        ranges: dict[str, list[tuple[int, int]]] = {}
        for item in plan_items:
            info = storage_data[item.storage_index]
            ranges.setdefault(f"{base}/{info.relative_path}", []).append(
                (info.offset, info.offset + info.length)
            )
        self._ranges_by_file = ranges

    def ranges_for(self, url: str) -> list[tuple[int, int]] | None:
        """The registered ranges of ``url`` (``None`` if none were registered)."""
        return self._ranges_by_file.get(str(url))

    def __call__(self, client: StorageClient, path: str, url: str | None = None) -> SegmentReader:
        """A reader of ``path`` (served by ``client``) over its registered ranges.

        Args:
            client: The client of the file's profile.
            path: The key of the file within the profile.
            url: The file's URL, under which its ranges were registered (default
                ``client.url_prefix + path``).
        """
        url = url if url is not None else client.url_prefix + path
        ranges = self.ranges_for(url)
        if ranges is None:
            return ObjectReader(url)
        return next(self.readers(client, [(path, ranges)], url_of=lambda _p: url))[1]

    def readers(
        self,
        client: StorageClient,
        files: Sequence[tuple[str, Sequence[tuple[int, int]]]],
        url_of: Callable[[str], str] | None = None,
        sizes: dict[str, int] | None = None,
    ) -> Iterator[tuple[str, SegmentReader]]:
        """Readers of ``files`` (``(path, ranges)``), in order, their parts fetched ahead concurrently.

        At most ``prefetch_bytes`` beyond the file being consumed are requested ahead (the
        file being consumed is always fetched whole). A reader's buffers are released
        when the caller drops it. A file whose needed span is all of it (its size known
        from ``sizes``) and fits in one part is read with a plain GET: many servers answer
        a range covering the whole object with ``200``, which would cost a second request.
        Larger files are fetched as parallel ranged parts like any other span (faster than
        one whole-object read, which streams a first chunk and joins the rest).
        """
        sizes = sizes or {}
        fetches = []
        for path, r in files:
            groups = coalesce(r, self.max_gap_size, self.max_gap_fraction)
            whole = groups == [(0, sizes.get(path, -1))] and groups[0][1] <= self.part_size
            fetches.append(_Fetch(path, groups if whole else split_parts(groups, self.part_size), whole))
        url_of = url_of or (lambda p: client.url_prefix + p)
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="manystore-dcp") as pool:
            submitted = 0  # index of the next file whose parts are not yet submitted
            ahead = 0  # bytes submitted for files after the current one
            try:
                for index, fetch in enumerate(fetches):
                    if submitted <= index:
                        self._submit(pool, client, fetch)
                        submitted = index + 1
                    else:
                        ahead -= fetch.nbytes
                    while (
                        submitted < len(fetches) and ahead + fetches[submitted].nbytes <= self.prefetch_bytes
                    ):
                        self._submit(pool, client, fetches[submitted])
                        ahead += fetches[submitted].nbytes
                        submitted += 1
                    segments = [(s, f.result()) for (s, _), f in zip(fetch.parts, fetch.futures, strict=True)]
                    fetch.futures = []
                    bucket, key = split_bucket_key(url_of(fetch.path))
                    yield fetch.path, SegmentReader(bucket, key, segments)
            finally:
                for fetch in fetches:
                    for future in fetch.futures:
                        future.cancel()

    @staticmethod
    def _submit(pool: ThreadPoolExecutor, client: StorageClient, fetch: _Fetch) -> None:
        if fetch.whole:
            fetch.futures = [pool.submit(client.read, fetch.path)]
            return
        fetch.futures = [
            pool.submit(client.read, fetch.path, Range(offset=s, size=e - s)) for s, e in fetch.parts
        ]


def dcp_optimized(
    max_gap_size: float = DEFAULT_MAX_GAP_SIZE, max_gap_fraction: float | None = DEFAULT_MAX_GAP_FRACTION
) -> DCPOptimizedConstructor:
    """The reader constructor for DCP loads: coalesced, concurrent ranged reads of planned bytes.

    Args:
        max_gap_size: Needed ranges at most this many bytes apart share one request. Default
            32 MiB (as s3torchconnector).
        max_gap_fraction: Gaps are bridged smallest first while the bridged bytes stay within
            this fraction of the needed bytes (default 0.1: a load moves at most 1.1 times the
            bytes it needs); ``None`` bridges every gap up to ``max_gap_size``
            (``dcp_optimized(float("inf"), None)``: one request per file).
    """
    return DCPOptimizedConstructor(max_gap_size, max_gap_fraction=max_gap_fraction)
