"""Exception hierarchy of manystore.

Every error raised by manystore derives from :class:`ManystoreError` and, where a
builtin exception has the same meaning, from that builtin too, so code written
against the standard library keeps working: a missing object is a
:class:`FileNotFoundError`, a bad configuration value is a :class:`ValueError`,
a write refused by a read-only metadata provider is a :class:`PermissionError`.

Messages name the offending value and what was expected. They never contain
secrets (access keys, tokens, connection strings).
"""

from __future__ import annotations

import copy

__all__ = [
    "BucketNotFoundError",
    "ChecksumMismatchError",
    "ConfigError",
    "IntegrityError",
    "InvalidPathError",
    "InvalidURLError",
    "ManystoreError",
    "NotModifiedError",
    "ObjectNotFoundError",
    "PreconditionFailedError",
    "ProviderUnavailableError",
    "ReadOnlyError",
    "RetryableError",
    "UnknownProfileError",
    "WrongKeyError",
]


class ManystoreError(Exception):
    """Base class of every error raised by manystore."""


class RetryableError(ManystoreError):
    """A transient failure (throttling, 5xx, dropped connection) that may succeed if retried.

    Providers raise it; :class:`manystore.StorageClient` retries it per the profile's
    :class:`manystore.types.RetryConfig` and re-raises it once the attempts are spent.

    Attributes:
        status: The HTTP status code behind the failure, or ``None`` for a connection error.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ChecksumMismatchError(RetryableError):
    """Downloaded bytes do not match the checksum the store reported (retried: likely transient)."""


class PreconditionFailedError(ManystoreError):
    """A conditional operation (``if_match``, ``if_none_match``) found the object in another state."""


class NotModifiedError(ManystoreError):
    """A conditional read found the object unchanged (the ETag/generation matched)."""


class ObjectNotFoundError(ManystoreError, FileNotFoundError):
    """The object (or file) does not exist. Also a :class:`FileNotFoundError`.

    Attributes:
        url: The URL the error names, when known (set by :meth:`named`).
        reason: What is missing, without the URL (``"not found"``, ``"bucket 'b' does not exist"``).
    """

    url: str | None = None
    reason: str = "not found"

    def named(self, url: str) -> ObjectNotFoundError:
        """A copy of this error whose message names ``url`` (the URL as the caller spelled it).

        The copy keeps the class and the ``reason``; this error becomes its ``__cause__``.
        """
        new = copy.copy(self)
        new.args = (f"{url}: {self.reason}",)
        new.url = url
        new.__cause__ = self
        new.__traceback__ = None
        return new


class BucketNotFoundError(ObjectNotFoundError):
    """The bucket (or container) itself does not exist. ``bucket`` names it."""

    bucket: str = ""

    @classmethod
    def of(cls, bucket: str, url: str) -> BucketNotFoundError:
        """The error for a request on ``url`` in the missing ``bucket``."""
        err = cls(f"{url}: bucket {bucket!r} does not exist")
        err.bucket, err.url, err.reason = bucket, url, f"bucket {bucket!r} does not exist"
        return err


class ConfigError(ManystoreError, ValueError):
    """The configuration is invalid. The message names the key path and the allowed values."""


class UnknownProfileError(ConfigError, KeyError):
    """A URL or call named a profile that the configuration does not define."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class InvalidURLError(ManystoreError, ValueError):
    """A URL or path could not be parsed (bad scheme, missing profile or bucket)."""


class InvalidPathError(ManystoreError, ValueError):
    """A key is not acceptable, e.g. it would leave the profile's ``base_path``."""


class ReadOnlyError(ManystoreError, PermissionError):
    """A write was attempted through a read-only component (e.g. a read-only manifest)."""


class ProviderUnavailableError(ConfigError, ImportError):
    """A provider type is known but its implementation or SDK is not installed."""


class IntegrityError(ManystoreError, ValueError):
    """Stored bytes fail authentication: an encrypted object was altered, truncated or reordered.

    Raised by ``manystore.arrays.EncryptedInterface`` when a sealed chunk, the wrapped data
    key or the bound metadata does not verify. Not retried: the stored object itself is bad.
    The message names the object; it never contains a key.
    """


class WrongKeyError(ManystoreError, ValueError):
    """The key given cannot open an encrypted object (another key sealed it, or it is public only).

    The message names the object and the key ids (fingerprints), never a key.
    """


def transport_failure(endpoint: str, what: str) -> str:
    """The one-line cause of a request that got no answer: ``cannot connect to URL (what)``.

    Args:
        endpoint: ``scheme://host:port/`` of the server (never a path with credentials).
        what: ``"connection refused"``, ``"timed out"``...
    """
    if what.startswith("timed out"):
        return f"no answer from {endpoint} ({what})"
    return f"cannot connect to {endpoint} ({what})"
