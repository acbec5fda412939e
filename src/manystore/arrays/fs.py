"""cottoncandy's file-system feel: ``ls``, ``lsdir``, ``glob``, ``cp``, ``mv``, ``rm`` and friends.

:class:`FileSystemInterface` adds these to :class:`~manystore.arrays.basic.BasicInterface`
using only the storage primitives of :class:`~manystore.arrays._base.InterfaceBase`, so
they behave the same on every backend (metadata sidecars on POSIX are hidden from
listings and follow their objects). Names are relative to the interface's root and
cleaned as cottoncandy cleans them (no leading ``/``, runs of ``/`` collapsed).

Glob patterns follow cottoncandy (:mod:`fnmatch`): ``*`` and ``?`` also match ``/``;
``**/`` also matches no directory at all; a pattern without magic matches every name it
prefixes. See ``docs/arrays.md`` ("File system") for the differences from cottoncandy.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..types import ObjectMetadata
from ._meta import sidecar_name
from ._paths import (
    clean_name,
    dir_prefix,
    glob_regex,
    has_magic,
    has_real_magic,
    magic_prefix,
    normpath,
    pathjoin,
    remove_trivial_magic,
)
from .basic import BasicInterface

if TYPE_CHECKING:
    from ._base import InterfaceBase
    from .browser import Directory

__all__ = ["FileSystemInterface"]

_MB = 2**20
#: A copy between two stores goes through memory up to this size, else a temporary file.
_SPOOL_IN_MEMORY = 64 * _MB
_GLOB_OPTIONS = frozenset({"verbose", "limit", "page_size", "do_unquote"})


def _check_count(name: str, value: int | None, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"{name}={value!r}: expected {expected}")
    return value


def _print_objects(objects: list[ObjectMetadata]) -> None:
    if not objects:
        return
    width = min(max(len(o.key) for o in objects) + 3, 70)
    for o in objects:
        when = o.last_modified.astimezone().strftime("%Y/%m/%d (%H:%M:%S)")
        print(f"{o.key[-100:]:<{width}} {when} {round(o.content_length / _MB, 1)}M")


class FileSystemInterface(BasicInterface):
    """Emulate some file-system functionality on the interface's root (cottoncandy's methods)."""

    # ------------------------------------------------------------ listing
    def _scan(self, prefix: str, page_size: int) -> tuple[list[ObjectMetadata], bool]:
        """Up to ``page_size`` objects under the raw ``prefix``; also whether more were left."""
        found: list[ObjectMetadata] = []
        for meta in self._list(prefix):
            if meta.type != "file":
                continue
            if len(found) == page_size:
                return found, True
            found.append(meta)
        return found, False

    def lsdir(self, path: str = "/", limit: int = 10**3) -> list[str]:
        """The children of the directory ``path`` (one level), as names from the root.

        Args:
            path: A directory (``"/"`` or ``""``: the root); a trailing ``/*`` is allowed.
            limit: The most children returned.

        Returns:
            Sub-directory and object names without a trailing ``/`` (e.g. ``["d/a", "d/sub"]``).

        Raises:
            ValueError: ``path`` holds glob magic (use :meth:`ls`) or ``limit`` is not positive.
        """
        _check_count("limit", limit, allow_none=False)
        path = clean_name(path)
        if has_real_magic(path):
            raise ValueError(f"lsdir({path!r}): use ls() for search patterns")
        prefix = dir_prefix(remove_trivial_magic(path))
        names: list[str] = []
        for meta in self._list(prefix, delimiter="/"):
            name = meta.key.rstrip("/")
            if name and name != prefix.rstrip("/"):
                names.append(name)
            if len(names) >= limit:
                break
        return names

    def ls(
        self, pattern: str, page_size: int = 10**3, limit: int = 10**3, verbose: bool = False
    ) -> list[str]:
        """File-system-like listing: the children of a directory, or the names matching a pattern.

        Without glob magic (a trailing ``/*`` does not count) this is :meth:`lsdir`. With
        it, names are cut to the pattern's depth (so ``"a/*/b*"`` finds ``a/x/b1`` when
        only ``a/x/b1/deep`` exists) and matched.

        Args:
            pattern: A directory or an ``ls``-style pattern (``"data/*/run0?"``).
            page_size: The most objects scanned under the pattern's literal prefix (as
                cottoncandy's listing ceiling; raise it for very large trees).
            limit: The most names returned.
            verbose: Also print the names, sorted.

        Raises:
            ValueError: ``page_size`` or ``limit`` is not a positive integer.
        """
        _check_count("page_size", page_size, allow_none=False)
        _check_count("limit", limit, allow_none=False)
        pattern = normpath(remove_trivial_magic(clean_name(pattern)))
        if not has_real_magic(pattern):
            names = self.lsdir(pattern, limit=limit)
        else:
            objects, _ = self._scan(magic_prefix(pattern), page_size)
            depth = len(pattern.split("/"))
            regex = glob_regex(pattern)
            seen = dict.fromkeys("/".join(o.key.split("/")[:depth]) for o in objects)
            names = [n for n in seen if regex.match(n)][:limit]
        if verbose:
            print("\n".join(sorted(names)))
        return names

    def _glob_objects(self, pattern: str, options: dict[str, Any]) -> list[ObjectMetadata]:
        unknown = set(options) - _GLOB_OPTIONS
        if unknown:
            raise TypeError(
                f"glob() got unexpected option(s) {sorted(unknown)}; expected {sorted(_GLOB_OPTIONS)}"
            )
        page_size = _check_count("page_size", options.get("page_size", 10**6), allow_none=False)
        limit = _check_count("limit", options.get("limit"), allow_none=True)
        pattern = clean_name(pattern)
        magic = has_magic(pattern)
        objects, truncated = self._scan(magic_prefix(pattern) if magic else pattern, page_size or 10**6)
        if truncated:
            import warnings

            warnings.warn(
                f"glob({pattern!r}) scanned page_size={page_size} objects and stopped; "
                "pass a larger page_size to see the rest",
                stacklevel=3,
            )
        if options.get("do_unquote", True):
            from urllib.parse import unquote

            for o in objects:
                o.key = unquote(o.key)
        if magic:
            regex = glob_regex(pattern)
            objects = [o for o in objects if regex.match(o.key)]
        objects.sort(key=lambda o: o.key)
        return objects[:limit] if limit is not None else objects

    def glob(self, pattern: str, **kwargs: Any) -> list[str]:
        """Names of the objects matching a glob pattern, sorted.

        Args:
            pattern: ``"path/to/*/file01*.grp/image_data"``; ``**/`` matches any number of
                directories (none included). Without magic: every name starting with it.
            **kwargs: cottoncandy's options: ``verbose`` (print names, dates and sizes),
                ``limit`` (the most names returned; None: all), ``page_size`` (the most
                objects scanned, default 10**6; a warning says when the scan stopped there),
                ``do_unquote`` (URL-unquote names, default True).

        Raises:
            TypeError: An option other than those.
            ValueError: ``limit``/``page_size`` is not a positive integer.
        """
        objects = self._glob_objects(pattern, kwargs)
        if kwargs.get("verbose", False):
            _print_objects(objects)
            print(f'Found {len(objects)} objects matching "{clean_name(pattern)}"')
        return [o.key for o in objects]

    def search(self, pattern: str, **kwargs: Any) -> list[str]:
        """Print the objects matching ``pattern`` (see :meth:`glob`) and return their names."""
        kwargs["verbose"] = True
        return self.glob(pattern, **kwargs)

    # ------------------------------------------------------------ objects
    def exists_object(
        self, object_name: str, bucket_name: str | None = None, raise_err: bool = False
    ) -> bool:
        """True if the object exists (a directory is not an object).

        Args:
            object_name: The object's name.
            bucket_name: Another root (a manystore URL) to look in; ``None``: this one.
            raise_err: Raise instead of returning False.

        Raises:
            FileNotFoundError: ``raise_err`` and no such object.
        """
        root = self._root(bucket_name, "bucket_name")
        name = clean_name(object_name)
        exists = root._exists(name)
        if raise_err and not exists:
            raise FileNotFoundError(f"Object not found: {name!r} under {root.client.url_prefix}{root.prefix}")
        return exists

    def get_object_owner(self, object_name: str) -> dict[str, str]:
        """The owner of an object, printed and returned.

        On a local directory: the file's ``uid``/``gid`` and user name. On an object
        store: the ``uid``/``gid`` of the ``s3cmd-attrs`` metadata that s3cmd and s3fs
        store (cottoncandy's fallback).

        Raises:
            FileNotFoundError: No such object.
            NotImplementedError: An object store object without ``s3cmd-attrs`` metadata (the
                store's ACL owner is not exposed by manystore's clients).
        """
        name = clean_name(object_name)
        self.exists_object(name, raise_err=True)
        provider = self.client.config.storage_provider
        local = getattr(provider, "local_path", lambda _k: None)(self._key(name))
        if local is not None:
            st = os.stat(local)
            try:
                user = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                user = str(st.st_uid)
            info = {"uid": str(st.st_uid), "gid": str(st.st_gid), "user": user}
        else:
            attrs = {k.lower(): v for k, v in self._metadata(name).items()}.get("s3cmd-attrs")
            if not attrs:
                raise NotImplementedError(
                    f"owner of {name!r}: the store's ACL owner is not exposed here and the object "
                    "has no 's3cmd-attrs' metadata (expected 'uid:N/gid:N/...')"
                )
            info = dict(part.split(":", 1) for part in attrs.split("/") if ":" in part)
        print(info)
        return info

    def get_browser(self) -> Directory:
        """A tab-completable view of the root (see :mod:`manystore.arrays.browser`)."""
        from .browser import Directory

        return Directory("", interface=self)

    # ------------------------------------------------------- copy and move
    def _root(self, bucket: str | None, what: str) -> InterfaceBase:
        """The root named by a ``*_bucket`` argument: this one for ``None`` or its own name."""
        if bucket is None or bucket in self._own_names():
            return self
        if "://" in bucket:
            from ..shortcuts import resolve_storage_client
            from ._base import InterfaceBase

            client, path = resolve_storage_client(bucket)
            return InterfaceBase(client, path, threads=self.threads)
        sibling = getattr(self, "_sibling", None)
        if sibling is not None:
            root: InterfaceBase = sibling(bucket)
            return root
        raise ValueError(
            f"{what}={bucket!r}: expected None, this interface's bucket or a manystore URL (s3://bucket/prefix)"
        )

    def _own_names(self) -> set[str]:
        names = {self.client.url_prefix + self.prefix, (self.client.url_prefix + self.prefix).rstrip("/")}
        own = getattr(self, "bucket_name", None)
        if isinstance(own, str):
            names.add(own)
        return names

    def cp(
        self,
        source_name: str,
        dest_name: str,
        source_bucket: str | None = None,
        dest_bucket: str | None = None,
        overwrite: bool = False,
    ) -> None:
        """Copy an object (server-side when both ends are on the same store), with its metadata.

        Args:
            source_name: The object to copy.
            dest_name: The copy's name.
            source_bucket: Another root to copy from (a manystore URL); ``None``: this one.
            dest_bucket: The root to copy to; ``None``: the source's.
            overwrite: Replace an existing ``dest_name``.

        Raises:
            FileNotFoundError: No object ``source_name`` (a directory is refused too).
            FileExistsError: ``dest_name`` exists and ``overwrite`` is False.
        """
        src_root = self._root(source_bucket, "source_bucket")
        dst_root = src_root if dest_bucket is None else self._root(dest_bucket, "dest_bucket")
        self._copy_between(src_root, clean_name(source_name), dst_root, clean_name(dest_name), overwrite)

    def _copy_between(
        self, src_root: InterfaceBase, src: str, dst_root: InterfaceBase, dst: str, overwrite: bool
    ) -> None:
        if not src_root._exists(src):
            hint = (
                " (a directory: copy its objects)"
                if any(True for _ in src_root._list(dir_prefix(src)))
                else ""
            )
            raise FileNotFoundError(
                f"cannot copy {src!r}: no such object under {src_root.client.url_prefix}{src_root.prefix}{hint}"
            )
        if not overwrite and dst_root._exists(dst):
            raise FileExistsError(
                f"cannot copy {src!r} to {dst!r}: {dst!r} exists under "
                f"{dst_root.client.url_prefix}{dst_root.prefix}; pass overwrite=True to replace it"
            )
        if src_root.client is dst_root.client:  # one store: server-side copy
            if src_root.prefix == dst_root.prefix:
                src_root._copy(src, dst)
                return
            client = src_root.client
            client.copy(src_root._key(src), dst_root._key(dst))
            if src_root.uses_sidecars:
                side, dest_side = sidecar_name(src_root._key(src)), sidecar_name(dst_root._key(dst))
                if client.is_file(side):
                    client.copy(side, dest_side)
                elif client.is_file(dest_side):
                    client.delete(dest_side)
            return
        # another store (or root): through this process. Not by handing one client's
        # reader to the other's upload: obstore cannot block on a read inside its upload.
        metadata = src_root._metadata(src)
        if src_root._size(src) <= _SPOOL_IN_MEMORY:
            dst_root._put(dst, src_root._get(src), metadata)
            return
        with tempfile.TemporaryFile() as spool:
            with src_root._open(src) as body:
                shutil.copyfileobj(body, spool, _MB * 8)
            spool.seek(0)
            dst_root._put(dst, spool, metadata)

    def mv(
        self,
        source_name: str,
        dest_name: str,
        source_bucket: str | None = None,
        dest_bucket: str | None = None,
        overwrite: bool = False,
    ) -> None:
        """Move an object: :meth:`cp`, then delete the source (same arguments and errors)."""
        src_root = self._root(source_bucket, "source_bucket")
        dst_root = src_root if dest_bucket is None else self._root(dest_bucket, "dest_bucket")
        src, dst = clean_name(source_name), clean_name(dest_name)
        if src_root is dst_root and normpath(src) == normpath(dst):
            return
        self._copy_between(src_root, src, dst_root, dst, overwrite)
        src_root._delete(src)

    def rm(self, object_name: str, recursive: bool = False, delete: bool = True) -> int:
        """Delete an object, or with ``recursive`` a whole branch (``rm -r``).

        Args:
            object_name: An object, or a directory when ``recursive``.
            recursive: Delete every object under ``object_name/``.
            delete: cottoncandy's Google-Drive "delete, not trash" flag; no backend here has
                a trash, so it must stay True.

        Returns:
            The number of objects deleted.

        Raises:
            IsADirectoryError: ``object_name`` is a directory and ``recursive`` is False
                ("cannot remove '...': use `recursive` to remove branch").
            FileNotFoundError: Nothing exists at or under ``object_name``.
            ValueError: ``delete`` is False.
        """
        if delete is not True:
            raise ValueError(f"delete={delete!r}: no backend here has a trash; expected True")
        name = clean_name(object_name)
        if name and self._exists(name):
            self._delete(name)
            return 1
        branch = [m.key for m in self._list(dir_prefix(name)) if m.type == "file"]
        if not branch:
            raise FileNotFoundError(f"nothing found under {name!r} in {self.client.url_prefix}{self.prefix}")
        if not recursive:
            raise IsADirectoryError(f"cannot remove {name!r}: use `recursive` to remove branch")
        if not name:
            raise ValueError("rm('', recursive=True) would empty the whole root; name a branch")
        self.client.delete(self._key(name), recursive=True)
        return len(branch)

    # ------------------------------------------------------- directories
    def _walk(self, directory: str) -> Iterator[tuple[str, str]]:
        """``(name, path relative to directory)`` of every object under ``directory``."""
        prefix = dir_prefix(directory)
        for meta in self._list(prefix):
            if meta.type == "file" and not meta.key.endswith("/"):
                yield meta.key, meta.key[len(prefix) :]

    def download_directory(self, directory: str, disk_name: str) -> int:
        """Download every object under ``directory`` into the local directory ``disk_name``.

        Sub-directories are recreated; metadata sidecars are not copied.

        Returns:
            The number of files written.

        Raises:
            ValueError: ``directory`` holds glob magic.
        """
        directory = clean_name(directory)
        if has_real_magic(directory):
            raise ValueError(
                f"download_directory({directory!r}): wildcards are not supported; name a directory"
            )
        directory = remove_trivial_magic(directory)
        os.makedirs(disk_name, exist_ok=True)
        count = 0
        root = os.path.abspath(disk_name)
        for name, rel in self._walk(directory):
            target = os.path.abspath(os.path.join(root, *rel.split("/")))
            if not target.startswith(root + os.sep):
                raise ValueError(f"object {name!r} would be written outside {disk_name!r}")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.download_to_file(name, target)
            count += 1
        return count

    def upload_from_directory(
        self,
        disk_path: str,
        cloud_path: str | None = None,
        recursive: bool = False,
        ExtraArgs: dict[str, Any] | None = None,
        threads: int | None = None,
    ) -> int:
        """Upload the files of a local directory (and, with ``recursive``, its sub-directories).

        Args:
            disk_path: The local directory.
            cloud_path: The directory to upload into; ``None``: ``disk_path`` itself
                (without its leading ``/``, as cottoncandy names it).
            recursive: Also upload sub-directories.
            ExtraArgs: ``{"ACL": ...}`` as for :meth:`upload_from_file`.
            threads: Parallel requests per file (``None``: the interface's default).

        Returns:
            The number of files uploaded.

        Raises:
            NotADirectoryError: ``disk_path`` is not a directory.
        """
        if not os.path.isdir(disk_path):
            raise NotADirectoryError(f"upload_from_directory: {disk_path!r} is not a local directory")
        extra = {"ACL": "authenticated-read"} if ExtraArgs is None else ExtraArgs
        base = clean_name(disk_path if cloud_path is None else cloud_path)
        count = 0
        for entry in sorted(os.listdir(disk_path)):
            local = os.path.join(disk_path, entry)
            remote = pathjoin(base, entry)
            if os.path.isfile(local):
                self.upload_from_file(local, remote, ExtraArgs=extra, threads=threads or self.threads)
                count += 1
            elif os.path.isdir(local) and recursive:
                count += self.upload_from_directory(local, remote, True, extra, threads)
        return count
