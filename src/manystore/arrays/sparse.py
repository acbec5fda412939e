"""scipy sparse matrices stored as cottoncandy stores them."""

from __future__ import annotations


class SparseMixin:
    """``upload_sparse_array`` / ``download_sparse_array`` for :class:`~manystore.arrays.array.ArrayInterface`."""
