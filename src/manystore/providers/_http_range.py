"""Ranged GETs over presigned URLs, for servers whose range answers obstore rejects.

Some S3-compatible servers (``rclone serve s3`` up to its gofakes3 fix) answer a
ranged GET with ``200`` plus a correct ``Content-Range`` and the partial body.
obstore treats that as a non-partial response and fails. For such servers the S3
provider presigns the GET (a local computation) and sends it here, on a
per-thread keep-alive connection, accepting ``206`` or ``200`` + ``Content-Range``.
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import threading
import urllib.parse

from ..errors import ObjectNotFoundError, PreconditionFailedError, RetryableError

__all__ = ["RangeGetError", "ranged_get"]

_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_local = threading.local()


class RangeGetError(OSError):
    """The server answered with an unexpected status."""


def _connection(scheme: str, netloc: str, timeout: float, verify: bool | str) -> http.client.HTTPConnection:
    pool = getattr(_local, "pool", None)
    if pool is None or getattr(_local, "pid", None) != os.getpid():
        pool = _local.pool = {}
        _local.pid = os.getpid()
    conn = pool.get((scheme, netloc))
    if conn is None:
        if scheme == "https":
            context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(netloc, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(netloc, timeout=timeout)
        pool[(scheme, netloc)] = conn
    return conn


def _drop(scheme: str, netloc: str) -> None:
    conn = getattr(_local, "pool", {}).pop((scheme, netloc), None)
    if conn is not None:
        conn.close()


def ranged_get(
    url: str, lo: int, hi: int, if_match: str | None, display: str, timeout: float, verify: bool | str
) -> bytes:
    """Bytes ``[lo, hi)`` of the presigned ``url`` (clipped at the object's end).

    Raises:
        ObjectNotFoundError: 404.
        PreconditionFailedError: 412 (``if_match`` no longer matches).
        RetryableError: 408/429/5xx or a dropped connection.
        RangeGetError: Any other status.
    """
    parts = urllib.parse.urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    headers = {"Range": f"bytes={lo}-{hi - 1}"}
    if if_match:
        headers["If-Match"] = if_match
    conn = _connection(parts.scheme, parts.netloc, timeout, verify)
    try:
        conn.request("GET", target, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as err:
        _drop(parts.scheme, parts.netloc)
        raise RetryableError(f"{display}: connection error during ranged GET: {err}") from err
    status = resp.status
    if status in (200, 206):
        match = _CONTENT_RANGE.match(resp.getheader("Content-Range") or "")
        if match is None:  # the whole object: cut the range out of it
            return body[lo:hi]
        start = int(match.group(1))
        return body[lo - start : hi - start] if start != lo else body[: hi - lo]
    if status == 416:
        return b""
    if status == 404:
        raise ObjectNotFoundError(f"{display}: not found")
    if status == 412:
        raise PreconditionFailedError(f"{display}: If-Match {if_match!r} no longer matches (object replaced)")
    if status in _RETRYABLE:
        raise RetryableError(f"{display}: server answered {status} to a ranged GET", status=status)
    raise RangeGetError(f"{display}: server answered {status} to a ranged GET")
