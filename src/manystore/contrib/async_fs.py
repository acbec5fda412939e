"""fsspec filesystem for the ``msc`` protocol, so pandas, pyarrow, zarr and UPath open ``msc://`` URLs.

:class:`MultiStorageAsyncFileSystem` is registered under the ``fsspec.specs`` entry point
``msc``: ``fsspec.open("msc://profile/key")`` finds it without importing manystore first.
Every operation goes through :func:`manystore.shortcuts.resolve_storage_client` and the
profile's :class:`manystore.StorageClient` (retries, cache, ranged reads, streaming
atomic writes); the coroutines run the client's blocking calls on a thread pool of
``MSC_MAX_WORKERS`` threads (default 16).

Paths:
    * ``msc://profile/key``, ``profile/key`` and ``/profile/key`` name a configured profile;
      fsspec names (``info()["name"]``, ``ls``, ``find``) are ``profile/key``.
    * ``s3://bucket/key``, ``gs://...``, ``ais://...``, ``az://...`` and ``file:///abs/path``
      are resolved as manystore resolves them (implicit profiles, path mappings); their
      names keep the URL form (``s3://bucket/key``, ``file:///abs/path``).

Directories are implicit, as in object stores: a directory exists while an object lies
under it, ``mkdir``/``makedirs`` create nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import IO, Any, TypeVar

from fsspec.asyn import AsyncFileSystem, _run_coros_in_chunks
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.utils import stringify_path

from ..client import StorageClient
from ..errors import PreconditionFailedError
from ..file import READ_BLOCK_SIZE, ObjectFile, PosixFile
from ..shortcuts import resolve_storage_client
from ..types import Range
from ..urls import MSC_PROTOCOL
from ._fsspec_support import (
    MSC_PREFIX,
    check_write_mode,
    directory,
    entry,
    executor,
    is_local,
    join_name,
    name_prefix,
    parent,
    strip,
)

__all__ = ["MultiStorageAsyncFileSystem"]

_T = TypeVar("_T")
#: Default ``memory_load_limit`` of files opened for reading: larger objects are read by
#: ranged requests, so a parquet footer or a zarr chunk costs what it reads.
OPEN_MEMORY_LOAD_LIMIT = READ_BLOCK_SIZE


class MultiStorageAsyncFileSystem(AsyncFileSystem):
    """An :class:`fsspec.asyn.AsyncFileSystem` over manystore clients (protocol ``msc``).

    Synchronous methods (``info``, ``ls``, ``cat_file``, ``open``...) call the client
    directly; their ``_``-prefixed coroutines run the same code on a thread pool, and
    fsspec's bulk operations (``cp``, ``get``, ``put``, ``rm``, ``cat`` of many paths)
    run them concurrently.

    Args:
        asynchronous: Create the instance for use inside a running event loop (as zarr does).
        loop: The event loop the synchronous wrappers use (fsspec's IO loop by default).
        batch_size: How many operations a bulk call runs at once (fsspec's default if None).
        use_listings_cache: Only ``False`` is accepted: listings are never cached here, so
            every ``ls`` sees the store as it is.

    Raises:
        TypeError: An unknown option was passed.
        ValueError: ``use_listings_cache=True`` was asked for.
    """

    protocol = MSC_PROTOCOL
    root_marker = ""

    def __init__(
        self,
        asynchronous: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
        batch_size: int | None = None,
        **options: Any,
    ) -> None:
        if options.pop("use_listings_cache", False):
            raise ValueError("use_listings_cache=True is not supported: msc listings are never cached")
        if options:
            raise TypeError(
                f"MultiStorageAsyncFileSystem got unknown option(s) {sorted(options)}; "
                "expected asynchronous, loop, batch_size (profiles are configured in the MSC config)"
            )
        super().__init__(asynchronous=asynchronous, loop=loop, batch_size=batch_size)

    # ---------------------------------------------------------------- paths
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        """``msc://profile/key/`` -> ``profile/key``; other URLs keep their scheme."""
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return strip(stringify_path(path))

    def unstrip_protocol(self, name: str) -> str:
        """The full URL of a name: ``profile/key`` -> ``msc://profile/key``; URLs are kept."""
        return name if "://" in name else MSC_PREFIX + name

    @classmethod
    def _parent(cls, path: str) -> str:
        return parent(cls._strip_protocol(path))

    def resolve_path_and_storage_client(self, path: str | os.PathLike[str]) -> tuple[StorageClient, str]:
        """The client serving ``path`` and the key within its profile.

        Args:
            path: ``msc://profile/key``, ``profile/key``, or another URL manystore resolves.

        Returns:
            The cached :class:`manystore.StorageClient` and the key (trailing ``/`` kept).
        """
        text = stringify_path(path)
        if "://" not in text:
            text = MSC_PREFIX + text.lstrip("/")
        return resolve_storage_client(text)

    def _resolve(self, path: Any) -> tuple[StorageClient, str, str]:
        """``(client, key without trailing /, name prefix)``."""
        client, key = self.resolve_path_and_storage_client(path)
        return client, key.rstrip("/"), name_prefix(client)

    # ------------------------------------------------------------- threads
    @staticmethod
    async def _call(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor(), partial(func, *args, **kwargs))

    @staticmethod
    def asynchronize_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the blocking ``func(*args, **kwargs)`` on the filesystem's thread pool.

        Returns:
            An awaitable of the function's result (must be called inside a running loop).
        """
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(executor(), partial(func, *args, **kwargs))

    # ------------------------------------------------------------ metadata
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """fsspec details of a file or (implicit) directory.

        Args:
            path: The file or directory.
            **kwargs: Forwarded by fsspec's generic code; none applies here.

        Returns:
            ``name``, ``size``, ``type`` (``"file"``/``"directory"``) and, for files,
            ``ETag``, ``LastModified``, ``ContentType``, ``StorageClass``, ``metadata``.

        Raises:
            FileNotFoundError: Neither an object nor a directory exists at ``path``.
        """
        client, key, prefix = self._resolve(path)
        if not key:
            return directory(join_name(prefix, ""))
        try:
            meta = client.info(key, strict=False)
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"{self.unstrip_protocol(join_name(prefix, key))}: no such file or directory"
            ) from exc
        if meta.type == "directory" and is_local(client) and client.is_empty(key):
            raise FileNotFoundError(f"{self.unstrip_protocol(join_name(prefix, key))}: an empty directory")
        found = entry(prefix, meta)
        found["name"] = join_name(prefix, key)
        return found

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self._call(self.info, path, **kwargs)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[dict[str, Any]] | list[str]:
        """The entries of a directory, one level (a file lists as itself).

        Args:
            path: The directory.
            detail: Return :meth:`info`-style dicts instead of names.
            **kwargs: Forwarded by fsspec's generic code (e.g. ``refresh``); listings are never
                cached, so none applies here.

        Raises:
            FileNotFoundError: Nothing exists at ``path``.
        """
        client, key, prefix = self._resolve(path)
        base = key + "/" if key else ""
        local = is_local(client)
        entries = [
            entry(prefix, meta)
            for meta in client.list(base, include_directories=True)
            if meta.key.rstrip("/") != key  # a "dir/" marker object is the directory itself
            and not (meta.type == "directory" and local and client.is_empty(meta.key))
        ]
        if not entries and key:
            info = self.info(path)
            if info["type"] != "file":  # nothing listed under it: an implicit directory is gone
                raise FileNotFoundError(f"{self.unstrip_protocol(info['name'])}: no such file or directory")
            entries = [info]
        return entries if detail else [e["name"] for e in entries]

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[dict[str, Any]] | list[str]:
        return await self._call(self.ls, path, detail, **kwargs)

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> list[str] | dict[str, dict[str, Any]]:
        """Everything under ``path`` from one flat listing (not one listing per directory).

        Args:
            path: The directory (or a file, which finds itself).
            maxdepth: Levels to descend (1 = direct children); None for all.
            withdirs: Include the (implicit) directories, and ``path`` itself if it is one.
            detail: Return ``{name: info}`` instead of a list of names.
            **kwargs: Forwarded by fsspec's generic code (e.g. from ``glob``); none applies here.

        Raises:
            ValueError: ``maxdepth`` is less than 1.
        """
        if maxdepth is not None and maxdepth < 1:
            raise ValueError(f"maxdepth must be at least 1, got {maxdepth}")
        client, key, prefix = self._resolve(path)
        base = key + "/" if key else ""
        out: dict[str, dict[str, Any]] = {}
        for meta in client.list(base):
            parts = meta.key[len(base) :].split("/")
            if withdirs:
                for depth in range(1, len(parts)):
                    if maxdepth is not None and depth > maxdepth:
                        break
                    name = join_name(prefix, base + "/".join(parts[:depth]))
                    if name not in out:
                        out[name] = directory(name)
            if parts[-1] and (maxdepth is None or len(parts) <= maxdepth):
                item = entry(prefix, meta)
                out[item["name"]] = item
        if out and withdirs and key:
            root = join_name(prefix, key)
            out.setdefault(root, directory(root))
        if not out and key:
            try:
                info = self.info(path)
            except FileNotFoundError:
                info = {}
            if info.get("type") == "file":
                out[info["name"]] = info
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    async def _find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, **kwargs: Any
    ) -> list[str] | dict[str, dict[str, Any]]:
        return await self._call(self.find, path, maxdepth, withdirs, **kwargs)

    def modified(self, path: str) -> datetime:
        """Last modification time of a file (timezone-aware UTC).

        Raises:
            IsADirectoryError: ``path`` is a directory (directories have no time of their own).
        """
        info = self.info(path)
        if info["type"] != "file":
            raise IsADirectoryError(
                f"{self.unstrip_protocol(info['name'])} is a directory: it has no modification time"
            )
        return info["LastModified"]

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing to do: directories are implicit (they exist while an object lies under them)."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Directories are implicit; only checks ``exist_ok``.

        Raises:
            FileExistsError: ``path`` exists and ``exist_ok`` is false.
        """
        if not exist_ok and self.exists(path):
            raise FileExistsError(f"{self.unstrip_protocol(self._strip_protocol(path))} already exists")

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.mkdir(path, create_parents, **kwargs)

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        await self._call(self.makedirs, path, exist_ok)

    # --------------------------------------------------------------- reads
    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The bytes of a file, or of ``[start, end)`` (negative offsets count from the end).

        Args:
            path: The file.
            start: First byte (default 0).
            end: End offset, exclusive (default: end of file).
            **kwargs: Forwarded by fsspec's generic code (``cat``, ``cat_ranges``); none applies here.

        Raises:
            FileNotFoundError: No file at ``path``.
        """
        client, key, _ = self._resolve(path)
        if start is None and end is None:
            return client.read(key)
        start = 0 if start is None else start
        if start < 0 or end is None or end < 0:
            start, end, _ = slice(start, end).indices(client.info(key).content_length)
        if end <= start:
            return b""
        return client.read(key, Range(offset=start, size=end - start))

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        return await self._call(self.cat_file, path, start, end, **kwargs)

    def get_file(
        self, rpath: str, lpath: str | IO[bytes], callback: Callback = DEFAULT_CALLBACK, **kwargs: Any
    ) -> None:
        """Download a file to a local path (atomically) or a binary file object.

        A directory ``rpath`` creates the local directory ``lpath`` (as fsspec's recursive
        ``get`` expects). ``callback`` is told the size and the bytes done once the file is in.
        """
        client, key, _ = self._resolve(rpath)
        try:
            size = client.info(key).content_length
        except FileNotFoundError:
            if isinstance(lpath, str) and self.isdir(rpath):
                os.makedirs(lpath, exist_ok=True)
                return
            raise
        callback.set_size(size)
        client.download_file(key, lpath)
        callback.relative_update(size)

    async def _get_file(
        self, rpath: str, lpath: str | IO[bytes], callback: Callback = DEFAULT_CALLBACK, **kwargs: Any
    ) -> None:
        await self._call(self.get_file, rpath, lpath, callback, **kwargs)

    # -------------------------------------------------------------- writes
    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Store ``value`` at ``path`` atomically.

        Args:
            path: The file.
            value: The bytes.
            mode: ``"overwrite"``, or ``"create"`` to refuse an existing file.
            **kwargs: ``attributes`` (dict of str) — user metadata stored with the object.

        Raises:
            FileExistsError: ``mode="create"`` and the file exists.
        """
        check_write_mode(mode)
        attributes = kwargs.pop("attributes", None)
        if kwargs:
            raise TypeError(f"pipe_file got unknown option(s) {sorted(kwargs)}; expected mode, attributes")
        client, key, prefix = self._resolve(path)
        if mode == "overwrite":
            client.write(key, value, attributes)
            return
        self._create(
            client,
            key,
            prefix,
            lambda: client.put_object(key, bytes(value), if_none_match="*", attributes=attributes),
        )

    def _create(self, client: StorageClient, key: str, prefix: str, store: Callable[[], None]) -> None:
        """Run ``store`` unless an object exists at ``key`` (checked first, then by the store's condition)."""
        url = self.unstrip_protocol(join_name(prefix, key))
        if client.is_file(key):  # stores that ignore if-none-match (e.g. rclone) still refuse here
            raise FileExistsError(f"{url} already exists (mode='create')")
        try:
            store()
        except PreconditionFailedError as exc:
            raise FileExistsError(f"{url} already exists (mode='create')") from exc

    async def _pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        await self._call(self.pipe_file, path, value, mode, **kwargs)

    def put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        """Upload a local file (streamed; multipart when large). A local directory uploads nothing.

        Args:
            lpath: Local file.
            rpath: Destination.
            callback: Told the size and the bytes done once the upload completes.
            mode: ``"overwrite"``, or ``"create"`` to refuse an existing destination
                (checked before the upload: not atomic against a concurrent writer).
            **kwargs: ``attributes`` (dict of str) — user metadata stored with the object.

        Raises:
            FileExistsError: ``mode="create"`` and the destination exists.
        """
        check_write_mode(mode)
        attributes = kwargs.pop("attributes", None)
        if kwargs:
            raise TypeError(
                f"put_file got unknown option(s) {sorted(kwargs)}; expected callback, mode, attributes"
            )
        if os.path.isdir(lpath):
            return
        client, key, prefix = self._resolve(rpath)
        size = os.path.getsize(lpath)
        callback.set_size(size)
        if mode == "create":
            self._create(client, key, prefix, lambda: client.upload_file(key, lpath, attributes))
        else:
            client.upload_file(key, lpath, attributes)
        callback.relative_update(size)

    async def _put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        await self._call(self.put_file, lpath, rpath, callback, mode, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one file: server-side within a profile, streamed between profiles.

        An (implicit) directory ``path1`` copies nothing: recursive copies list its files.

        Raises:
            FileNotFoundError: Nothing exists at ``path1``.
        """
        if kwargs:
            raise TypeError(f"cp_file got unknown option(s) {sorted(kwargs)}")
        src, src_key, _ = self._resolve(path1)
        dest, dest_key, _ = self._resolve(path2)
        try:
            if src is dest:
                src.copy(src_key, dest_key)
            else:
                with (
                    src.open(src_key, "rb", memory_load_limit=READ_BLOCK_SIZE) as fin,
                    dest.open(dest_key, "wb") as fout,
                ):
                    while chunk := fin.read(READ_BLOCK_SIZE):
                        fout.write(chunk)
        except FileNotFoundError:
            if self.isdir(path1):
                return
            raise

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        await self._call(self.cp_file, path1, path2, **kwargs)

    # ------------------------------------------------------------- deletes
    def rm_file(self, path: str, recursive: bool = False) -> None:
        """Delete one file (with ``recursive``, as the reference allows: a directory tree too).

        Raises:
            FileNotFoundError: No file at ``path``.
            IsADirectoryError: ``path`` is a directory and ``recursive`` is false.
        """
        if recursive:
            self._rm_tree(path)
            return
        client, key, prefix = self._resolve(path)
        try:
            client.delete(key)
        except (FileNotFoundError, ValueError):
            if self.isdir(path):
                raise IsADirectoryError(
                    f"{self.unstrip_protocol(join_name(prefix, key))} is a directory; use rm(path, recursive=True)"
                ) from None
            raise

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        await self._call(self.rm_file, path, **kwargs)

    def _rm_tree(self, path: str) -> None:
        """Delete a file, or a directory and everything under it, with the client's bulk delete."""
        client, key, _ = self._resolve(path)
        meta_type = self.info(path)["type"]  # FileNotFoundError when nothing is there
        try:
            client.delete(key, recursive=True)
        except FileNotFoundError:
            if meta_type != "directory":  # an empty local directory holds nothing to count
                raise

    async def _rm(
        self,
        path: str | list[str],
        recursive: bool = False,
        batch_size: int | None = None,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Delete files; with ``recursive``, directories and everything under them.

        A recursive delete without ``maxdepth`` uses the client's prefix delete (bulk
        requests on object stores); with ``maxdepth``, the files found down to that depth.
        """
        if kwargs:
            raise TypeError(f"rm got unknown option(s) {sorted(kwargs)}")
        if recursive and maxdepth is None:
            paths = await self._expand_path(path, recursive=False)
            coros = [self._call(self._rm_tree, p) for p in paths]
        else:
            expanded = await self._expand_path(path, recursive=recursive, maxdepth=maxdepth)
            if recursive:
                infos = await asyncio.gather(*[self._info(p) for p in expanded], return_exceptions=True)
                expanded = [
                    p
                    for p, i in zip(expanded, infos, strict=True)
                    if not (isinstance(i, dict) and i["type"] == "directory")
                ]
            coros = [self._rm_file(p) for p in expanded]
        await _run_coros_in_chunks(coros, batch_size=batch_size or self.batch_size, nofiles=True)

    # ----------------------------------------------------------------- open
    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PosixFile | ObjectFile:
        """The client's file object (``fsspec``'s ``open`` adds text mode and compression).

        Args:
            path: The file.
            mode: ``rb``, ``wb``, ``ab`` or ``xb`` (``xb``: ``wb`` refusing an existing file,
                checked at open).
            block_size: Objects up to this size are fetched whole at open; larger ones are
                read by ranged requests (default :data:`OPEN_MEMORY_LOAD_LIMIT`, 8 MiB).
            autocommit: Must be true: writes commit on ``close()`` (fsspec transactions are
                not supported).
            cache_options: Must be empty: files read ahead by themselves.
            **kwargs: Passed to :meth:`manystore.StorageClient.open` (``memory_load_limit``,
                ``disable_read_cache``, ``check_source_version``, ``atomic``...).

        Raises:
            FileNotFoundError: Reading a missing file.
            FileExistsError: ``xb`` and the file exists.
            NotImplementedError: ``autocommit=False``.
            ValueError: Unsupported ``mode``; ``cache_options`` given.
        """
        if not autocommit:
            raise NotImplementedError(
                "msc files commit on close(); fsspec transactions (autocommit=False) are not supported"
            )
        if cache_options:
            raise ValueError(
                f"cache_options {cache_options!r} are not supported: msc files read ahead by themselves"
            )
        client, key, prefix = self._resolve(path)
        if mode == "xb":
            if client.is_file(key):
                raise FileExistsError(
                    f"{self.unstrip_protocol(join_name(prefix, key))} already exists (mode 'xb')"
                )
            mode = "wb"
        if mode not in ("rb", "wb", "ab"):
            raise ValueError(
                f"invalid mode {mode!r}: expected 'rb', 'wb', 'ab' or 'xb' (or their text forms)"
            )
        if mode == "rb":
            if block_size is not None:
                kwargs.setdefault("memory_load_limit", block_size)
            kwargs.setdefault("memory_load_limit", OPEN_MEMORY_LOAD_LIMIT)
        elif block_size is not None:
            raise ValueError(f"block_size applies to reading; mode {mode!r} streams its own parts")
        return client.open(key, mode, **kwargs)
