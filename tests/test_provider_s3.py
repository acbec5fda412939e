"""S3StorageProvider against real servers: ``rclone serve s3`` and moto, both on 127.0.0.1.

Server differences the tests know about (``S3Server.enforces_conditional_writes``): rclone
ignores ``If-Match``/``If-None-Match``; moto enforces them.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import pickle
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from manystore.errors import (
    ConfigError,
    InvalidPathError,
    ManystoreError,
    ObjectNotFoundError,
    PreconditionFailedError,
    RetryableError,
)
from manystore.providers.ais_s3 import AIStoreS3StorageProvider
from manystore.providers.gcs_s3 import GoogleS3StorageProvider
from manystore.providers.s3 import (
    ObstoreForkError,
    S3PermissionError,
    S3StorageProvider,
    StaticS3CredentialsProvider,
)
from manystore.providers.s8k import S8KStorageProvider
from manystore.types import Credentials, CredentialsProvider, Range
from tests.retrying import retrying

try:  # tests/ as a package or as a plain directory on sys.path (pytest's default "prepend" mode)
    from .faultproxy import FaultProxy
    from .servers import S3Server, free_port, start_moto_s3, start_rclone_s3
except ImportError:
    from faultproxy import FaultProxy  # type: ignore[no-redef]
    from servers import S3Server, free_port, start_moto_s3, start_rclone_s3  # type: ignore[no-redef]

BUCKET = "manystore-s3-tests"
MiB = 1 << 20


@pytest.fixture(scope="module", params=["rclone", "moto"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if request.param == "rclone":
        srv = start_rclone_s3(tmp_path_factory.mktemp("rclone-root"))
    else:
        srv = start_moto_s3()
    try:
        srv.create_bucket(BUCKET)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def rclone() -> Iterator[S3Server]:
    srv = start_rclone_s3()
    try:
        srv.create_bucket(BUCKET)
        yield srv
    finally:
        srv.stop()


def make_provider(
    srv: S3Server, prefix: str | None = None, endpoint: str | None = None, **options: Any
) -> S3StorageProvider:
    base = f"{BUCKET}/{prefix or uuid.uuid4().hex[:12]}"
    return S3StorageProvider(
        region_name=srv.region,
        endpoint_url=endpoint or srv.endpoint_url,
        base_path=base,
        credentials_provider=StaticS3CredentialsProvider(srv.access_key, srv.secret_key),
        **options,
    )


@pytest.fixture
def provider(server: S3Server) -> S3StorageProvider:
    """A provider whose calls go through retries (the server may answer one with a 500)."""
    plain = make_provider(server)
    plain.__class__ = retrying(type(plain))
    return plain


# ---------------------------------------------------------------------------- reads and writes
def test_put_get_and_ranges(provider: S3StorageProvider) -> None:
    body = bytes(range(256)) * 4
    provider.put_object("dir/obj.bin", body)
    assert provider.get_object("dir/obj.bin") == body
    assert provider.get_object("dir/obj.bin", Range(10, 20)) == body[10:30]
    assert provider.get_object("dir/obj.bin", Range(1000, 100)) == body[1000:]  # clipped at the end
    assert provider.get_object("dir/obj.bin", Range(5000, 10)) == b""  # starts past the end
    assert provider.get_object("dir/obj.bin", Range(3, 0)) == b""
    provider.put_object("empty", b"")
    assert provider.get_object("empty") == b""
    assert provider.get_object("empty", Range(0, 10)) == b""


def test_get_pinned_to_etag(provider: S3StorageProvider, server: S3Server) -> None:
    provider.put_object("pinned", b"version-1")
    etag = provider.get_object_metadata("pinned").etag
    assert etag
    assert provider.get_object("pinned", if_match=etag) == b"version-1"
    assert provider.get_object("pinned", Range(0, 7), if_match=etag) == b"version"
    provider.put_object("pinned", b"version-2")
    if server.enforces_conditional_writes:
        with pytest.raises(PreconditionFailedError):
            provider.get_object("pinned", if_match=etag)
        with pytest.raises(PreconditionFailedError):
            provider.get_object("pinned", Range(0, 3), if_match=etag)


def test_head_metadata(provider: S3StorageProvider) -> None:
    body = b"hello metadata"
    provider.put_object("m/obj.txt", body, attributes={"owner": "tests", "run": "1"})
    meta = provider.get_object_metadata("m/obj.txt")
    assert meta.key == "m/obj.txt"
    assert meta.type == "file"
    assert meta.content_length == len(body)
    assert meta.etag == hashlib.md5(body).hexdigest()  # single-part ETag, quotes stripped
    assert meta.last_modified.tzinfo is not None
    assert abs(meta.last_modified - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert meta.metadata == {"owner": "tests", "run": "1"}
    assert provider.is_file("m/obj.txt")
    assert not provider.is_file("m")


def test_directory_metadata_when_not_strict(provider: S3StorageProvider) -> None:
    provider.put_object("tree/leaf/a", b"1")
    with pytest.raises(ObjectNotFoundError):
        provider.get_object_metadata("tree/leaf")
    meta = provider.get_object_metadata("tree/leaf", strict=False)
    assert (meta.type, meta.key, meta.content_length) == ("directory", "tree/leaf", 0)
    assert meta.last_modified.tzinfo is not None
    with pytest.raises(ObjectNotFoundError):
        provider.get_object_metadata("tree/nothing", strict=False)


def test_missing_key(provider: S3StorageProvider) -> None:
    for call in (
        lambda: provider.get_object("no/such/key"),
        lambda: provider.get_object("no/such/key", Range(0, 10)),
        lambda: provider.get_object_metadata("no/such/key"),
        lambda: provider.copy_object("no/such/key", "dest"),
        lambda: provider.download_file("no/such/key", io.BytesIO()),
    ):
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert isinstance(info.value, ObjectNotFoundError)
        assert f"s3://{BUCKET}/{provider.base_path.split('/', 1)[1]}/no/such/key" in str(info.value)
        assert "Debug source" not in str(info.value)


def test_dotdot_key_is_refused(provider: S3StorageProvider) -> None:
    for call in (
        lambda: provider.get_object("../escape"),
        lambda: provider.put_object("a/../../b", b"x"),
        lambda: list(provider.list_objects("../")),
    ):
        with pytest.raises(InvalidPathError):
            call()


# ---------------------------------------------------------------------------- listing
LIST_KEYS = ["data/a", "data/x-1", "data/x/y", "data/x/z/w", "data/x0", "data/x1", "data/y", "other"]


@pytest.fixture
def listed(provider: S3StorageProvider) -> S3StorageProvider:
    for key in LIST_KEYS:
        provider.put_object(key, key.encode())
    return provider


def keys(entries: Any) -> list[str]:
    return [e.key for e in entries]


def test_list_raw_prefix_semantics(listed: S3StorageProvider) -> None:
    assert keys(listed.list_objects("")) == LIST_KEYS
    assert keys(listed.list_objects("data/x")) == ["data/x-1", "data/x/y", "data/x/z/w", "data/x0", "data/x1"]
    assert keys(listed.list_objects("data/x/")) == ["data/x/y", "data/x/z/w"]
    assert keys(listed.list_objects("data/x1")) == ["data/x1"]
    assert keys(listed.list_objects("d")) == LIST_KEYS[:-1]
    assert keys(listed.list_objects("data/q")) == []
    entry = next(iter(listed.list_objects("other")))
    assert entry.etag == hashlib.md5(b"other").hexdigest()
    assert entry.content_length == 5 and entry.last_modified.tzinfo is not None


def test_list_bounds(listed: S3StorageProvider) -> None:
    assert keys(listed.list_objects("data/", start_after="data/x/y")) == [
        "data/x/z/w",
        "data/x0",
        "data/x1",
        "data/y",
    ]
    assert keys(listed.list_objects("data/", end_at="data/x/y")) == ["data/a", "data/x-1", "data/x/y"]
    assert keys(listed.list_objects("data/x", start_after="data/x-1", end_at="data/x0")) == [
        "data/x/y",
        "data/x/z/w",
        "data/x0",
    ]
    assert keys(listed.list_objects("", start_after="data/a", end_at="data/x/y")) == ["data/x-1", "data/x/y"]
    assert keys(listed.list_objects("", start_after="a")) == LIST_KEYS
    assert keys(listed.list_objects("data/x", start_after="zzz")) == []


def test_list_include_directories(listed: S3StorageProvider) -> None:
    entries = list(listed.list_objects("data/", include_directories=True))
    assert [(e.key, e.type) for e in entries] == [
        ("data/a", "file"),
        ("data/x", "directory"),
        ("data/x-1", "file"),
        ("data/x0", "file"),
        ("data/x1", "file"),
        ("data/y", "file"),
    ]
    assert all(e.content_length == 0 for e in entries if e.type == "directory")
    assert keys(listed.list_objects("data/x", include_directories=True)) == [
        "data/x",
        "data/x-1",
        "data/x0",
        "data/x1",
    ]
    assert keys(listed.list_objects("", include_directories=True)) == ["data", "other"]


def test_list_stays_inside_base_path(server: S3Server) -> None:
    tag = uuid.uuid4().hex[:8]
    inner = make_provider(server, prefix=f"{tag}/pre")
    sibling = make_provider(server, prefix=f"{tag}/prefix2")
    inner.put_object("k", b"1")
    sibling.put_object("k", b"2")
    assert keys(inner.list_objects("")) == ["k"]
    assert keys(make_provider(server, prefix=tag).list_objects("")) == ["pre/k", "prefix2/k"]
    assert inner.glob("*") == ["k"]


# ---------------------------------------------------------------------------- copy / delete
def test_copy_and_delete(provider: S3StorageProvider) -> None:
    provider.put_object("src", b"payload")
    provider.copy_object("src", "copies/dst")
    assert provider.get_object("copies/dst") == b"payload"
    provider.delete_object("src")
    with pytest.raises(ObjectNotFoundError):
        provider.get_object("src")
    with pytest.raises(ObjectNotFoundError):
        provider.delete_object("src")
    etag = provider.get_object_metadata("copies/dst").etag
    assert etag
    with pytest.raises(PreconditionFailedError):
        provider.delete_object("copies/dst", if_match="0" * 32)
    provider.delete_object("copies/dst", if_match=etag)
    assert not provider.is_file("copies/dst")


def test_delete_prefix(provider: S3StorageProvider) -> None:
    for key in ("tree/a", "tree/b/c", "tree-sibling", "treetop"):
        provider.put_object(key, b"1")
    for i in range(1005):  # more than one bulk request
        provider.put_object(f"bulk/{i:04d}", b"")
    assert provider.delete_prefix("bulk/") == 1005
    assert provider.delete_prefix("tree/") == 2
    assert keys(provider.list_objects("")) == ["tree-sibling", "treetop"]
    assert provider.delete_prefix("nothing/") == 0


# ---------------------------------------------------------------------------- conditional writes
def test_conditional_put(provider: S3StorageProvider, server: S3Server) -> None:
    with pytest.raises(ValueError, match="'v1'"):
        provider.put_object("cond", b"x", if_none_match="v1")
    provider.put_object("cond", b"first", if_none_match="*")
    etag = provider.get_object_metadata("cond").etag
    assert etag
    if server.enforces_conditional_writes:
        with pytest.raises(PreconditionFailedError):
            provider.put_object("cond", b"second", if_none_match="*")
        with pytest.raises(PreconditionFailedError):
            provider.put_object("cond", b"second", if_match="0" * 32)
        assert provider.get_object("cond") == b"first"
    provider.put_object("cond", b"third", if_match=etag)
    assert provider.get_object("cond") == b"third"


# ---------------------------------------------------------------------------- large transfers
@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    path.write_bytes(os.urandom(12 * MiB + 12345))
    return path


def test_multipart_upload_and_download(server: S3Server, big_file: Path, tmp_path: Path) -> None:
    provider = make_provider(server, multipart_threshold="5M", multipart_chunksize="5M", max_concurrency=4)
    data = big_file.read_bytes()
    provider.upload_file("big/from-path.bin", str(big_file))
    with big_file.open("rb") as fh:
        provider.upload_file("big/from-fileobj.bin", fh)
    for key in ("big/from-path.bin", "big/from-fileobj.bin"):
        meta = provider.get_object_metadata(key)
        assert meta.content_length == len(data)
        if server.name == "moto":
            assert meta.etag and meta.etag.endswith("-3")  # three 5 MiB parts
        target = tmp_path / "out" / "copy.bin"
        provider.download_file(key, str(target))
        assert target.read_bytes() == data
        buffer = io.BytesIO()
        provider.download_file(key, buffer, metadata=meta)
        assert buffer.getvalue() == data
        assert provider.get_object(key, Range(12 * MiB, 100)) == data[12 * MiB : 12 * MiB + 100]
    assert sorted(os.listdir(tmp_path / "out")) == ["copy.bin"]  # no temp file left behind


def test_download_failure_leaves_nothing(provider: S3StorageProvider, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    with pytest.raises(ObjectNotFoundError):
        provider.download_file("absent", str(target))
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []
    provider.put_object("present", b"abc")
    provider.download_file("present", str(target))
    assert target.read_bytes() == b"abc"


def test_small_upload_with_attributes(provider: S3StorageProvider, tmp_path: Path) -> None:
    src = tmp_path / "small.txt"
    src.write_bytes(b"small")
    provider.upload_file("up/small.txt", str(src), attributes={"k": "v"})
    meta = provider.get_object_metadata("up/small.txt")
    assert meta.content_length == 5 and meta.metadata == {"k": "v"}


# ---------------------------------------------------------------------------- retry classification
@pytest.fixture(scope="module")
def proxy(rclone: S3Server) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(rclone.endpoint_url)
    try:
        yield fault_proxy
    finally:
        fault_proxy.close()


@pytest.fixture
def proxied(rclone: S3Server, proxy: FaultProxy) -> Iterator[S3StorageProvider]:
    provider = make_provider(rclone, endpoint=proxy.url)
    provider.put_object("obj", b"data")
    yield provider
    proxy.clear()


def test_test_providers_retry_a_transient_answer(proxied: S3StorageProvider, proxy: FaultProxy) -> None:
    """The ``provider`` fixture's retrying wrapper: one 500 from the server is retried, not raised."""
    proxied.__class__ = retrying(type(proxied))
    proxy.fail_next(1, 500, "InternalError", method="PUT")
    proxied.put_object("retried", b"ok")
    assert proxy.injected_total == 1 and proxied.get_object("retried") == b"ok"


@pytest.mark.parametrize("status", [503, 500, 429, 502, 504, 408])
def test_transient_status_is_retryable(proxied: S3StorageProvider, proxy: FaultProxy, status: int) -> None:
    proxy.fail_next(2, status)
    for call in (lambda: proxied.get_object("obj"), lambda: proxied.put_object("obj", b"new")):
        with pytest.raises(RetryableError) as info:
            call()
        assert info.value.status == status
        assert "s3://" in str(info.value) and "Debug source" not in str(info.value)
    assert proxied.get_object("obj") == b"data"  # faults used up: the next request goes through


def test_transient_status_on_head_and_list(proxied: S3StorageProvider, proxy: FaultProxy) -> None:
    proxy.fail_next(1, 503)
    with pytest.raises(RetryableError) as info:
        proxied.get_object_metadata("obj")
    assert info.value.status == 503
    proxy.fail_next(1, 503)
    with pytest.raises(RetryableError):
        list(proxied.list_objects(""))
    assert keys(proxied.list_objects("")) == ["obj"]


def test_dropped_connection_is_retryable(proxied: S3StorageProvider, proxy: FaultProxy) -> None:
    proxy.fail_next(1, None)
    with pytest.raises(RetryableError) as info:
        proxied.get_object("obj")
    assert info.value.status is None
    assert proxied.get_object("obj") == b"data"


def test_connection_refused_is_retryable(rclone: S3Server) -> None:
    provider = make_provider(rclone, endpoint=f"http://127.0.0.1:{free_port()}", connect_timeout=2)
    with pytest.raises(RetryableError) as info:
        provider.get_object("obj")
    assert info.value.status is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, ObjectNotFoundError),
        (403, S3PermissionError),
        (401, S3PermissionError),
        (412, PreconditionFailedError),
    ],
)
def test_client_errors_are_not_retryable(
    proxied: S3StorageProvider, proxy: FaultProxy, status: int, expected: type[Exception]
) -> None:
    proxy.fail_next(1, status)
    with pytest.raises(expected) as info:
        proxied.get_object("obj")
    assert not isinstance(info.value, RetryableError)


def test_wrong_credentials_is_permission_error(rclone: S3Server) -> None:
    provider = S3StorageProvider(
        endpoint_url=rclone.endpoint_url,
        base_path=BUCKET,
        credentials_provider=StaticS3CredentialsProvider(rclone.access_key, "wrong-secret"),
    )
    with pytest.raises(PermissionError) as info:
        provider.get_object("anything")
    assert not isinstance(info.value, RetryableError)
    assert "wrong-secret" not in str(info.value)


# ---------------------------------------------------------------------------- credentials
class ExpiringCredentials(CredentialsProvider):
    """Hands out a bad, already expired key until refreshed."""

    def __init__(self, srv: S3Server) -> None:
        self.srv = srv
        self.refreshed = 0

    def get_credentials(self) -> Credentials:
        if not self.refreshed:
            return Credentials(self.srv.access_key, "stale", None, expiration="2000-01-01T00:00:00Z")
        expiry = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
        return Credentials(self.srv.access_key, self.srv.secret_key, None, expiration=expiry)

    def refresh_credentials(self) -> None:
        self.refreshed += 1


def test_expired_credentials_are_refreshed(rclone: S3Server) -> None:
    creds = ExpiringCredentials(rclone)
    provider = S3StorageProvider(
        endpoint_url=rclone.endpoint_url, base_path=BUCKET, credentials_provider=creds
    )
    provider.put_object("refreshed", b"ok")
    assert provider.get_object("refreshed") == b"ok"
    assert creds.refreshed == 1


def test_default_chain_env_and_anonymous(
    server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    from_env = S3StorageProvider(base_path=f"{BUCKET}/env")
    from_env.put_object("env-key", b"env")
    assert from_env.get_object("env-key") == b"env"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    creds_file = tmp_path / "credentials"
    creds_file.write_text(
        f"[named]\naws_access_key_id = {server.access_key}\naws_secret_access_key = {server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds_file))
    from_boto3 = S3StorageProvider(base_path=f"{BUCKET}/env", profile_name="named")
    assert from_boto3.get_object("env-key") == b"env"
    with pytest.raises(ConfigError, match="boto3"):
        S3StorageProvider(base_path=f"{BUCKET}/env", profile_name="missing").get_object("env-key")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    anonymous = S3StorageProvider(base_path=f"{BUCKET}/env")
    assert anonymous._store_config()[0]["skip_signature"] is True
    with pytest.raises(ManystoreError):  # the objects are private: unsigned requests are refused
        anonymous.get_object("env-key")


# ---------------------------------------------------------------------------- fork safety, pickling
def _child_roundtrip(provider: S3StorageProvider, task: int) -> tuple[bytes, bool]:
    data = provider.get_object("fork/parent")
    # keyed by task: the pool may run both tasks in one worker process
    provider.put_object(f"fork/child-{task}", b"from child")
    return data, provider._store_pid == os.getpid()


def test_fork_after_use(provider: S3StorageProvider) -> None:
    """A child forked while obstore's runtime runs gets a working store of its own (no hang)."""
    provider.put_object("fork/parent", b"from parent")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.starmap_async(_child_roundtrip, [(provider, 0), (provider, 1)], chunksize=1).get(
            timeout=60
        )
    assert results == [(b"from parent", True)] * 2
    assert len(keys(provider.list_objects("fork/child-"))) == 2
    assert provider.get_object("fork/parent") == b"from parent"  # the parent is unaffected


def test_fork_fallback_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import obstore

    from manystore.providers import _obstore

    monkeypatch.setattr(obstore._obstore, "__file__", "/nonexistent/_obstore.so")
    with pytest.raises(ObstoreForkError, match="spawn"):
        _obstore._load_private_obstore()


FORK_SCRIPT = """
import multiprocessing, os, sys
from manystore.providers.s3 import S3StorageProvider, StaticS3CredentialsProvider
from manystore.retry import call_with_retry
from manystore.types import RetryConfig

endpoint, access, secret, base = sys.argv[1:5]
provider = S3StorageProvider(endpoint_url=endpoint, base_path=base,
                             credentials_provider=StaticS3CredentialsProvider(access, secret))
RETRY = RetryConfig(attempts=5, delay=0.05)  # a real server may answer one request with a 500

def put(key, body):
    call_with_retry(lambda: provider.put_object(key, body), RETRY, f"put {key}")

def get(key):
    return call_with_retry(lambda: provider.get_object(key), RETRY, f"get {key}")

def work(i):
    put(f"child-{i}", str(os.getpid()).encode())
    return get(f"child-{i}").decode() == str(os.getpid()) and provider._store_pid == os.getpid()

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:  # forked before this process made any request
        print("before-use", pool.map(work, range(2)))
    put("parent", b"p")
    print("parent", get("parent") == b"p")
    with ctx.Pool(2) as pool:  # forked while the runtime runs: private obstore copy in each child
        print("after-use", pool.map(work, range(2, 4)))
"""


def test_fork_in_fresh_process(server: S3Server) -> None:
    """In a fresh interpreter: children forked before and after the parent's first request work."""
    import subprocess
    import sys

    import manystore

    src = str(Path(manystore.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    args = [server.endpoint_url, server.access_key, server.secret_key, f"{BUCKET}/{uuid.uuid4().hex[:8]}"]
    out = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["before-use [True, True]", "parent True", "after-use [True, True]"]


def test_pickle_drops_store(provider: S3StorageProvider) -> None:
    provider.put_object("pickled", b"p")
    clone = pickle.loads(pickle.dumps(provider))
    assert clone._store is None
    assert clone.get_object("pickled") == b"p"


# ---------------------------------------------------------------------------- configuration
def test_repr_hides_secrets(server: S3Server) -> None:
    provider = make_provider(server, prefix="some/prefix")
    text = repr(provider)
    assert text == f"S3StorageProvider(bucket='{BUCKET}', prefix='some/prefix')"
    creds = StaticS3CredentialsProvider("AKIAEXAMPLEKEY", "super-secret", "session-token")
    assert "super-secret" not in repr(creds) and "session-token" not in repr(creds)
    assert creds.get_credentials().secret_key == "super-secret"


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="multipart_treshold"):
        S3StorageProvider(base_path="b-b-b", multipart_treshold=1)
    with pytest.raises(ConfigError, match="addressing_style"):
        S3StorageProvider(base_path="b-b-b", addressing_style="sideways")
    with pytest.raises(ConfigError, match="max_concurrency"):
        S3StorageProvider(base_path="b-b-b", max_concurrency=0)
    assert S3StorageProvider(base_path="").bucketless  # 1.3.1: keys then start with the bucket
    ok = S3StorageProvider(
        base_path="b-b-b/p",
        endpoint_url="https://s3.example.com",
        multipart_threshold="128M",
        multipart_chunksize=8 * MiB,
        max_concurrency=4,
        connect_timeout=5,
        read_timeout=30,
        force_path_style=True,
        verify=False,
        request_payer=True,
        rust_client={"max_concurrency": 2},
    )
    assert ok.provider_name == "s3" and ok.supports_conditional_writes
    assert ok.bucket == "b-b-b" and ok.base_path == "b-b-b/p"


def test_virtual_hosted_endpoint(server: S3Server) -> None:
    provider = make_provider(server, addressing_style="virtual")
    config, _, _ = provider._store_config()
    assert config["endpoint"] == server.endpoint_url.replace("://", f"://{BUCKET}.")
    assert config["virtual_hosted_style_request"] is True


def test_subclass_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # building configs may consult boto3's chain
    gcs = GoogleS3StorageProvider(base_path="gbucket")
    assert gcs.provider_name == "gcs_s3" and gcs._endpoint == "https://storage.googleapis.com"
    assert gcs._store_config()[0]["disable_bulk_delete"] is True
    monkeypatch.setenv("AIS_ENDPOINT", "http://ais.local:8080/")
    ais = AIStoreS3StorageProvider(base_path="abucket")
    assert ais.provider_name == "ais_s3" and ais._endpoint == "http://ais.local:8080/s3"
    assert not ais._virtual_hosted and ais._allow_http
    token = Credentials("ais", "", "jwt-token", None)
    token_provider = type("T", (CredentialsProvider,), {"get_credentials": lambda self: token})()
    with_token = AIStoreS3StorageProvider(base_path="abucket", credentials_provider=token_provider)
    config, client, callback = with_token._store_config()
    assert config["skip_signature"] and callback is None
    assert client["default_headers"] == {"Authorization": "Bearer jwt-token"}
    assert "jwt-token" not in repr(with_token)
    monkeypatch.delenv("AIS_ENDPOINT")
    with pytest.raises(ConfigError, match="AIS_ENDPOINT"):
        AIStoreS3StorageProvider(base_path="abucket")
    assert S8KStorageProvider(base_path="sbucket").provider_name == "s8k"


def test_s8k_infers_content_type(server: S3Server) -> None:
    s8k = S8KStorageProvider(
        region_name=server.region,
        endpoint_url=server.endpoint_url,
        base_path=f"{BUCKET}/{uuid.uuid4().hex[:8]}",
        credentials_provider=StaticS3CredentialsProvider(server.access_key, server.secret_key),
        infer_content_type=True,
    )
    s8k.put_object("clip.wav", b"RIFF")
    assert s8k.get_object_metadata("clip.wav").content_type in ("audio/x-wav", "audio/wav")


@pytest.mark.parametrize("provider_type", ["s3", "s8k", "gcs_s3", "ais_s3"])
def test_s3_compatible_types_work_from_config(rclone_server: S3Server, provider_type: str) -> None:
    """Every S3-compatible ``type`` is a thin configuration of the S3 provider: same wire protocol."""
    from manystore import StorageClient, StorageClientConfig

    profile = {
        "storage_provider": {
            "type": provider_type,
            "options": {"base_path": "manystore-test/variants", "endpoint_url": rclone_server.endpoint_url},
        },
        "credentials_provider": {
            "type": "S3Credentials",
            "options": {"access_key": rclone_server.access_key, "secret_key": rclone_server.secret_key},
        },
    }
    client = StorageClient(StorageClientConfig.from_dict({"profiles": {"v": profile}}, "v"))
    assert client.config.storage_provider.provider_name == provider_type  # type: ignore[attr-defined]
    client.write(f"{provider_type}.bin", b"variant")
    assert client.read(f"{provider_type}.bin") == b"variant"
    assert f"{provider_type}.bin" in [m.key for m in client.list("")]


def test_multipart_upload_to_a_missing_bucket_raises_bucket_not_found(
    server: S3Server, tmp_path: Path
) -> None:
    """A multipart upload into a bucket that does not exist fails at once as BucketNotFoundError
    (not as an "unclear outcome" to retry: nothing can have been stored)."""
    from manystore.errors import BucketNotFoundError

    provider = S3StorageProvider(
        region_name=server.region,
        endpoint_url=server.endpoint_url,
        base_path=f"no-such-bucket-{uuid.uuid4().hex[:8]}",
        credentials_provider=StaticS3CredentialsProvider(server.access_key, server.secret_key),
        multipart_threshold="5M",
        multipart_chunksize="5M",
    )
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * MiB))
    with pytest.raises(BucketNotFoundError, match="does not exist"):
        provider.upload_file("x", str(big))
