"""Dask arrays stored as cottoncandy's chunked arrays (``name/pt0000``… + ``metadata.json``)."""

from __future__ import annotations


class DaskMixin:
    """``upload_dask_array`` / ``download_dask_array`` for :class:`~manystore.arrays.array.ArrayInterface`."""
