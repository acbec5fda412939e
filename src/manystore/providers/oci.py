"""Oracle Cloud Infrastructure (OCI) Object Storage, on top of the ``oci`` SDK.

Install with ``pip install 'manystore[oci]'``. The SDK is imported when the first
provider is built, never by ``import manystore``.

Backend notes (where this provider differs from the Multi-Storage Client's):

* SDK retries are off by default (``oci.retry.NoneRetryStrategy``): a transient failure
  (408/429/5xx, dropped connection, timeout) is raised once as
  :class:`manystore.errors.RetryableError` and :class:`manystore.StorageClient` retries it, so
  there is one retry layer. MSC uses the SDK's default strategy. An explicit ``retry_strategy``
  (``oci.retry.RetryStrategyBuilder`` keyword arguments) re-enables SDK retries.
* Credentials come from an OCI config file: ``config_file`` (default ``$OCI_CONFIG_FILE`` or
  ``~/.oci/config``) and ``profile`` (default ``$OCI_CLI_PROFILE`` or ``DEFAULT``); MSC always reads
  ``~/.oci/config`` / ``DEFAULT``. A ``security_token_file`` entry (session authentication) is
  honoured, as in MSC. The file is read when the provider is built, so a missing or incomplete file
  fails early with :class:`manystore.errors.ConfigError` naming it.
* Conditional writes (``if_match``, ``if_none_match="*"``) and conditional deletes are enforced
  by the service (atomic), unlike S3's HEAD-then-DELETE.
* ``copy_object`` uses the service's asynchronous CopyObject work request and waits until it
  completes (MSC returns as soon as the request is accepted).
* Fork: the SDK client holds a ``requests`` session; one client is built per process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import IO, Any, ClassVar

from ..errors import (
    ConfigError,
    ManystoreError,
    NotModifiedError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ProviderUnavailableError,
    RetryableError,
)
from ..types import CredentialsProvider, ObjectMetadata, Range
from ..utils import normalize_key, parse_size, within_bounds
from .base import BucketStorageProvider, SdkClientSlot, check_put_conditions

__all__ = ["OCIPermissionError", "OCIProviderError", "OracleStorageProvider", "translate_error"]

MiB = 1 << 20
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
DEFAULT_MULTIPART_CHUNKSIZE = 32 * MiB
DEFAULT_IO_CHUNKSIZE = 8 * MiB
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_CONNECT_TIMEOUT = 60.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_COPY_TIMEOUT = 3600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LIST_FIELDS = "name,size,etag,timeModified"
_OPTIONS = frozenset(
    {"config_file", "profile", "timeout", "multipart_threshold", "multipart_chunksize",
     "max_concurrency", "io_chunksize", "copy_timeout"}
)  # fmt: skip
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class OCIPermissionError(ManystoreError, PermissionError):
    """OCI refused the credentials or the operation (401/403)."""


class OCIProviderError(ManystoreError, OSError):
    """Any other OCI Object Storage failure; the message holds status, code and request id."""


def _sdk() -> Any:
    """The ``oci`` module, or :class:`ProviderUnavailableError` naming the extra to install."""
    try:
        import oci
    except ImportError as err:
        raise ProviderUnavailableError(
            f"the 'oci' storage provider needs the OCI SDK: pip install 'manystore[oci]' ({err})"
        ) from err
    return oci


def translate_error(err: Exception, url: str) -> Exception:
    """Map an ``oci`` SDK / ``requests`` exception to manystore's error hierarchy.

    Args:
        err: The exception raised by the SDK.
        url: ``oci://bucket/key`` of the object concerned, for the message.
    """
    if isinstance(err, ManystoreError):
        return err
    status = getattr(err, "status", None)
    if type(err).__name__ == "ServiceError" and isinstance(status, int):
        code = getattr(err, "code", None)
        request_id = getattr(err, "request_id", None)
        msg = f"{url}: OCI {status} {code}: {getattr(err, 'message', '') or ''} (opc-request-id {request_id})"
        if status == 404:
            return ObjectNotFoundError(msg)
        if status == 412 or code in ("IfMatchFailed", "IfNoneMatchFailed"):
            return PreconditionFailedError(msg)
        if status == 304:
            return NotModifiedError(msg)
        if status in (401, 403):
            return OCIPermissionError(msg)
        if status in _RETRYABLE_STATUS:
            return RetryableError(msg, status=status)
        return OCIProviderError(msg)
    kinds = {cls.__name__ for cls in type(err).__mro__}
    transient = {
        "ConnectionError", "Timeout", "ChunkedEncodingError", "ContentDecodingError",
        "RequestException", "ProtocolError", "ReadTimeoutError", "TransientServiceError",
    }  # fmt: skip
    if kinds & transient or isinstance(err, (ConnectionError, TimeoutError)):
        return RetryableError(f"{url}: {type(err).__name__}: {err}", status=None)
    if isinstance(err, FileNotFoundError):
        return ObjectNotFoundError(f"{url}: {err}")
    return OCIProviderError(f"{url}: {type(err).__name__}: {err}")


def _number(name: str, value: Any, parse: Any = float) -> Any:
    try:
        out = parse(value)
    except (TypeError, ValueError):
        raise ConfigError(f"OCI option {name!r} must be a positive number, got {value!r}")
    if out <= 0:
        raise ConfigError(f"OCI option {name!r} must be > 0, got {value!r}")
    return out


class OracleStorageProvider(SdkClientSlot, BucketStorageProvider):
    """Storage provider for OCI Object Storage.

    Args:
        namespace: The tenancy's Object Storage namespace.
        base_path: ``"bucket"`` or ``"bucket/prefix"``; every key is relative to it.
        credentials_provider: Optional; when its credentials expire they are refreshed and the SDK
            client is rebuilt (the request signing itself uses the OCI config file).
        retry_strategy: ``oci.retry.RetryStrategyBuilder`` keyword arguments to turn SDK retries on.
            Default: no SDK retries (manystore retries).
        config_file: OCI config file. Default ``$OCI_CONFIG_FILE`` or ``~/.oci/config``.
        profile: Profile in the config file. Default ``$OCI_CLI_PROFILE`` or ``DEFAULT``.
        timeout: Seconds, or ``(connect, read)``. Default ``(60, 60)``.
        multipart_threshold: Uploads larger than this use multipart. Default 64 MiB.
        multipart_chunksize: Part size of multipart uploads. Default 32 MiB.
        max_concurrency: Parts uploaded in parallel. Default 8.
        io_chunksize: Chunk size when streaming a download to a file. Default 8 MiB.
        copy_timeout: Seconds to wait for a server-side copy to complete. Default 3600.

    Raises:
        ProviderUnavailableError: The ``oci`` SDK is not installed.
        ConfigError: Unknown option, invalid value, or an unreadable/incomplete config file.
    """

    provider_name: ClassVar[str] = "oci"
    OPTIONS: ClassVar[frozenset[str]] = _OPTIONS | BucketStorageProvider.OPTIONS
    supports_conditional_writes: ClassVar[bool] = True
    supports_server_side_copy: ClassVar[bool] = True
    url_scheme: ClassVar[str] = "oci"

    def __init__(
        self,
        namespace: str,
        base_path: str = "",
        credentials_provider: CredentialsProvider | None = None,
        retry_strategy: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTIONS}
        super().__init__(base_path=base_path, **kwargs)
        if not isinstance(namespace, str) or not namespace.strip():
            raise ConfigError(
                f"OracleStorageProvider: 'namespace' must be a non-empty string, got {namespace!r}"
            )
        bucket, _, root = base_path.strip("/").partition("/")
        if not bucket:
            raise ConfigError(
                f"OracleStorageProvider: base_path must start with a bucket name, got {base_path!r}"
            )
        if retry_strategy is not None and not isinstance(retry_strategy, dict):
            raise ConfigError(f"OCI option 'retry_strategy' must be a mapping, got {retry_strategy!r}")
        self._namespace = namespace.strip()
        self._bucket = bucket
        self._root = normalize_key(root).rstrip("/")
        self._credentials_provider = credentials_provider
        self._retry_strategy = retry_strategy
        timeout = options.get("timeout", (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT))
        if isinstance(timeout, (list, tuple)):
            if len(timeout) != 2:
                raise ConfigError(
                    f"OCI option 'timeout' must be a number or (connect, read), got {timeout!r}"
                )
            self._timeout: Any = (_number("timeout", timeout[0]), _number("timeout", timeout[1]))
        else:
            self._timeout = _number("timeout", timeout)
        self._threshold: int = _number(
            "multipart_threshold", options.get("multipart_threshold", DEFAULT_MULTIPART_THRESHOLD), parse_size
        )
        self._chunksize: int = _number(
            "multipart_chunksize", options.get("multipart_chunksize", DEFAULT_MULTIPART_CHUNKSIZE), parse_size
        )
        self._io_chunksize: int = _number(
            "io_chunksize", options.get("io_chunksize", DEFAULT_IO_CHUNKSIZE), parse_size
        )
        self._max_concurrency: int = _number(
            "max_concurrency", options.get("max_concurrency", DEFAULT_MAX_CONCURRENCY), int
        )
        self._copy_timeout: float = _number("copy_timeout", options.get("copy_timeout", DEFAULT_COPY_TIMEOUT))
        self._config_file = os.path.expanduser(
            options.get("config_file") or os.environ.get("OCI_CONFIG_FILE") or "~/.oci/config"
        )
        self._profile: str = options.get("profile") or os.environ.get("OCI_CLI_PROFILE") or "DEFAULT"
        self._config = self._load_config()

    # ------------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(namespace={self._namespace!r}, bucket={self._bucket!r}, "
            f"prefix={self._root!r}, profile={self._profile!r})"
        )

    @property
    def namespace(self) -> str:
        """The Object Storage namespace."""
        return self._namespace

    def _load_config(self) -> dict[str, Any]:
        oci = _sdk()
        where = f"OCI config file {self._config_file!r} (profile {self._profile!r})"
        if not os.path.isfile(self._config_file):
            raise ConfigError(
                f"{where} does not exist; create it (see 'oci setup config') or set the "
                "'config_file' option / OCI_CONFIG_FILE"
            )
        try:
            config = dict(oci.config.from_file(file_location=self._config_file, profile_name=self._profile))
            if "security_token_file" in config:  # session authentication: no user/fingerprint needed
                missing = [k for k in ("key_file", "region", "tenancy") if not config.get(k)]
                if missing:
                    raise oci.exceptions.InvalidConfig({k: "missing" for k in missing})
            else:
                oci.config.validate_config(config)
        except Exception as err:  # ProfileNotFound, InvalidConfig, ConfigFileNotFound...
            raise ConfigError(f"{where} is not usable: {type(err).__name__}: {err}")
        return config

    def _sdk_retry(self) -> Any:
        oci = _sdk()
        if self._retry_strategy is None:
            return oci.retry.NoneRetryStrategy()
        try:
            return oci.retry.RetryStrategyBuilder(**self._retry_strategy).get_retry_strategy()
        except TypeError as err:
            raise ConfigError(f"OCI option 'retry_strategy' is invalid: {err}")

    def _build_client(self) -> Any:
        oci = _sdk()
        kwargs: dict[str, Any] = {"retry_strategy": self._sdk_retry(), "timeout": self._timeout}
        config = self._config
        if "security_token_file" in config:
            try:
                with open(os.path.expanduser(config["security_token_file"])) as fh:
                    token = fh.read()
                key = oci.signer.load_private_key_from_file(
                    filename=config["key_file"], pass_phrase=config.get("pass_phrase")
                )
            except (OSError, KeyError) as err:
                raise ConfigError(f"OCI session authentication in {self._config_file!r} failed: {err}")
            kwargs["signer"] = oci.auth.signers.SecurityTokenSigner(token=token, private_key=key)
        try:
            return oci.object_storage.ObjectStorageClient(config, **kwargs)
        except Exception as err:
            raise ConfigError(f"{self!r}: cannot build the OCI client: {type(err).__name__}: {err}")

    def _oci(self) -> Any:
        """The SDK client of this process (built on first use, again after a fork or credential expiry)."""
        if (
            self._credentials_provider is not None
            and self._credentials_provider.get_credentials().is_expired()
        ):
            self._credentials_provider.refresh_credentials()
            self._config = self._load_config()
            self._reset_client()
        return self._sdk_client()

    def _call(self, operation: str, key: str, **kwargs: Any) -> Any:
        """``client.<operation>(namespace, bucket, ...)`` with errors translated."""
        try:
            return getattr(self._oci(), operation)(
                namespace_name=self._namespace, bucket_name=self._bucket, **kwargs
            )
        except Exception as err:
            raise translate_error(err, self._url(key))

    # ------------------------------------------------------------------ reads
    def get_object(self, path: str, byte_range: Range | None = None, *, if_match: str | None = None) -> bytes:
        """Return the object's bytes, or ``byte_range`` of them (clipped at the end of the object).

        Raises:
            ObjectNotFoundError: No such object.
            PreconditionFailedError: ``if_match`` differs from the object's ETag.
        """
        key = self._full_key(path)
        kwargs: dict[str, Any] = {"object_name": key}
        if if_match:
            kwargs["if_match"] = if_match
        if byte_range is not None:
            if byte_range.size == 0:
                self.get_object_metadata(path)
                return b""
            kwargs["range"] = f"bytes={byte_range.offset}-{byte_range.end - 1}"
        try:
            response = self._oci().get_object(
                namespace_name=self._namespace, bucket_name=self._bucket, **kwargs
            )
            return bytes(response.data.content)
        except Exception as err:
            if byte_range is not None and getattr(err, "status", None) == 416:
                return b""  # The range starts at or past the end of the object.
            raise translate_error(err, self._url(key))

    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        """HEAD the object; with ``strict=False`` a prefix with children answers as a directory.

        Raises:
            ObjectNotFoundError: Neither an object nor (non-strict) a directory.
        """
        key = self._full_key(path)
        try:
            headers = self._call("head_object", key, object_name=key).headers
        except ObjectNotFoundError:
            if not strict and self._has_children(key):
                return ObjectMetadata(key=path, content_length=0, last_modified=_EPOCH, type="directory")
            raise
        user = {k[len("opc-meta-") :]: v for k, v in headers.items() if k.lower().startswith("opc-meta-")}
        modified = headers.get("last-modified")
        return ObjectMetadata(
            key=normalize_key(path),
            content_length=int(headers.get("content-length", 0)),
            last_modified=parsedate_to_datetime(modified) if modified else _EPOCH,
            content_type=headers.get("content-type"),
            etag=headers.get("etag"),
            storage_class=headers.get("storage-tier"),
            metadata=user or None,
        )

    def _has_children(self, key: str) -> bool:
        prefix = key.rstrip("/") + "/" if key else ""
        data = self._call("list_objects", prefix, prefix=prefix, limit=1, fields="name").data
        return bool(data.objects or data.prefixes)

    def _list_objects(
        self,
        prefix: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """Objects whose keys start with ``prefix`` (a raw string prefix), in key order.

        ``start_after`` is exclusive, ``end_at`` inclusive; both are relative keys. With
        ``include_directories`` one level is listed and sub-"directories" are yielded as
        ``type="directory"`` entries (key without trailing ``/``, size 0).
        """
        raw = (self._root + "/" if self._root else "") + normalize_key(prefix)
        kwargs: dict[str, Any] = {"prefix": raw, "fields": _LIST_FIELDS, "limit": 1000}
        if include_directories:
            kwargs["delimiter"] = "/"
        if start_after is not None:
            kwargs["start_after"] = self._full_key(start_after)
        while True:
            data = self._call("list_objects", raw, **kwargs).data
            entries = [self._to_metadata(o) for o in data.objects or [] if not o.name.endswith("/")]
            if include_directories:
                entries += [
                    ObjectMetadata(
                        key=self._rel(p.rstrip("/")), content_length=0, last_modified=_EPOCH, type="directory"
                    )
                    for p in data.prefixes or []
                ]
                entries.sort(key=lambda e: e.key)
            for entry in entries:
                if end_at is not None and entry.key > end_at:
                    return
                if within_bounds(entry.key, start_after, end_at):
                    yield entry
            if not data.next_start_with:
                return
            kwargs.pop("start_after", None)
            kwargs["start"] = data.next_start_with

    def _to_metadata(self, obj: Any) -> ObjectMetadata:
        modified = obj.time_modified or _EPOCH
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=timezone.utc)
        return ObjectMetadata(
            key=self._rel(obj.name), content_length=int(obj.size or 0), last_modified=modified, etag=obj.etag
        )

    # ------------------------------------------------------------------ writes
    def put_object(
        self,
        path: str,
        body: bytes,
        if_match: str | None = None,
        if_none_match: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Store ``body`` at ``path`` (one PutObject; the service enforces the conditions atomically).

        Raises:
            ValueError: ``if_none_match`` other than ``"*"``, or both conditions given.
            PreconditionFailedError: The condition does not hold.
        """
        check_put_conditions(if_match, if_none_match)
        key = self._full_key(path)
        kwargs: dict[str, Any] = {
            "object_name": key,
            "put_object_body": bytes(body),
            "opc_meta": attributes or {},
        }
        if if_match is not None:
            kwargs["if_match"] = if_match
        if if_none_match is not None:
            kwargs["if_none_match"] = if_none_match
        self._call("put_object", key, **kwargs)

    def copy_object(self, src_path: str, dest_path: str) -> None:
        """Server-side copy within the bucket; waits for the copy work request to finish.

        Raises:
            ObjectNotFoundError: ``src_path`` does not exist.
        """
        oci = _sdk()
        src, dest = self._full_key(src_path), self._full_key(dest_path)
        details = oci.object_storage.models.CopyObjectDetails(
            source_object_name=src,
            destination_region=self._config.get("region"),
            destination_namespace=self._namespace,
            destination_bucket=self._bucket,
            destination_object_name=dest,
        )
        response = self._call("copy_object", src, copy_object_details=details)
        request_id = (response.headers or {}).get("opc-work-request-id")
        if request_id:
            self._wait_for_work_request(request_id, src)

    def _wait_for_work_request(self, request_id: str, key: str) -> None:
        deadline, delay = time.monotonic() + self._copy_timeout, 0.2
        while True:
            try:
                status = self._oci().get_work_request(work_request_id=request_id).data.status
            except Exception as err:
                raise translate_error(err, self._url(key))
            if status == "COMPLETED":
                return
            if status in ("FAILED", "CANCELED"):
                raise OCIProviderError(f"{self._url(key)}: copy work request {request_id} {status}")
            if time.monotonic() > deadline:
                raise RetryableError(f"{self._url(key)}: copy work request {request_id} still {status}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def delete_object(self, path: str, if_match: str | None = None) -> None:
        """Delete one object; ``if_match`` is enforced by the service (atomic).

        Raises:
            ObjectNotFoundError: The object does not exist.
            PreconditionFailedError: ``if_match`` given and the ETag differs.
        """
        key = self._full_key(path)
        kwargs: dict[str, Any] = {"object_name": key}
        if if_match is not None:
            kwargs["if_match"] = if_match
        self._call("delete_object", key, **kwargs)

    def upload_file(self, remote_path: str, f: str | IO, attributes: dict[str, str] | None = None) -> None:
        """Upload a local file (path or binary file object) with the SDK's UploadManager:
        multipart in ``multipart_chunksize`` parts above ``multipart_threshold``."""
        oci = _sdk()
        key = self._full_key(remote_path)
        common: dict[str, Any] = {
            "namespace_name": self._namespace, "bucket_name": self._bucket, "object_name": key,
            "metadata": attributes or {}, "part_size": self._chunksize,
        }  # fmt: skip
        try:
            if isinstance(f, (str, os.PathLike)):
                multipart = os.path.getsize(f) > self._threshold
                manager = self._upload_manager(oci, multipart)
                manager.upload_file(file_path=os.fspath(f), **common)
            else:
                self._upload_manager(oci, True).upload_stream(stream_ref=f, **common)
        except Exception as err:
            raise translate_error(err, self._url(key))

    def _upload_manager(self, oci: Any, multipart: bool) -> Any:
        return oci.object_storage.UploadManager(
            self._oci(),
            allow_multipart_uploads=multipart,
            allow_parallel_uploads=True,
            parallel_process_count=self._max_concurrency,
        )

    def _download_into(self, remote_path: str, fh: IO, metadata: ObjectMetadata | None = None) -> None:
        key = self._full_key(remote_path)
        response = self._call("get_object", key, object_name=key)
        try:
            for chunk in response.data.raw.stream(self._io_chunksize, decode_content=False):
                fh.write(chunk)
        except Exception as err:
            raise translate_error(err, self._url(key))
