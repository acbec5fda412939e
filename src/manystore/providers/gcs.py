"""Google Cloud Storage through its JSON API, on top of ``google-cloud-storage``.

The SDK is imported on first use (``import manystore`` never imports ``google``).

Backend notes (where GCS differs from the S3 provider):

* **ETag = object generation.** :attr:`ObjectMetadata.etag` is the object's generation number
  as a decimal string (not GCS's own ``etag`` field, which also changes on metadata updates).
  So ``if_match=etag`` maps exactly onto GCS's ``ifGenerationMatch`` on writes, reads and
  deletes, and ``if_none_match="*"`` onto ``ifGenerationMatch=0``. A non-numeric ``if_match``
  can match no generation and fails with :class:`PreconditionFailedError` without a request.
* The SDK's own retries are off (``retry=None`` on every call): a transient failure is raised
  once as :class:`RetryableError` and :class:`manystore.StorageClient` retries it. Streaming
  writers, which the client cannot replay, let the SDK retry their chunks per the profile's
  :class:`RetryConfig` instead (one retry layer either way).
* ``delete_object`` is one request: missing objects raise :class:`ObjectNotFoundError` (GCS
  itself reports 404) and ``if_match`` is atomic (``ifGenerationMatch``).
* Reads pinned with ``if_match`` also check the generation reported in the response; when a
  server reports none (the gcp-storage-emulator), it is checked against the object's metadata
  after the read, so a concurrent overwrite never yields mixed versions there either.
* Listing uses GCS's raw string ``prefix``; ``start_after``/``end_at`` are sent as
  ``startOffset`` and are also applied client-side (servers that ignore them still work).
* Uploads above ``multipart_threshold`` are resumable uploads in ``multipart_chunksize``
  chunks (rounded up to a multiple of 256 KiB, GCS's chunk granularity).
* Fork: the ``storage.Client`` (and its HTTP session) is built lazily per process.
"""

from __future__ import annotations

import mimetypes
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import IO, Any, ClassVar

from ..errors import (
    ConfigError,
    ManystoreError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ProviderUnavailableError,
)
from ..types import CredentialsProvider, ObjectMetadata, Range, RetryConfig, SignerType
from ..utils import normalize_key, parse_size, within_bounds
from ._gcs_errors import GCSPermissionError, GCSProviderError
from ._gcs_errors import generation_of as _generation
from ._gcs_errors import status_of as _status
from ._gcs_errors import translate_error as _translate
from ._gcs_sign import signed_url
from ._gcs_writer import GCSWriter
from .base import (
    BaseStorageProvider,
    BucketStorageProvider,
    SdkClientSlot,
    check_put_conditions,
    positive_option,
    presign_request,
)
from .gcs_credentials import (
    GoogleIdentityPoolCredentialsProvider,
    GoogleServiceAccountCredentialsProvider,
    StringTokenSupplier,
)

__all__ = [
    "GCSPermissionError",
    "GCSProviderError",
    "GoogleIdentityPoolCredentialsProvider",
    "GoogleServiceAccountCredentialsProvider",
    "GoogleStorageProvider",
    "StringTokenSupplier",
]

MiB = 1 << 20
_GRANULE = 256 * 1024  # resumable-upload chunks must be multiples of this


class _FullReads:
    """A stream whose ``read(n)`` returns ``n`` bytes unless at the end.

    The resumable upload takes a short read for the end of the stream, while a raw stream
    (a socket, a pipe, a generator-backed reader) may return fewer bytes at any time.
    """

    def __init__(self, raw: IO) -> None:
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return bytes(self._raw.read())
        parts: list[bytes] = []
        while size > 0:
            got = self._raw.read(size)
            if not got:
                break
            parts.append(bytes(got))
            size -= len(got)
        return b"".join(parts)

    def __getattr__(self, name: str) -> object:
        return getattr(self._raw, name)


DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
DEFAULT_MULTIPART_CHUNKSIZE = 32 * MiB
DEFAULT_IO_CHUNKSIZE = 8 * MiB
DEFAULT_MAX_CONCURRENCY = 16
DEFAULT_CONNECT_TIMEOUT = 60.0
DEFAULT_READ_TIMEOUT = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_OPTIONS = frozenset({
    "multipart_threshold", "multipart_chunksize", "io_chunksize", "max_concurrency", "timeout",
    "connect_timeout", "read_timeout", "max_pool_connections", "skip_signature", "rust_client",
})  # fmt: skip
_LOCAL_HOSTS = ("http://127.0.0.1", "http://localhost", "http://[::1]")


# ------------------------------------------------------------------ provider
class GoogleStorageProvider(SdkClientSlot, BucketStorageProvider):
    """Storage provider for Google Cloud Storage (JSON API via ``google-cloud-storage``).

    Args:
        project_id: Google Cloud project. Default: the one of the credentials/environment.
        endpoint_url: Custom endpoint, e.g. an emulator ``http://127.0.0.1:9023``. Default:
            ``STORAGE_EMULATOR_HOST`` if set, else Google's.
        base_path: ``"bucket"`` or ``"bucket/prefix"``; every key is relative to it.
        credentials_provider: :class:`GoogleServiceAccountCredentialsProvider`,
            :class:`GoogleIdentityPoolCredentialsProvider`, or any provider whose ``token`` is an
            OAuth2 access token. Without one: anonymous for a local emulator (``endpoint_url`` on
            ``http://127.0.0.1``/``localhost`` or ``STORAGE_EMULATOR_HOST`` set) or with
            ``skip_signature``, else application-default credentials (``google.auth.default``).
        multipart_threshold: Uploads above this are resumable. Bytes or ``"64M"``. Default 64 MiB.
        multipart_chunksize: Resumable-upload chunk and parallel-download part size. Default 32 MiB.
        max_concurrency: Parallel ranged GETs per download (and delete_prefix workers). Default 16.
        io_chunksize: Accepted for compatibility (downloads stream in the SDK's chunks). Default 8 MiB.
        timeout: Seconds, or ``[connect, read]``. Default ``[60, 60]``.
        connect_timeout: Seconds to connect (overrides ``timeout``'s first value).
        read_timeout: Seconds a read may stall (overrides ``timeout``'s second value).
        max_pool_connections: HTTP connections kept per host. Default: ``max_concurrency``.
        skip_signature: Anonymous requests (public buckets).
        rust_client: Accepted for MSC configs and ignored (manystore uses the Python SDK here).

    Raises:
        ConfigError: An unknown option or an invalid value (the message names it).
    """

    provider_name: ClassVar[str] = "gcs"
    OPTIONS: ClassVar[frozenset[str]] = _OPTIONS | BucketStorageProvider.OPTIONS
    supports_conditional_writes: ClassVar[bool] = True
    url_scheme: ClassVar[str] = "gs"

    def __init__(
        self,
        project_id: str = "",
        endpoint_url: str = "",
        base_path: str = "",
        credentials_provider: CredentialsProvider | None = None,
        **kwargs: Any,
    ) -> None:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTIONS}
        super().__init__(base_path=base_path, **kwargs)
        bucket, _, root = base_path.strip("/").partition("/")
        if not bucket:
            raise ConfigError(
                f"{type(self).__name__}: base_path must start with a bucket name, got {base_path!r}"
            )
        self._bucket = bucket
        self._root = normalize_key(root).rstrip("/")
        self._project_id = project_id
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
        self._endpoint = (endpoint_url or "").rstrip("/")
        self._anonymous = bool(options.get("skip_signature")) or (
            credentials_provider is None and (bool(emulator) or self._endpoint.startswith(_LOCAL_HOSTS))
        )
        self._credentials_provider = credentials_provider

        def number(name: str, default: Any, parse: Any = float) -> Any:
            return positive_option("GCS", name, options.get(name, default), parse)

        self._threshold: int = number("multipart_threshold", DEFAULT_MULTIPART_THRESHOLD, parse_size)
        chunk: int = number("multipart_chunksize", DEFAULT_MULTIPART_CHUNKSIZE, parse_size)
        self._chunksize = -(-chunk // _GRANULE) * _GRANULE
        self._io_chunksize: int = number("io_chunksize", DEFAULT_IO_CHUNKSIZE, parse_size)
        self._max_concurrency: int = number("max_concurrency", DEFAULT_MAX_CONCURRENCY, int)
        timeout = options.get("timeout", (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT))
        if not isinstance(timeout, (list, tuple)):
            timeout = (timeout, timeout)
        if len(timeout) != 2:
            raise ConfigError(f"GCS option 'timeout' must be a number or [connect, read], got {timeout!r}")
        self._timeout: tuple[float, float] = (
            number("connect_timeout", timeout[0]),
            number("read_timeout", timeout[1]),
        )
        pool = options.get("max_pool_connections", self._max_concurrency)
        self._pool_size: int = positive_option("GCS", "max_pool_connections", pool, int)

    # ------------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self._bucket!r}, prefix={self._root!r})"

    def _google_credentials(self) -> Any:
        from google.auth.credentials import AnonymousCredentials

        provider = self._credentials_provider
        if self._anonymous:
            return AnonymousCredentials()
        if provider is None:
            import google.auth

            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
            return credentials
        build = getattr(provider, "google_credentials", None)
        if callable(build):
            return build()
        from google.oauth2.credentials import Credentials as OAuth2Credentials

        return OAuth2Credentials(token=provider.get_credentials().token)

    def _build_client(self) -> Any:
        try:
            import google.auth.credentials  # noqa: F401 - _google_credentials needs it
            from google.auth.transport.requests import AuthorizedSession
            from google.cloud import storage
            from requests.adapters import HTTPAdapter
        except ImportError as err:
            raise ProviderUnavailableError(
                f"{self!r}: gs:// needs google-cloud-storage, which is not installed ({err}); "
                "install the GCS extra: pip install 'manystore[gcs]'"
            ) from err
        try:
            credentials = self._google_credentials()
            session = AuthorizedSession(credentials)
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_size, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            client_options = {"api_endpoint": self._endpoint} if self._endpoint else None
            project = self._project_id or ("test" if self._anonymous else None)
            return storage.Client(
                project=project, credentials=credentials, client_options=client_options, _http=session
            )
        except ManystoreError:
            raise
        except Exception as err:
            raise ConfigError(f"{self!r}: cannot configure GCS: {type(err).__name__}: {str(err)[:300]}")

    def _blob(self, key: str, generation: int | None = None) -> Any:
        return self._sdk_client().bucket(self._bucket).blob(key, generation=generation)

    def _metadata(self, blob: Any) -> ObjectMetadata:
        modified = blob.updated or _EPOCH
        return ObjectMetadata(
            self._rel(blob.name),
            int(blob.size or 0),
            modified if modified.tzinfo else modified.replace(tzinfo=timezone.utc),
            "file",
            blob.content_type,
            str(blob.generation) if blob.generation is not None else None,
            storage_class=blob.storage_class,
            metadata=dict(blob.metadata) if blob.metadata else None,
        )

    def _stat(self, key: str) -> Any:
        """The blob with its properties loaded (raises the SDK's NotFound)."""
        blob = self._sdk_client().bucket(self._bucket).get_blob(key, retry=None, timeout=self._timeout)
        if blob is None:
            raise ObjectNotFoundError(f"{self._url(key)}: no such object")
        return blob

    # ------------------------------------------------------------------ reads
    def get_object(self, path: str, byte_range: Range | None = None, *, if_match: str | None = None) -> bytes:
        """Return the object's bytes, or ``byte_range`` of them (clipped at the end of the object).

        Raises:
            ObjectNotFoundError: No such object.
            PreconditionFailedError: ``if_match`` is not the object's current generation.
        """
        key = self._full_key(path)
        generation = _generation(if_match, self._url(key))
        try:
            if byte_range is None:
                return self._download(key, None, None, generation)
            if byte_range.size == 0:
                self._stat(key)
                return b""
            return self._download(key, byte_range.offset, byte_range.end, generation)
        except Exception as err:
            if byte_range is not None and _status(err) == 416:
                return b""  # the range starts at or past the end of the object
            raise _translate(err, self._url(key))

    def _download(self, key: str, lo: int | None, hi: int | None, generation: int | None) -> bytes:
        """Bytes ``[lo, hi)`` (whole object if ``lo`` is None), pinned to ``generation`` if given."""
        blob = self._blob(key)
        data = blob.download_as_bytes(
            start=lo, end=None if hi is None else hi - 1, if_generation_match=generation,
            checksum="auto" if lo is None else None, retry=None, timeout=self._timeout,
        )  # fmt: skip
        if generation is not None:
            self._check_generation(key, blob.generation, generation)
        return bytes(data)

    def _check_generation(self, key: str, reported: Any, expected: int) -> None:
        """Fail unless the bytes came from ``expected``; servers that report no generation
        (emulators) are checked against the object's metadata after the read."""
        if reported is None:
            reported = self._stat(key).generation
        if int(reported) != expected:
            raise PreconditionFailedError(f"{self._url(key)}: generation is {reported}, not {expected}")

    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        """Metadata of the object. With ``strict=False`` a prefix with children answers as a directory.

        Raises:
            ObjectNotFoundError: Neither an object nor (non-strict) a directory.
        """
        key = self._full_key(path)
        try:
            return self._metadata(self._stat(key))
        except Exception as err:
            error = _translate(err, self._url(key))
            if not strict and isinstance(error, ObjectNotFoundError) and self._has_children(key):
                return ObjectMetadata(key=path, content_length=0, last_modified=_EPOCH, type="directory")
            raise error

    def _has_children(self, key: str) -> bool:
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        try:
            blobs = self._sdk_client().list_blobs(
                self._bucket, prefix=prefix, max_results=1, retry=None, timeout=self._timeout
            )
            return any(True for _ in blobs)
        except Exception as err:
            raise _translate(err, self._url(prefix))

    def _list_objects(
        self,
        prefix: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """Objects whose names start with ``prefix`` (a raw string prefix), in lexicographic order.

        ``start_after`` is exclusive, ``end_at`` inclusive (relative keys). With
        ``include_directories`` only one level is listed (delimiter ``/``) and sub-"directories"
        are yielded as ``type="directory"`` entries (key without trailing ``/``, size 0).
        """
        raw = (self._root + "/" if self._root else "") + normalize_key(prefix)
        if include_directories:
            yield from self._list_one_level(raw, start_after, end_at)
            return
        low = self._full_key(start_after) if start_after is not None else None
        high = self._full_key(end_at) if end_at is not None else None
        try:
            blobs = self._sdk_client().list_blobs(
                self._bucket, prefix=raw or None, start_offset=low, page_size=1000,
                retry=None, timeout=self._timeout,
            )  # fmt: skip
            for blob in blobs:
                name = blob.name
                if low is not None and name <= low:
                    continue
                if high is not None and name > high:
                    return
                yield self._metadata(blob)
        except Exception as err:
            raise _translate(err, self._url(raw))

    def _list_one_level(
        self, raw: str, start_after: str | None, end_at: str | None
    ) -> Iterator[ObjectMetadata]:
        try:
            blobs = self._sdk_client().list_blobs(
                self._bucket, prefix=raw or None, delimiter="/", page_size=1000,
                retry=None, timeout=self._timeout,
            )  # fmt: skip
            entries = [self._metadata(b) for b in blobs]
            prefixes = set(blobs.prefixes)
        except Exception as err:
            raise _translate(err, self._url(raw))
        entries += [
            ObjectMetadata(
                key=self._rel(p.rstrip("/")), content_length=0, last_modified=_EPOCH, type="directory"
            )
            for p in prefixes
        ]
        entries.sort(key=lambda e: e.key)
        for entry in entries:
            if within_bounds(entry.key, start_after, end_at):
                yield entry

    # ------------------------------------------------------------------ writes
    def put_object(
        self,
        path: str,
        body: bytes,
        if_match: str | None = None,
        if_none_match: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Store ``body`` at ``path`` (resumable upload above ``multipart_threshold``).

        Args:
            attributes: User metadata (GCS custom metadata).
            if_match: Write only if the current generation (manystore's ETag) equals this.
            if_none_match: Only ``"*"``: write only if no object exists (``ifGenerationMatch=0``).

        Raises:
            ValueError: ``if_none_match`` other than ``"*"``, or both conditions given.
            PreconditionFailedError: The condition does not hold (on servers that enforce it).
        """
        key = self._full_key(path)
        check_put_conditions(if_match, if_none_match)
        generation = _generation(if_match, self._url(key))
        if if_none_match is not None:
            generation = 0
        blob = self._blob(key)
        blob.metadata = dict(attributes) if attributes else None
        if len(body) > self._threshold:
            blob.chunk_size = self._chunksize
        try:
            blob.upload_from_string(
                bytes(body), content_type="application/octet-stream", if_generation_match=generation,
                retry=None, timeout=self._timeout,
            )  # fmt: skip
        except Exception as err:
            raise _translate(err, self._url(key))

    def copy_object(self, src_path: str, dest_path: str) -> None:
        """Server-side copy (GCS ``rewrite``, repeated until done); overwrites ``dest_path``.

        Raises:
            ObjectNotFoundError: ``src_path`` does not exist.
        """
        self._rewrite(self._bucket, self._full_key(src_path), self._full_key(dest_path))

    def can_copy_from(self, source: BaseStorageProvider) -> bool:
        """True for another GCS profile on the same endpoint (any bucket)."""
        return isinstance(source, GoogleStorageProvider) and source._endpoint == self._endpoint

    def copy_from(self, source: BaseStorageProvider, src_path: str, dest_path: str) -> None:
        """Server-side ``rewrite`` from another GCS profile on the same endpoint (any bucket this
        profile's credentials can read)."""
        if not isinstance(source, GoogleStorageProvider) or not self.can_copy_from(source):
            super().copy_from(source, src_path, dest_path)
            return
        self._rewrite(source._bucket, source._full_key(src_path), self._full_key(dest_path))

    def _rewrite(self, src_bucket: str, src_key: str, dest_key: str) -> None:
        """``rewrite`` ``src_bucket/src_key`` onto ``dest_key`` here, repeated until GCS is done."""
        src_blob = self._sdk_client().bucket(src_bucket).blob(src_key)
        try:
            token, target = None, self._blob(dest_key)
            while True:
                token, _, _ = target.rewrite(src_blob, token=token, retry=None, timeout=self._timeout)
                if token is None:
                    return
        except Exception as err:
            raise _translate(err, f"gs://{src_bucket}/{src_key}")

    def delete_object(self, path: str, if_match: str | None = None) -> None:
        """Delete one object in one request (``if_match`` is sent as ``ifGenerationMatch``).

        Raises:
            ObjectNotFoundError: The object does not exist.
            PreconditionFailedError: ``if_match`` given and the generation differs.
        """
        key = self._full_key(path)
        generation = _generation(if_match, self._url(key))
        try:
            self._blob(key).delete(if_generation_match=generation, retry=None, timeout=self._timeout)
        except Exception as err:
            raise _translate(err, self._url(key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose name starts with ``prefix``, ``max_concurrency`` at a time.

        Returns:
            The number of objects deleted (objects that vanished meanwhile are not counted).
        """
        keys = [meta.key for meta in self._list_objects(prefix)]

        def delete(key: str) -> int:
            try:
                self.delete_object(key)
                return 1
            except ObjectNotFoundError:
                return 0

        if len(keys) <= 1:
            return sum(delete(k) for k in keys)
        with ThreadPoolExecutor(min(self._max_concurrency, len(keys)), "manystore-gcs-del") as pool:
            return sum(pool.map(delete, keys))

    def upload_file(self, remote_path: str, f: str | IO, attributes: dict[str, str] | None = None) -> None:
        """Upload a local file (path or binary file object), streamed from disk.

        Files above ``multipart_threshold`` (or of unknown size) use a resumable upload in
        ``multipart_chunksize`` chunks; the object appears only when complete.
        """
        key = self._full_key(remote_path)
        if isinstance(f, (str, os.PathLike)):
            with open(f, "rb") as fh:
                self._upload_stream(key, fh, os.fstat(fh.fileno()).st_size, str(f), attributes)
            return
        size: int | None = None
        try:
            size = os.fstat(f.fileno()).st_size - f.tell()
        except (AttributeError, OSError, ValueError):
            pass
        stream: Any = f if size is not None else _FullReads(f)
        self._upload_stream(key, stream, size, remote_path, attributes)

    def _upload_stream(
        self, key: str, fh: IO, size: int | None, name: str, attributes: dict[str, str] | None
    ) -> None:
        blob = self._blob(key)
        blob.metadata = dict(attributes) if attributes else None
        if size is None or size > self._threshold:
            blob.chunk_size = self._chunksize
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        try:
            blob.upload_from_file(
                fh, size=size, content_type=content_type, retry=None, timeout=self._timeout, checksum=None
            )
        except Exception as err:
            raise _translate(err, self._url(key))

    def _download_into(self, remote_path: str, fh: IO, metadata: ObjectMetadata | None = None) -> None:
        key = self._full_key(remote_path)
        url = self._url(key)
        try:
            if metadata is None or not (metadata.etag or "").isdigit():
                metadata = self._metadata(self._stat(key))
            size, generation = metadata.content_length, int(metadata.etag or 0)
            if size <= self._chunksize:
                blob = self._blob(key)
                blob.download_to_file(fh, if_generation_match=generation, retry=None, timeout=self._timeout)
                self._check_generation(key, blob.generation, generation)
                return
        except Exception as err:
            raise _translate(err, url)
        self._parallel_ranges(key, fh, size, generation)

    def _parallel_ranges(self, key: str, fh: IO, size: int, generation: int) -> None:
        """Fetch ``[0, size)`` in ``multipart_chunksize`` ranges on a thread pool, in order."""
        part = self._chunksize
        reported: set[Any] = set()

        def fetch(lo: int) -> bytes:
            hi = min(lo + part, size)
            blob = self._blob(key)
            data = blob.download_as_bytes(
                start=lo, end=hi - 1, if_generation_match=generation, checksum=None,
                retry=None, timeout=self._timeout,
            )  # fmt: skip
            reported.add(blob.generation)
            if len(data) != hi - lo:
                raise GCSProviderError(
                    f"{self._url(key)}: short read at {lo}: {len(data)} of {hi - lo} bytes"
                )
            return bytes(data)

        pending: deque[Future[bytes]] = deque()
        with ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="manystore-gcs-get") as pool:
            try:
                for lo in range(0, size, part):
                    pending.append(pool.submit(fetch, lo))
                    if len(pending) >= self._max_concurrency:
                        fh.write(pending.popleft().result())
                while pending:
                    fh.write(pending.popleft().result())
                for value in reported or {None}:
                    self._check_generation(key, value, generation)
            except Exception as err:
                for fut in pending:
                    fut.cancel()
                raise _translate(err, self._url(key))

    def generate_presigned_url(
        self,
        path: str,
        *,
        method: str = "GET",
        signer_type: SignerType | None = None,
        signer_options: dict[str, Any] | None = None,
    ) -> str:
        """A V4 signed URL for ``method`` on ``path`` (``signer_options={"expires_in": s}``).

        Raises:
            ValueError: Bad method, signer type (only ``None``) or option.
            PermissionError: The credentials cannot sign (e.g. anonymous emulator access).
        """
        verb, expires_in = presign_request(self, method, signer_type, signer_options, None)
        key = self._full_key(path)
        return signed_url(self._blob(key), verb, expires_in, self._endpoint, f"{self!r} {self._url(key)}")

    def open_writer(self, path: str, retry: RetryConfig | None = None) -> GCSWriter:
        """Stream a new object to ``path`` as a resumable upload in ``multipart_chunksize`` chunks.

        Nothing is visible until ``close()``; ``abort()`` cancels the upload session. As the client
        cannot replay a stream, the SDK retries each chunk per ``retry`` (if given).
        """
        key = self._full_key(path)
        policy = None
        if retry is not None and retry.attempts > 1:
            from google.cloud.storage.retry import DEFAULT_RETRY

            waits = sum(retry.delay * retry.backoff_multiplier**i for i in range(retry.attempts - 1))
            policy = DEFAULT_RETRY.with_delay(
                initial=max(retry.delay, 0.01), multiplier=retry.backoff_multiplier
            ).with_timeout(waits + 2 * sum(self._timeout) * retry.attempts)
        try:
            return GCSWriter(self, self._blob(key), self._url(key), policy)
        except Exception as err:
            raise _translate(err, self._url(key))
