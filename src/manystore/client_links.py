"""Symlinks, presigned URLs and include/exclude patterns of :class:`manystore.StorageClient`.

Symlinks follow multi-storage-client 1.3.1's convention, so both libraries read each
other's links:

* on POSIX profiles a symlink is a real relative symlink, and its target must stay
  inside ``base_path``;
* on object stores it is an empty object whose user metadata ``msc-symlink-target`` holds
  the target relative to the link's directory (see
  :meth:`manystore.types.ObjectMetadata.encode_symlink_target`);
* with a metadata provider (manifest) the link is a manifest entry with ``symlink_target``.

Reads (:meth:`~manystore.StorageClient.read`, ``open`` for reading) follow a chain of
links up to :data:`manystore.types.MAX_SYMLINK_DEPTH` hops; a longer chain or a cycle
raises :class:`ValueError`.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._contract import (
    SYMLINK_ATTRIBUTE,
    keep_listed_link,
    resolve_inside,
    symlink_target_of,
)
from .errors import InvalidPathError
from .providers.base import BaseStorageProvider
from .types import (
    MAX_SYMLINK_DEPTH,
    ObjectMetadata,
    PatternList,
    PatternType,
    SignerType,
    SymlinkHandling,
)
from .utils import normalize_key

if TYPE_CHECKING:
    from .client import StorageClient

__all__ = [
    "SYMLINK_ATTRIBUTE",
    "LinksMixin",
    "PatternMatcher",
    "follow_symlinks",
    "symlink_target_of",
]

#: User-metadata key holding a symlink's target on object stores (1.3.1's name). Azure
#: metadata names must be identifiers: there it is ``msc_symlink_target`` (as in 1.3.1).


class PatternMatcher:
    """AWS-``s3 sync``-style include/exclude filter over keys (1.3.1's ``patterns``).

    With only ``INCLUDE`` patterns a key is out unless one matches; otherwise every key is
    in until an ``EXCLUDE`` matches. Later patterns override earlier ones. Patterns are
    :mod:`fnmatch` globs on the key relative to the listed or synced directory.

    Raises:
        TypeError: ``patterns`` is not a list of ``(PatternType, str)`` pairs.
    """

    def __init__(self, patterns: PatternList) -> None:
        checked: list[tuple[PatternType, str]] = []
        for item in patterns:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
                raise TypeError(f"patterns must be (PatternType, str) pairs, got {item!r}")
            try:
                kind = PatternType(item[0])
            except ValueError:
                raise TypeError(f"pattern type must be a PatternType, got {item[0]!r}") from None
            checked.append((kind, item[1]))
        self.patterns = checked
        kinds = {kind for kind, _ in checked}
        self._default = kinds != {PatternType.INCLUDE}

    def matches(self, key: str) -> bool:
        """Whether ``key`` passes the filter."""
        included = self._default
        for kind, pattern in self.patterns:
            if fnmatch.fnmatchcase(key, pattern):
                included = kind is PatternType.INCLUDE
        return included

    def __repr__(self) -> str:
        return f"PatternMatcher({self.patterns!r})"


def follow_symlinks(path: str, head: Any) -> tuple[str, ObjectMetadata]:
    """Follow the symlink chain from ``path``: ``(final key, its metadata)``.

    Args:
        path: Key to start at.
        head: ``head(key) -> ObjectMetadata`` (raises :class:`FileNotFoundError`).

    Raises:
        ValueError: A cycle, or more than :data:`MAX_SYMLINK_DEPTH` hops.
        InvalidPathError: A link points outside the profile.
    """
    seen: set[str] = set()
    key = normalize_key(path)
    while True:
        meta = head(key)
        target = symlink_target_of(meta)
        if target is None:
            return key, meta
        if key in seen:
            raise ValueError(f"symlink cycle at {key!r} (while resolving {path!r})")
        if len(seen) >= MAX_SYMLINK_DEPTH:
            raise ValueError(
                f"too many levels of symlinks resolving {path!r}: more than MAX_SYMLINK_DEPTH={MAX_SYMLINK_DEPTH}"
            )
        seen.add(key)
        key = resolve_inside(key, target)


class LinksMixin:
    """:class:`~manystore.StorageClient` methods for symlinks, presigned URLs and listing filters."""

    def make_symlink(self: StorageClient, path: str, target: str) -> None:  # type: ignore[misc]
        """Create a symlink at ``path`` pointing at the key ``target`` (both in this profile).

        The link stores ``target`` relative to its own directory, so a profile moved as a
        whole keeps working links. An existing object at ``path`` is replaced.

        Raises:
            InvalidPathError: ``target`` (or ``path``) lies outside the profile's ``base_path``.
            ValueError: ``path`` and ``target`` are the same key.
        """
        link, dest = normalize_key(path), normalize_key(target)
        if not link or link == dest:
            raise ValueError(f"make_symlink: path {path!r} must be a key other than its target {target!r}")
        relative = ObjectMetadata.encode_symlink_target(link, dest)
        if self._metadata_provider is not None:
            self._io.check_writable(link)
            now = datetime.now(tz=timezone.utc)
            meta = ObjectMetadata(key=link, content_length=0, last_modified=now, symlink_target=relative)
            self._metadata_provider.add_file(link, meta)
            return
        sp = self._storage_provider
        self._io.retry(lambda: sp.make_symlink(link, dest), f"make_symlink {path}")
        self._io.invalidate(link)

    def _follow(self: StorageClient, path: str) -> tuple[str, ObjectMetadata]:  # type: ignore[misc]
        """``(final key, metadata)`` of ``path`` after following symlinks (object stores, manifests)."""
        return follow_symlinks(path, self.info)

    def generate_presigned_url(  # type: ignore[misc]
        self: StorageClient,
        path: str,
        *,
        method: str = "GET",
        signer_type: SignerType | None = None,
        signer_options: dict[str, Any] | None = None,
    ) -> str:
        """A URL granting ``method`` on ``path`` to anyone holding it, for a limited time.

        S3 (and S3-compatible stores) sign with SigV4, Azure with a SAS from the account key,
        GCS with a V4 signed URL (needs credentials that can sign); a POSIX profile answers
        the ``file://`` URL.

        Args:
            path: Key of the object.
            method: ``GET``, ``HEAD``, ``PUT`` or ``DELETE``.
            signer_type: ``None`` (the store's own signer) or that signer's
                :class:`~manystore.types.SignerType`; others (e.g. CloudFront) are refused.
            signer_options: ``{"expires_in": seconds}`` (default 3600).

        Raises:
            ValueError: Bad method, signer type or option; with a metadata provider, a
                method other than GET/HEAD (writes through the URL would bypass it).
            PermissionError: The profile's credentials cannot sign.
            NotImplementedError: The provider cannot sign URLs.
        """
        physical = path
        if self._metadata_provider is not None:
            if str(method).upper() not in ("GET", "HEAD"):
                raise ValueError(
                    f"presigned {method!r} URL refused: profile {self.profile!r} has a metadata provider; "
                    "expected GET or HEAD (a write through the URL would bypass it)"
                )
            physical = self._io.physical(path)
        sp = self._storage_provider
        signer = getattr(sp, "generate_presigned_url", None)
        if signer is None:
            raise NotImplementedError(f"{sp!r} cannot generate presigned URLs")
        return str(signer(physical, method=method, signer_type=signer_type, signer_options=signer_options))

    def _filter_listing(  # type: ignore[misc]
        self: StorageClient,
        entries: Iterator[ObjectMetadata],
        base: str,
        url: str,
        patterns: PatternMatcher | None,
        handling: SymlinkHandling,
    ) -> Iterator[ObjectMetadata]:
        """Apply ``patterns`` (to keys relative to ``base``) and ``handling`` to listed entries."""
        sp = self._storage_provider
        local_of = sp.local_path if isinstance(sp, BaseStorageProvider) else None
        inspect = handling is not SymlinkHandling.FOLLOW
        for meta in entries:
            key = meta.key[len(url) :] if url else meta.key
            if patterns is not None and meta.type == "file" and not patterns.matches(key[len(base) :]):
                continue
            link = _link_of(self, key, meta, local_of) if inspect and meta.type == "file" else None
            if not keep_listed_link(key, meta, link, handling):
                continue
            yield meta


def _link_of(client: StorageClient, key: str, meta: ObjectMetadata, local_of: Any) -> str | None:
    """The stored target if the listed ``key`` is a symlink (an ``lstat`` on POSIX; a HEAD
    of empty objects on object stores), else ``None``."""
    if meta.symlink_target:
        return meta.symlink_target
    try:
        local = local_of(key) if local_of is not None and client._metadata_provider is None else None
    except InvalidPathError:  # the key itself is a link leaving base_path
        local = None
    if local is not None:
        try:
            raw = os.readlink(local)
        except OSError:
            return None
        if os.path.isabs(raw):
            root = local[: len(local) - len(key)].rstrip("/")
            rel = os.path.relpath(raw, root)
            return ObjectMetadata.encode_symlink_target(key, rel)
        return raw
    if meta.content_length != 0:
        return None
    try:
        return symlink_target_of(client.info(key))
    except FileNotFoundError:
        return None
