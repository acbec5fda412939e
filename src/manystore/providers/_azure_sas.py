"""Service SAS URLs for single blobs, signed with the storage account key (HMAC-SHA256).

Written from Azure's published "Create a service SAS" rules (string-to-sign of version
2020-12-06), so no Azure SDK is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from datetime import datetime, timedelta, timezone

__all__ = ["blob_sas_url"]

_SAS_VERSION = "2020-12-06"
_PERMISSIONS = {"GET": "r", "HEAD": "r", "PUT": "cw", "DELETE": "d"}


def blob_sas_url(
    endpoint: str, account: str, account_key: str, container: str, blob: str, verb: str, expires_in: int
) -> str:
    """``endpoint/container/blob?<SAS>`` granting ``verb`` for ``expires_in`` seconds.

    Args:
        endpoint: Blob service URL (``https://ACCOUNT.blob.core.windows.net`` or an emulator's).
        account: Storage account name.
        account_key: The account key (base64).
        container: Container name.
        blob: Blob name.
        verb: ``GET``, ``HEAD``, ``PUT`` or ``DELETE``.
        expires_in: Lifetime in seconds.

    Raises:
        ValueError: ``account_key`` is not base64.
    """
    try:
        key = base64.b64decode(account_key, validate=True)
    except ValueError:
        raise ValueError(f"Azure account key of {account!r} is not base64; cannot sign a SAS") from None
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expiry = (now + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
    permissions = _PERMISSIONS[verb]
    resource = f"/blob/{account}/{container}/{blob}"
    fields = [permissions, start, expiry, resource, "", "", "", _SAS_VERSION, "b", "", "", "", "", "", "", ""]
    string_to_sign = "\n".join(fields)
    signature = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
    query = urllib.parse.urlencode(
        {"sv": _SAS_VERSION, "st": start, "se": expiry, "sr": "b", "sp": permissions, "sig": signature}
    )
    path = urllib.parse.quote(f"{container}/{blob}")
    return f"{endpoint.rstrip('/')}/{path}?{query}"
