"""Validation of configuration dictionaries.

Errors name the key path (``profiles.train.storage_provider.type``), the bad value
and what is allowed, and suggest the nearest spelling of a misspelt key.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from .errors import ConfigError

__all__ = ["RESERVED_POSIX_PROFILE", "RETRY_BOUNDS", "validate_config"]

#: Name of the built-in profile over the whole local file system.
RESERVED_POSIX_PROFILE = "__filesystem__"

_PROFILE_NAME = re.compile(r"^(__filesystem__|[^_/][^/]*)$")
_MAPPING_SOURCE = re.compile(r"^(/|[a-z][a-z0-9+.-]*://)[^/].*/$")
_MAPPING_TARGET = re.compile(r"^msc://[^/]+/$")

# A spec is a dict: key -> (type or tuple of types, nested spec or None). "*" means any key.
_EXTENSION = {"type": (str, None), "options": (dict, None)}
_RETRY = {"attempts": (int, None), "delay": ((int, float), None), "backoff_multiplier": ((int, float), None)}
_PROFILE = {
    "storage_provider": (dict, {"type": (str, None), "options": (dict, None)}),
    "credentials_provider": (dict, _EXTENSION),
    "metadata_provider": (dict, _EXTENSION),
    "provider_bundle": (dict, _EXTENSION),
    "retry": (dict, _RETRY),
    "caching_enabled": (bool, None),
    "comment": (str, None),
    "replicas": (list, None),
    "autocommit": (dict, {"interval_minutes": ((int, float), None), "at_exit": (bool, None)}),
    "storage_provider_profiles": (list, None),
}
_EVICTION = {"policy": (str, None), "refresh_interval": (int, None), "purge_factor": (int, None)}
_CACHE = {
    "size": (str, None),
    "size_mb": (int, None),
    "location": (str, None),
    "use_etag": (bool, None),
    "check_source_version": (bool, None),
    "prefetch_file": (bool, None),
    "cache_line_size": (str, None),
    "eviction_policy": ((dict, str), _EVICTION),
    "cache_backend": (dict, {"cache_path": (str, None), "storage_provider_profile": (str, None)}),
}
_TOP = {
    "profiles": (dict, None),
    "cache": (dict, _CACHE),
    "opentelemetry": (dict, None),
    "path_mapping": (dict, None),
    "include": (list, None),
    "experimental_features": (dict, None),
    "posix": (dict, None),
    "comment": (str, None),
}


def _type_names(types: type | tuple[type, ...]) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def _check(node: Any, spec: dict[str, Any], path: str) -> None:
    for key, value in node.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in spec:
            hint = difflib.get_close_matches(str(key), list(spec), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where}: unknown key {key!r}{suggestion}; allowed keys: {sorted(spec)}")
        types, nested = spec[key]
        if isinstance(value, bool) and types in (int, (int, float)):
            raise ConfigError(f"{where}: expected {_type_names(types)}, got bool {value!r}")
        if not isinstance(value, types):
            raise ConfigError(f"{where}: expected {_type_names(types)}, got {type(value).__name__} {value!r}")
        if nested is not None and isinstance(value, dict):
            _check(value, nested, where)


def _check_profile(name: Any, profile: Any) -> None:
    where = f"profiles.{name}"
    if not isinstance(name, str) or not _PROFILE_NAME.match(name):
        raise ConfigError(
            f"{where}: invalid profile name {name!r}; names must not start with '_' (reserved for "
            f"implicit profiles like '_s3-bucket') nor contain '/'"
        )
    if not isinstance(profile, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(profile).__name__} {profile!r}")
    _check(profile, _PROFILE, where)
    has_storage = "storage_provider" in profile
    has_bundle = "provider_bundle" in profile
    has_children = "storage_provider_profiles" in profile
    if has_storage and has_bundle:
        raise ConfigError(f"{where}: give either 'storage_provider' or 'provider_bundle', not both")
    if not (has_storage or has_bundle or has_children):
        raise ConfigError(f"{where}: missing 'storage_provider' (or 'provider_bundle')")
    for section in ("storage_provider", "credentials_provider", "metadata_provider", "provider_bundle"):
        if section in profile and "type" not in profile[section]:
            raise ConfigError(f"{where}.{section}: missing required key 'type'")
    _check_retry(profile.get("retry") or {}, f"{where}.retry")


#: Allowed range of each ``retry`` key: (lower bound, human description).
RETRY_BOUNDS: dict[str, tuple[float, str]] = {
    "attempts": (1, "an int >= 1"),
    "delay": (0, "a number >= 0"),
    "backoff_multiplier": (1.0, "a number >= 1.0"),
}


def _check_retry(retry: dict[str, Any], where: str) -> None:
    """Check the values of a ``retry`` section (types were checked by :func:`_check`).

    Args:
        retry: The section, e.g. ``{"attempts": 3, "delay": 0.5}``.
        where: Its key path, e.g. ``profiles.train.retry``.

    Raises:
        ConfigError: A value is out of range; names the key path, value and allowed range.
    """
    for key, (low, allowed) in RETRY_BOUNDS.items():
        if key in retry and retry[key] < low:
            raise ConfigError(f"{where}.{key}: invalid value {retry[key]!r}; expected {allowed}")


def validate_config(config: Any) -> None:
    """Check a configuration dictionary's structure.

    Provider ``type`` names and provider ``options`` are checked when the provider
    is built (they depend on which providers are installed).

    Raises:
        ConfigError: The first problem found; the message names its key path.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(config).__name__}")
    _check(config, _TOP, "")
    for name, profile in (config.get("profiles") or {}).items():
        _check_profile(name, profile)
    for source, target in (config.get("path_mapping") or {}).items():
        if not isinstance(source, str) or not _MAPPING_SOURCE.match(source):
            raise ConfigError(
                f"path_mapping.{source}: source must be an absolute path or URL ending in '/', "
                f"like 's3://bucket/prefix/' or '/mnt/data/'"
            )
        if not isinstance(target, str) or not _MAPPING_TARGET.match(target):
            raise ConfigError(
                f"path_mapping.{source}: target must look like 'msc://profile/', got {target!r}"
            )
    for i, item in enumerate(config.get("include") or []):
        if not isinstance(item, str):
            raise ConfigError(f"include[{i}]: expected a file path string, got {item!r}")
