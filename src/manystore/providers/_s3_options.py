"""MSC 1.3.1's boto3/botocore options of S3 profiles, mapped onto the obstore transport.

MSC passes these to ``botocore.config.Config``; manystore has no botocore client, so
each is translated into what it means for the Rust ``object_store`` client:

* ``checksum_algorithm`` — ``SHA256`` or ``CRC64NVME``: every PUT and upload part carries
  that checksum (``x-amz-checksum-*``) and the server rejects corrupted bodies.
  ``CRC32``, ``CRC32C`` and ``SHA1`` (boto3 only) are refused, as MSC 1.3.1 refuses them
  with its Rust client.
* ``request_checksum_calculation`` — ``when_supported`` sends a SHA256 checksum on uploads
  when no ``checksum_algorithm`` is set; ``when_required`` sends none.
* ``response_checksum_validation`` — ``when_supported`` / ``when_required`` are the default
  of ``verify_checksums`` (downloads compared with the MD5 ETag) true / false.
* ``retries`` — ``{max_attempts | total_max_attempts, mode}``: the transport retries each
  request itself (``total_max_attempts - 1`` or ``max_attempts`` retries, exponential
  backoff; every ``mode`` backs off the same way), below the profile's ``retry``.
* ``s3`` — ``addressing_style`` (same as the top-level option) and
  ``payload_signing_enabled: false`` (``UNSIGNED-PAYLOAD`` signatures); other keys are refused.
* ``signature_version`` — ``s3v4`` (default) or ``UNSIGNED`` (anonymous requests).
* ``max_pool_connections``, ``connect_timeout``, ``read_timeout`` are options of the
  provider itself (see :class:`~manystore.providers.s3.S3StorageProvider`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["BOTOCORE_OPTIONS", "BotocoreOptions", "parse_botocore_options"]

BOTOCORE_OPTIONS = frozenset(
    {
        "checksum_algorithm",
        "request_checksum_calculation",
        "response_checksum_validation",
        "retries",
        "s3",
        "signature_version",
    }
)
_SUPPORTED_CHECKSUMS = ("SHA256", "CRC64NVME")
_BOTO_ONLY_CHECKSUMS = ("CRC32", "CRC32C", "SHA1")
_WHEN = ("when_supported", "when_required")
_RETRY_MODES = ("legacy", "standard", "adaptive")


@dataclass
class BotocoreOptions:
    """The parsed options (see the module docs).

    Attributes:
        checksum_algorithm: ``"sha256"``/``"crc64nvme"`` for ``object_store``, or None.
        verify_checksums: Default of ``verify_checksums`` (None: keep the provider's).
        max_retries: Retries the transport makes itself (None: none).
        addressing_style: From ``s3.addressing_style``, or None.
        unsigned_payload: Sign requests with ``UNSIGNED-PAYLOAD``.
        skip_signature: Send anonymous (unsigned) requests.
    """

    checksum_algorithm: str | None = None
    verify_checksums: bool | None = None
    max_retries: int | None = None
    addressing_style: str | None = None
    unsigned_payload: bool = False
    skip_signature: bool = False


def _when(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in _WHEN:
        raise ConfigError(f"S3 option {name!r}: invalid value {value!r}; expected one of {list(_WHEN)}")
    return value.lower()


def parse_botocore_options(options: dict[str, Any]) -> BotocoreOptions:
    """Translate the botocore-style options present in ``options``.

    Raises:
        ConfigError: A value that is invalid or has no equivalent here (the message names it).
    """
    out = BotocoreOptions()
    algorithm = options.get("checksum_algorithm")
    if algorithm is not None:
        upper = str(algorithm).upper()
        if upper in _BOTO_ONLY_CHECKSUMS:
            raise ConfigError(
                f"S3 option 'checksum_algorithm': {algorithm!r} is not supported by manystore's transport; "
                f"expected one of {list(_SUPPORTED_CHECKSUMS)}"
            )
        if upper not in _SUPPORTED_CHECKSUMS:
            raise ConfigError(
                f"S3 option 'checksum_algorithm': invalid value {algorithm!r}; expected one of {list(_SUPPORTED_CHECKSUMS)}"
            )
        out.checksum_algorithm = upper.lower()
    if _when("request_checksum_calculation", options.get("request_checksum_calculation")) == "when_supported":
        out.checksum_algorithm = out.checksum_algorithm or "sha256"
    response = _when("response_checksum_validation", options.get("response_checksum_validation"))
    if response is not None:
        out.verify_checksums = response == "when_supported"
    retries = options.get("retries")
    if retries is not None:
        if not isinstance(retries, dict):
            raise ConfigError(f"S3 option 'retries': expected a mapping, got {retries!r}")
        unknown = sorted(set(retries) - {"max_attempts", "total_max_attempts", "mode"})
        if unknown:
            raise ConfigError(
                f"S3 option 'retries': unknown key(s) {unknown}; expected max_attempts, total_max_attempts, mode"
            )
        mode = retries.get("mode", "standard")
        if mode not in _RETRY_MODES:
            raise ConfigError(
                f"S3 option 'retries.mode': invalid value {mode!r}; expected one of {list(_RETRY_MODES)}"
            )
        if "total_max_attempts" in retries:
            count, key = retries["total_max_attempts"], "total_max_attempts"
            low, offset = 1, 1
        else:
            count, key = retries.get("max_attempts", 0), "max_attempts"
            low, offset = 0, 0
        if isinstance(count, bool) or not isinstance(count, int) or count < low:
            raise ConfigError(f"S3 option 'retries.{key}': invalid value {count!r}; expected an int >= {low}")
        out.max_retries = count - offset
    s3 = options.get("s3")
    if s3 is not None:
        if not isinstance(s3, dict):
            raise ConfigError(f"S3 option 's3': expected a mapping, got {s3!r}")
        unknown = sorted(set(s3) - {"addressing_style", "payload_signing_enabled"})
        if unknown:
            raise ConfigError(
                f"S3 option 's3': key(s) {unknown} have no equivalent in manystore; "
                "expected addressing_style, payload_signing_enabled"
            )
        out.addressing_style = s3.get("addressing_style")
        out.unsigned_payload = s3.get("payload_signing_enabled") is False
    signature = options.get("signature_version")
    if signature is not None:
        if signature not in ("s3v4", "UNSIGNED"):
            raise ConfigError(
                f"S3 option 'signature_version': invalid value {signature!r}; expected 's3v4' or 'UNSIGNED'"
            )
        out.skip_signature = signature == "UNSIGNED"
    return out
