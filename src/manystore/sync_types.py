"""Enums, constants and result types of listing, symlinks, batch transfers and sync.

Named as in multi-storage-client 1.3.1's ``types`` module (and re-exported from
:mod:`manystore.types`), so code written against ``multistorageclient.types`` keeps working.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from .errors import ManystoreError

__all__ = [
    "MAX_SYMLINK_DEPTH",
    "MSC_PROTOCOL",
    "MSC_PROTOCOL_NAME",
    "BatchTransferCallback",
    "BatchTransferError",
    "BatchTransferFailure",
    "DryrunResult",
    "ExecutionMode",
    "AutoCommitConfig",
    "PatternType",
    "Replica",
    "ResolvedPath",
    "ResolvedPathState",
    "SignerType",
    "SymlinkHandling",
    "SyncError",
    "SyncResult",
    "TransferState",
]

MSC_PROTOCOL_NAME = "msc"
MSC_PROTOCOL = MSC_PROTOCOL_NAME + "://"
MAX_SYMLINK_DEPTH = 8
"""Most symlink hops followed when resolving a chain of symlinks."""

TransferState = Literal["started", "completed", "failed"]


class SymlinkHandling(str, enum.Enum):
    """What listing and sync do with symbolic links (POSIX profiles; object stores list as is).

    ``FOLLOW`` (default) lists what an internal link points at and skips links leaving the
    profile; ``FOLLOW_STRICT`` raises on those instead. ``SKIP`` leaves links out.
    ``PRESERVE`` lists internal links as entries with ``symlink_target`` set (not recursing
    into linked directories) and skips external ones; ``PRESERVE_STRICT`` raises on those.
    """

    FOLLOW = "follow"
    FOLLOW_STRICT = "follow_strict"
    SKIP = "skip"
    PRESERVE = "preserve"
    PRESERVE_STRICT = "preserve_strict"


class SignerType(str, enum.Enum):
    """Signing backends of :meth:`manystore.StorageClient.generate_presigned_url`."""

    S3 = "s3"
    CLOUDFRONT = "cloudfront"
    AZURE = "azure"


class ResolvedPathState(str, enum.Enum):
    """Whether a logical path resolved by a metadata provider exists, was deleted or is unknown."""

    EXISTS = "exists"
    DELETED = "deleted"
    UNTRACKED = "untracked"


class ResolvedPath(NamedTuple):
    """A logical path resolved to its physical path.

    Attributes:
        physical_path: The key in the storage backend.
        state: Whether the path exists, was deleted, or was never tracked.
        profile: The child profile holding it, or ``None`` for the client's own backend.
    """

    physical_path: str
    state: ResolvedPathState
    profile: str | None = None

    @property
    def exists(self) -> bool:
        """True when ``state`` is :attr:`ResolvedPathState.EXISTS`."""
        return self.state == ResolvedPathState.EXISTS


class ExecutionMode(enum.Enum):
    """Where a sync runs: threads/processes here (``LOCAL``) or tasks on a Ray cluster (``RAY``)."""

    LOCAL = "local"
    RAY = "ray"


class PatternType(enum.Enum):
    """Whether a sync/list pattern includes or excludes the keys it matches."""

    INCLUDE = "include"
    EXCLUDE = "exclude"


PatternList = list[tuple[PatternType, str]]


class BatchTransferCallback(Protocol):
    """Called for each file of a batch upload/download as it starts, completes or fails.

    Calls may come from several threads at once.
    """

    def __call__(self, source_path: str, destination_path: str, state: TransferState, /) -> None:
        """Report one file's ``state``."""


@dataclass(frozen=True)
class BatchTransferFailure:
    """One failed item of a batch transfer.

    Attributes:
        index: Position of the item in the request.
        source_path: Where it was read from.
        destination_path: Where it was to be written.
        error: Why it failed.
    """

    index: int
    source_path: str
    destination_path: str
    error: Exception


class BatchTransferError(ManystoreError):
    """Some items of a batch transfer failed; the others completed. ``failures`` lists them."""

    def __init__(self, failures: Sequence[BatchTransferFailure]) -> None:
        if not failures:
            raise ValueError("BatchTransferError needs at least one failure, got none")
        self.failures = list(failures)
        shown = ", ".join(
            f"index {f.index} {f.source_path} -> {f.destination_path} ({type(f.error).__name__}: {f.error})"
            for f in self.failures[:3]
        )
        more = f", and {len(self.failures) - 3} more" if len(self.failures) > 3 else ""
        super().__init__(f"{len(self.failures)} batch transfer item(s) failed: {shown}{more}")


@dataclass
class DryrunResult:
    """The JSON-lines files a dry-run sync wrote (one :meth:`ObjectMetadata.to_dict` per line).

    The caller removes them when done.

    Attributes:
        files_to_add: Source objects that would be copied.
        files_to_delete: Target objects that would be deleted.
    """

    files_to_add: str
    files_to_delete: str


@dataclass
class SyncResult:
    """What a sync did (or, as a dry run, would do).

    Attributes:
        total_work_units: Copies plus deletions (plus failed copies) the sync processed.
        total_files_added: Objects copied to the target (alias ``copied``).
        total_files_deleted: Objects deleted from the target (alias ``deleted``).
        total_bytes_added: Bytes copied (alias ``bytes_copied``).
        total_bytes_deleted: Bytes of the deleted objects, where known.
        total_time_seconds: Wall time of the sync.
        dryrun: The dry run's listing files, or ``None``.
        skipped: Objects left alone because the target already had them unchanged.
        failures: Key -> error of each object that failed.
    """

    total_work_units: int = 0
    total_files_added: int = 0
    total_files_deleted: int = 0
    total_bytes_added: int = 0
    total_bytes_deleted: int = 0
    total_time_seconds: float = 0.0
    dryrun: DryrunResult | None = None
    skipped: int = field(default=0, kw_only=True)
    failures: dict[str, BaseException] = field(default_factory=dict, kw_only=True)

    @property
    def copied(self) -> int:
        """Objects copied (``total_files_added``)."""
        return self.total_files_added

    @copied.setter
    def copied(self, value: int) -> None:
        self.total_files_added = value

    @property
    def deleted(self) -> int:
        """Objects deleted (``total_files_deleted``)."""
        return self.total_files_deleted

    @deleted.setter
    def deleted(self, value: int) -> None:
        self.total_files_deleted = value

    @property
    def bytes_copied(self) -> int:
        """Bytes copied (``total_bytes_added``)."""
        return self.total_bytes_added

    @bytes_copied.setter
    def bytes_copied(self, value: int) -> None:
        self.total_bytes_added = value

    def __str__(self) -> str:
        lines = [
            "Sync dryrun statistics:" if self.dryrun else "Sync statistics:",
            f"  Work units: {self.total_work_units}",
            f"  Files added: {self.total_files_added}",
            f"  Files skipped: {self.skipped}",
            f"  Files deleted: {self.total_files_deleted}",
            f"  Bytes added: {self.total_bytes_added}",
            f"  Bytes deleted: {self.total_bytes_deleted}",
            f"  Time elapsed: {self.total_time_seconds:.2f}s",
        ]
        if self.dryrun:
            lines += [
                f"  Files to add: {self.dryrun.files_to_add}",
                f"  Files to delete: {self.dryrun.files_to_delete}",
            ]
        return "\n".join(lines)


class SyncError(ManystoreError, RuntimeError):
    """Some objects failed to sync; the rest completed.

    Attributes:
        sync_result: What the sync did (also as ``result``); ``failures`` maps each failed
            key to its error.
    """

    def __init__(self, message: str, sync_result: SyncResult) -> None:
        super().__init__(message)
        self.sync_result = sync_result

    @property
    def result(self) -> SyncResult:
        """The partial :class:`SyncResult` (``sync_result``)."""
        return self.sync_result

    @property
    def failures(self) -> dict[str, BaseException]:
        """Key -> error of each object that failed."""
        return self.sync_result.failures


@dataclass
class Replica:
    """A profile serving reads of another profile's objects (and, unless read-only, filled by them).

    Attributes:
        replica_profile: Name of the replica's profile (defined in the same config).
        read_priority: Replicas are tried in ascending order of this number.
        read_only: If True, objects read from elsewhere are not copied into this replica.
    """

    replica_profile: str
    read_priority: int
    read_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.replica_profile, str) or not self.replica_profile:
            raise TypeError(f"Replica.replica_profile: expected a profile name, got {self.replica_profile!r}")
        if isinstance(self.read_priority, bool) or not isinstance(self.read_priority, int):
            raise TypeError(f"Replica.read_priority: expected an int, got {self.read_priority!r}")
        if not isinstance(self.read_only, bool):
            raise TypeError(f"Replica.read_only: expected a bool, got {self.read_only!r}")


class AutoCommitConfig:
    """When a profile's metadata provider (manifest) commits pending updates on its own.

    Without it, updates become visible on :meth:`manystore.StorageClient.commit_metadata`.

    Args:
        interval_minutes: Commit every this many minutes on a background thread (``None`` or
            ``0``: no periodic commit).
        at_exit: Commit once more when the interpreter exits.

    Raises:
        TypeError: ``interval_minutes`` is not a number, or ``at_exit`` not a bool.
        ValueError: ``interval_minutes`` is negative.
    """

    interval_minutes: float | None
    at_exit: bool = False

    def __init__(self, interval_minutes: float | None = None, at_exit: bool = False) -> None:
        minutes = interval_minutes
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))):
            raise TypeError(f"AutoCommitConfig.interval_minutes: expected a number or None, got {minutes!r}")
        if minutes is not None and not minutes >= 0:
            raise ValueError(f"AutoCommitConfig.interval_minutes: expected a number >= 0, got {minutes!r}")
        if not isinstance(at_exit, bool):
            raise TypeError(f"AutoCommitConfig.at_exit: expected a bool, got {at_exit!r}")
        self.interval_minutes = interval_minutes
        self.at_exit = at_exit

    def __repr__(self) -> str:
        return f"AutoCommitConfig(interval_minutes={self.interval_minutes!r}, at_exit={self.at_exit!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AutoCommitConfig):
            return NotImplemented
        return (self.interval_minutes, self.at_exit) == (other.interval_minutes, other.at_exit)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass
