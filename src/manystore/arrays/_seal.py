"""The sealed-object format of :class:`manystore.arrays.EncryptedInterface`.

An object body is sealed in fixed-size chunks with AES-256-GCM under a fresh random data
key; the data key is wrapped by the user's key (AES key wrap, RFC 3394, or RSA-OAEP with
SHA-256). Everything needed to open the object except the user's key lives in the object's
metadata (:data:`META_KEYS`); a SHA-256 digest of that header and of the bound user metadata,
the chunk index and a final-chunk flag are the associated data of every chunk, so an altered
byte, a truncated body, a reordered chunk or changed metadata fails authentication.
See ``docs/arrays.md``, "Encryption".

User keys and data-key wrapping: :mod:`manystore.arrays._keys`. ``cryptography`` is
imported on first use.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

from ..errors import IntegrityError, WrongKeyError
from ._keys import ALGORITHMS, KeyRing, generate_key, load_key

__all__ = [
    "CHUNK_SIZE",
    "META_KEYS",
    "Header",
    "KeyRing",
    "OpeningReader",
    "SealingReader",
    "generate_key",
    "load_key",
    "open_into",
    "sealed_size",
]

FORMAT_VERSION = "1"
#: Plaintext bytes per sealed chunk (the ciphertext chunk is 16 bytes longer: the GCM tag).
CHUNK_SIZE = 1 << 20
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 8  # + a 4-byte big-endian chunk counter = the 96-bit GCM nonce
MAX_CHUNKS = 1 << 32

# Object metadata names (underscores: Azure metadata names must be identifiers).
K_VERSION, K_ALG, K_KID, K_WRAPPED = "msenc_v", "msenc_alg", "msenc_kid", "msenc_key"
K_CHUNK, K_NONCE, K_SIZE, K_BOUND = "msenc_chunk", "msenc_nonce", "msenc_size", "msenc_meta"
#: Every metadata name the format uses.
META_KEYS = frozenset({K_VERSION, K_ALG, K_KID, K_WRAPPED, K_CHUNK, K_NONCE, K_SIZE, K_BOUND})


def sealed_size(size: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Bytes at rest of a ``size``-byte plaintext (one 16-byte tag per chunk, at least one chunk)."""
    return size + TAG_SIZE * max(1, -(-size // chunk_size))


def plain_size(stored: int, chunk_size: int) -> int | None:
    """The plaintext size behind ``stored`` sealed bytes, or ``None`` if no body has that size."""
    full, last = divmod(stored, chunk_size + TAG_SIZE)
    if last == 0 and full > 0:
        return full * chunk_size
    if last < TAG_SIZE:
        return None
    return full * chunk_size + last - TAG_SIZE


class Header:
    """What an object's metadata says about its sealing (everything but the user's key).

    Attributes:
        algorithm: ``"AES"`` or ``"RSA"`` (how the data key is wrapped).
        key_id: Fingerprint of the user key that wrapped the data key.
        wrapped: The wrapped data key.
        chunk_size: Plaintext bytes per chunk.
        nonce_prefix: Random per-object nonce prefix (8 bytes).
        size: Plaintext size, or ``None`` when the upload did not know it (an unsized stream).
        bound: User metadata names (lower case) whose values the chunks authenticate.
    """

    __slots__ = ("algorithm", "bound", "chunk_size", "key_id", "nonce_prefix", "size", "wrapped")

    def __init__(
        self,
        algorithm: str,
        key_id: str,
        wrapped: bytes,
        chunk_size: int,
        nonce_prefix: bytes,
        size: int | None,
        bound: tuple[str, ...],
    ) -> None:
        self.algorithm, self.key_id, self.wrapped = algorithm, key_id, wrapped
        self.chunk_size, self.nonce_prefix, self.size, self.bound = chunk_size, nonce_prefix, size, bound

    def __repr__(self) -> str:
        return f"Header({self.algorithm}, key id {self.key_id}, chunk {self.chunk_size}, size {self.size})"

    def to_metadata(self) -> dict[str, str]:
        """The object metadata entries of this header."""
        return {
            K_VERSION: FORMAT_VERSION,
            K_ALG: self.algorithm,
            K_KID: self.key_id,
            K_WRAPPED: base64.b64encode(self.wrapped).decode("ascii"),
            K_CHUNK: str(self.chunk_size),
            K_NONCE: self.nonce_prefix.hex(),
            K_SIZE: "" if self.size is None else str(self.size),
            K_BOUND: ",".join(self.bound),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], name: str) -> Header:
        """Parse an object's metadata; :class:`IntegrityError` names ``name`` if it is not a sealed object."""
        meta = {k.lower(): v for k, v in metadata.items()}
        if K_VERSION not in meta:
            raise IntegrityError(f"{name}: not an encrypted object (no {K_VERSION} metadata)")
        try:
            if meta[K_VERSION] != FORMAT_VERSION:
                raise IntegrityError(
                    f"{name}: encryption format {meta[K_VERSION]!r} is not supported (expected {FORMAT_VERSION!r})"
                )
            size = meta[K_SIZE]
            header = cls(
                meta[K_ALG],
                meta[K_KID],
                base64.b64decode(meta[K_WRAPPED], validate=True),
                int(meta[K_CHUNK]),
                bytes.fromhex(meta[K_NONCE]),
                int(size) if size else None,
                tuple(k for k in meta[K_BOUND].split(",") if k),
            )
        except (KeyError, ValueError) as e:
            if isinstance(e, IntegrityError):
                raise
            raise IntegrityError(
                f"{name}: encryption metadata is missing or malformed ({type(e).__name__})"
            ) from None
        if header.algorithm not in ALGORITHMS or header.chunk_size <= 0 or len(header.nonce_prefix) != 8:
            raise IntegrityError(f"{name}: encryption metadata is malformed")
        return header

    def digest(self, metadata: Mapping[str, str], name: str) -> bytes:
        """SHA-256 of the header and the bound user metadata (part of every chunk's associated data)."""
        meta = {k.lower(): v for k, v in metadata.items()}
        missing = [k for k in self.bound if k not in meta]
        if missing:
            raise IntegrityError(f"{name}: metadata {missing[0]!r} was removed")
        doc = {**self.to_metadata(), "bound": {k: meta[k] for k in self.bound}}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).digest()

    def check_key(self, keys: KeyRing, name: str) -> None:
        """:class:`WrongKeyError` unless ``keys`` is the key that sealed object ``name``."""
        if self.algorithm != keys.algorithm or self.key_id != keys.key_id:
            raise WrongKeyError(
                f"{name}: sealed with {self.algorithm} key id {self.key_id}; "
                f"the key given is {keys.algorithm} key id {keys.key_id}"
            )


class _Chunker:
    """Per-object AES-GCM state: the cipher, nonces and associated data of each chunk."""

    def __init__(self, data_key: bytes, header: Header, digest: bytes, name: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(data_key)
        self._prefix = header.nonce_prefix
        self._digest = digest
        self.name = name

    def _nonce_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        if index >= MAX_CHUNKS:
            raise ValueError(f"{self.name}: more than {MAX_CHUNKS} chunks")
        return self._prefix + struct.pack(">I", index), self._digest + struct.pack(">QB", index, final)

    def seal(self, index: int, final: bool, plain: bytes | memoryview) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        return self._aead.encrypt(nonce, plain, aad)

    def seal_into(self, index: int, final: bool, plain: bytes | memoryview, out: memoryview) -> None:
        nonce, aad = self._nonce_aad(index, final)
        if hasattr(self._aead, "encrypt_into"):
            self._aead.encrypt_into(nonce, plain, aad, out)
        else:  # cryptography < 46
            out[:] = self._aead.encrypt(nonce, plain, aad)

    def open_into(self, index: int, final: bool, sealed: bytes | memoryview, out: memoryview) -> None:
        from cryptography.exceptions import InvalidTag

        nonce, aad = self._nonce_aad(index, final)
        try:
            if hasattr(self._aead, "decrypt_into"):
                self._aead.decrypt_into(nonce, sealed, aad, out)
            else:  # cryptography < 46
                out[:] = self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            out[:] = bytes(len(out))  # never leave unauthenticated plaintext behind
            raise IntegrityError(
                f"{self.name}: encrypted chunk {index} fails authentication "
                "(altered, truncated, reordered, or its metadata changed)"
            ) from None


def seal_header(
    keys: KeyRing, size: int | None, metadata: Mapping[str, str], name: str
) -> tuple[Header, _Chunker]:
    """A fresh data key and nonce prefix for a new object: its header and its chunk sealer."""
    data_key = os.urandom(32)
    bound = tuple(sorted(k.lower() for k in metadata if k.lower() not in META_KEYS))
    header = Header(keys.algorithm, keys.key_id, keys.wrap(data_key), CHUNK_SIZE, os.urandom(8), size, bound)
    return header, _Chunker(data_key, header, header.digest(metadata, name), name)


def opener(keys: KeyRing, metadata: Mapping[str, str], name: str) -> tuple[Header, _Chunker]:
    """Check the key against an object's metadata and unwrap its data key (before any chunk is read)."""
    header = Header.from_metadata(metadata, name)
    header.check_key(keys, name)
    data_key = keys.unwrap(header.wrapped, name)
    return header, _Chunker(data_key, header, header.digest(metadata, name), name)


def _read_full(source: Any, n: int) -> bytes:
    """Up to ``n`` bytes of ``source``, short only at its end."""
    parts: list[bytes] = []
    while n > 0:
        data = source.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def body_size(body: Any) -> int | None:
    """Plaintext bytes a body will yield: its length, the rest of a seekable file, else ``None``."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return memoryview(body).nbytes
    try:
        if body.seekable():
            pos = body.tell()
            end = body.seek(0, io.SEEK_END)
            body.seek(pos)
            return int(end - pos)
    except (AttributeError, OSError, ValueError):
        pass
    return None


class SealingReader(io.RawIOBase):
    """A readable stream of the sealed bytes of a plaintext body, produced chunk by chunk.

    Memory: one plaintext chunk of look-ahead (for an unsized stream) and one sealed chunk.
    """

    def __init__(self, body: Any, chunker: _Chunker, chunk_size: int, size: int | None) -> None:
        super().__init__()
        if isinstance(body, (bytes, bytearray, memoryview)):
            self._view: memoryview | None = memoryview(body).cast("B")
            self._source: Any = None
        else:
            self._view, self._source = None, body
        self._chunker, self._chunk, self._size = chunker, chunk_size, size
        self._index = 0
        self._done = False
        self._out = b""
        self._pos = 0
        self._ahead: bytes | None = None
        self._read = 0
        self.sealed_bytes = None if size is None else sealed_size(size, chunk_size)

    def readable(self) -> bool:
        return True

    def _next_plain(self) -> tuple[bytes | memoryview, bool]:
        i, c = self._index, self._chunk
        if self._view is not None:
            start = i * c
            return self._view[start : start + c], start + c >= self._view.nbytes
        piece = self._ahead if self._ahead is not None else _read_full(self._source, c)
        self._ahead = _read_full(self._source, c) if len(piece) == c else b""
        return piece, not self._ahead

    def _refill(self, into: memoryview | None = None) -> int:
        """Seal the next chunk into ``into`` when it fits (no copy), else into the internal buffer."""
        piece, final = self._next_plain()
        n = len(piece) + TAG_SIZE
        if into is not None and len(into) >= n:
            self._chunker.seal_into(self._index, final, piece, into[:n])
            self._out, self._pos = b"", 0
        else:
            self._out, self._pos, n = self._chunker.seal(self._index, final, piece), 0, 0
        self._index += 1
        self._done = final
        self._read += len(piece)
        if final and self._size is not None and self._read != self._size:
            raise ValueError(
                f"{self._chunker.name}: the body yielded {self._read} bytes, expected {self._size}"
            )
        return n

    def readall(self) -> bytes:
        """Every remaining sealed byte (one join: no per-8-KiB copies)."""
        parts = [bytes(self._out[self._pos :])]
        while not self._done:
            self._refill()
            parts.append(self._out)
        self._pos = len(self._out)
        return b"".join(parts)

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._pos >= len(self._out):
            if self._done:
                return 0
            direct = self._refill(view)
            if direct:
                return direct
        n = min(len(view), len(self._out) - self._pos)
        view[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        """Exactly ``size`` sealed bytes unless the stream ends (uploaders take a short read for
        the end), sealed straight into the returned buffer (a ``bytearray``: no second copy)."""
        if size is None or size < 0:
            return self.readall()
        out = bytearray(size)
        view, got = memoryview(out), 0
        while got < size and (n := self.readinto(view[got:])):
            got += n
        view.release()
        if got < size:
            del out[got:]
        return out  # type: ignore[return-value]  # a bytearray: uploaders take any bytes-like


def _check_total(header: Header, total: int, name: str) -> None:
    if header.size is not None and total != header.size:
        raise IntegrityError(f"{name}: decrypted {total} bytes, the metadata says {header.size}")


class OpeningReader(io.RawIOBase):
    """A readable stream of the plaintext of a sealed stream, authenticated chunk by chunk.

    A chunk's bytes are released only after its tag verifies; the end of the stream is
    accepted only after a chunk sealed as final.
    """

    def __init__(self, sealed: BinaryIO, header: Header, chunker: _Chunker) -> None:
        super().__init__()
        self._sealed, self._header, self._chunker = sealed, header, chunker
        self._step = header.chunk_size + TAG_SIZE
        self._ahead: bytes | None = None
        self._index = 0
        self._done = False
        self._out = bytearray()
        self._pos = 0
        self._total = 0

    def readable(self) -> bool:
        return True

    def _refill(self) -> None:
        sealed = self._ahead if self._ahead is not None else _read_full(self._sealed, self._step)
        self._ahead = _read_full(self._sealed, self._step) if len(sealed) == self._step else b""
        final = not self._ahead
        if len(sealed) < TAG_SIZE:
            raise IntegrityError(f"{self._chunker.name}: encrypted body truncated at chunk {self._index}")
        self._out = bytearray(len(sealed) - TAG_SIZE)
        self._chunker.open_into(self._index, final, sealed, memoryview(self._out))
        self._index += 1
        self._pos = 0
        self._total += len(self._out)
        if final:
            self._done = True
            _check_total(self._header, self._total, self._chunker.name)

    def readall(self) -> bytes:
        """The remaining plaintext, chunk by chunk (one join, not 8 KiB reads)."""
        parts: list[bytes | bytearray] = [self._out[self._pos :]]
        while not self._done:
            self._refill()
            parts.append(self._out)
        self._pos = len(self._out)
        return b"".join(parts)

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        while self._pos >= len(self._out):
            if self._done or not len(view):
                return 0
            self._refill()
        n = min(len(view), len(self._out) - self._pos)
        view[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        try:
            self._sealed.close()
        finally:
            super().close()


def open_into(sealed: BinaryIO, header: Header, chunker: _Chunker, buffer: memoryview) -> int:
    """Decrypt the sealed stream straight into ``buffer``, chunk by chunk; the plaintext size.

    Raises:
        ValueError: ``buffer`` is smaller than the plaintext.
        IntegrityError: A chunk fails authentication, or the body is truncated or too long.
    """
    out = memoryview(buffer).cast("B")
    step, name = header.chunk_size + TAG_SIZE, chunker.name
    if header.size is not None and header.size > out.nbytes:
        raise ValueError(
            f"{name}: buffer of {out.nbytes} bytes is smaller than the object ({header.size} bytes)"
        )
    current = _read_full(sealed, step)
    index = total = 0
    while True:
        ahead = _read_full(sealed, step) if len(current) == step else b""
        final = not ahead
        if len(current) < TAG_SIZE:
            raise IntegrityError(f"{name}: encrypted body truncated at chunk {index}")
        n = len(current) - TAG_SIZE
        if total + n > out.nbytes:
            raise ValueError(f"{name}: buffer of {out.nbytes} bytes is smaller than the object")
        chunker.open_into(index, final, current, out[total : total + n])
        total += n
        index += 1
        if final:
            break
        current = ahead
    _check_total(header, total, name)
    return total
