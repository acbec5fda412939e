"""Providers for tests that talk to a real server: every call goes through manystore's retries.

A local server can answer a request with a transient failure (rclone once answered a PUT
with a 500). The client retries those; a test that calls a provider directly must too,
or it fails for a reason it does not test. ``retrying(SomeProvider)`` is a subclass whose
public operations run under :func:`manystore.retry.call_with_retry`; tests of retry
behaviour itself (fault proxy, error mapping) keep using the plain classes.
"""

from __future__ import annotations

from typing import Any, TypeVar

import manystore.providers
from manystore.retry import call_with_retry
from manystore.types import RetryConfig

P = TypeVar("P")

#: Provider operations that are one request (or one idempotent transfer) each.
OPERATIONS = (
    "put_object",
    "get_object",
    "get_object_metadata",
    "delete_object",
    "copy_object",
    "upload_file",
    "download_file",
    "delete_prefix",
    "is_file",
    "glob",
)
RETRY = RetryConfig(attempts=4, delay=0.2)

_classes: dict[type, type] = {}


def _retried(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        base = super(type(self), self)  # the provider class this one wraps
        return call_with_retry(lambda: getattr(base, name)(*args, **kwargs), RETRY, f"test {name}")

    method.__name__ = name
    return method


def retrying(cls: type[P]) -> type[P]:
    """The retrying subclass of provider class ``cls`` (one per class, importable for pickling)."""
    if cls not in _classes:
        sub = type(f"Retrying{cls.__name__}", (cls,), {name: _retried(name) for name in OPERATIONS})
        sub.__module__ = __name__
        _classes[cls] = sub
        globals()[sub.__name__] = sub
    return _classes[cls]  # type: ignore[return-value]


def __getattr__(name: str) -> Any:
    """``Retrying<ProviderClass>`` on demand, so a pickled test provider loads in a spawned child."""
    if name.startswith("Retrying"):
        return retrying(getattr(manystore.providers, name.removeprefix("Retrying")))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
