"""Typed cache configuration, as read from the top-level ``cache:`` section of a config.

The fields and their defaults follow MSC 1.3.1's ``CacheConfig``; the older spellings
(``use_etag``, ``size_mb``, ``cache_backend.cache_path``) are still read.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..schema import EVICTION_POLICIES
from ..utils import parse_size

__all__ = ["CacheBackendConfig", "CacheConfig", "EvictionPolicyConfig"]

DEFAULT_CACHE_SIZE = "10G"
DEFAULT_CACHE_LINE_SIZE = "64M"
DEFAULT_REFRESH_INTERVAL = 300
DEFAULT_EVICTION_POLICY = "fifo"


def default_cache_path() -> str:
    """``$TMPDIR/manystore_cache_<uid>`` (per user), the default cache directory."""
    return os.path.join(tempfile.gettempdir(), f"manystore_cache_{os.getuid()}")


@dataclass
class EvictionPolicyConfig:
    """How the cache makes room for a new entry.

    Attributes:
        policy: ``fifo`` (default, oldest stored first), ``lru`` (least recently used first),
            ``mru`` (most recently used first), ``random``, or ``no_eviction`` (never delete:
            the cache grows past ``size`` until cleared by hand). Any letter case.
        refresh_interval: Seconds a validated entry is trusted before its source version is
            checked again. Default 300.
        purge_factor: Percent of the cache size to free when eviction runs (0-100). 0 (default)
            frees just enough for the new entry; 50 brings the cache down to half its size.
    """

    policy: str = DEFAULT_EVICTION_POLICY
    refresh_interval: int = DEFAULT_REFRESH_INTERVAL
    purge_factor: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.policy, str) or self.policy.lower() not in EVICTION_POLICIES:
            raise ConfigError(
                f"cache.eviction_policy.policy: {self.policy!r} is not one of {list(EVICTION_POLICIES)}"
            )
        self.policy = self.policy.lower()
        if (
            isinstance(self.refresh_interval, bool)
            or not isinstance(self.refresh_interval, int)
            or self.refresh_interval < 1
        ):
            raise ConfigError(
                f"cache.eviction_policy.refresh_interval: expected an int >= 1, got {self.refresh_interval!r}"
            )
        if (
            isinstance(self.purge_factor, bool)
            or not isinstance(self.purge_factor, int)
            or not 0 <= self.purge_factor <= 100
        ):
            raise ConfigError(
                f"cache.eviction_policy.purge_factor: expected an int from 0 to 100, got {self.purge_factor!r}"
            )


@dataclass
class CacheBackendConfig:
    """Where cached objects live: ``cache_path`` (a directory) and, optionally, the
    ``storage_provider_profile`` whose store is used as the cache."""

    cache_path: str = field(default_factory=default_cache_path)
    storage_provider_profile: str | None = None


@dataclass
class CacheConfig:
    """Cache configuration (keywords and positions as MSC 1.3.1's ``CacheConfig``).

    Attributes:
        size: Upper bound of the cache, e.g. ``"500M"``, ``"100G"``.
        cache_line_size: Size of the blocks in which ranges of large objects are fetched and
            cached, e.g. ``"64M"``. At most ``size``. Default (None): 64M, or ``size`` when
            the cache is smaller.
        check_source_version: Check the source object's version (ETag) before serving a cached
            copy older than ``eviction_policy.refresh_interval``. Default True.
        prefetch_file: ``open()`` of an object fetches (and caches) the whole object when it
            fits in memory (default). False caches only the cache lines actually read for any
            object bigger than one cache line.
        location: The cache directory (absolute). Default: a per-user temp directory.
        eviction_policy: See :class:`EvictionPolicyConfig` (default FIFO, 300 s refresh).
        use_etag: Older name of ``check_source_version``; when given it wins.
        backend: Older form of ``location`` (``cache_backend.cache_path``).
    """

    size: str = DEFAULT_CACHE_SIZE
    cache_line_size: str | None = None
    check_source_version: bool = True
    prefetch_file: bool = True
    location: str | None = None
    eviction_policy: EvictionPolicyConfig = field(default_factory=EvictionPolicyConfig)
    use_etag: bool | None = None
    backend: CacheBackendConfig = field(default_factory=CacheBackendConfig)

    def __post_init__(self) -> None:
        if self.cache_line_size is None:
            try:
                small = parse_size(self.size) < parse_size(DEFAULT_CACHE_LINE_SIZE)
            except (TypeError, ValueError):
                small = False
            self.cache_line_size = str(self.size) if small else DEFAULT_CACHE_LINE_SIZE
        for name in ("size", "cache_line_size"):
            try:
                parse_size(getattr(self, name))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"cache.{name}: {exc}")
        if self.cache_line_size_bytes() > self.size_bytes():
            raise ConfigError(
                f"cache.cache_line_size: {self.cache_line_size!r} exceeds cache.size {self.size!r}; "
                "expected a cache line no bigger than the cache"
            )
        if self.use_etag is None:
            self.use_etag = bool(self.check_source_version)
        else:
            self.check_source_version = bool(self.use_etag)
        if self.location is None:
            self.location = self.backend.cache_path
        else:
            if not os.path.isabs(os.path.expanduser(self.location)):
                raise ConfigError(f"cache.location: {self.location!r} is not an absolute path")
            self.backend.cache_path = os.path.expanduser(self.location)

    def size_bytes(self) -> int:
        """``size`` in bytes."""
        return parse_size(self.size)

    def cache_line_size_bytes(self) -> int:
        """``cache_line_size`` in bytes."""
        return parse_size(self.cache_line_size or DEFAULT_CACHE_LINE_SIZE)

    def get_eviction_policy(self) -> str:
        """The eviction policy name."""
        return self.eviction_policy.policy

    def get_storage_provider_profile(self) -> str | None:
        """The profile backing the cache, if any."""
        return self.backend.storage_provider_profile

    @staticmethod
    def from_dict(section: dict[str, Any]) -> CacheConfig:
        """Build from a config file's ``cache:`` section (old and new spellings accepted)."""
        size = section.get("size")
        if size is None and "size_mb" in section:
            size = f"{int(section['size_mb'])}M"
        check = section.get("check_source_version", section.get("use_etag", True))
        policy = section.get("eviction_policy") or {}
        if isinstance(policy, str):
            policy = {"policy": policy}
        backend = section.get("cache_backend") or {}
        location = section.get("location") or backend.get("cache_path") or default_cache_path()
        return CacheConfig(
            size=str(size or DEFAULT_CACHE_SIZE),
            cache_line_size=section.get("cache_line_size"),
            check_source_version=bool(check),
            prefetch_file=bool(section.get("prefetch_file", True)),
            location=location,
            eviction_policy=EvictionPolicyConfig(
                policy=policy.get("policy", DEFAULT_EVICTION_POLICY),
                refresh_interval=policy.get("refresh_interval", DEFAULT_REFRESH_INTERVAL),
                purge_factor=policy.get("purge_factor", 0),
            ),
            backend=CacheBackendConfig(
                cache_path=location, storage_provider_profile=backend.get("storage_provider_profile")
            ),
        )
