"""NVIDIA AIStore through its native API, on top of the ``aistore`` SDK.

Install with ``pip install 'manystore[ais]'``. The SDK is imported when the first provider (or
credentials provider) is used, never by ``import manystore``. For AIStore's S3-compatible API use
the ``ais_s3`` provider instead.

Backend notes (where this provider differs from the Multi-Storage Client's):

* SDK retries are off by default (no ``urllib3`` status retries, one network attempt): a transient
  failure (408/429/5xx, dropped connection, timeout) is raised once as
  :class:`manystore.errors.RetryableError` and :class:`manystore.StorageClient` retries it. A
  ``retry`` mapping (``urllib3.util.Retry`` keyword arguments) turns the SDK's HTTP retries back on,
  as in MSC.
* AIStore has no conditional requests: ``if_match`` / ``if_none_match`` on writes, reads and
  deletes are checked with a HEAD first, so they are *not* atomic against concurrent writers
  (:attr:`AIStoreStorageProvider.supports_conditional_writes` is ``False``). MSC refuses
  ``if_match`` deletes and ignores write conditions. The ETag is the object's checksum.
* User metadata is set by a second request after the content is written.
* ``include_directories`` listings are built client-side from a recursive listing of the prefix.
* ``last_modified`` is AIStore's access time (AIStore keeps no modification time).
* The token (``token`` option, a credentials provider, or ``$AIS_AUTHN_TOKEN``) is read when the
  per-process SDK client is built (first use, and again in a forked child); it is never shown.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import IO, Any, ClassVar

from ..errors import (
    ConfigError,
    ManystoreError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ProviderUnavailableError,
    RetryableError,
)
from ..types import Credentials, CredentialsProvider, ObjectMetadata, Range
from ..utils import normalize_key, parse_size, within_bounds
from .base import BucketStorageProvider, SdkClientSlot, check_put_conditions

__all__ = [
    "AISPermissionError",
    "AISProviderError",
    "AIStoreStorageProvider",
    "StaticAISCredentialProvider",
    "translate_error",
]

DEFAULT_TIMEOUT = 60.0
DEFAULT_PAGE_SIZE = 1000
DEFAULT_IO_CHUNKSIZE = 8 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT = frozenset(
    {"ConnectionError", "Timeout", "ChunkedEncodingError", "ContentDecodingError", "ProtocolError",
     "ReadTimeoutError", "RetryError", "MaxRetryError", "NewConnectionError", "ConnectTimeoutError",
     "NameResolutionError", "IncompleteRead"}
)  # fmt: skip


class AISPermissionError(ManystoreError, PermissionError):
    """AIStore (or its AuthN service) refused the token or the operation (401/403)."""


class AISProviderError(ManystoreError, OSError):
    """Any other AIStore failure; the message holds the status and AIStore's message."""


def _sdk() -> Any:
    """The ``aistore.sdk`` package, or :class:`ProviderUnavailableError` naming the extra."""
    try:
        import aistore.sdk as sdk
    except ImportError as err:
        raise ProviderUnavailableError(
            f"the 'ais' storage provider needs the AIStore SDK: pip install 'manystore[ais]' ({err})"
        ) from err
    return sdk


def _status(err: BaseException) -> int | None:
    status = getattr(err, "status_code", None)
    if status is None:
        status = getattr(getattr(err, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def translate_error(err: Exception, url: str) -> Exception:
    """Map an ``aistore`` SDK / ``requests`` exception to manystore's error hierarchy.

    Args:
        err: The exception raised by the SDK.
        url: ``ais://bucket/key`` of the object concerned, for the message.
    """
    if isinstance(err, ManystoreError):
        return err
    status = _status(err)
    detail = getattr(err, "message", None) or str(err)
    msg = f"{url}: AIStore {status or type(err).__name__}: {detail}"
    if status == 404:  # before the retryable check: ErrObjNotFound is an AISRetryableError
        return ObjectNotFoundError(msg)
    if status == 412:
        return PreconditionFailedError(msg)
    if status in (401, 403):
        return AISPermissionError(msg)
    if status in _RETRYABLE_STATUS:
        return RetryableError(msg, status=status)
    kinds = {cls.__name__ for cls in type(err).__mro__}
    if "AISRetryableError" in kinds or kinds & _TRANSIENT or isinstance(err, (ConnectionError, TimeoutError)):
        return RetryableError(msg, status=status)
    return AISProviderError(msg)


def _parse_atime(value: Any) -> datetime:
    """AIStore access time: nanoseconds since the epoch (HEAD) or a formatted time (listing)."""
    if value in (None, ""):
        return _EPOCH
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1e9, tz=timezone.utc)
    for parse in (parsedate_to_datetime, lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))):
        try:
            out = parse(text)
        except (TypeError, ValueError, IndexError):
            continue
        return out if out.tzinfo else out.replace(tzinfo=timezone.utc)
    return _EPOCH


class StaticAISCredentialProvider(CredentialsProvider):
    """An AIStore token: given directly, or obtained by logging in to AuthN (on first use).

    Args:
        username: AuthN user name (with ``password`` and ``authn_endpoint``).
        password: AuthN password. Never shown.
        authn_endpoint: AuthN service URL, e.g. ``http://authn:52001``.
        token: A ready token, used when no login is configured. Never shown.
        skip_verify: Skip TLS verification when talking to AuthN. Default True (as MSC).
        ca_cert: CA bundle for AuthN's TLS certificate.

    Raises:
        ConfigError: A partial login (e.g. ``username`` without ``password``) and no ``token``.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        authn_endpoint: str | None = None,
        token: str | None = None,
        skip_verify: bool = True,
        ca_cert: str | None = None,
    ) -> None:
        login = {"username": username, "password": password, "authn_endpoint": authn_endpoint}
        given = [k for k, v in login.items() if v]
        if given and len(given) < 3 and not token:
            missing = [k for k in login if k not in given]
            raise ConfigError(f"AISCredentials: login needs {missing} too (or give a 'token')")
        self._username = username
        self._password = password
        self._authn_endpoint = authn_endpoint
        self._token = token
        self._skip_verify = skip_verify
        self._ca_cert = ca_cert
        self._logged_in = False
        self._lock = threading.Lock()

    def _can_login(self) -> bool:
        return bool(self._username and self._password and self._authn_endpoint)

    def get_credentials(self) -> Credentials:
        """The token (logging in to AuthN first if a login is configured and not done yet).

        Raises:
            AISPermissionError: AuthN refused the login.
            RetryableError: AuthN unreachable.
        """
        if self._can_login() and not self._logged_in:
            self.refresh_credentials()
        return Credentials(access_key="", secret_key="", token=self._token, expiration=None)

    def refresh_credentials(self) -> None:
        """Log in to AuthN again (no-op for a plain token)."""
        if not self._can_login():
            return
        _sdk()
        from aistore.sdk.authn import AuthNClient

        with self._lock:
            try:
                client = AuthNClient(self._authn_endpoint or "", self._skip_verify, self._ca_cert)
                self._token = client.login(self._username or "", self._password or "")
            except Exception as err:
                raise translate_error(err, f"AuthN {self._authn_endpoint} login of {self._username!r}")
            self._logged_in = True

    def __repr__(self) -> str:
        return (
            f"StaticAISCredentialProvider(username={self._username!r}, "
            f"authn_endpoint={self._authn_endpoint!r}, token={'***' if self._token else None!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class AIStoreStorageProvider(SdkClientSlot, BucketStorageProvider):
    """Storage provider for NVIDIA AIStore (native API).

    Args:
        endpoint: AIStore proxy URL. Default ``$AIS_ENDPOINT``.
        provider: Bucket provider: ``"ais"`` (default) or a backend AIStore fronts (``"s3"``, ``"gcp"``...).
        skip_verify: Skip TLS verification. Default True (as MSC).
        ca_cert: CA bundle for the cluster's TLS certificate.
        timeout: Seconds, or ``(connect, read)``. Default 60.
        retry: ``urllib3.util.Retry`` keyword arguments to turn SDK HTTP retries on. Default: off.
        token: AuthN token. Default: the credentials provider's token, else ``$AIS_AUTHN_TOKEN``.
        base_path: ``"bucket"`` or ``"bucket/prefix"``; every key is relative to it.
        credentials_provider: e.g. :class:`StaticAISCredentialProvider`; its ``token`` is used.
        io_chunksize: Chunk size when streaming a download to a file. Default 8 MiB.

    Raises:
        ProviderUnavailableError: The ``aistore`` SDK is not installed.
        ConfigError: No endpoint, no bucket in ``base_path``, an unknown option or an invalid value.
    """

    provider_name: ClassVar[str] = "ais"
    OPTIONS: ClassVar[frozenset[str]] = frozenset({"io_chunksize"}) | BucketStorageProvider.OPTIONS
    supports_conditional_writes: ClassVar[bool] = False
    supports_server_side_copy: ClassVar[bool] = True
    url_scheme: ClassVar[str] = "ais"

    def __init__(
        self,
        endpoint: str = "",
        provider: str = "ais",
        skip_verify: bool = True,
        ca_cert: str | None = None,
        timeout: float | tuple[float, float] | None = None,
        retry: dict[str, Any] | None = None,
        token: str | None = None,
        base_path: str = "",
        credentials_provider: CredentialsProvider | None = None,
        **kwargs: Any,
    ) -> None:
        io_chunksize = kwargs.pop("io_chunksize", DEFAULT_IO_CHUNKSIZE)
        super().__init__(base_path=base_path, **kwargs)
        _sdk()
        self._endpoint = (endpoint or os.environ.get("AIS_ENDPOINT", "")).rstrip("/")
        if not self._endpoint:
            raise ConfigError("ais: set the 'endpoint' option or the AIS_ENDPOINT environment variable")
        if not self._endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"ais: 'endpoint' must be an http(s) URL, got {self._endpoint!r}")
        if not isinstance(provider, str) or not provider:
            raise ConfigError(f"ais: 'provider' must be a non-empty string like 'ais', got {provider!r}")
        bucket, _, root = base_path.strip("/").partition("/")
        if not bucket:
            raise ConfigError(
                f"AIStoreStorageProvider: base_path must start with a bucket name, got {base_path!r}"
            )
        if retry is not None and not isinstance(retry, dict):
            raise ConfigError(
                f"ais option 'retry' must be a mapping of urllib3 Retry arguments, got {retry!r}"
            )
        if ca_cert is not None and not os.path.isfile(ca_cert):
            raise ConfigError(f"ais option 'ca_cert' names no file: {ca_cert!r}")
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        parts = timeout if isinstance(timeout, (list, tuple)) else [timeout]
        if len(parts) not in (1, 2) or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in parts
        ):
            raise ConfigError(f"ais option 'timeout' must be seconds > 0 or (connect, read), got {timeout!r}")
        try:
            self._io_chunksize = parse_size(io_chunksize)
        except (TypeError, ValueError):
            raise ConfigError(f"ais option 'io_chunksize' must be a size, got {io_chunksize!r}")
        self._timeout: float | tuple[float, float] = (
            (float(parts[0]), float(parts[1])) if len(parts) == 2 else float(parts[0])
        )
        self._provider = provider
        self._skip_verify = bool(skip_verify)
        self._ca_cert = ca_cert
        self._retry = retry
        self._token = token
        self._credentials_provider = credentials_provider
        self._bucket = bucket
        self._root = normalize_key(root).rstrip("/")

    # ------------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoint={self._endpoint!r}, provider={self._provider!r}, "
            f"bucket={self._bucket!r}, prefix={self._root!r})"
        )

    def _resolve_token(self) -> str | None:
        if self._credentials_provider is not None:
            token = self._credentials_provider.get_credentials().token
            if token:
                return token
        return self._token or os.environ.get("AIS_AUTHN_TOKEN") or None

    def _retry_config(self, sdk: Any) -> Any:
        """The SDK's RetryConfig: HTTP and network retries off, or ``retry`` as its ``http_retry``.
        ``None`` (SDK defaults) for SDK versions without ``RetryConfig``."""
        from urllib3.util import Retry

        if not hasattr(sdk, "RetryConfig"):
            return None
        config = sdk.RetryConfig.default()
        if self._retry is not None:
            try:
                config.http_retry = Retry(**self._retry)
            except TypeError as err:
                raise ConfigError(f"ais option 'retry' is invalid: {err}")
            return config
        from tenacity import Retrying, stop_after_attempt

        config.http_retry = Retry(total=False)
        config.network_retry = Retrying(stop=stop_after_attempt(1), reraise=True)
        return config

    def _build_client(self) -> Any:
        sdk = _sdk()
        try:
            return sdk.Client(
                endpoint=self._endpoint,
                skip_verify=self._skip_verify and self._endpoint.startswith("https://"),
                ca_cert=self._ca_cert,
                timeout=self._timeout,
                retry_config=self._retry_config(sdk),
                token=self._resolve_token(),
            )
        except ManystoreError:
            raise
        except Exception as err:
            raise ConfigError(f"{self!r}: cannot build the AIStore client: {type(err).__name__}: {err}")

    def _bck(self) -> Any:
        """The SDK bucket of this process's client (built on first use and again after a fork)."""
        return self._sdk_client().bucket(self._bucket, provider=self._provider)

    def _obj(self, key: str) -> Any:
        return self._bck().object(key)

    def _check_etag(self, path: str, if_match: str) -> None:
        current = self.get_object_metadata(path).etag
        if current != if_match.strip('"'):
            raise PreconditionFailedError(
                f"{self._url(self._full_key(path))}: ETag is {current!r}, not {if_match!r}"
            )

    # ------------------------------------------------------------------ reads
    def get_object(self, path: str, byte_range: Range | None = None, *, if_match: str | None = None) -> bytes:
        """Return the object's bytes, or ``byte_range`` of them (clipped at the end of the object).

        Raises:
            ObjectNotFoundError: No such object.
            PreconditionFailedError: ``if_match`` differs from the checksum (checked by a HEAD first).
        """
        key = self._full_key(path)
        if if_match:
            self._check_etag(path, if_match)
        if byte_range is not None and byte_range.size == 0:
            self.get_object_metadata(path)
            return b""
        try:
            if byte_range is None:
                reader = self._obj(key).get_reader()
            else:
                reader = self._obj(key).get_reader(
                    byte_range=f"bytes={byte_range.offset}-{byte_range.end - 1}"
                )
            content = reader.read_all()
            if isinstance(content, (bytes, bytearray, memoryview)):
                return bytes(content)
            try:  # a ParallelBuffer (multi-worker reads)
                return bytes(content.tobytes())
            finally:
                content.close()
        except Exception as err:
            if byte_range is not None and _status(err) == 416:
                return b""  # The range starts at or past the end of the object.
            raise translate_error(err, self._url(key))

    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        """HEAD the object; with ``strict=False`` a prefix with children answers as a directory.

        Raises:
            ObjectNotFoundError: Neither an object nor (non-strict) a directory.
        """
        key = self._full_key(path)
        try:
            props = self._obj(key).head()
        except Exception as err:
            error = translate_error(err, self._url(key))
            if not strict and isinstance(error, ObjectNotFoundError) and self._has_children(key):
                return ObjectMetadata(key=path, content_length=0, last_modified=_EPOCH, type="directory")
            raise error
        return ObjectMetadata(
            key=normalize_key(path),
            content_length=int(props.size),
            last_modified=_parse_atime(props.access_time),
            etag=props.checksum_value or None,
            metadata=dict(props.custom_metadata) or None,
        )

    def _has_children(self, key: str) -> bool:
        prefix = key.rstrip("/") + "/" if key else ""
        try:
            return any(True for _ in self._bck().list_objects_iter(prefix=prefix, props="name", page_size=1))
        except Exception as err:
            raise translate_error(err, self._url(prefix))

    def _list_objects(
        self,
        prefix: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """Objects whose keys start with ``prefix`` (a raw string prefix), in key order.

        ``start_after`` is exclusive, ``end_at`` inclusive; both are relative keys. With
        ``include_directories`` the level below the prefix's parent is built client-side.
        """
        raw = (self._root + "/" if self._root else "") + normalize_key(prefix)
        entries = self._iter_entries(raw)
        if include_directories:
            entries = iter(self._one_level(raw, entries))
        for entry in entries:
            if end_at is not None and entry.key > end_at:
                return
            if within_bounds(entry.key, start_after, end_at):
                yield entry

    def _iter_entries(self, raw: str) -> Iterator[ObjectMetadata]:
        try:
            pages = self._bck().list_objects_iter(
                prefix=raw, props="name,size,atime,checksum", page_size=DEFAULT_PAGE_SIZE
            )
            for entry in pages:
                name = entry.name
                if name.endswith("/"):
                    continue
                yield ObjectMetadata(
                    key=self._rel(name),
                    content_length=int(entry.size or 0),
                    last_modified=_parse_atime(getattr(entry, "atime", None)),
                    etag=getattr(entry, "checksum", None) or None,
                )
        except Exception as err:
            raise translate_error(err, self._url(raw))

    def _one_level(self, raw: str, entries: Iterator[ObjectMetadata]) -> list[ObjectMetadata]:
        parent = raw[: raw.rfind("/") + 1]
        rel_parent = self._rel(parent) if parent else ""
        out: dict[str, ObjectMetadata] = {}
        for entry in entries:
            rest = entry.key[len(rel_parent) :]
            if "/" in rest:
                name = rel_parent + rest.split("/", 1)[0]
                out.setdefault(
                    name + "/",
                    ObjectMetadata(key=name, content_length=0, last_modified=_EPOCH, type="directory"),
                )
            else:
                out[entry.key] = entry
        return sorted(out.values(), key=lambda e: e.key)

    # ------------------------------------------------------------------ writes
    def put_object(
        self,
        path: str,
        body: bytes,
        if_match: str | None = None,
        if_none_match: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Store ``body`` at ``path``; conditions are checked by a HEAD first (not atomic).

        Raises:
            ValueError: ``if_none_match`` other than ``"*"``, or both conditions given.
            PreconditionFailedError: The condition does not hold.
        """
        check_put_conditions(if_match, if_none_match)
        key = self._full_key(path)
        if if_match is not None:
            self._check_etag(path, if_match)
        if if_none_match is not None:
            try:
                self.get_object_metadata(path)
            except ObjectNotFoundError:
                pass
            else:
                raise PreconditionFailedError(f"{self._url(key)}: object exists (if_none_match='*')")
        self._write(key, lambda writer: writer.put_content(bytes(body)), attributes)

    def _write(self, key: str, send: Any, metadata: dict[str, str] | None) -> None:
        try:
            writer = self._obj(key).get_writer()
            send(writer)
            if metadata:
                writer.set_custom_props(custom_metadata=dict(metadata), replace_existing=True)
        except Exception as err:
            raise translate_error(err, self._url(key))

    def copy_object(self, src_path: str, dest_path: str) -> None:
        """Server-side copy within the bucket.

        Raises:
            ObjectNotFoundError: ``src_path`` does not exist.
        """
        self.get_object_metadata(src_path)
        src, dest = self._full_key(src_path), self._full_key(dest_path)
        try:
            self._obj(src).copy(to_obj=self._obj(dest))
        except Exception as err:
            raise translate_error(err, self._url(src))

    def delete_object(self, path: str, if_match: str | None = None) -> None:
        """Delete one object; ``if_match`` is checked by a HEAD first (not atomic).

        Raises:
            ObjectNotFoundError: The object does not exist.
            PreconditionFailedError: ``if_match`` given and the checksum differs.
        """
        key = self._full_key(path)
        if if_match is not None:
            self._check_etag(path, if_match)
        try:
            self._obj(key).delete()
        except Exception as err:
            raise translate_error(err, self._url(key))

    def upload_file(self, remote_path: str, f: str | IO, attributes: dict[str, str] | None = None) -> None:
        """Upload a local file (streamed from disk) or a binary file object (read whole)."""
        key = self._full_key(remote_path)
        if isinstance(f, (str, os.PathLike)):
            path = os.fspath(f)
            self._write(key, lambda writer: writer.put_file(path), attributes)
        else:
            data = f.read()
            self._write(key, lambda writer: writer.put_content(bytes(data)), attributes)

    def _download_into(self, remote_path: str, fh: IO, metadata: ObjectMetadata | None = None) -> None:
        key = self._full_key(remote_path)
        try:
            for chunk in self._obj(key).get_reader(chunk_size=self._io_chunksize):
                fh.write(chunk)
        except Exception as err:
            raise translate_error(err, self._url(key))
