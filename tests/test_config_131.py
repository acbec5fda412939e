"""MSC 1.3.1's StorageClientConfig surface: constructor order, from_file(config_file_paths),
read_msc_config, typed replicas (profiles and provider bundles) and manifest autocommit."""

from __future__ import annotations

import copy
import gc
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from manystore import StorageClient, StorageClientConfig
from manystore.errors import ConfigError
from manystore.providers.posix_file import PosixFileStorageProvider
from manystore.types import (
    AutoCommitConfig,
    CredentialsProvider,
    MetadataProvider,
    ProviderBundle,
    Replica,
    StorageProviderConfig,
)

from .conftest import Backend, make_backend

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["file", "s3-moto"])
def some_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The file system and one S3 server."""
    return make_backend(request.param, request, tmp_path)


def telemetry_fn() -> Any:  # a top-level function, as a telemetry_provider must be
    return None


# ----------------------------------------------------------------------------- constructor
def test_constructor_takes_131_order(tmp_path: Path) -> None:
    provider = PosixFileStorageProvider(str(tmp_path))
    config = StorageClientConfig(
        "p",
        provider,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        telemetry_fn,
        [Replica("r", 1)],
        AutoCommitConfig(1),
    )
    assert config.storage_provider is provider and config.telemetry_provider is telemetry_fn
    assert config.replicas == [Replica("r", 1, False)]
    assert config.autocommit_config == AutoCommitConfig(interval_minutes=1, at_exit=False)
    assert StorageClientConfig("p", provider).replicas == []  # None becomes an empty list
    with pytest.raises(TypeError):
        StorageClientConfig("p", provider, None, None, None, None, None, None, None, None, None, None, True)  # type: ignore[misc]
    assert StorageClientConfig("p", provider, caching_enabled=True).caching_enabled


def test_constructor_refusals(tmp_path: Path) -> None:
    provider = PosixFileStorageProvider(str(tmp_path))
    with pytest.raises(
        ValueError, match="expected a storage_provider or storage_provider_profiles, got neither"
    ):
        StorageClientConfig("p")
    with pytest.raises(ValueError, match=r"both storage_provider and storage_provider_profiles=\['a'\]"):
        StorageClientConfig("p", provider, storage_provider_profiles=["a"])
    with pytest.raises(TypeError, match=r"replicas: expected Replica objects, got 'r'"):
        StorageClientConfig("p", provider, replicas=["r"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="expected an AutoCommitConfig, got 5"):
        StorageClientConfig("p", provider, autocommit_config=5)  # type: ignore[arg-type]
    composite = StorageClientConfig("p", storage_provider_profiles=["a", "b"])
    with pytest.raises(ValueError, match=r"storage_provider_profiles=\['a', 'b'\].*not supported"):
        StorageClient(composite)
    config = {"profiles": {"c": {"storage_provider_profiles": ["a"]}}}
    with pytest.raises(ConfigError, match=r"profiles.c.storage_provider_profiles: \['a'\].*not supported"):
        StorageClientConfig.from_dict(config, "c")


def test_replica_and_autocommit_types() -> None:
    assert Replica("r", 2) == Replica(replica_profile="r", read_priority=2, read_only=False)
    with pytest.raises(TypeError, match="read_priority: expected an int, got '1'"):
        Replica("r", "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a number >= 0, got -1"):
        AutoCommitConfig(-1)
    with pytest.raises(TypeError, match="at_exit: expected a bool, got 'yes'"):
        AutoCommitConfig(1, "yes")  # type: ignore[arg-type]
    assert AutoCommitConfig().interval_minutes is None and AutoCommitConfig().at_exit is False


# ----------------------------------------------------------------------------- builders
def test_builders_take_telemetry_provider_third(tmp_path: Path) -> None:
    config = {
        "profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path)}}}}
    }
    assert StorageClientConfig.from_dict(config, "p", False, telemetry_fn).telemetry_provider is telemetry_fn
    assert (
        StorageClientConfig.from_json(json.dumps(config), "p", telemetry_fn).telemetry_provider
        is telemetry_fn
    )
    assert (
        StorageClientConfig.from_yaml(yaml.safe_dump(config), "p", telemetry_fn).telemetry_provider
        is telemetry_fn
    )
    assert StorageClientConfig.from_dict(config, "p").autocommit_config == AutoCommitConfig()
    with pytest.raises(TypeError):
        StorageClientConfig.from_dict(config, "p", False, None, None)  # type: ignore[misc]


def test_from_file_searches_the_given_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "k").write_bytes(b"from explicit")
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(
        yaml.safe_dump(
            {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": str(data)}}}}}
        )
    )
    env_file = tmp_path / "env.yaml"
    env_file.write_text(
        yaml.safe_dump(
            {
                "profiles": {
                    "q": {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path)}}}
                }
            }
        )
    )
    monkeypatch.setenv("MSC_CONFIG", str(env_file))
    config = StorageClientConfig.from_file([str(tmp_path / "missing.yaml"), str(explicit)], "p")
    assert StorageClient(config).read("k") == b"from explicit"
    assert StorageClientConfig.read_msc_config([str(explicit)])[1] == str(explicit)
    assert StorageClientConfig.read_msc_config([str(tmp_path / "missing.yaml")]) == ({}, None)
    # Not given (or empty): MSC_CONFIG and the search path.
    assert StorageClientConfig.read_msc_config()[1] == str(env_file)
    assert StorageClientConfig.from_file([], profile="q").profile == "q"
    assert StorageClientConfig.from_file().profile == "__filesystem__"
    with pytest.raises(TypeError, match="expected a list of config file paths, got the string 'p'"):
        StorageClientConfig.from_file("p")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- replicas
def _with_replica(backend: Backend) -> dict[str, Any]:
    config = copy.deepcopy(backend.config)
    replica = copy.deepcopy(config["profiles"]["test"])
    replica["storage_provider"]["options"]["base_path"] += "-rep"
    if backend.name == "file":
        os.makedirs(replica["storage_provider"]["options"]["base_path"])
    config["profiles"]["rep"] = replica
    return config


def test_profile_replicas_are_typed(some_backend: Backend) -> None:
    config = _with_replica(some_backend)
    config["profiles"]["test"]["replicas"] = [{"replica_profile": "rep", "read_priority": 1}]
    built = StorageClientConfig.from_dict(config, "test")
    assert built.replicas == [Replica("rep", 1, False)]
    client = StorageClient(built)
    client.replicas[0].write("k", b"replica copy")
    assert client.read("k") == b"replica copy"  # the replica serves the read
    # Replicas set on the config are the ones the client uses (and they survive pickling).
    built.replicas = []
    assert StorageClient(built).replicas == []
    with pytest.raises(FileNotFoundError):
        StorageClient(built).read("k")
    built.replicas = [Replica("rep", 1, read_only=True)]
    again = pickle.loads(pickle.dumps(built))
    assert again.replicas == [Replica("rep", 1, True)] and StorageClient(again).read("k") == b"replica copy"


class _Bundle(ProviderBundle):
    def __init__(self, sp: StorageProviderConfig, replicas: list[Replica]) -> None:
        self._sp, self._replicas = sp, replicas

    @property
    def storage_provider_config(self) -> StorageProviderConfig:
        return self._sp

    @property
    def credentials_provider(self) -> CredentialsProvider | None:
        return None

    @property
    def metadata_provider(self) -> MetadataProvider | None:
        return None

    @property
    def replicas(self) -> list[Replica]:
        return self._replicas


def test_bundle_replicas(some_backend: Backend) -> None:
    config = _with_replica(some_backend)
    section = config["profiles"]["test"]["storage_provider"]
    sp = StorageProviderConfig(section["type"], section["options"])
    built = StorageClientConfig.from_provider_bundle(config, _Bundle(sp, [Replica("rep", 0)]))
    assert built.replicas == [Replica("rep", 0)]
    client = StorageClient(built)
    client.replicas[0].write("b", b"bundle replica")
    assert client.read("b") == b"bundle replica"
    with pytest.raises(ConfigError, match="replica 'nope': no such profile"):
        StorageClientConfig.from_provider_bundle(config, _Bundle(sp, [Replica("nope", 0)]))


# ----------------------------------------------------------------------------- autocommit
def _manifest_config(backend: Backend, autocommit: dict[str, Any] | None) -> dict[str, Any]:
    config = copy.deepcopy(backend.config)
    profile = config["profiles"]["test"]
    profile["metadata_provider"] = {
        "type": "manifest",
        "options": {"manifest_path": ".msc_manifests", "writable": True},
    }
    if autocommit is not None:
        profile["autocommit"] = autocommit
    return config


def _listed(config: dict[str, Any]) -> list[str]:
    return [m.key for m in StorageClient(StorageClientConfig.from_dict(config, "test")).list("")]


def test_autocommit_interval(some_backend: Backend) -> None:
    config = _manifest_config(some_backend, {"interval_minutes": 0.005})  # 0.3 s
    built = StorageClientConfig.from_dict(config, "test")
    assert built.autocommit_config == AutoCommitConfig(0.005)
    client = StorageClient(built)
    client.write("a", b"1")
    deadline = time.monotonic() + 15
    while "a" not in _listed(config) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _listed(config) == ["a"]  # committed by the thread, no commit_metadata call
    # The thread holds the client weakly and stops once the client is gone.
    stop = client._autocommit_stop
    assert stop is not None and not stop.is_set()
    names = {t.name for t in threading.enumerate()}
    assert "manystore-autocommit-test" in names
    client.write("b", b"2")  # pending when the client goes away: the thread commits it last
    del client
    gc.collect()
    assert stop.is_set()
    deadline = time.monotonic() + 15
    while "b" not in _listed(config) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _listed(config) == ["a", "b"]


def test_no_autocommit_leaves_updates_pending(some_backend: Backend) -> None:
    config = _manifest_config(some_backend, None)
    client = StorageClient(StorageClientConfig.from_dict(config, "test"))
    client.write("a", b"1")
    time.sleep(0.5)
    assert _listed(config) == []
    client.commit_metadata()
    assert _listed(config) == ["a"]


_CHILD = """
import json, sys
from manystore import StorageClient, StorageClientConfig
config = json.loads(sys.argv[1])
StorageClient(StorageClientConfig.from_dict(config, "test")).write("exit", b"x")
"""


@pytest.mark.parametrize("at_exit", [True, False])
def test_autocommit_at_exit(some_backend: Backend, at_exit: bool) -> None:
    config = _manifest_config(some_backend, {"at_exit": at_exit})
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(config)], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert _listed(config) == (["exit"] if at_exit else [])


def test_autocommit_thread_commits_when_the_client_goes(some_backend: Backend) -> None:
    config = _manifest_config(some_backend, {"interval_minutes": 10})  # no periodic tick in this test
    client = StorageClient(StorageClientConfig.from_dict(config, "test"))
    client.write("late", b"x")
    assert _listed(config) == []
    del client
    gc.collect()
    deadline = time.monotonic() + 15
    while not _listed(config) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _listed(config) == ["late"]
