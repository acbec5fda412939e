"""Object properties and listing entries, shaped as the AIStore SDK's.

They are built from manystore's :class:`~manystore.types.ObjectMetadata`: ``size`` is the
content length, ``obj_version`` and ``checksum_value`` the store's ETag (``checksum_type``
``"etag"``), ``access_time`` the last-modified time (stores keep no access time), and
``custom_metadata`` the user metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..types import ObjectMetadata

if TYPE_CHECKING:
    from .obj import Object

__all__ = [
    "PROPS",
    "BucketEntry",
    "BucketList",
    "ListObjectFlag",
    "ObjectAttributes",
    "ObjectProps",
    "list_flags",
    "parse_props",
]

#: Listing properties this package can fill (the SDK's names); others raise.
PROPS = ("name", "size", "atime", "version", "checksum", "custom", "cached", "present")


class ListObjectFlag(Enum):
    """Listing flags, with the AIStore SDK's names and bit positions.

    Supported here: ``ARCH_DIR`` (list each archive's members after it, named
    ``<archive>/<member>``), ``NAME_ONLY`` and ``NAME_SIZE`` (listings always carry names
    and sizes, so both list as usual). The others concern AIS's in-cluster copies or
    targets and raise :class:`NotImplementedError` when given.
    """

    CACHED = 0
    MISSING = 1
    DELETED = 2
    ARCH_DIR = 3
    NAME_ONLY = 4
    NAME_SIZE = 5
    BCK_PRESENT = 6
    DONT_HEAD_REMOTE = 7
    DONT_ADD_REMOTE = 8
    NOT_CACHED = 9
    ONLY_REMOTE_PROPS = 10


_SUPPORTED_FLAGS = {ListObjectFlag.ARCH_DIR, ListObjectFlag.NAME_ONLY, ListObjectFlag.NAME_SIZE}


def list_flags(flags: list[Any] | None, where: str) -> set[ListObjectFlag]:
    """The flags given as :class:`ListObjectFlag` members (or the SDK's enum, or names).

    Raises:
        ValueError: A value that names no flag.
        NotImplementedError: A flag about AIS's in-cluster state (``CACHED``, ``MISSING``...).
    """
    out: set[ListObjectFlag] = set()
    for flag in flags or ():
        name = getattr(flag, "name", flag)
        try:
            member = ListObjectFlag[str(name).upper()]
        except KeyError:
            raise ValueError(
                f"list objects of {where}: flag {flag!r}; expected a ListObjectFlag ({[f.name for f in ListObjectFlag]})"
            ) from None
        if member not in _SUPPORTED_FLAGS:
            raise NotImplementedError(
                f"list objects of {where} with flag {member.name}: AIS in-cluster listing flags are not supported; "
                f"supported: {sorted(f.name for f in _SUPPORTED_FLAGS)}"
            )
        out.add(member)
    return out


def parse_props(props: str | None) -> set[str]:
    """The set of properties in a comma-separated ``props`` string.

    Raises:
        ValueError: A property this package cannot fill (e.g. ``copies``, ``ec``), naming it.
    """
    wanted = {p.strip() for p in (props or "").split(",") if p.strip()}
    unknown = sorted(wanted - set(PROPS))
    if unknown:
        raise ValueError(f"props {props!r}: unsupported {unknown}; expected a subset of {list(PROPS)}")
    return wanted


class ObjectAttributes:
    """An object's attributes (as the SDK's ``ObjectAttributes``).

    Args:
        meta: The object's metadata.
    """

    def __init__(self, meta: ObjectMetadata) -> None:
        self._meta = meta

    @property
    def size(self) -> int:
        """Size of the object's content in bytes."""
        return self._meta.content_length

    @property
    def checksum_type(self) -> str:
        """``"etag"``: the checksum is the store's ETag (or POSIX's mtime-size digest)."""
        return "etag" if self._meta.etag else ""

    @property
    def checksum_value(self) -> str:
        """The store's ETag."""
        return self._meta.etag or ""

    @property
    def access_time(self) -> str:
        """Last-modified time, ISO 8601 (stores do not track access times)."""
        return self._meta.last_modified.isoformat()

    @property
    def obj_version(self) -> str:
        """The object's version token (its ETag)."""
        return self._meta.etag or ""

    @property
    def custom_metadata(self) -> dict[str, str]:
        """User metadata (POSIX profiles keep none)."""
        return {str(k): str(v) for k, v in (self._meta.metadata or {}).items()}

    @property
    def present(self) -> bool:
        """True: the attributes come from the object's store, where it is present."""
        return True

    @property
    def metadata(self) -> ObjectMetadata:
        """manystore's metadata record these attributes were built from."""
        return self._meta

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, version={self.obj_version!r})"


class ObjectProps(ObjectAttributes):
    """An object's properties (as the SDK's ``ObjectProps``): attributes plus where it lives.

    Args:
        meta: The object's metadata.
        bucket_name: Name of its bucket (the bucket URL).
        bucket_provider: Its bucket's provider (``s3``, ``file``...).
        name: The object's name within the bucket.
    """

    def __init__(self, meta: ObjectMetadata, bucket_name: str, bucket_provider: str, name: str) -> None:
        super().__init__(meta)
        self._bucket_name, self._bucket_provider, self._name = bucket_name, bucket_provider, name

    @property
    def bucket_name(self) -> str:
        """Name of the object's bucket."""
        return self._bucket_name

    @property
    def bucket_provider(self) -> str:
        """Provider of the object's bucket."""
        return self._bucket_provider

    @property
    def name(self) -> str:
        """The object's name."""
        return self._name

    @property
    def location(self) -> str:
        """The object's full URL."""
        return self._bucket_name.rstrip("/") + "/" + self._name

    @property
    def mirror_paths(self) -> list[str]:
        """Local mirror paths: none (one copy, in its store)."""
        return []

    @property
    def mirror_copies(self) -> int:
        """Copies: 1."""
        return 1


@dataclass
class BucketEntry:
    """One listed object (as the SDK's ``BucketEntry``); unrequested properties are empty.

    Attributes:
        name: Object name within the bucket.
        size: Bytes (0 unless ``size`` was requested; always filled here, the listing has it).
        checksum: ETag (with ``checksum``).
        atime: Last-modified time, ISO 8601 (with ``atime``).
        version: ETag (with ``version``).
        custom: User metadata (with ``custom``).
        flags: Always 0 (no AIS entry flags).
    """

    name: str
    size: int = 0
    checksum: str = ""
    atime: str = ""
    version: str = ""
    custom: dict[str, Any] = field(default_factory=dict)
    flags: int = 0
    _factory: Callable[[str], Object] | None = field(default=None, repr=False, compare=False)

    @property
    def object(self) -> Object:
        """The :class:`~manystore.batch.Object` of this entry."""
        if self._factory is None:
            raise ValueError(f"BucketEntry {self.name!r} is not bound to a bucket")
        return self._factory(self.name)

    def is_ok(self) -> bool:
        """True: listed entries are whole objects."""
        return True

    def is_cached(self) -> bool:
        """True: a listed object is in its store."""
        return True

    def is_present(self) -> bool:
        """True: a listed object is in its store."""
        return True

    @staticmethod
    def build(
        name: str, meta: ObjectMetadata, wanted: set[str], factory: Callable[[str], Object] | None
    ) -> BucketEntry:
        """An entry for ``meta`` under ``name`` with the ``wanted`` properties filled."""
        etag = meta.etag or ""
        return BucketEntry(
            name=name,
            size=meta.content_length,
            checksum=etag if "checksum" in wanted else "",
            atime=meta.last_modified.isoformat() if "atime" in wanted else "",
            version=etag if "version" in wanted else "",
            custom=dict(meta.metadata or {}) if "custom" in wanted else {},
            _factory=factory,
        )


@dataclass
class BucketList:
    """One page of a listing (as the SDK's ``BucketList``).

    Attributes:
        entries: The objects of this page.
        continuation_token: Pass back to :meth:`Bucket.list_objects` for the next page;
            empty on the last page.
        uuid: Always empty: the token alone carries the listing's position.
        flags: Always 0.
    """

    entries: list[BucketEntry]
    continuation_token: str = ""
    uuid: str = ""
    flags: int = 0

    def get_entries(self) -> list[BucketEntry]:
        """The entries of this page."""
        return self.entries
