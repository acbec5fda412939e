"""Azure Blob Storage, on top of ``obstore`` (Rust ``object_store``'s ``AzureStore``).

The provider shares the read/list/write machinery of :mod:`manystore.providers.s3` (parallel
ranged downloads pinned to an ETag, raw-prefix listing, streaming writers, fork safety); only
the transport and the credentials differ. Backend notes (where it differs from the Multi-Storage
Client's ``azure-storage-blob``-based provider):

* Transport is ``obstore.store.AzureStore`` with its own retries off; transient failures are
  raised once as :class:`manystore.errors.RetryableError` and the client retries them. The
  streaming writer's store retries each block itself (the client cannot replay a stream).
* Conditional writes send ``If-None-Match: *`` / ``If-Match``; Azure and Azurite enforce both.
* ``delete_object`` HEADs first, so a missing blob raises
  :class:`manystore.errors.ObjectNotFoundError` and ``if_match`` is checked there (not atomic).
* ``list_objects`` with ``start_after`` lists from the prefix's parent and skips client-side:
  the Blob service has no "start after" parameter.
* Large writes upload blocks (``Put Block`` / ``Put Block List``). Aborting a streaming writer
  commits nothing; already uploaded blocks stay uncommitted and Azure drops them after 7 days.
* ``copy_object`` is one ``Copy Blob`` request. Azurite and same-account copies of small blobs
  finish at once; a large cross-account copy may still be pending on Azure when it returns.
* Prefix deletes send bulk deletes through object_store (Blob Batch API; Azurite supports it).
* Blob names may not hold ASCII control characters (``object_store`` refuses them).
"""

from __future__ import annotations

import os
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ..errors import ConfigError, ManystoreError, ProviderUnavailableError
from ..types import Credentials, CredentialsProvider, RetryConfig, SignerType
from ..utils import normalize_key
from ._azure_sas import blob_sas_url
from ._obstore import client_options, obstore_store_class
from ._obstore import summary as _summary
from .base import TELEMETRY_OPTIONS, presign_request
from .s3 import S3StorageProvider
from .s3_credentials import fresh_credentials

if TYPE_CHECKING:
    from obstore.store import AzureConfig, AzureCredential, ClientConfig

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AzureBlobStorageProvider",
    "AzureConnection",
    "DefaultAzureCredentialsProvider",
    "StaticAzureCredentialsProvider",
    "parse_connection_string",
]

#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_STORAGE_SCOPE = "https://storage.azure.com/.default"
# Options of the S3 provider that mean the same here.
_OPTIONS = frozenset(
    {
        "multipart_threshold", "multipart_chunksize", "max_concurrency", "io_chunksize",
        "connect_timeout", "read_timeout", "allow_http", "verify", "max_pool_connections",
    }
)  # fmt: skip
_TELEMETRY_OPTIONS = TELEMETRY_OPTIONS
_KNOWN_KEYS = {
    "accountname": "AccountName",
    "accountkey": "AccountKey",
    "blobendpoint": "BlobEndpoint",
    "defaultendpointsprotocol": "DefaultEndpointsProtocol",
    "endpointsuffix": "EndpointSuffix",
    "sharedaccesssignature": "SharedAccessSignature",
    "usedevelopmentstorage": "UseDevelopmentStorage",
}


class AzureConnection:
    """The parts of an Azure Storage connection string manystore uses. ``repr`` hides secrets.

    Attributes:
        account_name: ``AccountName``.
        account_key: ``AccountKey`` (base64), or ``None``.
        sas_token: ``SharedAccessSignature`` without a leading ``?``, or ``None``.
        blob_endpoint: ``BlobEndpoint``, else built from protocol, account name and ``EndpointSuffix``.
    """

    def __init__(
        self, account_name: str, account_key: str | None, sas_token: str | None, blob_endpoint: str
    ) -> None:
        self.account_name = account_name
        self.account_key = account_key
        self.sas_token = sas_token
        self.blob_endpoint = blob_endpoint

    def __repr__(self) -> str:
        secret = (
            "account_key='***'" if self.account_key else "sas_token='***'" if self.sas_token else "anonymous"
        )
        return f"AzureConnection(account_name={self.account_name!r}, {secret}, blob_endpoint={self.blob_endpoint!r})"


def parse_connection_string(connection: str, source: str = "connection string") -> AzureConnection:
    """Parse ``Key=Value;...`` (``AccountName``, ``AccountKey``, ``BlobEndpoint``,
    ``DefaultEndpointsProtocol``, ``EndpointSuffix``, ``SharedAccessSignature``,
    ``UseDevelopmentStorage=true``). Keys are case-insensitive; unknown keys are ignored.

    Args:
        connection: The connection string.
        source: What to call it in error messages (never the value itself).

    Raises:
        ConfigError: Malformed, or missing ``AccountName`` (unless ``BlobEndpoint`` names it) or a
            credential (``AccountKey`` or ``SharedAccessSignature``). The message names the key.
    """
    if not isinstance(connection, str) or not connection.strip():
        raise ConfigError(f"Azure {source} is empty; expected 'AccountName=...;AccountKey=...'")
    fields: dict[str, str] = {}
    for part in connection.strip().strip(";").split(";"):
        key, sep, value = part.strip().partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Azure {source} is malformed: expected 'Key=Value' pairs separated by ';'")
        name = _KNOWN_KEYS.get(key.strip().lower())
        if name:
            fields[name] = value.strip()
    if fields.get("UseDevelopmentStorage", "").lower() == "true":
        return AzureConnection(
            AZURITE_ACCOUNT_NAME, AZURITE_ACCOUNT_KEY, None, f"http://127.0.0.1:10000/{AZURITE_ACCOUNT_NAME}"
        )
    endpoint = fields.get("BlobEndpoint", "").rstrip("/")
    account = fields.get("AccountName") or (_account_from_endpoint(endpoint) if endpoint else "")
    if not account:
        raise ConfigError(f"Azure {source} has no AccountName")
    account_key = fields.get("AccountKey") or None
    sas = (fields.get("SharedAccessSignature") or "").lstrip("?") or None
    if account_key is None and sas is None:
        raise ConfigError(f"Azure {source} has neither AccountKey nor SharedAccessSignature")
    if not endpoint:
        protocol = fields.get("DefaultEndpointsProtocol", "https").lower()
        if protocol not in ("http", "https"):
            raise ConfigError(
                f"Azure {source}: DefaultEndpointsProtocol must be http or https, got {protocol!r}"
            )
        suffix = fields.get("EndpointSuffix", "core.windows.net")
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    return AzureConnection(account, account_key, sas, endpoint)


def _account_from_endpoint(endpoint: str) -> str:
    """``ACCOUNT`` of ``https://ACCOUNT.blob.core.windows.net``, or the first path segment of an
    emulator-style endpoint (``http://127.0.0.1:10000/devstoreaccount1``); ``""`` if neither."""
    parts = urllib.parse.urlsplit(endpoint)
    segment = parts.path.strip("/").split("/", 1)[0]
    if segment:
        return segment
    host = parts.hostname or ""
    return host.split(".", 1)[0] if ".blob." in host else ""


class StaticAzureCredentialsProvider(CredentialsProvider):
    """Credentials from an Azure Storage connection string (see :func:`parse_connection_string`).

    :meth:`get_credentials` returns the account name as ``access_key``, the account key as
    ``secret_key`` and a SAS (if any) as ``token``; ``custom_fields`` holds ``blob_endpoint`` and
    ``token_type="sas"``. Neither ``repr`` nor any error message shows the secrets.

    Args:
        connection: The connection string.

    Raises:
        ConfigError: The connection string is malformed or incomplete.
    """

    def __init__(self, connection: str) -> None:
        self._connection = parse_connection_string(connection)

    @property
    def connection(self) -> AzureConnection:
        """The parsed connection string."""
        return self._connection

    def get_credentials(self) -> Credentials:
        """The static credentials; they never expire."""
        conn = self._connection
        return Credentials(
            conn.account_name,
            conn.account_key or "",
            conn.sas_token,
            expiration=None,
            custom_fields={"blob_endpoint": conn.blob_endpoint, "token_type": "sas"},
        )

    def refresh_credentials(self) -> None:
        """Nothing to refresh."""

    def __repr__(self) -> str:
        return f"StaticAzureCredentialsProvider({self._connection!r})"


class DefaultAzureCredentialsProvider(CredentialsProvider):
    """Microsoft Entra ID tokens from ``azure.identity.DefaultAzureCredential`` (environment,
    workload identity, managed identity, Azure CLI...). Requires ``pip install azure-identity``.

    :meth:`get_credentials` returns the bearer token as ``token`` (``custom_fields["token_type"]``
    is ``"bearer"``) with its expiry; the storage provider refreshes it shortly before it expires.
    The account comes from the provider's ``endpoint_url``.

    Args:
        **kwargs: Passed to ``DefaultAzureCredential``.

    Raises:
        ProviderUnavailableError: azure-identity is not installed.
    """

    def __init__(self, **kwargs: Any) -> None:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError as err:
            raise ProviderUnavailableError(
                "DefaultAzureCredentials needs the azure-identity package: pip install azure-identity"
            ) from err
        self._credential = DefaultAzureCredential(**kwargs)
        self._current: Credentials | None = None

    def get_credentials(self) -> Credentials:
        """A valid bearer token (fetched on first use and when within 5 minutes of expiry)."""
        if self._current is None or self._current.is_expired(margin_seconds=300):
            self.refresh_credentials()
        assert self._current is not None
        return self._current

    def refresh_credentials(self) -> None:
        """Fetch a new token."""
        token = self._credential.get_token(_STORAGE_SCOPE)
        expiry = datetime.fromtimestamp(token.expires_on, tz=timezone.utc).isoformat()
        self._current = Credentials("", "", token.token, expiry, custom_fields={"token_type": "bearer"})

    def __repr__(self) -> str:
        return "DefaultAzureCredentialsProvider()"


class _ObstoreAzureCredentials:
    """Adapts a :class:`CredentialsProvider` to obstore's Azure ``credential_provider`` callback."""

    def __init__(self, provider: CredentialsProvider) -> None:
        self._provider = provider

    def __call__(self) -> AzureCredential:
        creds, expires_at = fresh_credentials(self._provider)
        if creds.secret_key:
            return {"access_key": creds.secret_key, "expires_at": expires_at}
        if creds.token and creds.get_custom_field("token_type", "sas") == "bearer":
            return {"token": creds.token, "expires_at": expires_at}
        if creds.token:
            return {"sas_token": creds.token.lstrip("?"), "expires_at": expires_at}
        raise ConfigError(f"{self._provider!r} returned neither an account key nor a token")


class AzureBlobStorageProvider(S3StorageProvider):
    """Storage provider for Azure Blob Storage (and the Azurite emulator).

    Args:
        endpoint_url: Account URL, e.g. ``https://ACCOUNT.blob.core.windows.net`` or Azurite's
            ``http://127.0.0.1:10000/devstoreaccount1``. Default: the connection string's
            ``BlobEndpoint`` (credentials provider, else ``AZURE_STORAGE_CONNECTION_STRING``), else
            ``https://{AZURE_STORAGE_ACCOUNT_NAME}.blob.core.windows.net``.
        base_path: ``"container"`` or ``"container/prefix"``; every key is relative to it.
        credentials_provider: :class:`StaticAzureCredentialsProvider`,
            :class:`DefaultAzureCredentialsProvider` or any provider whose credentials carry an
            account key (``secret_key``) or a SAS / bearer token (``token``). Without one:
            ``AZURE_STORAGE_CONNECTION_STRING``, else ``AZURE_STORAGE_ACCOUNT_NAME`` with
            ``AZURE_STORAGE_ACCOUNT_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``, else object_store's own
            chain (managed identity, workload identity, Azure CLI per ``AZURE_*`` variables).
        multipart_threshold: Uploads larger than this use blocks. Bytes or ``"64M"``. Default 64 MiB.
        multipart_chunksize: Block size of uploads and range size of parallel downloads. Default 32 MiB.
        max_concurrency: Blocks/ranges transferred in parallel. Default 16.
        io_chunksize: Chunk size when streaming a blob into a file. Default 8 MiB.
        connect_timeout: Seconds to establish a connection. Default 60.
        read_timeout: Seconds a read may stall. Default 60.
        allow_http: Permit ``http://`` endpoints. Default: True only for an ``http://`` endpoint.
        verify: ``True`` (default), ``False`` (skip TLS checks; testing only) or a PEM CA bundle path.
        max_pool_connections: Idle connections kept per host.

    Raises:
        ConfigError: An unknown option, an invalid value, or no way to find the account.
    """

    provider_name: ClassVar[str] = "azure"
    OPTIONS: ClassVar[frozenset[str]] = _OPTIONS | _TELEMETRY_OPTIONS
    presign_signer: ClassVar[SignerType] = SignerType.AZURE
    supports_conditional_writes: ClassVar[bool] = True
    url_scheme: ClassVar[str] = "az"
    symlink_attribute: ClassVar[str] = "msc_symlink_target"  # Azure metadata names cannot hold "-"

    def __init__(
        self,
        endpoint_url: str = "",
        base_path: str = "",
        credentials_provider: CredentialsProvider | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - _OPTIONS - _TELEMETRY_OPTIONS)
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}: unknown option(s) {unknown}; "
                f"see the documented parameters of the {self.provider_name!r} provider"
            )
        conn: AzureConnection | None = None
        if isinstance(credentials_provider, StaticAzureCredentialsProvider):
            conn = credentials_provider.connection
        elif credentials_provider is None and os.environ.get("AZURE_STORAGE_CONNECTION_STRING"):
            conn = parse_connection_string(
                os.environ["AZURE_STORAGE_CONNECTION_STRING"], "AZURE_STORAGE_CONNECTION_STRING"
            )
        env_account = "" if credentials_provider else os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", "")
        endpoint = (endpoint_url or (conn.blob_endpoint if conn else "")).rstrip("/")
        if not endpoint and env_account:
            endpoint = f"https://{env_account}.blob.core.windows.net"
        if not endpoint:
            raise ConfigError(
                f"{type(self).__name__}: no endpoint_url, and none can be derived: set endpoint_url "
                "(https://ACCOUNT.blob.core.windows.net), AZURE_STORAGE_CONNECTION_STRING or "
                "AZURE_STORAGE_ACCOUNT_NAME"
            )
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{type(self).__name__}: endpoint_url must be an http(s) URL, got {endpoint!r}")
        super().__init__("", endpoint, base_path, credentials_provider, **kwargs)
        self._endpoint = endpoint
        self._allow_http = bool(kwargs.get("allow_http", endpoint.startswith("http://")))
        self._account = _account_from_endpoint(endpoint) or (conn.account_name if conn else "") or env_account
        if conn is not None and conn.account_name != self._account and credentials_provider is None:
            conn = None  # AZURE_STORAGE_CONNECTION_STRING is for another account than endpoint_url's
        self._conn = conn
        if not self._account:
            raise ConfigError(
                f"{type(self).__name__}: cannot tell the storage account from endpoint_url {endpoint!r}; "
                "use https://ACCOUNT.blob.core.windows.net or give a connection string"
            )
        self._root = normalize_key(self._root).rstrip("/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(container={self._bucket!r}, prefix={self._root!r})"

    @property
    def container(self) -> str:
        """The container name taken from ``base_path``."""
        return self._bucket

    @property
    def account_name(self) -> str:
        """The storage account."""
        return self._account

    def generate_presigned_url(
        self,
        path: str,
        *,
        method: str = "GET",
        signer_type: SignerType | None = None,
        signer_options: dict[str, Any] | None = None,
    ) -> str:
        """A service-SAS URL for ``method`` on ``path``, signed with the account key.

        Raises:
            ValueError: Bad method, signer type (``None`` or ``SignerType.AZURE``) or option.
            PermissionError: The profile has no account key (token or SAS credentials cannot
                sign a new SAS).
        """
        verb, expires_in = presign_request(self, method, signer_type, signer_options, SignerType.AZURE)
        key = (self._conn.account_key if self._conn else None) or (
            None if self._credentials_provider else os.environ.get("AZURE_STORAGE_ACCOUNT_KEY")
        )
        if not key:
            raise PermissionError(
                f"{self!r}: cannot sign a SAS URL: no account key (expected a connection string with "
                "AccountKey or AZURE_STORAGE_ACCOUNT_KEY; token and SAS credentials cannot sign)"
            )
        return blob_sas_url(
            self._endpoint, self._account, key, self._bucket, self._full_key(path), verb, expires_in
        )

    def _store_config(self) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """Azure config, client options and credential callback for the store."""
        config: dict[str, Any] = {"account_name": self._account, "endpoint": self._endpoint}
        client = client_options(
            self._allow_http,
            self._connect_timeout,
            self._read_timeout,
            timedelta(hours=24),
            self._verify,
            self._pool_size,
        )
        callback: Any = None
        if self._credentials_provider is not None:
            callback = _ObstoreAzureCredentials(self._credentials_provider)
        elif self._conn is not None:
            if self._conn.account_key:
                config["account_key"] = self._conn.account_key
            elif self._conn.sas_token:
                config["sas_key"] = self._conn.sas_token
        elif os.environ.get("AZURE_STORAGE_ACCOUNT_KEY"):
            config["account_key"] = os.environ["AZURE_STORAGE_ACCOUNT_KEY"]
        elif os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
            config["sas_key"] = os.environ["AZURE_STORAGE_SAS_TOKEN"].lstrip("?")
        return config, client, callback

    def _build_store(self, store_class: Any, retry: RetryConfig | None = None) -> Any:
        """An ``AzureStore`` (``store_class``, the S3 class, is ignored) with obstore's retries off,
        or for streaming writers retrying each block per ``retry``."""
        retry_config: dict[str, Any] = {"max_retries": 0}
        if retry is not None:
            retry_config = {
                "max_retries": retry.attempts - 1,
                "backoff": {
                    "init_backoff": timedelta(seconds=retry.delay),
                    "base": retry.backoff_multiplier,
                    "max_backoff": timedelta(seconds=max(retry.delay * retry.backoff_multiplier**4, 1.0)),
                },
            }
        try:
            config, client, callback = self._store_config()
            return obstore_store_class("AzureStore")(
                self._bucket,
                config=cast("AzureConfig", config),
                client_options=cast("ClientConfig", client),
                retry_config=cast("Any", retry_config),
                credential_provider=callback,
            )
        except ManystoreError:
            raise
        except Exception as err:
            raise ConfigError(f"{self!r}: cannot configure Azure Blob Storage: {_summary(str(err))}")
