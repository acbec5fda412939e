"""Chunked arrays stored as cottoncandy stores them, read back as lazy dask arrays.

``upload_dask_array("name", arr)`` writes each chunk as a raw array object
``name/pt0000``, ``name/pt0001``... and ``name/metadata.json``::

    {"shape": [...], "dtype": "<f8",
     "dask": [[[0, 0, 0], "name/pt0000"], ...],      # chunk coordinates, part key in the bucket
     "chunk_sizes": [[100, 600, 100], ...],          # each part's shape
     "chunks": [[100], [600], [100, 100, ...]]}      # dask's chunks per dimension

— cottoncandy's layout, key order and chunking (including the empty last chunk its
splitter produces), so either library reads what the other wrote.
``download_dask_array`` reads only ``metadata.json``; each chunk is fetched when dask
computes a block that needs it, so a slice fetches only its chunks. dask and numpy are
imported on first use.
"""

from __future__ import annotations

import itertools
import math
import posixpath
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._paths import clean_name, pathjoin

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DASK_CHUNKSIZE", "DaskMixin", "generate_ndarray_chunks"]

#: cottoncandy's default chunk size for :meth:`DaskMixin.upload_dask_array` (100 MiB).
DASK_CHUNKSIZE = 100 * 2**20
_METADATA = "metadata.json"


def generate_ndarray_chunks(
    arr: np.ndarray, axis: int | None = None, buffersize: int = DASK_CHUNKSIZE
) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """Split ``arr`` into chunks of about ``buffersize`` bytes, exactly as cottoncandy splits it.

    Args:
        arr: The array.
        axis: Cut along this axis only; ``None``: near-isotropic blocks along every axis.
        buffersize: Target bytes per chunk.

    Yields:
        ``(chunk coordinates, chunk view)`` in C order of the coordinates. As in cottoncandy
        the chunk count per cut axis is ``ceil(n / step) + 1``, so the last chunk may be empty.

    Raises:
        ValueError: ``buffersize`` is not positive or ``axis`` is out of range.
    """
    import numpy as np

    if isinstance(buffersize, bool) or not isinstance(buffersize, int) or buffersize < 1:
        raise ValueError(f"buffersize={buffersize!r}: expected a positive number of bytes")
    ndim = arr.ndim
    if ndim == 0:
        yield (), arr
        return
    if axis is not None:
        if not -ndim <= axis < ndim:
            raise ValueError(f"axis={axis!r}: expected None or an axis of a {ndim}-d array")
        axis = axis % ndim
    itemsize = max(arr.itemsize, 1)
    # numpy's log/exp in cottoncandy's order: the same rounding, so the same chunks
    if axis is None:
        logsum, factor = 0.0, ndim
    else:
        others = [arr.shape[d] for d in range(ndim) if d != axis]
        logsum, factor = (float(np.sum([np.log(n) for n in others])) if all(others) else 0.0), 1
    step = max(math.ceil(float(np.exp(((np.log(buffersize) - np.log(itemsize)) - logsum) / factor))), 1)
    nchunks = [math.ceil(n / step) + 1 for n in arr.shape]
    if axis is not None:
        nchunks = [n if d == axis else 1 for d, n in enumerate(nchunks)]
    shapes = [step if (axis is None or d == axis) else arr.shape[d] for d in range(ndim)]
    for coords in itertools.product(*(range(n) for n in nchunks)):
        slicer = tuple(
            slice(shapes[d] * c, min(shapes[d] * (c + 1), arr.shape[d])) for d, c in enumerate(coords)
        )
        yield tuple(int(c) for c in coords), np.asarray(arr)[slicer]


class DaskMixin:
    """``upload_dask_array`` / ``download_dask_array`` of :class:`~manystore.arrays.array.ArrayInterface`."""

    if TYPE_CHECKING:
        threads: int

        def upload_raw_array(self, object_name: str, array: Any, *args: Any, **kwargs: Any) -> Any: ...
        def download_raw_array(self, object_name: str, *args: Any, **kwargs: Any) -> Any: ...
        def upload_json(self, object_name: str, ddict: Any, *args: Any, **kwargs: Any) -> Any: ...
        def download_json(self, object_name: str, *args: Any, **kwargs: Any) -> Any: ...
        def _key(self, name: str) -> str: ...
        @property
        def uses_sidecars(self) -> bool: ...

    def upload_dask_array(
        self,
        object_name: str,
        arr: Any,
        axis: int | None = -1,
        buffersize: int = DASK_CHUNKSIZE,
        threads: int | None = None,
        **metakwargs: Any,
    ) -> None:
        """Upload an array in chunks, with the metadata to rebuild it as a dask array.

        Each chunk is a raw array object (:meth:`upload_raw_array`, default compression)
        ``object_name/pt%04i``; ``object_name/metadata.json`` describes them (see the module
        doc). Chunks are uploaded ``threads`` at a time.

        Args:
            object_name: The directory of the parts.
            arr: The array (anything :func:`numpy.asarray` takes, a dask array included —
                it is computed chunk by chunk only as far as ``np.asarray`` needs).
            axis: Cut along this axis (default: the last); ``None``: near-isotropic blocks.
            buffersize: Target bytes per chunk (cottoncandy's default: 100 MiB; smaller
                sizes are allowed here).
            threads: Parallel chunk uploads (``None``: the interface's default).
            **metakwargs: User metadata stored on ``metadata.json``.

        Raises:
            ValueError: ``buffersize``, ``axis`` or ``threads`` is invalid.
        """
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        name = clean_name(object_name).rstrip("/")
        array = np.asarray(arr)
        workers = threads if threads is not None else self.threads
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"threads={threads!r}: expected a positive integer")
        metadata: dict[str, Any] = {
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "dask": [],
            "chunk_sizes": [],
        }
        jobs: list[tuple[str, np.ndarray]] = []
        for index, (coords, chunk) in enumerate(generate_ndarray_chunks(array, axis, buffersize)):
            part = pathjoin(name, f"pt{index:04d}")
            metadata["dask"].append([list(coords), _bucket_key(self, part)])
            metadata["chunk_sizes"].append(list(chunk.shape))
            jobs.append((part, chunk))

        def upload(job: tuple[str, np.ndarray]) -> None:
            part, chunk = job
            self.upload_raw_array(part, np.ascontiguousarray(chunk), threads=1)

        with ThreadPoolExecutor(max_workers=min(workers, max(len(jobs), 1))) as pool:
            list(pool.map(upload, jobs))
        sizes: list[dict[int, int]] = [{} for _ in range(array.ndim)]
        for (coords, _part), shape in zip(metadata["dask"], metadata["chunk_sizes"], strict=True):
            for dim, coord in enumerate(coords):
                sizes[dim].setdefault(coord, shape[dim])
        metadata["chunks"] = [[size for _, size in sorted(dim.items())] for dim in sizes]
        self.upload_json(pathjoin(name, _METADATA), metadata, **metakwargs)

    def download_dask_array(
        self, object_name: str, dask_name: str = "array", threads: int | None = None
    ) -> Any:
        """The array uploaded by :meth:`upload_dask_array` (here or by cottoncandy), as a lazy dask array.

        Only ``metadata.json`` is read now; computing (``np.asarray(x[..., :200])``)
        fetches just the parts the result needs.

        Args:
            object_name: The directory of the parts.
            dask_name: Name of the dask array's graph layer. The default ``"array"`` gets a
                token of the interface root and name appended, so two downloaded arrays
                never share graph keys; any other name is used as given.
            threads: Parallel requests per part download (``None``: the interface's default).

        Raises:
            FileNotFoundError: No ``object_name/metadata.json``.
            ValueError: The metadata is not a chunked array's.
        """
        import numpy as np
        from dask import array as da
        from dask.base import tokenize

        name = clean_name(object_name).rstrip("/")
        meta = self.download_json(pathjoin(name, _METADATA))
        try:
            shape = tuple(int(n) for n in meta["shape"])
            dtype = np.dtype(meta["dtype"])
            chunks = tuple(tuple(int(c) for c in dim) for dim in meta["chunks"])
            parts = [(tuple(int(c) for c in coords), str(part)) for coords, part in meta["dask"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{name}/{_METADATA} is not a chunked array's metadata ({err!r})") from None
        if dask_name == "array":
            dask_name = f"array-{tokenize(self._key(name), meta)}"
        offsets = [list(itertools.accumulate(dim, initial=0)) for dim in chunks]
        graph: dict[Any, Any] = {}
        for coords, part in parts:
            # parts live in the array's own directory: resolve by the part's base name, so
            # arrays written under another root (a cottoncandy bucket prefix) still load
            block = tuple(offsets[d][c + 1] - offsets[d][c] for d, c in enumerate(coords))
            key = (dask_name, *coords)
            graph[key] = (
                _fetch_part,
                self,
                pathjoin(name, posixpath.basename(part)),
                block,
                dtype.str,
                threads,
            )
        return da.Array(graph, dask_name, chunks, dtype=dtype, shape=shape)


def _bucket_key(interface: Any, name: str) -> str:
    """The key of ``name`` inside its bucket: what cottoncandy, at the bucket's root, calls it.

    ``metadata.json`` names the parts this way so cottoncandy finds them when the interface
    sits on a prefix of the bucket (``get_interface("bucket/prefix")``). On a local
    directory the directory is the "bucket".
    """
    key: str = interface._key(name)
    if interface.uses_sidecars:
        return key
    base = str(getattr(interface.client.config.storage_provider, "base_path", "") or "").strip("/")
    full = f"{base}/{key}" if base else key
    return full.partition("/")[2]


def _fetch_part(interface: Any, part: str, shape: tuple[int, ...], dtype: str, threads: int | None) -> Any:
    """One chunk of a dask array, checked against the shape and dtype the metadata promises."""
    if threads is None:
        chunk = interface.download_raw_array(part)
    else:
        chunk = interface.download_raw_array(part, threads=threads)
    if tuple(chunk.shape) != shape or chunk.dtype.str != dtype:
        raise ValueError(
            f"dask part {part!r} holds shape {tuple(chunk.shape)} dtype {chunk.dtype.str}; "
            f"expected shape {shape} dtype {dtype} (from metadata.json)"
        )
    return chunk
