"""Errors of the GCS provider and the mapping of google-cloud-storage exceptions onto them."""

from __future__ import annotations

from ..errors import (
    ManystoreError,
    NotModifiedError,
    ObjectNotFoundError,
    PreconditionFailedError,
    RetryableError,
)

__all__ = ["GCSPermissionError", "GCSProviderError", "generation_of", "status_of", "translate_error"]

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class GCSPermissionError(ManystoreError, PermissionError):
    """GCS refused the credentials (401) or the operation (403)."""


class GCSProviderError(ManystoreError, OSError):
    """Any other failure reported by GCS or the transport."""


def status_of(err: BaseException) -> int | None:
    code = getattr(err, "code", None)
    if isinstance(code, int):
        return code
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def translate_error(err: BaseException, url: str) -> Exception:
    """Map a google-cloud-storage / transport exception to manystore's error hierarchy."""
    if isinstance(err, ManystoreError):
        return err
    if isinstance(err, FileNotFoundError):
        return ObjectNotFoundError(f"{url}: {err}")
    names = {cls.__name__ for cls in type(err).__mro__}
    status = status_of(err)
    text = str(getattr(err, "message", "") or err).split("\n", 1)[0][:300]
    msg = f"{url}: {text}" if text else f"{url}: {type(err).__name__}"
    if status == 404:
        return ObjectNotFoundError(msg)
    if status == 412:
        return PreconditionFailedError(msg)
    if status == 304:
        return NotModifiedError(msg)
    if status in (401, 403) or "RefreshError" in names:
        return GCSPermissionError(msg)
    if status in _RETRYABLE_STATUS:
        return RetryableError(msg, status=status)
    if status is None and (
        isinstance(err, (ConnectionError, TimeoutError))
        or names & {"ConnectionError", "Timeout", "ChunkedEncodingError", "TransportError", "DataCorruption",
                    "ProtocolError", "ReadTimeoutError", "NewConnectionError", "RetryError"}
    ):  # fmt: skip
        return RetryableError(msg, status=None)
    return GCSProviderError(msg)


def generation_of(if_match: str | None, url: str) -> int | None:
    """The generation an ``if_match`` ETag names (a non-number matches nothing)."""
    if if_match is None:
        return None
    value = if_match.strip('"')
    if not value.isdigit():
        raise PreconditionFailedError(f"{url}: ETag {if_match!r} is not a GCS generation")
    return int(value)
