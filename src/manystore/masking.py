"""Hiding secrets in a config before it is shown, logged or exported (layer 0: no imports).

:func:`mask_secrets` is re-exported by :mod:`manystore.config_files`; it lives here so that
the lowest layers (telemetry's ``msc_config`` attributes) can mask a config too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["mask_secrets"]

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
