"""Typed cache configuration, as read from the top-level ``cache:`` section of a config."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..utils import parse_size

__all__ = ["CacheBackendConfig", "CacheConfig", "EvictionPolicyConfig"]

EVICTION_POLICIES = ("lru", "fifo", "random")
DEFAULT_CACHE_SIZE = "10G"
DEFAULT_REFRESH_INTERVAL = 300


def default_cache_path() -> str:
    """``$TMPDIR/manystore_cache`` (per user), the default cache directory."""
    return os.path.join(tempfile.gettempdir(), f"manystore_cache_{os.getuid()}")


@dataclass
class EvictionPolicyConfig:
    """Eviction policy: ``policy`` is one of ``lru`` (default), ``fifo``, ``random``;
    ``refresh_interval`` is the seconds between eviction passes (default 300)."""

    policy: str = "lru"
    refresh_interval: int = DEFAULT_REFRESH_INTERVAL

    def __post_init__(self) -> None:
        if self.policy.lower() not in EVICTION_POLICIES:
            raise ConfigError(
                f"cache.eviction_policy.policy: {self.policy!r} is not one of {list(EVICTION_POLICIES)}"
            )
        self.policy = self.policy.lower()
        if not isinstance(self.refresh_interval, int) or self.refresh_interval < 1:
            raise ConfigError(
                f"cache.eviction_policy.refresh_interval: expected an int >= 1, got {self.refresh_interval!r}"
            )


@dataclass
class CacheBackendConfig:
    """Where cached objects live: ``cache_path`` (a directory) and, optionally, the
    ``storage_provider_profile`` whose store is used as the cache."""

    cache_path: str = field(default_factory=default_cache_path)
    storage_provider_profile: str | None = None


@dataclass
class CacheConfig:
    """Cache configuration.

    Attributes:
        size: Upper bound of the cache, e.g. ``"500M"``, ``"100G"``.
        use_etag: Check the source object's ETag before serving a cached copy.
        eviction_policy: See :class:`EvictionPolicyConfig` (default LRU, 300 s refresh).
        backend: See :class:`CacheBackendConfig` (default a per-user temp directory).
    """

    size: str
    use_etag: bool = True
    eviction_policy: EvictionPolicyConfig = field(default_factory=EvictionPolicyConfig)
    backend: CacheBackendConfig = field(default_factory=CacheBackendConfig)

    def __post_init__(self) -> None:
        try:
            parse_size(self.size)
        except ValueError as exc:
            raise ConfigError(f"cache.size: {exc}")

    def size_bytes(self) -> int:
        """``size`` in bytes."""
        return parse_size(self.size)

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
        use_etag = section.get("check_source_version", section.get("use_etag", True))
        policy = section.get("eviction_policy") or {}
        if isinstance(policy, str):
            policy = {"policy": policy}
        backend = section.get("cache_backend") or {}
        location = section.get("location") or backend.get("cache_path") or default_cache_path()
        return CacheConfig(
            size=str(size or DEFAULT_CACHE_SIZE),
            use_etag=bool(use_etag),
            eviction_policy=EvictionPolicyConfig(
                policy=policy.get("policy", "lru"),
                refresh_interval=policy.get("refresh_interval", DEFAULT_REFRESH_INTERVAL),
            ),
            backend=CacheBackendConfig(
                cache_path=location, storage_provider_profile=backend.get("storage_provider_profile")
            ),
        )
