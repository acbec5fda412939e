"""``ClientConfig`` (s3torchconnector's ``S3ClientConfig``): S3 client settings mapped onto a profile.

The seed's datasets take ``region``, ``endpoint`` and ``s3client_config`` keyword arguments.
In manystore they shape the implicit profile of an ``s3://bucket/...`` URL; profiles named
by ``msc://`` carry their own settings, so these arguments are refused there rather than
silently ignored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = ["ClientConfig", "S3ClientConfig", "s3_profile_overrides"]

_MIN_PART, _MAX_PART = 5 << 20, 5 << 30


@dataclass(frozen=True)
class ClientConfig:
    """Settings of the S3 client behind an ``s3://`` dataset (the seed's ``S3ClientConfig``).

    Each field maps onto the implicit profile's options (see :func:`s3_profile_overrides`).

    Attributes:
        throughput_target_gbps: The seed's CRT throughput target. manystore sizes its
            transfers per object instead; only the default ``10.0`` is accepted.
        part_size: Multipart part size in bytes (5 MiB to 5 GiB): the profile's
            ``multipart_chunksize``.
        unsigned: Send unsigned requests (public buckets): ``signature_version: UNSIGNED``.
        force_path_style: Path-style addressing (``http://host/bucket/key``).
        max_attempts: Attempts per request, retries included: the profile's ``retry.attempts``.
        profile: An AWS shared-config profile name. Not supported (configure credentials in
            an ``msc://`` profile or the ``AWS_*`` environment); only ``None`` is accepted.
    """

    throughput_target_gbps: float = 10.0
    part_size: int = 8 * 1024 * 1024
    unsigned: bool = False
    force_path_style: bool = False
    max_attempts: int = 10
    profile: str | None = None

    def __post_init__(self) -> None:
        if self.throughput_target_gbps != 10.0:
            raise ValueError(
                f"ClientConfig.throughput_target_gbps={self.throughput_target_gbps!r} has no manystore "
                "equivalent; expected the default 10.0 (tune max_concurrency in an msc:// profile instead)"
            )
        if not isinstance(self.part_size, int) or not _MIN_PART <= self.part_size <= _MAX_PART:
            raise ValueError(
                f"ClientConfig.part_size={self.part_size!r}: expected an int between 5 MiB and 5 GiB"
            )
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"ClientConfig.max_attempts={self.max_attempts!r}: expected an int >= 1")
        if self.profile is not None:
            raise ValueError(
                f"ClientConfig.profile={self.profile!r}: AWS shared-config profiles are not supported; "
                "expected None (put credentials in an msc:// profile or the AWS_* environment)"
            )


S3ClientConfig = ClientConfig


def s3_profile_overrides(
    base: dict[str, Any], region: str | None, endpoint: str | None, config: ClientConfig | None
) -> dict[str, Any]:
    """A copy of the S3 profile dict ``base`` with the seed's ``region``/``endpoint``/``config`` applied.

    Args:
        base: A profile dict (``{"storage_provider": {"type": "s3", "options": {...}}, ...}``).
        region: ``region_name`` of the profile, when given.
        endpoint: ``endpoint_url`` of the profile, when given.
        config: Client settings, when given.

    Raises:
        TypeError: ``config`` is not a :class:`ClientConfig` (or the seed's ``S3ClientConfig``).
    """
    profile = copy.deepcopy(base)
    options = profile["storage_provider"].setdefault("options", {})
    if region:
        options["region_name"] = region
    if endpoint:
        options["endpoint_url"] = endpoint
    if config is not None:
        if not isinstance(config, ClientConfig):
            config = _from_seed_config(config)
        options["multipart_chunksize"] = config.part_size
        if config.force_path_style:
            options["force_path_style"] = True
        if config.unsigned:
            options["signature_version"] = "UNSIGNED"
        profile["retry"] = {**profile.get("retry", {}), "attempts": config.max_attempts}
    return profile


def _from_seed_config(config: Any) -> ClientConfig:
    """A :class:`ClientConfig` from s3torchconnector's own ``S3ClientConfig`` (same fields)."""
    fields = (
        "throughput_target_gbps",
        "part_size",
        "unsigned",
        "force_path_style",
        "max_attempts",
        "profile",
    )
    if not all(hasattr(config, name) for name in fields):
        raise TypeError(f"s3client_config={config!r}: expected a manystore.torch.ClientConfig")
    return ClientConfig(**{name: getattr(config, name) for name in fields})
