"""The Redis index store (``manystore[redis]``) and :class:`RedisIndex`, for teams sharing one index.

Two Redis hashes hold the index: ``{prefix}schemas`` (reference -> record JSON) and
``{prefix}datasets`` (name -> entry JSON). Every insert is one ``HSETNX``, atomic on the
server, so concurrent writers never overwrite or lose each other's entries.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from .index import Index

__all__ = ["DEFAULT_PREFIX", "RedisIndex", "RedisStore", "redact_url"]

#: Key prefix of the index's two hashes.
DEFAULT_PREFIX = "manystore:samples:"


def redact_url(url: str) -> str:
    """``url`` with any password (and user) replaced by ``***``: safe for reprs, logs and errors."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class RedisStore:
    """Index tables as two Redis hashes on the server at ``url``."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, client: Any = None) -> None:
        self.url = redact_url(url)
        if client is None:
            try:
                import redis
            except ImportError as exc:
                raise ImportError(
                    "the Redis index needs the redis client: pip install 'manystore[redis]'"
                ) from exc
            client = redis.Redis.from_url(url)
        self._redis = client
        self._schemas, self._datasets = f"{prefix}schemas", f"{prefix}datasets"

    def _put(self, table: str, key: str, value: str) -> str | None:
        if self._redis.hsetnx(table, key, value):
            return None
        existing = self._redis.hget(table, key)
        return None if existing is None else _text(existing)

    def _get(self, table: str, key: str) -> str | None:
        value = self._redis.hget(table, key)
        return None if value is None else _text(value)

    def _all(self, table: str) -> list[str]:
        items = self._redis.hgetall(table)
        return [_text(items[k]) for k in sorted(items, key=_text)]

    def put_schema(self, ref: str, record: str) -> str | None:
        """Insert unless present; the existing record's JSON if ``ref`` was already there."""
        return self._put(self._schemas, ref, record)

    def get_schema(self, ref: str) -> str | None:
        """The record JSON of ``ref``, or None."""
        return self._get(self._schemas, ref)

    def schemas(self) -> list[str]:
        """Every schema record's JSON, ordered by reference."""
        return self._all(self._schemas)

    def put_dataset(self, name: str, entry: str) -> str | None:
        """Insert unless present; the existing entry's JSON if ``name`` was already there."""
        return self._put(self._datasets, name, entry)

    def get_dataset(self, name: str) -> str | None:
        """The entry JSON of ``name``, or None."""
        return self._get(self._datasets, name)

    def datasets(self) -> list[str]:
        """Every dataset entry's JSON, ordered by name."""
        return self._all(self._datasets)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class RedisIndex(Index):
    """An :class:`~manystore.samples.Index` kept on a Redis server.

    Args:
        url: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket).
        prefix: Key prefix of the index's hashes, to keep several indexes on one server.
        client: An existing ``redis.Redis`` client to use instead of connecting to ``url``.
        data_store: The data store this index's datasets are written with (atdata's ``data_store``).

    Raises:
        ImportError: The ``redis`` package is missing (``pip install 'manystore[redis]'``).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        client: Any = None,
        data_store: Any = None,
    ) -> None:
        super().__init__(url, data_store=data_store, _store=RedisStore(url, prefix=prefix, client=client))
