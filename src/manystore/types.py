"""Public data types and provider contracts of manystore.

The names follow the Multi-Storage Client reference, so code written against
``multistorageclient.types`` works after changing the import.
"""

from __future__ import annotations

import enum
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from dataclasses import replace as _dc_replace
from datetime import datetime, timezone
from typing import IO, Any

from .errors import NotModifiedError, PreconditionFailedError, RetryableError
from .sync_types import (
    MAX_SYMLINK_DEPTH,
    MSC_PROTOCOL,
    MSC_PROTOCOL_NAME,
    AutoCommitConfig,
    BatchTransferCallback,
    BatchTransferError,
    BatchTransferFailure,
    DryrunResult,
    ExecutionMode,
    PatternList,
    PatternType,
    Replica,
    ResolvedPath,
    ResolvedPathState,
    SignerType,
    SymlinkHandling,
    SyncError,
    SyncResult,
    TransferState,
)

__all__ = [
    "MAX_SYMLINK_DEPTH",
    "MSC_PROTOCOL",
    "MSC_PROTOCOL_NAME",
    "BatchTransferCallback",
    "BatchTransferError",
    "BatchTransferFailure",
    "DryrunResult",
    "ExecutionMode",
    "PatternList",
    "PatternType",
    "ResolvedPath",
    "ResolvedPathState",
    "SignerType",
    "SymlinkHandling",
    "SyncError",
    "SyncResult",
    "TransferState",
    "Credentials",
    "CredentialsProvider",
    "MetadataProvider",
    "NotModifiedError",
    "ObjectMetadata",
    "PreconditionFailedError",
    "AutoCommitConfig",
    "ProviderBundle",
    "ProviderBundleV2",
    "Replica",
    "Range",
    "RetryConfig",
    "RetryableError",
    "SourceVersionCheckMode",
    "StorageProvider",
    "StorageBackend",
    "StorageProviderConfig",
]

DEFAULT_RETRY_ATTEMPTS = 3
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_RETRY_BACKOFF_MULTIPLIER = 2.0


@dataclass(frozen=True)
class Range:
    """A byte range of an object: ``size`` bytes starting at ``offset``.

    Args:
        offset: First byte, zero-based. Must be >= 0.
        size: Number of bytes. Must be >= 0.
    """

    offset: int
    size: int

    def __post_init__(self) -> None:
        for name in ("offset", "size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Range.{name} must be a non-negative int, got {value!r}")

    @property
    def end(self) -> int:
        """The exclusive end offset (``offset + size``)."""
        return self.offset + self.size


@dataclass(slots=True)
class ObjectMetadata:
    """Metadata of one object (or, with ``type="directory"``, one directory).

    Attributes:
        key: The object's path relative to the profile (or a full URL when listing
            with ``include_url_prefix``).
        content_length: Size in bytes (0 for directories).
        last_modified: Last modification time, timezone-aware (UTC).
        type: ``"file"`` or ``"directory"``.
        content_type: MIME type if the store reports one.
        etag: The store's version token (S3 ETag without quotes; POSIX: mtime-size digest).
        storage_class: The store's storage class, if any.
        metadata: User metadata (``x-amz-meta-*`` on S3, xattrs are not read on POSIX).
        symlink_target: For a symlink, its target relative to the symlink's own directory
            (e.g. ``"../data/x"``); see :meth:`resolve_symlink_target`.
    """

    key: str
    content_length: int
    last_modified: datetime
    type: str = "file"
    content_type: str | None = None
    etag: str | None = None
    storage_class: str | None = None
    metadata: dict[str, Any] | None = None
    symlink_target: str | None = None

    @staticmethod
    def from_dict(data: dict) -> ObjectMetadata:
        """Build an instance from :meth:`to_dict` output (or parsed manifest JSON).

        Raises:
            ValueError: A required field (``key``, ``content_length``, ``last_modified``) is missing.
        """
        missing = [k for k in ("key", "content_length", "last_modified") if k not in data]
        if missing:
            raise ValueError(f"ObjectMetadata.from_dict: missing field(s) {missing} in {sorted(data)}")
        last_modified = data["last_modified"]
        if isinstance(last_modified, str):
            last_modified = datetime.fromisoformat(last_modified.replace("Z", "+00:00"))
        if last_modified.tzinfo is None:
            last_modified = last_modified.replace(tzinfo=timezone.utc)
        known = {f.name for f in fields(ObjectMetadata)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["last_modified"] = last_modified
        kwargs["content_length"] = int(data["content_length"])
        return ObjectMetadata(**kwargs)

    def replace(self, **changes: Any) -> ObjectMetadata:
        """A copy with the given fields changed (this instance is left as it is).

        Raises:
            TypeError: A name in ``changes`` is not a field of :class:`ObjectMetadata`.
        """
        return _dc_replace(self, **changes)

    @staticmethod
    def encode_symlink_target(symlink_key: str, target: str) -> str:
        """The stored form of a symlink's target: ``target`` relative to the symlink's directory.

        Args:
            symlink_key: Key of the symlink itself.
            target: Key it points at, in the same frame as ``symlink_key``.

        Example: ``encode_symlink_target("a/b/link", "a/c/f")`` is ``"../c/f"``.
        """
        return posixpath.relpath(target, posixpath.dirname(symlink_key) or ".")

    @staticmethod
    def resolve_symlink_target(symlink_key: str, symlink_target: str) -> str:
        """The key a stored :attr:`symlink_target` points at (inverse of :meth:`encode_symlink_target`)."""
        return posixpath.normpath(posixpath.join(posixpath.dirname(symlink_key), symlink_target))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; ``None`` fields are left out."""
        out: dict[str, Any] = {
            "key": self.key,
            "content_length": self.content_length,
            "last_modified": self.last_modified.isoformat(),
            "type": self.type,
        }
        for name in ("content_type", "etag", "storage_class", "metadata", "symlink_target"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass
class Credentials:
    """Credentials for a storage provider. ``secret_key`` and ``token`` never appear in ``repr``.

    Attributes:
        access_key: Access key id (or account/user name).
        secret_key: Secret key.
        token: Session token, if any.
        expiration: ISO-8601 expiry time, or ``None`` for credentials that do not expire.
        custom_fields: Provider-specific extra values.
    """

    access_key: str
    secret_key: str
    token: str | None
    expiration: str | None
    custom_fields: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key={_mask(self.access_key)!r}, secret_key='***', "
            f"token={'***' if self.token else None!r}, expiration={self.expiration!r})"
        )

    def get_custom_field(self, key: str, default: Any | None = None) -> Any:
        """Return ``custom_fields[key]``, or ``default`` if absent."""
        return self.custom_fields.get(key, default)

    def is_expired(self, margin_seconds: float = 0.0) -> bool:
        """True when ``expiration`` lies less than ``margin_seconds`` in the future."""
        if not self.expiration:
            return False
        expiry = datetime.fromisoformat(self.expiration.replace("Z", "+00:00"))
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=timezone.utc)
        return (expiry - datetime.now(timezone.utc)).total_seconds() <= margin_seconds


def _mask(value: str | None) -> str | None:
    if not value:
        return value
    return value[:4] + "***" if len(value) > 8 else "***"


@dataclass(frozen=True)
class RetryConfig:
    """How a :class:`manystore.StorageClient` retries transient failures.

    Retried: throttling (429, 503 SlowDown), other 5xx and connection errors
    (a provider raises :class:`RetryableError` for them). Nothing else is retried.
    The wait before retry ``n`` (1-based) is ``delay * backoff_multiplier ** (n - 1)``
    plus up to that much random jitter.

    Attributes:
        attempts: Total attempts including the first. Must be >= 1. Default 3.
        delay: Base wait in seconds. Must be >= 0. Default 1.0.
        backoff_multiplier: Growth factor of the wait. Must be >= 1.0. Default 2.0.
    """

    attempts: int = DEFAULT_RETRY_ATTEMPTS
    delay: float = DEFAULT_RETRY_DELAY
    backoff_multiplier: float = DEFAULT_RETRY_BACKOFF_MULTIPLIER

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool) or self.attempts < 1:
            raise ValueError(f"RetryConfig.attempts must be an int >= 1, got {self.attempts!r}")
        if not isinstance(self.delay, (int, float)) or self.delay < 0:
            raise ValueError(f"RetryConfig.delay must be a number >= 0, got {self.delay!r}")
        if not isinstance(self.backoff_multiplier, (int, float)) or self.backoff_multiplier < 1.0:
            raise ValueError(
                f"RetryConfig.backoff_multiplier must be a number >= 1.0, got {self.backoff_multiplier!r}"
            )


class SourceVersionCheckMode(enum.Enum):
    """Whether a cached copy is checked against the source object's version."""

    INHERIT = "inherit"
    ENABLE = "enable"
    DISABLE = "disable"


@dataclass
class StorageProviderConfig:
    """The ``type`` (built-in name or fully-qualified class) and ``options`` of a storage provider."""

    type: str
    options: dict[str, Any] | None = None


class StorageProvider(ABC):
    """The contract every storage backend implements (MSC 1.3.1's names, parameters and defaults).

    Paths are relative to the provider's ``base_path``; the provider joins them.
    A missing object raises :class:`FileNotFoundError` (manystore's providers raise
    :class:`manystore.errors.ObjectNotFoundError`, a subclass). The batch, recursive-listing,
    symlink and presigning methods have generic defaults built on the single-object ones,
    so a provider written for the older seed contract keeps working.
    """

    @abstractmethod
    def put_object(
        self,
        path: str,
        body: bytes,
        if_match: str | None = None,
        if_none_match: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Store ``body`` at ``path`` atomically, with user metadata ``attributes``.

        Conditional forms raise :class:`PreconditionFailedError` when the condition fails.
        """

    @abstractmethod
    def get_object(self, path: str, byte_range: Range | None = None) -> bytes:
        """Return the object's bytes, or the ``byte_range`` slice of them."""

    @abstractmethod
    def copy_object(self, src_path: str, dest_path: str) -> None:
        """Copy an object within the provider (server-side where the store supports it)."""

    @abstractmethod
    def delete_object(self, path: str, if_match: str | None = None) -> None:
        """Delete one object; with ``if_match`` only if its ETag matches."""

    def delete_objects(self, paths: Sequence[str]) -> None:
        """Delete several objects; a path that does not exist is no error.

        The default deletes them one by one with :meth:`delete_object`.
        """
        for path in paths:
            try:
                self.delete_object(path)
            except FileNotFoundError:
                pass

    def make_symlink(self, path: str, target: str) -> None:
        """Create a symlink at ``path`` to the key ``target`` (stored relative to the link).

        The default writes 1.3.1's object-store form: an empty object whose user metadata
        ``msc-symlink-target`` holds the target.
        """
        from ._contract import SYMLINK_ATTRIBUTE

        relative = ObjectMetadata.encode_symlink_target(path, target)
        self.put_object(path, b"", attributes={SYMLINK_ATTRIBUTE: relative})

    @abstractmethod
    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        """Metadata of the object at ``path``; with ``strict=False`` a directory also answers."""

    @abstractmethod
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
        """Objects under ``path`` in lexicographic key order.

        Args:
            path: Where to list (manystore's client passes a key prefix, e.g. ``"data/"``).
            start_after: Exclusive lower bound on keys.
            end_at: Inclusive upper bound on keys.
            include_directories: List one level; sub-directories come as ``type="directory"``.
            attribute_filter_expression: Keep only objects whose user metadata satisfies it.
            show_attributes: Fill in each object's user metadata.
            symlink_handling: What to do with symlinks.
        """

    def list_objects_recursive(
        self,
        path: str = "",
        start_after: str | None = None,
        end_at: str | None = None,
        max_workers: int = 32,
        look_ahead: int = 2,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    ) -> Iterator[ObjectMetadata]:
        """Every file under the directory ``path``, in key order.

        The default lists the first level, then each sub-directory on a pool of
        ``max_workers`` threads, at most ``max_workers * look_ahead`` of them ahead.

        Raises:
            ValueError: ``max_workers`` or ``look_ahead`` is not an int >= 1.
        """
        from ._contract import parallel_listing

        prefix = path.strip("/") + "/" if path.strip("/") else ""

        def level(where: str, after: str | None, end: str | None, dirs: bool) -> Iterator[ObjectMetadata]:
            return self.list_objects(
                where,
                start_after=after,
                end_at=end,
                include_directories=dirs,
                symlink_handling=symlink_handling,
            )

        return parallel_listing(level, prefix, start_after, end_at, max_workers, look_ahead)

    @abstractmethod
    def upload_file(self, remote_path: str, f: str | IO, attributes: dict[str, Any] | None = None) -> None:
        """Upload a local file (path or binary file object) to ``remote_path``."""

    @abstractmethod
    def download_file(self, remote_path: str, f: str | IO, metadata: ObjectMetadata | None = None) -> None:
        """Download ``remote_path`` into a local path (atomically) or a binary file object."""

    def download_files(
        self,
        remote_paths: Sequence[str],
        local_paths: Sequence[str],
        metadata: Sequence[ObjectMetadata | None] | None = None,
        max_workers: int = 16,
        transfer_callback: BatchTransferCallback | None = None,
    ) -> None:
        """Download several files with :meth:`download_file` on up to ``max_workers`` threads.

        Raises:
            ValueError: The sequences differ in length, or ``max_workers`` < 1.
            BatchTransferError: Some downloads failed (the others completed).
        """
        from ._contract import check_lengths, run_batch

        check_lengths("download_files", remote_paths, local_paths, "local_paths")
        check_lengths("download_files", remote_paths, metadata, "metadata")

        def work(i: int) -> None:
            self.download_file(remote_paths[i], local_paths[i], metadata[i] if metadata else None)

        pairs = list(zip(remote_paths, local_paths, strict=True))
        run_batch("download_files", pairs, work, max_workers, transfer_callback)

    def upload_files(
        self,
        local_paths: Sequence[str],
        remote_paths: Sequence[str],
        attributes: Sequence[dict[str, Any] | None] | None = None,
        max_workers: int = 16,
        transfer_callback: BatchTransferCallback | None = None,
    ) -> None:
        """Upload several files with :meth:`upload_file` on up to ``max_workers`` threads.

        Raises:
            ValueError: The sequences differ in length, or ``max_workers`` < 1.
            BatchTransferError: Some uploads failed (the others completed).
        """
        from ._contract import check_lengths, run_batch

        check_lengths("upload_files", remote_paths, local_paths, "local_paths")
        check_lengths("upload_files", remote_paths, attributes, "attributes")

        def work(i: int) -> None:
            self.upload_file(remote_paths[i], local_paths[i], attributes[i] if attributes else None)

        pairs = list(zip(local_paths, remote_paths, strict=True))
        run_batch("upload_files", pairs, work, max_workers, transfer_callback)

    @abstractmethod
    def glob(self, pattern: str, attribute_filter_expression: str | None = None) -> list[str]:
        """Keys matching a glob pattern (``*``, ``?``, ``[...]``, ``**``), optionally filtered by attributes."""

    @abstractmethod
    def is_file(self, path: str) -> bool:
        """True if ``path`` names an object (not a directory/prefix)."""

    def generate_presigned_url(
        self,
        path: str,
        *,
        method: str = "GET",
        signer_type: SignerType | None = None,
        signer_options: dict[str, Any] | None = None,
    ) -> str:
        """A URL granting ``method`` on ``path`` for a limited time.

        Raises:
            NotImplementedError: This provider cannot sign URLs (the default).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot generate presigned URLs for {path!r}")


class CredentialsProvider(ABC):
    """Supplies (and refreshes) the credentials a storage provider signs requests with."""

    @abstractmethod
    def get_credentials(self) -> Credentials:
        """The current credentials."""

    def refresh_credentials(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Fetch new credentials (e.g. before the current ones expire). No-op by default."""


class MetadataProvider(ABC):
    """An index of object metadata consulted instead of listing the store (e.g. a manifest).

    ``allow_overwrites``, ``should_use_soft_delete`` and ``generate_physical_path`` have
    defaults (overwrites allowed, hard deletes, the physical path of :meth:`realpath`).
    """

    @abstractmethod
    def list_objects(
        self,
        path: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
        attribute_filter_expression: str | None = None,
        show_attributes: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """Objects under ``path`` in lexicographic key order (arguments as :meth:`StorageProvider.list_objects`)."""

    @abstractmethod
    def get_object_metadata(self, path: str, include_pending: bool = False) -> ObjectMetadata:
        """Metadata of ``path``; raises :class:`FileNotFoundError` if absent."""

    @abstractmethod
    def glob(self, pattern: str, attribute_filter_expression: str | None = None) -> list[str]:
        """Keys matching a glob pattern, optionally filtered by attributes."""

    @abstractmethod
    def realpath(self, logical_path: str) -> ResolvedPath:
        """The physical path behind a logical one, and whether it exists, was deleted or is unknown."""

    def generate_physical_path(self, logical_path: str, for_overwrite: bool = False) -> ResolvedPath:
        """Where a write of ``logical_path`` goes (``for_overwrite``: it replaces an existing object).

        The default writes in place: the physical path :meth:`realpath` answers.
        """
        from ._contract import as_resolved

        return as_resolved(self.realpath(logical_path), logical_path, self)

    @abstractmethod
    def add_file(self, path: str, metadata: ObjectMetadata) -> None:
        """Track a file (visible after :meth:`commit_updates`). Idempotent."""

    @abstractmethod
    def remove_file(self, path: str) -> None:
        """Stop tracking a file (visible after :meth:`commit_updates`). Idempotent."""

    @abstractmethod
    def commit_updates(self) -> None:
        """Persist pending additions and removals."""

    @abstractmethod
    def is_writable(self) -> bool:
        """True if :meth:`add_file`/:meth:`remove_file` are allowed."""

    def allow_overwrites(self) -> bool:
        """True if a tracked path may be written again (the default)."""
        return True

    def should_use_soft_delete(self) -> bool:
        """True if a delete only removes the entry and keeps the stored object (default: False)."""
        return False


# The bundle types live in their own module (re-exported here: their documented home).
from .provider_bundles import ProviderBundle, ProviderBundleV2, StorageBackend  # noqa: E402
