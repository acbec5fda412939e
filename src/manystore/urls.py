"""Parsing of the URLs manystore accepts, and path mapping.

Accepted forms:
    * ``msc://profile/path`` — a configured profile.
    * ``s3://bucket/key``, ``gs://bucket/key``, ``ais://bucket/key``, ``az://container/key`` —
      implicit profiles named ``_s3-bucket``, ``_gs-bucket``, ``_ais-bucket``, ``_az-container``.
    * ``https://ACCOUNT.blob.core.windows.net/container/key`` — implicit profile
      ``_azblob-ACCOUNT-container`` (Azure account names hold no ``-``), an Azure profile with
      ``endpoint_url=https://ACCOUNT.blob.core.windows.net`` and ``base_path=container``.
    * ``file:///abs/path``, ``/abs/path`` and relative paths — the ``__filesystem__`` profile
      (relative paths are taken from the current directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidURLError
from .schema import RESERVED_POSIX_PROFILE

__all__ = [
    "IMPLICIT_PROTOCOLS",
    "MSC_PROTOCOL",
    "ParsedURL",
    "PathMapping",
    "implicit_profile_config",
    "parse_url",
    "url_to_str",
]

MSC_PROTOCOL = "msc"
#: Host suffix of Azure Blob Storage account URLs, and the implicit-profile tag of such URLs.
AZURE_BLOB_HOST_SUFFIX = ".blob.core.windows.net"
AZURE_BLOB_PROFILE_TAG = "azblob"
#: URL scheme -> storage provider type of its implicit profile.
IMPLICIT_PROTOCOLS: dict[str, str] = {"s3": "s3", "gs": "gcs", "ais": "ais", "az": "azure"}


@dataclass(frozen=True)
class ParsedURL:
    """A URL split into the profile that serves it and the key within that profile."""

    profile: str
    path: str


def implicit_profile_config(profile: str) -> dict[str, Any] | None:
    """The profile dict of an implicit profile name (``_s3-bucket``), or ``None`` if not implicit."""
    if profile == RESERVED_POSIX_PROFILE:
        return {"storage_provider": {"type": "file", "options": {"base_path": "/"}}}
    if not profile.startswith("_") or "-" not in profile:
        return None
    scheme, _, bucket = profile[1:].partition("-")
    if scheme == AZURE_BLOB_PROFILE_TAG:
        account, _, container = bucket.partition("-")
        if not account or not container:
            return None
        options = {"endpoint_url": f"https://{account}{AZURE_BLOB_HOST_SUFFIX}", "base_path": container}
        return {"storage_provider": {"type": "azure", "options": options}}
    if scheme not in IMPLICIT_PROTOCOLS or not bucket:
        return None
    return {"storage_provider": {"type": IMPLICIT_PROTOCOLS[scheme], "options": {"base_path": bucket}}}


def implicit_url_prefix(profile: str) -> str | None:
    """The URL prefix an implicit profile's keys are shown with (``s3://bucket/``, ``/``), or ``None``."""
    if profile == RESERVED_POSIX_PROFILE:
        return "/"
    if not profile.startswith("_"):
        return None
    scheme, _, rest = profile[1:].partition("-")
    if scheme == AZURE_BLOB_PROFILE_TAG:
        account, _, container = rest.partition("-")
        return f"https://{account}.blob.core.windows.net/{container}/" if container else None
    return f"{scheme}://{rest}/" if scheme in IMPLICIT_PROTOCOLS and rest else None


def _split_scheme(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", url
    return scheme.lower(), rest


def url_to_str(url: Any) -> Any:
    """The string form of a URL or path object; anything else is returned unchanged.

    A ``str`` is returned as is. An object whose ``str()`` is a URL (holds ``://``, as
    :class:`manystore.pathlib.MultiStoragePath` does for remote paths, whose
    ``__fspath__`` raises :class:`TypeError`) gives that string. Any other
    :class:`os.PathLike` gives :func:`os.fspath`.

    Args:
        url: A str, a path object, or something else (left for the caller to reject).

    Returns:
        The URL or path string, or ``url`` itself if it is neither.
    """
    if isinstance(url, str):
        return url
    if isinstance(url, os.PathLike):
        text = str(url)
        if "://" in text:
            return text
        return os.fspath(url)
    return url


def parse_url(url: str | os.PathLike[str]) -> ParsedURL:
    """Split ``url`` into (profile, path) without consulting any configuration.

    Args:
        url: ``msc://profile/key``, ``s3://bucket/key`` (and the other implicit schemes),
            ``file:///abs/path``, a local path, or a path object such as
            :class:`pathlib.Path` or :class:`manystore.pathlib.MultiStoragePath`.

    Returns:
        The profile and the key within it.

    Raises:
        InvalidURLError: Not a str, empty, unknown scheme, or missing profile/bucket.
    """
    url = url_to_str(url)
    if not isinstance(url, str):
        raise InvalidURLError(f"expected a URL or path string, got {type(url).__name__}: {url!r}")
    if not url:
        raise InvalidURLError("empty URL: expected 'msc://profile/path', 's3://bucket/key' or a file path")
    if "\x00" in url:
        raise InvalidURLError(f"URL {url!r} contains a NUL byte")
    scheme, rest = _split_scheme(url)
    if scheme == "":
        return ParsedURL(RESERVED_POSIX_PROFILE, os.path.abspath(url).lstrip("/"))
    if scheme == "file":
        if not rest.startswith("/"):
            raise InvalidURLError(f"file URL {url!r} must hold an absolute path, like 'file:///data/x'")
        return ParsedURL(RESERVED_POSIX_PROFILE, os.path.normpath(rest).lstrip("/"))
    head, _, path = rest.partition("/")
    if scheme == "https" and head.lower().endswith(AZURE_BLOB_HOST_SUFFIX):
        return _parse_azure_blob_url(url, head, path)
    if scheme == MSC_PROTOCOL:
        if not head:
            raise InvalidURLError(f"URL {url!r} names no profile; expected 'msc://profile/path'")
        return ParsedURL(head, path)
    if scheme in IMPLICIT_PROTOCOLS:
        if not head:
            raise InvalidURLError(f"URL {url!r} names no bucket; expected '{scheme}://bucket/key'")
        return ParsedURL(f"_{scheme}-{head}", path)
    allowed = ["msc", "file", *IMPLICIT_PROTOCOLS]
    raise InvalidURLError(
        f"URL {url!r} has unsupported scheme {scheme!r}; expected one of {allowed}, "
        f"https://ACCOUNT{AZURE_BLOB_HOST_SUFFIX}/container/key or a path"
    )


def _parse_azure_blob_url(url: str, host: str, path: str) -> ParsedURL:
    """``https://ACCOUNT.blob.core.windows.net/container/key`` -> ``_azblob-ACCOUNT-container``."""
    account = host[: -len(AZURE_BLOB_HOST_SUFFIX)].lower()
    if not account or not account.isalnum() or not account.isascii():
        raise InvalidURLError(f"URL {url!r}: {account!r} is not an Azure storage account name")
    container, _, key = path.partition("/")
    if not container or "?" in url or "#" in url:
        raise InvalidURLError(
            f"URL {url!r}: expected 'https://ACCOUNT{AZURE_BLOB_HOST_SUFFIX}/container/key' "
            "without query or fragment"
        )
    return ParsedURL(f"_{AZURE_BLOB_PROFILE_TAG}-{account}-{container}", key)


@dataclass
class PathMapping:
    """Maps URL prefixes (``s3://bucket/prefix/``, ``/mnt/data/``) to ``msc://profile/`` prefixes.

    Entries are grouped by protocol and bucket, longest prefix first, so the most
    specific mapping wins.
    """

    mapping: dict[str, dict[str, list[tuple[str, str]]]] = field(default_factory=dict)

    @staticmethod
    def from_config(section: dict[str, str] | None) -> PathMapping:
        """Build from a config's ``path_mapping`` section."""
        out = PathMapping()
        for source, target in (section or {}).items():
            scheme, rest = _split_scheme(source)
            scheme = scheme or "file"
            bucket, _, prefix = rest.lstrip("/").partition("/") if scheme != "file" else ("", "", rest)
            profile = target[len("msc://") :].rstrip("/")
            out.mapping.setdefault(scheme, {}).setdefault(bucket, []).append((prefix, profile))
        for buckets in out.mapping.values():
            for entries in buckets.values():
                entries.sort(key=lambda e: len(e[0]), reverse=True)
        return out

    def find_mapping(self, url: str | os.PathLike[str]) -> tuple[str, str] | None:
        """``(profile, path)`` for ``url`` if a mapping covers it, else ``None``.

        Args:
            url: A URL, a local path or a path object (see :func:`url_to_str`).
        """
        if not self.mapping:
            return None
        url = url_to_str(url)
        if not isinstance(url, str):
            return None
        scheme, rest = _split_scheme(url)
        if scheme == MSC_PROTOCOL:
            return None
        if scheme == "":
            scheme, rest = "file", os.path.abspath(url)
        if scheme == "file":
            bucket, key = "", rest
        else:
            bucket, _, key = rest.partition("/")
        for prefix, profile in self.mapping.get(scheme, {}).get(bucket, []):
            if key.startswith(prefix):
                return profile, key[len(prefix) :]
        return None
