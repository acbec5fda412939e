"""Every dotted name the reference (seed 000, the Multi-Storage Client) documents resolves in manystore.

``multistorageclient.X.Y`` becomes ``manystore.X.Y``: a user changes only the import. The
list below is every such name that the reference's text mentions; names still to be
built by a later issue are in :data:`PENDING` with the issue that delivers them, and are
checked to be missing (a stale entry fails, so the list shrinks as the layers land).
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

REFERENCE_NAMES = [
    "manystore.CacheConfig",
    "manystore.Path",
    "manystore.StorageClient",
    "manystore.StorageClientConfig",
    "manystore.caching.cache_config.CacheBackendConfig",
    "manystore.caching.cache_config.EvictionPolicyConfig",
    "manystore.commit_metadata",
    "manystore.contrib.async_fs.MultiStorageAsyncFileSystem",
    "manystore.contrib.numpy.load",
    "manystore.contrib.torch.MultiStorageFileSystem",
    "manystore.contrib.torch.MultiStorageFileSystemReader",
    "manystore.contrib.torch.MultiStorageFileSystemWriter",
    "manystore.contrib.xarray.open_zarr",
    "manystore.contrib.zarr.LazyZarrStore",
    "manystore.contrib.zarr.open_consolidated",
    "manystore.delete",
    "manystore.download_file",
    "manystore.generators.ManifestMetadataGenerator",
    "manystore.get_telemetry",
    "manystore.glob",
    "manystore.is_empty",
    "manystore.is_file",
    "manystore.list",
    "manystore.open",
    "manystore.providers.ManifestMetadataProvider",
    "manystore.providers.ais.AIStoreStorageProvider",
    "manystore.providers.ais.StaticAISCredentialProvider",
    "manystore.providers.azure.AzureBlobStorageProvider",
    "manystore.providers.azure.StaticAzureCredentialsProvider",
    "manystore.providers.gcs.GoogleIdentityPoolCredentialsProvider",
    "manystore.providers.gcs.GoogleStorageProvider",
    "manystore.providers.gcs.StringTokenSupplier",
    "manystore.providers.gcs_s3.GoogleS3StorageProvider",
    "manystore.providers.manifest_metadata.Manifest",
    "manystore.providers.manifest_metadata.ManifestMetadataProvider",
    "manystore.providers.manifest_metadata.ManifestPartReference",
    "manystore.providers.oci.OracleStorageProvider",
    "manystore.providers.posix_file.PosixFileStorageProvider",
    "manystore.providers.posix_file.atomic_write",
    "manystore.providers.s3.S3StorageProvider",
    "manystore.providers.s3.StaticS3CredentialsProvider",
    "manystore.providers.s8k.S8KStorageProvider",
    "manystore.resolve_storage_client",
    "manystore.set_telemetry",
    "manystore.sync",
    "manystore.telemetry.Telemetry",
    "manystore.telemetry.TelemetryManager",
    "manystore.telemetry.TelemetryMode",
    "manystore.telemetry.attributes.base.AttributesProvider",
    "manystore.telemetry.attributes.environment_variables.EnvironmentVariablesAttributesProvider",
    "manystore.telemetry.attributes.host.HostAttributesProvider",
    "manystore.telemetry.attributes.msc_config.MSCConfigAttributesProvider",
    "manystore.telemetry.attributes.process.ProcessAttributesProvider",
    "manystore.telemetry.attributes.static.StaticAttributesProvider",
    "manystore.telemetry.attributes.thread.ThreadAttributesProvider",
    "manystore.telemetry.init",
    "manystore.telemetry.metrics.readers.diperiodic_exporting.DiperiodicExportingMetricReader",
    "manystore.types.Credentials",
    "manystore.types.CredentialsProvider",
    "manystore.types.MetadataProvider",
    "manystore.types.NotModifiedError",
    "manystore.types.ObjectMetadata",
    "manystore.types.PreconditionFailedError",
    "manystore.types.ProviderBundle",
    "manystore.types.RetryConfig",
    "manystore.types.RetryableError",
    "manystore.types.SourceVersionCheckMode",
    "manystore.types.StorageProvider",
    "manystore.types.StorageProviderConfig",
    "manystore.upload_file",
]

#: Documented names still to be built, and by which issue.
PENDING: dict[str, str] = {}


def resolve(dotted: str) -> Any:
    """Import the longest importable module prefix of ``dotted`` and walk the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("dotted", [n for n in REFERENCE_NAMES if n not in PENDING])
def test_reference_name_resolves(dotted: str) -> None:
    assert resolve(dotted) is not None


def test_pending_names_are_still_missing() -> None:
    """When a pending name lands, remove it from PENDING (this test then fails to say so)."""
    landed = []
    for dotted in sorted(PENDING):
        try:
            resolve(dotted)
        except (ModuleNotFoundError, AttributeError):
            continue
        landed.append(dotted)
    assert landed == [], f"these names now resolve; remove them from PENDING: {landed}"
