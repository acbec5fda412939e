"""Applying registered transforms: stage chaining, and readers that transform inline.

:func:`run_stages` passes an object's content through an ETL and its pipeline, giving
each stage what it asks for (bytes, or a binary file) and checking the stages'
``obj_timeout``. :class:`EtlObjectReader` is what ``Object.get_reader(etl=...)`` returns:
``read_all``, iteration and ``as_file`` deliver the transformed content, while the source
is read as by :class:`~manystore.batch.ObjectReader` (pinned to its ETag; ``as_file``
resumes a broken source stream).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ..providers.base import BaseStorageProvider
from .etl import _INSTANCES, _LOCK, Etl, Registration, lookup
from .reader import ObjectFileReader, ObjectReader, _Source

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = [
    "ETLConfig",
    "EtlObjectReader",
    "IterFile",
    "etl_args_text",
    "local_path_of",
    "resolve_stages",
    "run_stages",
]

#: Bytes per chunk when a transform's file output is iterated.
OUTPUT_CHUNK = 1 << 20


@dataclass
class ETLConfig:
    """An ETL to apply to a read, a copy or a URL (as the SDK's ``ETLConfig``).

    Attributes:
        name: The ETL's name, or an :class:`Etl` (possibly a pipeline ``a >> b``).
        args: Per-request arguments: a string, or a dict (sent as compact JSON).
    """

    name: str | Etl | None = None
    args: str | dict[str, Any] | None = None


def etl_args_text(args: str | dict[str, Any] | None) -> str:
    """The SDK's wire form of ``args``: a dict as compact JSON, a string as is, None as ``""``."""
    if args is None:
        return ""
    if isinstance(args, dict):
        return json.dumps(args, separators=(",", ":"))
    return str(args)


def resolve_stages(
    etl: Any, location: str | None, extra: list[str] | None = None
) -> tuple[list[Registration], str]:
    """The registrations of an ``ETLConfig`` / :class:`Etl` / name (plus ``extra`` names), and its args text.

    Raises:
        TypeError: ``etl`` is none of these.
        LookupError: A name is not registered.
        RuntimeError: An ETL is stopped.
    """
    args: Any = None
    target = etl
    if not isinstance(etl, (str, Etl)) and hasattr(etl, "name"):  # ETLConfig (ours or the SDK's)
        target, args = etl.name, getattr(etl, "args", None)
    if isinstance(target, str):
        names = [target]
    elif hasattr(target, "name") and hasattr(target, "pipeline"):
        names = [target.name, *target.pipeline]
    else:
        raise TypeError(f"etl={etl!r}: expected an ETLConfig, an Etl or an ETL name")
    names += list(extra or [])
    return [lookup(n, location) for n in names], etl_args_text(args)


def _instance(reg: Registration) -> Any:
    with _LOCK:
        obj = _INSTANCES.get(reg.name)
        if obj is not None and type(obj) is reg.target:
            return obj
        for key, value in reg.env.items():
            os.environ[key] = value
        obj = _INSTANCES[reg.name] = reg.target()
        return obj


class IterFile(io.RawIOBase):
    """A read-only binary file over an iterable of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks, self._rest = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        """Read up to ``len(b)`` bytes of the stream into ``b``; returns how many (0 at the end)."""
        while not self._rest:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._rest = bytes(nxt)
        n = min(len(b), len(self._rest))
        b[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def _as_chunks(out: Any, reg: Registration) -> Iterator[bytes]:
    if isinstance(out, (bytes, bytearray, memoryview)):
        yield bytes(out)
    elif hasattr(out, "read"):
        yield from iter(lambda: out.read(OUTPUT_CHUNK), b"")
    elif isinstance(out, Iterable) and not isinstance(out, str):
        for chunk in out:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"ETL {reg.name!r} yielded {type(chunk).__name__}; expected bytes")
            yield bytes(chunk)
    else:
        raise TypeError(f"ETL {reg.name!r} returned {type(out).__name__}; expected bytes, chunks or a file")


def _call(reg: Registration, data: Any, path: str, args: str) -> Any:
    if reg.kind == "class":
        obj = _instance(reg)
        method = obj.transform_stream if reg.streaming else obj.transform
        return method(data, path, args)
    fn = reg.target
    if reg.arity == 1:
        return fn(data)
    if reg.arity == 2:
        return fn(data, args)
    return fn(data, path, args)


def run_stages(
    stages: list[Registration], data: bytes | BinaryIO | ObjectFileReader | str, path: str, args: str
) -> Iterator[bytes]:
    """Apply ``stages`` in order to an object's content; yields the output's chunks.

    ``data`` is its bytes, a binary file over them, or (only with the first stage's
    ``direct_file_access``) its local path. Each stage gets what it asks for: bytes for a
    buffered transform, a file for a streaming one.

    Raises:
        TypeError: A stage returned something other than bytes, chunks or a file.
        TimeoutError: The stages took longer than the sum of their ``obj_timeout``.
    """
    start = time.monotonic()
    limit = sum(reg.obj_timeout for reg in stages)
    current: Any = data
    for i, reg in enumerate(stages):
        if isinstance(current, str) and not (i == 0 and reg.direct_file_access):
            with open(current, "rb") as fh:
                current = fh.read()
        if reg.streaming and not isinstance(current, str):
            if isinstance(current, (bytes, bytearray)):
                current = io.BytesIO(current)
            elif not hasattr(current, "read"):
                current = io.BufferedReader(IterFile(current))
        elif not reg.streaming and not isinstance(current, (bytes, str)):
            current = current.read() if hasattr(current, "read") else b"".join(current)
        out = _call(reg, current, path, args)
        current = out if isinstance(out, bytes) else _as_chunks(out, reg)
    chunks = [current] if isinstance(current, bytes) else current
    for chunk in chunks:
        if time.monotonic() - start > limit:
            raise TimeoutError(f"ETL {stages[0].name!r} on {path}: took more than obj_timeout={limit:g}s")
        yield chunk
    if time.monotonic() - start > limit:
        raise TimeoutError(f"ETL {stages[0].name!r} on {path}: took more than obj_timeout={limit:g}s")


def local_path_of(client: StorageClient, key: str) -> str | None:
    """The local file behind ``key`` on a POSIX profile, else None."""
    sp = client._storage_provider
    if not isinstance(sp, BaseStorageProvider):
        return None
    physical = client._io.physical(key) if client._metadata_provider is not None else key
    return sp.local_path(physical)


def source_input(
    client: StorageClient, source: _Source, first: Registration, max_resume: int
) -> bytes | BinaryIO | ObjectFileReader | str:
    """What the first stage gets for ``source``: its local path, a resuming file, or its bytes."""
    if first.direct_file_access:
        local = local_path_of(client, source.key)
        if local is not None:
            return local
    reader = ObjectFileReader(source, max_resume)
    return reader if first.streaming else reader.read()


class _TransformedSource(_Source):
    """The transformed content of an object as a source of chunks (read once, from the start)."""

    def __init__(
        self, inner: _Source, stages: list[Registration], args: str, url: str, max_resume: int
    ) -> None:
        super().__init__(inner.client, inner.key, inner.meta, 0, inner.end, inner.chunk, 1)
        self._inner, self._stages, self._args = inner, stages, args
        self._url, self._max_resume = url, max_resume

    def chunks(self, offset: int) -> Iterator[bytes]:
        if offset:
            raise ValueError(f"{self._url}: a transformed read cannot restart at offset {offset}")
        data = source_input(self.client, self._inner, self._stages[0], self._max_resume)
        yield from run_stages(self._stages, data, self._url, self._args)


class EtlObjectReader(ObjectReader):
    """An :class:`~manystore.batch.ObjectReader` whose content is the object transformed by an ETL.

    ``read_all``, iteration (chunks of ``chunk_size``), ``as_file`` and ``raw`` deliver the
    output; ``head``/``attributes`` describe the source object. The source is read pinned
    to its ETag; ``as_file(max_resume=)`` resumes a broken source stream.

    Args:
        client: The profile's client.
        key: The source object's key.
        url: The source object's URL (the transform's ``path``).
        chunk_size: Bytes per source GET and per iterated output chunk.
        stages: The ETL and its pipeline.
        args: The ETL arguments (``""`` when none).
    """

    def __init__(
        self,
        client: StorageClient,
        key: str,
        url: str,
        chunk_size: int,
        stages: list[Registration],
        args: str,
    ) -> None:
        super().__init__(client, key, url, None, chunk_size, 1)
        self._stages, self._args = stages, args

    def _transformed(self, max_resume: int, buffer_size: int | None = None) -> _TransformedSource:
        return _TransformedSource(self._source(buffer_size), self._stages, self._args, self._url, max_resume)

    def read_all(self) -> bytes:
        """The whole transformed content in memory.

        Raises:
            FileNotFoundError: The object does not exist.
            TimeoutError: The transform took longer than its ``obj_timeout``.
        """
        return b"".join(self._transformed(0).chunks(0))

    def __iter__(self) -> Iterator[bytes]:
        """The transformed content in chunks of ``chunk_size`` bytes (the last may be shorter)."""
        pending = b""
        for chunk in self._transformed(0).chunks(0):
            pending += chunk
            while len(pending) >= self._chunk_size:
                yield pending[: self._chunk_size]
                pending = pending[self._chunk_size :]
        if pending:
            yield pending

    def as_file(self, buffer_size: int | None = None, max_resume: int | None = 5) -> ObjectFileReader:
        """A read-only file over the transformed content; the source read resumes up to ``max_resume`` times.

        Raises:
            ValueError: ``max_resume`` is negative or ``buffer_size`` not positive.
        """
        resumes = 5 if max_resume is None else max_resume
        if not isinstance(resumes, int) or resumes < 0:
            raise ValueError(f"max_resume={max_resume!r}: expected a non-negative integer")
        if buffer_size is not None and buffer_size < 1:
            raise ValueError(f"buffer_size={buffer_size!r}: expected a positive number of bytes")
        return ObjectFileReader(self._transformed(resumes, buffer_size), 0)
