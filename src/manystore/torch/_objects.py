"""The object list behind a dataset: URLs resolved to clients, listed once, picklable.

A dataset lists in the process that builds it, once; DataLoader workers receive the list
(inherited through ``fork`` or pickled for ``spawn``) and never list again. Clients pickle
as their configuration and rebuild in each worker, so workers share no connection.

Fork safety: obstore's I/O runtime, once started, lives for the whole process, and a child
forked while it runs may hang (a lock copied mid-use). So when the runtime is not running
yet, the listing runs in a short-lived forked child and its result comes back through a
pipe: the parent process never starts the runtime, and the DataLoader workers it forks
later start clean.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..providers.base import BaseStorageProvider
from ..shortcuts import resolve_storage_client
from ..urls import IMPLICIT_PROTOCOLS, implicit_profile_config
from ._reader import ObjectSource
from .client_config import ClientConfig, s3_profile_overrides

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["ObjectList", "list_prefix", "objects_from_urls"]


@dataclass
class ObjectList:
    """Objects of a dataset: per object its client (an index), key, and listed size/ETag.

    Attributes:
        clients: The distinct clients.
        owners: Per object, the index of its client in ``clients``.
        keys: Per object, its key within the client's profile.
        sizes: Per object, its listed size (``None`` when not listed).
        etags: Per object, its listed ETag (``None`` when not listed).
    """

    clients: list[StorageClient]
    owners: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    sizes: list[int | None] = field(default_factory=list)
    etags: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def bucket_key(self, index: int) -> tuple[str, str]:
        """The seed's ``(bucket, key)`` of object ``index``: the URL's authority and the rest."""
        prefix = self.clients[self.owners[index]].url_prefix
        scheme, sep, rest = prefix.partition("://")
        if not sep:
            return "", prefix + self.keys[index]
        if scheme == "https":  # an Azure account URL: https://ACCOUNT.blob.../container/
            rest = rest.partition("/")[2]
        bucket, _, under = rest.partition("/")
        return bucket, under + self.keys[index]

    def source(self, index: int) -> ObjectSource:
        """The :class:`ObjectSource` of object ``index``."""
        return ObjectSource(
            self.clients[self.owners[index]], self.keys[index], self.sizes[index], self.etags[index]
        )

    def url(self, index: int) -> str:
        """The URL of object ``index``."""
        return self.clients[self.owners[index]].url_prefix + self.keys[index]


def resolve(
    url: str, region: str | None, endpoint: str | None, config: ClientConfig | None
) -> tuple[StorageClient, str]:
    """The client and key of ``url``, with the seed's S3 arguments applied to ``s3://`` URLs.

    Raises:
        ValueError: ``region``/``endpoint``/``config`` given for a URL that is not ``s3://``.
    """
    client, path = resolve_storage_client(url)
    if not (region or endpoint or config is not None):
        return client, path
    scheme = url.partition("://")[0] if isinstance(url, str) and "://" in url else ""
    base = implicit_profile_config(client.profile) if scheme == "s3" else None
    if base is None or IMPLICIT_PROTOCOLS.get(scheme) != "s3":
        raise ValueError(
            f"{url!r}: region/endpoint/s3client_config apply to s3:// URLs only; expected an s3:// URL "
            "or no such argument (an msc:// profile carries its own endpoint and options)"
        )
    from ..client import StorageClient
    from ..config import StorageClientConfig

    profile = s3_profile_overrides(base, region, endpoint, config)
    built = StorageClientConfig.from_dict(
        {"profiles": {client.profile: profile}}, client.profile, skip_validation=True
    )
    return StorageClient(built), path


def _list_here(client: StorageClient, prefix: str, manifest_path: str | None) -> tuple[list[Any], ...]:
    source: Any = client
    if manifest_path is not None:
        from ..providers.manifest_metadata import ManifestMetadataProvider

        storage = client.config.storage_provider
        if storage is None:
            raise ValueError(f"{client.url_prefix}: a profile without a storage provider has no manifest")
        source = ManifestMetadataProvider(storage, manifest_path)
        entries = source.list_objects(prefix)
    else:
        entries = client.list(prefix)
    keys: list[str] = []
    sizes: list[int | None] = []
    etags: list[str | None] = []
    for meta in entries:
        if meta.type != "file":
            continue
        keys.append(meta.key)
        sizes.append(meta.content_length)
        etags.append(meta.etag)
    return keys, sizes, etags


def _runtime_idle(client: StorageClient) -> bool:
    """True when listing ``client`` in a forked child keeps this process's obstore runtime unstarted."""
    sp = client.config.storage_provider
    if not hasattr(os, "fork") or not isinstance(sp, BaseStorageProvider) or sp.local_path("") is not None:
        return False
    try:
        from ..providers._obstore import _runtime_threads_running
    except ImportError:  # obstore absent: nothing to keep clean
        return False
    return not _runtime_threads_running()


def _read_exact(fd: int, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            raise EOFError(f"listing child closed its pipe after {got} of {size} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _list_in_child(client: StorageClient, prefix: str, manifest_path: str | None) -> tuple[list[Any], ...]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: list, send, exit without running the parent's atexit handlers
        code = 0
        try:
            os.close(read_fd)
            try:
                payload = pickle.dumps((True, _list_here(client, prefix, manifest_path)), protocol=5)
            except BaseException as exc:  # sent to the parent, raised there
                payload = pickle.dumps((False, exc))
            os.write(write_fd, struct.pack("<Q", len(payload)))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view) :]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        (size,) = struct.unpack("<Q", _read_exact(read_fd, 8))
        ok, result = pickle.loads(_read_exact(read_fd, size))
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    if not ok:
        raise result
    return result


def list_prefix(client: StorageClient, prefix: str, manifest_path: str | None = None) -> ObjectList:
    """Every object under raw key prefix ``prefix`` of ``client``, listed once (see the module docs).

    Args:
        client: The profile's client.
        prefix: Raw key prefix (``"data/"`` lists a directory).
        manifest_path: List from the manifest at this path of the profile instead of the
            store (no LIST request); ``None``: the profile's own metadata provider, if any.
    """
    if _runtime_idle(client):
        keys, sizes, etags = _list_in_child(client, prefix, manifest_path)
    else:
        keys, sizes, etags = _list_here(client, prefix, manifest_path)
    return ObjectList([client], [0] * len(keys), keys, sizes, etags)


def objects_from_urls(
    urls: str | Iterable[str], region: str | None, endpoint: str | None, config: ClientConfig | None
) -> ObjectList:
    """The objects named by ``urls`` (no request: sizes are learnt on first read)."""
    if isinstance(urls, (str, os.PathLike)):
        urls = [os.fspath(urls)]
    out = ObjectList([])
    index: dict[str, int] = {}
    for url in urls:
        shared, path = resolve_storage_client(url)
        owner = index.get(shared.profile)
        if owner is None:  # the seed's S3 arguments build one client per profile, not per URL
            client, _ = resolve(url, region, endpoint, config)
            owner = index[shared.profile] = len(out.clients)
            out.clients.append(client)
        out.owners.append(owner)
        out.keys.append(path)
        out.sizes.append(None)
        out.etags.append(None)
    return out
