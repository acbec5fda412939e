"""MSC's ``multistorageclient.contrib.xarray``: ``open_zarr`` (and ``to_zarr``) for ``msc://`` URLs.

An ``msc://`` store argument is opened through :class:`manystore.arrays.zarr_store.LazyZarrStore`
(``msc_max_workers=`` sets its thread count); anything else goes to xarray unchanged.
xarray is imported on first use.
"""

from __future__ import annotations

from typing import Any

from .zarr import swap_store

__all__ = ["open_zarr", "to_zarr"]


def open_zarr(*args: Any, **kwargs: Any) -> Any:
    """``xarray.open_zarr``, through a ``LazyZarrStore`` for ``msc://`` URLs.

    Args:
        *args: As ``xarray.open_zarr`` (the store first).
        **kwargs: As ``xarray.open_zarr``, plus ``msc_max_workers``.

    Returns:
        The ``xarray.Dataset`` (lazy: variables load their chunks when computed).
    """
    import xarray

    args, kwargs = swap_store(args, kwargs)
    return xarray.open_zarr(*args, **kwargs)


def to_zarr(dataset: Any, *args: Any, **kwargs: Any) -> Any:
    """``dataset.to_zarr(...)``, through a ``LazyZarrStore`` for an ``msc://`` store URL.

    ``ds.to_zarr("msc://...")`` also works without this helper (through the ``msc`` fsspec
    protocol); this one writes through the same store ``open_zarr`` reads with.

    Args:
        dataset: An ``xarray.Dataset`` (or ``DataArray``).
        *args: As ``Dataset.to_zarr`` (the store first).
        **kwargs: As ``Dataset.to_zarr``, plus ``msc_max_workers``.

    Returns:
        What ``to_zarr`` returns (a ``ZarrStore``, or a dask delayed with ``compute=False``).
    """
    args, kwargs = swap_store(args, kwargs)
    return dataset.to_zarr(*args, **kwargs)
