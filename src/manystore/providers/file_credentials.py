"""Credentials read from a JSON file that another process keeps up to date.

The file uses the AWS ``credential_process`` output format (the Multi-Storage Client's format)::

    {
      "Version": 1,
      "AccessKeyId": "AKIA...",
      "SecretAccessKey": "...",
      "SessionToken": "...",              # optional
      "Expiration": "2030-01-01T00:00:00Z"  # optional, ISO 8601
    }

Backend notes (where this differs from the Multi-Storage Client):

* :meth:`FileBasedCredentialsProvider.get_credentials` re-reads the file by itself once the cached
  credentials are within ``refresh_margin_seconds`` (default 5 minutes) of their ``Expiration`` and
  the file changed on disk, so a long job picks up rotated credentials without anyone calling
  :meth:`~FileBasedCredentialsProvider.refresh_credentials`. MSC only re-reads on an explicit refresh.
* A file caught half-written during such an automatic re-read is ignored while the cached
  credentials are still valid (the next call tries again); MSC instead waits one second after
  every modification before reading.
* Error messages name the file and the offending field, never a value.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ManystoreError
from ..types import Credentials, CredentialsProvider

__all__ = ["CredentialsFileNotFoundError", "CredentialsFileTypeError", "FileBasedCredentialsProvider"]

logger = logging.getLogger(__name__)

#: Re-read the file when the cached credentials expire within this many seconds.
DEFAULT_REFRESH_MARGIN_SECONDS = 300.0

_REQUIRED = ("AccessKeyId", "SecretAccessKey")
_OPTIONAL = ("SessionToken", "Expiration")


class CredentialsFileNotFoundError(ManystoreError, FileNotFoundError):
    """The credentials file does not exist (also a :class:`FileNotFoundError`)."""


class CredentialsFileTypeError(ConfigError, TypeError):
    """A field of the credentials file has the wrong JSON type (also a :class:`TypeError`)."""


def _signature(stat: os.stat_result) -> tuple[int, int, int]:
    """What identifies one version of the file: mtime, size and inode (a rename-into-place changes it)."""
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class FileBasedCredentialsProvider(CredentialsProvider):
    """Credentials from a JSON file in AWS ``credential_process`` format, re-read as they near expiry.

    Args:
        credential_file_path: Path of the JSON file (``~`` is expanded).
        refresh_margin_seconds: Re-read the file (if it changed) when the cached credentials expire
            within this many seconds. Default 300.

    Raises:
        CredentialsFileNotFoundError: The file does not exist.
        ConfigError: The path is not a file, the file is not JSON, ``Version`` is not 1 or a required
            field (``AccessKeyId``, ``SecretAccessKey``) is missing; the message names the file and field.
        CredentialsFileTypeError: A field has the wrong type.
    """

    def __init__(
        self, credential_file_path: str, refresh_margin_seconds: float = DEFAULT_REFRESH_MARGIN_SECONDS
    ) -> None:
        if not isinstance(credential_file_path, (str, os.PathLike)) or not os.fspath(credential_file_path):
            raise ConfigError(
                f"FileBasedCredentials: 'credential_file_path' must be a non-empty path, got {credential_file_path!r}"
            )
        try:
            margin = float(refresh_margin_seconds)
        except (TypeError, ValueError):
            margin = -1.0
        if margin < 0:
            raise ConfigError(
                f"FileBasedCredentials: 'refresh_margin_seconds' must be a number >= 0, got {refresh_margin_seconds!r}"
            )
        self._path = Path(os.path.expanduser(os.fspath(credential_file_path)))
        self._margin = margin
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._reads = 0
        self._credentials = self._load()

    # ------------------------------------------------------------------ public API
    @property
    def credential_file_path(self) -> str:
        """The path of the credentials file."""
        return str(self._path)

    @property
    def reads(self) -> int:
        """How many times the file has been read (for diagnostics and tests)."""
        return self._reads

    def get_credentials(self) -> Credentials:
        """The current credentials; the file is re-read first when they are within the refresh
        margin of expiry and the file changed since it was last read."""
        creds = self._credentials
        if creds.expiration and creds.is_expired(margin_seconds=self._margin):
            with self._lock:
                if self._changed():
                    try:
                        self._credentials = self._load()
                    except (ConfigError, OSError) as err:
                        if self._credentials.is_expired():
                            raise
                        logger.warning(
                            "keeping cached credentials: re-reading %s failed: %s", self._path, err
                        )
            creds = self._credentials
        return creds

    def refresh_credentials(self) -> None:
        """Re-read the file now (skipped when it did not change since the last read).

        Raises:
            CredentialsFileNotFoundError, ConfigError, CredentialsFileTypeError: As for the constructor.
        """
        with self._lock:
            if self._changed():
                self._credentials = self._load()
            else:
                logger.debug("credentials file %s unchanged; nothing to refresh", self._path)

    def __repr__(self) -> str:
        return f"FileBasedCredentialsProvider(credential_file_path={str(self._path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ internals
    def _changed(self) -> bool:
        try:
            return _signature(self._path.stat()) != self._signature
        except OSError:
            return True  # let _load report it

    def _load(self) -> Credentials:
        """Read, validate and convert the file."""
        path = self._path
        try:
            stat = path.stat()
            if not path.is_file():
                raise ConfigError(f"credentials file {str(path)!r} is not a regular file")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CredentialsFileNotFoundError(f"credentials file {str(path)!r} does not exist")
        except UnicodeDecodeError:
            raise ConfigError(f"credentials file {str(path)!r} is not UTF-8 text")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            # The position only: the message of a JSON error quotes no content, but be explicit.
            raise ConfigError(
                f"credentials file {str(path)!r} is not valid JSON (line {err.lineno}, column {err.colno})"
            )
        creds = self._parse(data)
        self._signature = _signature(stat)
        self._reads += 1
        logger.debug("read credentials file %s (expiration %s)", path, creds.expiration)
        return creds

    def _parse(self, data: Any) -> Credentials:
        where = f"credentials file {str(self._path)!r}"
        if not isinstance(data, dict):
            raise CredentialsFileTypeError(f"{where} must hold a JSON object, got {type(data).__name__}")
        if "Version" not in data:
            raise ConfigError(f"{where} is missing the required field 'Version' (expected 1)")
        if data["Version"] != 1:
            raise ConfigError(f"{where}: unsupported 'Version' {data['Version']!r}; expected 1")
        for name in _REQUIRED:
            if name not in data:
                raise ConfigError(f"{where} is missing the required field {name!r}")
            if not isinstance(data[name], str):
                raise CredentialsFileTypeError(
                    f"{where}: field {name!r} must be a string, got {type(data[name]).__name__}"
                )
        for name in _OPTIONAL:
            if data.get(name) is not None and not isinstance(data[name], str):
                raise CredentialsFileTypeError(
                    f"{where}: field {name!r} must be a string or null, got {type(data[name]).__name__}"
                )
        creds = Credentials(
            access_key=data["AccessKeyId"],
            secret_key=data["SecretAccessKey"],
            token=data.get("SessionToken") or None,
            expiration=data.get("Expiration") or None,
        )
        if creds.expiration:
            try:
                creds.is_expired()
            except ValueError:
                raise ConfigError(
                    f"{where}: field 'Expiration' is not an ISO 8601 time: {creds.expiration!r}"
                )
        return creds
