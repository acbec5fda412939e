"""Module-level transforms for the ETL tests (importable by worker processes and Ray tasks)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import BinaryIO

from manystore.batch import ETLServer


def upper(data: bytes) -> bytes:
    """Upper-case the bytes."""
    return data.upper()


def identity(data: bytes) -> bytes:
    """The bytes unchanged."""
    return data


def tag_args(data: bytes, etl_args: str) -> bytes:
    """The bytes followed by ``|`` and the ETL arguments."""
    return data + b"|" + etl_args.encode()


def pid_of_worker(data: bytes) -> bytes:
    """The id of the process that ran the transform (as ASCII digits)."""
    return str(os.getpid()).encode()


def upper_stream(reader: BinaryIO) -> Iterator[bytes]:
    """Upper-case a stream, 3 bytes at a time."""
    while chunk := reader.read(3):
        yield chunk.upper()


def slow_upper(data: bytes) -> bytes:
    """Upper-case, slowly (for kill tests)."""
    time.sleep(0.05)
    return data.upper()


class Reverse(ETLServer):
    """Reverses the bytes; refuses objects whose path ends with ``bad.txt``."""

    def transform(self, data: bytes | str, path: str, etl_args: str) -> bytes:
        assert isinstance(data, bytes)
        if path.endswith("bad.txt"):
            raise ValueError(f"refusing {path}")
        return data[::-1]


class StreamPrefix(ETLServer):
    """A streaming class: ``>`` then the content."""

    def transform_stream(self, reader: BinaryIO, path: str, etl_args: str) -> Iterator[bytes]:
        yield b">"
        while chunk := reader.read(4):
            yield chunk
