"""Storage, credentials and metadata providers, loaded lazily by their config ``type`` name.

Importing this package imports no cloud SDK: a provider module is imported the
first time a profile uses its type.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError, ProviderUnavailableError

__all__ = [
    "CREDENTIALS_PROVIDERS",
    "METADATA_PROVIDERS",
    "STORAGE_PROVIDERS",
    "accepted_options",
    "check_options",
    "load_class",
]

#: Built-in storage provider ``type`` names -> "module:Class" (module relative to this package).
STORAGE_PROVIDERS: dict[str, str] = {
    "file": "posix_file:PosixFileStorageProvider",
    "s3": "s3:S3StorageProvider",
    "s8k": "s8k:S8KStorageProvider",
    "gcs_s3": "gcs_s3:GoogleS3StorageProvider",
    "ais_s3": "ais_s3:AIStoreS3StorageProvider",
    "gcs": "gcs:GoogleStorageProvider",
    "azure": "azure:AzureBlobStorageProvider",
    "oci": "oci:OracleStorageProvider",
    "ais": "ais:AIStoreStorageProvider",
}

#: Built-in credentials provider ``type`` names.
CREDENTIALS_PROVIDERS: dict[str, str] = {
    "S3Credentials": "s3:StaticS3CredentialsProvider",
    "FileBasedCredentials": "file_credentials:FileBasedCredentialsProvider",
    "AzureCredentials": "azure:StaticAzureCredentialsProvider",
    "DefaultAzureCredentials": "azure:DefaultAzureCredentialsProvider",
    "AISCredentials": "ais:StaticAISCredentialProvider",
    "GoogleIdentityPoolCredentialsProvider": "gcs:GoogleIdentityPoolCredentialsProvider",
    "GoogleServiceAccountCredentialsProvider": "gcs:GoogleServiceAccountCredentialsProvider",
}

#: Built-in metadata provider ``type`` names.
METADATA_PROVIDERS: dict[str, str] = {
    "manifest": "manifest_metadata:ManifestMetadataProvider",
}


def load_class(type_name: str, registry: dict[str, str], kind: str, key_path: str) -> type[Any]:
    """Resolve a config ``type``: a built-in name from ``registry`` or a fully-qualified class name.

    Args:
        type_name: The ``type`` value from the config.
        registry: One of the registries above.
        kind: Human name of the provider kind, for messages ("storage provider").
        key_path: Where the value sits in the config, for messages.

    Raises:
        ConfigError: Unknown name (the message lists the built-in names).
        ProviderUnavailableError: A built-in whose module or SDK is not installed.
    """
    if not isinstance(type_name, str) or not type_name:
        raise ConfigError(f"{key_path}: {kind} type must be a non-empty string, got {type_name!r}")
    if type_name in registry:
        module_name, _, class_name = registry[type_name].partition(":")
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ImportError as exc:
            raise ProviderUnavailableError(
                f"{key_path}: {kind} type {type_name!r} is not available: {exc}. "
                f"Install the matching extra, e.g. pip install 'manystore[{module_name}]'"
            ) from exc
        return getattr(module, class_name)
    if "." not in type_name:
        raise ConfigError(
            f"{key_path}: unknown {kind} type {type_name!r}; expected one of {sorted(registry)} "
            "or a fully-qualified class name like 'my_pkg.module.MyClass'"
        )
    module_name, _, class_name = type_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key_path}: cannot import module {module_name!r} for {kind} {type_name!r}: {exc}")
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"{key_path}: module {module_name!r} has no class {class_name!r}")
    return cls


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def accepted_options(cls: type[Any]) -> frozenset[str] | None:
    """The keyword options ``cls(**options)`` accepts, or None when they cannot be known.

    One rule for every provider class: walking the MRO, each ``__init__`` adds its named
    parameters. An ``__init__`` without ``**kwargs`` ends the walk; one with ``**kwargs``
    ends it too when its class declares ``OPTIONS`` (a ``frozenset`` of the names its
    ``**kwargs`` accepts), else its ``**kwargs`` are taken to be passed on to the next
    class's ``__init__``. Reaching ``object`` that way means the names are unknown (a
    user class with a bare ``**kwargs``), and None is returned; so does ``OPTIONS = None``
    (a subclass whose ``**kwargs`` takes anything).

    Args:
        cls: A storage, credentials or metadata provider class.

    Returns:
        The option names, or None.
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            return None
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        names.update(p.name for p in params if p.kind in _NAMED)
        if "OPTIONS" in klass.__dict__:
            declared = klass.__dict__["OPTIONS"]
            return None if declared is None else frozenset(names | set(declared))
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return frozenset(names)
    return None


def check_options(
    cls: type[Any],
    options: Iterable[str],
    type_name: str,
    kind: str,
    key_path: str,
    internal: Iterable[str] = (),
) -> None:
    """Refuse options ``cls`` does not take, naming each, the provider and the closest valid name.

    Args:
        cls: The provider class (see :func:`accepted_options`).
        options: The option names given in the config.
        type_name: The provider's config ``type`` (for the message).
        kind: Human name of the provider kind ("storage provider").
        key_path: Where the options sit in the config, e.g. ``profiles.p.storage_provider.options``.
        internal: Parameters manystore itself passes (``credentials_provider``...): not user options.

    Raises:
        ConfigError: An unknown option (all of them are listed).
    """
    valid = accepted_options(cls)
    if valid is None:
        return
    user_valid = sorted(valid - set(internal))
    problems = []
    for name in options:
        if name in valid and name not in internal:
            continue
        hint = difflib.get_close_matches(str(name), user_valid, n=1, cutoff=0.6)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        problems.append(f"{key_path}.{name}: unknown option {name!r} for {kind} {type_name!r}{suggestion}")
    if problems:
        raise ConfigError(f"{'; '.join(problems)}; valid options of {cls.__name__}: {user_valid}")


def _class_names() -> dict[str, str]:
    """Class name -> "module:Class" of every built-in provider (storage, credentials, metadata)."""
    names: dict[str, str] = {}
    for registry in (STORAGE_PROVIDERS, CREDENTIALS_PROVIDERS, METADATA_PROVIDERS):
        for spec in registry.values():
            names[spec.partition(":")[2]] = spec
    return names


def __getattr__(name: str) -> Any:
    """``manystore.providers.S3StorageProvider`` and the like, imported on first use (as in the reference)."""
    spec = _class_names().get(name)
    if spec is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as exc:
        raise ProviderUnavailableError(
            f"{__name__}.{name} needs an optional dependency: {exc}. "
            f"Install the matching extra, e.g. pip install 'manystore[{module_name}]'"
        ) from exc
    value = getattr(module, class_name)
    globals()[name] = value
    return value
