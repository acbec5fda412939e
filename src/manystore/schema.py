"""Validation of configuration dictionaries.

Errors name the key path (``profiles.train.storage_provider.type``), the bad value
and what is allowed, and suggest the nearest spelling of a misspelt key.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from .errors import ConfigError
from .utils import parse_size

__all__ = ["RESERVED_POSIX_PROFILE", "RETRY_BOUNDS", "config_problems", "validate_config"]

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
#: Eviction policies of the ``cache.eviction_policy.policy`` key (any letter case).
EVICTION_POLICIES = ("lru", "mru", "fifo", "random", "no_eviction")
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


def _check(node: Any, spec: dict[str, Any], path: str, problems: list[str]) -> None:
    for key, value in node.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in spec:
            hint = difflib.get_close_matches(str(key), list(spec), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(f"{where}: unknown key {key!r}{suggestion}; allowed keys: {sorted(spec)}")
            continue
        types, nested = spec[key]
        if isinstance(value, bool) and types in (int, (int, float)):
            problems.append(f"{where}: expected {_type_names(types)}, got bool {value!r}")
        elif not isinstance(value, types):
            problems.append(f"{where}: expected {_type_names(types)}, got {type(value).__name__} {value!r}")
        elif nested is not None and isinstance(value, dict):
            _check(value, nested, where, problems)


def _check_profile(name: Any, profile: Any, problems: list[str]) -> None:
    where = f"profiles.{name}"
    if not isinstance(name, str) or not _PROFILE_NAME.match(name):
        problems.append(
            f"{where}: invalid profile name {name!r}; names must not start with '_' (reserved for "
            f"implicit profiles like '_s3-bucket') nor contain '/'"
        )
    if not isinstance(profile, dict):
        problems.append(f"{where}: expected a mapping, got {type(profile).__name__} {profile!r}")
        return
    _check(profile, _PROFILE, where, problems)
    has_storage = "storage_provider" in profile
    has_bundle = "provider_bundle" in profile
    has_children = "storage_provider_profiles" in profile
    if has_storage and has_bundle:
        problems.append(f"{where}: give either 'storage_provider' or 'provider_bundle', not both")
    if not (has_storage or has_bundle or has_children):
        problems.append(f"{where}: missing 'storage_provider' (or 'provider_bundle')")
    for section in ("storage_provider", "credentials_provider", "metadata_provider", "provider_bundle"):
        if isinstance(profile.get(section), dict) and "type" not in profile[section]:
            problems.append(f"{where}.{section}: missing required key 'type'")
    retry = profile.get("retry")
    if isinstance(retry, dict):
        _check_retry(retry, f"{where}.retry", problems)


#: Allowed range of each ``retry`` key: (lower bound, human description).
RETRY_BOUNDS: dict[str, tuple[float, str]] = {
    "attempts": (1, "an int >= 1"),
    "delay": (0, "a number >= 0"),
    "backoff_multiplier": (1.0, "a number >= 1.0"),
}


def _check_retry(retry: dict[str, Any], where: str, problems: list[str]) -> None:
    """Check the values of a ``retry`` section (types were checked by :func:`_check`).

    Args:
        retry: The section, e.g. ``{"attempts": 3, "delay": 0.5}``.
        where: Its key path, e.g. ``profiles.train.retry``.
        problems: Where each value out of range is reported (key path, value, allowed range).
    """
    for key, (low, allowed) in RETRY_BOUNDS.items():
        value = retry.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < low:
            problems.append(f"{where}.{key}: invalid value {value!r}; expected {allowed}")


def _is_size(value: str) -> bool:
    try:
        parse_size(value)
    except ValueError:
        return False
    return True


def _check_cache(cache: dict[str, Any], problems: list[str]) -> None:
    """Check the values of the ``cache`` section (types were checked by :func:`_check`)."""
    for key in ("size", "cache_line_size"):
        value = cache.get(key)
        if isinstance(value, str) and not _is_size(value):
            problems.append(
                f"cache.{key}: invalid size {value!r}; expected a number with a unit like '500M', '10G'"
            )
    policy = cache.get("eviction_policy")
    name = policy.get("policy") if isinstance(policy, dict) else policy
    if isinstance(name, str) and name.lower() not in EVICTION_POLICIES:
        problems.append(f"cache.eviction_policy.policy: {name!r} is not one of {list(EVICTION_POLICIES)}")
    if isinstance(policy, dict):
        purge = policy.get("purge_factor")
        if isinstance(purge, int) and not isinstance(purge, bool) and not 0 <= purge <= 100:
            problems.append(
                f"cache.eviction_policy.purge_factor: invalid value {purge!r}; expected an int 0..100"
            )
        refresh = policy.get("refresh_interval")
        if isinstance(refresh, int) and not isinstance(refresh, bool) and refresh < 1:
            problems.append(
                f"cache.eviction_policy.refresh_interval: invalid value {refresh!r}; expected an int >= 1"
            )


_REPLICA = {"replica_profile": (str, None), "read_priority": (int, None), "read_only": (bool, None)}


def _check_replicas(profiles: dict[Any, Any], problems: list[str]) -> None:
    """Check each profile's ``replicas`` list (as 1.3.1): entries with ``replica_profile`` and
    ``read_priority``, naming other defined profiles that have no replicas of their own, once each."""
    for name, profile in profiles.items():
        replicas = profile.get("replicas") if isinstance(profile, dict) else None
        if not isinstance(replicas, list):
            continue
        seen: set[str] = set()
        for i, replica in enumerate(replicas):
            where = f"profiles.{name}.replicas[{i}]"
            if not isinstance(replica, dict):
                problems.append(f"{where}: expected a mapping, got {type(replica).__name__} {replica!r}")
                continue
            _check(replica, _REPLICA, where, problems)
            missing = [k for k in ("replica_profile", "read_priority") if k not in replica]
            if missing:
                problems.append(f"{where}: missing required key(s) {missing}")
            target = replica.get("replica_profile")
            if not isinstance(target, str):
                continue
            if target in seen:
                problems.append(f"{where}.replica_profile: duplicate replica entry for profile {target!r}")
            seen.add(target)
            if target == name:
                problems.append(f"{where}.replica_profile: {target!r} is the profile itself")
            elif target not in profiles:
                problems.append(
                    f"{where}.replica_profile: no profile {target!r} in the config; defined: {sorted(profiles)}"
                )
            elif isinstance(profiles[target], dict) and profiles[target].get("replicas"):
                problems.append(
                    f"{where}.replica_profile: profile {target!r} has replicas of its own; "
                    "a replica must not (no chains or cycles)"
                )


def config_problems(config: Any) -> list[str]:
    """Every structural problem of a configuration dictionary, in file order.

    Args:
        config: The parsed config (``include`` already merged).

    Returns:
        One message per problem, each naming its key path, the bad value and what is
        allowed; an empty list when the structure is valid.
    """
    if not isinstance(config, dict):
        return [f"config: expected a mapping at the top level, got {type(config).__name__}"]
    problems: list[str] = []
    _check(config, _TOP, "", problems)
    profiles = config.get("profiles")
    for name, profile in profiles.items() if isinstance(profiles, dict) else ():
        _check_profile(name, profile, problems)
    if isinstance(profiles, dict):
        _check_replicas(profiles, problems)
    if isinstance(config.get("cache"), dict):
        _check_cache(config["cache"], problems)
    mapping = config.get("path_mapping")
    for source, target in mapping.items() if isinstance(mapping, dict) else ():
        if not isinstance(source, str) or not _MAPPING_SOURCE.match(source):
            problems.append(
                f"path_mapping.{source}: source must be an absolute path or URL ending in '/', "
                f"like 's3://bucket/prefix/' or '/mnt/data/'"
            )
        elif not isinstance(target, str) or not _MAPPING_TARGET.match(target):
            problems.append(f"path_mapping.{source}: target must look like 'msc://profile/', got {target!r}")
    includes = config.get("include")
    for i, item in enumerate(includes if isinstance(includes, list) else ()):
        if not isinstance(item, str):
            problems.append(f"include[{i}]: expected a file path string, got {item!r}")
    return problems


def validate_config(config: Any) -> None:
    """Check a configuration dictionary's structure.

    Provider ``type`` names and provider ``options`` are checked when the provider
    is built (they depend on which providers are installed).
    :func:`config_problems` lists every problem instead of the first.

    Raises:
        ConfigError: The first problem found; the message names its key path.
    """
    problems = config_problems(config)
    if problems:
        raise ConfigError(problems[0])
