"""Azure-specific tests of :mod:`manystore.providers.azure` on a real Azurite blob service."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import manystore
from manystore import StorageClient, StorageClientConfig
from manystore.errors import (
    ConfigError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ProviderUnavailableError,
)
from manystore.providers.azure import (
    AzureBlobStorageProvider,
    DefaultAzureCredentialsProvider,
    StaticAzureCredentialsProvider,
    parse_connection_string,
)
from manystore.types import Range
from manystore.urls import implicit_profile_config, parse_url
from tests.retrying import retrying

from . import servers_azure
from .servers_azure import CONTAINER, AzuriteServer

SECRET = "c2VjcmV0LWtleS1ub3QtcmVhbA=="
MiB = 1 << 20


@pytest.fixture(scope="module")
def server() -> Iterator[AzuriteServer]:
    srv = servers_azure.start()
    yield srv
    srv.stop()


def make_provider(server: AzuriteServer, **options: object) -> AzureBlobStorageProvider:
    return AzureBlobStorageProvider(
        endpoint_url=server.endpoint_url,
        base_path=f"{CONTAINER}/{uuid.uuid4().hex[:10]}",
        credentials_provider=StaticAzureCredentialsProvider(server.connection_string),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def provider(server: AzuriteServer) -> AzureBlobStorageProvider:
    """A provider whose calls go through retries (the server may answer one with a 500)."""
    plain = make_provider(server)
    plain.__class__ = retrying(type(plain))
    return plain


def keys(items: Iterator[manystore.ObjectMetadata]) -> list[str]:
    return [m.key for m in items]


# ---------------------------------------------------------------------------- connection strings
def test_connection_string_parsing() -> None:
    conn = parse_connection_string(
        f"DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={SECRET};EndpointSuffix=core.windows.net"
    )
    assert (conn.account_name, conn.account_key, conn.sas_token) == ("acct1", SECRET, None)
    assert conn.blob_endpoint == "https://acct1.blob.core.windows.net"
    sas = parse_connection_string(
        "BlobEndpoint=https://acct2.blob.core.windows.net/;SharedAccessSignature=?sv=1&sig=x"
    )
    assert (sas.account_name, sas.sas_token, sas.blob_endpoint) == (
        "acct2", "sv=1&sig=x", "https://acct2.blob.core.windows.net",
    )  # fmt: skip
    dev = parse_connection_string("UseDevelopmentStorage=true")
    assert dev.account_name == "devstoreaccount1" and dev.blob_endpoint.startswith("http://127.0.0.1:10000/")


@pytest.mark.parametrize(
    ("connection", "missing"),
    [
        (f"AccountKey={SECRET}", "AccountName"),
        ("AccountName=acct1;DefaultEndpointsProtocol=https", "neither AccountKey nor SharedAccessSignature"),
        (f"AccountName=acct1;AccountKey={SECRET};garbage", "malformed"),
        ("", "empty"),
    ],
)
def test_bad_connection_string(connection: str, missing: str) -> None:
    with pytest.raises(ConfigError, match=missing) as info:
        StaticAzureCredentialsProvider(connection)
    assert SECRET not in str(info.value)


def test_secret_never_shown(server: AzuriteServer) -> None:
    creds = StaticAzureCredentialsProvider(f"AccountName=acct1;AccountKey={SECRET}")
    provider = AzureBlobStorageProvider(base_path="c/p", credentials_provider=creds)
    assert provider.account_name == "acct1"
    assert provider._endpoint == "https://acct1.blob.core.windows.net"
    for text in (repr(creds), str(creds), repr(creds.get_credentials()), repr(provider), str(provider)):
        assert SECRET not in text and SECRET[:8] not in text
    assert repr(provider) == "AzureBlobStorageProvider(container='c', prefix='p')"
    assert creds.get_credentials().secret_key == SECRET


def test_wrong_key_is_permission_error(server: AzuriteServer) -> None:
    conn = server.connection_string.replace(servers_azure.ACCOUNT_KEY, SECRET)
    bad = AzureBlobStorageProvider(
        endpoint_url=server.endpoint_url,
        base_path=CONTAINER,
        credentials_provider=StaticAzureCredentialsProvider(conn),
    )
    with pytest.raises(PermissionError) as info:
        bad.get_object("anything")
    assert SECRET not in str(info.value)


def test_options_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        AzureBlobStorageProvider(base_path="c")
    with pytest.raises(ConfigError, match="addressing_style"):
        AzureBlobStorageProvider("https://a.blob.core.windows.net", "c", addressing_style="path")
    with pytest.raises(ConfigError, match="max_concurrency"):
        AzureBlobStorageProvider("https://a.blob.core.windows.net", "c", max_concurrency=0)
    # 1.3.1: an empty base_path makes the first key component the container.
    assert AzureBlobStorageProvider("https://a.blob.core.windows.net", "").bucketless
    with pytest.raises(ConfigError, match="http"):
        AzureBlobStorageProvider("a.blob.core.windows.net", "c")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "envacct")
    derived = AzureBlobStorageProvider(base_path="c")
    assert (derived.account_name, derived._endpoint) == ("envacct", "https://envacct.blob.core.windows.net")


def test_default_credentials_need_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # as if azure-identity were not installed
    with pytest.raises(ProviderUnavailableError, match="pip install azure-identity"):
        DefaultAzureCredentialsProvider()


# ---------------------------------------------------------------------------- operations
def test_put_get_ranges_and_metadata(provider: AzureBlobStorageProvider) -> None:
    provider.put_object("dir/obj", b"0123456789", attributes={"owner": "me"})
    assert provider.get_object("dir/obj") == b"0123456789"
    assert provider.get_object("dir/obj", Range(2, 3)) == b"234"
    assert provider.get_object("dir/obj", Range(8, 10)) == b"89"
    meta = provider.get_object_metadata("dir/obj")
    assert (meta.key, meta.content_length, meta.type) == ("dir/obj", 10, "file")
    assert meta.metadata == {"owner": "me"}
    assert provider.get_object_metadata("dir", strict=False).type == "directory"
    with pytest.raises(ObjectNotFoundError, match=f"az://{CONTAINER}/"):
        provider.get_object("dir/missing")
    with pytest.raises(ObjectNotFoundError):
        provider.delete_object("dir/missing")


def test_conditional_writes(provider: AzureBlobStorageProvider, server: AzuriteServer) -> None:
    assert server.enforces_conditional_writes
    provider.put_object("cond", b"v1", if_none_match="*")
    with pytest.raises(PreconditionFailedError):
        provider.put_object("cond", b"v2", if_none_match="*")
    etag = provider.get_object_metadata("cond").etag
    assert etag
    with pytest.raises(PreconditionFailedError):
        provider.put_object("cond", b"v2", if_match="0x0000000000000000")
    provider.put_object("cond", b"v2", if_match=etag)
    assert provider.get_object("cond") == b"v2"
    with pytest.raises(PreconditionFailedError):
        provider.get_object("cond", if_match=etag)  # the ETag changed with the write
    with pytest.raises(PreconditionFailedError):
        provider.delete_object("cond", if_match=etag)


def test_streaming_writer_abort_leaves_no_blob(provider: AzureBlobStorageProvider) -> None:
    small = make_provider_like(provider, multipart_chunksize="1M")
    writer = small.open_writer("stream/aborted")
    writer.write(os.urandom(3 * MiB))  # several blocks already uploaded
    writer.abort()
    assert keys(small.list_objects("stream/")) == []
    with pytest.raises(ObjectNotFoundError):
        small.get_object_metadata("stream/aborted")
    writer = small.open_writer("stream/done")
    payload = os.urandom(3 * MiB + 5)
    writer.write(payload)
    writer.close()
    assert small.get_object("stream/done") == payload


def make_provider_like(provider: AzureBlobStorageProvider, **options: object) -> AzureBlobStorageProvider:
    return AzureBlobStorageProvider(
        endpoint_url=provider._endpoint,
        base_path=provider.base_path,
        credentials_provider=provider._credentials_provider,
        **options,  # type: ignore[arg-type]
    )


def test_large_object_parallel_ranges(provider: AzureBlobStorageProvider, tmp_path: Path) -> None:
    tuned = make_provider_like(
        provider, multipart_chunksize="1M", multipart_threshold="2M", io_chunksize="256K"
    )
    payload = os.urandom(5 * MiB + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    tuned.upload_file("big.bin", str(source))  # block upload
    calls: list[tuple[int, int]] = []
    original = tuned._read_range

    def spy(key: str, lo: int, hi: int, options: dict[str, object]) -> object:
        calls.append((lo, hi))
        return original(key, lo, hi, options)

    tuned._read_range = spy  # type: ignore[method-assign]
    assert tuned.get_object("big.bin") == payload
    assert len(calls) >= 5
    target = tmp_path / "out" / "big.bin"
    tuned.download_file("big.bin", str(target))
    assert target.read_bytes() == payload
    assert [p.name for p in target.parent.iterdir()] == ["big.bin"]  # no temp file left


def test_copy_list_and_delete_prefix(provider: AzureBlobStorageProvider) -> None:
    for key in ("a/1", "a/2", "a/sub/3", "ab", "b"):
        provider.put_object(key, key.encode())
    provider.copy_object("a/1", "c/1")
    assert provider.get_object("c/1") == b"a/1"
    assert keys(provider.list_objects("a")) == ["a/1", "a/2", "a/sub/3", "ab"]
    assert keys(provider.list_objects("a/", start_after="a/1", end_at="a/2")) == ["a/2"]
    assert keys(provider.list_objects("a/", include_directories=True)) == ["a/1", "a/2", "a/sub"]
    assert provider.delete_prefix("a/") == 3
    assert keys(provider.list_objects("")) == ["ab", "b", "c/1"]


def _child_roundtrip(provider: AzureBlobStorageProvider, task: int) -> tuple[bytes, bool]:
    data = provider.get_object("fork/parent")
    # keyed by task: the pool may run both tasks in one worker process
    provider.put_object(f"fork/child-{task}", b"from child")
    return data, provider._store_pid == os.getpid()


def test_fork_after_use(provider: AzureBlobStorageProvider) -> None:
    """A child forked while obstore's runtime runs builds its own AzureStore (no hang)."""
    provider.put_object("fork/parent", b"from parent")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        tasks = [(provider, 0), (provider, 1)]
        results = pool.starmap_async(_child_roundtrip, tasks, chunksize=1).get(timeout=60)
    assert results == [(b"from parent", True)] * 2
    assert len(keys(provider.list_objects("fork/child-"))) == 2
    assert provider.get_object("fork/parent") == b"from parent"


def test_pickle_and_config(server: AzuriteServer) -> None:
    config = {"profiles": {"t": servers_azure.profile(server, uuid.uuid4().hex)}}
    client = StorageClient(StorageClientConfig.from_dict(config, "t"))
    client.write("p", b"x")
    clone = pickle.loads(pickle.dumps(client))
    assert clone.read("p") == b"x"


# ---------------------------------------------------------------------------- implicit profiles, URLs
def test_implicit_az_profile_from_env(server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    base = uuid.uuid4().hex[:8]
    manystore.write(f"az://{CONTAINER}/{base}/hello.txt", b"hi azure")
    assert manystore.read(f"az://{CONTAINER}/{base}/hello.txt") == b"hi azure"
    assert [m.key for m in manystore.list(f"az://{CONTAINER}/{base}/")] == [
        f"az://{CONTAINER}/{base}/hello.txt"
    ]


def test_implicit_profile_with_account_key_env(
    server: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", servers_azure.ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", servers_azure.ACCOUNT_KEY)
    provider = AzureBlobStorageProvider(endpoint_url=server.endpoint_url, base_path=CONTAINER)
    provider.put_object(f"envkey-{uuid.uuid4().hex[:6]}", b"k")


def test_https_blob_url_parsing() -> None:
    parsed = parse_url("https://myacct.blob.core.windows.net/my-container/dir/key.bin")
    assert parsed.profile == "_azblob-myacct-my-container"
    assert parsed.path == "dir/key.bin"
    assert implicit_profile_config(parsed.profile) == {
        "storage_provider": {
            "type": "azure",
            "options": {"endpoint_url": "https://myacct.blob.core.windows.net", "base_path": "my-container"},
        }
    }
    assert parse_url("https://MyAcct.blob.core.windows.net/c").profile == "_azblob-myacct-c"
    assert implicit_profile_config("_azblob-acct") is None
    for bad in (
        "https://myacct.blob.core.windows.net/",
        "https://my-acct.blob.core.windows.net/c/k",
        "https://myacct.blob.core.windows.net/c/k?sv=1&sig=x",
        "https://example.com/c/k",
    ):
        with pytest.raises(manystore.errors.InvalidURLError):
            parse_url(bad)


def test_https_blob_url_builds_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", f"AccountName=myacct;AccountKey={SECRET}")
    config = StorageClientConfig.from_dict({}, "_azblob-myacct-data")
    provider = StorageClient(config)._storage_provider
    assert isinstance(provider, AzureBlobStorageProvider)
    assert (provider.account_name, provider.container, provider._endpoint) == (
        "myacct", "data", "https://myacct.blob.core.windows.net",
    )  # fmt: skip
    assert provider._store_config()[0]["account_key"] == SECRET
