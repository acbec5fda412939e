"""Custom providers written against the older (seed-000) contract, adapted to MSC 1.3.1's.

The seed's :class:`~manystore.types.StorageProvider` took ``put_object(path, body,
metadata, if_match, if_none_match)``, ``list_objects(prefix, start_after, end_at,
include_directories)`` and ``glob(pattern)``; its :class:`~manystore.types.MetadataProvider`
the same ``list_objects``/``glob`` and a ``realpath`` answering ``(physical_path, exists)``.
:class:`manystore.StorageClient` calls providers with 1.3.1's parameters, so a provider
whose methods still have the older signatures is wrapped by :func:`adapt_storage_provider`
/ :func:`adapt_metadata_provider`: each call is translated, and the listing options the
older methods lack (attribute filters, ``show_attributes``, symlink handling) are applied
to their results. Providers already on 1.3.1's contract are used as they are.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

from .._contract import apply_list_options, as_resolved
from ..attribute_filter import compile_attribute_filter, matches
from ..types import (
    MetadataProvider,
    ObjectMetadata,
    Range,
    ResolvedPath,
    SignerType,
    StorageProvider,
    SymlinkHandling,
)

__all__ = ["SeedMetadataProvider", "SeedStorageProvider", "adapt_metadata_provider", "adapt_storage_provider"]


def _lacks(obj: object, method: str, *names: str) -> bool:
    """True if ``obj.method`` exists and takes none of ``names`` (nor ``**kwargs``)."""
    fn = getattr(obj, method, None)
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return False
    return not any(name in params for name in names)


def _own(obj: object, base: type, name: str) -> Callable[..., Any] | None:
    """``obj.name`` if ``obj``'s class defines it itself (not inherited from ``base``'s default)."""
    impl = getattr(type(obj), name, None)
    if impl is None or impl is getattr(base, name, None):
        return None
    return getattr(obj, name)


def _filtered_keys(
    keys: list[str], expression: str | None, head: Callable[[str], ObjectMetadata]
) -> list[str]:
    predicate = compile_attribute_filter(expression)
    if predicate is None:
        return keys
    return [k for k in keys if matches(head(k), predicate)]


def adapt_storage_provider(provider: StorageProvider) -> StorageProvider:
    """``provider`` itself if it follows 1.3.1's contract, else a :class:`SeedStorageProvider` around it."""
    if isinstance(provider, SeedStorageProvider):
        return provider
    old_put = _lacks(provider, "put_object", "attributes")
    old_list = _lacks(provider, "list_objects", "attribute_filter_expression")
    old_glob = _lacks(provider, "glob", "attribute_filter_expression")
    if not (old_put or old_list or old_glob):
        return provider
    return SeedStorageProvider(provider)


def adapt_metadata_provider(provider: MetadataProvider | None) -> MetadataProvider | None:
    """``provider`` itself if it follows 1.3.1's contract, else a :class:`SeedMetadataProvider` around it."""
    if provider is None or isinstance(provider, SeedMetadataProvider):
        return provider
    old_list = _lacks(provider, "list_objects", "attribute_filter_expression")
    old_glob = _lacks(provider, "glob", "attribute_filter_expression")
    return SeedMetadataProvider(provider) if old_list or old_glob else provider


class SeedStorageProvider(StorageProvider):
    """A seed-000 storage provider seen through 1.3.1's contract (see the module docstring).

    Args:
        inner: The provider with the older method signatures.
    """

    def __init__(self, inner: StorageProvider) -> None:
        self._inner = inner
        self._old_put = _lacks(inner, "put_object", "attributes")
        self._old_list = _lacks(inner, "list_objects", "attribute_filter_expression")
        self._old_glob = _lacks(inner, "glob", "attribute_filter_expression")

    @property
    def wrapped(self) -> StorageProvider:
        """The adapted provider."""
        return self._inner

    def __repr__(self) -> str:
        return repr(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)  # the provider's own extras (e.g. a base_path property)

    def put_object(
        self,
        path: str,
        body: bytes,
        if_match: str | None = None,
        if_none_match: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Store ``body``; the older form gets ``attributes`` as its ``metadata`` argument."""
        if not self._old_put:
            self._inner.put_object(
                path, body, if_match=if_match, if_none_match=if_none_match, attributes=attributes
            )
            return
        conditions = {"if_match": if_match, "if_none_match": if_none_match}
        kwargs = {k: v for k, v in conditions.items() if v is not None}
        self._inner.put_object(path, body, attributes, **kwargs)  # type: ignore[arg-type]

    def get_object(self, path: str, byte_range: Range | None = None) -> bytes:
        """The object's bytes (or a slice)."""
        return self._inner.get_object(path, byte_range)

    def copy_object(self, src_path: str, dest_path: str) -> None:
        """Copy an object within the provider."""
        self._inner.copy_object(src_path, dest_path)

    def delete_object(self, path: str, if_match: str | None = None) -> None:
        """Delete one object (``if_match`` passed only when given)."""
        if if_match is None:
            self._inner.delete_object(path)
        else:
            self._inner.delete_object(path, if_match=if_match)

    def delete_objects(self, paths: Sequence[str]) -> None:
        """The provider's own bulk delete, else one :meth:`delete_object` per path."""
        own = _own(self._inner, StorageProvider, "delete_objects")
        own(paths) if own is not None else super().delete_objects(paths)

    def make_symlink(self, path: str, target: str) -> None:
        """The provider's own symlinks, else 1.3.1's object-store marker."""
        own = _own(self._inner, StorageProvider, "make_symlink")
        own(path, target) if own is not None else super().make_symlink(path, target)

    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        """Metadata of ``path``."""
        return self._inner.get_object_metadata(path, strict)

    def list_objects(
        self,
        path: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
        attribute_filter_expression: str | None = None,
        show_attributes: bool = False,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    ) -> Iterator[ObjectMetadata]:
        """The older listing, with the options it lacks applied to its entries."""
        if not self._old_list:
            return self._inner.list_objects(
                path, start_after=start_after, end_at=end_at, include_directories=include_directories,
                attribute_filter_expression=attribute_filter_expression, show_attributes=show_attributes,
                symlink_handling=symlink_handling,
            )  # fmt: skip
        entries = self._inner.list_objects(path, start_after, end_at, include_directories)
        return apply_list_options(
            entries, attribute_filter_expression, show_attributes, symlink_handling, self.get_object_metadata
        )

    def list_objects_recursive(
        self,
        path: str = "",
        start_after: str | None = None,
        end_at: str | None = None,
        max_workers: int = 32,
        look_ahead: int = 2,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    ) -> Iterator[ObjectMetadata]:
        """The provider's own recursive listing, else the generic one over :meth:`list_objects`."""
        own = _own(self._inner, StorageProvider, "list_objects_recursive")
        if own is not None:
            return own(path, start_after, end_at, max_workers, look_ahead, symlink_handling)
        return super().list_objects_recursive(
            path, start_after, end_at, max_workers, look_ahead, symlink_handling
        )

    def upload_file(self, remote_path: str, f: str | IO, attributes: dict[str, Any] | None = None) -> None:
        """Upload a local file."""
        self._inner.upload_file(remote_path, f, attributes)

    def download_file(self, remote_path: str, f: str | IO, metadata: ObjectMetadata | None = None) -> None:
        """Download into a local file."""
        self._inner.download_file(remote_path, f, metadata)

    def glob(self, pattern: str, attribute_filter_expression: str | None = None) -> list[str]:
        """The older glob, filtered by attributes (one metadata request per key) when asked."""
        if not self._old_glob:
            return self._inner.glob(pattern, attribute_filter_expression=attribute_filter_expression)
        keys = list(self._inner.glob(pattern))
        return _filtered_keys(keys, attribute_filter_expression, self.get_object_metadata)

    def is_file(self, path: str) -> bool:
        """True if an object exists at ``path``."""
        return self._inner.is_file(path)

    def generate_presigned_url(
        self,
        path: str,
        *,
        method: str = "GET",
        signer_type: SignerType | None = None,
        signer_options: dict[str, Any] | None = None,
    ) -> str:
        """The provider's own signer.

        Raises:
            NotImplementedError: The provider has none.
        """
        own = _own(self._inner, StorageProvider, "generate_presigned_url")
        if own is None:
            raise NotImplementedError(f"{self._inner!r} cannot generate presigned URLs for {path!r}")
        return str(own(path, method=method, signer_type=signer_type, signer_options=signer_options))


class SeedMetadataProvider(MetadataProvider):
    """A seed-000 metadata provider seen through 1.3.1's contract (see the module docstring).

    Args:
        inner: The provider with the older method signatures.
    """

    def __init__(self, inner: MetadataProvider) -> None:
        self._inner = inner
        self._old_list = _lacks(inner, "list_objects", "attribute_filter_expression")
        self._old_glob = _lacks(inner, "glob", "attribute_filter_expression")

    @property
    def wrapped(self) -> MetadataProvider:
        """The adapted provider."""
        return self._inner

    def __repr__(self) -> str:
        return repr(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _head(self, key: str) -> ObjectMetadata:
        return self._inner.get_object_metadata(key, True)

    def list_objects(
        self,
        path: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
        attribute_filter_expression: str | None = None,
        show_attributes: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """The older listing, filtered by attributes when asked."""
        if not self._old_list:
            return self._inner.list_objects(
                path, start_after=start_after, end_at=end_at, include_directories=include_directories,
                attribute_filter_expression=attribute_filter_expression, show_attributes=show_attributes,
            )  # fmt: skip
        entries = self._inner.list_objects(path, start_after, end_at, include_directories)
        return apply_list_options(entries, attribute_filter_expression, show_attributes, "follow", self._head)

    def get_object_metadata(self, path: str, include_pending: bool = False) -> ObjectMetadata:
        """Metadata of ``path``."""
        return self._inner.get_object_metadata(path, include_pending)

    def glob(self, pattern: str, attribute_filter_expression: str | None = None) -> list[str]:
        """The older glob, filtered by attributes when asked."""
        if not self._old_glob:
            return self._inner.glob(pattern, attribute_filter_expression=attribute_filter_expression)
        keys = list(self._inner.glob(pattern))
        return _filtered_keys(keys, attribute_filter_expression, self._head)

    def realpath(self, logical_path: str) -> ResolvedPath:
        """The older ``(physical_path, exists)`` answer as a :class:`ResolvedPath`."""
        return as_resolved(self._inner.realpath(logical_path), logical_path, self._inner)

    def generate_physical_path(self, logical_path: str, for_overwrite: bool = False) -> ResolvedPath:
        """The provider's own write placement, else the path :meth:`realpath` answers."""
        own = _own(self._inner, MetadataProvider, "generate_physical_path")
        if own is None:
            return super().generate_physical_path(logical_path, for_overwrite)
        return as_resolved(own(logical_path, for_overwrite), logical_path, self._inner)

    def add_file(self, path: str, metadata: ObjectMetadata) -> None:
        """Track a file."""
        self._inner.add_file(path, metadata)

    def remove_file(self, path: str) -> None:
        """Stop tracking a file."""
        self._inner.remove_file(path)

    def commit_updates(self) -> None:
        """Persist pending updates."""
        self._inner.commit_updates()

    def is_writable(self) -> bool:
        """Whether the provider accepts updates."""
        return self._inner.is_writable()

    def allow_overwrites(self) -> bool:
        """The provider's own answer, else True."""
        own = _own(self._inner, MetadataProvider, "allow_overwrites")
        return bool(own()) if own is not None else True

    def should_use_soft_delete(self) -> bool:
        """The provider's own answer, else False."""
        own = _own(self._inner, MetadataProvider, "should_use_soft_delete")
        return bool(own()) if own is not None else False
