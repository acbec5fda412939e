"""Whole-object downloads for the S3 provider: resume after a cut, parallel ranges, MD5 check."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import ChecksumMismatchError, RetryableError
from ._http_range import ranged_get
from ._obstore import S3ProviderError
from ._obstore import translate_error as _translate

__all__ = ["RESUME_GRANULE", "RangedDownloads", "collect_into", "quote_etag", "unquote_etag"]

_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
RESUME_GRANULE = 1 << 20


def _is_md5(etag: str | None) -> bool:
    """True for an S3 ETag that is the MD5 of the content (single-part upload, no SSE-KMS)."""
    return bool(etag) and _MD5_RE.match(etag or "") is not None


class _Hashing:
    """Passes writes to ``fh``, feeding them to ``md5`` too (when given)."""

    def __init__(self, fh: Any, md5: Any) -> None:
        self._fh, self._md5 = fh, md5

    def write(self, data: Any) -> int:
        if self._md5 is not None:
            self._md5.update(data)
        return int(self._fh.write(data) or 0)


class _Appender:
    """A ``write`` that appends to a list (collects parallel ranges for one join)."""

    def __init__(self, parts: list[Any]) -> None:
        self.write = parts.append


def collect_into(parts: list[Any]) -> _Appender:
    """A file-like sink appending each write to ``parts``."""
    return _Appender(parts)


def quote_etag(etag: str) -> str:
    """ETags go on the wire quoted (RFC 9110); ``*`` stays bare."""
    return etag if etag == "*" or etag.startswith(('"', 'W/"')) else f'"{etag}"'


def unquote_etag(etag: str | None) -> str | None:
    """An ETag without its quotes."""
    return etag.strip('"') if etag else etag


class _RangeProbe:
    """The lock first ranged GETs are sent under (one per process: replaced in a forked child)."""

    lock = threading.Lock()

    @classmethod
    def renew(cls) -> None:
        cls.lock = threading.Lock()


_RANGE_PROBE = _RangeProbe
os.register_at_fork(after_in_child=_RangeProbe.renew)


class RangedDownloads:
    """Mixin of :class:`~manystore.providers.s3.S3StorageProvider`: streams a GET result to a
    file object, resuming a cut stream and fetching the rest in parallel ranges."""

    _chunksize: int
    _io_chunksize: int
    _max_concurrency: int

    if TYPE_CHECKING:  # provided by the provider class

        def _url(self, key: str) -> str: ...

        def _obs(self, name: str) -> Any: ...

        _ranges_broken: bool | None
        _read_timeout: float
        _verify: bool | str

    def _read_range(self, key: str, lo: int, hi: int, options: dict[str, Any]) -> Any:
        """Bytes ``[lo, hi)`` (clipped) as a buffer. Servers that answer ranged GETs with
        200 + Content-Range (``rclone serve s3`` up to gofakes3's fix) make obstore fail; for them
        the GET is presigned and sent by :func:`._http_range.ranged_get`, which accepts that answer."""
        if self._ranges_broken is None:
            with _RANGE_PROBE.lock:  # the other threads wait for the answer instead of guessing
                if self._ranges_broken is None:
                    return self._probe_range(key, lo, hi, options)
        if not self._ranges_broken:
            return self._obs("get")(key, options={**options, "range": (lo, hi)}).bytes()
        return self._presigned_range(key, lo, hi, options)

    def _presigned_range(self, key: str, lo: int, hi: int, options: dict[str, Any]) -> bytes:
        url = self._obs("sign")("GET", key, timedelta(minutes=30))
        return ranged_get(
            url, lo, hi, options.get("if_match"), self._url(key), self._read_timeout, self._verify
        )

    def _probe_range(self, key: str, lo: int, hi: int, options: dict[str, Any]) -> Any:
        """The first ranged GET of this provider in this process: learns how the server answers."""
        try:
            data = self._obs("get")(key, options={**options, "range": (lo, hi)}).bytes()
        except Exception as err:
            if "non-partial response" not in str(err):
                raise  # not an answer about ranges: the next ranged GET probes again
            self._ranges_broken = True
            return self._presigned_range(key, lo, hi, options)
        self._ranges_broken = False
        return data

    def _receive(self, key: str, result: Any, fh: Any, part: int | None, verify: bool) -> None:
        """Write the object of GET ``result`` to ``fh`` in order.

        Everything after the first response is pinned to its ETag. A stream cut short is resumed
        with a ranged GET from the byte where it stopped (same ETag), not restarted. Above
        ``multipart_chunksize`` the rest after the first chunk comes as parallel ranged GETs of
        ``part`` bytes (default ``multipart_chunksize``). With ``verify`` and an ETag that is the
        MD5 of the content (single-part uploads), a mismatch raises :class:`ChecksumMismatchError`.
        """
        url = self._url(key)
        meta = result.meta
        size, etag = meta["size"], unquote_etag(meta.get("e_tag"))
        md5 = hashlib.md5(usedforsecurity=False) if verify and _is_md5(etag) else None
        sink = _Hashing(fh, md5)
        limit = size if size <= self._chunksize else min(size, self._io_chunksize)
        received = 0
        try:
            for chunk in result.stream(min_chunk_size=RESUME_GRANULE):  # small: a cut keeps its progress
                sink.write(chunk)
                received += len(chunk)
                if received >= limit:
                    break
        except Exception as err:
            error = _translate(err, url)
            if not isinstance(error, RetryableError) or received == 0:
                raise error
        del result  # drops the connection
        if received < limit:  # cut short: resume from where the stream stopped
            options = {"if_match": quote_etag(etag)} if etag else {}
            try:
                rest = self._read_range(key, received, limit, options)
            except Exception as err:
                raise _translate(err, url)
            sink.write(rest)
            received += len(rest)
        if received < size:
            self._parallel_ranges(key, sink, received, size, etag, part)
        if md5 is not None and md5.hexdigest() != etag:
            raise ChecksumMismatchError(
                f"{url}: downloaded bytes have MD5 {md5.hexdigest()}, the ETag says {etag}"
            )

    def _parallel_ranges(
        self, key: str, fh: Any, start: int, size: int, etag: str | None, part: int | None = None
    ) -> None:
        """Fetch ``[start, size)`` in ``part``-byte ranges (default ``multipart_chunksize``) on a
        thread pool, writing them to ``fh`` in order; every range is pinned to ``etag``."""
        options: dict[str, Any] = {"if_match": quote_etag(etag)} if etag else {}
        part = part or self._chunksize

        def fetch(lo: int) -> Any:
            hi = min(lo + part, size)
            data = self._read_range(key, lo, hi, options)
            if len(data) != hi - lo:
                raise S3ProviderError(f"{self._url(key)}: short read at {lo}: {len(data)} of {hi - lo} bytes")
            return data

        offsets = iter(range(start, size, part))
        pending: deque[Future[Any]] = deque()
        with ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="manystore-s3-get") as pool:
            try:
                for lo in offsets:
                    pending.append(pool.submit(fetch, lo))
                    if len(pending) >= self._max_concurrency:
                        fh.write(pending.popleft().result())
                while pending:
                    fh.write(pending.popleft().result())
            except Exception as err:
                for fut in pending:
                    fut.cancel()
                raise _translate(err, self._url(key))
