"""Writing archives as a stream into ``client.open(key, "wb")``, and appending to them.

The archive bytes go straight into the core's streaming writer (a multipart upload on
S3 and GCS, a temp file renamed on close for a local directory): nothing is visible
until :meth:`ArchiveWriter.close`, and nothing is stored if the ``with`` block raises.
(On a provider without a streaming writer, e.g. Azure here, the core spools the upload:
memory up to 8 MiB, then a temp file.)

A tar gets a sidecar index ``<key>.idx`` (see :mod:`manystore.batch._archindex`) written
after the archive, so a reader needs no scan. Appending makes a new object: the old tar's
bytes up to its end marker are copied with ranged GETs pinned to its ETag, then the new
members follow; a zip or tar.gz is re-read member by member and rewritten.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Union

from ..types import Range
from . import _archindex, _tarfmt
from ._archindex import SIDECAR_SUFFIX, ArchiveIndex, ArchiveMember

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["ArchiveWriter", "MemberData", "ObjectSource", "write_archive"]

_COPY_CHUNK = 8 << 20
_STREAM_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectSource:
    """Member content taken from an object (streamed, never held whole).

    Attributes:
        client: The profile's client.
        key: The object's key.
    """

    client: StorageClient
    key: str


#: What a member's content may be: bytes, ``(file object, size)``, or an :class:`ObjectSource`.
MemberData = Union[bytes, bytearray, memoryview, tuple[IO[bytes], int], ObjectSource]  # noqa: UP007 (3.10 runtime alias)


class _Counted:
    """A write-only file over the destination that knows how many bytes went through."""

    def __init__(self, dest: IO[bytes]) -> None:
        self._dest = dest
        self.pos = 0

    def write(self, data: Any) -> int:
        n = len(data)
        self._dest.write(data)
        self.pos += n
        return n

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        """Nothing to do: the destination buffers."""


class _Limited(io.RawIOBase):
    """Exactly ``size`` bytes of ``src`` (a short source is an error, not silent padding)."""

    def __init__(self, src: IO[bytes], size: int, name: str) -> None:
        self._src, self._left, self._name = src, size, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        data = self._src.read(len(view))
        if not data:
            raise OSError(f"member {self._name!r}: its source ended {self._left} bytes early")
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)


class ArchiveWriter:
    """Stream an archive (tar, tar.gz, zip) into an object, member by member.

    Use as a context manager; ``close()`` (or leaving the ``with`` block) completes the
    object, an exception in the block stores nothing.

    Args:
        client: The profile's client.
        key: The archive object's key.
        fmt: ``"tar"``, ``"tar.gz"`` (``"tgz"``) or ``"zip"``; default from ``key``'s suffix.
        allow_append: Keep the members of an existing archive at ``key`` and add after
            them (a new object replaces it atomically). Without it an existing object is
            replaced.
        index: Write the sidecar index ``<key>.idx`` for a tar (ignored by ``tarfile``;
            lets readers skip scanning).
        compression: Zip only: ``zipfile.ZIP_STORED`` (default) or ``ZIP_DEFLATED``.

    Raises:
        ValueError: An unknown format, or ``compression`` for a non-zip archive.
    """

    def __init__(
        self,
        client: StorageClient,
        key: str,
        fmt: str | None = None,
        *,
        allow_append: bool = False,
        index: bool = True,
        compression: int | None = None,
    ) -> None:
        import tarfile
        import zipfile

        from .archive import archive_format

        self.client, self.key = client, key
        self.fmt = archive_format(key, fmt)
        if compression is not None and self.fmt != "zip":
            raise ValueError(
                f"compression={compression!r} applies to zip archives only; {key!r} is a {self.fmt}"
            )
        self._index = index and self.fmt == "tar"
        self._members: list[ArchiveMember] = []
        #: The tar's index once :meth:`close` wrote it (None for zip, tar.gz or ``index=False``).
        self.written_index: ArchiveIndex | None = None
        self._broken = False
        self._names: set[str] = set()
        old = self._existing() if allow_append else None
        self._file: IO[bytes] = client.open(key, "wb")  # type: ignore[assignment]
        self._out = _Counted(self._file)
        self._tar: tarfile.TarFile | None = None
        self._zip: zipfile.ZipFile | None = None
        try:
            if self.fmt == "zip":
                self._zip = zipfile.ZipFile(self._out, "w", compression or zipfile.ZIP_STORED)  # type: ignore[call-overload]
            elif self.fmt == "tar.gz":
                self._tar = tarfile.open(fileobj=self._out, mode="w|gz", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
            else:
                if old is not None:
                    self._copy_tar(old)
                self._tar = tarfile.open(fileobj=self._out, mode="w", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
            if old is not None and self.fmt != "tar":
                self._copy_members()
        except BaseException:
            self._file.__exit__(*sys.exc_info())
            raise

    # ------------------------------------------------------------- appending
    def _existing(self) -> ArchiveIndex | bool | None:
        """The old tar's index (fresh), True for an existing zip/tar.gz, None if there is none."""
        try:
            self.client._io.head(self.key)
        except FileNotFoundError:
            return None
        if self.fmt != "tar":
            return True
        from .archive import archive_index

        return archive_index(self.client, self.key, fresh=True)

    def _copy_tar(self, old: ArchiveIndex | bool) -> None:
        assert isinstance(old, ArchiveIndex)
        for start in range(0, old.end, _COPY_CHUNK):
            size = min(_COPY_CHUNK, old.end - start)
            data = self.client._io.get_range(self.key, Range(start, size), old.etag)
            if len(data) != size:
                raise OSError(f"{self.client.url_prefix}{self.key}: changed while being appended to")
            self._out.write(data)
        self._members.extend(old.members)
        self._names.update(m.name for m in old.members)

    def _copy_members(self) -> None:
        from .archive import iter_members

        for member, data in iter_members(self.client, self.key, fmt=self.fmt):
            self.add(member.name, data)

    # --------------------------------------------------------------- writing
    def add(self, name: str, data: MemberData, *, mtime: float | None = None) -> None:
        """Append member ``name`` with content ``data`` (bytes, ``(file, size)`` or :class:`ObjectSource`).

        A source that fails before its first byte (e.g. a missing :class:`ObjectSource`,
        :class:`FileNotFoundError`) leaves the writer usable, so the caller may skip the
        member and go on; a failure mid-member breaks the archive: the writer then refuses
        further use and stores nothing.

        Raises:
            ValueError: Closed or broken writer, an empty ``name``, or a negative size.
            TypeError: ``data`` of another type.
        """
        if self._file.closed or self._broken:
            raise ValueError(f"ArchiveWriter for {self.key!r} is {'broken' if self._broken else 'closed'}")
        if not name or name.startswith("/"):
            raise ValueError(f"member name {name!r}: expected a non-empty relative path")
        stamp = time.time() if mtime is None else mtime
        if isinstance(data, ObjectSource):
            meta = data.client.info(data.key)
            with data.client.open(data.key, "rb", prefetch_file=False) as src:
                self._add_stream(name, src, meta.content_length, stamp)  # type: ignore[arg-type]
            return
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._add_stream(name, io.BytesIO(bytes(data)), len(data), stamp)
            return
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[1], int):
            if data[1] < 0:
                raise ValueError(f"member {name!r}: size {data[1]} must be >= 0")
            self._add_stream(name, data[0], data[1], stamp)
            return
        raise TypeError(
            f"member {name!r}: data of type {type(data).__name__}; expected bytes, (file, size) or ObjectSource"
        )

    def _add_stream(self, name: str, src: IO[bytes], size: int, mtime: float) -> None:
        try:
            self._write_member(name, src, size, mtime)
        except BaseException:
            self._broken = True
            self.abort()
            raise

    def _write_member(self, name: str, src: IO[bytes], size: int, mtime: float) -> None:
        import tarfile
        import zipfile

        body = io.BufferedReader(_Limited(src, size, name), _STREAM_CHUNK)
        if self._zip is not None:
            zinfo = zipfile.ZipInfo(name, time.localtime(max(mtime, 315532800))[:6])
            zinfo.compress_type = self._zip.compression
            zinfo.file_size = size
            with self._zip.open(zinfo, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as dst:
                while chunk := body.read(_STREAM_CHUNK):
                    dst.write(chunk)
            return
        assert self._tar is not None
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, int(mtime), 0o644
        start = self._tar.offset
        self._tar.addfile(info, body)
        if self.fmt == "tar":
            data_offset = self._tar.offset - _tarfmt.padded(size)
            if name not in self._names:
                self._members.append(ArchiveMember(name, size, data_offset, start, size))
                self._names.add(name)

    # --------------------------------------------------------------- closing
    def close(self) -> ArchiveIndex | None:
        """Complete the archive object (and, for a tar, its sidecar index); returns the tar's index."""
        if self._file.closed:
            return None
        end = 0
        if self._tar is not None:
            end = self._tar.offset
            self._tar.close()
        if self._zip is not None:
            self._zip.close()
        self._file.close()
        _archindex.forget(self.client, self.key)
        if not self._index:
            return None
        meta = self.client.info(self.key)
        index = ArchiveIndex("tar", meta.content_length, meta.etag, end, list(self._members), "written")
        self.client.write(self.key + SIDECAR_SUFFIX, _archindex.sidecar_bytes(index))
        _archindex.remember(self.client, self.key, index)
        self.written_index = index
        return index

    def abort(self) -> None:
        """Store nothing (an open multipart upload is aborted)."""
        if not self._file.closed:
            self._file.abort()  # type: ignore[attr-defined]

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def write_archive(
    client: StorageClient,
    key: str,
    members: Iterable[tuple[str, MemberData]],
    fmt: str | None = None,
    *,
    allow_append: bool = False,
    index: bool = True,
) -> ArchiveIndex | None:
    """Write ``members`` (``(name, data)`` pairs) as an archive at ``key`` (see :class:`ArchiveWriter`).

    Returns:
        The tar's index (None for zip and tar.gz, or with ``index=False``).
    """
    with ArchiveWriter(client, key, fmt, allow_append=allow_append, index=index) as writer:
        for name, data in members:
            writer.add(name, data)
    return writer.written_index
