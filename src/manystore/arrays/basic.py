"""``BasicInterface``: cottoncandy's object calls (upload/download, json, pickle, sizes)."""

from __future__ import annotations

import io
import json
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from ..types import ObjectMetadata
from ._base import DEFAULT_ACL, THREADS, InterfaceBase
from ._streams import ChunkStream

#: Default read size of :meth:`BasicInterface.mpu_fileobject` (cottoncandy's 100 MB).
MPU_BUFFERSIZE = 100 * 2**20


@dataclass
class CloudStream:
    """An object being downloaded: ``content`` (a streaming binary reader) and its user ``metadata``."""

    content: BinaryIO
    metadata: dict[str, str] = field(default_factory=dict)


class BasicInterface(InterfaceBase):
    """cottoncandy's basic interface: objects, JSON and pickles under a key prefix.

    ``download_pickle`` unpickles only trusted data: pass ``trusted=True`` or set
    :attr:`allow_pickle` on the interface (unpickling runs arbitrary code).
    """

    #: Let ``download_pickle`` unpickle without ``trusted=True`` (off: never unpickle by default).
    allow_pickle: bool = False

    # -------------------------------------------------------------- buckets
    @property
    def bucket_name(self) -> str:
        """The location objects are relative to (``s3://bucket/prefix/``, a directory, …)."""
        return f"{self.client.url_prefix}{self.prefix}"

    def pathjoin(self, a: str, *p: str) -> str:
        """Join object-name parts with ``/`` (cottoncandy's ``pathjoin``)."""
        path = a
        for part in p:
            path = part if part.startswith("/") else (path.rstrip("/") + "/" + part if path else part)
        return path

    def exists_bucket(self, bucket_name: str) -> bool:
        """True if ``bucket_name`` is this interface's location and it can be listed.

        Raises:
            ValueError: ``bucket_name`` is another location (use another interface for it).
        """
        if bucket_name.strip("/") not in (self.bucket_name.strip("/"), self.prefix.strip("/")):
            raise ValueError(f"bucket {bucket_name!r}: expected this interface's {self.bucket_name!r}")
        try:
            next(iter(self.client.list(self.prefix)), None)
        except (FileNotFoundError, PermissionError):
            return False
        return True

    def create_bucket(self, bucket_name: str, acl: str = DEFAULT_ACL) -> None:
        """Refused: manystore's providers cannot create buckets (use the store's own tools).

        Raises:
            NotImplementedError: Always (after checking ``acl``), naming the provider.
        """
        self._check_acl(acl)
        provider = type(self.client.config.storage_provider).__name__
        raise NotImplementedError(
            f"create_bucket({bucket_name!r}): {provider} cannot create buckets; create it with the store's own tools"
        )

    def rm_bucket(self, bucket_name: str) -> None:
        """Refused: manystore does not remove buckets (use the store's own tools).

        Raises:
            ValueError: Always.
        """
        raise ValueError(f"rm_bucket({bucket_name!r}): manystore does not remove buckets")

    def set_bucket(self, bucket_name: str) -> None:
        """Move the interface to the prefix ``bucket_name`` of the same profile."""
        prefix = bucket_name.strip("/")
        self.prefix = prefix + "/" if prefix else ""

    def get_bucket(self) -> Any:
        """The :class:`~manystore.client.StorageClient` holding the objects."""
        return self.client

    def show_buckets(self) -> None:
        """Print this interface's location (the only "bucket" it sees)."""
        print(self.bucket_name)

    def get_objects(self, **kwargs: Any) -> Iterator[ObjectMetadata]:
        """Objects under the interface's location (``prefix=`` narrows it; keys relative)."""
        prefix = kwargs.pop("prefix", "") or kwargs.pop("Prefix", "")
        if kwargs:
            raise TypeError(f"get_objects() got unexpected arguments {sorted(kwargs)}; expected prefix=")
        return self._list(prefix)

    def get_bucket_objects(self, **kwargs: Any) -> Iterator[ObjectMetadata]:
        """Deprecated name of :meth:`get_objects`."""
        return self.get_objects(**kwargs)

    def get_size(self) -> int:
        """Total bytes of the objects under the interface's location."""
        return sum(m.content_length for m in self._list(""))

    def get_bucket_size(self, limit: int = 10**6, page_size: int = 10**6) -> int:
        """Total bytes of the first ``limit`` objects (``page_size`` is accepted for cottoncandy)."""
        total = 0
        for count, meta in enumerate(self._list("")):
            if count >= limit:
                break
            total += meta.content_length
        return total

    def show_objects(self, limit: int = 1000, page_size: int = 1000) -> None:
        """Print up to ``limit`` objects: name, size, last modified."""
        for count, meta in enumerate(self._list("")):
            if count >= limit:
                break
            print(f"{meta.key}\t{meta.content_length}\t{meta.last_modified}")

    # -------------------------------------------------------------- objects
    def exists_object(
        self, object_name: str, bucket_name: str | None = None, raise_err: bool = False
    ) -> bool:
        """True if ``object_name`` exists.

        Raises:
            FileNotFoundError: It does not and ``raise_err`` is set.
            ValueError: ``bucket_name`` is another location.
        """
        if bucket_name is not None:
            self.exists_bucket(bucket_name)
        exists = self._exists(object_name)
        if raise_err and not exists:
            raise FileNotFoundError(f"object not found: {object_name!r} under {self.bucket_name}")
        return exists

    def get_object(self, object_name: str, bucket_name: str | None = None) -> ObjectMetadata:
        """The object's metadata (size, etag, user metadata)."""
        if bucket_name is not None:
            self.exists_bucket(bucket_name)
        meta = self.client.info(self._key(object_name))
        meta.metadata = self._metadata(object_name)
        return meta

    def upload_object(
        self,
        object_name: str,
        body: bytes | bytearray | memoryview | IO[bytes] | BinaryIO,
        acl: str = DEFAULT_ACL,
        threads: int = THREADS,
        **metadata: Any,
    ) -> None:
        """Store ``body`` (bytes or a binary file object, streamed) with user ``metadata``."""
        self._check_acl(acl)
        self._check_threads(threads)
        self._put(object_name, body, {k: str(v) for k, v in metadata.items()}, threads=threads)

    def download_stream(self, object_name: str, threads: int = THREADS) -> CloudStream:
        """A :class:`CloudStream`: the object's streaming reader and its metadata."""
        self._check_threads(threads)
        metadata = self._metadata(object_name)
        return CloudStream(self._open(object_name), metadata)

    def download_object(self, object_name: str, threads: int = THREADS) -> bytes | bytearray:
        """The object's bytes (parallel ranged GETs for large objects, ``threads`` at a time)."""
        size = self._size(object_name)
        buffer = bytearray(size)
        self._readinto(object_name, memoryview(buffer), threads)
        return bytes(buffer) if size <= 2**20 else buffer  # large: no second copy

    def upload_from_file(
        self,
        flname: str,
        object_name: str | None = None,
        ExtraArgs: dict[str, Any] | None = None,
        threads: int = THREADS,
    ) -> None:
        """Upload the local file ``flname`` (streamed) as ``object_name`` (default: its path).

        Raises:
            ValueError: ``ExtraArgs`` holds anything but ``ACL`` (checked as ``acl=``).
        """
        extra = dict(ExtraArgs or {"ACL": DEFAULT_ACL})
        self._check_acl(extra.pop("ACL", DEFAULT_ACL))
        if extra:
            raise ValueError(f"ExtraArgs keys {sorted(extra)} are not supported; expected only 'ACL'")
        self._check_threads(threads)
        if not os.path.isfile(flname):
            raise FileNotFoundError(f"local file {flname!r} does not exist")
        with open(flname, "rb") as fh:
            self._put(object_name or flname, fh, {}, threads=threads)

    def download_to_file(self, object_name: str, file_name: str, threads: int = THREADS) -> None:
        """Write the object to the local ``file_name`` (parent directories made)."""
        self._check_threads(threads)
        os.makedirs(os.path.dirname(os.path.abspath(file_name)), exist_ok=True)
        with self._open(object_name) as src, open(file_name, "wb") as dst:
            while chunk := src.read(8 * 2**20):
                dst.write(chunk)

    def mpu_fileobject(
        self,
        object_name: str,
        file_object: IO[bytes] | BinaryIO,
        buffersize: int = MPU_BUFFERSIZE,
        verbose: bool = True,
        acl: str = DEFAULT_ACL,
        **metadata: Any,
    ) -> None:
        """Upload ``file_object`` (from its current position) as a streamed multipart upload.

        Args:
            object_name: Name of the object.
            file_object: Binary file-like object with ``read``.
            buffersize: Bytes read from ``file_object`` per step (the part size of the
                upload is the profile's ``multipart_chunksize``).
            verbose: Print the object's name and size when done.
            acl: See :meth:`InterfaceBase._check_acl`.
            **metadata: User metadata.
        """
        self._check_acl(acl)
        if isinstance(buffersize, bool) or not isinstance(buffersize, int) or buffersize < 1:
            raise ValueError(f"buffersize={buffersize!r}: expected a positive number of bytes")
        start = file_object.tell() if file_object.seekable() else None

        def chunks() -> Iterator[bytes]:
            if start is not None:
                file_object.seek(start)
            while chunk := file_object.read(buffersize):
                yield chunk

        self._put(object_name, ChunkStream(chunks), {k: str(v) for k, v in metadata.items()})
        if verbose:
            print(f"uploaded {object_name!r} ({self._size(object_name)} bytes)")

    # ---------------------------------------------------------- json/pickle
    def upload_json(
        self, object_name: str, ddict: Any, acl: str = DEFAULT_ACL, threads: int = 1, **metadata: Any
    ) -> None:
        """Store ``ddict`` as JSON (``json.dumps``, as cottoncandy)."""
        self.upload_object(object_name, json.dumps(ddict).encode(), acl, threads, **metadata)

    def download_json(self, object_name: str, threads: int = 1) -> Any:
        """The JSON object ``object_name``, decoded."""
        self.exists_object(object_name, raise_err=True)
        return json.loads(bytes(self.download_object(object_name, threads)).decode())

    def upload_pickle(
        self,
        object_name: str,
        data_object: Any,
        acl: str = DEFAULT_ACL,
        threads: int = THREADS,
        **metadata: Any,
    ) -> None:
        """Store ``data_object`` pickled (``pickle.dumps``, as cottoncandy)."""
        self.upload_object(object_name, pickle.dumps(data_object), acl, threads, **metadata)

    def download_pickle(self, object_name: str, threads: int = THREADS, *, trusted: bool = False) -> Any:
        """Unpickle ``object_name`` — only when its source is trusted.

        Unpickling runs arbitrary code, so it happens only with ``trusted=True`` or the
        interface's :attr:`allow_pickle` set.

        Raises:
            PermissionError: Neither ``trusted`` nor ``allow_pickle``.
        """
        if not (trusted or self.allow_pickle):
            raise PermissionError(
                f"download_pickle({object_name!r}): refusing to unpickle (it runs arbitrary code); "
                "expected trusted=True or interface.allow_pickle = True for data you trust"
            )
        self.exists_object(object_name, raise_err=True)
        return pickle.load(io.BytesIO(self.download_object(object_name, threads)))
