"""Every name of the reference's Core and Types sections exists with its documented parameters."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import manystore
from manystore import types

CORE_FUNCTIONS = {
    "commit_metadata": ["url"],
    "delete": ["url", "recursive"],
    "download_file": ["url", "local_path"],
    "get_telemetry": [],
    "glob": ["pattern"],
    "is_empty": ["url"],
    "is_file": ["url"],
    "list": ["url", "start_after", "end_at", "include_directories"],
    "open": ["url", "mode", "kwargs"],
    "resolve_storage_client": ["url"],
    "set_telemetry": ["telemetry"],
    "sync": ["source_url", "target_url", "delete_unmatched_files"],
    "upload_file": ["url", "local_path"],
}

CLIENT_METHODS = {
    "commit_metadata": ["prefix"],
    "copy": ["src_path", "dest_path"],
    "delete": ["path", "recursive"],
    "glob": ["pattern", "include_url_prefix"],
    "info": ["path", "strict"],
    "is_default_profile": [],
    "is_empty": ["path"],
    "is_file": ["path"],
    "list": [
        "path",
        "start_after",
        "end_at",
        "include_directories",
        "include_url_prefix",
    ],  # 1.3.1; prefix= kept
    "open": [
        "path",
        "mode",
        "buffering",
        "encoding",
        "disable_read_cache",
        "memory_load_limit",
        "atomic",
        "check_source_version",
    ],
    "sync_from": [
        "source_client",
        "source_path",
        "target_path",
        "delete_unmatched_files",
        "description",
        "num_worker_processes",
    ],
    "read": ["path", "byte_range"],
    "write": ["path", "body"],
    "upload_file": ["remote_path", "local_path"],
    "download_file": ["remote_path", "local_path"],
}

#: MSC 1.3.1's order; the reference seed's ``telemetry`` keeps working, keyword-only, last.
CONFIG_BUILDERS = {
    "from_dict": ["config_dict", "profile", "skip_validation", "telemetry_provider", "telemetry"],
    "from_file": ["config_file_paths", "profile", "telemetry_provider", "telemetry"],
    "from_json": ["config_json", "profile", "telemetry_provider", "telemetry"],
    "from_yaml": ["config_yaml", "profile", "telemetry_provider", "telemetry"],
    "from_provider_bundle": ["config_dict", "provider_bundle", "telemetry_provider", "telemetry"],
    "read_msc_config": ["config_file_paths"],
    "read_path_mapping": [],
}

#: The provider contracts: MSC 1.3.1's parameters; the methods marked abstract here are the
#: ones the older seed contract already had (the others have generic defaults).
ABSTRACT_METHODS = {
    "StorageProvider": {
        "copy_object": ["src_path", "dest_path"],
        "delete_object": ["path", "if_match"],
        "download_file": ["remote_path", "f", "metadata"],
        "get_object": ["path", "byte_range"],
        "get_object_metadata": ["path", "strict"],
        "glob": ["pattern", "attribute_filter_expression"],
        "is_file": ["path"],
        "list_objects": [
            "path",
            "start_after",
            "end_at",
            "include_directories",
            "attribute_filter_expression",
            "show_attributes",
            "symlink_handling",
        ],
        "put_object": ["path", "body", "if_match", "if_none_match", "attributes"],
        "upload_file": ["remote_path", "f", "attributes"],
    },
    "CredentialsProvider": {"get_credentials": []},
    "MetadataProvider": {
        "add_file": ["path", "metadata"],
        "commit_updates": [],
        "get_object_metadata": ["path", "include_pending"],
        "glob": ["pattern", "attribute_filter_expression"],
        "is_writable": [],
        "list_objects": [
            "path",
            "start_after",
            "end_at",
            "include_directories",
            "attribute_filter_expression",
            "show_attributes",
        ],
        "realpath": ["logical_path"],
        "remove_file": ["path"],
    },
}
DEFAULTED_METHODS = {
    "StorageProvider": {
        "delete_objects": ["paths"],
        "make_symlink": ["path", "target"],
        "list_objects_recursive": [
            "path",
            "start_after",
            "end_at",
            "max_workers",
            "look_ahead",
            "symlink_handling",
        ],
        "download_files": ["remote_paths", "local_paths", "metadata", "max_workers", "transfer_callback"],
        "upload_files": ["local_paths", "remote_paths", "attributes", "max_workers", "transfer_callback"],
        "generate_presigned_url": ["path", "method", "signer_type", "signer_options"],
    },
    "CredentialsProvider": {"refresh_credentials": []},
    "MetadataProvider": {
        "generate_physical_path": ["logical_path", "for_overwrite"],
        "allow_overwrites": [],
        "should_use_soft_delete": [],
    },
}


def params(fn: object) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(CORE_FUNCTIONS))
def test_module_functions(name: str) -> None:
    assert params(getattr(manystore, name))[: len(CORE_FUNCTIONS[name])] == CORE_FUNCTIONS[name]


@pytest.mark.parametrize("name", sorted(CLIENT_METHODS))
def test_storage_client_methods(name: str) -> None:
    assert params(getattr(manystore.StorageClient, name))[: len(CLIENT_METHODS[name])] == CLIENT_METHODS[name]


@pytest.mark.parametrize("name", sorted(CONFIG_BUILDERS))
def test_config_builders(name: str) -> None:
    assert params(getattr(manystore.StorageClientConfig, name)) == CONFIG_BUILDERS[name]


def test_config_fields() -> None:
    signature = inspect.signature(manystore.StorageClientConfig)
    assert list(signature.parameters)[:12] == [
        "profile",
        "storage_provider",
        "credentials_provider",
        "storage_provider_profiles",
        "child_configs",
        "metadata_provider",
        "cache_config",
        "cache_manager",
        "retry_config",
        "telemetry_provider",
        "replicas",
        "autocommit_config",
    ]
    for name in ("caching_enabled", "telemetry", "_config_dict"):  # manystore's own: keyword-only
        assert signature.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("abc_name", sorted(ABSTRACT_METHODS))
def test_provider_abcs(abc_name: str) -> None:
    cls = getattr(types, abc_name)
    for method, expected in ABSTRACT_METHODS[abc_name].items():
        assert params(getattr(cls, method)) == expected, method
    for method, expected in DEFAULTED_METHODS[abc_name].items():
        assert params(getattr(cls, method)) == expected, method
    assert cls.__abstractmethods__ == set(ABSTRACT_METHODS[abc_name])


def test_types_and_defaults() -> None:
    assert params(types.ObjectMetadata) == [
        "key",
        "content_length",
        "last_modified",
        "type",
        "content_type",
        "etag",
        "storage_class",
        "metadata",
        "symlink_target",
    ]
    assert params(types.Credentials) == ["access_key", "secret_key", "token", "expiration", "custom_fields"]
    assert params(types.StorageProviderConfig) == ["type", "options"]
    assert types.RetryConfig().attempts == 3 and types.RetryConfig().delay == 1.0
    assert {m.value for m in types.SourceVersionCheckMode} == {"inherit", "enable", "disable"}
    assert issubclass(types.PreconditionFailedError, Exception)
    assert issubclass(types.NotModifiedError, Exception)
    assert issubclass(types.RetryableError, Exception)
    assert {"storage_provider_config", "credentials_provider", "metadata_provider"} <= set(
        types.ProviderBundle.__abstractmethods__
    )
    assert manystore.Path is manystore.MultiStoragePath
    cache = manystore.CacheConfig(size="500M")
    assert cache.use_etag is True and cache.get_eviction_policy() == "fifo"  # MSC 1.3.1 default
    assert cache.eviction_policy.refresh_interval == 300


def test_object_metadata_dict_round_trip() -> None:
    from datetime import datetime, timezone

    meta = types.ObjectMetadata(
        "k", 3, datetime(2025, 1, 2, tzinfo=timezone.utc), etag="e", metadata={"a": "b"}
    )
    assert types.ObjectMetadata.from_dict(meta.to_dict()) == meta
    with pytest.raises(ValueError, match="content_length"):
        types.ObjectMetadata.from_dict({"key": "k"})


def test_credentials_repr_hides_secrets() -> None:
    creds = types.Credentials("AKIAEXAMPLEKEY", "very-secret-value", "session-token-value", None)
    text = repr(creds) + str(creds)
    assert "very-secret-value" not in text and "session-token-value" not in text


def test_import_loads_no_cloud_sdk() -> None:
    """``import manystore`` pulls in no SDK (its time is measured by the benchmarks, not asserted)."""
    code = (
        "import sys; import manystore; "
        "print([m for m in ('obstore','boto3','botocore','yaml','google','azure','oci','aistore','torch',"
        "'ray','hydra','omegaconf') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
