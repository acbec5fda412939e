"""``MultiStoragePath`` (alias ``manystore.Path``): a :mod:`pathlib`-style path over any URL.

A path is a root (``msc://profile/``, ``s3://bucket/``, or ``/`` for the local file
system) plus key segments. Paths are immutable and hashable, and ``..`` never climbs
above the root: ``Path("msc://p/a") / ".." / ".."`` is ``msc://p/``. Nothing is
contacted when a path is built; the profile's client is resolved (and cached, see
:func:`manystore.shortcuts.resolve_storage_client`) on the first I/O call.

Object stores have no directories, only keys containing ``/``. There a "directory" is
a prefix that exists while an object lies under it: :meth:`MultiStoragePath.mkdir`
writes nothing, :meth:`MultiStoragePath.rmdir` of an empty prefix is a no-op, and
:meth:`MultiStoragePath.touch` cannot refresh an existing object's mtime. Profiles
stored as plain files (``file`` provider, local paths) have real directories.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import pathlib
import re
import stat as stat_module
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Union

from ._pathio import PathIOMethods
from ._pathlocal import LocalPathMethods, StatResult
from .errors import InvalidPathError
from .schema import RESERVED_POSIX_PROFILE
from .urls import MSC_PROTOCOL, parse_url
from .utils import glob_literal_prefix, glob_to_regex

if TYPE_CHECKING:
    from .client import StorageClient

__all__ = ["MultiStoragePath", "StatResult"]

#: Anything a path can be built from or joined with.
PathArg = Union[str, "os.PathLike[str]"]

_LOCAL_ROOT = "/"
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _split_url(url: str) -> tuple[str, str]:
    """``(root, key)`` of a URL or local path; validates it with :func:`manystore.urls.parse_url`."""
    parsed = parse_url(url)
    if not _SCHEME_RE.match(url):
        return _LOCAL_ROOT, parsed.path
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "file":
        return _LOCAL_ROOT, parsed.path
    if scheme == MSC_PROTOCOL:
        if parsed.profile == RESERVED_POSIX_PROFILE:  # msc://__filesystem__/x is the local /x
            return _LOCAL_ROOT, parsed.path
        return f"{MSC_PROTOCOL}://{parsed.profile}/", parsed.path
    bucket = rest.partition("/")[0]
    return f"{scheme}://{bucket}/", parsed.path


def _push(parts: list[str], key: str) -> None:
    """Append the segments of ``key`` to ``parts``; ``..`` pops one but never past the root."""
    if "\x00" in key:
        raise InvalidPathError(f"path segment {key!r} contains a NUL byte")
    for segment in key.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)


def _as_str(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"expected a str or os.PathLike path, got {type(value).__name__}: {value!r}")
    return value


def _not_found(path: MultiStoragePath, what: str = "no such file or directory") -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, what, str(path))


@functools.total_ordering
class MultiStoragePath(PathIOMethods, LocalPathMethods):
    """An immutable path to an object, file or directory in any manystore location.

    Args:
        path: A URL (``msc://profile/key``, ``s3://bucket/key``, ``file:///abs``), a local
            path (relative ones are taken from the current directory) or an ``os.PathLike``.
        *more: Segments joined onto ``path`` as with the ``/`` operator.

    Raises:
        InvalidURLError: ``path`` is not a URL or path manystore accepts.

    ``str(path)`` is the URL (the absolute path for local paths). Paths compare, hash
    and sort by that string. On object stores a directory is a key prefix; see the
    module documentation for how that changes ``mkdir``, ``rmdir`` and ``is_dir``.
    """

    __slots__ = ("_parts", "_root", "_url")

    _root: str
    _parts: tuple[str, ...]
    _url: str

    def __init__(self, path: PathArg, *more: PathArg) -> None:
        if isinstance(path, MultiStoragePath):
            root, parts = path._root, list(path._parts)
        else:
            root, key = _split_url(_as_str(path))
            parts = []
            _push(parts, key)
        for other in more:
            root, parts = self._joined(root, parts, other)
        self._set(root, tuple(parts))

    def _set(self, root: str, parts: tuple[str, ...]) -> None:
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_url", root + "/".join(parts))

    @classmethod
    def _make(cls, root: str, parts: Iterable[str]) -> MultiStoragePath:
        new = object.__new__(cls)
        new._set(root, tuple(parts))
        return new

    @staticmethod
    def _joined(root: str, parts: list[str], other: Any) -> tuple[str, list[str]]:
        if isinstance(other, MultiStoragePath):
            return other._root, list(other._parts)
        text = _as_str(other)
        if _SCHEME_RE.match(text):
            root, key = _split_url(text)
            parts = []
        elif text.startswith("/"):
            key, parts = text, []
        else:
            key, parts = text, list(parts)
        _push(parts, key)
        return root, parts

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._url,))

    # ------------------------------------------------------------- pure parts
    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"

    def __fspath__(self) -> str:
        """The local path; only local paths (plain paths and ``file://``) have one.

        Raises:
            TypeError: The path is a URL of an object store or ``msc://`` profile.
        """
        if self._root != _LOCAL_ROOT:
            raise TypeError(
                f"{self._url} is not a local file path, so os.fspath() cannot take it; "
                "use str(path) for the URL or path.open() to read it"
            )
        return self._url

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultiStoragePath):
            return NotImplemented
        return self._url == other._url

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, MultiStoragePath):
            return NotImplemented
        return self._url < other._url

    def __hash__(self) -> int:
        return hash(self._url)

    def __truediv__(self, other: PathArg) -> MultiStoragePath:
        try:
            return self.joinpath(other)
        except TypeError:
            return NotImplemented

    def __rtruediv__(self, other: PathArg) -> MultiStoragePath:
        try:
            return type(self)(other, self)
        except TypeError:
            return NotImplemented

    def joinpath(self, *pathsegments: PathArg) -> MultiStoragePath:
        """Join segments onto this path, like ``/``.

        A segment that is a full URL or a :class:`MultiStoragePath` replaces the path; one
        starting with ``/`` restarts from this path's root (the profile or bucket root, or
        ``/`` locally); ``..`` goes up one level but never above the root.
        """
        root, parts = self._root, list(self._parts)
        for other in pathsegments:
            root, parts = self._joined(root, parts, other)
        return self._make(root, parts)

    @property
    def anchor(self) -> str:
        """The root: ``msc://profile/``, ``s3://bucket/`` or ``/``."""
        return self._root

    @property
    def parts(self) -> tuple[str, ...]:
        """The root followed by each key segment: ``('msc://p/', 'a', 'b.txt')``."""
        return (self._root, *self._parts)

    @property
    def name(self) -> str:
        """The last segment (``""`` for a root)."""
        return self._parts[-1] if self._parts else ""

    @property
    def suffix(self) -> str:
        """The extension of :attr:`name` (``".gz"`` for ``a.tar.gz``), or ``""``."""
        name = self.name
        i = name.rfind(".")
        return name[i:] if 0 < i < len(name) - 1 else ""

    @property
    def suffixes(self) -> list[str]:
        """All extensions of :attr:`name` (``[".tar", ".gz"]``)."""
        name = self.name
        return [] if name.endswith(".") else ["." + s for s in name.lstrip(".").split(".")[1:]]

    @property
    def stem(self) -> str:
        """:attr:`name` without its :attr:`suffix`."""
        name, suffix = self.name, self.suffix
        return name[: -len(suffix)] if suffix else name

    @property
    def parent(self) -> MultiStoragePath:
        """The containing directory (a root is its own parent)."""
        return self._make(self._root, self._parts[:-1]) if self._parts else self

    @property
    def parents(self) -> tuple[MultiStoragePath, ...]:
        """Every ancestor, nearest first, ending with the root."""
        return tuple(self._make(self._root, self._parts[:i]) for i in range(len(self._parts) - 1, -1, -1))

    def with_name(self, name: str) -> MultiStoragePath:
        """This path with its last segment replaced by ``name``.

        Raises:
            ValueError: The path is a root, or ``name`` is empty, ``.``/``..`` or holds ``/``.
        """
        if not self._parts:
            raise ValueError(f"{self._url} has an empty name")
        if not name or "/" in name or name in (".", "..") or "\x00" in name:
            raise ValueError(f"invalid name {name!r}")
        return self._make(self._root, (*self._parts[:-1], name))

    def with_stem(self, stem: str) -> MultiStoragePath:
        """This path with :attr:`stem` replaced (the suffix is kept)."""
        return self.with_name(stem + self.suffix)

    def with_suffix(self, suffix: str) -> MultiStoragePath:
        """This path with :attr:`suffix` replaced by ``suffix`` (``""`` removes it).

        Raises:
            ValueError: ``suffix`` does not start with ``.``, is just ``.``, or holds ``/``.
        """
        if suffix and (not suffix.startswith(".") or suffix == "." or "/" in suffix):
            raise ValueError(f"invalid suffix {suffix!r}")
        if not self.name:
            raise ValueError(f"{self._url} has an empty name")
        return self.with_name(self.stem + suffix)

    def relative_to(self, other: PathArg) -> pathlib.PurePosixPath:
        """The key segments below ``other``, as a relative :class:`pathlib.PurePosixPath`.

        Raises:
            ValueError: This path is not under ``other``.
        """
        base = other if isinstance(other, MultiStoragePath) else MultiStoragePath(other)
        n = len(base._parts)
        if base._root != self._root or self._parts[:n] != base._parts:
            raise ValueError(f"{self._url} is not under {base._url}")
        return pathlib.PurePosixPath(*self._parts[n:])

    def is_relative_to(self, other: PathArg) -> bool:
        """True if this path is ``other`` or lies under it."""
        try:
            self.relative_to(other)
        except ValueError:
            return False
        return True

    def as_posix(self) -> str:
        """The URL (the absolute path for local paths), as :func:`str`."""
        return self._url

    def as_uri(self) -> str:
        """The URL; local paths become percent-encoded ``file://`` URIs."""
        if self._root == _LOCAL_ROOT:
            return pathlib.PurePosixPath(self._url).as_uri()
        return self._url

    # ----------------------------------------------------------- I/O plumbing
    def _resolve(self) -> tuple[StorageClient, str]:
        from .shortcuts import resolve_storage_client

        return resolve_storage_client(self._url)

    @staticmethod
    def _local_path(client: StorageClient, key: str) -> str | None:
        """The file-system path of ``key`` if the profile stores plain files, else None."""
        from .providers.base import BaseStorageProvider

        config = client.config
        provider = config.storage_provider
        if config.metadata_provider is not None or not isinstance(provider, BaseStorageProvider):
            return None
        return provider.local_path(key)

    def _file_key(self) -> tuple[StorageClient, str]:
        client, key = self._resolve()
        if not key:
            raise IsADirectoryError(errno.EISDIR, "is the root, not a file", self._url)
        return client, key

    def _child(self, rel: str) -> MultiStoragePath:
        parts = list(self._parts)
        _push(parts, rel)
        return self._make(self._root, parts)

    # ------------------------------------------------------------ queries
    def exists(self) -> bool:
        """True if a file or a directory (on object stores: a non-empty prefix) is here."""
        client, key = self._resolve()
        local = self._local_path(client, key)
        if local is not None:
            return os.path.exists(local)
        return (bool(key) and client.is_file(key)) or not client.is_empty(key)

    def stat(self) -> StatResult:
        """Size and modification time of the file (or directory) here.

        Raises:
            FileNotFoundError: Nothing exists here.
        """
        client, key = self._resolve()
        if not key and self._local_path(client, key) is None:
            if client.is_empty(key):
                raise _not_found(self)
            return StatResult(stat_module.S_IFDIR | 0o755, 0, 0.0, 0)
        return StatResult.from_metadata(client.info(key, strict=False))

    # -------------------------------------------------------------- listing
    def iterdir(self) -> Iterator[MultiStoragePath]:
        """The files and directories directly under this path, in key order.

        Raises:
            FileNotFoundError: No such directory (on object stores: no object under the prefix).
            NotADirectoryError: This path is a file.
        """
        children = self._children()
        first = next(children, None)  # raise a missing-directory error now, not on first use
        return iter(()) if first is None else itertools.chain((first,), children)

    def _children(self) -> Iterator[MultiStoragePath]:
        client, key = self._resolve()
        prefix = key.rstrip("/") + "/" if key else ""
        found = False
        for meta in client.list(prefix, include_directories=True):
            found = True
            name = meta.key[len(prefix) :].rstrip("/")
            if name and "/" not in name:  # skip a "key/" directory marker object
                yield self._child(name)
        if found:
            return
        local = self._local_path(client, key)
        if local is not None:
            if os.path.isdir(local):
                return
            if os.path.exists(local):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", self._url)
            raise _not_found(self)
        if key and client.is_file(key):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", self._url)
        if key:
            raise _not_found(self, "no such directory (no object under this prefix)")

    def glob(self, pattern: str) -> Iterator[MultiStoragePath]:
        """Files under this path whose relative key matches ``pattern``, in key order.

        ``*``, ``?`` and ``[...]`` match within one segment; ``**`` matches any number of
        segments. Only files are returned, since object stores have no directory entries.

        Raises:
            ValueError: ``pattern`` is empty, absolute or holds ``..``.
        """
        segments = [s for s in _as_str(pattern).split("/") if s not in ("", ".")]
        if not pattern or pattern.startswith("/") or _SCHEME_RE.match(pattern) or not segments:
            raise ValueError(f"glob pattern must be a non-empty relative pattern, got {pattern!r}")
        if ".." in segments:
            raise ValueError(f"glob pattern {pattern!r} cannot contain '..'")
        return self._glob("/".join(segments))

    def _glob(self, pattern: str) -> Iterator[MultiStoragePath]:
        client, key = self._resolve()
        base = key.rstrip("/") + "/" if key else ""
        regex = glob_to_regex(pattern)
        for meta in client.list(base + glob_literal_prefix(pattern)):
            rel = meta.key[len(base) :]
            if meta.type != "directory" and regex.match(rel):
                yield self._child(rel)

    def rglob(self, pattern: str) -> Iterator[MultiStoragePath]:
        """Like :meth:`glob` with ``pattern`` matched at any depth (``**/pattern``)."""
        return self.glob("**/" + pattern)

    # ---------------------------------------------------------- reading/writing
    def read_bytes(self) -> bytes:
        """The file's contents.

        Raises:
            FileNotFoundError: No file here.
        """
        client, key = self._file_key()
        return client.read(key)

    def write_bytes(self, data: bytes | bytearray | memoryview) -> int:
        """Replace the file's contents with ``data`` atomically; returns the byte count.

        Missing parent directories are created (object stores need none).
        """
        client, key = self._file_key()
        body = bytes(memoryview(data))
        client.write(key, body)
        return len(body)

    # ------------------------------------------------------------ removing
    def unlink(self, missing_ok: bool = False) -> None:
        """Delete the file here.

        Raises:
            FileNotFoundError: No file here and ``missing_ok`` is False.
            IsADirectoryError: This is a directory.
        """
        client, key = self._file_key()
        if not client.is_file(key):
            local = self._local_path(client, key)
            is_dir = os.path.isdir(local) if local is not None else not client.is_empty(key)
            if is_dir:
                raise IsADirectoryError(errno.EISDIR, "is a directory", self._url)
            if missing_ok:
                return
            raise _not_found(self, "no such file")
        try:
            client.delete(key)
        except FileNotFoundError:  # removed meanwhile
            if not missing_ok:
                raise

    def rmdir(self) -> None:
        """Remove this directory, which must be empty.

        On object stores an empty prefix does not exist, so there is nothing to remove
        (a zero-byte ``key/`` directory marker, if any, is deleted).

        Raises:
            OSError: The directory is not empty (``errno.ENOTEMPTY``).
            NotADirectoryError: This is a file.
            FileNotFoundError: No such local directory.
        """
        client, key = self._resolve()
        local = self._local_path(client, key)
        if local is not None:
            os.rmdir(local)
            return
        prefix = key.rstrip("/") + "/" if key else ""
        entries = list(itertools.islice(client.list(prefix), 2))
        if any(meta.key != prefix for meta in entries):
            raise OSError(errno.ENOTEMPTY, "directory not empty", self._url)
        if key and client.is_file(key):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", self._url)
        for meta in entries:  # only a "key/" marker object is left
            with contextlib.suppress(FileNotFoundError):
                client.delete(meta.key)

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        """Create a directory here.

        Local profiles get a real directory, as :meth:`pathlib.Path.mkdir`. On object
        stores prefixes need no creation, so nothing is written and ``parents`` does not
        matter; the checks below still apply.

        Raises:
            FileExistsError: A file is here, or the directory exists (a non-empty prefix
                on object stores) and ``exist_ok`` is False.
            FileNotFoundError: Local only: the parent is missing and ``parents`` is False.
        """
        client, key = self._resolve()
        local = self._local_path(client, key)
        if local is not None:
            try:
                if parents:
                    os.makedirs(os.path.dirname(local.rstrip("/")) or "/", exist_ok=True)
                os.mkdir(local, mode)
            except OSError:
                if not exist_ok or not os.path.isdir(local):
                    raise
            return
        if key and client.is_file(key):
            raise FileExistsError(errno.EEXIST, "a file exists here", self._url)
        if not exist_ok and not client.is_empty(key):
            raise FileExistsError(errno.EEXIST, "directory exists (objects lie under it)", self._url)
