"""obstore plumbing shared by the providers built on it: fork safety and streaming writers.

obstore (0.12) keeps one process-wide tokio runtime and never rebuilds it after ``fork()``:
a child forked while that runtime runs hangs on its first request. At fork time we note
whether the runtime's worker threads exist (Linux: ``/proc``; elsewhere: whether obstore
was used). Such a child loads a private copy of obstore's extension module, which brings
its own fresh runtime (~15 MB, ~10 ms), so DataLoader-style forked workers keep working.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from typing import Any

import obstore as obs
from obstore.store import S3Store

from ..errors import (
    BucketNotFoundError,
    InvalidPathError,
    ManystoreError,
    NotModifiedError,
    ObjectNotFoundError,
    PreconditionFailedError,
    RetryableError,
    transport_failure,
)

__all__ = [
    "ObstoreForkError",
    "ObstoreWriter",
    "S3PermissionError",
    "S3ProviderError",
    "obstore_api",
    "obstore_store_class",
    "status_of",
    "summary",
    "translate_error",
    "transport_cause",
]


class ObstoreForkError(ManystoreError, RuntimeError):
    """obstore cannot be used in this forked process (its private copy could not be loaded)."""


_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_STATUS_RE = re.compile(r"status(?: code)?: (\d{3})\b")
_CODE_RE = re.compile(r"<Code>([^<]{1,64})</Code>")
_RETRYABLE_ERROR_CODES = frozenset(
    {
        "InternalError",
        "SlowDown",
        "ServiceUnavailable",
        "RequestTimeout",
        "InternalFailure",
        "OperationAborted",
    }
)
# Transport failures without an HTTP status (matched lower-case, including obstore's debug tail).
_TRANSPORT_MARKERS = (
    "error sending request", "connection closed", "connection reset", "connection refused", "timed out",
    "error decoding response body", "broken pipe", "unexpected eof", "kind: connect", "kind: timeout",
    "kind: body", "kind: decode",
)  # fmt: skip


_URI_RE = re.compile(r"Error performing [A-Z]+ (https?://[^/\s]+)/")
_BUCKET_CODES = frozenset({"NoSuchBucket", "ContainerNotFound"})
# (marker in the lower-cased debug text, one-line cause); the first match wins.
_TRANSPORT_CAUSES = (
    ("connectionrefused", "connection refused"),
    ("connection refused", "connection refused"),
    ("kind: timeout", "timed out"),
    ("timedout", "timed out"),
    ("timed out", "timed out"),
    ("dns error", "host not found"),
    ("failed to lookup address", "host not found"),
    ("connection reset", "connection reset"),
    ("connectionreset", "connection reset"),
    ("kind: connect", "connection failed"),
)


def transport_cause(text: str) -> str | None:
    """``cannot connect to http://host:port/ (connection refused)`` for an obstore error that got no
    HTTP answer (refused, timed out, unknown host); ``None`` for any other error."""
    if _STATUS_RE.search(text):
        return None
    lower = text.lower()
    what = next((cause for marker, cause in _TRANSPORT_CAUSES if marker in lower), None)
    uri = _URI_RE.search(text)
    if what is None or uri is None:
        return None
    return transport_failure(uri.group(1) + "/", what)


def _bucket_of(url: str) -> str:
    """``"b"`` of ``s3://b/key`` (or of ``az://b/key``)."""
    return url.partition("://")[2].split("/", 1)[0]


class S3PermissionError(ManystoreError, PermissionError):
    """The server refused the credentials (401) or the operation (403). (Raised for every
    obstore-backed store, S3-compatible or not; the name is kept for compatibility.)"""


class S3ProviderError(ManystoreError, OSError):
    """Any other failure reported by the S3 server or the transport."""


def summary(text: str) -> str:
    """First line of an obstore message, without the XML body or the ``Debug source`` tail."""
    head = text.split("\n\nDebug source", 1)[0]
    first = head.split("\n", 1)[0].split(": <?xml", 1)[0].rstrip(": ")
    code = _CODE_RE.search(head)
    if code and code.group(1) not in first:
        first += f" ({code.group(1)})"
    return first[:400]


def translate_error(err: Exception, url: str) -> Exception:
    """Map an obstore (or builtin) exception to manystore's error hierarchy.

    Args:
        err: The exception raised by an obstore call.
        url: ``s3://bucket/key`` of the object, named in the new message.
    """
    if isinstance(err, ManystoreError):
        return err
    text = str(err)
    msg = f"{url}: {summary(text)}"
    kinds = {cls.__name__ for cls in type(err).__mro__}  # by name: a private obstore copy has its own classes
    code = _CODE_RE.search(text)
    if code is not None and code.group(1) in _BUCKET_CODES:
        return BucketNotFoundError.of(_bucket_of(url), url)
    if isinstance(err, FileNotFoundError) or "NotFoundError" in kinds:
        return ObjectNotFoundError(msg)
    if kinds & {"PreconditionError", "AlreadyExistsError"}:
        return PreconditionFailedError(msg)
    if "NotModifiedError" in kinds:
        return NotModifiedError(msg)
    if kinds & {"PermissionDeniedError", "UnauthenticatedError"}:
        return S3PermissionError(msg)
    match = _STATUS_RE.search(text)
    status = int(match.group(1)) if match else None
    if status in _RETRYABLE_STATUS:
        return RetryableError(msg, status=status)
    if status is None and any(marker in text.lower() for marker in _TRANSPORT_MARKERS):
        cause = transport_cause(text)
        return RetryableError(f"{url}: {cause}" if cause else msg, status=None)
    if status in (None, 200) and "error response" in text:
        # A 200 whose body is an S3 error (CopyObject, CompleteMultipartUpload): transient by its code.
        code = _CODE_RE.search(text)
        if code is not None and code.group(1) in _RETRYABLE_ERROR_CODES:
            return RetryableError(msg, status=None)
    if isinstance(err, ValueError) or "InvalidPathError" in kinds:
        return InvalidPathError(msg)
    return S3ProviderError(msg)


def status_of(err: Exception) -> int | None:
    match = _STATUS_RE.search(str(err))
    return int(match.group(1)) if match else None


_fork_state: dict[str, Any] = {"live_at_fork": False, "broken": False, "used_here": False, "private": None}
_fork_lock = threading.Lock()


def _runtime_threads_running() -> bool:
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return bool(_fork_state["used_here"])
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/comm") as fh:
            if fh.read().startswith("tokio-"):
                return True
    return False


def _before_fork() -> None:
    _fork_state["live_at_fork"] = _fork_state["broken"] or _runtime_threads_running()


def _after_fork_in_child() -> None:
    global _fork_lock
    _fork_lock = threading.Lock()
    _fork_state.update(broken=_fork_state["live_at_fork"], used_here=False, private=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _load_private_obstore() -> Any:
    import importlib.machinery
    import importlib.util
    import shutil

    source = obs._obstore.__file__
    tmpdir = tempfile.mkdtemp(prefix="manystore-obstore-")
    try:
        path = os.path.join(tmpdir, os.path.basename(source))
        shutil.copyfile(source, path)
        loader = importlib.machinery.ExtensionFileLoader("obstore._obstore", path)
        spec = importlib.util.spec_from_file_location("obstore._obstore", path, loader=loader)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        loader.exec_module(module)
        module._store.S3Store  # noqa: B018 - fail here if the layout differs
        return module
    except Exception as err:
        raise ObstoreForkError(
            f"process {os.getpid()} was forked while obstore's I/O runtime was running in its parent, "
            f"and loading a private copy of obstore failed ({err}). Start workers with the 'spawn' or "
            "'forkserver' multiprocessing method, or fork before the first storage request"
        ) from err
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def obstore_api() -> tuple[Any, Any]:
    """``(functions, S3Store class)`` of an obstore usable in this process.

    Normally the ``obstore`` package itself; in a child forked while obstore's runtime was running,
    a private copy of its extension module (``get``, ``put``, ``list``... have the same signatures).

    Raises:
        ObstoreForkError: Forked child and the private copy cannot be loaded (e.g. ``noexec`` tmp dir).
    """
    if not _fork_state["broken"]:
        _fork_state["used_here"] = True
        return obs, S3Store
    with _fork_lock:
        if _fork_state["private"] is None:
            _fork_state["private"] = _load_private_obstore()
    module = _fork_state["private"]
    return module, module._store.S3Store


def obstore_store_class(name: str) -> Any:
    """Store class ``name`` (``"AzureStore"``, ``"S3Store"``...) of the obstore usable in this process.

    Same fork handling as :func:`obstore_api`: in a child forked while obstore's runtime was running,
    the class comes from the private copy of the extension module.
    """
    module, _ = obstore_api()
    if module is obs:
        import obstore.store

        return getattr(obstore.store, name)
    return getattr(module._store, name)


class ObstoreWriter:
    """A streaming multipart upload through ``obstore.open_writer``.

    Parts are uploaded while the caller writes (at most ``buffer_size`` x ``max_concurrency``
    bytes in memory); :meth:`close` completes the upload, :meth:`abort` aborts it so no object
    and no dangling multipart upload remain.
    """

    def __init__(self, raw: Any, url: str, translate: Any) -> None:
        self._raw, self._url, self._translate = raw, url, translate
        self._done = False

    def write(self, data: Any) -> int:
        try:
            return int(self._raw.write(data))
        except Exception as err:
            self.abort()
            raise self._translate(err, self._url)

    def close(self) -> None:
        if self._done:
            return
        try:
            self._raw.close()
            self._done = True
        except Exception as err:
            self.abort()
            raise self._translate(err, self._url)

    def copy_from(self, f: Any, chunk: int) -> None:
        """Write all of the binary file ``f`` (read ``chunk`` bytes at a time on this thread), then close."""
        try:
            while data := f.read(chunk):
                self.write(data)
        except BaseException:
            self.abort()
            raise
        self.close()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        reason = RuntimeError("upload aborted")
        with contextlib.suppress(Exception):
            self._raw.__exit__(RuntimeError, reason, None)


def client_options(
    allow_http: bool,
    connect_timeout: float,
    read_timeout: float,
    timeout: Any,
    verify: bool | str,
    pool_size: int | None,
) -> dict[str, Any]:
    """obstore ``client_options`` shared by the S3 and Azure stores.

    Args:
        allow_http: Permit ``http://`` endpoints.
        connect_timeout: Seconds to establish a connection.
        read_timeout: Seconds a read may stall.
        timeout: Whole-request limit (a ``timedelta``).
        verify: TLS verification: True, False (skip), or a PEM CA bundle path to trust as well.
        pool_size: Idle connections kept per host, or None for obstore's default.
    """
    from datetime import timedelta
    from pathlib import Path

    options: dict[str, Any] = {
        "allow_http": allow_http,
        "connect_timeout": timedelta(seconds=connect_timeout),
        "read_timeout": timedelta(seconds=read_timeout),
        "timeout": timeout,
    }
    if verify is False:
        options["allow_invalid_certificates"] = True
    elif isinstance(verify, str):
        options["root_certificate"] = Path(verify).read_text()
    if pool_size:
        options["pool_max_idle_per_host"] = str(pool_size)
    return options
