"""The :mod:`pathlib` methods of :class:`manystore.pathlib.MultiStoragePath` that only a local
file system can answer (symlinks, permissions, owners, device types, ``walk``...), with MSC
1.3.1's meaning: on a path stored as a plain file they do what :class:`pathlib.Path` does; on an
object store they raise :class:`NotImplementedError` naming the method and the path (as 1.3.1
does), except where 1.3.1 gives an object-store meaning (``lstat``, ``resolve``, ``rename``).
"""

from __future__ import annotations

import errno
import os
import pathlib
import stat as stat_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import StorageClient
    from .pathlib import MultiStoragePath, PathArg
    from .types import ObjectMetadata

__all__ = ["LocalPathMethods", "StatResult"]


@dataclass(frozen=True)
class StatResult:
    """A subset of :class:`os.stat_result` built from an object's metadata.

    Attributes:
        st_mode: ``S_IFDIR | 0o755`` for directories, ``S_IFREG | 0o644`` for files
            (object stores have no permission bits).
        st_size: Size in bytes (0 for a directory).
        st_mtime: Last modification time, seconds since the epoch.
        st_mtime_ns: The same in nanoseconds.
        metadata: The :class:`manystore.types.ObjectMetadata` it was built from.
    """

    st_mode: int
    st_size: int
    st_mtime: float
    st_mtime_ns: int
    metadata: ObjectMetadata | None = field(default=None, compare=False, repr=False)

    @property
    def st_atime(self) -> float:
        """Object stores record no access time: the mtime."""
        return self.st_mtime

    @property
    def st_ctime(self) -> float:
        """Object stores record no change time: the mtime."""
        return self.st_mtime

    @staticmethod
    def from_metadata(meta: ObjectMetadata) -> StatResult:
        """Build from :class:`manystore.types.ObjectMetadata`."""
        is_dir = meta.type == "directory"
        mode = (stat_module.S_IFDIR | 0o755) if is_dir else (stat_module.S_IFREG | 0o644)
        mtime: datetime = meta.last_modified
        seconds = mtime.timestamp()
        return StatResult(
            st_mode=mode,
            st_size=0 if is_dir else int(meta.content_length),
            st_mtime=seconds,
            st_mtime_ns=round(seconds * 1_000_000) * 1000,
            metadata=meta,
        )


class LocalPathMethods:
    """Mixin of :class:`~manystore.pathlib.MultiStoragePath` (see the module documentation)."""

    _url: str
    _parts: tuple[str, ...]

    if TYPE_CHECKING:  # provided by MultiStoragePath

        def _resolve(self) -> tuple[StorageClient, str]: ...

        @staticmethod
        def _local_path(client: StorageClient, key: str) -> str | None: ...

        def stat(self) -> StatResult: ...

        def exists(self) -> bool: ...

        def joinpath(self, *pathsegments: PathArg) -> MultiStoragePath: ...

    def _local(self, method: str) -> str:
        """The local path of this path, or NotImplementedError naming ``method`` for remote paths."""
        client, key = self._resolve()
        local = self._local_path(client, key)
        if local is None:
            raise NotImplementedError(
                f"MultiStoragePath.{method}() is unsupported for remote storage paths ({self._url}); "
                "it needs a local file system path"
            )
        return local

    def _path_of(self, method: str) -> pathlib.Path:
        return pathlib.Path(self._local(method))

    def _wrap(self, path: Any) -> MultiStoragePath:
        """``path`` (a URL, local path or path object) as a path of this class."""
        return type(self)(os.fspath(path) if not isinstance(path, LocalPathMethods) else str(path))  # type: ignore[call-arg,return-value]

    # ------------------------------------------------------------- pure
    def is_absolute(self) -> bool:
        """Always True: every path has a root (``/``, ``msc://profile/``, ``s3://bucket/``)."""
        return True

    def absolute(self) -> MultiStoragePath:
        """The path itself: it is always absolute."""
        return self  # type: ignore[return-value]

    def with_segments(self, *pathsegments: PathArg) -> MultiStoragePath:
        """A new path: this one joined with ``pathsegments`` (as in MSC 1.3.1)."""
        return self.joinpath(*pathsegments)

    def match(self, pattern: str) -> bool:
        """True if the path matches the glob ``pattern`` (matched from the right, as in pathlib)."""
        return pathlib.PurePosixPath("/" + "/".join(self._parts)).match(pattern)

    @classmethod
    def cwd(cls) -> pathlib.Path:
        """The current working directory (a :class:`pathlib.Path`, as in MSC 1.3.1)."""
        return pathlib.Path.cwd()

    @classmethod
    def home(cls) -> pathlib.Path:
        """The user's home directory (a :class:`pathlib.Path`, as in MSC 1.3.1)."""
        return pathlib.Path.home()

    # ------------------------------------------------------ local-only
    def expanduser(self) -> MultiStoragePath:
        """Local paths are already absolute (a leading ``~`` was taken literally when the path was
        built), so the path itself. Remote paths: NotImplementedError."""
        self._local("expanduser")
        return self  # type: ignore[return-value]

    def resolve(self, strict: bool = False) -> MultiStoragePath:
        """Local paths: symlinks resolved (``strict``: FileNotFoundError if missing). ``msc://`` and
        object-store URLs: the path itself (as in MSC 1.3.1)."""
        if not self._url.startswith("/"):
            return self  # type: ignore[return-value]
        return self._wrap(pathlib.Path(self._url).resolve(strict=strict))

    def readlink(self) -> MultiStoragePath:
        """The target of the symbolic link here (local only)."""
        return self._wrap(os.readlink(self._local("readlink")))

    def lstat(self) -> os.stat_result | StatResult:
        """Like :meth:`stat` without following a final symlink; remote paths: :meth:`stat`."""
        client, key = self._resolve()
        local = self._local_path(client, key)
        return os.lstat(local) if local is not None else self.stat()

    def _query(self, method: str) -> bool:
        return bool(getattr(self._path_of(method), method)())

    def is_symlink(self) -> bool:
        """True if a symbolic link is here (local only)."""
        return self._query("is_symlink")

    def is_mount(self) -> bool:
        """True if a mount point is here (local only)."""
        return self._query("is_mount")

    def is_socket(self) -> bool:
        """True if a socket is here (local only)."""
        return self._query("is_socket")

    def is_fifo(self) -> bool:
        """True if a FIFO is here (local only)."""
        return self._query("is_fifo")

    def is_block_device(self) -> bool:
        """True if a block device is here (local only)."""
        return self._query("is_block_device")

    def is_char_device(self) -> bool:
        """True if a character device is here (local only)."""
        return self._query("is_char_device")

    def is_reserved(self) -> bool:
        """False on POSIX (local only, as in MSC 1.3.1)."""
        return pathlib.PurePosixPath(self._local("is_reserved")).is_reserved()

    def owner(self) -> str:
        """Login name of the file's owner (local only)."""
        return self._path_of("owner").owner()

    def group(self) -> str:
        """Group name of the file (local only)."""
        return self._path_of("group").group()

    def chmod(self, mode: int) -> None:
        """Change the permission bits (local only)."""
        os.chmod(self._local("chmod"), mode)

    def lchmod(self, mode: int) -> None:
        """Change the permission bits of a symlink itself (local only; where the OS supports it)."""
        self._path_of("lchmod").lchmod(mode)

    def symlink_to(self, target: PathArg, target_is_directory: bool = False) -> None:
        """Make this path a symbolic link to ``target`` (local only)."""
        os.symlink(os.fspath(target), self._local("symlink_to"), target_is_directory)

    def walk(
        self,
        top_down: bool = True,
        on_error: Callable[[OSError], Any] | None = None,
        follow_symlinks: bool = False,
    ) -> Iterator[tuple[MultiStoragePath, list[str], list[str]]]:
        """``(directory, dirnames, filenames)`` of the tree under this path, as :func:`os.walk`
        (local only, as in MSC 1.3.1)."""
        top = self._local("walk")
        for dirpath, dirnames, filenames in os.walk(top, top_down, on_error, follow_symlinks):
            yield self._wrap(dirpath), dirnames, filenames

    def samefile(self, other_path: PathArg) -> bool:
        """True if ``other_path`` names the same file: the same inode locally, else the same key
        of the same profile (path mappings are applied).

        Raises:
            FileNotFoundError: Either path does not exist.
        """
        that = other_path if isinstance(other_path, LocalPathMethods) else self._wrap(other_path)
        client_a, key_a = self._resolve()
        client_b, key_b = that._resolve()
        local_a, local_b = self._local_path(client_a, key_a), self._local_path(client_b, key_b)
        if local_a is not None and local_b is not None:
            return os.path.samefile(local_a, local_b)
        for path in (self, that):
            if not path.exists():
                raise FileNotFoundError(errno.ENOENT, "no such file or directory", str(path))
        return client_a is client_b and key_a == key_b

    # ---------------------------------------------------------- renaming
    def rename(self, target: PathArg) -> MultiStoragePath:
        """Move this file to ``target`` and return ``target`` as a path. Local: :func:`os.rename`.
        Object stores: a copy then a delete (not atomic; one object, as in MSC 1.3.1)."""
        dest = self._wrap(target) if not isinstance(target, LocalPathMethods) else target
        client, key = self._resolve()
        dest_client, dest_key = dest._resolve()
        local, dest_local = self._local_path(client, key), self._local_path(dest_client, dest_key)
        if local is not None and dest_local is not None:
            os.rename(local, dest_local)
        elif dest_client is client:
            client.copy(key, dest_key)
            client.delete(key)
        else:
            with client.open(key, "rb") as src, dest_client.open(dest_key, "wb") as out:
                while chunk := src.read(8 << 20):
                    out.write(chunk)
            client.delete(key)
        return dest  # type: ignore[return-value]

    def replace(self, target: PathArg) -> MultiStoragePath:
        """Move this file over ``target`` (local only, as in MSC 1.3.1)."""
        dest = self._wrap(target) if not isinstance(target, LocalPathMethods) else target
        os.replace(self._local("replace"), dest._local("replace"))
        return dest  # type: ignore[return-value]
