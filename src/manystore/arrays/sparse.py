"""scipy sparse matrices stored as cottoncandy stores them: a directory of raw arrays.

``upload_sparse_array("name", m)`` writes each array attribute of the format as a raw
array object and ``name/metadata.json`` = ``{"type": ..., "attrs": [...], "shape": [r, c]}``:

====== =============================
type   attrs (objects ``name/<attr>``)
====== =============================
csr    data, indices, indptr
csc    data, indices, indptr
coo    row, col, data
bsr    data, indices, indptr
dia    data, offsets
====== =============================

DOK and LIL matrices are stored as CSR (as cottoncandy does); scipy's ``*_array``
classes are stored like their matrix counterparts. Downloads return scipy *matrices*
of the stored type. scipy and numpy are imported on first use.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ._paths import clean_name, pathjoin

__all__ = ["SPARSE_ATTRS", "SparseMixin"]

#: The arrays stored for each sparse format, in cottoncandy's order.
SPARSE_ATTRS: dict[str, tuple[str, ...]] = {
    "csr": ("data", "indices", "indptr"),
    "coo": ("row", "col", "data"),
    "csc": ("data", "indices", "indptr"),
    "bsr": ("data", "indices", "indptr"),
    "dia": ("data", "offsets"),
}
_CONVERTED = {"dok": "csr", "lil": "csr"}


class SparseMixin:
    """``upload_sparse_array`` / ``download_sparse_array`` of :class:`~manystore.arrays.array.ArrayInterface`."""

    if TYPE_CHECKING:
        threads: int

        def upload_raw_array(self, object_name: str, array: Any, *args: Any, **kwargs: Any) -> Any: ...
        def download_raw_array(self, object_name: str, *args: Any, **kwargs: Any) -> Any: ...
        def upload_json(self, object_name: str, ddict: Any, *args: Any, **kwargs: Any) -> Any: ...
        def download_json(self, object_name: str, *args: Any, **kwargs: Any) -> Any: ...

    def upload_sparse_array(self, object_name: str, arr: Any, threads: int | None = None) -> None:
        """Upload a scipy sparse matrix (or array) as a directory of raw arrays.

        Args:
            object_name: The directory to create.
            arr: A CSR, CSC, COO, BSR or DIA matrix/array; DOK and LIL are converted to CSR.
            threads: Parallel uploads of the parts (``None``: the interface's default).

        Raises:
            TypeError: ``arr`` is not a scipy sparse matrix.
            ValueError: ``threads`` is not a positive integer.
        """
        import scipy.sparse

        if not scipy.sparse.issparse(arr):
            raise TypeError(f"upload_sparse_array: expected a scipy.sparse matrix, got {type(arr).__name__}")
        kind = str(arr.format)
        if kind in _CONVERTED:
            arr, kind = arr.tocsr(), _CONVERTED[kind]
        if kind not in SPARSE_ATTRS:
            raise TypeError(f"upload_sparse_array: format {kind!r} is not supported; expected one of "
                            f"{sorted(SPARSE_ATTRS) + sorted(_CONVERTED)}")  # fmt: skip
        name = clean_name(object_name).rstrip("/")
        attrs = SPARSE_ATTRS[kind]
        workers = _workers(threads, self.threads)
        with ThreadPoolExecutor(max_workers=min(workers, len(attrs))) as pool:
            list(
                pool.map(
                    lambda a: self.upload_raw_array(pathjoin(name, a), getattr(arr, a), threads=1), attrs
                )
            )
        metadata = {"type": kind, "attrs": list(attrs), "shape": [int(n) for n in arr.shape]}
        self.upload_json(pathjoin(name, "metadata.json"), metadata)

    def download_sparse_array(self, object_name: str, threads: int | None = None) -> Any:
        """The sparse matrix stored at ``object_name`` (here or by cottoncandy).

        Args:
            object_name: The directory written by :meth:`upload_sparse_array`.
            threads: Parallel downloads of the parts (``None``: the interface's default).

        Returns:
            A ``scipy.sparse`` matrix of the stored format.

        Raises:
            FileNotFoundError: No ``object_name/metadata.json``.
            ValueError: The metadata names an unknown format or lacks a key.
        """
        import scipy.sparse as sp

        name = clean_name(object_name).rstrip("/")
        meta = self.download_json(pathjoin(name, "metadata.json"))
        try:
            kind, attrs, shape = str(meta["type"]), list(meta["attrs"]), tuple(int(n) for n in meta["shape"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{name}/metadata.json is not a sparse matrix's metadata ({err!r})") from None
        if kind not in SPARSE_ATTRS or set(attrs) != set(SPARSE_ATTRS[kind]):
            raise ValueError(
                f"{name}/metadata.json: type {kind!r} with attrs {attrs}; expected one of "
                f"{ {k: list(v) for k, v in SPARSE_ATTRS.items()} }"
            )
        workers = _workers(threads, self.threads)
        with ThreadPoolExecutor(max_workers=min(workers, len(attrs))) as pool:
            parts = dict(
                zip(attrs, pool.map(lambda a: self.download_raw_array(pathjoin(name, a)), attrs), strict=True)
            )
        if kind == "coo":
            return sp.coo_matrix((parts["data"], (parts["row"], parts["col"])), shape=shape)
        if kind == "dia":
            return sp.dia_matrix((parts["data"], parts["offsets"]), shape=shape)
        cls = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "bsr": sp.bsr_matrix}[kind]
        return cls((parts["data"], parts["indices"], parts["indptr"]), shape=shape)


def _workers(threads: int | None, default: int) -> int:
    workers = default if threads is None else threads
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"threads={threads!r}: expected a positive integer")
    return workers
