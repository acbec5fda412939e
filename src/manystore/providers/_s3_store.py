"""obstore store plumbing of :class:`~manystore.providers.s3.S3StorageProvider` (and its
subclasses): one store per process (rebuilt after a fork), its configuration, and bucket-less
providers.

Bucket-less providers: as in MSC 1.3.1, an empty (or ``/``) ``base_path`` makes the first
component of every key the bucket (``"bucket/dir/obj"``). An obstore store is bound to one bucket,
so such a provider keeps one *bucket view* per bucket it meets (a copy of itself with that bucket,
created on first use and cached), and routes every obstore call to the view of the key's bucket:
keys going in lose their bucket component, keys coming back (listings, HEAD results) regain it.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError, InvalidPathError, ManystoreError, ObjectNotFoundError
from ..types import CredentialsProvider, RetryConfig
from ._obstore import client_options, obstore_api
from ._obstore import summary as _summary
from .s3_credentials import ObstoreCredentials, boto3_credentials

#: Guards replacing a provider's store lock in a forked child (itself replaced after a fork).
_relock = threading.Lock()


def _new_relock() -> None:
    global _relock
    _relock = threading.Lock()


os.register_at_fork(after_in_child=_new_relock)

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config

__all__ = ["ObstoreStores", "split_bucket"]

# object_store's whole-request timeout (30 s by default) would cut long streams; stalls are
# caught by read_timeout instead.
REQUEST_TIMEOUT = timedelta(hours=24)


def split_bucket(key: str) -> tuple[str, str]:
    """``"bucket/dir/obj"`` -> ``("bucket", "dir/obj")`` (the key of a bucket-less provider).

    Raises:
        InvalidPathError: The key names no bucket (it is empty).
    """
    bucket, _, rest = key.partition("/")
    if not bucket:
        raise InvalidPathError(
            f"key {key!r} names no bucket: with an empty base_path the first path component is the bucket"
        )
    return bucket, rest


def _with_bucket(bucket: str, meta: Any) -> dict[str, Any]:
    out = dict(meta)
    out["path"] = f"{bucket}/{meta['path']}"
    return out


class _BucketResult:
    """A GET result of a bucket view whose ``meta["path"]`` carries the bucket again."""

    def __init__(self, bucket: str, result: Any) -> None:
        self._bucket, self._result = bucket, result

    @property
    def meta(self) -> dict[str, Any]:
        return _with_bucket(self._bucket, self._result.meta)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)


class ObstoreStores:
    """Mixin: the obstore store(s) of an S3-family provider. The provider's ``__init__`` sets the
    attributes annotated here, then calls :meth:`_init_stores`."""

    _bucket: str
    _endpoint: str
    _region: str
    _style: str
    _virtual_hosted: bool
    _credentials_provider: CredentialsProvider | None
    _checksum: str | None
    _unsigned_payload: bool
    _skip_signature: bool
    _transport_retries: int | None
    _request_payer: bool
    _allow_http: bool
    _verify: bool | str
    _connect_timeout: float
    _read_timeout: float
    _pool_size: int | None
    _profile_name: str | None

    if TYPE_CHECKING:  # provided by the provider class

        def _url(self, key: str) -> str: ...

    def _init_stores(self) -> None:
        self._store_lock, self._lock_pid = threading.Lock(), os.getpid()
        self._store: Any = None
        self._api: Any = None
        self._store_class: Any = None
        self._store_pid = -1
        self._writer_stores: dict[Any, Any] = {}
        self._views: dict[str, Any] = {}

    @property
    def bucketless(self) -> bool:
        """True when ``base_path`` is empty: the first key component is the bucket."""
        return not self._bucket

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"], state["_api"], state["_store_pid"], state["_store_lock"] = None, None, -1, None
        state["_writer_stores"], state["_views"] = {}, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._store_lock, self._lock_pid = threading.Lock(), os.getpid()

    def _lock(self) -> threading.Lock:
        pid = os.getpid()
        if self._lock_pid != pid:  # Forked: the parent's lock may have been held at fork time.
            with _relock:  # one new lock per process, even when several threads get here at once
                if self._lock_pid != pid:
                    self._store_lock = threading.Lock()
                    self._lock_pid = pid
        return self._store_lock

    def _get_store(self) -> Any:
        """The obstore store of this process; built on first use and again after a fork."""
        pid = os.getpid()
        store = self._store
        if store is not None and self._store_pid == pid:
            return store
        with self._lock():
            if self._store is None or self._store_pid != pid:
                self._api, self._store_class = obstore_api()
                self._store = None if self.bucketless else self._build_store(self._store_class)
                self._store_pid = pid
            return self._store

    def _bucket_view(self, bucket: str) -> Any:
        """The provider bound to ``bucket`` that a bucket-less provider routes its calls to."""
        view = self._views.get(bucket)
        if view is not None:
            return view
        with self._lock():
            view = self._views.get(bucket)
            if view is None:
                view = copy.copy(self)
                view._bucket = bucket
                view._virtual_hosted = self._style == "virtual" or (
                    self._style == "auto" and not self._endpoint and "." not in bucket
                )
                view._init_stores()
                self._views = {**self._views, bucket: view}
            return view

    def _obs(self, name: str) -> Any:
        """obstore function ``name`` bound to this process's store (``self._obs("get")(key)``);
        for a bucket-less provider, a function routing to the key's bucket view."""
        store = self._get_store()
        if store is None:
            return functools.partial(self._routed, name)
        return functools.partial(getattr(self._api, name), store)

    def _routed(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call obstore function ``name`` on the bucket view of the key(s) in ``args``."""
        if name == "sign":
            method, key, *rest = args
            bucket, inner = split_bucket(key)
            return self._bucket_view(bucket)._obs(name)(method, inner, *rest, **kwargs)
        first, *rest = args
        if name == "delete" and isinstance(first, list):
            groups: dict[str, list[str]] = {}
            for key in first:
                bucket, inner = split_bucket(key)
                groups.setdefault(bucket, []).append(inner)
            for bucket, keys in groups.items():
                self._bucket_view(bucket)._obs(name)(keys, **kwargs)
            return None
        if name in ("list", "list_with_delimiter"):
            return self._routed_list(name, first or "", **kwargs)
        bucket, inner = split_bucket(first)
        if not inner:  # a bucket is no object (HEAD would ask whether the bucket exists)
            if name == "put":
                raise InvalidPathError(f"{first!r} names a bucket, not an object key")
            raise ObjectNotFoundError(f"{self._url(first)}: a bucket, not an object")
        view = self._bucket_view(bucket)
        if name == "copy":
            dest_bucket, dest = split_bucket(rest[0])
            if dest_bucket == bucket:
                return view._obs("copy")(inner, dest, **kwargs)
            # object_store copies inside one bucket only: across buckets the bytes pass through.
            data = view._obs("get")(inner).bytes()
            return self._bucket_view(dest_bucket)._obs("put")(dest, data)
        result = view._obs(name)(inner, *rest, **kwargs)
        return _BucketResult(bucket, result) if name == "get" else result

    def _routed_list(self, name: str, prefix: str, **kwargs: Any) -> Any:
        bucket, inner = split_bucket(prefix)
        view = self._bucket_view(bucket)
        if name == "list_with_delimiter":
            result = view._obs(name)(inner or None, **kwargs)
            return {
                "objects": [_with_bucket(bucket, m) for m in result["objects"]],
                "common_prefixes": [f"{bucket}/{p}" for p in result["common_prefixes"]],
            }
        offset = kwargs.pop("offset", None)
        if offset is not None:
            if offset.startswith(bucket + "/"):
                offset = offset[len(bucket) + 1 :] or None
            elif offset < bucket + "/":
                offset = None
            else:
                return iter(())  # the offset lies past every key of the bucket
        stream = view._obs(name)(inner or None, offset=offset, **kwargs)

        def batches() -> Iterator[list[dict[str, Any]]]:
            for batch in stream:
                yield [_with_bucket(bucket, m) for m in batch]

        return batches()

    def _store_config(self) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """S3 config, client options and credential callback for the store (subclasses adjust)."""
        config: dict[str, Any] = {
            "virtual_hosted_style_request": self._virtual_hosted,
            "skip_signature": False,
            "request_payer": self._request_payer,
        }
        if self._checksum:
            config["checksum_algorithm"] = self._checksum
        if self._unsigned_payload:
            config["unsigned_payload"] = True
        if self._region:
            config["region"] = self._region
        if self._endpoint:
            endpoint = self._endpoint
            if self._virtual_hosted:
                parts = urllib.parse.urlsplit(endpoint)
                endpoint = urllib.parse.urlunsplit(parts._replace(netloc=f"{self._bucket}.{parts.netloc}"))
            config["endpoint"] = config["aws_endpoint_url_s3"] = endpoint
        client = client_options(
            self._allow_http,
            self._connect_timeout,
            self._read_timeout,
            REQUEST_TIMEOUT,
            self._verify,
            self._pool_size,
        )
        callback: Any = None
        if self._credentials_provider is not None:
            callback = ObstoreCredentials(self._credentials_provider)
        elif os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
            config["access_key_id"] = os.environ["AWS_ACCESS_KEY_ID"]
            config["secret_access_key"] = os.environ["AWS_SECRET_ACCESS_KEY"]
            if os.environ.get("AWS_SESSION_TOKEN"):
                config["session_token"] = os.environ["AWS_SESSION_TOKEN"]
        else:
            callback = boto3_credentials(self._profile_name, config, repr(self))
            if callback is None:
                config["skip_signature"] = True
        if self._skip_signature:
            config["skip_signature"], callback = True, None
        return config, client, callback

    @staticmethod
    def _retry_config(retries: int | None, retry: RetryConfig | None) -> dict[str, Any]:
        """obstore's retries off (``retries`` transport retries at most), or (for streaming
        writers, which the client cannot replay) retrying each part per ``retry``."""
        if retry is None:
            return {"max_retries": retries or 0}
        return {
            "max_retries": retry.attempts - 1,
            "backoff": {
                "init_backoff": timedelta(seconds=retry.delay),
                "base": retry.backoff_multiplier,
                "max_backoff": timedelta(seconds=max(retry.delay * retry.backoff_multiplier**4, 1.0)),
            },
        }

    def _build_store(self, store_class: Any, retry: RetryConfig | None = None) -> Any:
        """A store for this provider's bucket: one retry layer either way (see :meth:`_retry_config`)."""
        try:
            config, client, callback = self._store_config()
            return store_class(
                self._bucket,
                config=cast("S3Config", config),
                client_options=cast("ClientConfig", client),
                retry_config=cast("Any", self._retry_config(self._transport_retries, retry)),
                credential_provider=callback,
            )
        except ManystoreError:
            raise
        except Exception as err:
            raise ConfigError(f"{self!r}: cannot configure S3: {_summary(str(err))}")
