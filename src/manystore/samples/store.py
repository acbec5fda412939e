"""``DataStore``: where a dataset's shards are written, on any profile (atdata's ``AbstractDataStore``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

__all__ = ["AbstractDataStore", "DataStore"]


@runtime_checkable
class AbstractDataStore(Protocol):
    """What a data store offers (atdata's ``AbstractDataStore``)."""

    def write_shards(self, ds: Any, *, prefix: str, **kwargs: Any) -> list[str]:
        """Write the samples of ``ds`` as shards under ``prefix``; returns their URLs."""
        ...

    def read_url(self, url: str) -> str:
        """A URL that readers can open for the stored ``url``."""
        ...

    def supports_streaming(self) -> bool:
        """True if shards can be read as a stream (without a full download first)."""
        ...


def _samples(ds: Any) -> Iterable[Any]:
    if isinstance(ds, (str, bytes)) or ds is None:
        raise TypeError(f"write_shards takes a Dataset or an iterable of samples, got {type(ds).__name__}")
    if hasattr(ds, "__iter__"):
        return ds
    if hasattr(ds, "ordered"):
        return ds.ordered()
    raise TypeError(f"write_shards takes a Dataset or an iterable of samples, got {type(ds).__name__}")


class DataStore:
    """Shards of packable samples under ``url_prefix`` on any profile.

    Args:
        url_prefix: Where shards go: ``msc://profile/datasets``, ``s3://bucket/prefix``, a local
            directory...

    Example:
        >>> store = DataStore("msc://p/datasets")  # doctest: +SKIP
        >>> urls = store.write_shards(samples, prefix="mnist/v1", maxcount=1000)  # doctest: +SKIP
        >>> urls[0]  # doctest: +SKIP
        'msc://p/datasets/mnist/v1/shard-000000.tar'
    """

    def __init__(self, url_prefix: str | os.PathLike[str]) -> None:
        prefix = os.fspath(url_prefix)
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(
                f"a DataStore needs a URL prefix such as 'msc://profile/datasets', got {url_prefix!r}"
            )
        self.url_prefix = prefix.rstrip("/") if prefix.strip("/") else prefix

    def __repr__(self) -> str:
        return f"DataStore({self.url_prefix!r})"

    def _join(self, *parts: str) -> str:
        clean = [p.strip("/") for p in parts if p and p.strip("/")]
        return "/".join([self.url_prefix.rstrip("/"), *clean]) if clean else self.url_prefix

    def write_shards(
        self,
        ds: Any,
        *,
        prefix: str,
        maxcount: int = 10_000,
        maxsize: int | None = None,
        name: str = "shard",
    ) -> list[str]:
        """Write the samples of ``ds`` as tar shards ``{url_prefix}/{prefix}/{name}-NNNNNN.tar``.

        Each shard streams straight to the store and is visible only once complete (see
        :func:`~manystore.samples.write_samples`).

        Args:
            ds: A samples ``Dataset`` or any iterable of packable samples.
            prefix: Path under the store's prefix (``"mnist/v1"``).
            maxcount: At most this many samples per shard.
            maxsize: At most about this many bytes per shard (None: no size limit).
            name: Shard file name stem.

        Returns:
            The shard URLs, in order.

        Raises:
            ValueError: ``prefix`` or ``name`` holds ``..``, ``name`` a ``/``, or bad limits.
        """
        if ".." in prefix.split("/") or "/" in name or name == ".." or not name:
            raise ValueError(
                f"bad shard location prefix={prefix!r} name={name!r}: no '..' segments, name without '/'"
            )
        from .writer import write_samples

        pattern = self._join(prefix, f"{name}-%06d.tar")
        return write_samples(_samples(ds), pattern, maxcount=maxcount, maxsize=maxsize)

    def read_url(self, url: str) -> str:
        """The URL to open ``url`` with: a path relative to this store is joined to its prefix.

        manystore's readers (``Dataset``, :func:`manystore.open`) open every URL this store
        writes as it is, so absolute URLs come back unchanged.
        """
        if "://" in url or os.path.isabs(url):
            return url
        return self._join(url)

    def supports_streaming(self) -> bool:
        """True: every manystore backend reads shards as streams (ranged GETs), no full download."""
        return True
