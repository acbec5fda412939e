"""cottoncandy's compressions, streamed: the same names and the same stored bytes.

``upload_raw_array(compression=...)`` takes ``'gzip'``, ``'LZ4'``, ``'Zlib'``, ``'Zstd'``
or ``'BZ2'`` (any case), ``True`` (cottoncandy's defaults: ``gzip`` up to 2 GiB, ``Zstd``
above) or ``False``/``None``. The bytes are what cottoncandy 0.4.0 stores, so each
library decodes the other's objects:

* ``gzip``: one gzip member at level 9 (Python's ``GzipFile`` defaults, no file name);
* ``Zlib``, ``BZ2``: a zlib / bzip2 stream at level 1 (numcodecs' defaults);
* ``Zstd``: one zstd frame at level 3 with the content size (numcodecs' ``Zstd()``; from
  ``ZSTD_MT_MIN`` bytes up compressed by zstd's worker threads, still one frame);
* ``LZ4``: numcodecs' LZ4 block: a 4-byte little-endian size, then one LZ4 block.

Compression and decompression run chunk by chunk (except LZ4, a single block): an upload
never holds the compressed object whole and a download decompresses into the
preallocated array as the bytes arrive. Every codec but LZ4 handles arrays over 2 GiB;
LZ4's block format stops at ``LZ4_LIMIT`` bytes and raises :class:`ValueError` above it.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

#: cottoncandy's compression names, as stored in the ``compression`` metadata key.
CODECS = ("gzip", "LZ4", "Zlib", "Zstd", "BZ2")
#: Largest input of one LZ4 block (``LZ4_MAX_INPUT_SIZE``).
LZ4_LIMIT = 0x7E000000
#: cottoncandy's threshold between its small-array and large-array default codecs.
LARGE_ARRAY = 2**31
#: Bytes read or produced per step while streaming.
STEP = 4 * 2**20
#: Arrays from this size up are Zstd-compressed by zstd's worker threads (one frame still).
ZSTD_MT_MIN = 8 * 2**20
#: Compressed bytes the Zstd decoder reads at least per step (``buffersize`` below is raised).
ZSTD_MIN_READ = 2**20

_BY_LOWER = {name.lower(): name for name in CODECS}


def resolve(compression: bool | str | None, nbytes: int) -> str | None:
    """The codec name for ``compression`` of an ``nbytes`` array, or ``None`` for none.

    Raises:
        ValueError: An unknown name, or LZ4 for an array over ``LZ4_LIMIT`` bytes.
    """
    if compression is None or compression is False or compression in ("False", "None"):
        return None
    if compression is True:
        return "Zstd" if nbytes > LARGE_ARRAY else "gzip"
    if not isinstance(compression, str) or compression.lower() not in _BY_LOWER:
        raise ValueError(f"compression={compression!r}: expected one of {', '.join(CODECS)}, True or False")
    name = _BY_LOWER[compression.lower()]
    check_size(name, nbytes)
    return name


def check_size(codec: str, nbytes: int) -> None:
    """Raise when ``codec`` cannot hold ``nbytes`` bytes.

    Raises:
        ValueError: LZ4 (a single block) above ``LZ4_LIMIT`` bytes.
    """
    if codec == "LZ4" and nbytes > LZ4_LIMIT:
        raise ValueError(
            f"compression='LZ4' holds at most {LZ4_LIMIT} bytes (one LZ4 block); the array has "
            f"{nbytes}: use 'Zstd', 'Zlib', 'BZ2' or 'gzip' for arrays this large"
        )


def _gzip(pieces: Iterable[memoryview]) -> Iterator[bytes]:
    level = 9
    yield b"\x1f\x8b\x08\x00" + struct.pack("<I", int(time.time()) & 0xFFFFFFFF) + b"\x02\xff"
    deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    crc, size = 0, 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
        size += len(piece)
        if out := deflate.compress(piece):
            yield out
    yield deflate.flush() + struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def _stream(compressor: Any, pieces: Iterable[memoryview]) -> Iterator[bytes]:
    for piece in pieces:
        if out := compressor.compress(piece):
            yield out
    yield compressor.flush()


def compress(codec: str, pieces: Iterable[memoryview], nbytes: int) -> Iterator[bytes]:
    """The compressed bytes of the ``nbytes`` bytes in ``pieces``, chunk by chunk.

    ``pieces`` are flat byte views in storage order (LZ4 wants exactly one piece: its
    format is a single block).

    Raises:
        ValueError: An unknown codec, LZ4 over its limit, or LZ4 given several pieces.
    """
    check_size(codec, nbytes)
    if codec == "gzip":
        yield from _gzip(pieces)
    elif codec == "Zlib":
        yield from _stream(zlib.compressobj(1), pieces)
    elif codec == "BZ2":
        import bz2

        yield from _stream(bz2.BZ2Compressor(1), pieces)
    elif codec == "Zstd":
        import zstandard

        # One frame at level 3 with the content size, as numcodecs writes it (cottoncandy and
        # numcodecs decode it); compressed on every core (zstd's workers keep it one frame).
        threads = -1 if nbytes >= ZSTD_MT_MIN else 0
        chunker = zstandard.ZstdCompressor(level=3, threads=threads).chunker(size=nbytes, chunk_size=STEP)
        for piece in pieces:
            yield from chunker.compress(piece)
        yield from chunker.finish()
    elif codec == "LZ4":
        import lz4.block

        parts = list(pieces)
        if len(parts) > 1:
            raise ValueError("compression='LZ4' needs the array's bytes in one piece (C order)")
        yield lz4.block.compress(parts[0] if parts else b"", mode="default", acceleration=1, store_size=True)
    else:
        raise ValueError(f"codec {codec!r}: expected one of {', '.join(CODECS)}")


def _put(out: memoryview, pos: int, data: bytes, where: str) -> int:
    end = pos + len(data)
    if end > len(out):
        raise ValueError(f"{where}: decompresses to more than the {len(out)} bytes its metadata promises")
    out[pos:end] = data
    return end


def _inflate_zlib(stream: IO[bytes], out: memoryview, wbits: int, where: str, step: int) -> int:
    d = zlib.decompressobj(wbits)
    pos = 0
    while not d.eof:
        data = d.unconsumed_tail or stream.read(step)
        if not data:
            break
        pos = _put(out, pos, d.decompress(data, STEP), where)
    if not d.eof:
        pos = _put(out, pos, d.flush(), where)
        raise ValueError(f"{where}: the compressed stream is truncated")
    return pos


def _inflate_bz2(stream: IO[bytes], out: memoryview, where: str, step: int) -> int:
    import bz2

    d = bz2.BZ2Decompressor()
    pos = 0
    while not d.eof:
        data = stream.read(step) if d.needs_input else b""
        if d.needs_input and not data:
            raise ValueError(f"{where}: the compressed stream is truncated")
        pos = _put(out, pos, d.decompress(data, STEP), where)
    return pos


def _inflate_zstd(stream: IO[bytes], out: memoryview, where: str, step: int) -> int:
    import zstandard

    step = max(step, ZSTD_MIN_READ)  # zstd's reader pays per read call: small steps halve its speed
    pos = 0
    try:
        with zstandard.ZstdDecompressor().stream_reader(stream, read_size=step, closefd=False) as reader:
            # The whole output in as few calls as possible: each call returns to Python and
            # takes the GIL back, which costs up to the switch interval (5 ms) when other
            # threads (the download's) hold it: 4 MiB steps halved the speed with one busy thread.
            while pos < len(out) and (n := reader.readinto(out[pos:])):
                pos += n
            if reader.read(1):
                raise ValueError(
                    f"{where}: decompresses to more than the {len(out)} bytes its metadata promises"
                )
    except zstandard.ZstdError as err:
        raise ValueError(f"{where}: not a valid Zstd stream ({err})") from None
    return pos


def decompress_into(codec: str, stream: IO[bytes], out: memoryview, where: str, step: int = STEP) -> int:
    """Decompress ``stream`` (a ``codec`` object) into ``out``; returns the bytes written.

    ``step`` is the number of compressed bytes read from ``stream`` at a time.

    Raises:
        ValueError: Corrupt or truncated data, more bytes than ``out`` holds, or an
            unknown codec (``where`` names the object).
    """
    out = out.cast("B") if out.format != "B" or out.ndim != 1 else out
    try:
        if codec == "gzip":
            return _inflate_zlib(stream, out, 16 + zlib.MAX_WBITS, where, step)
        if codec == "Zlib":
            return _inflate_zlib(stream, out, zlib.MAX_WBITS, where, step)
    except zlib.error as err:
        raise ValueError(f"{where}: not a valid {codec} stream ({err})") from None
    if codec == "BZ2":
        try:
            return _inflate_bz2(stream, out, where, step)
        except OSError as err:
            raise ValueError(f"{where}: not a valid BZ2 stream ({err})") from None
    if codec == "Zstd":
        return _inflate_zstd(stream, out, where, step)
    if codec == "LZ4":
        import lz4.block

        data = stream.read()
        if len(data) < 4 or struct.unpack("<I", data[:4])[0] != len(out):
            raise ValueError(f"{where}: LZ4 size header does not match the {len(out)} bytes expected")
        if not out:
            return 0
        try:
            import numcodecs

            numcodecs.LZ4().decode(data, out=out)
        except ImportError:  # numcodecs is optional: lz4 alone decodes (one temporary copy)
            out[:] = lz4.block.decompress(data)
        except RuntimeError as err:
            raise ValueError(f"{where}: not a valid LZ4 block ({err})") from None
        return len(out)
    raise ValueError(f"{where}: compression {codec!r} is unknown; expected one of {', '.join(CODECS)}")
