"""Shared plumbing for manystore's storage providers.

:class:`BaseStorageProvider` adds to the :class:`manystore.types.StorageProvider`
contract what every backend needs once: ``base_path`` handling, glob on top of
listing, capability flags, option checking and a secret-free ``repr``. A backend
file implements only the primitive operations.
"""

from __future__ import annotations

import contextlib
import os
import threading
from abc import abstractmethod
from collections.abc import Iterator
from typing import IO, Any, ClassVar, Protocol

from .._contract import SYMLINK_ATTRIBUTE, apply_list_options, resolve_inside, symlink_target_of
from ..errors import ConfigError
from ..types import ObjectMetadata, Range, RetryConfig, SignerType, StorageProvider, SymlinkHandling
from ..utils import filter_glob, glob_literal_prefix, join_key, normalize_key
from ._tempfile import temp_file_beside

__all__ = [
    "DEFAULT_PRESIGN_EXPIRES_IN",
    "positive_option",
    "TELEMETRY_OPTIONS",
    "BaseStorageProvider",
    "BucketStorageProvider",
    "ObjectWriter",
    "presign_request",
]

#: Lifetime in seconds of a presigned URL unless ``signer_options={"expires_in": ...}`` says otherwise.
DEFAULT_PRESIGN_EXPIRES_IN = 3600
_PRESIGN_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})

#: The telemetry options every provider takes: the seed's instruments and 1.3.1's
#: ``config_dict``/``telemetry_provider`` (applied by :mod:`manystore.telemetry.direct`).
TELEMETRY_OPTIONS = frozenset(
    {"metric_counters", "metric_gauges", "metric_attributes_providers", "config_dict", "telemetry_provider"}
)
_TELEMETRY_OPTIONS = TELEMETRY_OPTIONS


def positive_option(store: str, name: str, value: Any, parse: Any = float) -> Any:
    """``parse(value)`` if it is a number > 0, else a :class:`ConfigError` naming ``store``'s option ``name``."""
    try:
        out = parse(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{store} option {name!r} must be a positive number, got {value!r}") from None
    if out <= 0:
        raise ConfigError(f"{store} option {name!r} must be > 0, got {value!r}")
    return out


class ObjectWriter(Protocol):
    """A streaming upload: bytes are sent while written; visible only after :meth:`close`."""

    def write(self, data: Any) -> int:
        """Send ``data`` (bytes-like); returns its length."""

    def close(self) -> None:
        """Complete the upload (the object appears atomically)."""

    def abort(self) -> None:
        """Abandon the upload: no object, no dangling multipart upload."""


class BaseStorageProvider(StorageProvider):
    """Common base of the built-in providers.

    Subclasses set :attr:`provider_name` and the capability flags, and implement the
    primitive operations. Keys given to public methods are relative to ``base_path``.

    Attributes:
        provider_name: The config ``type`` name (``"file"``, ``"s3"``...).
        supports_conditional_writes: ``if_match``/``if_none_match`` are enforced
            (a server may still ignore them: see the support matrix in the docs).
        supports_server_side_copy: :meth:`copy_object` does not move bytes through the client.
        lexicographic_listing: :meth:`list_objects` yields keys in byte order.
        supports_upload_concurrency: :meth:`upload_file` takes ``max_concurrency=`` (parts
            uploaded in parallel for this call).
    """

    provider_name: ClassVar[str] = "base"
    supports_conditional_writes: ClassVar[bool] = True
    supports_server_side_copy: ClassVar[bool] = True
    lexicographic_listing: ClassVar[bool] = True
    supports_upload_concurrency: ClassVar[bool] = False
    #: User-metadata key of a symlink marker object (1.3.1's spelling for this store).
    symlink_attribute: ClassVar[str] = SYMLINK_ATTRIBUTE
    #: Keyword options this class's ``**kwargs`` accepts (see
    #: :func:`manystore.providers.accepted_options`); a subclass that validates its own
    #: ``**kwargs`` declares its full set here.
    OPTIONS: ClassVar[frozenset[str]] = _TELEMETRY_OPTIONS

    def __init__(self, base_path: str = "", **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - _TELEMETRY_OPTIONS)
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}: unknown option(s) {unknown}; "
                f"see the documented parameters of the {self.provider_name!r} provider"
            )
        if not isinstance(base_path, str):
            raise ConfigError(f"base_path must be a str, got {type(base_path).__name__}: {base_path!r}")
        self._base_path = base_path
        self._pid = os.getpid()
        if kwargs:  # only telemetry options are left: import the telemetry package only then
            from ..telemetry.direct import wire_provider

            wire_provider(self, kwargs)

    # ------------------------------------------------------------------ helpers
    @property
    def base_path(self) -> str:
        """The root (bucket/prefix, or directory) every key is relative to."""
        return self._base_path

    def _full_key(self, path: str) -> str:
        """``base_path`` joined with a normalised ``path`` (``..`` is refused)."""
        return join_key(self._base_path, path)

    @staticmethod
    def _rel_key(path: str) -> str:
        return normalize_key(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_path={self._base_path!r})"

    # --------------------------------------------------- derived operations
    def list_objects(
        self,
        path: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
        attribute_filter_expression: str | None = None,
        show_attributes: bool = False,
        symlink_handling: SymlinkHandling = SymlinkHandling.FOLLOW,
    ) -> Iterator[ObjectMetadata]:
        """Objects whose keys start with ``path`` (a raw key prefix), in key order.

        Args:
            path: Key prefix (``"data/"`` lists a directory; ``"data/x"`` also matches ``data/x1``).
            start_after: Exclusive lower bound on keys (need not exist).
            end_at: Inclusive upper bound on keys (need not exist).
            include_directories: List one level; sub-directories come as ``type="directory"``.
            attribute_filter_expression: Keep only files whose user metadata satisfies it
                (see :mod:`manystore.attribute_filter`); directories are then left out.
            show_attributes: Fill in each file's user metadata (a metadata request per file
                whose listing entry lacks it).
            symlink_handling: ``FOLLOW`` lists links as the store has them; ``SKIP`` leaves
                them out; ``PRESERVE`` sets ``symlink_target``; ``*_STRICT`` raise
                :class:`~manystore.errors.InvalidPathError` on a link leaving ``base_path``
                (others are left out). All but ``FOLLOW`` inspect each file (``lstat`` on
                POSIX, a HEAD per empty object elsewhere).

        Raises:
            ValueError: Invalid filter expression or unknown ``symlink_handling``.
        """
        entries = self._list_objects(path, start_after, end_at, include_directories)
        return apply_list_options(
            entries,
            attribute_filter_expression,
            show_attributes,
            symlink_handling,
            lambda key: self.get_object_metadata(key),
            self._listed_link_target,
        )

    def _listed_link_target(self, meta: ObjectMetadata) -> str | None:
        """The stored target if the listed ``meta`` is a symlink (object stores: an empty object
        whose user metadata names it; one HEAD when the listing lacks the metadata)."""
        if meta.symlink_target or meta.content_length != 0:
            return meta.symlink_target
        if meta.metadata is None:
            try:
                meta.metadata = self.get_object_metadata(meta.key).metadata
            except FileNotFoundError:
                return None
        return symlink_target_of(meta)

    def glob(self, pattern: str, attribute_filter_expression: str | None = None) -> list[str]:
        """Keys matching ``pattern``; lists only under the pattern's literal prefix.

        Args:
            pattern: Glob over keys (``*``, ``?``, ``[...]``, ``**``).
            attribute_filter_expression: Keep only objects whose user metadata satisfies it.
        """
        prefix = glob_literal_prefix(pattern)
        listing = self.list_objects(prefix, attribute_filter_expression=attribute_filter_expression)
        return list(filter_glob(pattern, listing))

    def is_file(self, path: str) -> bool:
        """True if an object exists at ``path``."""
        try:
            return self.get_object_metadata(path, strict=True).type == "file"
        except FileNotFoundError:
            return False

    def make_symlink(self, path: str, target: str) -> None:
        """Create a symlink at ``path`` to the key ``target``, stored relative to the link: an
        empty object whose user metadata :attr:`symlink_attribute` holds the target (the POSIX
        provider makes an OS symlink). An existing object at ``path`` is replaced.

        Raises:
            InvalidPathError: ``path`` or ``target`` lies outside ``base_path``.
        """
        link, dest = normalize_key(path), normalize_key(target)
        relative = ObjectMetadata.encode_symlink_target(link, dest)
        resolve_inside(link, relative)
        self.put_object(link, b"", attributes={self.symlink_attribute: relative})

    # ------------------------------------------------ primitive operations
    @abstractmethod
    def _list_objects(
        self,
        prefix: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """The plain listing behind :meth:`list_objects` (``prefix`` a raw key prefix)."""

    @abstractmethod
    def get_object(self, path: str, byte_range: Range | None = None, *, if_match: str | None = None) -> bytes:
        """Return the object's bytes (or a slice).

        Args:
            path: Key relative to ``base_path``.
            byte_range: Optional slice; a range past the end is clipped (POSIX semantics).
            if_match: Fail with :class:`manystore.errors.PreconditionFailedError` unless
                the object's ETag equals this value (pins reads to one version).
        """

    # ------------------------------------------------- optional operations
    def get_object_if_smaller(self, path: str, limit: int) -> bytes | int:
        """The object's bytes if it has at most ``limit`` bytes, else its size (bytes not kept).

        For callers that must bound memory without knowing sizes (Get-Batch). This default
        reads ``limit`` bytes with a ranged GET and, when they fill it, asks the size with a
        HEAD; providers whose whole GET tells the size before the body override it with one
        GET.

        Raises:
            ObjectNotFoundError: No such object.
        """
        data = self.get_object(path, Range(0, limit))
        if len(data) < limit:
            return data
        return self.get_object_metadata(path).content_length

    def local_path(self, path: str) -> str | None:
        """The local file path of ``path`` if this provider stores plain files, else ``None``."""
        return None

    def open_writer(self, path: str, retry: RetryConfig | None = None) -> ObjectWriter | None:
        """A streaming writer for a new object at ``path``, or ``None`` if the provider has none
        (the client then spools the bytes and stores them with one call on close)."""
        return None

    def can_copy_from(self, source: BaseStorageProvider) -> bool:
        """Whether :meth:`copy_from` works from ``source``: both name the same store (the same
        S3 endpoint and bucket, the same GCS endpoint, or the local file system)."""
        return False

    def copy_from(self, source: BaseStorageProvider, src_path: str, dest_path: str) -> None:
        """Copy ``src_path`` of another provider ``source`` to ``dest_path`` here, server-side:
        the bytes never pass through this process. Only when :meth:`can_copy_from` is true.

        Raises:
            NotImplementedError: Not the same store.
            ObjectNotFoundError: ``src_path`` does not exist.
        """
        raise NotImplementedError(f"{self!r} cannot copy server-side from {source!r}")

    def generate_presigned_url(
        self,
        path: str,
        *,
        method: str = "GET",
        signer_type: SignerType | None = None,
        signer_options: dict[str, Any] | None = None,
    ) -> str:
        """A URL that grants ``method`` on ``path`` without credentials, for a limited time.

        Args:
            path: Key relative to ``base_path``.
            method: HTTP method the URL authorises (``GET``, ``HEAD``, ``PUT``, ``DELETE``).
            signer_type: Signing backend; ``None`` is the store's own.
            signer_options: ``{"expires_in": seconds}`` (default 3600).

        Raises:
            NotImplementedError: This provider cannot sign URLs.
        """
        raise NotImplementedError(
            f"{self!r}: the {self.provider_name!r} provider cannot generate presigned URLs"
        )

    def reap_temp_files(self, prefix: str) -> int:
        """Remove temporary files that dead writers left under ``prefix``; returns how many.

        Only POSIX keeps such files (a killed process's temp file beside its target);
        object stores write atomically with one request or a multipart upload.
        """
        return 0

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (a directory-like prefix ending in ``/``).

        Returns:
            The number of objects deleted.
        """
        count = 0
        for meta in list(self._list_objects(prefix)):
            try:
                self.delete_object(meta.key)
                count += 1
            except FileNotFoundError:
                pass
        return count


def presign_request(
    provider: BaseStorageProvider,
    method: str,
    signer_type: SignerType | str | None,
    signer_options: dict[str, Any] | None,
    native: SignerType | None,
) -> tuple[str, int]:
    """Check the arguments of ``generate_presigned_url``: ``(METHOD, expires_in seconds)``.

    Args:
        provider: The provider signing (named in errors).
        method: HTTP method requested.
        signer_type: Requested signer; must be ``None`` or ``native``.
        signer_options: Only ``expires_in`` (a positive int of seconds) is understood.
        native: The provider's own signer type (``None``: the provider has no signer type).

    Raises:
        ValueError: Unknown method, signer type or option, or a bad ``expires_in``.
    """
    verb = method.upper() if isinstance(method, str) else ""
    if verb not in _PRESIGN_METHODS:
        raise ValueError(f"presigned URL method must be one of {sorted(_PRESIGN_METHODS)}, got {method!r}")
    if signer_type is not None:
        try:
            wanted = SignerType(signer_type)
        except ValueError:
            raise ValueError(
                f"unknown signer_type {signer_type!r}; expected one of {[t.value for t in SignerType]}"
            ) from None
        if wanted is not native:
            expected = f"None or {native.value!r}" if native is not None else "None"
            raise ValueError(
                f"{provider!r}: signer_type {wanted.value!r} is not supported; expected {expected}"
            )
    options = dict(signer_options or {})
    expires_in = options.pop("expires_in", DEFAULT_PRESIGN_EXPIRES_IN)
    if options:
        raise ValueError(f"unknown signer_options {sorted(options)}; only 'expires_in' is supported")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
        raise ValueError(f"signer_options expires_in must be a positive int of seconds, got {expires_in!r}")
    return verb, expires_in


def check_put_conditions(if_match: str | None, if_none_match: str | None) -> None:
    """Refuse write conditions no backend supports.

    Raises:
        ValueError: ``if_none_match`` other than ``"*"``, or both conditions given.
    """
    if if_none_match is not None and if_none_match != "*":
        raise ValueError(f"if_none_match supports only '*', got {if_none_match!r}")
    if if_none_match is not None and if_match is not None:
        raise ValueError("if_match and if_none_match cannot be combined")


class SdkClientSlot:
    """Mixin: one SDK client per process, built lazily by ``_build_client`` (again after a
    fork, whose child must not share the parent's connections), dropped when pickled."""

    _client: Any = None
    _client_pid: int = -1
    _client_lock: threading.Lock | None = None
    _client_lock_pid: int = -1

    def _build_client(self) -> Any:
        raise NotImplementedError

    def _sdk_client(self) -> Any:
        """This process's client."""
        pid = os.getpid()
        client = self._client
        if client is not None and self._client_pid == pid:
            return client
        if self._client_lock is None or self._client_lock_pid != pid:  # forked: the lock may be held
            self._client_lock, self._client_lock_pid = threading.Lock(), pid
        with self._client_lock:
            if self._client is None or self._client_pid != pid:
                self._client = self._build_client()
                self._client_pid = pid
            return self._client

    def _reset_client(self) -> None:
        """Build a new client on next use (e.g. after the credentials changed)."""
        self._client_pid = -1

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_client", "_client_pid", "_client_lock", "_client_lock_pid"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class BucketStorageProvider(BaseStorageProvider):
    """Base of the object-store providers: ``base_path`` is ``bucket`` or ``bucket/prefix``.

    Subclasses set ``self._bucket`` and ``self._root`` (the normalised prefix, no trailing
    ``/``) in ``__init__`` and :attr:`url_scheme`; keys, relative keys and URLs follow here.
    """

    url_scheme: ClassVar[str] = ""
    _bucket: str
    _root: str

    @property
    def bucket(self) -> str:
        """The bucket (container) name taken from ``base_path``."""
        return self._bucket

    def _full_key(self, path: str) -> str:
        """Object key inside the bucket for ``path`` (relative to ``base_path``); ``..`` is refused."""
        return join_key(self._root, path)

    def _rel(self, key: str) -> str:
        """``key`` relative to ``base_path``."""
        return key[len(self._root) + 1 :] if self._root else key

    def _url(self, key: str) -> str:
        """``scheme://bucket/key`` of an object key, for messages and listings."""
        return f"{self.url_scheme}://{self._bucket}/{key}"

    def download_file(self, remote_path: str, f: str | IO, metadata: ObjectMetadata | None = None) -> None:
        """Download into a local path (atomically: a temp file beside it, renamed when complete;
        removed on failure) or into a binary file object (see :meth:`_download_into`)."""
        if not isinstance(f, (str, os.PathLike)):
            self._download_into(remote_path, f, metadata)
            return
        target = os.path.abspath(f)
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = temp_file_beside(target)
        try:
            with os.fdopen(fd, "wb") as fh:
                self._download_into(remote_path, fh, metadata)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @abstractmethod
    def _download_into(self, remote_path: str, fh: IO, metadata: ObjectMetadata | None = None) -> None:
        """Write the object's bytes to the binary file object ``fh`` (backend-specific)."""
