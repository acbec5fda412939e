"""Finding and reading configuration files; environment expansion and secret masking.

Search order (first found wins), as in the Multi-Storage Client:

1. the file named by ``MSC_CONFIG``;
2. ``$XDG_CONFIG_HOME/msc/config.{yaml,json}``;
3. ``~/.msc_config.{yaml,json}``, ``~/.config/msc/config.{yaml,json}``;
4. ``$XDG_CONFIG_DIRS/msc/config.{yaml,json}`` (default ``/etc/xdg``);
5. ``/etc/msc_config.{yaml,json}``.

YAML is read with ``yaml.safe_load``: loading a config never runs code.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

from .errors import ConfigError
from .masking import mask_secrets
from .schema import validate_config

__all__ = [
    "config_search_paths",
    "expand_env",
    "load_config_file",
    "mask_secrets",
    "read_msc_config",
]

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def config_search_paths() -> list[str]:
    """The files searched for a configuration, in precedence order (``MSC_CONFIG`` first)."""
    paths: list[str] = []
    env = os.environ.get("MSC_CONFIG")
    if env:
        paths.append(env)
    xdg_home = os.environ.get("XDG_CONFIG_HOME")
    if xdg_home:
        paths += [os.path.join(xdg_home, "msc", f"config.{ext}") for ext in ("yaml", "json")]
    home = os.environ.get("HOME")
    if home:
        paths += [os.path.join(home, f".msc_config.{ext}") for ext in ("yaml", "json")]
        paths += [os.path.join(home, ".config", "msc", f"config.{ext}") for ext in ("yaml", "json")]
    for directory in (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":"):
        if directory.strip():
            paths += [os.path.join(directory.strip(), "msc", f"config.{ext}") for ext in ("yaml", "json")]
    paths += ["/etc/msc_config.yaml", "/etc/msc_config.json"]
    return paths


def _parse_text(text: str, source: str, as_json: bool) -> dict[str, Any]:
    try:
        if as_json:
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml and json raise several types; the message is what matters
        raise ConfigError(f"{source}: not valid {'JSON' if as_json else 'YAML'}: {exc}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config_file(path: str) -> dict[str, Any]:
    """Read one config file (JSON if it ends in ``.json``, else YAML) and merge its ``include`` list.

    Raises:
        ConfigError: Unreadable, malformed, or conflicting includes.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror or exc}")
    data = _parse_text(text, path, path.endswith(".json"))
    _resolve_file_base_paths(data, path)
    includes = data.pop("include", None) or []
    if not isinstance(includes, list):
        raise ConfigError(f"{path}: include: expected a list of file paths, got {includes!r}")
    for inc in includes:
        inc_path = inc if os.path.isabs(inc) else os.path.join(os.path.dirname(os.path.abspath(path)), inc)
        try:
            with open(inc_path, encoding="utf-8") as fh:
                included = _parse_text(fh.read(), inc_path, inc_path.endswith(".json"))
        except OSError as exc:
            raise ConfigError(f"{path}: include {inc!r}: cannot read {inc_path!r}: {exc.strerror or exc}")
        if "include" in included:
            raise ConfigError(f"{inc_path}: nested 'include' is not allowed")
        _resolve_file_base_paths(included, inc_path)
        data = _merge(data, included, path, inc_path)
    return data


def _resolve_file_base_paths(data: dict[str, Any], path: str) -> None:
    """Make the relative ``base_path`` of each ``file`` profile in ``data`` absolute, against
    the directory of the config file ``path`` (in place).

    Values starting with ``/``, ``~`` or ``${`` are left alone (an environment variable is
    expanded when the profile is built, and must then yield an absolute path).
    """
    profiles = data.get("profiles")
    for profile in profiles.values() if isinstance(profiles, dict) else ():
        section = profile.get("storage_provider") if isinstance(profile, dict) else None
        options = section.get("options") if isinstance(section, dict) else None
        if not isinstance(section, dict) or not isinstance(options, dict) or section.get("type") != "file":
            continue
        base = options.get("base_path")
        if isinstance(base, str) and base and not base.startswith(("/", "~", "${")):
            options["base_path"] = os.path.normpath(
                os.path.join(os.path.dirname(os.path.abspath(path)), base)
            )


def _check_file_base_path(section: dict[str, Any], where: str) -> None:
    """Refuse a relative ``base_path`` of a ``file`` provider built from a dict (no file to anchor it)."""
    options = section.get("options")
    base = options.get("base_path") if section.get("type") == "file" and isinstance(options, dict) else None
    if isinstance(base, str) and base and not base.startswith(("/", "~")):
        raise ConfigError(
            f"{where}.options.base_path: relative path {base!r} in a config given as a dict or string; "
            "expected an absolute directory (a relative base_path is only resolved, against the config "
            "file's directory, when the config is read from a file)"
        )


def _merge(base: dict[str, Any], extra: dict[str, Any], base_src: str, extra_src: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if key not in out:
            out[key] = value
        elif key in ("profiles", "path_mapping") and isinstance(value, dict):
            merged = dict(out[key])
            for name, item in value.items():
                if name in merged and merged[name] != item:
                    raise ConfigError(
                        f"{key}.{name} is defined differently in {base_src!r} and {extra_src!r}"
                    )
                merged[name] = item
            out[key] = merged
        elif out[key] != value:
            raise ConfigError(f"{key} is defined differently in {base_src!r} and {extra_src!r}")
    return out


def read_msc_config(config_file_paths: Iterable[str] | None = None) -> tuple[dict[str, Any], str | None]:
    """The first existing config file among ``config_file_paths``, read and validated.

    Args:
        config_file_paths: Files to try, in order (relative paths against the current
            directory). ``None`` or empty: ``MSC_CONFIG``, then :func:`config_search_paths`.

    Returns:
        ``(config_dict, absolute path)``; ``({}, None)`` when none of the files exists.

    Raises:
        ConfigError: A file is unreadable or invalid, or (default search only) ``MSC_CONFIG``
            names a file that does not exist.
    """
    paths = [os.fspath(p) for p in config_file_paths or ()]
    if not paths:
        env = os.environ.get("MSC_CONFIG")
        if env and not os.path.isfile(env):
            raise ConfigError(
                f"MSC_CONFIG={env!r}: no such config file; point MSC_CONFIG at an existing YAML/JSON file or unset it"
            )
        paths = config_search_paths()
    for path in paths:
        if os.path.isfile(path):
            data = load_config_file(path)
            validate_config(data)
            return data, os.path.abspath(path)
    return {}, None


def expand_env(value: Any, where: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of ``value``.

    Raises:
        ConfigError: A variable is unset and has no default; names it and the key path.
    """
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{where}: environment variable {name!r} is not set (referenced as ${{{name}}})"
            )

        return _ENV_RE.sub(sub, value)
    return value
