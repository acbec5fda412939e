"""NVIDIA AIStore through its S3-compatible API (``<endpoint>/s3``, path-style)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..errors import ConfigError
from ..types import CredentialsProvider
from .s3 import S3StorageProvider, StaticS3CredentialsProvider

__all__ = ["AIStoreS3StorageProvider"]

# AIStore ignores SigV4 signatures unless auth is enabled; any key pair will do.
DEFAULT_ACCESS_KEY = "FAKEKEY"
DEFAULT_SECRET_KEY = "FAKESECRET"


class AIStoreS3StorageProvider(S3StorageProvider):
    """AIStore via S3. Accepts every :class:`S3StorageProvider` option.

    Args:
        endpoint_url: The S3 endpoint, e.g. ``http://ais:8080/s3``. Default: ``$AIS_ENDPOINT`` + ``/s3``.
        credentials_provider: Credentials with an access key and secret (e.g. ``S3Credentials``)
            sign requests with SigV4 as on S3. Token-only credentials (e.g. an AIStore JWT
            from ``AISCredentials``) are sent as ``Authorization: Bearer <token>`` (read when the
            connection is set up). Without a provider, requests are signed with placeholder keys.
    """

    provider_name: ClassVar[str] = "ais_s3"

    def __init__(
        self,
        region_name: str = "",
        endpoint_url: str = "",
        base_path: str = "",
        credentials_provider: CredentialsProvider | None = None,
        **kwargs: Any,
    ) -> None:
        if not endpoint_url:
            ais = os.environ.get("AIS_ENDPOINT", "").rstrip("/")
            if not ais:
                raise ConfigError(
                    "ais_s3: set the 'endpoint_url' option or the AIS_ENDPOINT environment variable"
                )
            endpoint_url = ais + "/s3"
        kwargs.setdefault("addressing_style", "path")
        self._ais_credentials = credentials_provider
        super().__init__(region_name or "us-east-1", endpoint_url, base_path, credentials_provider, **kwargs)

    def _store_config(self) -> tuple[dict[str, Any], dict[str, Any], Any]:
        provider = self._ais_credentials
        creds = provider.get_credentials() if provider is not None else None
        if creds is not None and creds.access_key and creds.secret_key:
            return super()._store_config()  # SigV4 with the given keys, refreshed by obstore
        self._credentials_provider = StaticS3CredentialsProvider(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
        try:
            config, client, callback = super()._store_config()
        finally:
            self._credentials_provider = provider
        if creds is not None and creds.token:
            config["skip_signature"] = True
            client["default_headers"] = {"Authorization": f"Bearer {creds.token}"}
            callback = None
        return config, client, callback
