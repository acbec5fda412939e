"""Errors of the GCS provider and the mapping of google-cloud-storage exceptions onto them."""

from __future__ import annotations

import re

from ..errors import (
    BucketNotFoundError,
    ManystoreError,
    NotModifiedError,
    ObjectNotFoundError,
    PreconditionFailedError,
    RetryableError,
    transport_failure,
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


_HOST_RE = re.compile(r"host='([^']+)', port=(\d+)")


def _transport_cause(err: BaseException) -> str | None:
    """``cannot connect to http://host:port/ (connection refused)`` for a request that got no answer."""
    names = {cls.__name__ for cls in type(err).__mro__}
    text = str(err)
    lower = text.lower()
    if "Timeout" in names or isinstance(err, TimeoutError) or "timed out" in lower:
        what = "timed out"
    elif "connection refused" in lower:
        what = "connection refused"
    elif (
        "name or service not known" in lower
        or "failed to resolve" in lower
        or "nodename nor servname" in lower
    ):
        what = "host not found"
    elif "connection reset" in lower:
        what = "connection reset"
    elif names & {"ConnectionError", "NewConnectionError"} or isinstance(err, ConnectionError):
        what = "connection failed"
    else:
        return None
    request_url = getattr(getattr(err, "request", None), "url", None)
    if isinstance(request_url, str) and "://" in request_url:
        scheme, _, rest = request_url.partition("://")
        endpoint = f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}/"
    else:
        match = _HOST_RE.search(text)
        if match is None:
            return None
        scheme = "https" if "HTTPSConnection" in text else "http"
        endpoint = f"{scheme}://{match.group(1)}:{match.group(2)}/"
    return transport_failure(endpoint, what)


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
        if "bucket does not exist" in text.lower() or "no such bucket" in text.lower():
            bucket = url.partition("://")[2].split("/", 1)[0]
            return BucketNotFoundError.of(bucket, url)
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
        cause = _transport_cause(err)
        return RetryableError(f"{url}: {cause}" if cause else msg, status=None)
    return GCSProviderError(msg)


def generation_of(if_match: str | None, url: str) -> int | None:
    """The generation an ``if_match`` ETag names (a non-number matches nothing)."""
    if if_match is None:
        return None
    value = if_match.strip('"')
    if not value.isdigit():
        raise PreconditionFailedError(f"{url}: ETag {if_match!r} is not a GCS generation")
    return int(value)
