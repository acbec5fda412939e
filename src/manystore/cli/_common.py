"""Helpers shared by the CLI's commands: failures, their one-line report, URL resolution."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..client import StorageClient

_STORE_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s:]*: ")

#: Chunk size for streamed reads and copies.
CHUNK_SIZE = 8 << 20
#: Objects up to this size are fetched in one request by ``cat`` and streamed copies.
STREAM_MEMORY_LIMIT = 32 << 20


class _Failed(Exception):
    """A command failure to report: the URL it concerns, the cause and (optionally) the exit code."""

    def __init__(self, url: str | None, cause: BaseException | str, code: int | None = None) -> None:
        super().__init__(str(cause))
        self.url = url
        self.cause = cause
        self.code = code


def _exit_code(exc: BaseException | str) -> int:
    """2 for usage/configuration problems, 1 for everything else."""
    from ..errors import ConfigError, InvalidPathError, InvalidURLError

    return 2 if isinstance(exc, (ConfigError, InvalidURLError, InvalidPathError)) else 1


def _cause_text(url: str | None, exc: BaseException | str) -> str:
    """One line describing ``exc``, without repeating ``url``."""
    if isinstance(exc, FileNotFoundError):
        return str(getattr(exc, "reason", "not found"))
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    if url and text.startswith(url + ": "):
        text = text[len(url) + 2 :]
    elif url and _STORE_URL.match(text):  # the store's own name of the object: the user gave url
        text = _STORE_URL.sub("", text, count=1)
    return text


def _report(command: str, url: str | None, exc: BaseException | str) -> None:
    parts = ["manystore", command]
    if url:
        parts.append(url)
    parts.append(_cause_text(url, exc))
    print(": ".join(parts), file=sys.stderr)


def _resolve(url: str) -> tuple[StorageClient, str]:
    """The client and key of ``url``; failures are tagged with the URL."""
    from ..shortcuts import resolve_storage_client

    try:
        return resolve_storage_client(url)
    except Exception as exc:  # resolving does no I/O: a bad value (URL, config) is a usage error
        raise _Failed(url, exc, 2 if isinstance(exc, ValueError) else None) from exc


def _dir_prefix(key: str) -> str:
    """``"a/b"`` -> ``"a/b/"``; the profile root stays ``""``."""
    key = key.strip("/")
    return key + "/" if key else ""


def _is_local(client: StorageClient) -> bool:
    """True if the client stores plain local files (and has no metadata provider)."""
    from ..providers.base import BaseStorageProvider

    provider = client.config.storage_provider
    return (
        client.config.metadata_provider is None
        and isinstance(provider, BaseStorageProvider)
        and provider.local_path("") is not None
    )


def _progress_wanted(args: argparse.Namespace) -> bool:
    if getattr(args, "quiet", False):
        return False
    if getattr(args, "progress", False):
        return True
    return sys.stderr.isatty()


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("MANYSTORE_DEBUG", "") not in ("", "0")
