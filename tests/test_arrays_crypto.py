"""``EncryptedInterface`` on every backend: ciphertext at rest, tamper and key errors, secrecy, memory.

The raw objects are read back through a plain interface on the same prefix (what anyone with
the store's credentials but not the key sees). The format itself, case by case:
``test_arrays_seal.py``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import traceback
from typing import Any

import pytest

pytest.importorskip("cryptography", reason="the arrays extra (cryptography) is not installed")

from manystore.arrays import _seal, crypto
from manystore.arrays.crypto import EncryptedInterface
from manystore.arrays.interface import DefaultInterface
from manystore.errors import IntegrityError, WrongKeyError

from .conftest import Backend

KEY = bytes.fromhex("6b" * 16 + "3c" * 16)
CHUNK = 64 * 1024
MARKER = b"PLAINTEXT-MARKER-"


@pytest.fixture(autouse=True)
def _small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks, one-shot limit and range parts: every code path on small objects."""
    monkeypatch.setattr(_seal, "CHUNK_SIZE", CHUNK)
    monkeypatch.setattr(crypto, "SMALL_PUT", 256 * 1024)
    monkeypatch.setattr(crypto, "RANGE_CHUNK", 3 * (CHUNK + 16))


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return crypto.generate_key("RSA", bits=2048)


def pair(backend: Backend, **kwargs: Any) -> tuple[EncryptedInterface, DefaultInterface]:
    kwargs.setdefault("key", KEY)
    enc = EncryptedInterface(backend.client, "enc", **kwargs)
    return enc, DefaultInterface(backend.client, "enc")


def payload(size: int) -> bytes:
    return (MARKER * (size // len(MARKER) + 1))[:size]


class _Unsized(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._src.readinto(b)


@pytest.mark.parametrize("size", [0, 17, CHUNK, 5 * CHUNK + 3])
def test_objects_round_trip_and_are_ciphertext_at_rest(backend: Backend, size: int) -> None:
    enc, plain = pair(backend)
    data = payload(size)
    meta = {"dtype": "uint8", "shape": str(size)}
    enc._put("bytes", data, meta)
    enc._put("stream", io.BytesIO(data), meta)
    enc._put("unsized", _Unsized(data), meta)
    for name in ("bytes", "stream", "unsized"):
        assert enc._get(name) == data
        with enc._open(name) as f:
            assert f.read() == data
        buf = bytearray(size + 5)
        assert enc._readinto(name, memoryview(buf), threads=3) == size and bytes(buf[:size]) == data
        assert enc._metadata(name) == meta
        assert enc._size(name) == size
        raw = plain._get(name)
        assert len(raw) == _seal.sealed_size(size, CHUNK) and raw != data
        if size:
            assert MARKER not in raw
        stored = plain._metadata(name)
        assert stored["msenc_alg"] == "AES" and stored["msenc_kid"] == enc.key_id
        assert KEY.hex() not in json.dumps(stored) and base64.b64encode(KEY).decode() not in json.dumps(
            stored
        )


def test_copy_keeps_an_object_readable_and_others_cannot_read(backend: Backend) -> None:
    enc, plain = pair(backend)
    enc._put("a", payload(3 * CHUNK), {"k": "v"})
    enc._copy("a", "b")  # server-side copy: the name is not bound, the metadata travels
    assert enc._get("b") == payload(3 * CHUNK)
    other = EncryptedInterface(backend.client, "enc", key=os.urandom(32))
    for call in (other._get, other._open, lambda n: other._readinto(n, memoryview(bytearray(10**6)))):
        with pytest.raises(WrongKeyError, match=f"^a: sealed with AES key id {enc.key_id}"):
            call("a")
    plain._put("plain", b"not encrypted", {"k": "v"})
    with pytest.raises(IntegrityError, match=r"^plain: not an encrypted object"):
        enc._get("plain")
    with pytest.raises(IntegrityError, match=r"^plain: not an encrypted object"):
        enc._metadata("plain")


def _rewrite(plain: DefaultInterface, name: str, body: bytes, meta: dict[str, str]) -> None:
    plain._put(name, body, meta)


def test_tampered_objects_raise_integrity_error(backend: Backend) -> None:
    enc, plain = pair(backend)
    data = payload(6 * CHUNK + 100)
    enc._put("obj", data, {"dtype": "uint8"})
    raw, meta = plain._get("obj"), plain._metadata("obj")
    step = CHUNK + 16
    chunks = [raw[i : i + step] for i in range(0, len(raw), step)]
    flipped = bytearray(raw)
    flipped[4 * step + 9] ^= 0x01
    cases = {
        "flipped": (bytes(flipped), meta),
        "truncated": (b"".join(chunks[:-1]), {**meta, "msenc_size": str(6 * CHUNK)}),
        "swapped": (chunks[1] + chunks[0] + b"".join(chunks[2:]), meta),
        "metadata": (raw, {**meta, "dtype": "int64"}),
        "nonce": (raw, {**meta, "msenc_nonce": "11" * 8}),
    }
    for case, (body, m) in cases.items():
        _rewrite(plain, case, body, m)
        buf = memoryview(bytearray(len(data)))
        for read in (enc._get, lambda n: enc._open(n).read(), lambda n, b=buf: enc._readinto(n, b)):
            with pytest.raises(IntegrityError, match=f"^{case}: ") as err:
                read(case)
            assert KEY.hex() not in str(err.value)
        assert MARKER not in bytes(buf)  # nothing unauthenticated left in the target buffer


def test_rsa_public_key_uploads_private_key_reads(backend: Backend, rsa_pem: bytes, tmp_path: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(rsa_pem, password=None)
    pub_path = tmp_path / "pub.pem"
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    priv_path = tmp_path / "priv.pem"
    priv_path.write_bytes(rsa_pem)
    uploader, plain = pair(backend, encryption="RSA", key=str(pub_path))
    reader, _ = pair(backend, encryption="RSA", key=str(priv_path))
    assert uploader.key_id == reader.key_id and uploader.encryption == "RSA"
    uploader._put("r", payload(2 * CHUNK + 1), {})
    assert reader._get("r") == payload(2 * CHUNK + 1)
    assert plain._metadata("r")["msenc_alg"] == "RSA"
    with pytest.raises(WrongKeyError, match="needs the RSA private key"):
        uploader._get("r")
    with pytest.raises(WrongKeyError, match="sealed with RSA key id"):
        EncryptedInterface(backend.client, "enc", key=KEY)._get("r")


def test_keys_never_in_reprs_errors_or_logs(
    backend: Backend, caplog: pytest.LogCaptureFixture, rsa_pem: bytes
) -> None:
    secrets = [KEY.hex(), base64.b64encode(KEY).decode(), repr(KEY)[2:-1], rsa_pem.decode().splitlines()[1]]
    caplog.set_level(logging.DEBUG)
    enc, plain = pair(backend)
    rsa_enc, _ = pair(backend, encryption="RSA", key=rsa_pem)
    texts = [repr(enc), str(enc), repr(rsa_enc), repr(enc._keys), repr(rsa_enc._keys)]
    assert enc.key_id in repr(enc) and "AES" in repr(enc)
    enc._put("o", payload(2 * CHUNK), {"x": "1"})
    rsa_enc._put("r", payload(10), {})
    assert rsa_enc._get("r") == payload(10)
    flipped = bytearray(plain._get("o"))
    flipped[3] ^= 1
    plain._put("bad", bytes(flipped), plain._metadata("o"))
    errors: list[BaseException] = []
    for call in (
        lambda: enc._get("bad"),
        lambda: rsa_enc._get("o"),
        lambda: EncryptedInterface(backend.client, "enc", key=KEY[:-1]),
        lambda: EncryptedInterface(backend.client, "enc", encryption="RSA", key=KEY),
    ):
        with pytest.raises(ValueError) as err:
            call()
        errors.append(err.value)
    for e in errors:
        texts += [str(e), repr(e), "".join(traceback.format_exception(type(e), e, e.__traceback__))]
        texts += [repr(c) for c in (e.__cause__, e.__context__) if c is not None]
    texts += [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob
    assert "bad: encrypted chunk 0 fails authentication" in blob


def test_constructor_forms_and_errors(backend: Backend, tmp_path: Any) -> None:
    local = EncryptedInterface(str(tmp_path), encryption="aes", key=KEY.hex())  # get_interface-style target
    local._put("x", b"hello", {})
    assert local._get("x") == b"hello" and (tmp_path / "x").read_bytes() != b"hello"
    if backend.name.startswith("s3-"):  # the seed's form: bucket, access, secret, url, encryption, key
        server = backend.server
        base = backend.config["profiles"]["test"]["storage_provider"]["options"]["base_path"]
        bucket, prefix = base.split("/", 1)
        seed = EncryptedInterface(
            bucket, server.access_key, server.secret_key, server.endpoint_url, "AES", KEY
        )
        seed._put(f"{prefix}/seed", b"seed-style", {})
        assert seed._get(f"{prefix}/seed") == b"seed-style"
        assert DefaultInterface(backend.client, "")._get("seed") not in (b"", b"seed-style")
        styled = EncryptedInterface(
            f"s3://{base}",
            ACCESS_KEY=server.access_key,
            SECRET_KEY=server.secret_key,
            endpoint_url=server.endpoint_url,
            key=KEY,
        )
        assert styled._get("seed") == b"seed-style"
        # get_interface(..., key=) gives the encrypted interface, on a bare "bucket/prefix" too
        from manystore.arrays import get_interface

        via = get_interface(
            base,
            ACCESS_KEY=server.access_key,
            SECRET_KEY=server.secret_key,
            endpoint_url=server.endpoint_url,
            key=KEY,
            verbose=False,
        )
        assert isinstance(via, EncryptedInterface) and via.encryption == "AES"
        assert via._get("seed") == b"seed-style"
        with pytest.raises(ValueError, match="got both access= and ACCESS_KEY="):
            EncryptedInterface(bucket, "a", ACCESS_KEY="b", key=KEY)
    with pytest.raises(ValueError, match="needs key="):
        EncryptedInterface(backend.client, "enc")
    with pytest.raises(ValueError, match="encryption='DES' is not supported"):
        EncryptedInterface(backend.client, "enc", encryption="DES", key=KEY)
    enc, _ = pair(backend)
    with pytest.raises(ValueError, match="reserved"):
        enc._put("m", b"", {"msenc_kid": "forged"})


@pytest.mark.parametrize("compression", [False, "gzip", "LZ4", "Zstd"])
def test_arrays_json_pickle_files_round_trip_encrypted(
    backend: Backend, compression: Any, tmp_path: Any
) -> None:
    np = pytest.importorskip("numpy", reason="the arrays extra (numpy) is not installed")
    enc, plain = pair(backend)
    arr = np.arange(3 * CHUNK, dtype="<i4").reshape(3, -1)  # 12 chunks of 64 KiB
    fortran = np.asfortranarray(np.linspace(0, 1, 600).reshape(20, 30))
    enc.upload_raw_array("raw", arr, compression=compression)
    enc.upload_raw_array("fortran", fortran, compression=compression)
    assert np.array_equal(enc.download_raw_array("raw"), arr)
    assert np.array_equal(enc.download_raw_array("fortran"), fortran)
    enc.upload_npy_array("npy", arr)
    assert np.array_equal(enc.download_npy_array("npy"), arr)
    enc.upload_json("doc.json", {"secret": "PLAINTEXT-MARKER-json"})
    assert enc.download_json("doc.json") == {"secret": "PLAINTEXT-MARKER-json"}
    enc.upload_pickle("p.pkl", {"v": "PLAINTEXT-MARKER-pickle"})
    assert enc.download_pickle("p.pkl", trusted=True) == {"v": "PLAINTEXT-MARKER-pickle"}
    src = tmp_path / "in.bin"
    src.write_bytes(payload(2 * CHUNK + 9))
    enc.upload_from_file(str(src), "file.bin")
    enc.download_to_file("file.bin", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == payload(2 * CHUNK + 9)
    with open(src, "rb") as fh:
        enc.mpu_fileobject("mpu.bin", fh, buffersize=10_000, verbose=False)
    assert enc.download_object("mpu.bin") == payload(2 * CHUNK + 9)
    assert enc.download_stream("mpu.bin").content.read() == payload(2 * CHUNK + 9)
    assert enc.get_object("mpu.bin").content_length == 2 * CHUNK + 9
    for name in ("raw", "fortran", "npy", "doc.json", "p.pkl", "file.bin", "mpu.bin"):
        raw = plain._get(name)
        assert MARKER not in raw and b"PLAINTEXT-MARKER" not in raw and b"NUMPY" not in raw, name
        assert plain._metadata(name)["msenc_kid"] == enc.key_id
    assert arr.tobytes()[: 4 * 64] not in plain._get("raw")
    # The array metadata stays readable but is bound: a forged shape is refused.
    meta = plain._metadata("raw")
    assert meta["shape"] and meta["dtype"]
    forged_shape = ",".join(reversed(meta["shape"].split(",")))
    assert forged_shape != meta["shape"]
    plain._put("forged", plain._get("raw"), {**meta, "shape": forged_shape})
    with pytest.raises(IntegrityError, match=r"^forged: "):
        enc.download_raw_array("forged")


MEMORY_CHILD = textwrap.dedent(
    """
    import io, json, sys, tracemalloc
    from manystore import StorageClient, StorageClientConfig
    from manystore.arrays.crypto import EncryptedInterface
    from manystore.arrays.interface import DefaultInterface
    config = json.loads(sys.argv[1])
    size = int(sys.argv[2])
    client = StorageClient(StorageClientConfig.from_dict(config, "test"))
    body = bytearray(size)
    body[::4096] = b"x" * len(body[::4096])
    target = bytearray(size)
    tracemalloc.start()

    def extra(call):
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - base

    class Reader(io.RawIOBase):  # a stream with no buffer to hand out: sent part by part
        def __init__(self, data):
            self.view, self.pos = memoryview(data), 0
        def readable(self):
            return True
        def seekable(self):
            return True
        def seek(self, offset, whence=0):
            self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else len(self.view) + offset
            return self.pos
        def tell(self):
            return self.pos
        def readinto(self, b):
            n = min(len(b), len(self.view) - self.pos)
            b[:n] = self.view[self.pos : self.pos + n]
            self.pos += n
            return n

    def read_stream(iface):
        with iface._open("big") as f:
            while f.read(1 << 20):
                pass

    result = {}
    enc = EncryptedInterface(client, "mem", key=b"k" * 32)
    for label, iface in (("plain", DefaultInterface(client, "mem-plain")), ("enc", enc)):
        result[label] = {
            "up": extra(lambda: iface._put("big", memoryview(body))),
            "up_stream": extra(lambda: iface._put("big", Reader(body))),
            "down": extra(lambda: iface._readinto("big", memoryview(target), threads=2)),
            "stream": extra(lambda: read_stream(iface)),
        }
        assert target == body
    print(json.dumps(result))
    """
)


def test_large_stream_uses_bounded_memory(backend: Backend) -> None:
    """A 64 MiB body seals and opens in 1 MiB chunks: no second copy of the body.

    Peak Python allocations (tracemalloc) of upload, ``_readinto`` and a streamed read,
    encrypted vs the same calls on a plain interface: the difference is a few chunks, not the
    body (the plain calls' own peak is the transport's part buffers, part size x concurrency).
    """
    size = 64 * 2**20
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["src", os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, json.dumps(backend.config), str(size)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    peaks = json.loads(out.stdout.strip().splitlines()[-1])
    mib = {label: {k: round(v / 2**20, 1) for k, v in p.items()} for label, p in peaks.items()}
    print(backend.name, mib, "MiB extra for a 64 MiB body")
    # A few 1 MiB chunks over the transport's own buffers. Sealed bodies always stream (part
    # buffers: part size x concurrency), while a plain buffer is sent without any copy: the
    # encrypted upload is held to the plain upload of a stream of the same bytes.
    plain = {**peaks["plain"], "up": max(peaks["plain"]["up"], peaks["plain"]["up_stream"])}
    for phase, peak in peaks["enc"].items():
        assert peak <= plain[phase] + 16 * 2**20, f"{phase}: {mib}"
    assert peaks["enc"]["up"] < 2 * size  # never the body twice over
