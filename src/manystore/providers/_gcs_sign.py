"""V4 signed URLs for the GCS provider (``google-cloud-storage``'s ``Blob.generate_signed_url``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

__all__ = ["signed_url"]


def signed_url(blob: Any, verb: str, expires_in: int, endpoint: str, where: str) -> str:
    """A V4 signed URL of ``blob`` for ``verb``, valid ``expires_in`` seconds.

    Args:
        blob: The SDK blob.
        verb: HTTP method.
        expires_in: Lifetime in seconds.
        endpoint: Custom API endpoint (e.g. an emulator), or ``""`` for Google's.
        where: The provider and object, for error messages.

    Raises:
        PermissionError: The credentials hold no private key and cannot call the IAM
            ``signBlob`` API (e.g. anonymous access to an emulator): nothing can sign.
    """
    kwargs: dict[str, Any] = {"version": "v4", "expiration": timedelta(seconds=expires_in), "method": verb}
    if endpoint:
        kwargs["api_access_endpoint"] = endpoint
    try:
        return str(blob.generate_signed_url(**kwargs))
    except AttributeError as err:  # google-auth: credentials without a signer
        raise PermissionError(
            f"{where}: cannot sign a GCS URL: the profile's credentials cannot sign "
            f"(need a service-account key or IAM signBlob permission; anonymous credentials have neither): {err}"
        ) from None
