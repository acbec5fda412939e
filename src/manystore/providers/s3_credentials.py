"""S3 credentials: the static provider, and the adapters that feed credentials to obstore."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..types import Credentials, CredentialsProvider

if TYPE_CHECKING:
    from obstore.store import S3Credential

__all__ = [
    "Boto3Credentials",
    "ObstoreCredentials",
    "StaticS3CredentialsProvider",
    "boto3_credentials",
    "fresh_credentials",
]


class StaticS3CredentialsProvider(CredentialsProvider):
    """Fixed S3 credentials (access key, secret key, optional session token).

    Args:
        access_key: Access key id.
        secret_key: Secret access key. Never shown by ``repr``.
        session_token: Session token of temporary credentials, if any.
    """

    def __init__(self, access_key: str, secret_key: str, session_token: str | None = None) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._session_token = session_token

    def get_credentials(self) -> Credentials:
        """The static credentials; they never expire."""
        return Credentials(self._access_key, self._secret_key, self._session_token, expiration=None)

    def refresh_credentials(self) -> None:
        """Nothing to refresh."""

    def __repr__(self) -> str:
        return f"StaticS3CredentialsProvider(access_key={self.get_credentials()!r})"


def fresh_credentials(provider: CredentialsProvider) -> tuple[Credentials, datetime | None]:
    """``provider``'s credentials, refreshed when within a minute of expiry, and their expiry
    as an aware datetime (``None``: they don't expire) — what obstore's callbacks return."""
    creds = provider.get_credentials()
    if creds.is_expired(margin_seconds=60):
        provider.refresh_credentials()
        creds = provider.get_credentials()
    expires_at = None
    if creds.expiration:
        expires_at = datetime.fromisoformat(creds.expiration.replace("Z", "+00:00"))
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
    return creds, expires_at


class ObstoreCredentials:
    """Adapts a :class:`CredentialsProvider` to obstore's ``credential_provider`` callback."""

    def __init__(self, provider: CredentialsProvider) -> None:
        self._provider = provider

    def __call__(self) -> S3Credential:
        creds, expires_at = fresh_credentials(self._provider)
        return {
            "access_key_id": creds.access_key,
            "secret_access_key": creds.secret_key,
            "token": creds.token,
            "expires_at": expires_at,
        }


class Boto3Credentials:
    """obstore callback over botocore credentials (which refresh themselves); re-read every 10 min."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def __call__(self) -> S3Credential:
        frozen = self._credentials.get_frozen_credentials()
        expires_at = datetime.now(timezone.utc) + timedelta(minutes=10)
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": expires_at,
        }


def boto3_credentials(profile_name: str | None, config: dict[str, Any], owner: str) -> Any:
    """An obstore callback over boto3's credential chain, or ``None`` if boto3 is absent or
    finds nothing; fills ``config["region"]`` from the boto3 session when unset."""
    try:
        import boto3
    except ImportError:
        return None
    try:
        session = boto3.Session(profile_name=profile_name)
        credentials = session.get_credentials()
    except Exception as err:  # e.g. ProfileNotFound
        raise ConfigError(f"{owner}: boto3 credential chain failed: {err}")
    if credentials is None:
        return None
    if "region" not in config and session.region_name:
        config["region"] = session.region_name
    return Boto3Credentials(credentials)
