"""MSC 1.3.1 configuration semantics and configuration errors (no mocks: real files, real servers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.errors import ConfigError
from manystore.schema import config_problems


def _profile(type_name: str, **options: Any) -> dict[str, Any]:
    return {"profiles": {"p": {"storage_provider": {"type": type_name, "options": options}}}}


# ------------------------------------------------------------------ misspelt options
@pytest.mark.parametrize(
    ("type_name", "options", "bad", "closest"),
    [
        ("file", {"basepath": "/tmp"}, "basepath", "base_path"),
        ("s3", {"base_path": "b", "region": "us-east-1"}, "region", "region_name"),
        ("s3", {"base_path": "b", "endpoint": "http://x"}, "endpoint", "endpoint_url"),
        ("s8k", {"base_path": "b", "multipart_treshold": 5}, "multipart_treshold", "multipart_threshold"),
        (
            "azure",
            {"base_path": "c", "endpoint_url": "http://127.0.0.1:1/a", "io_chunk_size": 1},
            "io_chunk_size",
            "io_chunksize",
        ),
    ],
)
def test_misspelt_option_names_option_provider_and_closest(
    type_name: str, options: dict[str, Any], bad: str, closest: str
) -> None:
    with pytest.raises(ConfigError) as info:
        StorageClientConfig.from_dict(_profile(type_name, **options), "p")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert f"profiles.p.storage_provider.options.{bad}: unknown option {bad!r}" in message
    assert f"storage provider {type_name!r}" in message
    assert f"did you mean {closest!r}" in message


def test_misspelt_credentials_option() -> None:
    config = _profile("s3", base_path="b", endpoint_url="http://127.0.0.1:1")
    config["profiles"]["p"]["credentials_provider"] = {
        "type": "S3Credentials",
        "options": {"access_key": "a", "secret_keys": "s"},
    }
    with pytest.raises(
        ConfigError,
        match=r"unknown option 'secret_keys' for credentials provider 'S3Credentials' \(did you mean 'secret_key'\?\)",
    ):
        StorageClientConfig.from_dict(config, "p")


def test_option_check_skips_user_class_with_open_kwargs(tmp_path: Path) -> None:
    """A fully-qualified class whose ``**kwargs`` are its own business is not second-guessed."""
    config = _profile("tests.test_config_msc131.OpenKwargsProvider", base_path=str(tmp_path), anything=1)
    built = StorageClientConfig.from_dict(config, "p")
    assert built.storage_provider.kwargs == {"anything": 1}  # type: ignore[attr-defined]


from manystore.providers.posix_file import PosixFileStorageProvider  # noqa: E402


class OpenKwargsProvider(PosixFileStorageProvider):
    """A file provider keeping extra options (a user extension with bare ``**kwargs``)."""

    OPTIONS = None  # type: ignore[assignment]

    def __init__(self, base_path: str, **kwargs: Any) -> None:
        super().__init__(base_path)
        self.kwargs = kwargs


# ------------------------------------------------------------------ validate reports every error
_MANY_ERRORS = """\
profiles:
  a:
    storage_provider:
      type: file
      options: {basepath: /tmp}
  b:
    storage_provider:
      type: s3
      options: {base_path: bucket, region: us-east-1}
  c:
    storage_provder: {type: file}
  d:
    storage_provider:
      type: file
      options: {base_path: /tmp}
    retry: {attempts: 0}
cache:
  size: 10Q
  eviction_policy: {policy: newest}
"""


def test_config_errors_lists_every_problem(tmp_path: Path) -> None:
    from manystore.config import config_errors, load_config_file

    path = tmp_path / "many.yaml"
    path.write_text(_MANY_ERRORS)
    errors = config_errors(load_config_file(str(path)))
    joined = "\n".join(errors)
    assert len(errors) == 7, joined
    assert "profiles.c: missing 'storage_provider'" in joined
    assert (
        "profiles.c.storage_provder: unknown key 'storage_provder' (did you mean 'storage_provider'?)"
        in joined
    )
    assert "profiles.d.retry.attempts: invalid value 0; expected an int >= 1" in joined
    assert "cache.size: invalid size '10Q'" in joined
    assert "cache.eviction_policy.policy: 'newest' is not one of" in joined
    assert "profiles.a.storage_provider.options.basepath: unknown option 'basepath'" in joined
    assert "profiles.b.storage_provider.options.region: unknown option 'region'" in joined
    assert "did you mean 'region_name'?" in joined


def test_cli_config_validate_prints_every_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from manystore.cli import main

    path = tmp_path / "many.yaml"
    path.write_text(_MANY_ERRORS)
    code = main(["config", "validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 8, err  # seven errors, then the summary
    assert "7 errors" in lines[-1]
    assert all(str(path) in line for line in lines)
    assert sum("basepath" in line for line in lines) == 1 and sum("'region'" in line for line in lines) == 1


def test_schema_problems_empty_for_valid_131_config() -> None:
    config = {
        "profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": "/"}}}},
        "cache": {
            "size": "500G",
            "cache_line_size": "64M",
            "check_source_version": True,
            "location": "/tmp/msc_cache",
            "prefetch_file": False,
            "eviction_policy": {"policy": "MRU", "refresh_interval": 300, "purge_factor": 50},
        },
    }
    assert config_problems(config) == []


# ------------------------------------------------------------------ relative base_path of file profiles
def test_relative_base_path_resolved_against_config_file_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    (conf_dir / "data").mkdir(parents=True)
    (conf_dir / "data" / "x.txt").write_text("hello")
    (conf_dir / "inc").mkdir()
    (conf_dir / "inc" / "shared").mkdir()
    (conf_dir / "inc" / "other.yaml").write_text(
        "profiles:\n  shared:\n    storage_provider: {type: file, options: {base_path: shared}}\n"
    )
    config_file = conf_dir / "msc.yaml"
    config_file.write_text(
        "include: [inc/other.yaml]\n"
        "profiles:\n  local:\n    storage_provider: {type: file, options: {base_path: ./data}}\n"
    )
    monkeypatch.setenv("MSC_CONFIG", str(config_file))
    monkeypatch.chdir(tmp_path)  # the CWD is not the config's directory
    config = StorageClientConfig.from_file(profile="local")
    assert config.storage_provider.base_path == str(conf_dir / "data")
    assert StorageClient(config).read("x.txt") == b"hello"
    shared = StorageClientConfig.from_file(profile="shared")
    assert shared.storage_provider.base_path == str(conf_dir / "inc" / "shared")


def test_relative_base_path_from_dict_or_string_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        StorageClientConfig.from_dict(_profile("file", base_path="data/train"), "p")
    message = str(info.value)
    assert "profiles.p.storage_provider.options.base_path: relative path 'data/train'" in message
    assert "expected an absolute directory" in message
    yaml_text = "profiles:\n  p:\n    storage_provider: {type: file, options: {base_path: rel}}\n"
    with pytest.raises(ConfigError, match="relative path 'rel'"):
        StorageClientConfig.from_yaml(yaml_text, "p")


def test_empty_file_base_path_is_the_root() -> None:
    config = StorageClientConfig.from_dict(_profile("file", base_path=""), "p")
    assert config.storage_provider.base_path == "/"


# ------------------------------------------------------------------ cache: 1.3.1 fields with their meaning
from collections import Counter  # noqa: E402

from manystore.caching import CacheConfig  # noqa: E402
from manystore.types import Range  # noqa: E402

from .faultproxy import FaultProxy  # noqa: E402
from .servers import S3Server  # noqa: E402
from .test_cache import Requests, cache_config, make_client  # noqa: E402

MiB = 1 << 20


@pytest.fixture
def cache_proxy(rclone_server: S3Server) -> Iterator[FaultProxy]:
    """A request-counting proxy in front of the rclone S3 server."""
    p = FaultProxy(rclone_server.endpoint_url)
    yield p
    p.close()


def _entries(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.rglob("data/*") if p.is_file()]


def test_cache_config_131_keywords() -> None:
    config = CacheConfig(
        size="1G", cache_line_size="8M", check_source_version=False, prefetch_file=False, location="/tmp/x"
    )
    assert config.cache_line_size_bytes() == 8 * MiB and config.use_etag is False
    assert config.backend.cache_path == "/tmp/x" and config.get_eviction_policy() == "fifo"
    with pytest.raises(ConfigError, match=r"cache.cache_line_size: '2G' exceeds cache.size '1G'"):
        CacheConfig(size="1G", cache_line_size="2G")
    with pytest.raises(ConfigError, match=r"cache.location: 'rel/dir' is not an absolute path"):
        CacheConfig(size="1G", location="rel/dir")
    with pytest.raises(ConfigError, match=r"purge_factor: expected an int from 0 to 100, got 101"):
        CacheConfig.from_dict({"eviction_policy": {"policy": "lru", "purge_factor": 101}})


def test_cache_line_size_sets_the_cached_block(
    rclone_server: S3Server, cache_proxy: FaultProxy, tmp_path: Path
) -> None:
    config = cache_config(rclone_server, cache_proxy, tmp_path / "cache")
    config["cache"]["cache_line_size"] = "1M"
    client = make_client(config)
    body = os.urandom(3 * MiB + MiB // 2)
    client.write("big", body)
    seen = Requests(cache_proxy)
    assert client.read("big", Range(2 * MiB + 500, 100)) == body[2 * MiB + 500 : 2 * MiB + 600]
    assert 1 <= seen.since()["GET"] <= 2  # one line (+ maybe the ranged-GET probe)
    seen.reset()
    assert client.read("big", Range(2 * MiB + 9000, 100)) == body[2 * MiB + 9000 : 2 * MiB + 9100]
    assert seen.since()["GET"] == 0  # same line
    assert client.read("big", Range(0, len(body))) == body
    assert seen.since()["GET"] == 3  # lines 0, 1 and 3; line 2 was cached
    sizes = sorted(p.stat().st_size for p in _entries(tmp_path / "cache") if p.name.endswith(".blk"))
    assert len(sizes) == 4 and all(MiB < s < MiB + 1024 for s in sizes[1:]), sizes
    assert MiB // 2 < sizes[0] < MiB // 2 + 1024  # the short last line


def test_prefetch_file_false_caches_lines_not_objects(
    rclone_server: S3Server, cache_proxy: FaultProxy, tmp_path: Path
) -> None:
    body = os.urandom(2 * MiB + 10)
    for prefetch, whole_gets in ((True, 1), (False, 3)):
        config = cache_config(rclone_server, cache_proxy, tmp_path / f"cache-{prefetch}")
        config["cache"].update(cache_line_size="1M", prefetch_file=prefetch)
        client = make_client(config)
        client.write("obj", body)
        seen = Requests(cache_proxy)
        with client.open("obj", "rb") as fh:
            assert fh.read() == body
        gets = seen.since()["GET"]
        assert whole_gets <= gets <= whole_gets + 1, (prefetch, gets)
        seen.reset()
        with client.open("obj", "rb") as fh:
            assert fh.read() == body
        assert seen.since()["GET"] == 0
        blocks = [p for p in _entries(tmp_path / f"cache-{prefetch}") if p.name.endswith(".blk")]
        assert (len(blocks) == 3) is (not prefetch)


def test_mru_evicts_the_most_recently_used(
    rclone_server: S3Server, cache_proxy: FaultProxy, tmp_path: Path
) -> None:
    config = cache_config(rclone_server, cache_proxy, tmp_path / "cache", size="35K", policy="MRU")
    writer, client = make_client(config, caching=False), make_client(config)
    for i in range(4):
        writer.write(f"m/{i}", bytes([i]) * 10_000)
    for i in range(3):
        client.read(f"m/{i}")
    client.read("m/1")  # the most recently used
    client.read("m/3")  # evicts m/1
    seen = Requests(cache_proxy)
    client.read("m/0")
    client.read("m/2")
    assert seen.since() == Counter()
    client.read("m/1")
    assert seen.since()["GET"] == 1


def test_no_eviction_keeps_everything(
    rclone_server: S3Server, cache_proxy: FaultProxy, tmp_path: Path
) -> None:
    config = cache_config(rclone_server, cache_proxy, tmp_path / "cache", size="35K", policy="no_eviction")
    writer, client = make_client(config, caching=False), make_client(config)
    for i in range(6):
        writer.write(f"n/{i}", bytes([i]) * 10_000)
        client.read(f"n/{i}")
    assert sum(p.stat().st_size for p in _entries(tmp_path / "cache")) > 60_000  # past its size
    seen = Requests(cache_proxy)
    for i in range(6):
        assert client.read(f"n/{i}") == bytes([i]) * 10_000
    assert seen.since()["GET"] == 0


def test_purge_factor_frees_a_share_of_the_cache(
    rclone_server: S3Server, cache_proxy: FaultProxy, tmp_path: Path
) -> None:
    config = cache_config(rclone_server, cache_proxy, tmp_path / "cache", size="100K", policy="lru")
    config["cache"]["eviction_policy"]["purge_factor"] = 50
    writer, client = make_client(config, caching=False), make_client(config)
    for i in range(11):
        writer.write(f"p/{i}", bytes([i]) * 10_000)
    for i in range(10):
        client.read(f"p/{i}")
    assert len(_entries(tmp_path / "cache")) == 10
    client.read("p/10")  # over the limit: evict down to half of 100K, then store
    remaining = _entries(tmp_path / "cache")
    assert len(remaining) == 5
    assert sum(p.stat().st_size for p in remaining) <= 50 * 1024 + 10_300


# ------------------------------------------------------------------ S3: botocore options of 1.3.1
def _s3_client(server: S3Server, **options: Any) -> tuple[StorageClient, str]:
    import uuid

    from .conftest import s3_profile

    prefix = uuid.uuid4().hex
    config = {"profiles": {"p": s3_profile(server, f"manystore-test/{prefix}", **options)}}
    return StorageClient(StorageClientConfig.from_dict(config, "p")), prefix


@pytest.mark.parametrize(
    "option", [{"checksum_algorithm": "sha256"}, {"request_checksum_calculation": "when_supported"}]
)
def test_checksum_algorithm_sends_sha256_on_put_and_upload(
    moto_server: S3Server, option: dict[str, Any], tmp_path: Path
) -> None:
    """moto records but does not verify checksums, so a proxy checks what goes on the wire:
    it refuses (400) the PUT that carries the expected ``x-amz-checksum-sha256``."""
    import base64
    import hashlib

    proxy = FaultProxy(moto_server.endpoint_url)
    try:
        client, _ = _s3_client(
            moto_server, endpoint_url=proxy.url, multipart_threshold="5M", multipart_chunksize="5M", **option
        )
        small = b"checksummed"
        digest = base64.b64encode(hashlib.sha256(small).digest()).decode()
        proxy.inject("status", status=400, method="PUT", header="x-amz-checksum-sha256", header_value=digest)
        with pytest.raises(Exception):  # noqa: B017 - the proxy's 400, whatever it maps to
            client.write("small", small)
        assert proxy.injected_total == 1
        big_file = tmp_path / "big.bin"
        big_file.write_bytes(os.urandom(11 * MiB))
        proxy.inject("status", status=400, method="PUT", header="x-amz-checksum-sha256")
        with pytest.raises(Exception):  # noqa: B017
            client.upload_file("big", str(big_file))  # the first part carries one too
        assert proxy.injected_total == 2
        proxy.clear()
        client.write("small", small)
        assert client.read("small") == small
    finally:
        proxy.close()


def test_without_checksum_option_no_checksum_is_sent(moto_server: S3Server) -> None:
    proxy = FaultProxy(moto_server.endpoint_url)
    try:
        client, _ = _s3_client(moto_server, endpoint_url=proxy.url)
        proxy.inject("status", status=400, method="PUT", header="x-amz-checksum-sha256")
        client.write("plain", b"x")
        assert proxy.injected_total == 0 and proxy.pending() == 1
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"checksum_algorithm": "CRC32"},
            "'CRC32' is not supported by manystore's transport; expected one of ['SHA256', 'CRC64NVME']",
        ),
        ({"checksum_algorithm": "MD4"}, "invalid value 'MD4'"),
        ({"request_checksum_calculation": "always"}, "expected one of ['when_supported', 'when_required']"),
        ({"retries": {"max_attempts": -1}}, "'retries.max_attempts': invalid value -1"),
        ({"retries": {"mode": "fast"}}, "'retries.mode': invalid value 'fast'"),
        ({"s3": {"use_accelerate_endpoint": True}}, "['use_accelerate_endpoint'] have no equivalent"),
        ({"signature_version": "s3v2"}, "expected 's3v4' or 'UNSIGNED'"),
    ],
)
def test_botocore_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        StorageClientConfig.from_dict(
            _profile("s3", base_path="b", endpoint_url="http://127.0.0.1:1", **options), "p"
        )
    assert message in str(info.value)


def test_botocore_options_take_effect(moto_server: S3Server) -> None:
    client, _ = _s3_client(
        moto_server,
        retries={"total_max_attempts": 4, "mode": "standard"},
        response_checksum_validation="when_required",
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        max_pool_connections=4,
        connect_timeout=5,
        read_timeout=7,
    )
    client.write("k", b"v")
    assert client.read("k") == b"v"  # path-style, unsigned payload: moto accepts
    sp: Any = client.config.storage_provider
    assert sp._transport_retries == 3 and sp._verify_checksums is False and sp._unsigned_payload is True
    assert sp._pool_size == 4 and sp._connect_timeout == 5 and sp._read_timeout == 7
    anonymous, _ = _s3_client(moto_server, signature_version="UNSIGNED")
    assert anonymous.config.storage_provider._store_config()  # type: ignore[attr-defined][0]["skip_signature"] is True
