"""The sealed-object format of ``EncryptedInterface`` (``manystore.arrays._seal``), storage-free.

Chunk boundaries, every kind of tampering, key handling and secrecy, on small chunks so each
case spans several of them. The same properties on every backend: ``test_arrays_crypto.py``.
"""

from __future__ import annotations

import io
import os
import pickle

import pytest

pytest.importorskip("cryptography", reason="the arrays extra (cryptography) is not installed")

from manystore.arrays import _seal
from manystore.errors import IntegrityError, WrongKeyError

CHUNK = 1000
AES_KEY = bytes(range(32))
META = {"dtype": "float32", "shape": "10,25", "order": "C"}


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_seal, "CHUNK_SIZE", CHUNK)


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return _seal.generate_key("RSA", bits=2048)


def seal(
    data: bytes, keys: _seal.KeyRing, body: object = None, meta: dict[str, str] = META
) -> tuple[bytes, dict[str, str]]:
    body = data if body is None else body
    header, chunker = _seal.seal_header(keys, _seal.body_size(body), meta, "obj")
    sealed = _seal.SealingReader(body, chunker, header.chunk_size, header.size).read()
    return sealed, {**meta, **header.to_metadata()}


def unseal(sealed: bytes, meta: dict[str, str], keys: _seal.KeyRing) -> bytes:
    header, chunker = _seal.opener(keys, meta, "obj")
    streamed = _seal.OpeningReader(io.BytesIO(sealed), header, chunker).read()
    buf = bytearray(len(sealed))
    n = _seal.open_into(io.BytesIO(sealed), header, chunker, memoryview(buf))
    assert bytes(buf[:n]) == streamed
    return streamed


class _Unsized(io.RawIOBase):
    """A non-seekable stream (size unknown to the sealer) yielding short reads."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        n = min(len(b), 333, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
def test_round_trip_at_chunk_boundaries(size: int) -> None:
    keys = _seal.load_key("AES", AES_KEY)
    data = os.urandom(size)
    for body in (data, memoryview(data), io.BytesIO(data), _Unsized(data)):
        sealed, meta = seal(data, keys, body)
        assert len(sealed) == _seal.sealed_size(size, CHUNK)
        assert _seal.plain_size(len(sealed), CHUNK) == size
        assert unseal(sealed, meta, keys) == data
        if size >= 16:
            assert data[:16] not in sealed
    unsized_meta = seal(data, keys, _Unsized(data))[1]
    assert unsized_meta["msenc_size"] == ""  # unknown up front: the final-chunk flag ends it


def test_fresh_data_key_and_nonce_per_object() -> None:
    keys = _seal.load_key("AES", AES_KEY)
    a, meta_a = seal(b"x" * 100, keys)
    b, meta_b = seal(b"x" * 100, keys)
    assert a != b
    assert meta_a["msenc_key"] != meta_b["msenc_key"] and meta_a["msenc_nonce"] != meta_b["msenc_nonce"]


def tampered_cases(sealed: bytes) -> dict[str, bytes]:
    step = CHUNK + 16
    chunks = [sealed[i : i + step] for i in range(0, len(sealed), step)]
    flipped = bytearray(sealed)
    flipped[step + 5] ^= 1
    return {
        "flipped byte": bytes(flipped),
        "flipped tag": sealed[:-1] + bytes([sealed[-1] ^ 0x80]),
        "truncated at a chunk boundary": b"".join(chunks[:-1]),
        "truncated mid-chunk": sealed[: step + 100],
        "last chunk cut": sealed[:-16],
        "chunks swapped": chunks[1] + chunks[0] + b"".join(chunks[2:]),
        "chunk duplicated": chunks[0] + b"".join(chunks),
        "extra bytes": sealed + b"\0" * 20,
        "empty": b"",
    }


@pytest.mark.parametrize("case", list(tampered_cases(b"\0" * (4 * (CHUNK + 16)))))
def test_tampered_body_raises_integrity_error(case: str) -> None:
    keys = _seal.load_key("AES", AES_KEY)
    data = os.urandom(3 * CHUNK + 500)
    sealed, meta = seal(data, keys)
    with pytest.raises(IntegrityError, match=r"^obj: ") as err:
        unseal(tampered_cases(sealed)[case], meta, keys)
    assert AES_KEY.hex() not in str(err.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("msenc_nonce", "00" * 8),
        ("msenc_chunk", "500"),
        ("msenc_size", "100"),
        ("msenc_meta", "dtype,order"),
        ("msenc_key", "AAAA"),
        ("msenc_v", "9"),
        ("dtype", "int32"),
        ("shape", "25,10"),
    ],
)
def test_changed_metadata_raises_integrity_error(field: str, value: str) -> None:
    keys = _seal.load_key("AES", AES_KEY)
    sealed, meta = seal(os.urandom(2500), keys)
    with pytest.raises(IntegrityError, match=r"^obj: "):
        unseal(sealed, {**meta, field: value}, keys)


def test_removed_metadata_and_plaintext_object() -> None:
    keys = _seal.load_key("AES", AES_KEY)
    sealed, meta = seal(os.urandom(50), keys)
    with pytest.raises(IntegrityError, match="'shape' was removed"):
        unseal(sealed, {k: v for k, v in meta.items() if k != "shape"}, keys)
    with pytest.raises(IntegrityError, match="not an encrypted object"):
        unseal(b"plain", META, keys)
    # An unbound name added later (e.g. by the store) is tolerated.
    assert unseal(sealed, {**meta, "mtime": "1"}, keys) is not None


def test_wrong_key_is_caught_before_decrypting() -> None:
    keys = _seal.load_key("AES", AES_KEY)
    other = _seal.load_key("AES", os.urandom(32))
    sealed, meta = seal(b"secret", keys)
    with pytest.raises(WrongKeyError, match=f"key id {keys.key_id}.*key id {other.key_id}"):
        unseal(sealed, meta, other)
    with pytest.raises(WrongKeyError):
        unseal(sealed, {**meta, "msenc_kid": other.key_id}, keys)  # kid rewritten: refused too
    assert isinstance(WrongKeyError("x"), ValueError) and isinstance(IntegrityError("x"), ValueError)


def test_rsa_public_key_uploads_private_key_downloads(rsa_pem: bytes, tmp_path: object) -> None:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(rsa_pem, password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = os.path.join(str(tmp_path), "key.pem")
    with open(path, "wb") as f:
        f.write(rsa_pem)
    full = _seal.load_key("RSA", path)  # cottoncandy's way: the path of a PEM file
    public = _seal.load_key("rsa", public_pem)
    assert full.key_id == public.key_id and full.can_open and not public.can_open
    sealed, meta = seal(b"rsa data" * 300, public)
    assert unseal(sealed, meta, full) == b"rsa data" * 300
    with pytest.raises(WrongKeyError, match="needs the RSA private key"):
        unseal(sealed, meta, public)
    with pytest.raises(WrongKeyError):  # an AES key on an RSA object
        unseal(sealed, meta, _seal.load_key("AES", AES_KEY))


def test_key_errors_never_show_the_key(rsa_pem: bytes) -> None:
    secret_text = "k" * 31
    for enc, key in [
        ("AES", b"short"),
        ("AES", secret_text),
        ("AES", None),
        ("RSA", b"garbage"),
        ("DES", AES_KEY),
    ]:
        with pytest.raises(ValueError) as err:
            _seal.load_key(enc, key)
        assert secret_text not in str(err.value) and "short" not in str(err.value)
    with pytest.raises(ValueError, match="too small"):
        _seal.generate_key("RSA", bits=1024)
    with pytest.raises(FileNotFoundError, match="cannot be read"):
        _seal.load_key("RSA", "/nonexistent/key.pem")
    # hex and base64 text of the same key give the same key id
    import base64

    assert (
        _seal.load_key("AES", AES_KEY.hex()).key_id
        == _seal.load_key("AES", base64.b64encode(AES_KEY).decode()).key_id
    )
    ring = _seal.load_key("AES", AES_KEY)
    for text in (repr(ring), str(ring)):
        assert AES_KEY.hex() not in text and "KeyRing(AES, key id" in text
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(ring)
    rsa_ring = _seal.load_key("RSA", rsa_pem)
    assert "PRIVATE" not in repr(rsa_ring) and rsa_ring.key_id in repr(rsa_ring)


def test_tampered_chunk_leaves_no_plaintext_in_the_buffer() -> None:
    keys = _seal.load_key("AES", AES_KEY)
    data = b"A" * (3 * CHUNK)
    sealed, meta = seal(data, keys)
    bad = bytearray(sealed)
    bad[2 * (CHUNK + 16) + 3] ^= 1  # third chunk
    header, chunker = _seal.opener(keys, meta, "obj")
    buf = bytearray(len(data))
    with pytest.raises(IntegrityError, match="chunk 2"):
        _seal.open_into(io.BytesIO(bytes(bad)), header, chunker, memoryview(buf))
    assert buf[2 * CHUNK :] == bytes(CHUNK)  # zeroed, not unauthenticated plaintext
    with pytest.raises(ValueError, match="smaller than the object"):
        _seal.open_into(io.BytesIO(sealed), header, chunker, memoryview(bytearray(10)))
