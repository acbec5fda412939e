"""Archives (tar, tar.gz, zip) on any backend: list members, read one or many, write, append.

Reading one member of an uncompressed tar or of a zip costs **one ranged GET** once the
archive's index is known (see :mod:`manystore.batch._archindex`): archives manystore
writes carry a sidecar index ``<key>.idx``; a foreign tar is indexed once by reading only
its headers; a zip's central directory is its index. A tar.gz has no random access: it is
streamed from its start. Writing (:class:`ArchiveWriter`, :func:`write_archive`) streams
into ``client.open(key, "wb")``. See ``docs/batch-archives.md``.

These are plain functions over a :class:`~manystore.StorageClient` and a key; the SDK
classes (``Object.get_reader(archive_config=...)``, ``Bucket.list_archive``) call them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from ..errors import ObjectNotFoundError, PreconditionFailedError
from ..types import Range
from . import _archindex, _tarfmt, _zip
from ._archindex import ArchiveIndex, ArchiveMember, ScanPolicy
from ._archwrite import ArchiveWriter, ObjectSource, write_archive

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = [
    "ArchiveConfig",
    "ArchiveIndex",
    "ArchiveMember",
    "ArchiveMemberNotFoundError",
    "ArchiveMode",
    "ArchiveWriter",
    "ObjectSource",
    "ScanPolicy",
    "archive_format",
    "archive_index",
    "extract",
    "extract_stream",
    "iter_members",
    "list_archive",
    "read_member",
    "write_archive",
]

_T = TypeVar("_T")
_FORMATS = {".tar": "tar", ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".zip": "zip"}
#: Members read together in one GET when they are at most this far apart...
_COALESCE_GAP = 256 << 10
#: ...and the GET stays under this size.
_COALESCE_SPAN = 64 << 20


class ArchiveMode(str, Enum):
    """How :attr:`ArchiveConfig.regex` selects members (the AIStore SDK's names)."""

    REGEXP = "regexp"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    SUBSTR = "substr"
    WDSKEY = "wdskey"


def _wds_key(name: str) -> str:
    head, _, base = name.rpartition("/")
    stem = base.split(".", 1)[0]
    return f"{head}/{stem}" if head else stem


@dataclass(frozen=True)
class ArchiveConfig:
    """Which member(s) of an archive object to read.

    Attributes:
        archpath: One member, by its path in the archive.
        regex: Selects possibly several members, interpreted per ``mode``.
        mode: ``regexp`` (``re.search``), ``prefix``, ``suffix``, ``substr``, or
            ``wdskey`` (WebDataset key: the path up to the first dot of the base name,
            so ``"a/001"`` selects ``a/001.jpg`` and ``a/001.cls``).

    Raises:
        ValueError: ``mode`` without ``regex`` or the reverse, both ``regex`` and
            ``archpath``, an unknown mode, or an invalid regular expression.
    """

    archpath: str = ""
    regex: str = ""
    mode: ArchiveMode | str | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and not isinstance(self.mode, ArchiveMode):
            try:
                object.__setattr__(self, "mode", ArchiveMode(getattr(self.mode, "value", self.mode)))
            except ValueError:
                modes = [m.value for m in ArchiveMode]
                raise ValueError(f"ArchiveConfig mode={self.mode!r}: expected one of {modes}") from None
        if self.mode is not None and not self.regex:
            raise ValueError(f"ArchiveConfig mode={ArchiveMode(self.mode).value!r} needs a regex")
        if self.regex and self.mode is None:
            raise ValueError(
                f"ArchiveConfig regex={self.regex!r} needs a mode (one of {[m.value for m in ArchiveMode]})"
            )
        if self.regex and self.archpath:
            raise ValueError(
                f"ArchiveConfig got both archpath={self.archpath!r} and regex={self.regex!r}; pass one"
            )
        if self.mode is ArchiveMode.REGEXP:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(
                    f"ArchiveConfig regex={self.regex!r}: not a regular expression ({exc})"
                ) from None

    def matches(self, name: str) -> bool:
        """True if member ``name`` is selected."""
        if self.archpath:
            return name == self.archpath
        mode, pattern = self.mode, self.regex
        if mode is ArchiveMode.REGEXP:
            return re.search(pattern, name) is not None
        if mode is ArchiveMode.PREFIX:
            return name.startswith(pattern)
        if mode is ArchiveMode.SUFFIX:
            return name.endswith(pattern)
        if mode is ArchiveMode.SUBSTR:
            return pattern in name
        if mode is ArchiveMode.WDSKEY:
            return _wds_key(name) == pattern
        return True


class ArchiveMemberNotFoundError(ObjectNotFoundError):
    """The archive has no member of that name (also a :class:`FileNotFoundError`)."""


def archive_format(key: str, fmt: str | None = None) -> str:
    """``"tar"``, ``"tar.gz"`` or ``"zip"``: ``fmt`` if given (``".tgz"`` etc.), else from ``key``'s suffix.

    Raises:
        ValueError: Neither names a supported format.
    """
    if fmt is not None:
        name = fmt if fmt.startswith(".") else "." + fmt
        if name.lower() in _FORMATS:
            return _FORMATS[name.lower()]
        raise ValueError(f"archive format {fmt!r}: expected one of {sorted(_FORMATS)}")
    lower = key.lower()
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if lower.endswith(suffix):
            return _FORMATS[suffix]
    raise ValueError(
        f"{key!r}: cannot tell the archive format; expected a name ending in {sorted(_FORMATS)} or fmt="
    )


def archive_index(
    client: StorageClient,
    key: str,
    fmt: str | None = None,
    scan: ScanPolicy | None = None,
    *,
    fresh: bool = False,
) -> ArchiveIndex:
    """The index of the tar or zip at ``key``: remembered, or built now (see the module docs).

    Args:
        client: The profile's client.
        key: The archive object's key.
        fmt: Its format, when its name does not tell.
        scan: How to walk a foreign tar's headers.
        fresh: Ignore a remembered index and rebuild it.

    Raises:
        ValueError: ``key`` is a tar.gz (it has no index) or not a valid archive.
        FileNotFoundError: No object at ``key``.
    """
    kind = archive_format(key, fmt)
    if kind == "tar.gz":
        raise ValueError(f"{key!r} is a tar.gz: it has no index (members are read by streaming it)")
    index = None if fresh else _archindex.lookup(client, key)
    if index is None or index.fmt != kind:
        index = _archindex.build_index(client, key, kind, scan)
    return index


class _Stale(Exception):
    pass


def _fetch(client: StorageClient, key: str, index: ArchiveIndex, start: int, size: int) -> bytes:
    try:
        data = client._io.get_range(key, Range(start, size), index.etag)
    except PreconditionFailedError:
        raise _Stale() from None
    if len(data) != size:
        raise _Stale()
    return data


def _tar_members(buf: bytes, base: int, wanted: list[ArchiveMember]) -> Iterator[tuple[ArchiveMember, bytes]]:
    """Members in ``buf`` (read at ``base``), each header checked against the index."""

    def get(offset: int, n: int) -> bytes:
        return buf[offset - base : offset - base + n]

    for member in wanted:
        assert member.header_offset is not None and member.offset is not None
        try:
            entry = _tarfmt.parse_entry(get, member.header_offset, base + len(buf))
        except ValueError:
            raise _Stale() from None
        if entry is None or (entry.name, entry.size, entry.data_offset) != (
            member.name,
            member.size,
            member.offset,
        ):
            raise _Stale()
        yield member, get(member.offset, member.size)


def _read_one(client: StorageClient, key: str, index: ArchiveIndex, member: ArchiveMember) -> bytes:
    assert member.header_offset is not None
    where = f"{client.url_prefix}{key}"
    if index.fmt == "zip":
        entry = _zip.ZipEntry(
            member.name, member.size, member.compressed_size or 0, member.method, member.crc or 0,
            member.header_offset, member.extra_len,
        )  # fmt: skip
        size = min(_zip.local_read_size(entry), index.size - member.header_offset)
        data = _fetch(client, key, index, member.header_offset, size)
        try:
            return _zip.decode_member(entry, data, lambda o, n: _fetch(client, key, index, o, n), where)
        except ValueError:
            raise _Stale() from None
    assert member.offset is not None
    span = member.offset + member.size - member.header_offset
    buf = _fetch(client, key, index, member.header_offset, span)
    return next(_tar_members(buf, member.header_offset, [member]))[1]


def _groups(members: list[ArchiveMember]) -> Iterator[list[ArchiveMember]]:
    """Tar members in runs close enough to be read with one GET each."""
    run: list[ArchiveMember] = []
    for member in members:
        assert member.header_offset is not None and member.offset is not None
        if run:
            first, last = run[0], run[-1]
            assert first.header_offset is not None and last.offset is not None
            gap = member.header_offset - (last.offset + last.size)
            if gap > _COALESCE_GAP or member.offset + member.size - first.header_offset > _COALESCE_SPAN:
                yield run
                run = []
        run.append(member)
    if run:
        yield run


def _with_retry(
    client: StorageClient,
    key: str,
    fmt: str | None,
    scan: ScanPolicy | None,
    fn: Callable[[ArchiveIndex], _T],
) -> _T:
    """Run ``fn(index)``; if the bytes no longer match the index, rebuild it once and rerun."""
    index = archive_index(client, key, fmt, scan)
    try:
        return fn(index)
    except _Stale:
        _archindex.forget(client, key)
    index = archive_index(client, key, fmt, scan, fresh=True)
    try:
        return fn(index)
    except _Stale:
        raise OSError(
            f"{client.url_prefix}{key}: the archive changed while it was being read (or is corrupt); try again"
        ) from None


def list_archive(
    client: StorageClient, key: str, *, fmt: str | None = None, scan: ScanPolicy | None = None
) -> list[ArchiveMember]:
    """The files inside the archive at ``key``, in archive order, with sizes and offsets.

    Tar and zip: from the index (a HEAD checks a remembered one is still current).
    Tar.gz: one streamed read of the whole object.

    Raises:
        FileNotFoundError: No object at ``key``.
        ValueError: Not an archive of the format its name (or ``fmt``) says.
    """
    kind = archive_format(key, fmt)
    if kind == "tar.gz":
        return [member for member, _ in _stream_tgz(client, key, None)]
    index = _archindex.lookup(client, key)
    if index is not None:
        meta = client._io.head(key)
        if index.fmt != kind or meta.content_length != index.size or (meta.etag and meta.etag != index.etag):
            index = None
    if index is None:
        index = archive_index(client, key, fmt, scan, fresh=True)
    return list(index.members)


def read_member(
    client: StorageClient, key: str, archpath: str, *, fmt: str | None = None, scan: ScanPolicy | None = None
) -> bytes:
    """The content of member ``archpath`` of the archive at ``key``.

    Tar and zip: one ranged GET once the index is known. Tar.gz: streams the archive
    up to the member.

    Raises:
        ArchiveMemberNotFoundError: The archive has no such member (a :class:`FileNotFoundError`).
        FileNotFoundError: No object at ``key``.
        ValueError: Not an archive of the format its name (or ``fmt``) says.
    """
    kind = archive_format(key, fmt)
    if kind == "tar.gz":
        for _, data in _stream_tgz(client, key, ArchiveConfig(archpath=archpath)):
            return data
        raise _missing(client, key, archpath)

    def read(index: ArchiveIndex) -> bytes:
        member = index.get(archpath)
        if member is None:
            raise _missing(client, key, archpath)
        return _read_one(client, key, index, member)

    return _with_retry(client, key, fmt, scan, read)


def _missing(client: StorageClient, key: str, archpath: str) -> ArchiveMemberNotFoundError:
    err = ArchiveMemberNotFoundError(f"{client.url_prefix}{key}: no member {archpath!r} in the archive")
    err.url, err.reason = f"{client.url_prefix}{key}", f"no member {archpath!r} in the archive"
    return err


def iter_members(
    client: StorageClient,
    key: str,
    *,
    regex: str = "",
    mode: ArchiveMode | str = ArchiveMode.REGEXP,
    config: ArchiveConfig | None = None,
    fmt: str | None = None,
    scan: ScanPolicy | None = None,
) -> Iterator[tuple[ArchiveMember, bytes]]:
    """The selected members of the archive at ``key`` and their contents, in archive order.

    Select with ``config`` (an :class:`ArchiveConfig`), or ``regex`` and ``mode``; no
    selection yields every member. Tar members close together are read with one ranged
    GET (runs up to 64 MiB); zip members with one GET each; tar.gz is streamed.

    Raises:
        ValueError: A bad selection, or not an archive of the format its name says.
        FileNotFoundError: No object at ``key``.
    """
    if config is None:
        config = ArchiveConfig(regex=regex, mode=mode) if regex else ArchiveConfig()
    kind = archive_format(key, fmt)
    if kind == "tar.gz":
        yield from _stream_tgz(client, key, config)
        return
    index = archive_index(client, key, fmt, scan)
    selected = [m for m in index.members if config.matches(m.name)]
    done = 0
    while done < len(selected):
        todo = selected[done:]
        try:
            if index.fmt == "zip":
                for member in todo:
                    yield member, _read_one(client, key, index, member)
                    done += 1
            else:
                for run in _groups(todo):
                    first, last = run[0], run[-1]
                    assert first.header_offset is not None and last.offset is not None
                    buf = _fetch(
                        client, key, index, first.header_offset, last.offset + last.size - first.header_offset
                    )
                    for item in list(_tar_members(buf, first.header_offset, run)):
                        yield item
                        done += 1
        except _Stale:
            if index.source == "fresh":
                raise OSError(
                    f"{client.url_prefix}{key}: the archive changed while it was being read"
                ) from None
            _archindex.forget(client, key)
            index = archive_index(client, key, fmt, scan, fresh=True)
            index.source = "fresh"
            names = {m.name for m in selected[done:]}
            selected = selected[:done] + [m for m in index.members if m.name in names]


def _stream_tgz(
    client: StorageClient, key: str, config: ArchiveConfig | None
) -> Iterator[tuple[ArchiveMember, bytes]]:
    """Members of a tar.gz by streaming it from the start (stops after ``config.archpath``)."""
    import tarfile

    with client.open(key, "rb", prefetch_file=False) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        for info in tar:
            if not info.isfile():
                continue
            member = ArchiveMember(info.name, info.size)
            if config is None:
                yield member, b""
                continue
            if not config.matches(info.name):
                continue
            extracted = tar.extractfile(info)
            assert extracted is not None
            yield member, extracted.read()
            if config.archpath:
                return


def extract_stream(client: StorageClient, key: str, archive_config: ArchiveConfig) -> Iterator[bytes]:
    """What an AIStore GET with ``archive_config`` returns, as chunks.

    With ``archpath``: the member's content. With ``regex``/``mode``: a tar (pax format)
    of the matching members, streamed member by member.

    Raises:
        ArchiveMemberNotFoundError: ``archpath`` names no member.
    """
    if archive_config.archpath:
        yield read_member(client, key, archive_config.archpath)
        return
    for member, data in iter_members(client, key, config=archive_config):
        yield _tarfmt.header(member.name, len(data))
        yield data
        yield _tarfmt.padding(len(data))
    yield _tarfmt.END


def extract(client: StorageClient, key: str, archive_config: ArchiveConfig) -> bytes:
    """:func:`extract_stream` joined: one member's bytes, or a tar of the matching members."""
    return b"".join(extract_stream(client, key, archive_config))
