"""Caching configuration (the cache itself arrives with the cache/manifest layer)."""

from .cache_config import CacheBackendConfig, CacheConfig, EvictionPolicyConfig

__all__ = ["CacheBackendConfig", "CacheConfig", "EvictionPolicyConfig"]
