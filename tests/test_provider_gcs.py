"""GoogleStorageProvider against a real gcp-storage-emulator on 127.0.0.1.

Emulator quirks the tests know about: it ignores ``ifGenerationMatch`` (so
``GcsEmulator.enforces_conditional_writes`` is False), ignores ``startOffset`` in listings and
sends no ``x-goog-generation`` header on downloads.
"""

from __future__ import annotations

import gc
import io
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import manystore
from manystore import StorageClient, StorageClientConfig
from manystore.errors import (
    ConfigError,
    ManystoreError,
    NotModifiedError,
    ObjectNotFoundError,
    PreconditionFailedError,
    RetryableError,
)
from manystore.providers.gcs import (
    GCSPermissionError,
    GCSProviderError,
    GoogleIdentityPoolCredentialsProvider,
    GoogleServiceAccountCredentialsProvider,
    GoogleStorageProvider,
    StringTokenSupplier,
    _translate,
)
from manystore.types import Range
from tests.retrying import retrying

try:  # tests/ as a package or as a plain directory on sys.path
    from .servers_gcs import BUCKET, GcsEmulator, profile, start
except ImportError:
    from servers_gcs import BUCKET, GcsEmulator, profile, start  # type: ignore[no-redef]

MiB = 1 << 20


@pytest.fixture(scope="module")
def server() -> Iterator[GcsEmulator]:
    srv = start()
    try:
        yield srv
    finally:
        srv.stop()


def make(server: GcsEmulator, **options: Any) -> GoogleStorageProvider:
    return GoogleStorageProvider(
        project_id="test",
        endpoint_url=server.endpoint_url,
        base_path=f"{BUCKET}/{uuid.uuid4().hex[:12]}",
        **options,
    )


@pytest.fixture
def provider(server: GcsEmulator) -> GoogleStorageProvider:
    """A provider whose calls go through retries (the server may answer one with a 500)."""
    plain = make(server)
    plain.__class__ = retrying(type(plain))
    return plain


# ------------------------------------------------------------------ metadata and reads


def test_etag_is_generation(server: GcsEmulator, provider: GoogleStorageProvider) -> None:
    provider.put_object("m/obj", b"12345", attributes={"k": "v"})
    meta = provider.get_object_metadata("m/obj")
    blob = server.client().bucket(BUCKET).get_blob(provider._full_key("m/obj"))
    assert meta.etag == str(blob.generation)
    assert meta.key == "m/obj" and meta.content_length == 5 and meta.type == "file"
    assert meta.metadata == {"k": "v"}
    assert meta.last_modified.tzinfo is not None
    assert provider.get_object_metadata("m", strict=False).type == "directory"
    with pytest.raises(ObjectNotFoundError):
        provider.get_object_metadata("m")


def test_ranged_reads(provider: GoogleStorageProvider) -> None:
    provider.put_object("r", bytes(range(100)))
    assert provider.get_object("r", Range(10, 5)) == bytes(range(10, 15))
    assert provider.get_object("r", Range(95, 50)) == bytes(range(95, 100))
    assert provider.get_object("r", Range(200, 5)) == b""
    assert provider.get_object("r", Range(3, 0)) == b""
    with pytest.raises(ObjectNotFoundError):
        provider.get_object("missing", Range(3, 0))


def test_pinned_read_detects_overwrite(provider: GoogleStorageProvider) -> None:
    provider.put_object("p", b"one")
    etag = provider.get_object_metadata("p").etag
    assert provider.get_object("p", if_match=etag) == b"one"
    provider.put_object("p", b"two")
    with pytest.raises(PreconditionFailedError):
        provider.get_object("p", Range(0, 2), if_match=etag)
    with pytest.raises(PreconditionFailedError):  # not a generation: matches nothing
        provider.get_object("p", if_match="abc")


def test_emulator_ignores_preconditions(server: GcsEmulator, provider: GoogleStorageProvider) -> None:
    """Documents why ``enforces_conditional_writes`` is False; flip it if this starts failing."""
    provider.put_object("c", b"first", if_none_match="*")
    provider.put_object("c", b"second", if_none_match="*")
    assert provider.get_object("c") == b"second"
    assert server.enforces_conditional_writes is False
    with pytest.raises(PreconditionFailedError):  # refused client-side, no request needed
        provider.put_object("c", b"third", if_match="not-a-generation")
    with pytest.raises(ValueError):
        provider.put_object("c", b"x", if_none_match="123")


# ------------------------------------------------------------------ listing


def test_list_semantics(provider: GoogleStorageProvider) -> None:
    keys = ["a-b", "a/b", "a/c/d", "a0", "b/x1", "b/x2"]
    for k in keys:
        provider.put_object(k, k.encode())
    assert [m.key for m in provider.list_objects("")] == keys
    assert [m.key for m in provider.list_objects("a")] == ["a-b", "a/b", "a/c/d", "a0"]
    assert [m.key for m in provider.list_objects("", start_after="a/c/d", end_at="b/x1")] == ["a0", "b/x1"]
    dirs = [(m.key, m.type) for m in provider.list_objects("a/", include_directories=True)]
    assert dirs == [("a/b", "file"), ("a/c", "directory")]
    top = [(m.key, m.type) for m in provider.list_objects("", include_directories=True)]
    assert top == [("a", "directory"), ("a-b", "file"), ("a0", "file"), ("b", "directory")]
    assert provider.delete_prefix("a/") == 2
    assert [m.key for m in provider.list_objects("")] == ["a-b", "a0", "b/x1", "b/x2"]


# ------------------------------------------------------------------ transfers


def test_upload_download_large_file(server: GcsEmulator, tmp_path: Any) -> None:
    p = make(server, multipart_threshold="1M", multipart_chunksize=300_000, max_concurrency=4)
    assert p._chunksize == 512 * 1024  # rounded up to GCS's 256 KiB granularity
    data = os.urandom(3 * MiB + 17)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    p.upload_file("big/up.bin", str(src), attributes={"a": "1"})
    meta = p.get_object_metadata("big/up.bin")
    assert meta.content_length == len(data) and meta.metadata == {"a": "1"}
    dest = tmp_path / "out" / "down.bin"
    p.download_file("big/up.bin", str(dest))  # parallel ranged GETs
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["down.bin"]
    buf = io.BytesIO()
    p.download_file("big/up.bin", buf, meta)
    assert buf.getvalue() == data
    p.upload_file("big/stream.bin", io.BytesIO(data))  # unknown size: resumable
    assert p.get_object("big/stream.bin") == data
    p.put_object("big/put.bin", data)
    assert p.get_object("big/put.bin", Range(3 * MiB, 100)) == data[3 * MiB : 3 * MiB + 100]
    with pytest.raises(ObjectNotFoundError):
        p.download_file("big/missing", str(tmp_path / "none.bin"))
    assert not (tmp_path / "none.bin").exists()


def test_streaming_writer_close_and_abort(server: GcsEmulator) -> None:
    p = make(server, multipart_chunksize=256 * 1024)
    data = os.urandom(700_000)
    writer = p.open_writer("w/obj")
    for i in range(0, len(data), 100_000):
        writer.write(data[i : i + 100_000])
    assert not p.is_file("w/obj")  # invisible until close
    writer.close()
    assert p.get_object("w/obj") == data
    aborted = p.open_writer("w/aborted")
    aborted.write(data)  # several chunks already sent
    aborted.abort()
    assert not p.is_file("w/aborted")
    assert [m.key for m in p.list_objects("w/")] == ["w/obj"]
    # An aborted writer, once garbage-collected, stores nothing (not even an empty object).
    replacing = p.open_writer("w/obj")
    replacing.write(b"x" * 1000)
    replacing.abort()
    del replacing, aborted
    gc.collect()
    assert not p.is_file("w/aborted")
    assert p.get_object("w/obj") == data


def test_copy_and_delete(provider: GoogleStorageProvider) -> None:
    provider.put_object("src", b"copy me")
    provider.copy_object("src", "dst/x")
    assert provider.get_object("dst/x") == b"copy me"
    with pytest.raises(ObjectNotFoundError):
        provider.copy_object("nope", "x")
    provider.delete_object("src")
    with pytest.raises(ObjectNotFoundError, match="gs://"):
        provider.delete_object("src")
    with pytest.raises(PreconditionFailedError):
        provider.delete_object("dst/x", if_match="zzz")


# ------------------------------------------------------------------ errors


def test_404_translated_and_not_retried(server: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"profiles": {"t": profile(server, uuid.uuid4().hex)}}
    client = StorageClient(StorageClientConfig.from_dict(config, "t"))
    calls = []
    original = GoogleStorageProvider._download

    def counting(self: GoogleStorageProvider, *args: Any) -> bytes:
        calls.append(args)
        return original(self, *args)

    monkeypatch.setattr(GoogleStorageProvider, "_download", counting)
    with pytest.raises(ObjectNotFoundError) as info:
        client.read("no/such")
    assert str(info.value) == "msc://t/no/such: not found"  # the URL the caller used, not the bucket path
    assert len(calls) == 1


def test_error_table() -> None:
    from google.api_core import exceptions as gexc
    from requests.exceptions import ConnectionError as RequestsConnectionError

    url = "gs://b/k"
    assert isinstance(_translate(gexc.NotFound("x"), url), ObjectNotFoundError)
    assert isinstance(_translate(gexc.PreconditionFailed("x"), url), PreconditionFailedError)
    assert isinstance(_translate(gexc.NotModified("x"), url), NotModifiedError)
    for exc, status in [
        (gexc.TooManyRequests("x"), 429),
        (gexc.ServiceUnavailable("x"), 503),
        (gexc.InternalServerError("x"), 500),
        (gexc.GatewayTimeout("x"), 504),
    ]:
        err = _translate(exc, url)
        assert isinstance(err, RetryableError) and err.status == status
    conn = _translate(RequestsConnectionError("refused"), url)
    assert isinstance(conn, RetryableError) and conn.status is None
    for exc in (gexc.Forbidden("x"), gexc.Unauthorized("x")):
        assert isinstance(_translate(exc, url), GCSPermissionError)
        assert isinstance(_translate(exc, url), PermissionError)
    other = _translate(gexc.BadRequest("bad"), url)
    assert isinstance(other, GCSProviderError) and isinstance(other, OSError)
    assert str(other).startswith("gs://b/k: ")


def test_options_validated(server: GcsEmulator) -> None:
    with pytest.raises(ConfigError, match="bogus"):
        GoogleStorageProvider(base_path="b", bogus=1)
    with pytest.raises(ConfigError, match="bucket"):
        GoogleStorageProvider(base_path="")
    with pytest.raises(ConfigError, match="max_concurrency"):
        GoogleStorageProvider(base_path="b", max_concurrency=0)
    p = make(server, timeout=[5, 7], rust_client={}, skip_signature=True)
    assert p._timeout == (5.0, 7.0)
    assert repr(p).startswith("GoogleStorageProvider(bucket='manystore-test', prefix=")


# ------------------------------------------------------------------ URLs, credentials, processes


def test_gs_url_implicit_profile(server: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.endpoint_url)
    url = f"gs://{BUCKET}/{uuid.uuid4().hex}/hello.txt"
    manystore.write(url, b"hi there")
    assert manystore.read(url) == b"hi there"
    assert manystore.read(url, Range(3, 5)) == b"there"


def test_credentials_providers(tmp_path: Any) -> None:
    supplier = StringTokenSupplier("tok-123")
    assert supplier.get_subject_token(None, None) == "tok-123"
    assert "tok-123" not in repr(supplier)
    pool = GoogleIdentityPoolCredentialsProvider("//iam.googleapis.com/projects/1/x", "secret-token")
    creds = pool.get_credentials()
    assert creds.get_custom_field("token") == "secret-token"
    assert "secret-token" not in repr(pool) and "secret-token" not in repr(creds)
    from google.auth import identity_pool

    google_creds = pool.google_credentials()  # no network until used
    assert isinstance(google_creds, identity_pool.Credentials)
    assert google_creds._subject_token_supplier.get_subject_token(None, None) == "secret-token"

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    info = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "1",
        "private_key": pem,
        "client_email": "sa@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(info))
    sa = GoogleServiceAccountCredentialsProvider(file=str(key_file))
    assert sa.google_credentials().service_account_email == "sa@p.iam.gserviceaccount.com"
    assert "PRIVATE" not in repr(sa) and "PRIVATE" not in repr(sa.get_credentials())
    assert (
        GoogleServiceAccountCredentialsProvider(info=info).get_credentials().access_key
        == info["client_email"]
    )
    with pytest.raises(ConfigError):
        GoogleServiceAccountCredentialsProvider()
    with pytest.raises(ConfigError):
        GoogleServiceAccountCredentialsProvider(file=str(tmp_path / "missing.json"))
    p = GoogleStorageProvider(base_path="b/pre", credentials_provider=pool)
    assert "secret" not in repr(p)


def _child_read(p: GoogleStorageProvider, key: str, queue: Any) -> None:
    try:
        queue.put(p.get_object(key))
    except Exception as exc:
        queue.put(repr(exc))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_provider_in_child_process(provider: GoogleStorageProvider, method: str) -> None:
    provider.put_object("child", b"from parent")
    assert provider.get_object("child") == b"from parent"  # parent's client and sessions exist
    ctx = multiprocessing.get_context(method)
    queue: Any = ctx.Queue()
    proc = ctx.Process(target=_child_read, args=(provider, "child", queue))
    proc.start()
    assert queue.get(timeout=60) == b"from parent"
    proc.join(30)
    assert provider.get_object("child") == b"from parent"
    clone = pickle.loads(pickle.dumps(provider))
    assert clone.get_object("child") == b"from parent"


def test_import_manystore_does_not_import_google() -> None:
    code = "import sys, manystore; assert not any(m.startswith('google') for m in sys.modules), 'google'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_errors_are_manystore_errors(provider: GoogleStorageProvider) -> None:
    with pytest.raises(ManystoreError):
        provider.get_object("nothing")
