"""More fault injection: 200-with-error bodies, sync under faults, TLS verification, lost write answers.

Same rig as :mod:`tests.test_faults` (a :class:`FaultProxy` in front of rclone or moto) and the
same tally: this module keeps its own :class:`Tally` and, at the end of the module, *adds* it to
the JSON file named by ``MANYSTORE_RELIABILITY_REPORT`` (so run it after ``tests/test_faults.py``,
which writes that file from scratch).
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import manystore.file
from manystore import StorageClient, StorageClientConfig
from manystore.errors import ManystoreError, PreconditionFailedError, RetryableError
from manystore.mirror import SyncError, sync_clients

from .conftest import s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server
from .test_faults import BLOCK, MiB, Rig, Tally, payload, sha

TALLY = Tally()


def record(op: str, expected: bytes, got: bytes) -> None:
    TALLY.survive(op, expected, got)


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Sum two tally dicts (counters key by key, totals and byte counts as numbers)."""
    merged = dict(into)
    for name, value in extra.items():
        old = merged.get(name)
        if isinstance(value, dict):
            counts = dict(old or {})
            for key, n in value.items():
                counts[key] = counts.get(key, 0) + n
            merged[name] = dict(sorted(counts.items()))
        else:
            merged[name] = (old or 0) + value
    return merged


@pytest.fixture(scope="module", autouse=True)
def _write_tally() -> Iterator[None]:
    yield
    target = os.environ.get("MANYSTORE_RELIABILITY_REPORT")
    if target:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        current = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps(_merge(current, TALLY.as_dict()), indent=2) + "\n")


def _rig(server: S3Server, **options: Any) -> Iterator[Rig]:
    proxy = FaultProxy(server.endpoint_url)
    options = {"multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB, **options}
    rig = Rig(server, proxy, f"manystore-test/faults-extra-{uuid.uuid4().hex}", options)
    try:
        yield rig
    finally:
        proxy.close()
        TALLY.injected.update(proxy.injected)


@pytest.fixture
def rclone(rclone_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setattr(manystore.file, "READ_BLOCK_SIZE", BLOCK)
    yield from _rig(rclone_server)


@pytest.fixture
def moto(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setattr(manystore.file, "READ_BLOCK_SIZE", BLOCK)
    yield from _rig(moto_server)


@pytest.fixture
def src_proxy(rclone_server: S3Server) -> Iterator[FaultProxy]:
    """A second proxy before rclone: a sync source on it is another endpoint (no server-side copy)."""
    proxy = FaultProxy(rclone_server.endpoint_url)
    yield proxy
    proxy.close()
    TALLY.injected.update(proxy.injected)


@pytest.fixture(params=["rclone", "moto"])
def rig(request: pytest.FixtureRequest) -> Rig:
    return request.getfixturevalue(request.param)


# ---------------------------------------------------------------------------- 1. 200 with an error body

SMALL = payload(300_000, 11)
BIG = payload(11 * MiB + 77, 12)


def test_copy_200_with_error_body_is_retried(rig: Rig) -> None:
    """CopyObject answered ``200 OK`` + ``<Error><Code>InternalError``: retried, exact copy."""
    rig.direct().write("src", SMALL)
    client = rig.client()
    rig.proxy.inject("error-200", 2, method="PUT", header="x-amz-copy-source")
    try:
        client.copy("src", "dst")
    finally:
        assert rig.proxy.injected["error-200"] >= 1
        rig.proxy.clear()
    got = rig.direct().read("dst")
    assert sha(got) == sha(SMALL)
    record("copy", SMALL, got)


def test_complete_multipart_200_with_error_body_is_retried(rig: Rig, tmp_path: Path) -> None:
    """CompleteMultipartUpload answered ``200 OK`` + ``<Error>``: the upload is retried, exact object."""
    source = tmp_path / "big.bin"
    source.write_bytes(BIG)
    client = rig.client()
    rig.proxy.inject("error-200", 2, method="POST", path="uploadId=")
    try:
        client.upload_file("obj", str(source))
    finally:
        assert rig.proxy.injected["error-200"] >= 1
        rig.proxy.clear()
    got = rig.direct().read("obj")
    assert sha(got) == sha(BIG)
    record("upload_multipart", BIG, got)


def test_error_200_classification_is_clean_and_leaves_nothing(moto: Rig, tmp_path: Path) -> None:
    """200-errors that outlast the retries surface as a RetryableError naming ``InternalError``
    (never a silent success), and the failed multipart upload is aborted."""
    moto.direct().write("src", SMALL)
    client = moto.client()
    moto.proxy.inject("error-200", 50, method="PUT", header="x-amz-copy-source")
    with pytest.raises(RetryableError, match="InternalError"):
        client.copy("src", "dst")
    moto.proxy.clear()
    TALLY.raise_clean("copy")
    source = tmp_path / "big.bin"
    source.write_bytes(BIG)
    moto.proxy.inject("error-200", 50, method="POST", path="uploadId=")
    with pytest.raises(RetryableError, match="InternalError"):
        client.upload_file("obj", str(source))
    moto.proxy.clear()
    TALLY.raise_clean("upload_multipart")
    assert not moto.direct().is_file("obj")
    assert moto.dangling_uploads() == []


def test_complete_multipart_applied_but_200_error_is_retried(moto: Rig, tmp_path: Path) -> None:
    """The server completed the upload but the client got ``200`` + ``<Error>``: retry, exact object."""
    source = tmp_path / "big.bin"
    source.write_bytes(BIG)
    client = moto.client()
    moto.proxy.inject("error-200", 1, method="POST", path="uploadId=", forward=True)
    client.upload_file("obj", str(source))
    assert moto.proxy.injected["error-200"] == 1
    got = moto.direct().read("obj")
    assert sha(got) == sha(BIG)
    record("upload_multipart", BIG, got)


# ---------------------------------------------------------------------------- 2. sync under faults

N_KEYS = 8


def _objects() -> dict[str, bytes]:
    return {f"k{i:02d}": payload(150_000 + 1_000 * i, 100 + i) for i in range(N_KEYS)}


def _stored(client: StorageClient, prefix: str) -> dict[str, str]:
    return {m.key[len(prefix) :]: sha(client.read(m.key)) for m in client.list(prefix)}


def _expected(objects: dict[str, bytes]) -> dict[str, str]:
    return {key: sha(data) for key, data in objects.items()}


def _puts(proxy: FaultProxy, start: int) -> list[str]:
    return [path for method, path in proxy.requests_log[start:] if method == "PUT"]


def _local_source(tmp_path: Path, objects: dict[str, bytes]) -> StorageClient:
    root = tmp_path / "local"
    (root / "src").mkdir(parents=True)
    for key, data in objects.items():
        (root / "src" / key).write_bytes(data)
    config = {"profiles": {"l": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}}}
    return StorageClient(StorageClientConfig.from_dict(config, "l"))


def _record_sync(objects: dict[str, bytes], direct: StorageClient) -> None:
    for key, data in objects.items():
        record("sync", data, direct.read(f"dst/{key}"))


@pytest.mark.parametrize("source_kind", ["s3", "local"])
def test_sync_survives_faults(rclone: Rig, src_proxy: FaultProxy, tmp_path: Path, source_kind: str) -> None:
    """503 / reset / truncate on some source GETs and target PUTs: with enough attempts the target
    equals the source exactly (sha256 per key)."""
    objects = _objects()
    direct = rclone.direct()
    if source_kind == "s3":
        for key, data in objects.items():
            direct.write(f"src/{key}", data)
        # A second proxy is a second endpoint: not the same store, so the sync streams (GET + PUT)
        # instead of copying server-side.
        source = rclone.client(attempts=6, endpoint=src_proxy.url)
        src_proxy.inject("status", 2, status=503, code="SlowDown", method="GET", path="/src/k01")
        src_proxy.inject("reset", 1, method="GET", path="/src/k02", keep=0.3)
        src_proxy.inject("truncate", 1, method="GET", path="/src/k03", keep=0.8)
    else:
        source = _local_source(tmp_path, objects)
    target = rclone.client(attempts=6)
    rclone.proxy.inject("status", 2, status=503, code="SlowDown", method="PUT", path="/dst/k04")
    rclone.proxy.inject("reset", 1, method="PUT", path="/dst/k05")
    rclone.proxy.inject("status", 1, status=500, method="PUT", path="/dst/k06")
    result = sync_clients(source, "src", target, "dst")
    assert rclone.proxy.pending() == 0, "not every queued fault was hit"
    assert src_proxy.pending() == 0, "not every queued source fault was hit"
    assert result.copied == N_KEYS and not result.failures
    assert _stored(direct, "dst/") == _expected(objects)
    _record_sync(objects, direct)


@pytest.mark.parametrize("source_kind", ["s3", "local"])
def test_sync_fault_outlasting_retries_on_one_key(
    rclone: Rig, src_proxy: FaultProxy, tmp_path: Path, source_kind: str
) -> None:
    """Faults outlasting the retries on ONE key: SyncError names that key and its cause (a
    RetryableError with status 503), every other key is synced; a rerun copies only that key."""
    objects = _objects()
    direct = rclone.direct()
    if source_kind == "s3":
        for key, data in objects.items():
            direct.write(f"src/{key}", data)
        source = rclone.client(attempts=3, endpoint=src_proxy.url)  # another endpoint: streamed
        src_proxy.inject("status", 30, status=503, code="SlowDown", method="GET", path="/src/k03")
    else:
        source = _local_source(tmp_path, objects)
        rclone.proxy.inject("status", 30, status=503, code="SlowDown", method="PUT", path="/dst/k03")
    target = rclone.client(attempts=3)
    with pytest.raises(SyncError) as info:
        sync_clients(source, "src", target, "dst")
    rclone.proxy.clear()
    src_proxy.clear()
    err = info.value
    assert list(err.failures) == ["src/k03"]
    assert "src/k03" in str(err)
    cause = err.failures["src/k03"]
    assert isinstance(cause, RetryableError), repr(cause)
    assert cause.status == 503, repr(cause)
    assert err.result.copied == N_KEYS - 1
    assert _stored(direct, "dst/") == _expected({k: v for k, v in objects.items() if k != "k03"})
    TALLY.raise_clean("sync")  # k03's run
    _record_sync({k: v for k, v in objects.items() if k != "k03"}, direct)

    start = len(rclone.proxy.requests_log)
    result = sync_clients(source, "src", target, "dst")
    assert (result.copied, result.skipped) == (1, N_KEYS - 1)
    puts = _puts(rclone.proxy, start)
    assert len(puts) == 1 and puts[0].endswith("/dst/k03"), puts
    assert _stored(direct, "dst/") == _expected(objects)
    _record_sync({"k03": objects["k03"]}, direct)  # the rerun's one transfer


SHADOW_SCRIPT = """
import manystore
from manystore import StorageClient, StorageClientConfig
def client(root):
    cfg = {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": root}}}}}
    return StorageClient(StorageClientConfig.from_dict(cfg, "p"))
import sys, os
src, dst = sys.argv[1], sys.argv[2]
client(dst).sync_from(client(src))
print(type(manystore.sync).__name__)
assert callable(manystore.sync), manystore.sync
"""


def test_sync_shortcut_stays_callable_after_sync_from(tmp_path: Path) -> None:
    """In a fresh interpreter: after ``client.sync_from(...)``, ``manystore.sync`` is still the function."""
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    (tmp_path / "src" / "a").write_bytes(b"a")
    run = subprocess.run(
        [sys.executable, "-c", SHADOW_SCRIPT, str(tmp_path / "src"), str(tmp_path / "dst")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


# ---------------------------------------------------------------------------- 3. TLS verification


def _make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1 it issued: (ca.pem, cert.pem, key.pem)."""
    crypto = pytest.importorskip("cryptography", reason="the 'cryptography' package is not installed")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "manystore test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    cert_path.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


class _TLSProxy:
    """HTTPS on 127.0.0.1 forwarding every request (Host header included) to a plain-HTTP upstream."""

    def __init__(self, upstream: str, cert: Path, key: Path) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.handshakes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                conn = http.client.HTTPConnection(host, int(port or 80), timeout=30)
                try:
                    skip = {"connection", "keep-alive", "transfer-encoding", "content-length"}
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status, resp.reason)
                for name, value in resp.getheaders():
                    if name.lower() not in skip:
                        self.send_header(name, value)
                length_header = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length_header or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> Any:
                sock, addr = self.socket.accept()
                outer.handshakes += 1
                return context.wrap_socket(sock, server_side=True), addr

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # failed handshakes (the client refusing our certificate) are expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def tls(rclone_server: S3Server, tmp_path: Path) -> Iterator[tuple[_TLSProxy, Path]]:
    ca, cert, key = _make_certs(tmp_path)
    proxy = _TLSProxy(rclone_server.endpoint_url, cert, key)
    try:
        yield proxy, ca
    finally:
        proxy.close()


def _tls_client(server: S3Server, url: str, **options: Any) -> StorageClient:
    profile = s3_profile(server, f"manystore-test/tls-{uuid.uuid4().hex}", **options)
    profile["storage_provider"]["options"]["endpoint_url"] = url
    profile["retry"] = {"attempts": 3, "delay": 0.01}
    return StorageClient(StorageClientConfig.from_dict({"profiles": {"t": profile}}, "t"))


def _chain(err: BaseException) -> str:
    parts: list[str] = []
    seen: BaseException | None = err
    while seen is not None and len(parts) < 5:
        parts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def test_tls_verification_is_on_by_default(rclone_server: S3Server, tls: tuple[_TLSProxy, Path]) -> None:
    """No ``verify`` option: the unknown CA is refused with a certificate error, in bounded time."""
    proxy, _ = tls
    client = _tls_client(rclone_server, proxy.url)
    started = time.monotonic()
    with pytest.raises(ManystoreError) as info:
        client.write("obj", b"must not be sent")
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed  # bounded: no endless handshake retries
    assert proxy.handshakes <= 10, proxy.handshakes  # bounded: a few attempts, not an endless loop
    text = _chain(info.value).lower()
    assert "certificate" in text or "unknownissuer" in text or "invalid peer" in text, text


def test_tls_verify_false_reaches_the_server(rclone_server: S3Server, tls: tuple[_TLSProxy, Path]) -> None:
    proxy, _ = tls
    client = _tls_client(rclone_server, proxy.url, verify=False)
    client.write("obj", SMALL)
    assert sha(client.read("obj")) == sha(SMALL)


def test_tls_verify_with_ca_bundle(rclone_server: S3Server, tls: tuple[_TLSProxy, Path]) -> None:
    proxy, ca = tls
    client = _tls_client(rclone_server, proxy.url, verify=str(ca))
    client.write("obj", SMALL)
    assert sha(client.read("obj")) == sha(SMALL)


# ---------------------------------------------------------------------------- 4. lost write answers


def test_put_answer_lost_after_sending_is_retried(rclone: Rig) -> None:
    """The first PUT reaches the server (which stores it) but its answer never comes: the read
    timeout (1 s) fires, the whole-object PUT (idempotent) is retried, and the object is exact."""
    client = rclone.client(read_timeout=1)
    rclone.proxy.inject("stall", 1, method="PUT", delay=20.0, forward=True)
    started = time.monotonic()
    client.write("obj", SMALL)
    assert time.monotonic() - started < 30  # bounded: no hang
    assert rclone.proxy.injected["stall"] == 1
    assert rclone.proxy.requests_by_method["PUT"] == 2
    got = rclone.direct().read("obj")
    assert sha(got) == sha(SMALL)
    record("write", SMALL, got)


def test_put_delayed_past_timeout_is_retried(rclone: Rig) -> None:
    """The first PUT is held 3 s before it reaches the server (read_timeout=1): the client retries,
    the late original lands afterwards with the same bytes; the object is exact either way."""
    client = rclone.client(read_timeout=1)
    rclone.proxy.inject("latency", 1, method="PUT", delay=3.0)
    client.write("obj", SMALL)
    time.sleep(3.5)  # let the late original land
    got = rclone.direct().read("obj")
    assert sha(got) == sha(SMALL)
    record("write", SMALL, got)


def test_conditional_create_whose_answer_is_lost(moto: Rig) -> None:
    """``put_object(if_none_match="*")`` whose first answer is lost after moto created the object.

    Observed behaviour: the client times out (read_timeout=1) and retries; the retry finds the
    object it created itself and gets ``PreconditionFailedError`` (moto answers 412): the caller
    sees a conflict although its write did land. The stored bytes are exactly the ones written
    and exactly one object exists. (A retry that succeeds is accepted too.)
    """
    client = moto.client(read_timeout=1)
    data = payload(123_456, 7)
    moto.proxy.inject("stall", 1, method="PUT", delay=20.0, forward=True)
    outcome = "succeeded"
    try:
        client.put_object("obj", data, if_none_match="*")
    except PreconditionFailedError:
        outcome = "precondition_failed"
    assert moto.proxy.injected["stall"] == 1
    assert moto.proxy.requests_by_method["PUT"] == 2
    direct = moto.direct()
    assert [m.key for m in direct.list("")] == ["obj"]
    got = direct.read("obj")
    assert sha(got) == sha(data)
    if outcome == "precondition_failed":  # one run, one outcome: it raised (the bytes are still checked)
        TALLY.raise_clean("put_if_none_match")
        TALLY.check_bytes(data, got)
    else:
        record("put_if_none_match", data, got)
    assert outcome == "precondition_failed", outcome  # the behaviour documented above
