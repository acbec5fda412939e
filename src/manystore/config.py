"""Loading configuration and building the providers of one profile.

The config schema and file locations follow the Multi-Storage Client, so an
existing ``~/.msc_config.yaml`` works unchanged. Search order (first found wins):

1. the file named by ``MSC_CONFIG``;
2. ``$XDG_CONFIG_HOME/msc/config.{yaml,json}``;
3. ``~/.msc_config.{yaml,json}``, ``~/.config/msc/config.{yaml,json}``;
4. ``$XDG_CONFIG_DIRS/msc/config.{yaml,json}`` (default ``/etc/xdg``);
5. ``/etc/msc_config.{yaml,json}``.

YAML is read with ``yaml.safe_load``: loading a config never runs code.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .caching.cache_config import CacheConfig
from .errors import ConfigError, UnknownProfileError
from .providers import (
    CREDENTIALS_PROVIDERS,
    METADATA_PROVIDERS,
    STORAGE_PROVIDERS,
    check_options,
    load_class,
)
from .schema import RESERVED_POSIX_PROFILE, RETRY_BOUNDS, validate_config
from .types import (
    CredentialsProvider,
    MetadataProvider,
    ProviderBundle,
    ProviderBundleV2,
    RetryConfig,
    StorageBackend,
    StorageProvider,
)
from .urls import PathMapping, implicit_profile_config

if TYPE_CHECKING:
    from collections.abc import Callable

    from .telemetry import Telemetry

__all__ = [
    "DEFAULT_PROFILE",
    "StorageClientConfig",
    "config_search_paths",
    "expand_env",
    "load_config_file",
    "mask_secrets",
    "config_errors",
    "read_msc_config",
]

DEFAULT_PROFILE = RESERVED_POSIX_PROFILE  # MSC 1.3.1; "default" stays an alias when undefined
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: Keys whose string values are replaced by ``***`` (also matched as a ``_``-joined suffix,
#: so ``aws_secret_access_key`` counts).
_SECRET_KEYS = frozenset(
    {
        "secret_key",
        "secret_access_key",
        "password",
        "token",
        "session_token",
        "connection",
        "connection_string",
        "account_key",
        "sas_token",
        "private_key",
        "passphrase",
        "client_secret",
    }
)
#: Keys whose string values are shown as their first 4 characters followed by ``***``.
_PARTLY_SECRET_KEYS = frozenset({"access_key", "access_key_id"})
_MASK = "***"


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


def read_msc_config(paths: Iterable[str] | None = None) -> tuple[dict[str, Any], str | None]:
    """The first config found on ``paths`` (default: :func:`config_search_paths`), validated.

    Returns:
        ``(config_dict, path)``; ``({}, None)`` when no file exists.

    Raises:
        ConfigError: ``MSC_CONFIG`` names a file that does not exist (default search only).
    """
    env = os.environ.get("MSC_CONFIG")
    if paths is None and env and not os.path.isfile(env):
        raise ConfigError(
            f"MSC_CONFIG={env!r}: no such config file; point MSC_CONFIG at an existing YAML/JSON file or unset it"
        )
    for path in paths if paths is not None else config_search_paths():
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


def _key_matches(key: str, names: frozenset[str]) -> bool:
    lowered = key.lower()
    return lowered in names or any(lowered.endswith("_" + name) for name in names)


def _mask_leaf(key: Any, value: Any) -> Any:
    if not isinstance(key, str) or not isinstance(value, str) or not value:
        return mask_secrets(value)
    if _key_matches(key, _SECRET_KEYS):
        return _MASK
    if _key_matches(key, _PARTLY_SECRET_KEYS):
        return value[:4] + _MASK if len(value) > 4 else _MASK
    return value


def mask_secrets(value: Any) -> Any:
    """A copy of a config with secret string values hidden, for display and logs.

    Non-empty string values of secret-looking keys (``secret_key``, ``password``,
    ``token``, ``session_token``, ``connection_string``, ``account_key``, ``sas_token``,
    ``private_key``, ``passphrase``, ``client_secret`` and the like) become ``***``;
    an ``access_key`` keeps its first 4 characters (``AKIA***``). Everything else,
    such as provider ``type`` names, is kept, and dicts and lists are masked recursively.

    Args:
        value: A config dict (or any part of one).

    Returns:
        The masked copy; ``value`` itself is not modified.
    """
    if isinstance(value, dict):
        return {k: _mask_leaf(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def _retry_config(section: Any, where: str) -> RetryConfig:
    """Build a :class:`RetryConfig` from a ``retry`` section, reporting bad values as config errors.

    Args:
        section: The section (``None`` for the defaults).
        where: Its key path, e.g. ``profiles.train.retry``.

    Raises:
        ConfigError: Not a mapping, an unknown key, a wrong type or a value out of range;
            the message names the key path, the value and the allowed range.
    """
    if section is None:
        return RetryConfig()
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(section).__name__} {section!r}")
    for key, value in section.items():
        if key not in RETRY_BOUNDS:
            raise ConfigError(f"{where}.{key}: unknown key {key!r}; allowed keys: {sorted(RETRY_BOUNDS)}")
        low, allowed = RETRY_BOUNDS[key]
        is_number = isinstance(value, int) or (key != "attempts" and isinstance(value, float))
        if isinstance(value, bool) or not is_number or value < low:
            raise ConfigError(f"{where}.{key}: invalid value {value!r}; expected {allowed}")
    return RetryConfig(**section)


#: Parameters manystore passes to providers itself; a config naming one is an error.
_INTERNAL_OPTIONS = frozenset({"credentials_provider", "storage_provider"})


def _build(section: dict[str, Any], registry: dict[str, str], kind: str, where: str, **extra: Any) -> Any:
    cls = load_class(section["type"], registry, kind, f"{where}.type")
    options = dict(section.get("options") or {})
    check_options(cls, options, section["type"], kind, f"{where}.options", internal=_INTERNAL_OPTIONS)
    try:
        return cls(**options, **extra)
    except ConfigError as exc:
        raise ConfigError(f"{where}.options: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{where}.options: {exc}") from exc


def config_errors(config_dict: dict[str, Any]) -> list[str]:
    """Every error of a configuration: its structure, then each profile built in turn.

    Unlike :func:`manystore.schema.validate_config` and
    :meth:`StorageClientConfig.from_dict`, which stop at the first problem, this reports
    all of them (a profile whose structure is wrong is not also built).

    Args:
        config_dict: A parsed config (e.g. from :func:`load_config_file`).

    Returns:
        One message per problem, each naming its key path; empty when the config is valid.
    """
    from .schema import config_problems

    problems = config_problems(config_dict)
    profiles = config_dict.get("profiles") if isinstance(config_dict, dict) else None
    if not isinstance(profiles, dict):
        return problems
    for name in profiles:
        prefix = f"profiles.{name}"
        if any(p == prefix or p.startswith((prefix + ".", prefix + ":")) for p in problems):
            continue
        try:
            StorageClientConfig.from_dict(config_dict, str(name), skip_validation=True)
        except Exception as exc:  # every failure of a profile is a finding, whatever its type
            text = str(exc)
            problems.append(text if text.startswith(prefix) else f"{prefix}: {type(exc).__name__}: {text}")
    return problems


@dataclass
class StorageClientConfig:
    """Everything a :class:`manystore.StorageClient` needs for one profile.

    Build it with :meth:`from_file` (the config search path), :meth:`from_dict`,
    :meth:`from_yaml`, :meth:`from_json` or :meth:`from_provider_bundle`.
    Configs built from a dict are picklable: they are rebuilt in the receiving process
    (providers are never shared across processes).
    """

    profile: str
    storage_provider: StorageProvider
    credentials_provider: CredentialsProvider | None = None
    metadata_provider: MetadataProvider | None = None
    cache_config: CacheConfig | None = None
    cache_manager: Any | None = None
    retry_config: RetryConfig | None = None
    caching_enabled: bool = False
    telemetry: Telemetry | None = field(default=None, repr=False)
    _config_dict: dict[str, Any] | None = field(default=None, repr=False)
    telemetry_provider: Callable[[], Telemetry] | None = field(default=None, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        if self._config_dict is None:
            raise TypeError(f"StorageClientConfig for profile {self.profile!r} was not built from a dict")
        args = (self._config_dict, self.profile, True, self.telemetry, self.telemetry_provider)
        return (StorageClientConfig.from_dict, args)

    def _instrument(self, config_dict: dict[str, Any]) -> None:
        """Apply the config's ``opentelemetry`` section (telemetry is off without one)."""
        if config_dict.get("opentelemetry") is not None:
            from .telemetry.instrument import instrument_config

            instrument_config(
                self.storage_provider,
                expand_env(config_dict["opentelemetry"], "opentelemetry"),
                mask_secrets(config_dict),
                self.profile,
                self.telemetry,
                self.telemetry_provider,
            )

    # ------------------------------------------------------------ builders
    @staticmethod
    def from_dict(
        config_dict: dict[str, Any],
        profile: str = DEFAULT_PROFILE,
        skip_validation: bool = False,
        telemetry: Telemetry | None = None,
        telemetry_provider: Callable[[], Telemetry] | None = None,
    ) -> StorageClientConfig:
        """Build the config of ``profile`` from a config dictionary.

        ``default`` and ``__filesystem__`` need no definition (they map to the local file
        system root); implicit names such as ``_s3-bucket`` are built from the URL's scheme.
        With an ``opentelemetry.metrics`` section, the storage provider records metrics into
        ``telemetry``, else into ``telemetry_provider()`` (a top-level function, so that
        the config pickles), else into :func:`manystore.telemetry.init` ``()``.

        Raises:
            ConfigError: Invalid structure, unknown provider type, bad options.
            UnknownProfileError: ``profile`` is neither defined nor implicit.
        """
        if not skip_validation:
            validate_config(config_dict)
        profiles = config_dict.get("profiles") or {}
        raw = profiles.get(profile)
        if raw is None:
            raw = implicit_profile_config(RESERVED_POSIX_PROFILE if profile == "default" else profile)
            if raw is None:
                raise UnknownProfileError(
                    f"unknown profile {profile!r}; the config defines {sorted(profiles) or 'no profiles'}"
                )
        where = f"profiles.{profile}"
        spec = expand_env(raw, where)
        if "provider_bundle" in spec:
            bundle = _build(spec["provider_bundle"], {}, "provider bundle", f"{where}.provider_bundle")
            if not isinstance(bundle, (ProviderBundle, ProviderBundleV2)):
                raise ConfigError(
                    f"{where}.provider_bundle.type: {type(bundle).__name__} is not a ProviderBundle "
                    "or ProviderBundleV2"
                )
            config = StorageClientConfig._from_bundle(config_dict, bundle, profile, telemetry)
            config.telemetry_provider = telemetry_provider
        else:
            credentials = None
            if "credentials_provider" in spec:
                credentials = _build(
                    spec["credentials_provider"],
                    CREDENTIALS_PROVIDERS,
                    "credentials provider",
                    f"{where}.credentials_provider",
                )
            extra = {"credentials_provider": credentials} if credentials is not None else {}
            _check_file_base_path(spec["storage_provider"], f"{where}.storage_provider")
            storage = _build(
                spec["storage_provider"],
                STORAGE_PROVIDERS,
                "storage provider",
                f"{where}.storage_provider",
                **extra,
            )
            metadata = None
            if "metadata_provider" in spec:
                metadata = _build(
                    spec["metadata_provider"],
                    METADATA_PROVIDERS,
                    "metadata provider",
                    f"{where}.metadata_provider",
                    storage_provider=storage,
                )
            config = StorageClientConfig(
                profile=profile,
                storage_provider=storage,
                credentials_provider=credentials,
                metadata_provider=metadata,
                telemetry=telemetry,
                telemetry_provider=telemetry_provider,
            )
        config._instrument(config_dict)
        config.retry_config = _retry_config(spec.get("retry"), f"{where}.retry")
        config.caching_enabled = bool(spec.get("caching_enabled", "cache" in config_dict))
        if "cache" in config_dict:
            config.cache_config = CacheConfig.from_dict(expand_env(config_dict["cache"], "cache"))
        config._config_dict = copy.deepcopy(config_dict)
        return config

    @staticmethod
    def from_json(
        config_json: str,
        profile: str = DEFAULT_PROFILE,
        telemetry: Telemetry | None = None,
        telemetry_provider: Callable[[], Telemetry] | None = None,
    ) -> StorageClientConfig:
        """Build from a JSON document (see :meth:`from_dict`)."""
        return StorageClientConfig.from_dict(
            _parse_text(config_json, "config JSON", True),
            profile,
            telemetry=telemetry,
            telemetry_provider=telemetry_provider,
        )

    @staticmethod
    def from_yaml(
        config_yaml: str,
        profile: str = DEFAULT_PROFILE,
        telemetry: Telemetry | None = None,
        telemetry_provider: Callable[[], Telemetry] | None = None,
    ) -> StorageClientConfig:
        """Build from a YAML document (safe loader; see :meth:`from_dict`)."""
        return StorageClientConfig.from_dict(
            _parse_text(config_yaml, "config YAML", False),
            profile,
            telemetry=telemetry,
            telemetry_provider=telemetry_provider,
        )

    @staticmethod
    def from_file(
        profile: str = DEFAULT_PROFILE,
        telemetry: Telemetry | None = None,
        telemetry_provider: Callable[[], Telemetry] | None = None,
    ) -> StorageClientConfig:
        """Build from the first config file on the search path (see the module docs).

        With no config file, ``default`` is the local file system.
        """
        config_dict, _ = read_msc_config()
        return StorageClientConfig.from_dict(
            config_dict,
            profile,
            skip_validation=True,
            telemetry=telemetry,
            telemetry_provider=telemetry_provider,
        )

    @staticmethod
    def from_provider_bundle(
        config_dict: dict[str, Any],
        provider_bundle: ProviderBundle | ProviderBundleV2,
        telemetry: Telemetry | None = None,
        telemetry_provider: Callable[[], Telemetry] | None = None,
    ) -> StorageClientConfig:
        """Build from a :class:`ProviderBundle` or a :class:`ProviderBundleV2`; ``config_dict`` may
        add ``retry``/``cache`` and ``opentelemetry`` settings (see :meth:`from_dict`).

        A :class:`ProviderBundleV2` must have exactly one storage backend, without replicas (its
        provider, credentials and the bundle's metadata provider make the profile, as a
        :class:`ProviderBundle` would).

        Raises:
            ConfigError: A V2 bundle with no backend, several backends or replicas (multi-backend
                and replica profiles are not supported by this build), or a bad provider config.
        """
        config = StorageClientConfig._from_bundle(config_dict, provider_bundle, "default", telemetry)
        config.telemetry_provider = telemetry_provider
        config._instrument(config_dict)
        config.retry_config = _retry_config(config_dict.get("retry"), "retry")
        if "cache" in config_dict:
            config.cache_config = CacheConfig.from_dict(config_dict["cache"])
            config.caching_enabled = True
        return config

    @staticmethod
    def _from_bundle(
        config_dict: dict[str, Any],
        bundle: ProviderBundle | ProviderBundleV2,
        profile: str,
        telemetry: Telemetry | None,
    ) -> StorageClientConfig:
        if isinstance(bundle, ProviderBundleV2):
            backend = _single_backend(bundle, profile)
            sp, credentials = backend.storage_provider_config, backend.credentials_provider
        else:
            sp, credentials = bundle.storage_provider_config, bundle.credentials_provider
        extra = {"credentials_provider": credentials} if credentials is not None else {}
        section = {"type": sp.type, "options": sp.options or {}}
        storage = _build(
            section, STORAGE_PROVIDERS, "storage provider", f"profiles.{profile}.provider_bundle", **extra
        )
        return StorageClientConfig(
            profile=profile,
            storage_provider=storage,
            credentials_provider=credentials,
            metadata_provider=bundle.metadata_provider,
            telemetry=telemetry,
        )

    @staticmethod
    def read_path_mapping() -> PathMapping:
        """The ``path_mapping`` of the config found on the search path."""
        config_dict, _ = read_msc_config()
        return PathMapping.from_config(config_dict.get("path_mapping"))


def _single_backend(bundle: ProviderBundleV2, profile: str) -> StorageBackend:
    """The one backend of a V2 bundle; anything else is refused with a ConfigError naming it."""
    where, backends = f"profiles.{profile}: {type(bundle).__name__}.storage_backends", bundle.storage_backends
    problem = None
    if not isinstance(backends, dict) or not backends:
        problem = f"must map a backend name to a StorageBackend, got {backends!r}"
    elif len(backends) > 1:  # MSC routes these through its composite client and replica manager
        problem = (
            f"has {len(backends)} backends {sorted(backends)}; only one is supported (no composite client)"
        )
    elif not isinstance(backend := next(iter(backends.values())), StorageBackend):
        problem = f"must hold StorageBackend values, got {type(backend).__name__}"
    elif backend.replicas:
        problem = (
            f"backend has {len(backend.replicas)} replica(s); bundle replicas are not supported (expected [])"
        )
    if problem:
        raise ConfigError(f"{where} {problem}")
    return backend
