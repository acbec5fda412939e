"""Building the providers of one profile: :class:`StorageClientConfig`.

The config schema follows the Multi-Storage Client, so an existing ``~/.msc_config.yaml``
works unchanged; where files are searched and how they are read is in
:mod:`manystore.config_files` (its functions are re-exported here).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any

from .caching.cache_config import CacheConfig
from .config_files import (
    _check_file_base_path,
    _parse_text,
    config_search_paths,
    expand_env,
    load_config_file,
    mask_secrets,
    read_msc_config,
)
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
    AutoCommitConfig,
    CredentialsProvider,
    MetadataProvider,
    ProviderBundle,
    ProviderBundleV2,
    Replica,
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


def _replicas_of(spec: dict[str, Any]) -> list[Replica]:
    """The profile's ``replicas`` (validated by the schema) as :class:`Replica` objects, by read priority."""
    found = [
        Replica(r["replica_profile"], int(r["read_priority"]), bool(r.get("read_only", False)))
        for r in spec.get("replicas") or []
    ]
    return sorted(found, key=lambda replica: replica.read_priority)


def _autocommit_of(spec: dict[str, Any], where: str) -> AutoCommitConfig:
    """The profile's ``autocommit`` section as an :class:`AutoCommitConfig` (empty: no autocommit)."""
    section = spec.get("autocommit") or {}
    try:
        return AutoCommitConfig(section.get("interval_minutes"), section.get("at_exit", False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.autocommit: {exc}") from exc


def _rebuild(
    config_dict: dict[str, Any],
    profile: str,
    telemetry: Telemetry | None,
    telemetry_provider: Callable[[], Telemetry] | None,
    replicas: list[Replica] | None,
    autocommit_config: AutoCommitConfig | None,
) -> StorageClientConfig:
    """Unpickle: build the profile again from its dict, keeping replicas/autocommit set by the caller."""
    config = StorageClientConfig.from_dict(
        config_dict, profile, True, telemetry_provider=telemetry_provider, telemetry=telemetry
    )
    config.replicas, config.autocommit_config = replicas, autocommit_config
    return config


@dataclass
class StorageClientConfig:
    """Everything a :class:`manystore.StorageClient` needs for one profile.

    Build it with :meth:`from_file` (the config search path), :meth:`from_dict`,
    :meth:`from_yaml`, :meth:`from_json` or :meth:`from_provider_bundle`; the constructor
    takes MSC 1.3.1's parameters in its order. Configs built from a dict are picklable:
    they are rebuilt in the receiving process (providers are never shared across processes).

    Attributes:
        profile: The profile name.
        storage_provider: The profile's storage provider.
        credentials_provider: Its credentials provider, if any.
        storage_provider_profiles: Child profiles of a multi-backend (composite) profile, as
            in MSC 1.3.1; such a config can be built, but a :class:`manystore.StorageClient`
            refuses it (``ValueError``: composite clients are not supported).
        child_configs: The child profiles' configs (composite profiles only).
        metadata_provider: The metadata provider (e.g. a manifest), if any.
        cache_config: The read cache settings, used when ``caching_enabled``.
        cache_manager: A cache manager shared between clients, if any.
        retry_config: Retries of transient failures (``None``: the defaults).
        telemetry_provider: A top-level function returning the
            :class:`manystore.telemetry.Telemetry` to record metrics into (picklable).
        replicas: Profiles tried for reads before this one, by ``read_priority`` (``None``: none).
        autocommit_config: When the metadata provider commits on its own (see
            :class:`manystore.types.AutoCommitConfig`).
        caching_enabled: Read through ``cache_config``'s cache.
        telemetry: A :class:`manystore.telemetry.Telemetry` instance (older spelling of
            ``telemetry_provider``; not carried through pickling).

    Raises:
        ValueError: Both or neither of ``storage_provider`` and ``storage_provider_profiles``.
        TypeError: ``replicas`` holds something else than :class:`Replica` objects, or
            ``autocommit_config`` is not an :class:`AutoCommitConfig`.
    """

    profile: str
    storage_provider: StorageProvider | None = None
    credentials_provider: CredentialsProvider | None = None
    storage_provider_profiles: list[str] | None = None
    child_configs: dict[str, StorageClientConfig] | None = field(default=None, repr=False)
    metadata_provider: MetadataProvider | None = None
    cache_config: CacheConfig | None = None
    cache_manager: Any | None = None
    retry_config: RetryConfig | None = None
    telemetry_provider: Callable[[], Telemetry] | None = field(default=None, repr=False)
    replicas: list[Replica] | None = None
    autocommit_config: AutoCommitConfig | None = None
    _: KW_ONLY
    caching_enabled: bool = False
    telemetry: Telemetry | None = field(default=None, repr=False)
    _config_dict: dict[str, Any] | None = field(default=None, repr=False)
    #: The config given with a provider bundle (its replica profiles are built from it).
    _bundle_dict: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.storage_provider is not None and self.storage_provider_profiles:
            raise ValueError(
                f"StorageClientConfig({self.profile!r}): got both storage_provider and "
                f"storage_provider_profiles={self.storage_provider_profiles!r}; expected exactly one"
            )
        if self.storage_provider is None and not self.storage_provider_profiles:
            raise ValueError(
                f"StorageClientConfig({self.profile!r}): expected a storage_provider or "
                "storage_provider_profiles, got neither"
            )
        self.replicas = list(self.replicas or [])
        for replica in self.replicas:
            if not isinstance(replica, Replica):
                raise TypeError(
                    f"StorageClientConfig({self.profile!r}).replicas: expected Replica objects, got {replica!r}"
                )
        if self.autocommit_config is not None and not isinstance(self.autocommit_config, AutoCommitConfig):
            raise TypeError(
                f"StorageClientConfig({self.profile!r}).autocommit_config: expected an AutoCommitConfig, "
                f"got {self.autocommit_config!r}"
            )

    def __reduce__(self) -> tuple[Any, ...]:
        if self._config_dict is None:
            raise TypeError(f"StorageClientConfig for profile {self.profile!r} was not built from a dict")
        args = (
            self._config_dict,
            self.profile,
            self.telemetry,
            self.telemetry_provider,
            self.replicas,
            self.autocommit_config,
        )
        return (_rebuild, args)

    def _instrument(self, config_dict: dict[str, Any]) -> None:
        """Apply the config's ``opentelemetry`` section (telemetry is off without one)."""
        if config_dict.get("opentelemetry") is not None and self.storage_provider is not None:
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
        telemetry_provider: Callable[[], Telemetry] | None = None,
        *,
        telemetry: Telemetry | None = None,
    ) -> StorageClientConfig:
        """Build the config of ``profile`` from a config dictionary.

        ``default`` and ``__filesystem__`` need no definition (they map to the local file
        system root); implicit names such as ``_s3-bucket`` are built from the URL's scheme.
        With an ``opentelemetry.metrics`` section, the storage provider records metrics into
        ``telemetry``, else into ``telemetry_provider()`` (a top-level function, so that
        the config pickles), else into :func:`manystore.telemetry.init` ``()``.

        Args:
            config_dict: The parsed configuration.
            profile: The profile to build.
            skip_validation: Do not check the structure first.
            telemetry_provider: See above.
            telemetry: See above (keyword-only; the reference seed's spelling).

        Raises:
            ConfigError: Invalid structure, unknown provider type, bad options, or a
                multi-backend profile (``storage_provider_profiles``: not supported).
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
        if "storage_provider_profiles" in spec:
            raise ConfigError(
                f"{where}.storage_provider_profiles: {spec['storage_provider_profiles']!r}: multi-backend "
                "(composite) profiles are not supported by manystore; expected 'storage_provider' or "
                "'provider_bundle' with one backend"
            )
        if "provider_bundle" in spec:
            bundle = _build(spec["provider_bundle"], {}, "provider bundle", f"{where}.provider_bundle")
            if not isinstance(bundle, (ProviderBundle, ProviderBundleV2)):
                raise ConfigError(
                    f"{where}.provider_bundle.type: {type(bundle).__name__} is not a ProviderBundle "
                    "or ProviderBundleV2"
                )
            config = StorageClientConfig._from_bundle(bundle, profile, telemetry)
            config.telemetry_provider = telemetry_provider
            config.replicas = config.replicas or _replicas_of(spec)
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
                telemetry_provider=telemetry_provider,
                replicas=_replicas_of(spec),
                telemetry=telemetry,
            )
        config.autocommit_config = _autocommit_of(spec, where)
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
        telemetry_provider: Callable[[], Telemetry] | None = None,
        *,
        telemetry: Telemetry | None = None,
    ) -> StorageClientConfig:
        """Build from a JSON document (see :meth:`from_dict`)."""
        return StorageClientConfig.from_dict(
            _parse_text(config_json, "config JSON", True),
            profile,
            telemetry_provider=telemetry_provider,
            telemetry=telemetry,
        )

    @staticmethod
    def from_yaml(
        config_yaml: str,
        profile: str = DEFAULT_PROFILE,
        telemetry_provider: Callable[[], Telemetry] | None = None,
        *,
        telemetry: Telemetry | None = None,
    ) -> StorageClientConfig:
        """Build from a YAML document (safe loader; see :meth:`from_dict`)."""
        return StorageClientConfig.from_dict(
            _parse_text(config_yaml, "config YAML", False),
            profile,
            telemetry_provider=telemetry_provider,
            telemetry=telemetry,
        )

    @staticmethod
    def from_file(
        config_file_paths: Iterable[str] | None = None,
        profile: str = DEFAULT_PROFILE,
        telemetry_provider: Callable[[], Telemetry] | None = None,
        *,
        telemetry: Telemetry | None = None,
    ) -> StorageClientConfig:
        """Build ``profile`` from the first config file found (see :mod:`manystore.config_files`).

        With no config file, ``__filesystem__`` (alias ``default``) is the local file system.

        Args:
            config_file_paths: Files to try instead of the default search path (``None`` or
                empty: ``MSC_CONFIG`` and the search path).
            profile: The profile to build.
            telemetry_provider: See :meth:`from_dict`.
            telemetry: See :meth:`from_dict` (keyword-only).

        Raises:
            TypeError: ``config_file_paths`` is a string (expected a list of paths; the
                profile goes in ``profile=``).
            ConfigError: See :meth:`from_dict` and :meth:`read_msc_config`.
        """
        if isinstance(config_file_paths, (str, bytes)):
            raise TypeError(
                f"config_file_paths: expected a list of config file paths, got the string "
                f"{config_file_paths!r} (pass a profile name as profile=...)"
            )
        config_dict, _ = read_msc_config(config_file_paths)
        return StorageClientConfig.from_dict(
            config_dict,
            profile,
            skip_validation=True,
            telemetry_provider=telemetry_provider,
            telemetry=telemetry,
        )

    @staticmethod
    def from_provider_bundle(
        config_dict: dict[str, Any],
        provider_bundle: ProviderBundle | ProviderBundleV2,
        telemetry_provider: Callable[[], Telemetry] | None = None,
        *,
        telemetry: Telemetry | None = None,
    ) -> StorageClientConfig:
        """Build from a :class:`ProviderBundle` or a :class:`ProviderBundleV2`; ``config_dict`` may
        add ``retry``/``cache`` and ``opentelemetry`` settings (see :meth:`from_dict`) and defines
        the profiles named by the bundle's replicas.

        A :class:`ProviderBundleV2` must have exactly one storage backend (its provider,
        credentials, replicas and the bundle's metadata provider make the profile, as a
        :class:`ProviderBundle` would).

        Raises:
            ConfigError: A V2 bundle with no backend or several backends (multi-backend
                profiles are not supported by this build), replicas that are not
                :class:`Replica` objects or name no profile of ``config_dict``, or a bad
                provider config.
        """
        config = StorageClientConfig._from_bundle(provider_bundle, "default", telemetry)
        config.telemetry_provider = telemetry_provider
        config._bundle_dict = copy.deepcopy(config_dict)
        defined = config_dict.get("profiles") or {}
        for replica in config.replicas or []:
            if replica.replica_profile not in defined:
                raise ConfigError(
                    f"{type(provider_bundle).__name__} replica {replica.replica_profile!r}: no such profile in "
                    f"the config given with the bundle; defined: {sorted(defined)}"
                )
        config._instrument(config_dict)
        config.retry_config = _retry_config(config_dict.get("retry"), "retry")
        if "cache" in config_dict:
            config.cache_config = CacheConfig.from_dict(config_dict["cache"])
            config.caching_enabled = True
        return config

    @staticmethod
    def _from_bundle(
        bundle: ProviderBundle | ProviderBundleV2, profile: str, telemetry: Telemetry | None
    ) -> StorageClientConfig:
        if isinstance(bundle, ProviderBundleV2):
            backend = _single_backend(bundle, profile)
            sp, credentials = backend.storage_provider_config, backend.credentials_provider
            replicas = backend.replicas
        else:
            sp, credentials = bundle.storage_provider_config, bundle.credentials_provider
            replicas = bundle.replicas
        for replica in replicas or []:
            if not isinstance(replica, Replica):
                raise ConfigError(
                    f"profiles.{profile}: {type(bundle).__name__} replicas: expected Replica objects, got {replica!r}"
                )
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
            replicas=sorted(replicas or [], key=lambda replica: replica.read_priority),
            telemetry=telemetry,
        )

    @staticmethod
    def read_msc_config(
        config_file_paths: Iterable[str] | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        """The first config file among ``config_file_paths`` (default: ``MSC_CONFIG``, then the
        search path), read, its includes merged, validated.

        Returns:
            ``(config_dict, absolute path)``; ``({}, None)`` when no file exists.

        Raises:
            ConfigError: Unreadable or invalid file; ``MSC_CONFIG`` naming no file.
        """
        return read_msc_config(config_file_paths)

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
    if problem:
        raise ConfigError(f"{where} {problem}")
    return backend
