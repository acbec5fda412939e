"""OCI Object Storage and AIStore (native) providers.

No OCI tenancy or AIStore cluster runs here: these tests cover construction, options, validation,
``repr``, missing-SDK / missing-config errors, error translation of SDK exceptions built by hand, and
the request mapping against a stand-in SDK client. The contract run at the end executes only when
a real service is configured through the environment.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from manystore import Range, StorageClientConfig
from manystore.errors import (
    ConfigError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ProviderUnavailableError,
    RetryableError,
)

from .servers import free_port

oci = pytest.importorskip("oci")
aistore_sdk = pytest.importorskip("aistore.sdk")

from manystore.providers import ais as ais_mod  # noqa: E402
from manystore.providers import oci as oci_mod  # noqa: E402
from manystore.providers.ais import AIStoreStorageProvider, StaticAISCredentialProvider  # noqa: E402
from manystore.providers.oci import OracleStorageProvider  # noqa: E402

SECRET_TOKEN = "ais-token-" + "s3cr3t" * 4


def test_import_manystore_loads_no_cloud_sdk() -> None:
    code = (
        "import sys, manystore, manystore.providers.oci, manystore.providers.ais, "
        "manystore.providers.file_credentials\n"
        "bad = [m for m in ('oci', 'aistore') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ============================================================================= OCI
@pytest.fixture
def oci_config(tmp_path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "oci_api_key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    config = tmp_path / "oci_config"
    config.write_text(
        "[DEFAULT]\n"
        "user=ocid1.user.oc1..aaaa\n"
        "fingerprint=20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34\n"
        "tenancy=ocid1.tenancy.oc1..aaaa\n"
        "region=us-ashburn-1\n"
        f"key_file={key_file}\n"
        "[OTHER]\n"
        "user=ocid1.user.oc1..bbbb\n"
        "fingerprint=20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34\n"
        "tenancy=ocid1.tenancy.oc1..bbbb\n"
        "region=eu-frankfurt-1\n"
        f"key_file={key_file}\n"
    )
    return config


def make_oci(oci_config: Path, **options: Any) -> OracleStorageProvider:
    options.setdefault("base_path", "bucket/pre")
    return OracleStorageProvider("mynamespace", config_file=str(oci_config), **options)


def test_oci_construction_and_repr(oci_config: Path) -> None:
    p = make_oci(oci_config, profile="OTHER", timeout=[3, 7], multipart_chunksize="8M")
    assert (p.namespace, p.bucket, p.provider_name) == ("mynamespace", "bucket", "oci")
    text = repr(p)
    assert "mynamespace" in text and "bucket" in text and "OTHER" in text
    assert "key_file" not in text and "BEGIN" not in text
    client = p._oci()
    assert isinstance(client.retry_strategy, oci.retry.NoneRetryStrategy)
    assert client.base_client.timeout == (3.0, 7.0)
    assert p._config["region"] == "eu-frankfurt-1"
    assert p._oci() is client  # one client per process
    p._client_pid = -2  # as seen from a forked child
    assert p._oci() is not client
    clone = pickle.loads(pickle.dumps(p))
    assert clone._client is None and clone.bucket == "bucket"


def test_oci_env_defaults(oci_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONFIG_FILE", str(oci_config))
    monkeypatch.setenv("OCI_CLI_PROFILE", "OTHER")
    p = OracleStorageProvider("ns", base_path="b")
    assert p._config["region"] == "eu-frankfurt-1"


def test_oci_sdk_retries_only_when_asked(oci_config: Path) -> None:
    p = make_oci(oci_config, retry_strategy={"max_attempts_check": True, "max_attempts": 2})
    assert not isinstance(p._oci().retry_strategy, oci.retry.NoneRetryStrategy)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"base_path": ""}, "bucket name"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": (1, 2, 3)}, "timeout"),
        ({"multipart_threshold": "lots"}, "multipart_threshold"),
        ({"max_concurrency": -1}, "max_concurrency"),
        ({"retry_strategy": "yes"}, "retry_strategy"),
        ({"bogus_option": 1}, "bogus_option"),
        ({"profile": "MISSING"}, "MISSING"),
    ],
)
def test_oci_invalid_options(oci_config: Path, options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        make_oci(oci_config, **options)


def test_oci_bad_namespace_and_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="namespace"):
        OracleStorageProvider("  ", base_path="b", config_file=str(tmp_path / "x"))
    missing = tmp_path / "no-such-config"
    with pytest.raises(ConfigError, match="does not exist") as info:
        OracleStorageProvider("ns", base_path="b", config_file=str(missing))
    assert str(missing) in str(info.value)
    incomplete = tmp_path / "incomplete"
    incomplete.write_text("[DEFAULT]\nregion=us-ashburn-1\n")
    with pytest.raises(ConfigError, match="not usable"):
        OracleStorageProvider("ns", base_path="b", config_file=str(incomplete))


def test_oci_missing_sdk(monkeypatch: pytest.MonkeyPatch, oci_config: Path) -> None:
    monkeypatch.setitem(sys.modules, "oci", None)
    with pytest.raises(ProviderUnavailableError, match=r"pip install 'manystore\[oci\]'"):
        make_oci(oci_config)
    config = {
        "profiles": {
            "o": {
                "storage_provider": {
                    "type": "oci",
                    "options": {"namespace": "ns", "base_path": "b", "config_file": str(oci_config)},
                }
            }
        }
    }
    with pytest.raises(ConfigError, match=r"manystore\[oci\]"):
        StorageClientConfig.from_dict(config, "o")


def _service_error(status: int, code: str = "X") -> Exception:
    return oci.exceptions.ServiceError(status, code, {"opc-request-id": "req-1"}, f"msg {code}")


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "ObjectNotFound", ObjectNotFoundError),
        (412, "IfMatchFailed", PreconditionFailedError),
        (409, "IfNoneMatchFailed", PreconditionFailedError),
        (429, "TooManyRequests", RetryableError),
        (500, "InternalServerError", RetryableError),
        (503, "ServiceUnavailable", RetryableError),
        (401, "NotAuthenticated", oci_mod.OCIPermissionError),
        (403, "Forbidden", oci_mod.OCIPermissionError),
        (400, "InvalidParameter", oci_mod.OCIProviderError),
    ],
)
def test_oci_error_translation(status: int, code: str, expected: type[Exception]) -> None:
    err = oci_mod.translate_error(_service_error(status, code), "oci://b/k")
    assert isinstance(err, expected)
    assert "oci://b/k" in str(err) and str(status) in str(err) and "req-1" in str(err)
    if expected is RetryableError:
        assert isinstance(err, RetryableError) and err.status == status
    if expected is ObjectNotFoundError:
        assert isinstance(err, FileNotFoundError)


def test_oci_connection_errors_are_retryable() -> None:
    import requests

    for raw in (requests.exceptions.ConnectionError("refused"), requests.exceptions.ReadTimeout("slow")):
        err = oci_mod.translate_error(raw, "oci://b/k")
        assert isinstance(err, RetryableError) and err.status is None


class FakeOCIClient:
    """Records calls; answers like ObjectStorageClient for a tiny in-memory bucket."""

    def __init__(self, names: list[str]) -> None:
        self.names = sorted(names)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def list_objects(self, **kw: Any) -> Any:
        self.calls.append(("list_objects", kw))
        start = kw.get("start") or ""
        after = kw.get("start_after")
        hits = [
            n
            for n in self.names
            if n.startswith(kw["prefix"]) and n >= start and (after is None or n > after)
        ]
        prefixes: list[str] = []
        if kw.get("delimiter"):
            objs = []
            for n in hits:
                rest = n[len(kw["prefix"]) :]
                if "/" in rest:
                    p = kw["prefix"] + rest.split("/", 1)[0] + "/"
                    if p not in prefixes:
                        prefixes.append(p)
                else:
                    objs.append(n)
            hits = objs
        page, more = hits[:2], hits[2:]  # tiny pages to exercise paging
        when = datetime(2024, 1, 1, tzinfo=timezone.utc)
        objects = [SimpleNamespace(name=n, size=len(n), etag=f"e-{n}", time_modified=when) for n in page]
        return SimpleNamespace(
            data=SimpleNamespace(
                objects=objects, prefixes=prefixes, next_start_with=more[0] if more else None
            )
        )

    def get_object(self, **kw: Any) -> Any:
        self.calls.append(("get_object", kw))
        if kw.get("range") == "bytes=100-109":
            raise _service_error(416, "InvalidRange")
        return SimpleNamespace(data=SimpleNamespace(content=b"data"))

    def put_object(self, **kw: Any) -> Any:
        self.calls.append(("put_object", kw))
        if kw.get("if_none_match") == "*":
            raise _service_error(409, "IfNoneMatchFailed")
        return SimpleNamespace(headers={})


def test_oci_request_mapping(oci_config: Path) -> None:
    p = make_oci(oci_config, base_path="bucket/root")
    fake = FakeOCIClient(["root/a/1", "root/a/2", "root/a/b/3", "root/ab", "root/c", "other"])
    p._client, p._client_pid = fake, os.getpid()
    assert [m.key for m in p.list_objects("a")] == ["a/1", "a/2", "a/b/3", "ab"]
    assert [m.key for m in p.list_objects("a/", start_after="a/1", end_at="a/b/3")] == ["a/2", "a/b/3"]
    assert (
        fake.calls[-1][1]["namespace_name"] == "mynamespace" and fake.calls[-1][1]["bucket_name"] == "bucket"
    )
    listing = list(p.list_objects("a/", include_directories=True))
    assert [(m.key, m.type) for m in listing] == [("a/1", "file"), ("a/2", "file"), ("a/b", "directory")]
    assert p.get_object("x", Range(0, 4)) == b"data"
    assert fake.calls[-1][1]["range"] == "bytes=0-3" and fake.calls[-1][1]["object_name"] == "root/x"
    assert p.get_object("x", Range(100, 10)) == b""
    p.put_object("k", b"v", attributes={"m": "1"}, if_match="etag-1")
    sent = fake.calls[-1][1]
    assert sent["opc_meta"] == {"m": "1"} and sent["if_match"] == "etag-1" and sent["object_name"] == "root/k"
    with pytest.raises(PreconditionFailedError):
        p.put_object("k", b"v", if_none_match="*")
    with pytest.raises(ValueError):
        p.put_object("k", b"v", if_none_match="etag")


def test_oci_contract() -> None:
    namespace, bucket = os.environ.get("OCI_NAMESPACE"), os.environ.get("OCI_TEST_BUCKET")
    if not namespace or not bucket:
        pytest.skip("no OCI Object Storage reachable: set OCI_NAMESPACE and OCI_TEST_BUCKET")
    run_contract(OracleStorageProvider(namespace, base_path=f"{bucket}/manystore-{uuid.uuid4().hex}"))


# ============================================================================= AIStore
@pytest.fixture
def ais_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_ais_construction_repr_and_token(ais_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIS_AUTHN_TOKEN", raising=False)
    p = AIStoreStorageProvider(endpoint=ais_endpoint, base_path="bkt/sub", token=SECRET_TOKEN, timeout=(2, 5))
    assert p.bucket == "bkt" and p.provider_name == "ais"
    assert SECRET_TOKEN not in repr(p) and ais_endpoint in repr(p)
    assert p._resolve_token() == SECRET_TOKEN
    bck = p._bck()
    assert bck.name == "bkt" and bck.provider.value == "ais" if hasattr(bck.provider, "value") else True
    assert p._client.bucket("bkt") is not None and p._timeout == (2.0, 5.0)
    client = p._client
    p._bck()
    assert p._client is client
    p._client_pid = -2  # as seen from a forked child
    p._bck()
    assert p._client is not client
    clone = pickle.loads(pickle.dumps(p))
    assert clone._client is None


def test_ais_token_sources(ais_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIS_AUTHN_TOKEN", "env-token")
    assert AIStoreStorageProvider(endpoint=ais_endpoint, base_path="b")._resolve_token() == "env-token"
    creds = StaticAISCredentialProvider(token="cred-token")
    p = AIStoreStorageProvider(endpoint=ais_endpoint, base_path="b", credentials_provider=creds)
    assert p._resolve_token() == "cred-token"
    monkeypatch.setenv("AIS_ENDPOINT", ais_endpoint + "/")
    assert AIStoreStorageProvider(base_path="b")._endpoint == ais_endpoint


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"base_path": ""}, "bucket name"),
        ({"endpoint": "ais-host:8080"}, "http"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": (1, 2, 3)}, "timeout"),
        ({"retry": 3}, "retry"),
        ({"provider": ""}, "provider"),
        ({"ca_cert": "/no/such/ca.pem"}, "ca_cert"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_ais_invalid_options(ais_endpoint: str, options: dict[str, Any], needle: str) -> None:
    options = {"endpoint": ais_endpoint, "base_path": "b", **options}
    with pytest.raises(ConfigError, match=needle):
        AIStoreStorageProvider(**options)


def test_ais_needs_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIS_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="AIS_ENDPOINT"):
        AIStoreStorageProvider(base_path="b")


def test_ais_missing_sdk(monkeypatch: pytest.MonkeyPatch, ais_endpoint: str) -> None:
    monkeypatch.setitem(sys.modules, "aistore", None)
    monkeypatch.setitem(sys.modules, "aistore.sdk", None)
    with pytest.raises(ProviderUnavailableError, match=r"pip install 'manystore\[ais\]'"):
        AIStoreStorageProvider(endpoint=ais_endpoint, base_path="b")


def test_ais_sdk_retries_off_by_default(ais_endpoint: str) -> None:
    p = AIStoreStorageProvider(endpoint=ais_endpoint, base_path="b", timeout=2)
    started = time.monotonic()
    with pytest.raises(RetryableError):
        p.get_object("k")
    assert time.monotonic() - started < 30  # one attempt: manystore's retry layer decides
    retried = AIStoreStorageProvider(endpoint=ais_endpoint, base_path="b", retry={"total": 2})
    assert retried._retry_config(aistore_sdk).http_retry.total == 2


def test_ais_credentials_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    static = StaticAISCredentialProvider(token=SECRET_TOKEN)
    assert static.get_credentials().token == SECRET_TOKEN
    assert SECRET_TOKEN not in repr(static) and SECRET_TOKEN not in repr(static.get_credentials())
    assert "token='***'" in repr(static)
    with pytest.raises(ConfigError, match="password"):
        StaticAISCredentialProvider(username="u", authn_endpoint="http://authn")

    from aistore.sdk.authn import AuthNClient

    logins: list[tuple[str, str]] = []

    def fake_login(self: Any, username: str, password: str, expires_in: Any = None) -> str:
        logins.append((username, password))
        return f"token-{len(logins)}"

    monkeypatch.setattr(AuthNClient, "login", fake_login)
    login = StaticAISCredentialProvider(
        username="alice", password="pw-secret", authn_endpoint="http://authn:1"
    )
    assert logins == []  # lazy
    assert login.get_credentials().token == "token-1"
    assert login.get_credentials().token == "token-1" and len(logins) == 1
    login.refresh_credentials()
    assert login.get_credentials().token == "token-2"
    assert "pw-secret" not in repr(login) and "token-2" not in repr(login)
    assert pickle.loads(pickle.dumps(login)).get_credentials().token == "token-2"


def test_ais_login_failure_hides_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from aistore.sdk.authn import AuthNClient
    from aistore.sdk.errors import AISError

    def refuse(self: Any, username: str, password: str, expires_in: Any = None) -> str:
        raise AISError(401, "invalid credentials", "http://authn:1/v1/users/alice", None)  # type: ignore[arg-type]

    monkeypatch.setattr(AuthNClient, "login", refuse)
    login = StaticAISCredentialProvider(
        username="alice", password="pw-secret", authn_endpoint="http://authn:1"
    )
    with pytest.raises(ais_mod.AISPermissionError) as info:
        login.get_credentials()
    assert "pw-secret" not in str(info.value) and "alice" in str(info.value)


def _ais_errors() -> list[tuple[Exception, type[Exception]]]:
    import requests
    from aistore.sdk import errors as e

    response = requests.Response()
    response.status_code = 502
    return [
        (e.ErrObjNotFound(404, "object not found", "http://x/v1/objects/b/k", None), ObjectNotFoundError),
        (e.AISError(404, "bucket does not exist", "http://x/v1/objects/b/k", None), ObjectNotFoundError),
        (e.AISError(412, "precondition", "u", None), PreconditionFailedError),
        (e.AISRetryableError(503, "busy", "u", None), RetryableError),
        (e.AISError(429, "slow down", "u", None), RetryableError),
        (e.AISError(401, "token expired", "u", None), ais_mod.AISPermissionError),
        (e.AISError(400, "bad request", "u", None), ais_mod.AISProviderError),
        (requests.HTTPError("bad gateway", response=response), RetryableError),
        (requests.exceptions.ConnectionError("refused"), RetryableError),
    ]


def test_ais_error_translation() -> None:
    for raw, expected in _ais_errors():
        err = ais_mod.translate_error(raw, "ais://b/k")
        assert isinstance(err, expected), (raw, err)
        assert "ais://b/k" in str(err)
        if expected is ObjectNotFoundError:
            assert isinstance(err, FileNotFoundError) and not isinstance(err, RetryableError)


class FakeBucket:
    """Stands in for ``aistore.sdk.Bucket`` over an in-memory name list."""

    def __init__(self, names: list[str]) -> None:
        self.names = sorted(names)

    def list_objects_iter(self, prefix: str = "", props: str = "", page_size: int = 0) -> Any:
        for n in self.names:
            if n.startswith(prefix):
                yield SimpleNamespace(name=n, size=3, checksum=f"c-{n}", atime="1700000000000000000")

    def object(self, key: str) -> Any:
        def get_reader(**kw: Any) -> Any:
            if kw.get("byte_range") == "bytes=100-109":
                from aistore.sdk.errors import AISError

                raise AISError(416, "range not satisfiable", "u", None)  # type: ignore[arg-type]
            return SimpleNamespace(read_all=lambda: b"abc"[: 2 if kw.get("byte_range") else 3])

        return SimpleNamespace(get_reader=get_reader)


def test_ais_listing_and_reads_against_stand_in(ais_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    p = AIStoreStorageProvider(endpoint=ais_endpoint, base_path="bkt/root")
    fake = FakeBucket(["root/a/1", "root/a/2", "root/a/b/3", "root/a/b.txt", "root/ab", "root/c"])
    monkeypatch.setattr(p, "_bck", lambda: fake)
    assert [m.key for m in p.list_objects("a")] == ["a/1", "a/2", "a/b.txt", "a/b/3", "ab"]
    assert [m.key for m in p.list_objects("a/", start_after="a/1", end_at="a/b.txt")] == ["a/2", "a/b.txt"]
    listing = list(p.list_objects("a/", include_directories=True))
    assert [(m.key, m.type) for m in listing] == [
        ("a/1", "file"),
        ("a/2", "file"),
        ("a/b", "directory"),
        ("a/b.txt", "file"),
    ]
    first = listing[0]
    assert first.etag == "c-root/a/1" and first.last_modified.year == 2023
    assert p.get_object("k") == b"abc"
    assert p.get_object("k", Range(0, 2)) == b"ab"
    assert p.get_object("k", Range(100, 10)) == b""


def test_ais_contract() -> None:
    if not os.environ.get("AIS_ENDPOINT"):
        pytest.skip("no AIStore cluster: set AIS_ENDPOINT to run the AIStore contract tests")
    bucket = os.environ.get("AIS_TEST_BUCKET", "manystore-test")
    from aistore.sdk import Client

    Client(os.environ["AIS_ENDPOINT"], token=os.environ.get("AIS_AUTHN_TOKEN")).bucket(bucket).create(
        exist_ok=True
    )
    run_contract(AIStoreStorageProvider(base_path=f"{bucket}/manystore-{uuid.uuid4().hex}"))


# ============================================================================= shared contract
def run_contract(p: Any) -> None:
    """The provider contract against a live service (an empty, unique prefix)."""
    p.put_object("dir/a.txt", b"hello world", attributes={"k": "v"})
    assert p.get_object("dir/a.txt") == b"hello world"
    assert p.get_object("dir/a.txt", Range(6, 5)) == b"world"
    assert p.get_object("dir/a.txt", Range(6, 100)) == b"world"
    meta = p.get_object_metadata("dir/a.txt")
    assert meta.content_length == 11 and meta.type == "file" and (meta.metadata or {}).get("k") == "v"
    assert meta.last_modified.tzinfo is not None
    with pytest.raises(ObjectNotFoundError):
        p.get_object("dir/missing")
    with pytest.raises(ObjectNotFoundError):
        p.get_object_metadata("dir/missing")
    assert p.get_object_metadata("dir", strict=False).type == "directory"
    for key in ("dir/b.txt", "dir/sub/c.txt", "dirx"):
        p.put_object(key, key.encode())
    assert [m.key for m in p.list_objects("dir")] == ["dir/a.txt", "dir/b.txt", "dir/sub/c.txt", "dirx"]
    assert [m.key for m in p.list_objects("dir/", start_after="dir/a.txt", end_at="dir/b.txt")] == [
        "dir/b.txt"
    ]
    level = [(m.key, m.type) for m in p.list_objects("dir/", include_directories=True)]
    assert level == [("dir/a.txt", "file"), ("dir/b.txt", "file"), ("dir/sub", "directory")]
    p.copy_object("dir/a.txt", "copy.txt")
    assert p.get_object("copy.txt") == b"hello world"
    with pytest.raises(ObjectNotFoundError):
        p.copy_object("dir/missing", "x")
    if p.supports_conditional_writes:
        with pytest.raises(PreconditionFailedError):
            p.put_object("copy.txt", b"x", if_none_match="*")
        with pytest.raises(PreconditionFailedError):
            p.delete_object("copy.txt", if_match="not-the-etag")
    p.upload_file("up.bin", io.BytesIO(b"\x00" * 1000))
    buf = io.BytesIO()
    p.download_file("up.bin", buf)
    assert buf.getvalue() == b"\x00" * 1000
    p.delete_object("copy.txt")
    with pytest.raises(ObjectNotFoundError):
        p.delete_object("copy.txt")
    for meta in list(p.list_objects("")):
        p.delete_object(meta.key)
