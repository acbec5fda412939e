"""``EncryptedInterface``: cottoncandy's interface with every object sealed (AES-256-GCM).

It overrides the storage primitives of :class:`~manystore.arrays._base.InterfaceBase`, so
everything any method uploads — objects, raw and ``.npy`` arrays, JSON, pickles, files,
dask chunks, sparse parts — is ciphertext at rest, and everything it downloads is
authenticated before it is returned. The format (chunks, data keys, metadata) is in
:mod:`manystore.arrays._seal` and ``docs/arrays.md``, "Encryption".
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, BinaryIO, cast

from ..client import StorageClient
from ..errors import IntegrityError
from ..types import ObjectMetadata, Range
from . import _seal
from ._base import RANGE_CHUNK, SMALL_PUT, THREADS
from ._keys import KeyRing, generate_key, load_key
from ._seal import META_KEYS, TAG_SIZE, Header
from .interface import DefaultInterface, get_interface

__all__ = ["EncryptedInterface", "KeyRing", "generate_key", "load_key"]


class EncryptedInterface(DefaultInterface):
    """An interface that encrypts everything it uploads and authenticates everything it reads.

    Each object gets a fresh random 256-bit data key; its body is sealed with AES-256-GCM in
    1 MiB chunks (streamed both ways: no second copy of a large array), and the data key is
    wrapped by the user's AES key or RSA public key. The object's metadata carries the
    algorithm, the key id (a fingerprint), the wrapped data key and the sealing parameters;
    the user metadata (``dtype``, ``shape``...) stays readable but is authenticated.

    Args:
        bucket: What :func:`~manystore.arrays.get_interface` takes as ``target`` (a URL
            prefix, a local directory, a bucket name) or a
            :class:`~manystore.client.StorageClient` (then ``access`` is the key prefix).
        access: S3 access key for a bucket name (cottoncandy's ``ACCESS_KEY``); with a
            ``StorageClient``, the key prefix.
        secret: S3 secret key (cottoncandy's ``SECRET_KEY``).
        url: S3 endpoint URL (cottoncandy's ``endpoint_url``).
        encryption: ``"AES"`` (a shared secret key) or ``"RSA"`` (a key pair).
        key: AES: 16, 24 or 32 bytes (or their hex/base64 text). RSA: the path of a PEM key
            file (as in cottoncandy), PEM bytes, or a ``cryptography`` RSA key object. A
            public key alone can upload but not download. Make one with :func:`generate_key`.
        threads: Default number of parallel requests per call.
        **kwargs: Further keywords of :func:`~manystore.arrays.get_interface`
            (``force_bucket_creation``, ``backend``, ``region_name``, ``verbose``...).

    Raises:
        ValueError: An unknown ``encryption`` or a missing, malformed or too short key.

    Errors when reading: :class:`~manystore.errors.WrongKeyError` (another key sealed the
    object, or only an RSA public key was given) and :class:`~manystore.errors.IntegrityError`
    (the object or its metadata was altered, truncated or reordered, or it is not
    encrypted). Neither ever contains a key.
    """

    def __init__(
        self,
        bucket: str | StorageClient,
        access: str | None = None,
        secret: str | None = None,
        url: str | None = None,
        encryption: str = "AES",
        key: Any = None,
        *,
        threads: int = THREADS,
        **kwargs: Any,
    ) -> None:
        keys = load_key(encryption, key)  # first: a bad key fails before any request
        if isinstance(bucket, StorageClient):
            if secret is not None or url is not None or kwargs:
                extra = sorted(kwargs) or ["secret" if secret is not None else "url"]
                raise ValueError(
                    f"{extra[0]}= does not go with a StorageClient; pass the client and a prefix"
                )
            super().__init__(bucket, access or "", threads=threads)
        else:
            # get_interface's spelling (ACCESS_KEY=, SECRET_KEY=, endpoint_url=) works too.
            access = _one_of("access", access, "ACCESS_KEY", kwargs.pop("ACCESS_KEY", None))
            secret = _one_of("secret", secret, "SECRET_KEY", kwargs.pop("SECRET_KEY", None))
            url = _one_of("url", url, "endpoint_url", kwargs.pop("endpoint_url", None))
            kwargs.setdefault("verbose", False)
            plain = get_interface(bucket, access, secret, url, threads=threads, **kwargs)
            super().__init__(plain.client, plain.prefix, threads=threads)
        self._keys = keys

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(<{self.client.url_prefix}{self.prefix}>, "
            f"{self._keys.algorithm} key id {self._keys.key_id})"
        )

    @property
    def encryption(self) -> str:
        """``"AES"`` or ``"RSA"``."""
        return self._keys.algorithm

    @property
    def key_id(self) -> str:
        """Fingerprint of the user key (stored with every object; reveals nothing of the key)."""
        return self._keys.key_id

    # ---------------------------------------------------------------- write
    def _put(
        self,
        name: str,
        body: bytes | bytearray | memoryview | IO[bytes] | BinaryIO | io.RawIOBase,
        metadata: Mapping[str, str] | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        """Seal ``body`` and store it at ``name``: small bodies in one request, others streamed.

        The user ``metadata`` is stored as given (readable) and bound to the ciphertext;
        ``threads`` is the upload's part concurrency, as for the plain interface.
        """
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        clash = sorted(k for k in meta if k.lower() in META_KEYS)
        if clash:
            raise ValueError(f"metadata name {clash[0]!r} is reserved for the encryption header")
        size = _seal.body_size(body)
        header, chunker = _seal.seal_header(self._keys, size, meta, name)
        sealed = _SealedBody(body, chunker, header.chunk_size, size)
        stored = {**meta, **header.to_metadata()}
        if size is not None and size <= SMALL_PUT:
            super()._put(name, sealed.read(), stored, threads=threads)
        else:
            super()._put(name, sealed, stored, threads=threads)

    # ----------------------------------------------------------------- read
    def _opener(self, name: str) -> tuple[Header, Any]:
        """The header of ``name`` and its chunk opener (the key is checked before any body read)."""
        return _seal.opener(self._keys, super()._metadata(name), name)

    def _get(self, name: str) -> bytes:
        """The decrypted bytes of ``name``."""
        header, chunker = self._opener(name)
        return _seal.OpeningReader(super()._open(name), header, chunker).readall()

    def _open(self, name: str) -> BinaryIO:
        """A streaming reader of the plaintext of ``name``, authenticated chunk by chunk."""
        header, chunker = self._opener(name)
        raw = _seal.OpeningReader(super()._open(name), header, chunker)
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=header.chunk_size))

    def _compressed(self, name: str, threads: int | None = None) -> Any:
        return self._open(name)  # decrypted as it streams

    def _size(self, name: str) -> int:
        """The plaintext size of ``name`` (from its header, else from the stored size)."""
        header = _seal.Header.from_metadata(super()._metadata(name), name)
        if header.size is not None:
            return header.size
        size = _seal.plain_size(super()._size(name), header.chunk_size)
        if size is None:
            raise IntegrityError(f"{name}: stored size does not fit the encryption format (truncated)")
        return size

    def _readinto(self, name: str, buffer: memoryview, threads: int | None = None) -> int:
        """Decrypt ``name`` into ``buffer`` chunk by chunk; large objects with parallel ranged GETs.

        Raises:
            ValueError: The plaintext is larger than ``buffer``.
            IntegrityError: The object fails authentication or its size does not fit its header.
        """
        header, chunker = self._opener(name)
        out = memoryview(buffer).cast("B") if memoryview(buffer).format != "B" else memoryview(buffer)
        stored = super()._size(name)
        size = _seal.plain_size(stored, header.chunk_size)
        if size is None or (header.size is not None and size != header.size):
            raise IntegrityError(
                f"{name}: stored size {stored} does not match its encryption header (truncated?)"
            )
        self._check_fits(name, size, len(out))
        try:
            return self._open_parts(name, header, chunker, out, stored, size, threads)
        except IntegrityError:
            _wipe(out[:size])  # no part of a rejected object is left in the caller's buffer
            raise

    def _open_parts(
        self,
        name: str,
        header: Header,
        chunker: Any,
        out: memoryview,
        stored: int,
        size: int,
        threads: int | None,
    ) -> int:
        step = header.chunk_size + TAG_SIZE
        if stored <= RANGE_CHUNK or self.uses_sidecars:
            with super()._open(name) as sealed:
                return _seal.open_into(sealed, header, chunker, out)
        count = -(-stored // step)
        per_part = max(1, RANGE_CHUNK // step)
        key = self._key(name)

        def fetch(first: int) -> int:
            last = min(count, first + per_part)
            data = memoryview(self.client.read(key, byte_range=Range(first * step, (last - first) * step)))
            at, done = 0, 0
            for index in range(first, last):
                piece = data[at : at + step]
                if len(piece) < TAG_SIZE:
                    raise IntegrityError(f"{name}: encrypted body truncated at chunk {index}")
                start = index * header.chunk_size
                n = len(piece) - TAG_SIZE
                chunker.open_into(index, index == count - 1, piece, out[start : start + n])
                at, done = at + step, done + n
            return done

        workers = self._check_threads(threads or self.threads)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            total = sum(pool.map(fetch, range(0, count, per_part)))
        if total != size:
            raise IntegrityError(f"{name}: decrypted {total} bytes, expected {size}")
        return total

    def get_object(self, object_name: str, bucket_name: str | None = None) -> ObjectMetadata:
        """The object's metadata: the plaintext size as ``content_length``, the user metadata
        without the encryption header (listings such as ``ls`` and ``get_size`` show stored bytes)."""
        meta = super().get_object(object_name, bucket_name)
        meta.content_length = self._size(object_name)
        return meta

    def _metadata(self, name: str) -> dict[str, str]:
        """The user metadata of ``name`` without the encryption header (checked to be present)."""
        meta = super()._metadata(name)
        Header.from_metadata(meta, name)  # a plaintext object is refused, not read as ours
        return {k: v for k, v in meta.items() if k.lower() not in META_KEYS}


class _SealedBody(_seal.SealingReader):
    """The sealed stream of an upload body; ``seek(0)`` restarts it (a retried upload replays it)."""

    def __init__(self, body: Any, chunker: Any, chunk_size: int, size: int | None) -> None:
        super().__init__(body, chunker, chunk_size, size)
        self._body = body
        self._start = None if isinstance(body, (bytes, bytearray, memoryview)) else _tell(body)
        self._args = (chunker, chunk_size, size)
        self._offset = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR and offset == 0:
            return self._offset
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("an encrypting upload stream only rewinds to its start")
        if self._offset:
            if self._start is None and not isinstance(self._body, (bytes, bytearray, memoryview)):
                raise io.UnsupportedOperation("the upload body cannot be rewound for a retry")
            if self._start is not None:
                self._body.seek(self._start)
            _seal.SealingReader.__init__(self, self._body, *self._args)
            self._offset = 0
        return 0

    def readall(self) -> bytes:
        data = super().readall()
        self._offset += len(data)
        return data

    def readinto(self, b: Any) -> int:
        n = super().readinto(b)
        self._offset += n
        return n


def _one_of(name: str, value: str | None, alias: str, other: str | None) -> str | None:
    if value is not None and other is not None:
        raise ValueError(f"got both {name}= and {alias}=; pass one")
    return value if value is not None else other


def _wipe(view: memoryview) -> None:
    zeros = bytes(min(len(view), 1 << 20))
    for at in range(0, len(view), len(zeros) or 1):
        n = min(len(zeros), len(view) - at)
        view[at : at + n] = zeros[:n]


def _tell(body: Any) -> int | None:
    try:
        return int(body.tell()) if body.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None
