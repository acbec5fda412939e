"""``numpy.load`` / ``save`` / ``savez`` / ``memmap`` for URLs (``msc://``, ``s3://``...) and paths.

numpy is imported on first use (``import manystore`` never imports it). Local files
(file-system profiles, plain paths) are handed to numpy by path. Objects on a store:

* ``load`` reads the object through the client (and its read cache) into memory;
  ``allow_pickle`` stays numpy's default, False, so an object array is refused.
* ``load(..., mmap_mode="r" | "c")`` and ``memmap(..., mode="r" | "c")`` of an object
  map a local copy instead of reading it into memory. With a read cache on the profile
  the copy is the cache's entry (the object is fetched once, validated as the profile's
  cache says, and the mapping survives the entry's eviction). Without a cache — or when
  the object is larger than the cache — it is downloaded to a temporary file that is
  unlinked as soon as it is mapped (its disk space is freed when the array is). Modes
  that write (``"r+"``, ``"w+"``) are refused: changes would never reach the store.
* ``save``/``savez``/``savez_compressed`` stream the serialised array into the object
  (a multipart upload above the client's threshold), with optional ``attributes``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .client import StorageClient

__all__ = ["load", "memmap", "save", "savez", "savez_compressed"]

_READ_ONLY_MAPS = ("r", "c", "readonly", "copyonwrite")


def _np() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise ImportError("manystore.numpy needs numpy: pip install numpy") from exc
    return numpy


def _is_location(file: Any) -> bool:
    return isinstance(file, (str, bytes)) or hasattr(file, "__fspath__")


def _resolve(file: Any) -> tuple[StorageClient, str, str | None]:
    """``(client, key, local path or None)`` of a URL or path."""
    from .shortcuts import resolve_storage_client

    name = os.fsdecode(file) if isinstance(file, bytes) else str(file)
    client, path = resolve_storage_client(name)
    local = getattr(client.config.storage_provider, "local_path", None)
    return client, path, (local(path) if callable(local) else None)


def _local_copy(client: StorageClient, path: str) -> tuple[str, int, bool]:
    """A local file holding the object's bytes: ``(file, offset, is_temporary)``.

    The read cache's whole-object entry when the profile has a cache and the object fits
    in it; else a temporary file the caller unlinks once it is mapped.
    """
    cache = client._io.cache()
    if cache is not None:
        meta = client.info(path)
        client.read(path)  # fills (or validates) the whole-object entry
        found = cache.payload_file(path, meta.etag)
        if found is not None:
            return found[0], found[1], False
    fd, tmp = tempfile.mkstemp(prefix="manystore-mmap-", suffix=".npy")
    os.close(fd)
    try:
        client.download_file(path, tmp)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, 0, True


def _map_npy(file: str, offset: int, mode: str) -> Any:
    """Memory-map the ``.npy`` array stored at ``offset`` of ``file`` (or load an ``.npz``)."""
    np_ = _np()
    fmt = np_.lib.format
    with open(file, "rb") as fh:
        fh.seek(offset)
        magic = fh.read(6)
        if magic != fmt.MAGIC_PREFIX:
            raise ValueError(
                f"mmap_mode needs a .npy object; this one starts with {magic!r}, expected {fmt.MAGIC_PREFIX!r}"
            )
        fh.seek(offset)
        version = fmt.read_magic(fh)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(fh)
        data_offset = fh.tell()
    if dtype.hasobject:
        raise ValueError("mmap_mode cannot map an array of Python objects (dtype=object)")
    return np_.memmap(
        file, dtype=dtype, mode=mode, shape=shape, order="F" if fortran else "C", offset=data_offset
    )


def _check_map_mode(mode: str, file: Any) -> None:
    if mode not in _READ_ONLY_MAPS:
        raise ValueError(
            f"mmap mode {mode!r} would write to a local copy of {file!r}, an object on a store; "
            "expected 'r' or 'c' (write changes with manystore.numpy.save)"
        )


def _map_remote(client: StorageClient, path: str, file: Any, mode: str) -> Any:
    _check_map_mode(mode, file)
    local, offset, temporary = _local_copy(client, path)
    try:
        with open(local, "rb") as fh:
            fh.seek(offset)
            head = fh.read(4)
        if head.startswith(b"PK"):  # an .npz: numpy loads it lazily per member, no mapping
            with open(local, "rb") as fh:
                fh.seek(offset)
                return _np().load(io.BytesIO(fh.read()))
        return _map_npy(local, offset, mode)
    finally:
        if temporary:
            with contextlib.suppress(OSError):
                os.unlink(local)  # the mapping keeps the data until the array is freed


def load(file: Any, *args: Any, **kwargs: Any) -> Any:
    """``numpy.load`` of a URL, a path or a binary file object.

    Args:
        file: ``msc://profile/x.npy``, ``s3://bucket/x.npz``, a local path, or a file object.
        *args: Passed to ``numpy.load`` (``mmap_mode``, ``allow_pickle``...).
        **kwargs: Passed to ``numpy.load``. ``allow_pickle`` keeps numpy's default (False).
            ``mmap_mode`` on an object maps a local copy (see the module docstring).

    Returns:
        What ``numpy.load`` returns (an array, a ``numpy.memmap``, or an ``NpzFile`` for ``.npz``).

    Raises:
        ValueError: A writing ``mmap_mode`` (``"r+"``, ``"w+"``) for an object on a store, or
            an object array without ``allow_pickle=True``.
        FileNotFoundError: No object at ``file``.
    """
    np_ = _np()
    if not _is_location(file):
        return np_.load(file, *args, **kwargs)
    client, path, local = _resolve(file)
    if local is not None:
        return np_.load(local, *args, **kwargs)
    mmap_mode = args[0] if args else kwargs.get("mmap_mode")
    if mmap_mode is not None:
        extra = {k: v for k, v in kwargs.items() if k not in ("mmap_mode", "allow_pickle")}
        if extra or len(args) > 1:
            raise TypeError(f"load(mmap_mode=...) of an object takes no other options, got {sorted(extra)}")
        return _map_remote(client, path, file, mmap_mode)
    return np_.load(io.BytesIO(client.read(path)), *args, **kwargs)


def _write_with(file: Any, attributes: dict[str, str] | None, writer: Any, *args: Any, **kwargs: Any) -> None:
    """Run numpy's ``writer`` into the object at ``file`` (streamed), or into a local file."""
    if not _is_location(file):
        if attributes:
            raise TypeError("attributes= needs a URL or path, not a file object")
        writer(file, *args, **kwargs)
        return
    client, path, _ = _resolve(file)
    with client.open(path, "wb", attributes=attributes) as fp:
        writer(fp, *args, **kwargs)


def save(file: Any, arr: Any, *args: Any, attributes: dict[str, str] | None = None, **kwargs: Any) -> None:
    """``numpy.save`` to a URL or path, streamed into the object (no ``.npy`` is appended).

    Args:
        file: Destination URL, path or binary file object.
        arr: The array.
        *args: Passed to ``numpy.save``.
        attributes: User metadata stored with the object.
        **kwargs: Passed to ``numpy.save`` (``allow_pickle``...).
    """
    _write_with(file, attributes, _np().save, arr, *args, **kwargs)


def savez(file: Any, *args: Any, attributes: dict[str, str] | None = None, **kwds: Any) -> None:
    """``numpy.savez`` (several arrays in one uncompressed ``.npz``) to a URL or path.

    Args:
        file: Destination URL, path or binary file object (no ``.npz`` is appended).
        *args: Arrays stored as ``arr_0``, ``arr_1``...
        attributes: User metadata stored with the object.
        **kwds: Arrays stored under their keyword names.
    """
    _write_with(file, attributes, _np().savez, *args, **kwds)


def savez_compressed(file: Any, *args: Any, attributes: dict[str, str] | None = None, **kwds: Any) -> None:
    """``numpy.savez_compressed`` (a deflate-compressed ``.npz``) to a URL or path.

    Args:
        file: Destination URL, path or binary file object (no ``.npz`` is appended).
        *args: Arrays stored as ``arr_0``, ``arr_1``...
        attributes: User metadata stored with the object.
        **kwds: Arrays stored under their keyword names.
    """
    _write_with(file, attributes, _np().savez_compressed, *args, **kwds)


def memmap(filename: Any, *args: Any, **kwargs: Any) -> np.memmap:
    """``numpy.memmap`` of a local file, or of a local copy of an object on a store.

    Arguments are ``numpy.memmap``'s (``dtype``, ``mode``, ``offset``, ``shape``, ``order``):
    the file's raw bytes are mapped, as numpy does. For a file-system profile or path this
    is ``numpy.memmap`` itself (every mode, numpy's default ``"r+"``). For an object on a
    store the mode defaults to ``"r"`` (as the reference does), only ``"r"`` and ``"c"``
    are accepted, and the copy is the read cache's entry or a temporary file (see the
    module docstring).

    Raises:
        ValueError: A writing mode for an object on a store.
    """
    client, path, local = _resolve(filename)
    np_ = _np()
    if local is not None:
        return np_.memmap(local, *args, **kwargs)
    names = ("dtype", "mode", "offset", "shape", "order")
    if len(args) > len(names):
        raise TypeError(f"memmap takes at most {len(names) + 1} positional arguments, got {len(args) + 1}")
    options: dict[str, Any] = {"dtype": np_.uint8, "mode": "r", "offset": 0, "shape": None, "order": "C"}
    options.update(zip(names, args, strict=False))
    unknown = set(kwargs) - set(names)
    if unknown:
        raise TypeError(f"memmap got unexpected keyword arguments {sorted(unknown)}")
    options.update(kwargs)
    _check_map_mode(options["mode"], filename)
    local_file, base, temporary = _local_copy(client, path)
    try:
        return np_.memmap(local_file, **{**options, "offset": base + options["offset"]})
    finally:
        if temporary:
            with contextlib.suppress(OSError):
                os.unlink(local_file)
