"""Amazon S3 and S3-compatible stores, on top of ``obstore`` (Rust ``object_store``).

Backend notes (where this provider differs from the Multi-Storage Client's boto3-based one):

* Transport is ``obstore.store.S3Store`` with its own retries switched off; a transient
  failure (408/429/5xx, dropped connection, timeout) is raised once as
  :class:`manystore.errors.RetryableError` and :class:`manystore.StorageClient` retries it.
* Conditional writes use ``If-None-Match: *`` / ``If-Match`` headers. Whether they are
  enforced is a property of the server (AWS S3 and moto do; ``rclone serve s3`` ignores them).
* ``delete_object`` HEADs first (S3 itself deletes missing keys silently): a missing key raises
  :class:`manystore.errors.ObjectNotFoundError`; ``if_match`` is compared there, so it is not atomic.
* Servers that answer ranged GETs with ``200`` (``rclone serve s3`` up to 1.75) are detected once;
  ranged GETs are then presigned and sent by a small HTTP client that accepts that answer.
* Whole reads and downloads of objects above ``multipart_chunksize`` fetch the rest after the
  first chunk as parallel ranged GETs pinned to the first response's ETag.
* Fork: obstore's runtime does not survive ``fork()``; a child forked while it runs loads a private
  copy of obstore (see :func:`obstore_api`), so forked DataLoader-style workers keep working.
* Object keys may not hold ASCII control characters (``object_store`` refuses them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, cast

from ..errors import (
    BucketNotFoundError,
    ConfigError,
    InvalidPathError,
    ObjectNotFoundError,
    PreconditionFailedError,
    RetryableError,
)
from ..types import CredentialsProvider, ObjectMetadata, Range, RetryConfig, SignerType
from ..utils import key_before, normalize_key, parse_size, within_bounds
from ._obstore import (
    ObstoreForkError,
    ObstoreWriter,
    S3PermissionError,
    S3ProviderError,
    obstore_api,
)
from ._obstore import status_of as _status_of
from ._obstore import summary as _summary
from ._obstore import translate_error as _translate
from ._s3_download import RESUME_GRANULE, RangedDownloads, collect_into
from ._s3_download import quote_etag as _quote
from ._s3_download import unquote_etag as _unquote
from ._s3_options import BOTOCORE_OPTIONS, parse_botocore_options
from ._s3_store import ObstoreStores, split_bucket
from .base import (
    BaseStorageProvider,
    BucketStorageProvider,
    check_put_conditions,
    positive_option,
    presign_request,
)
from .s3_credentials import StaticS3CredentialsProvider

if TYPE_CHECKING:
    from obstore import Attributes, ObjectMeta, PutMode

__all__ = [
    "ObstoreForkError",
    "S3PermissionError",
    "S3ProviderError",
    "S3StorageProvider",
    "StaticS3CredentialsProvider",
    "obstore_api",
]

MiB = 1 << 20
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
DEFAULT_MULTIPART_CHUNKSIZE = 32 * MiB
DEFAULT_IO_CHUNKSIZE = 8 * MiB
DEFAULT_MAX_CONCURRENCY = 16
DEFAULT_CONNECT_TIMEOUT = 60.0
DEFAULT_READ_TIMEOUT = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_STANDARD_ATTRIBUTES = frozenset(
    {"Content-Type", "Content-Disposition", "Content-Encoding", "Content-Language", "Cache-Control"}
)
# Keys of MSC's ``rust_client`` block that map onto options of this provider.
_RUST_CLIENT_KEYS = frozenset(
    {"multipart_chunksize", "max_concurrency", "connect_timeout", "read_timeout", "max_pool_connections"}
)
_OPTIONS = _RUST_CLIENT_KEYS | {
    "multipart_threshold", "io_chunksize", "addressing_style", "force_path_style", "allow_http", "verify",
    "request_payer", "profile_name", "rust_client", "verify_checksums",
} | BOTOCORE_OPTIONS  # fmt: skip


class S3StorageProvider(ObstoreStores, RangedDownloads, BucketStorageProvider):
    """Storage provider for Amazon S3 and S3-compatible stores (MinIO, rclone, moto, Ceph...).

    Args:
        region_name: Region to sign for. Default: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, else ``us-east-1``.
        endpoint_url: Custom endpoint, e.g. ``http://127.0.0.1:9000``. Default:
            ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, else AWS.
        base_path: ``"bucket"`` or ``"bucket/prefix"``; every key is relative to it. Empty (or
            ``"/"``): bucket-less, the first component of every key is its bucket
            (``"bucket/dir/obj"``), as in MSC 1.3.1; listings must then name a bucket.
        credentials_provider: Source of credentials. Without one: ``AWS_ACCESS_KEY_ID`` /
            ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, else boto3's credential chain
            when boto3 is installed, else unsigned (anonymous) requests.
        multipart_threshold: Uploads larger than this use multipart. Bytes or ``"64M"``. Default 64 MiB.
        multipart_chunksize: Part size of multipart uploads and of parallel ranged downloads.
            Default 32 MiB. AWS requires parts of at least 5 MiB.
        max_concurrency: Parts transferred in parallel per upload/download. Default 16.
        io_chunksize: Chunk size when streaming an object into a file. Default 8 MiB.
        connect_timeout: Seconds to establish a connection. Default 60.
        read_timeout: Seconds a read may stall before the request fails. Default 60.
        addressing_style: ``"path"``, ``"virtual"`` or ``"auto"`` (default: virtual-hosted on
            AWS, path-style with an ``endpoint_url`` or a bucket name holding dots).
        force_path_style: ``True`` is the same as ``addressing_style="path"``.
        allow_http: Permit ``http://`` endpoints. Default: True only for an ``http://`` endpoint_url.
        verify: TLS verification: ``True`` (default), ``False`` (skip; testing only) or the path
            of a PEM CA bundle to trust in addition to the system roots.
        request_payer: Send ``x-amz-request-payer: requester`` (requester-pays buckets).
        verify_checksums: ``download_file`` hashes the bytes and compares with the ETag when it
            is an MD5 (single-part objects); a mismatch raises ``ChecksumMismatchError`` and leaves
            no file. Default True.
        profile_name: AWS shared-config profile for boto3's chain (ignored with credentials_provider).
        max_pool_connections: Idle connections kept per host.
        checksum_algorithm: Checksum sent with every PUT and upload part (``SHA256`` or
            ``CRC64NVME``).
        request_checksum_calculation: botocore's option: ``when_supported`` sends SHA256 on uploads.
        response_checksum_validation: botocore's option: the default of ``verify_checksums``.
        retries: botocore's retry settings, applied to each request below the profile's ``retry``.
        s3: botocore's ``s3`` settings (``addressing_style``, ``payload_signing_enabled``).
        signature_version: ``UNSIGNED`` sends anonymous requests.
        rust_client: Accepted for MSC configs: manystore always uses its Rust transport; the keys
            multipart_chunksize, max_concurrency, connect_timeout, read_timeout and
            max_pool_connections apply unless given at the top level.

    Raises:
        ConfigError: An unknown option or an invalid value (the message names it).
    """

    provider_name: ClassVar[str] = "s3"
    OPTIONS: ClassVar[frozenset[str]] = _OPTIONS | BaseStorageProvider.OPTIONS
    #: The signer type :meth:`generate_presigned_url` uses (and accepts as ``signer_type``).
    presign_signer: ClassVar[SignerType] = SignerType.S3
    supports_conditional_writes: ClassVar[bool] = True
    supports_upload_concurrency: ClassVar[bool] = True
    url_scheme: ClassVar[str] = "s3"

    def __init__(
        self,
        region_name: str = "",
        endpoint_url: str = "",
        base_path: str = "",
        credentials_provider: CredentialsProvider | None = None,
        **kwargs: Any,
    ) -> None:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTIONS}
        super().__init__(base_path=base_path, **kwargs)
        rust = options.pop("rust_client", None) or {}
        if not isinstance(rust, dict):
            raise ConfigError(f"S3 option 'rust_client' must be a mapping, got {rust!r}")
        for key in _RUST_CLIENT_KEYS & set(rust):
            options.setdefault(key, rust[key])
        bucket, _, root = base_path.strip("/").partition("/")
        self._bucket = bucket  # "" (bucket-less): the first key component is the bucket
        self._root = normalize_key(root).rstrip("/")
        self._region = (
            region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
        )
        self._endpoint = (
            endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
        ).rstrip("/")
        self._credentials_provider = credentials_provider

        def number(name: str, default: Any, parse: Any = float) -> Any:
            return positive_option("S3", name, options.get(name, default), parse)

        self._threshold: int = number("multipart_threshold", DEFAULT_MULTIPART_THRESHOLD, parse_size)
        self._chunksize: int = number("multipart_chunksize", DEFAULT_MULTIPART_CHUNKSIZE, parse_size)
        self._io_chunksize: int = number("io_chunksize", DEFAULT_IO_CHUNKSIZE, parse_size)
        self._max_concurrency: int = number("max_concurrency", DEFAULT_MAX_CONCURRENCY, int)
        self._connect_timeout: float = number("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        self._read_timeout: float = number("read_timeout", DEFAULT_READ_TIMEOUT)
        boto = parse_botocore_options(options)
        self._checksum = boto.checksum_algorithm
        self._unsigned_payload, self._skip_signature = boto.unsigned_payload, boto.skip_signature
        self._transport_retries = boto.max_retries
        style = options.get("addressing_style", boto.addressing_style or "auto")
        if options.get("force_path_style"):
            style = "path"
        if style not in ("auto", "path", "virtual"):
            raise ConfigError(
                f"S3 option 'addressing_style' must be 'auto', 'path' or 'virtual', got {style!r}"
            )
        self._style = style
        if style == "auto":
            style = "path" if self._endpoint or "." in bucket else "virtual"
        self._virtual_hosted = style == "virtual"
        self._allow_http = bool(options.get("allow_http", self._endpoint.startswith("http://")))
        verify = options.get("verify")
        self._verify: bool | str = True if verify is None else verify
        if isinstance(self._verify, str) and not os.path.isfile(self._verify):
            raise ConfigError(f"S3 option 'verify' names no CA bundle file: {self._verify!r}")
        self._request_payer = bool(options.get("request_payer", False))
        default_verify = True if boto.verify_checksums is None else boto.verify_checksums
        self._verify_checksums = bool(options.get("verify_checksums", default_verify))
        self._profile_name: str | None = options.get("profile_name")
        pool = options.get("max_pool_connections")
        self._pool_size: int | None = (
            None if pool is None else positive_option("S3", "max_pool_connections", pool, int)
        )
        # None until the first ranged GET shows whether the server answers ranges with 206
        # (False) or with 200 + Content-Range (True); the first one is sent alone.
        self._ranges_broken: bool | None = None
        self._init_stores()

    # ------------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self._bucket!r}, prefix={self._root!r})"

    def _url(self, key: str) -> str:
        """``scheme://bucket/key`` of an object key (bucket-less: the key names the bucket)."""
        return f"{self.url_scheme}://{key}" if self.bucketless else super()._url(key)

    def generate_presigned_url(
        self,
        path: str,
        *,
        method: str = "GET",
        signer_type: SignerType | None = None,
        signer_options: dict[str, Any] | None = None,
    ) -> str:
        """A query-signed URL (SigV4 on S3, a SAS on Azure) for ``method`` on ``path``.

        Args:
            path: Key relative to ``base_path`` (need not exist for ``PUT``).
            method: ``GET``, ``HEAD``, ``PUT`` or ``DELETE``.
            signer_type: ``None`` or this store's own signer (``SignerType.S3`` / ``SignerType.AZURE``).
            signer_options: ``{"expires_in": seconds}`` (default 3600).

        Raises:
            ValueError: Bad method, signer or option (see :func:`presign_request`).
            PermissionError: The profile has no credentials to sign with (anonymous access).
        """
        verb, expires_in = presign_request(self, method, signer_type, signer_options, self.presign_signer)
        key = self._full_key(path)
        try:
            return str(self._obs("sign")(verb, key, timedelta(seconds=expires_in)))
        except Exception as err:
            raise PermissionError(
                f"{self!r}: cannot sign a URL for {self._url(key)}: {_summary(str(err))} "
                "(signing needs the profile's secret key; anonymous profiles cannot sign)"
            ) from None

    def open_writer(self, path: str, retry: RetryConfig | None = None) -> ObstoreWriter:
        """Stream a new object to ``path`` as a multipart upload (single PUT when small).

        At most ``multipart_chunksize`` x 4 bytes are buffered. Nothing is visible until
        ``close()``; ``abort()`` (or a failed part) aborts the upload.
        """
        key = self._full_key(path)
        if self.bucketless:
            bucket, inner = split_bucket(key)
            return cast("ObstoreWriter", self._bucket_view(bucket).open_writer(inner, retry))
        self._get_store()  # resolves the obstore module of this process (fork safety)
        with self._lock():
            cache_key = (os.getpid(), retry)
            store = self._writer_stores.get(cache_key)
            if store is None:
                store = self._build_store(self._store_class, retry)
                self._writer_stores = {cache_key: store}
        raw = self._api.open_writer(store, key, buffer_size=self._chunksize, max_concurrency=4)
        return ObstoreWriter(raw, self._url(key), _translate)

    # ------------------------------------------------------------------ reads
    def get_object(self, path: str, byte_range: Range | None = None, *, if_match: str | None = None) -> bytes:
        """Return the object's bytes, or ``byte_range`` of them (clipped at the end of the object).

        ``if_match`` is sent as an ``If-Match`` precondition; servers that ignore it (rclone) return the
        current bytes.

        Raises:
            ObjectNotFoundError: No such object.
            PreconditionFailedError: ``if_match`` does not match the object's ETag.
        """
        key = self._full_key(path)
        options: dict[str, Any] = {"if_match": _quote(if_match)} if if_match else {}
        try:
            if byte_range is None:
                return self._get_whole(key, options)
            if byte_range.size == 0:
                self.get_object_metadata(path)
                return b""
            return bytes(self._read_range(key, byte_range.offset, byte_range.end, options))
        except Exception as err:
            if byte_range is not None and _status_of(err) == 416:
                return b""  # The range starts at or past the end of the object.
            raise _translate(err, self._url(key))

    def get_object_if_smaller(self, path: str, limit: int) -> bytes | int:
        """One whole GET: its bytes when the object has at most ``limit`` of them, else its size
        (from the response headers; the body is not read). No ranged GET, so servers whose ranged
        answers need the slow path (``rclone serve s3``) are not on it."""
        key = self._full_key(path)
        try:
            result = self._obs("get")(key)
            size = result.range[1]
            if size > limit:
                del result  # drops the connection without reading the body
                return int(size)
            return bytes(result.bytes())
        except Exception as err:
            raise _translate(err, self._url(key))

    def _get_whole(self, key: str, options: dict[str, Any]) -> bytes:
        """One GET. Objects up to 1 MiB are taken in one piece (a cut is retried whole); larger
        ones go through :meth:`_receive` (resume from the cut, parallel ranges above
        ``multipart_chunksize``), collected and joined with one copy."""
        result = self._obs("get")(key, options=options)
        size = result.range[1]  # cheaper than building .meta, which only larger objects need
        if size <= RESUME_GRANULE:
            return bytes(result.bytes())
        parts: list[Any] = []
        self._receive(key, result, collect_into(parts), self._io_chunksize, verify=False)
        return b"".join(parts)

    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        """HEAD the object. With ``strict=False`` a prefix with children answers as a directory.

        Raises:
            ObjectNotFoundError: Neither an object nor (non-strict) a directory.
        """
        key = self._full_key(path)
        try:
            result = self._obs("get")(key, options={"head": True})
        except Exception as err:
            error = _translate(err, self._url(key))
            if not strict and isinstance(error, ObjectNotFoundError) and self._has_children(key):
                return ObjectMetadata(key=path, content_length=0, last_modified=_EPOCH, type="directory")
            raise error
        attributes = dict(result.attributes)
        content_type = attributes.pop("Content-Type", None)
        storage_class = attributes.pop("Storage-Class", None)
        user = {k: v for k, v in attributes.items() if k not in _STANDARD_ATTRIBUTES}
        return self._to_metadata(
            result.meta, content_type, storage_class=storage_class, metadata=user or None
        )

    def _has_children(self, key: str) -> bool:
        prefix = key.rstrip("/")
        try:
            for batch in self._obs("list")(prefix or None, chunk_size=1):
                if batch:
                    return True
        except Exception as err:
            raise _translate(err, self._url(prefix + "/"))
        return False

    def _to_metadata(self, meta: ObjectMeta, content_type: str | None = None, **extra: Any) -> ObjectMetadata:
        modified = meta["last_modified"]
        modified = modified if modified.tzinfo else modified.replace(tzinfo=timezone.utc)
        return ObjectMetadata(
            self._rel(meta["path"]),
            meta["size"],
            modified,
            "file",
            content_type,
            _unquote(meta["e_tag"]),
            **extra,
        )

    def _list_objects(
        self,
        prefix: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """Objects whose keys start with ``prefix`` (a raw string prefix, as in S3), in key order.

        Lists under the prefix's parent "directory" starting just below the prefix and stops at the
        first key past it. ``start_after`` is exclusive, ``end_at`` inclusive; both are relative keys.
        With ``include_directories`` only one level is listed, and sub-"directories" are yielded as
        ``type="directory"`` entries (key without trailing ``/``, size 0).
        """
        raw = (self._root + "/" if self._root else "") + normalize_key(prefix)
        parent = raw[: raw.rfind("/")] if "/" in raw else ""
        if self.bucketless:
            if not raw:
                raise InvalidPathError(
                    f"{self!r}: base_path is empty, so a listing must name a bucket (got prefix {prefix!r})"
                )
            parent = parent or raw  # "bucket": list the whole bucket
        low = self._full_key(start_after) if start_after is not None else None
        high = self._full_key(end_at) if end_at is not None else None
        if include_directories:
            yield from self._list_one_level(raw, parent, start_after, end_at)
            return
        offset = key_before(raw) if raw and not raw.endswith("/") else None
        if low is not None and (offset is None or low > offset):
            offset = low
        try:
            stream = self._obs("list")(parent or None, offset=offset, chunk_size=1000)
            for batch in stream:
                for meta in batch:
                    key = meta["path"]
                    if key < raw or (low is not None and key <= low):
                        continue
                    if not key.startswith(raw) or (high is not None and key > high):
                        return
                    yield self._to_metadata(meta)
        except Exception as err:
            raise _translate(err, self._url(raw))

    def _list_one_level(
        self, raw: str, parent: str, start_after: str | None, end_at: str | None
    ) -> Iterator[ObjectMetadata]:
        try:
            result = self._obs("list_with_delimiter")(parent or None)
        except Exception as err:
            raise _translate(err, self._url(raw))
        entries = [self._to_metadata(m) for m in result["objects"] if m["path"].startswith(raw)]
        entries += [
            ObjectMetadata(
                key=self._rel(p.rstrip("/")), content_length=0, last_modified=_EPOCH, type="directory"
            )
            for p in result["common_prefixes"]
            if p.startswith(raw)
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
        """Store ``body`` at ``path`` in one request (multipart above ``multipart_threshold``).

        Args:
            if_match: Write only if the current ETag equals this.
            if_none_match: Only ``"*"``: write only if no object exists.
            attributes: User metadata (``x-amz-meta-*``).

        Raises:
            ValueError: ``if_none_match`` other than ``"*"``, or both conditions given.
            PreconditionFailedError: The condition does not hold (on servers that enforce it).
        """
        key = self._full_key(path)
        check_put_conditions(if_match, if_none_match)
        mode: PutMode | None = None
        if if_none_match is not None:
            mode = "create"
        elif if_match is not None:
            mode = {"e_tag": _quote(if_match)}
        multipart = mode is None and len(body) > self._threshold
        self._put(key, body, self._attributes(path, attributes), multipart, mode)

    def _put(
        self,
        key: str,
        source: Any,
        attributes: Attributes | None,
        multipart: bool,
        mode: Any = None,
        concurrency: int | None = None,
    ) -> None:
        try:
            self._obs("put")(
                key, source, attributes=attributes, mode=mode, use_multipart=multipart,
                chunk_size=self._chunksize, max_concurrency=concurrency or self._max_concurrency,
            )  # fmt: skip
        except Exception as err:
            raise _translate(err, self._url(key))

    def _attributes(self, path: str, metadata: dict[str, str] | None) -> Attributes | None:
        """obstore attributes for a write; subclasses may add e.g. a Content-Type."""
        return cast("Attributes", dict(metadata)) if metadata else None

    def copy_object(self, src_path: str, dest_path: str) -> None:
        """Server-side copy (one ``CopyObject`` request, so at most 5 GiB on AWS); overwrites ``dest_path``.

        Raises:
            ObjectNotFoundError: ``src_path`` does not exist.
        """
        src, dest = self._full_key(src_path), self._full_key(dest_path)
        try:
            self._obs("copy")(src, dest)
        except Exception as err:
            raise _translate(err, self._url(src))

    def _store_identity(self) -> tuple[str, ...]:
        """What makes two providers the same store (a server-side copy works between them);
        bucket-less providers of one endpoint are one store (their keys name the bucket)."""
        return (self._endpoint, self._bucket)

    def can_copy_from(self, source: BaseStorageProvider) -> bool:
        """True for a provider of the same class on the same endpoint and bucket."""
        return (
            isinstance(source, S3StorageProvider)
            and type(source) is type(self)
            and source._store_identity() == self._store_identity()
        )

    def copy_from(self, source: BaseStorageProvider, src_path: str, dest_path: str) -> None:
        """Server-side ``CopyObject`` from another profile on the same endpoint and bucket."""
        if not isinstance(source, S3StorageProvider) or not self.can_copy_from(source):
            super().copy_from(source, src_path, dest_path)
            return
        src, dest = source._full_key(src_path), self._full_key(dest_path)
        try:
            self._obs("copy")(src, dest)
        except Exception as err:
            raise _translate(err, self._url(src))

    def delete_object(self, path: str, if_match: str | None = None) -> None:
        """Delete one object. It is HEAD-ed first (S3's DELETE succeeds on a missing key), so the
        ``if_match`` check and the delete are two requests: not atomic against concurrent writers.

        Raises:
            ObjectNotFoundError: The object does not exist.
            PreconditionFailedError: ``if_match`` given and the ETag differs.
        """
        key = self._full_key(path)
        current = self.get_object_metadata(path).etag
        if if_match is not None and _unquote(if_match) != current:
            raise PreconditionFailedError(f"{self._url(key)}: ETag is {current!r}, not {if_match!r}")
        try:
            self._obs("delete")(key)
        except Exception as err:
            raise _translate(err, self._url(key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``, 1000 keys per bulk request.

        Returns:
            The number of objects deleted.
        """
        keys = [self._full_key(meta.key) for meta in self._list_objects(prefix)]
        for start in range(0, len(keys), 1000):
            try:
                self._obs("delete")(keys[start : start + 1000])
            except Exception as err:
                raise _translate(err, self._url(keys[start]))
        return len(keys)

    def delete_objects(self, paths: Sequence[str]) -> None:
        """Delete the objects at ``paths``, 1000 keys per bulk request; a missing key is no error."""
        keys = [self._full_key(p) for p in paths]
        for start in range(0, len(keys), 1000):
            try:
                self._obs("delete")(keys[start : start + 1000])
            except Exception as err:
                raise _translate(err, self._url(keys[start]))

    def upload_file(
        self,
        remote_path: str,
        f: str | IO,
        attributes: dict[str, str] | None = None,
        *,
        max_concurrency: int | None = None,
    ) -> None:
        """Upload a local file (path or binary file object), streaming it from disk.

        Objects above ``multipart_threshold`` (or of unknown size) use a multipart upload with
        ``multipart_chunksize`` parts, ``max_concurrency`` at a time (default: the profile's).
        An in-memory file with ``getbuffer()`` (``io.BytesIO``) is sent from its buffer; any
        other file object without a file descriptor (e.g. a reader of another object) is read here, on the calling thread, and fed to a streaming writer: its
        ``read()`` may itself be a storage request, which must not run inside obstore's
        runtime (it would panic with "Cannot start a runtime from within a runtime").
        """
        concurrency = self._max_concurrency if max_concurrency is None else max_concurrency
        size: int | None = None
        if isinstance(f, (str, os.PathLike)):
            source: Any = Path(f)
            size, name = source.stat().st_size, str(f)
        elif hasattr(f, "getbuffer"):  # in memory (BytesIO): its buffer is sent without a copy
            source, name = memoryview(f.getbuffer())[f.tell() :], remote_path
            size = source.nbytes
        else:
            source, name = f, remote_path
            try:
                size = os.fstat(f.fileno()).st_size - f.tell()
            except (AttributeError, OSError, ValueError):
                self._upload_stream(
                    self._full_key(remote_path), f, self._attributes(name, attributes), concurrency
                )
                return
        multipart = size > self._threshold
        key = self._full_key(remote_path)
        try:
            self._put(key, source, self._attributes(name, attributes), multipart, concurrency=concurrency)
        except ObjectNotFoundError as err:
            if not multipart or isinstance(err, BucketNotFoundError):  # no bucket: nothing was uploaded
                raise
            # object_store aborts a multipart upload whose completion answer was an error; if the
            # completion had in fact been applied, the abort finds no upload (404 NoSuchUpload).
            # The object is then there: accept it when its size is the file's, else retry.
            try:
                stored = self.get_object_metadata(remote_path)
            except FileNotFoundError:
                raise RetryableError(f"{self._url(key)}: multipart upload failed and was aborted: {err}")
            if stored.content_length != size:
                raise RetryableError(f"{self._url(key)}: multipart upload outcome unclear ({err}); retrying")

    def _upload_stream(self, key: str, f: IO, attributes: Attributes | None, concurrency: int) -> None:
        """Copy ``f`` into a streaming writer (one PUT when it fits one part, else multipart)."""
        try:
            raw = self._obs("open_writer")(
                key, attributes=attributes, buffer_size=self._chunksize, max_concurrency=concurrency
            )
        except Exception as err:
            raise _translate(err, self._url(key))
        ObstoreWriter(raw, self._url(key), _translate).copy_from(f, self._chunksize)

    def _download_into(self, remote_path: str, fh: IO, metadata: ObjectMetadata | None = None) -> None:
        key = self._full_key(remote_path)
        try:
            result = self._obs("get")(key)
        except Exception as err:
            raise _translate(err, self._url(key))
        self._receive(key, result, fh, None, verify=self._verify_checksums)
