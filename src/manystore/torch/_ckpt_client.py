"""The client behind a checkpoint URL, honouring s3torchconnector's ``region``/``endpoint``/``s3client_config``.

Without those arguments a URL goes through :func:`manystore.shortcuts.resolve_storage_client`
(configured profiles, implicit ``s3://``/``gs://``/``az://``/``ais://`` profiles, local
paths). With them, an ``s3://bucket/...`` URL gets an implicit S3 profile of that bucket
carrying the endpoint, region and the client options mapped from ``s3client_config``;
any other URL refuses them (its profile carries its own settings).
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

from ..client import StorageClient
from ..config import StorageClientConfig
from ..shortcuts import resolve_storage_client
from ..urls import parse_url, url_to_str

__all__ = ["client_options", "resolve", "split_bucket_key"]

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], StorageClient] = {}

#: s3torchconnector's ``S3ClientConfig`` defaults: a field at its default adds no option.
_SEED_DEFAULTS: dict[str, Any] = {
    "throughput_target_gbps": 10.0,
    "part_size": 8 * 1024 * 1024,
    "unsigned": False,
    "force_path_style": False,
    "max_attempts": 10,
    "profile": None,
}


def client_options(s3client_config: Any) -> tuple[dict[str, Any], int | None]:
    """The S3 provider options and retry attempts an ``S3ClientConfig``-like object maps to.

    ``part_size`` -> ``multipart_chunksize``; ``force_path_style`` -> ``force_path_style``;
    ``unsigned`` -> ``signature_version: UNSIGNED``; ``profile`` -> ``profile_name``;
    ``throughput_target_gbps`` -> ``max_concurrency`` (1.6 connections per Gbps, 16 at the
    default 10 Gbps); ``max_attempts`` -> the profile's retry attempts.

    Args:
        s3client_config: An object with (some of) the fields of s3torchconnector's
            ``S3ClientConfig`` (``manystore.torch.ClientConfig`` or the seed's own).

    Returns:
        The provider options, and the retry attempts (``None``: the profile's default).

    Raises:
        TypeError: The object has none of the expected fields.
        ValueError: A field holds a value of the wrong type or range.
    """
    fields = {
        name: getattr(s3client_config, name) for name in _SEED_DEFAULTS if hasattr(s3client_config, name)
    }
    if not fields:
        raise TypeError(
            f"s3client_config must be a ClientConfig/S3ClientConfig (fields {sorted(_SEED_DEFAULTS)}), "
            f"got {type(s3client_config).__name__}"
        )
    options: dict[str, Any] = {}
    part_size = fields.get("part_size", _SEED_DEFAULTS["part_size"])
    if not isinstance(part_size, int) or part_size < 5 << 20:
        raise ValueError(f"s3client_config.part_size must be an int >= 5 MiB, got {part_size!r}")
    options["multipart_chunksize"] = part_size
    if fields.get("force_path_style"):
        options["force_path_style"] = True
    if fields.get("unsigned"):
        options["signature_version"] = "UNSIGNED"
    if fields.get("profile"):
        options["profile_name"] = fields["profile"]
    gbps = fields.get("throughput_target_gbps", _SEED_DEFAULTS["throughput_target_gbps"])
    if not isinstance(gbps, (int, float)) or gbps <= 0:
        raise ValueError(f"s3client_config.throughput_target_gbps must be a positive number, got {gbps!r}")
    options["max_concurrency"] = max(1, min(64, math.ceil(gbps * 1.6)))
    attempts = fields.get("max_attempts")
    if attempts is not None and (not isinstance(attempts, int) or attempts < 1):
        raise ValueError(f"s3client_config.max_attempts must be an int >= 1, got {attempts!r}")
    return options, attempts


def resolve(
    url: str | os.PathLike[str],
    region: str | None = None,
    endpoint: str | None = None,
    s3client_config: Any = None,
) -> tuple[StorageClient, str]:
    """The client serving ``url`` and the key within its profile.

    Args:
        url: ``msc://``, ``s3://``, ``gs://``, ``az://``, ``ais://`` URL or a local path.
        region: AWS region for an ``s3://`` URL.
        endpoint: S3 endpoint URL for an ``s3://`` URL.
        s3client_config: ``S3ClientConfig``-like options for an ``s3://`` URL.

    Raises:
        ValueError: ``region``/``endpoint``/``s3client_config`` given for a URL that is not
            ``s3://`` (its profile carries these settings).
        InvalidURLError: The URL cannot be parsed.
    """
    text = url_to_str(url)
    if region is None and endpoint is None and s3client_config is None:
        return resolve_storage_client(text)
    if not isinstance(text, str) or not text.startswith("s3://"):
        given = [
            n
            for n, v in (("region", region), ("endpoint", endpoint), ("s3client_config", s3client_config))
            if v
        ]
        raise ValueError(
            f"{', '.join(given)} only apply to s3:// URLs, got {text!r}: configure them in the URL's profile instead"
        )
    parsed = parse_url(text)
    bucket = parsed.profile.partition("-")[2]
    options: dict[str, Any] = {"base_path": bucket}
    if endpoint:
        options["endpoint_url"] = endpoint
    if region:
        options["region_name"] = region
    attempts = None
    if s3client_config is not None:
        extra, attempts = client_options(s3client_config)
        options.update(extra)
    key = (bucket, tuple(sorted(options.items())), attempts)
    with _lock:
        client = _clients.get(key)
        if client is None:
            profile: dict[str, Any] = {"storage_provider": {"type": "s3", "options": options}}
            if attempts is not None:
                profile["retry"] = {"attempts": attempts}
            config = StorageClientConfig.from_dict(
                {"profiles": {parsed.profile: profile}}, parsed.profile, skip_validation=True
            )
            client = _clients[key] = StorageClient(config)
    return client, parsed.path


def reset_after_fork() -> None:
    """Forget the clients built here (a forked child builds its own)."""
    _clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_after_fork)


def split_bucket_key(url: str) -> tuple[str, str]:
    """The seed's ``bucket`` and ``key`` of a URL: bucket (or profile) and the key within it."""
    text = url_to_str(url)
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() != "file":
        bucket, _, key = rest.partition("/")
        return bucket, key
    path = rest if sep else text
    return "", os.path.abspath(path)
