"""The storage primitives every part of :mod:`manystore.arrays` is built on.

:class:`InterfaceBase` holds a :class:`~manystore.client.StorageClient` and a key prefix
(the "bucket" of cottoncandy's interface: object names are relative to it). Its
underscore methods are the only way the interface classes touch storage, so
:class:`~manystore.arrays.crypto.EncryptedInterface` can override them to encrypt:

* ``_put`` streams a body (bytes, a buffer or a binary file) with user metadata;
* ``_get``, ``_open`` and ``_readinto`` read whole, streamed or straight into a buffer
  (parallel ranged GETs for large objects);
* ``_metadata``, ``_exists``, ``_size``, ``_list``, ``_copy``, ``_delete`` as named.

On a local directory (the POSIX provider keeps no user metadata) the metadata is kept in
the sidecar described in :mod:`manystore.arrays._meta`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, BinaryIO, cast

from ..client import StorageClient
from ..providers.base import BaseStorageProvider
from ..types import ObjectMetadata, Range
from ._meta import decode_sidecar, encode_sidecar, is_sidecar, sidecar_name
from ._streams import BlockSource, BufferReader

#: cottoncandy's default ACL; the only one accepted (see :meth:`InterfaceBase._check_acl`).
DEFAULT_ACL = "authenticated-read"
#: Default number of parallel requests of one call (cottoncandy's default).
THREADS = 4
#: Bodies up to this size are stored with one write of their bytes; larger ones stream.
SMALL_PUT = 8 * 2**20
#: Ranged-GET part size of a parallel download.
RANGE_CHUNK = 8 * 2**20


class InterfaceBase:
    """A key prefix on one storage client, with the primitives the interfaces use.

    Two forms: ``Interface(client, prefix="", threads=...)`` over a manystore
    :class:`~manystore.client.StorageClient`, and cottoncandy's ``Interface(bucket_name,
    ACCESS_KEY, SECRET_KEY, url=None, force_bucket_creation=False, verbose=True,
    backend='s3', **kwargs)``, which resolves its target as
    :func:`~manystore.arrays.interface.get_interface` does.

    Args:
        client: The client of the profile holding the objects, or (cottoncandy's form) a
            bucket name, directory or URL.
        prefix: Key prefix of the "bucket" (``""`` for the profile's root; a trailing
            ``/`` is added); in cottoncandy's form, the ``ACCESS_KEY``.
        SECRET_KEY: cottoncandy's form only.
        url: cottoncandy's form only: the S3 endpoint.
        force_bucket_creation: cottoncandy's form only (see ``get_interface``).
        verbose: cottoncandy's form only: print the location once built.
        backend: cottoncandy's form only: ``'s3'`` or ``'local'``.
        threads: Default number of parallel requests per call (``threads=`` overrides it).
        **kwargs: cottoncandy's form only: ``get_interface``'s keywords (``config=``, ...).

    Raises:
        TypeError: A client of another type, or cottoncandy's arguments with a client.
    """

    client: StorageClient
    prefix: str
    threads: int

    def __init__(
        self,
        client: StorageClient | str,
        prefix: str | None = "",
        SECRET_KEY: str | None = None,
        url: str | None = None,
        force_bucket_creation: bool = False,
        verbose: bool = True,
        backend: str = "s3",
        *,
        threads: int = THREADS,
        **kwargs: Any,
    ) -> None:
        if isinstance(client, str):
            # cottoncandy's form: Interface(bucket_name, ACCESS_KEY, SECRET_KEY, url=None,
            # force_bucket_creation=False, verbose=True, backend='s3', **kwargs) — the same
            # targets and keywords as get_interface.
            from .interface import get_interface

            resolved = get_interface(
                client,
                prefix or kwargs.pop("ACCESS_KEY", None),
                SECRET_KEY,
                url or kwargs.pop("endpoint_url", None),
                force_bucket_creation,
                verbose,
                backend,
                threads=threads,
                **kwargs,
            )
            client, prefix = resolved.client, resolved.prefix
        elif not isinstance(client, StorageClient):
            raise TypeError(
                f"client must be a manystore StorageClient or a bucket name/URL, got {type(client).__name__}"
            )
        elif SECRET_KEY is not None or url is not None or force_bucket_creation or kwargs:
            extra = sorted(kwargs) or [
                "SECRET_KEY" if SECRET_KEY is not None else "url or force_bucket_creation"
            ]
            raise TypeError(f"{extra[0]} does not go with a StorageClient; pass the client and a key prefix")
        prefix = prefix or ""
        self.client = client
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.threads = self._check_threads(threads)
        provider = client.config.storage_provider
        self._local = isinstance(provider, BaseStorageProvider) and provider.local_path("") is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{self.client.url_prefix}{self.prefix}>)"

    # -------------------------------------------------------------- helpers
    @property
    def uses_sidecars(self) -> bool:
        """True when user metadata is kept in ``.meta.json`` sidecars (POSIX)."""
        return self._local

    def _key(self, name: str) -> str:
        name = name.lstrip("/")
        if not name:
            raise ValueError("object name is empty; expected a name like 'dir/array'")
        return self.prefix + name

    def _name(self, key: str) -> str:
        return key[len(self.prefix) :] if key.startswith(self.prefix) else key

    @staticmethod
    def _check_threads(threads: int) -> int:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r}: expected a positive integer")
        return threads

    @staticmethod
    def _check_acl(acl: str | None) -> None:
        """Accept cottoncandy's default ACL; refuse any other.

        No backend here sets per-object ACLs: access is the bucket's policy and the
        credentials'. The default (``'authenticated-read'``, or ``None``) therefore means
        "the store's own access rules" and works everywhere; another ACL cannot be applied,
        so it raises instead of being silently ignored.

        Raises:
            ValueError: ``acl`` is not the default.
        """
        if acl not in (DEFAULT_ACL, None):
            raise ValueError(
                f"acl={acl!r}: per-object ACLs cannot be applied on this backend; "
                f"expected {DEFAULT_ACL!r} (the default: the bucket's own access rules)"
            )

    # ---------------------------------------------------------------- write
    def _put(
        self,
        name: str,
        body: bytes | bytearray | memoryview | IO[bytes] | BinaryIO | io.RawIOBase,
        metadata: Mapping[str, str] | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        """Store ``body`` at ``name`` with user ``metadata``.

        A buffer up to ``SMALL_PUT`` bytes is written with one request; a larger buffer
        or a file object streams (multipart above the profile's threshold), ``threads``
        parts at a time (default: the interface's ``threads``; see :meth:`_upload_threads`)
        — a buffer is served without copying it. On POSIX the metadata goes to the sidecar
        (a stale sidecar is removed when ``metadata`` is empty).

        Raises:
            ValueError: ``threads`` the store cannot apply (see :meth:`_upload_threads`).
        """
        key = self._key(name)
        concurrency = self._upload_threads(threads)
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        attributes = None if self._local or not meta else meta
        if isinstance(body, (bytes, bytearray, memoryview)):
            view = memoryview(body)
            nbytes = view.nbytes
            if nbytes <= SMALL_PUT:
                self.client.write(key, view.tobytes() if not isinstance(body, bytes) else body, attributes)
            else:
                self._upload(key, cast("IO[bytes]", BufferReader(view)), attributes, concurrency)
        else:
            self._upload(key, cast("IO[bytes]", body), attributes, concurrency)
        if self._local:
            side = sidecar_name(key)
            if meta:
                self.client.write(side, encode_sidecar(meta))
            elif self.client.is_file(side):
                self.client.delete(side)

    def _upload(
        self, key: str, body: IO[bytes], attributes: dict[str, str] | None, concurrency: int | None
    ) -> None:
        if concurrency is None:
            self.client.upload_file(key, body, attributes)
        else:
            self.client.upload_file(key, body, attributes, max_concurrency=concurrency)

    def _upload_threads(self, threads: int | None) -> int | None:
        """The multipart concurrency of an upload with ``threads`` (``None``: the interface's).

        On stores that upload parts in parallel (S3-compatible, Azure) it is ``threads``. On
        the others (POSIX files, GCS's sequential resumable uploads) one part is sent at a
        time: ``threads=1`` and the defaults are accepted there (``None`` is
        returned: nothing to set), any other value raises.

        Raises:
            ValueError: ``threads`` is not a positive integer, or above 1 on a store that
                uploads sequentially.
        """
        threads = self._check_threads(self.threads if threads is None else threads)
        provider = self.client.config.storage_provider
        if getattr(provider, "supports_upload_concurrency", False):
            return threads
        if threads not in (1, THREADS, self.threads):
            raise ValueError(
                f"threads={threads}: {type(provider).__name__} uploads one part at a time; "
                f"expected 1 or the default ({THREADS}, or the interface's {self.threads})"
            )
        return None

    # ----------------------------------------------------------------- read
    def _get(self, name: str) -> bytes:
        """The bytes of ``name``."""
        return self.client.read(self._key(name))

    def _open(self, name: str) -> BinaryIO:
        """A streaming binary reader of ``name`` (ranged reads; not fetched whole)."""
        return self.client.open(self._key(name), "rb", prefetch_file=False)  # type: ignore[return-value]

    def _local_file(self, key: str) -> str | None:
        """The file behind ``key`` on a POSIX profile, else None."""
        provider = self.client.config.storage_provider
        if self._local and isinstance(provider, BaseStorageProvider):
            return provider.local_path(key)
        return None

    def _compressed(self, name: str, threads: int | None = None) -> Any:
        """A reader of ``name`` for a decompressor (a context manager with ``read(n)``).

        Objects larger than ``RANGE_CHUNK`` come through a :class:`BlockSource`: ``threads``
        ranged GETs in flight, in order, each pinned to the version seen first; a local
        file is opened directly.
        """
        key = self._key(name)
        local = self._local_file(key)
        if local is not None:
            return open(local, "rb")  # the caller closes it (a context manager)
        meta = self.client.info(key)
        size, etag = meta.content_length, meta.etag
        if size <= RANGE_CHUNK:
            return io.BytesIO(self.client.read(key) if size else b"")
        fetch_range = self.client._io.get_range

        def fetch(offset: int, length: int) -> bytes:
            return fetch_range(key, Range(offset, length), etag)

        return BlockSource(fetch, size, RANGE_CHUNK, self._check_threads(threads or self.threads))

    def _size(self, name: str) -> int:
        """The stored size of ``name`` in bytes."""
        return self.client.info(self._key(name)).content_length

    def _readinto(self, name: str, buffer: memoryview, threads: int | None = None) -> int:
        """Read ``name`` into ``buffer`` (at least its size); returns the bytes read.

        Objects larger than ``RANGE_CHUNK`` are read with parallel ranged GETs
        (``threads`` at a time); a local file is read straight into the buffer.

        Raises:
            ValueError: The object is larger than the buffer.
        """
        key = self._key(name)
        out = memoryview(buffer).cast("B") if memoryview(buffer).format != "B" else memoryview(buffer)
        local = self._local_file(key)
        if local is not None:
            with open(local, "rb", buffering=0) as fh:
                size = os.fstat(fh.fileno()).st_size
                self._check_fits(name, size, len(out))
                done = 0
                while done < size and (n := fh.readinto(out[done:size])):
                    done += n
                return done
        meta = self.client.info(key)
        size, etag = meta.content_length, meta.etag
        self._check_fits(name, size, len(out))
        if size <= RANGE_CHUNK:
            data = self.client.read(key) if size else b""
            out[: len(data)] = data
            return len(data)
        # Every part pinned to the version seen first (as the client's own ranged reads are):
        # a replaced object raises PreconditionFailedError instead of mixing two versions.
        fetch_range = self.client._io.get_range

        def fetch(offset: int) -> int:
            length = min(RANGE_CHUNK, size - offset)
            data = fetch_range(key, Range(offset, length), etag)
            out[offset : offset + len(data)] = data
            return len(data)

        workers = self._check_threads(threads or self.threads)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(fetch, range(0, size, RANGE_CHUNK)))

    @staticmethod
    def _check_fits(name: str, size: int, capacity: int) -> None:
        if size > capacity:
            raise ValueError(f"object {name!r} has {size} bytes; expected at most {capacity} (the buffer)")

    def _metadata(self, name: str) -> dict[str, str]:
        """The user metadata of ``name`` (HEAD, or the sidecar on POSIX).

        Raises:
            FileNotFoundError: No object ``name``.
        """
        key = self._key(name)
        if self._local:
            if not self.client.is_file(key):
                raise FileNotFoundError(
                    f"object {name!r} not found under {self.client.url_prefix}{self.prefix}"
                )
            side = sidecar_name(key)
            try:
                return decode_sidecar(self.client.read(side), side)
            except FileNotFoundError:
                return {}
        return dict(self.client.info(key).metadata or {})

    def _exists(self, name: str) -> bool:
        """True if the object ``name`` exists (a prefix is not an object)."""
        return self.client.is_file(self._key(name))

    def _list(self, prefix: str = "", delimiter: str | None = None) -> Iterator[ObjectMetadata]:
        """Objects (and, with ``delimiter="/"``, sub-directories) under ``prefix``.

        Keys are relative to the interface's prefix; sidecars are left out.

        Raises:
            ValueError: ``delimiter`` is neither ``None`` nor ``"/"``.
        """
        if delimiter not in (None, "/"):
            raise ValueError(f"delimiter={delimiter!r}: expected None or '/'")
        for meta in self.client.list(self.prefix + prefix.lstrip("/"), include_directories=delimiter == "/"):
            if meta.type == "file" and is_sidecar(meta.key):
                continue
            meta.key = self._name(meta.key)
            yield meta

    # ----------------------------------------------------------- mutations
    def _copy(self, src: str, dest: str) -> None:
        """Copy ``src`` to ``dest`` (server-side where supported), with its metadata."""
        self.client.copy(self._key(src), self._key(dest))
        if self._local:
            side = sidecar_name(self._key(src))
            if self.client.is_file(side):
                self.client.copy(side, sidecar_name(self._key(dest)))
            elif self.client.is_file(sidecar_name(self._key(dest))):
                self.client.delete(sidecar_name(self._key(dest)))

    def _delete(self, name: str) -> None:
        """Delete ``name`` (and its sidecar on POSIX)."""
        self.client.delete(self._key(name))
        if self._local and self.client.is_file(sidecar_name(self._key(name))):
            self.client.delete(sidecar_name(self._key(name)))
