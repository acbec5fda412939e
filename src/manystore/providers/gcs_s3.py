"""Google Cloud Storage through its S3-compatible XML API (HMAC keys)."""

from __future__ import annotations

from typing import Any, ClassVar

from .s3 import S3StorageProvider

__all__ = ["GOOGLE_S3_ENDPOINT", "GoogleS3StorageProvider"]

GOOGLE_S3_ENDPOINT = "https://storage.googleapis.com"


class GoogleS3StorageProvider(S3StorageProvider):
    """GCS via ``https://storage.googleapis.com`` with HMAC credentials.

    Accepts every :class:`S3StorageProvider` option; ``endpoint_url`` defaults to
    ``https://storage.googleapis.com`` and ``region_name`` to ``auto``.
    """

    provider_name: ClassVar[str] = "gcs_s3"

    def __init__(self, region_name: str = "", endpoint_url: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(region_name or "auto", endpoint_url or GOOGLE_S3_ENDPOINT, *args, **kwargs)
