"""``ArrayInterface``: numpy arrays stored as cottoncandy stores them (raw buffers, ``.npy``).

A raw array is its buffer, optionally compressed (:mod:`manystore.arrays.codecs`), with
cottoncandy's metadata keys: ``dtype`` (``dtype.str``), ``shape`` (comma-separated),
``order`` (``C`` or ``F``) and ``compression`` (a codec name or ``False``). A dtype whose
``dtype.str`` loses information (structured dtypes) also gets ``dtype_descr`` (JSON of
``dtype.descr``), which cottoncandy ignores.

Uploads stream from the array's memory: a C- or F-contiguous array is not copied (an
F-order array is stored with ``order=F``, except with the numcodecs codecs — LZ4, Zlib,
Zstd, BZ2 — whose cottoncandy reader assumes C order: it is then streamed in C-order
blocks); a non-contiguous array is streamed in C-order blocks. Downloads allocate the
array once and fill it: uncompressed through parallel ranged GETs, compressed by
decompressing as the bytes arrive.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import codecs
from ._base import DEFAULT_ACL, RANGE_CHUNK, SMALL_PUT, THREADS
from ._streams import ChunkStream
from .basic import BasicInterface
from .dask import DaskMixin
from .groups import GroupMixin
from .sparse import SparseMixin

if TYPE_CHECKING:
    import numpy as np

#: The metadata keys ``upload_raw_array`` sets (extra metadata may not reuse them).
ARRAY_KEYS = ("dtype", "shape", "order", "compression", "dtype_descr")


def _np() -> Any:
    import numpy

    return numpy


def _flat(array: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, as a flat view (no copy)."""
    return memoryview(array.reshape(-1).view(_np().uint8))


def _c_blocks(array: np.ndarray, step: int = codecs.STEP) -> Iterator[memoryview]:
    """The array's bytes in C order, a block of leading-axis rows at a time (one block copied at a time)."""
    np = _np()
    if array.ndim == 0 or array.flags.c_contiguous:
        yield _flat(np.ascontiguousarray(array))
        return
    row = max(1, array[0:1].nbytes)
    rows = max(1, step // row)
    for start in range(0, array.shape[0], rows):
        yield _flat(np.ascontiguousarray(array[start : start + rows]))


def _dtype_descr(dtype: np.dtype) -> str | None:
    np = _np()
    return None if np.dtype(dtype.str) == dtype else json.dumps(dtype.descr)


def _descr_to_dtype(text: str) -> np.dtype:
    def fix(item: Any) -> Any:
        if isinstance(item, list) and item and all(isinstance(i, list) for i in item):
            return [tuple(fix(x) for x in field) for field in item]
        if (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], list)
        ):
            return (item[0], fix(item[1]))
        return tuple(fix(x) for x in item) if isinstance(item, list) else item

    try:
        return _np().dtype(fix(json.loads(text)))
    except (ValueError, TypeError) as err:
        raise ValueError(f"dtype_descr {text!r} is not a numpy dtype description: {err}") from None


def _check_array(array: Any) -> np.ndarray:
    arr = _np().asarray(array)
    if arr.dtype.hasobject:
        raise TypeError(
            f"dtype {arr.dtype} holds Python objects; expected a fixed-size dtype (pickle it instead)"
        )
    return arr


class ArrayInterface(DaskMixin, SparseMixin, GroupMixin, BasicInterface):
    """cottoncandy's array interface: raw and ``.npy`` arrays, dask arrays, sparse matrices, groups."""

    def upload_raw_array(
        self,
        object_name: str,
        array: Any,
        compression: bool | str | None = True,
        acl: str = DEFAULT_ACL,
        threads: int = THREADS,
        **metadata: Any,
    ) -> None:
        """Store an array's buffer with ``dtype``/``shape``/``order``/``compression`` metadata.

        Args:
            object_name: Name of the object.
            array: The array (anything ``numpy.asarray`` takes; no object dtypes).
            compression: ``True`` (cottoncandy's defaults: gzip up to 2 GiB, Zstd above),
                ``False``/``None``, or ``'gzip'``, ``'LZ4'``, ``'Zlib'``, ``'Zstd'``, ``'BZ2'``.
            acl: See :meth:`~manystore.arrays._base.InterfaceBase._check_acl`.
            threads: Parts uploaded in parallel (see :meth:`~manystore.arrays._base.InterfaceBase._upload_threads`).
            **metadata: Extra user metadata (``gzip=`` is cottoncandy's deprecated flag).

        Raises:
            ValueError: Unknown codec, LZ4 over its size limit, or metadata reusing an array key.
            TypeError: An object dtype.
        """
        self._check_acl(acl)
        self._check_threads(threads)
        if "gzip" in metadata:
            compression = "gzip" if metadata.pop("gzip") not in (False, "False", "false", 0) else False
        arr = _check_array(array)
        codec = codecs.resolve(compression, arr.nbytes)
        clash = sorted(set(metadata) & set(ARRAY_KEYS))
        if clash:
            raise ValueError(f"metadata keys {clash} are the array's own; expected other names")
        if arr.flags.c_contiguous:
            order, pieces = "C", (lambda: iter([_flat(arr)]))
        elif arr.flags.f_contiguous and codec in (None, "gzip"):
            order, pieces = "F", (lambda: iter([_flat(arr.T)]))
        else:
            order = "C"
            if codec == "LZ4":  # one LZ4 block: needs the C-order bytes whole (a copy)
                copy = _np().ascontiguousarray(arr)
                pieces = lambda: iter([_flat(copy)])  # noqa: E731
            else:
                pieces = lambda: _c_blocks(arr)  # noqa: E731
        meta = {
            "dtype": arr.dtype.str,
            "shape": ",".join(map(str, arr.shape)),
            "compression": str(codec or False),
            "order": order,
        }
        descr = _dtype_descr(arr.dtype)
        if descr is not None:
            meta["dtype_descr"] = descr
        meta.update({k: str(v) for k, v in metadata.items()})
        self._put(object_name, self._body(codec, pieces, arr.nbytes), meta, threads=threads)

    def _body(self, codec: str | None, pieces: Any, nbytes: int) -> Any:
        if codec is None:
            parts = list(pieces())
            if len(parts) == 1:
                return parts[0]  # the array's own memory
            return ChunkStream(pieces)
        stream = ChunkStream(lambda: codecs.compress(codec, pieces(), nbytes))
        return stream.readall() if nbytes <= SMALL_PUT else stream

    def download_raw_array(
        self, object_name: str, buffersize: int = 2**16, threads: int = THREADS, **kwargs: Any
    ) -> np.ndarray:
        """The array stored by ``upload_raw_array`` (here or by cottoncandy).

        Args:
            object_name: Name of the object.
            buffersize: Compressed bytes read per step while decompressing (Zstd reads whole
                fetched blocks, its reader being several times slower with small steps).
            threads: Parallel ranged GETs of the object (compressed or not); a compressed
                one is decompressed while the next blocks download.
            **kwargs: Refused (cottoncandy accepts and ignores them).

        Raises:
            FileNotFoundError: No such object.
            ValueError: Missing or invalid array metadata, or data not matching it.
            TypeError: Unexpected keyword arguments.
        """
        if kwargs:
            raise TypeError(f"download_raw_array() got unexpected arguments {sorted(kwargs)}")
        if isinstance(buffersize, bool) or not isinstance(buffersize, int) or buffersize < 1:
            raise ValueError(f"buffersize={buffersize!r}: expected a positive number of bytes")
        self._check_threads(threads)
        meta = self._metadata(object_name)
        np = _np()
        if "gzip" in meta:  # cottoncandy's older flag
            meta["compression"] = (
                "gzip" if meta["gzip"].lower() in ("true", "t", "yes", "y", "1") else "False"
            )
        missing = [k for k in ("dtype", "shape", "compression") if k not in meta]
        if missing:
            raise ValueError(
                f"object {object_name!r} has no array metadata {missing}; was it stored as a raw array?"
            )
        shape = tuple(int(n) for n in meta["shape"].split(",")) if meta["shape"] else ()
        dtype = _descr_to_dtype(meta["dtype_descr"]) if "dtype_descr" in meta else np.dtype(meta["dtype"])
        order = meta.get("order", "C")
        if order not in ("C", "F"):
            raise ValueError(f"object {object_name!r}: order={order!r}; expected 'C' or 'F'")
        array = np.empty(shape, dtype=dtype, order=order)
        out = _flat(array.T if order == "F" else array)
        where = f"{self.bucket_name}{object_name}"
        compression = meta["compression"]
        if compression in ("False", "None", "false", ""):
            got = self._readinto(object_name, out, threads)
        else:
            codec = codecs.resolve(compression, 0)
            assert codec is not None
            # Zstd takes whole fetched blocks (no copy); the others read ``buffersize`` at a time.
            step = max(buffersize, RANGE_CHUNK) if codec == "Zstd" else buffersize
            with self._compressed(object_name, threads) as stream:
                got = codecs.decompress_into(codec, stream, out, where, step=step)
        if got != len(out):
            raise ValueError(f"{where}: {got} bytes of data; expected {len(out)} for shape {shape} {dtype}")
        return array

    def upload_npy_array(
        self, object_name: str, array: Any, acl: str = DEFAULT_ACL, threads: int = THREADS, **metadata: Any
    ) -> None:
        """Store an array as a ``.npy`` file (as ``np.save`` writes it), streamed from its memory."""
        self._check_acl(acl)
        self._check_threads(threads)
        np = _np()
        arr = _check_array(array)
        fmt = np.lib.format
        header = io.BytesIO()
        info = fmt.header_data_from_array_1_0(arr)
        try:
            fmt.write_array_header_1_0(header, info)
        except ValueError:
            header = io.BytesIO()
            fmt.write_array_header_2_0(header, info)
        head = header.getvalue()
        if arr.flags.c_contiguous:
            data: Any = lambda: iter([_flat(arr)])  # noqa: E731
        elif arr.flags.f_contiguous:
            data = lambda: iter([_flat(arr.T)])  # noqa: E731
        else:
            data = lambda: _c_blocks(arr)  # noqa: E731

        def chunks() -> Iterator[bytes | memoryview]:
            yield head
            yield from data()

        stream = ChunkStream(chunks)
        body = stream.readall() if arr.nbytes <= SMALL_PUT else stream
        self._put(object_name, body, {k: str(v) for k, v in metadata.items()}, threads=threads)

    def download_npy_array(self, object_name: str, threads: int = THREADS) -> np.ndarray:
        """An array stored as ``.npy`` (here, by cottoncandy or ``np.save``); object dtypes are refused.

        Raises:
            FileNotFoundError: No such object.
            ValueError: Not a ``.npy`` file, an object dtype, or truncated data.
        """
        self._check_threads(threads)
        self.exists_object(object_name, raise_err=True)
        np = _np()
        fmt = np.lib.format
        with self._open(object_name) as stream:
            version = fmt.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(stream)
            else:
                shape, fortran, dtype = fmt.read_array_header_2_0(stream)
            if dtype.hasobject:
                raise ValueError(f"{object_name!r} holds Python objects (a pickle); refusing to load it")
            array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
            out = _flat(array.T if fortran else array)
            done = 0
            while done < len(out) and (n := stream.readinto(out[done:])):  # type: ignore[attr-defined]
                done += n
        if done != len(out):
            raise ValueError(f"{object_name!r}: {done} bytes of data; expected {len(out)}")
        return array
