"""Tar headers, read and written without :mod:`tarfile`'s file-object machinery.

Reading: :func:`parse_entry` decodes the header chain of one entry (ustar, GNU and
POSIX.1-2001/pax forms: ``L`` long names, ``x`` per-file and ``g`` global extended
headers) through a ``get(offset, n)`` callable, so the same code walks a tar held in
memory and one read through ranged GETs. Writing: :func:`header` and :func:`padding`
build the bytes of a member for a streamed tar (the Get-Batch output, a regex
extraction), and :data:`END` ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BLOCK", "END", "TarEntry", "header", "padded", "padding", "parse_entry"]

BLOCK = 512
#: The end-of-archive marker: two zero blocks.
END = b"\0" * (2 * BLOCK)
_REGULAR = (b"0", b"\0", b"7")


@dataclass(frozen=True)
class TarEntry:
    """One entry of a tar: its name, type, size and where its headers and data start.

    Attributes:
        name: The member's path (long names resolved).
        type: The ustar type flag (``b"0"`` regular file, ``b"5"`` directory...).
        size: Bytes of data.
        header_offset: Offset of its first header (a pax or long-name header, if any).
        data_offset: Offset of its data.
    """

    name: str
    type: bytes
    size: int
    header_offset: int
    data_offset: int

    @property
    def is_file(self) -> bool:
        """True for a regular file (a member that has content)."""
        return self.type in _REGULAR

    @property
    def next_offset(self) -> int:
        """Offset of the next entry's first header."""
        return self.data_offset + padded(self.size)


def padded(size: int) -> int:
    """``size`` rounded up to whole 512-byte blocks."""
    return -(-size // BLOCK) * BLOCK


def padding(size: int) -> bytes:
    """The zero bytes that follow ``size`` bytes of member data."""
    return b"\0" * (padded(size) - size)


def _number(field: bytes, what: str, offset: int) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for values that do not fit in octal
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 1)) if field[0] & 0x40 else value
    text = field.replace(b"\0", b" ").strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ValueError(
            f"tar header at offset {offset}: {what} field {field!r} is not an octal number"
        ) from None


def _checksum_ok(block: bytes) -> bool:
    stored = block[148:156].replace(b"\0", b" ").strip()
    if not stored:
        return False
    try:
        want = int(stored, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = unsigned - 2 * sum(b for b in block[:148] + block[156:] if b > 127)
    return want in (unsigned, signed)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, offset: int) -> dict[str, str]:
    """``key=value`` records of a pax extended header (``"%d %s=%s\\n"`` each)."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos : pos + 1] not in (b"", b"\0"):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise ValueError(f"tar pax header at offset {offset}: malformed record at byte {pos}") from None
        if length <= 0 or space < 0:
            raise ValueError(f"tar pax header at offset {offset}: malformed record at byte {pos}")
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def parse_entry(get: Callable[[int, int], bytes], offset: int, total: int) -> TarEntry | None:
    """The entry whose first header is at ``offset``, or None at the end of the archive.

    Args:
        get: Returns ``n`` bytes at an offset of the tar (fewer only at its end).
        offset: Offset of the entry's first header (a multiple of 512).
        total: Size of the tar in bytes.

    Raises:
        ValueError: The bytes at ``offset`` are not a tar header (bad checksum, GNU sparse
            member, truncated extended header).
    """
    start = offset
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        if offset + BLOCK > total:
            return None  # no end marker (tolerated, as tarfile does)
        block = get(offset, BLOCK)
        if len(block) < BLOCK or block == b"\0" * BLOCK:
            return None
        if not _checksum_ok(block):
            raise ValueError(f"tar header at offset {offset}: checksum mismatch (not a tar, or corrupt)")
        kind = block[156:157]
        size = _number(block[124:136], "size", offset)
        data_offset = offset + BLOCK
        if kind in (b"x", b"g", b"L", b"K"):
            data = get(data_offset, size)
            if len(data) < size:
                raise ValueError(f"tar header at offset {offset}: extended header cut short")
            if kind == b"x":
                pax.update(_pax_records(data, offset))
            elif kind == b"L":
                long_name = _text(data)
            offset = data_offset + padded(size)
            continue
        if kind == b"S":
            raise ValueError(f"tar member at offset {offset}: GNU sparse members are not supported")
        name = _text(block[0:100])
        if block[257:263] == b"ustar\x00" and block[345:346] != b"\0":
            name = _text(block[345:500]) + "/" + name
        if long_name is not None:
            name = long_name
        if "path" in pax:
            name = pax["path"]
        if "size" in pax:
            size = int(pax["size"])
        return TarEntry(name, kind, size, start, data_offset)


def header(name: str, size: int, mtime: float = 0.0, mode: int = 0o644) -> bytes:
    """The header block(s) of a regular-file member (pax extended headers for long names)."""
    import tarfile  # lazy: ``import manystore.batch`` stays light

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), mode
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
