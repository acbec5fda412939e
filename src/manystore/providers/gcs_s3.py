"""Google Cloud Storage through its S3-compatible XML API (HMAC keys)."""

from __future__ import annotations

from typing import Any, ClassVar

from .s3 import S3StorageProvider

__all__ = ["GOOGLE_S3_ENDPOINT", "GoogleS3StorageProvider"]

GOOGLE_S3_ENDPOINT = "https://storage.googleapis.com"


class GoogleS3StorageProvider(S3StorageProvider):
    """GCS via its XML API with HMAC credentials (path-style requests).

    Accepts every :class:`S3StorageProvider` option; ``endpoint_url`` defaults to
    ``https://storage.googleapis.com``. GCS has no bulk ``DeleteObjects``: prefix deletes send
    one DELETE per object (concurrently).
    """

    provider_name: ClassVar[str] = "gcs_s3"

    def __init__(self, region_name: str = "", endpoint_url: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(region_name, endpoint_url or GOOGLE_S3_ENDPOINT, *args, **kwargs)

    def _store_config(self) -> tuple[dict[str, Any], dict[str, Any], Any]:
        config, client, callback = super()._store_config()
        config["disable_bulk_delete"] = True
        return config, client, callback
