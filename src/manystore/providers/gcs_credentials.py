"""Google Cloud credentials providers: workload identity federation and service-account keys.

Re-exported by :mod:`manystore.providers.gcs`, where configurations name them.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError
from ..types import Credentials, CredentialsProvider

__all__ = [
    "GoogleIdentityPoolCredentialsProvider",
    "GoogleServiceAccountCredentialsProvider",
    "StringTokenSupplier",
]

_ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


class StringTokenSupplier:
    """Supplies a fixed subject token to Google's identity-pool (workload identity federation) flow.

    Args:
        token: The external identity token (e.g. an OIDC ID token). Never shown by ``repr``.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def get_subject_token(self, context: Any, request: Any) -> str:
        """Return the token (``context`` and ``request`` are unused)."""
        return self._token

    def __repr__(self) -> str:
        return "StringTokenSupplier(token='***')"


class GoogleIdentityPoolCredentialsProvider(CredentialsProvider):
    """Workload identity federation: exchange an external token for Google credentials.

    Args:
        audience: The workload identity pool provider's audience
            (``//iam.googleapis.com/projects/.../providers/...``).
        token_supplier: The subject token itself (a string, as in the reference client).
    """

    def __init__(self, audience: str, token_supplier: str) -> None:
        self._audience = audience
        self._token = token_supplier

    def get_credentials(self) -> Credentials:
        """The audience and token, in ``custom_fields`` (``audience``, ``token``)."""
        return Credentials("", "", None, None, {"audience": self._audience, "token": self._token})

    def refresh_credentials(self) -> None:
        """Nothing to refresh: google-auth exchanges the token when needed."""

    def google_credentials(self) -> Any:
        """A ``google.auth.identity_pool.Credentials`` (built without network access)."""
        from google.auth import identity_pool

        return identity_pool.Credentials(
            audience=self._audience,
            subject_token_type=_ID_TOKEN_TYPE,
            token_url="https://sts.googleapis.com/v1/token",
            subject_token_supplier=StringTokenSupplier(self._token),
        )

    def __repr__(self) -> str:
        return f"GoogleIdentityPoolCredentialsProvider(audience={self._audience!r})"


class GoogleServiceAccountCredentialsProvider(CredentialsProvider):
    """A service-account key: a JSON key file path or its parsed contents (exactly one).

    Args:
        file: Path of the service-account JSON key file.
        info: The key file's contents as a dict.

    Raises:
        ConfigError: Neither or both given, or the file is not readable JSON.
    """

    def __init__(self, file: str | None = None, info: dict[str, Any] | None = None) -> None:
        if (file is None) == (info is None):
            raise ConfigError("GoogleServiceAccountCredentialsProvider: give exactly one of 'file' or 'info'")
        if file is not None:
            try:
                with open(file, encoding="utf-8") as fh:
                    info = json.load(fh)
            except (OSError, ValueError) as err:
                raise ConfigError(f"cannot read service-account key file {file!r}: {type(err).__name__}")
        if not isinstance(info, dict):
            raise ConfigError("GoogleServiceAccountCredentialsProvider: the key must be a JSON object")
        self._info = dict(info)

    def get_credentials(self) -> Credentials:
        """The key's ``client_email`` as access key; the whole key in ``custom_fields["info"]``."""
        return Credentials(
            str(self._info.get("client_email", "")), "", None, None, {"info": dict(self._info)}
        )

    def refresh_credentials(self) -> None:
        """Nothing to refresh: google-auth mints access tokens from the key."""

    def google_credentials(self) -> Any:
        """A ``google.oauth2.service_account.Credentials``."""
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(self._info)

    def __repr__(self) -> str:
        return f"GoogleServiceAccountCredentialsProvider(client_email={self._info.get('client_email')!r})"


# ------------------------------------------------------------------ errors
