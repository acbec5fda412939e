"""``ProviderBundleV2`` / ``StorageBackend`` (MSC 1.3.1) on every backend: a one-backend bundle
makes the same profile as its provider config; several backends or replicas are refused."""

from __future__ import annotations

from typing import Any

import pytest

import manystore
from manystore import StorageClient, StorageClientConfig
from manystore.errors import ConfigError
from manystore.types import (
    CredentialsProvider,
    MetadataProvider,
    ProviderBundleV2,
    Replica,
    StorageBackend,
    StorageProviderConfig,
)

from .conftest import Backend


class Bundle(ProviderBundleV2):
    """A V2 bundle over given backends (also built from a profile's ``provider_bundle`` options)."""

    def __init__(
        self,
        backends: dict[str, StorageBackend] | None = None,
        metadata: MetadataProvider | None = None,
        **options: Any,
    ) -> None:
        default = {"only": StorageBackend(StorageProviderConfig("file", options))}
        self._backends = default if backends is None else backends
        self._metadata = metadata

    @property
    def storage_backends(self) -> dict[str, StorageBackend]:
        return self._backends

    @property
    def metadata_provider(self) -> MetadataProvider | None:
        return self._metadata


def _backend_of(backend: Backend) -> StorageBackend:
    """The StorageBackend equivalent of the backend's ``test`` profile."""
    spec = backend.config["profiles"]["test"]["storage_provider"]
    built = StorageClientConfig.from_dict(backend.config, "test")
    credentials: CredentialsProvider | None = built.credentials_provider
    return StorageBackend(StorageProviderConfig(spec["type"], dict(spec["options"])), credentials)


def test_v2_bundle_with_one_backend(backend: Backend) -> None:
    bundle = Bundle({"primary": _backend_of(backend)})
    config = StorageClientConfig.from_provider_bundle({"retry": {"attempts": 2, "delay": 0.01}}, bundle)
    client = StorageClient(config)
    client.write("v2/obj.bin", b"through a v2 bundle")
    assert backend.client.read("v2/obj.bin") == b"through a v2 bundle"
    assert [m.key for m in client.list("v2/")] == ["v2/obj.bin"]
    assert config.retry_config.attempts == 2
    assert (
        type(client.config.storage_provider).__name__ == type(backend.client.config.storage_provider).__name__
    )


def test_v2_bundle_types_are_exported() -> None:
    assert manystore.ProviderBundleV2 is ProviderBundleV2 and manystore.StorageBackend is StorageBackend
    assert {"storage_backends", "metadata_provider"} == set(ProviderBundleV2.__abstractmethods__)
    assert StorageBackend(StorageProviderConfig("file")).replicas == []


def test_v2_bundle_from_profile(tmp_path: Any) -> None:
    profile = {
        "provider_bundle": {"type": "tests.test_bundle_v2.Bundle", "options": {"base_path": str(tmp_path)}}
    }
    client = StorageClient(StorageClientConfig.from_dict({"profiles": {"b": profile}}, "b"))
    client.write("x.txt", b"x")
    assert (tmp_path / "x.txt").read_bytes() == b"x"


def test_v2_bundle_refusals(tmp_path: Any) -> None:
    one = StorageBackend(StorageProviderConfig("file", {"base_path": str(tmp_path)}))
    with pytest.raises(ConfigError, match=r"has 2 backends \['a', 'b'\].*only one"):
        StorageClientConfig.from_provider_bundle({}, Bundle({"a": one, "b": one}))
    with pytest.raises(ConfigError, match="must map a backend name"):
        StorageClientConfig.from_provider_bundle({}, Bundle({}))
    with_replica = StorageBackend(one.storage_provider_config, replicas=[{"replica_profile": "r"}])
    with pytest.raises(
        ConfigError, match=r"replicas: expected Replica objects, got \{'replica_profile': 'r'\}"
    ):
        StorageClientConfig.from_provider_bundle({}, Bundle({"a": with_replica}))
    named = StorageBackend(one.storage_provider_config, replicas=[Replica("r", 1)])
    with pytest.raises(ConfigError, match=r"replica 'r': no such profile.*defined: \[\]"):
        StorageClientConfig.from_provider_bundle({}, Bundle({"a": named}))
    with pytest.raises(ConfigError, match="must hold StorageBackend values, got dict"):
        StorageClientConfig.from_provider_bundle({}, Bundle({"a": {"type": "file"}}))  # type: ignore[dict-item]
