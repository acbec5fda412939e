"""Zip archives read through ranged GETs: the central directory from the end, then members.

:func:`read_directory` finds the end-of-central-directory record (zip64 too) in the
object's tail and parses the central directory; :func:`decode_member` turns the bytes
read at a member's local header into its content (stored or deflated), checking the
name and the CRC-32 the directory records.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TAIL_READ", "ZipEntry", "decode_member", "local_read_size", "read_directory"]

#: Bytes read from the end to find the end-of-central-directory record (max comment + record).
TAIL_READ = 65536 + 22 + 20 + 56
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64_LOCATOR = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_STORED, _DEFLATED = 0, 8
#: Slack read past the central directory's extra-field length, for a longer local extra field.
_LOCAL_SLACK = 256


@dataclass(frozen=True)
class ZipEntry:
    """A file in a zip's central directory.

    Attributes:
        name: The member's path.
        size: Uncompressed size.
        compressed_size: Bytes stored.
        method: Compression method (0 stored, 8 deflated).
        crc: CRC-32 of the content.
        header_offset: Offset of its local header.
        extra_len: Length of its central extra field (the local one is usually the same).
    """

    name: str
    size: int
    compressed_size: int
    method: int
    crc: int
    header_offset: int
    extra_len: int


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            if size == 0xFFFFFFFF:
                size = next(values)
            if csize == 0xFFFFFFFF:
                csize = next(values)
            if offset == 0xFFFFFFFF:
                offset = next(values)
            break
        pos += 4 + length
    return size, csize, offset


def read_directory(get: Callable[[int, int], bytes], total: int, where: str) -> tuple[list[ZipEntry], int]:
    """The files of the zip of ``total`` bytes, and how many ranged reads that took.

    Args:
        get: Returns ``n`` bytes at an offset of the zip.
        total: Size of the zip.
        where: The archive's name, for errors.

    Raises:
        ValueError: No end-of-central-directory record, or a malformed directory.
    """
    tail_start = max(0, total - TAIL_READ)
    tail = get(tail_start, total - tail_start)
    reads = 1
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise ValueError(
            f"{where}: not a zip (no end-of-central-directory record in its last {len(tail)} bytes)"
        )
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    loc = pos - _EOCD64_LOCATOR.size
    if loc >= 0 and tail[loc : loc + 4] == b"PK\x06\x07":
        _, _, eocd64_at, _ = _EOCD64_LOCATOR.unpack_from(tail, loc)
        rel = eocd64_at - tail_start
        record = tail[rel : rel + _EOCD64.size] if rel >= 0 else get(eocd64_at, _EOCD64.size)
        reads += rel < 0
        if record[:4] != b"PK\x06\x06":
            raise ValueError(f"{where}: zip64 end-of-central-directory record missing at {eocd64_at}")
        _, _, _, _, _, _, _, count, cd_size, cd_offset = _EOCD64.unpack(record)
    rel = cd_offset - tail_start
    if rel >= 0 and rel + cd_size <= len(tail):
        directory = tail[rel : rel + cd_size]
    else:
        directory = get(cd_offset, cd_size)
        reads += 1
    entries: list[ZipEntry] = []
    pos = 0
    for _ in range(count):
        if directory[pos : pos + 4] != b"PK\x01\x02":
            raise ValueError(f"{where}: malformed central directory at offset {cd_offset + pos}")
        fields = _CENTRAL.unpack_from(directory, pos)
        flags, method, crc, csize, size = fields[3], fields[4], fields[7], fields[8], fields[9]
        nlen, elen, clen, offset = fields[10], fields[11], fields[12], fields[16]
        raw = directory[pos + _CENTRAL.size : pos + _CENTRAL.size + nlen]
        name = raw.decode("utf-8" if flags & 0x800 else "cp437")
        extra = directory[pos + _CENTRAL.size + nlen : pos + _CENTRAL.size + nlen + elen]
        size, csize, offset = _zip64_extra(extra, size, csize, offset)
        if not name.endswith("/"):
            entries.append(ZipEntry(name, size, csize, method, crc, offset, elen))
        pos += _CENTRAL.size + nlen + elen + clen
    return entries, reads


def local_read_size(entry: ZipEntry) -> int:
    """Bytes to read at the local header to (very likely) get the whole member in one read."""
    return (
        _LOCAL.size + len(entry.name.encode("utf-8")) + entry.extra_len + _LOCAL_SLACK + entry.compressed_size
    )


def decode_member(entry: ZipEntry, data: bytes, more: Callable[[int, int], bytes], where: str) -> bytes:
    """The content of ``entry`` from ``data`` read at its local header.

    Args:
        entry: The member.
        data: Bytes read at ``entry.header_offset`` (ideally :func:`local_read_size` of them).
        more: Reads ``n`` more bytes at an absolute offset, if ``data`` fell short.
        where: The archive's name, for errors.

    Raises:
        ValueError: The local header does not match the directory, or the CRC-32 differs
            (the object changed since its directory was read).
        NotImplementedError: A compression method other than stored or deflated.
    """
    if len(data) < _LOCAL.size or data[:4] != b"PK\x03\x04":
        raise ValueError(f"{where}: no local header for {entry.name!r} at offset {entry.header_offset}")
    fields = _LOCAL.unpack_from(data)
    nlen, elen = fields[9], fields[10]
    start = _LOCAL.size + nlen + elen
    name = data[_LOCAL.size : _LOCAL.size + nlen]
    if name not in (entry.name.encode("utf-8"), entry.name.encode("cp437", "replace")):
        raise ValueError(f"{where}: local header at {entry.header_offset} names {name!r}, not {entry.name!r}")
    payload = data[start : start + entry.compressed_size]
    if len(payload) < entry.compressed_size:
        payload += more(entry.header_offset + start + len(payload), entry.compressed_size - len(payload))
    if entry.method == _STORED:
        content = payload
    elif entry.method == _DEFLATED:
        content = zlib.decompressobj(-15).decompress(payload)
    else:
        raise NotImplementedError(
            f"{where}: member {entry.name!r} uses zip compression method {entry.method}; "
            "expected 0 (stored) or 8 (deflated)"
        )
    if len(content) != entry.size or zlib.crc32(content) != entry.crc:
        raise ValueError(f"{where}: member {entry.name!r} fails its CRC-32/size check")
    return content
