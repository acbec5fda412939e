"""Caching: configuration and the filesystem read cache (:class:`CacheManager`)."""

from .cache_config import CacheBackendConfig, CacheConfig, EvictionPolicyConfig
from .cache_manager import CacheHit, CacheManager

__all__ = ["CacheBackendConfig", "CacheConfig", "CacheHit", "CacheManager", "EvictionPolicyConfig"]
