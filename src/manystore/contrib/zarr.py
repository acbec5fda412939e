"""MSC's ``multistorageclient.contrib.zarr``: :class:`LazyZarrStore` and zarr's openers for ``msc://``.

:func:`open_consolidated`, :func:`open`, :func:`open_group` and :func:`open_array` take
zarr's arguments; when the store argument (first positional or ``store=``) is an
``msc://`` URL they open it through a :class:`LazyZarrStore` (``msc_max_workers=`` sets
its thread count), otherwise they call zarr unchanged (as the reference does: an
``s3://`` URL then goes through zarr's own fsspec store). To open any other manystore URL
(``s3://``, ``gs://``, ``az://``...) through manystore, pass ``LazyZarrStore(url)``.

zarr is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..urls import MSC_PROTOCOL

if TYPE_CHECKING:
    from ..arrays.zarr_store import LazyZarrStore

__all__ = ["LazyZarrStore", "open", "open_array", "open_consolidated", "open_group"]


def __getattr__(name: str) -> Any:
    if name == "LazyZarrStore":
        from ..arrays.zarr_store import LazyZarrStore

        return LazyZarrStore
    raise AttributeError(f"module 'manystore.contrib.zarr' has no attribute {name!r}")


def _is_msc(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(f"{MSC_PROTOCOL}://")


def swap_store(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Replace an ``msc://`` store argument with a :class:`LazyZarrStore`; pop ``msc_max_workers``.

    Args:
        args: Positional arguments of a zarr/xarray opener (the store first).
        kwargs: Its keyword arguments (``store=`` is looked at when no positional is given).

    Returns:
        The arguments to call the opener with.

    Raises:
        TypeError: ``msc_max_workers`` was given but the store is not an ``msc://`` URL
            (there is no manystore store for it to configure).
    """
    kwargs = dict(kwargs)
    workers = kwargs.pop("msc_max_workers", None)
    target = args[0] if args else kwargs.get("store")
    if not _is_msc(target):
        if workers is not None:
            raise TypeError(f"msc_max_workers applies to msc:// stores only, got store {target!r}")
        return args, kwargs
    from ..arrays.zarr_store import LazyZarrStore

    if kwargs.get("storage_options"):
        raise TypeError(
            "storage_options does not apply to msc:// stores (their profile configures them); "
            f"got {sorted(kwargs['storage_options'])}"
        )
    kwargs.pop("storage_options", None)
    store = LazyZarrStore(str(target), msc_max_workers=workers)
    if args:
        return (store, *args[1:]), kwargs
    kwargs["store"] = store
    return args, kwargs


def open_consolidated(*args: Any, **kwargs: Any) -> Any:
    """``zarr.open_consolidated``, through a :class:`LazyZarrStore` for ``msc://`` URLs.

    Args:
        *args: As ``zarr.open_consolidated`` (the store first).
        **kwargs: As ``zarr.open_consolidated``, plus ``msc_max_workers``.

    Returns:
        The ``zarr.Group`` (its members' metadata read from the consolidated metadata).
    """
    import zarr

    args, kwargs = swap_store(args, kwargs)
    return zarr.open_consolidated(*args, **kwargs)


def open(*args: Any, **kwargs: Any) -> Any:
    """``zarr.open`` (an array or a group), through a :class:`LazyZarrStore` for ``msc://`` URLs.

    Args:
        *args: As ``zarr.open``.
        **kwargs: As ``zarr.open``, plus ``msc_max_workers``.
    """
    import zarr

    args, kwargs = swap_store(args, kwargs)
    return zarr.open(*args, **kwargs)


def open_group(*args: Any, **kwargs: Any) -> Any:
    """``zarr.open_group``, through a :class:`LazyZarrStore` for ``msc://`` URLs.

    Args:
        *args: As ``zarr.open_group``.
        **kwargs: As ``zarr.open_group``, plus ``msc_max_workers``.
    """
    import zarr

    args, kwargs = swap_store(args, kwargs)
    return zarr.open_group(*args, **kwargs)


def open_array(*args: Any, **kwargs: Any) -> Any:
    """``zarr.open_array``, through a :class:`LazyZarrStore` for ``msc://`` URLs.

    Args:
        *args: As ``zarr.open_array``.
        **kwargs: As ``zarr.open_array``, plus ``msc_max_workers``.
    """
    import zarr

    args, kwargs = swap_store(args, kwargs)
    return zarr.open_array(*args, **kwargs)
