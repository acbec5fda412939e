"""User keys of :class:`manystore.arrays.EncryptedInterface`: loading, key ids, data-key wrapping.

An AES key wraps data keys with AES key wrap (RFC 3394); an RSA key with RSA-OAEP (SHA-256,
MGF1-SHA-256). A key id is a fingerprint (SHA-256 of a domain-separated AES key, or of the
RSA public key's DER SubjectPublicKeyInfo), truncated to 128 bits: it names a key and reveals
nothing of it. Keys live only inside :class:`KeyRing`, whose repr never shows them.
``cryptography`` is imported on first use.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from ..errors import IntegrityError, WrongKeyError

__all__ = ["ALGORITHMS", "KeyRing", "generate_key", "load_key"]

ALGORITHMS = ("AES", "RSA")
_AES_KEY_SIZES = (16, 24, 32)
_MIN_RSA_BITS = 2048


def generate_key(encryption: str = "AES", bits: int = 3072) -> bytes:
    """A new random user key: 32 bytes for ``"AES"``, an unencrypted PKCS#8 PEM private key for ``"RSA"``.

    Args:
        encryption: ``"AES"`` or ``"RSA"``.
        bits: RSA modulus size (RSA only, at least 2048).

    Returns:
        The key bytes; keep them safe (write the RSA PEM to a file readable only by you).
    """
    alg = _algorithm(encryption)
    if alg == "AES":
        return os.urandom(32)
    if bits < _MIN_RSA_BITS:
        raise ValueError(f"RSA key size {bits} is too small: expected at least {_MIN_RSA_BITS} bits")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _algorithm(encryption: str) -> str:
    alg = str(encryption).upper() if isinstance(encryption, str) else ""
    if alg not in ALGORITHMS:
        raise ValueError(f"encryption={encryption!r} is not supported: expected 'AES' or 'RSA'")
    return alg


class KeyRing:
    """The user's key, able to wrap and unwrap data keys. Its repr never shows the key.

    Build it with :func:`load_key`.

    Attributes:
        algorithm: ``"AES"`` or ``"RSA"``.
        key_id: Hex fingerprint of the key (of the public key for RSA): names it, reveals nothing.
        can_open: ``False`` for an RSA public key alone (uploads only).
    """

    __slots__ = ("_private", "_public", "_secret", "algorithm", "can_open", "key_id")

    def __init__(self, algorithm: str, key_id: str, secret: Any, public: Any, private: Any) -> None:
        self.algorithm = algorithm
        self.key_id = key_id
        self._secret = secret  # AES: key bytes; RSA: None
        self._public = public
        self._private = private
        self.can_open = algorithm == "AES" or private is not None

    def __repr__(self) -> str:
        kind = "" if self.can_open else ", public key only"
        return f"KeyRing({self.algorithm}, key id {self.key_id}{kind})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # no key material in pickles by accident
        raise TypeError("a KeyRing is not picklable: pass the key to the new process explicitly")

    def wrap(self, data_key: bytes) -> bytes:
        """``data_key`` sealed under the user's key."""
        if self.algorithm == "AES":
            from cryptography.hazmat.primitives.keywrap import aes_key_wrap

            return aes_key_wrap(self._secret, data_key)
        return bytes(self._public.encrypt(data_key, _oaep()))

    def unwrap(self, wrapped: bytes, name: str) -> bytes:
        """The data key of object ``name``; :class:`IntegrityError` when it does not unwrap."""
        if not self.can_open:
            raise WrongKeyError(
                f"{name}: opening an RSA-encrypted object needs the RSA private key; "
                f"only the public key (key id {self.key_id}) was given"
            )
        try:
            if self.algorithm == "AES":
                from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

                key = aes_key_unwrap(self._secret, wrapped)
            else:
                key = self._private.decrypt(wrapped, _oaep())
        except Exception:  # InvalidUnwrap / ValueError: the wrapped key was altered
            raise IntegrityError(f"{name}: the wrapped data key does not unwrap (metadata altered)") from None
        if len(key) != 32:
            raise IntegrityError(f"{name}: the wrapped data key has {len(key)} bytes, expected 32")
        return bytes(key)


def _oaep() -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def load_key(encryption: str, key: Any) -> KeyRing:
    """The :class:`KeyRing` of a user key.

    Args:
        encryption: ``"AES"`` or ``"RSA"``.
        key: AES: 16, 24 or 32 bytes, or their hex or base64 text. RSA: the path of a PEM
            file (as in cottoncandy), PEM bytes or text, or a ``cryptography`` RSA key object;
            a private key uploads and downloads, a public key only uploads.

    Raises:
        ValueError: No key, or a key of the wrong kind or size (the message never shows it).
    """
    alg = _algorithm(encryption)
    if key is None:
        raise ValueError(
            f"encryption={alg!r} needs key=: make one with manystore.arrays.generate_key({alg!r}) and keep it safe"
        )
    return _aes_key(key) if alg == "AES" else _rsa_key(key)


def _aes_key(key: Any) -> KeyRing:
    raw: bytes | None = None
    if isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
    elif isinstance(key, str):
        text = key.strip()
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            try:
                raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "==", validate=False)
            except ValueError:
                raw = None
    else:
        raise TypeError(f"an AES key must be bytes or hex/base64 text, not {type(key).__name__}")
    if raw is None or len(raw) not in _AES_KEY_SIZES:
        got = "undecodable text" if raw is None else f"{len(raw)} bytes"
        raise ValueError(f"an AES key must be 16, 24 or 32 bytes (or their hex/base64 text); got {got}")
    kid = hashlib.sha256(b"manystore aes key id\0" + raw).hexdigest()[:32]
    return KeyRing("AES", kid, raw, None, None)


def _rsa_key(key: Any) -> KeyRing:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    obj: Any = key
    if isinstance(key, (str, os.PathLike)) and not str(key).lstrip().startswith("-----BEGIN"):
        path = os.fspath(key)
        try:
            with open(path, "rb") as f:
                obj = f.read()
        except OSError as e:
            raise FileNotFoundError(f"RSA key file {path!r} cannot be read: {e.strerror}") from None
    if isinstance(obj, str):
        obj = obj.encode()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        try:
            if b"PRIVATE KEY" in data:
                obj = serialization.load_pem_private_key(data, password=None)
            else:
                obj = serialization.load_pem_public_key(data)
        except TypeError:
            raise ValueError("the RSA private key is password-protected: pass an unencrypted PEM") from None
        except ValueError:
            raise ValueError("the RSA key is not a PEM-encoded RSA public or private key") from None
    if isinstance(obj, rsa.RSAPrivateKey):
        private, public = obj, obj.public_key()
    elif isinstance(obj, rsa.RSAPublicKey):
        private, public = None, obj
    else:
        raise TypeError(
            f"an RSA key must be a PEM path, PEM bytes or an RSA key object, not {type(obj).__name__}"
        )
    if public.key_size < _MIN_RSA_BITS:
        raise ValueError(f"RSA key of {public.key_size} bits is too small: expected at least {_MIN_RSA_BITS}")
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyRing("RSA", hashlib.sha256(spki).hexdigest()[:32], None, public, private)
