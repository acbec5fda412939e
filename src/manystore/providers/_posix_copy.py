"""Copying local files atomically: in the kernel where it can, into a temp file renamed over the target.

The batch copy (:func:`copy_many`) is the fast path of local -> local syncs: per file it
does only the system calls the copy needs (open relative to the source directory's fd,
``fstat``, create the temp file relative to the target directory's fd, one kernel copy,
close, rename, close) and no path resolution; each directory is resolved (confined to its
``base_path``) and opened once per batch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING

from ..errors import InvalidPathError
from ..utils import normalize_key
from ._tempfile import TEMP_SUFFIX, temp_counter, temp_file_beside, temp_tag

if TYPE_CHECKING:
    from .posix_file import PosixFileStorageProvider

__all__ = ["atomic_write", "copy_fd", "copy_many"]

COPY_CHUNK = 8 << 20
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_READ_NOFOLLOW = READ_FLAGS | os.O_NOFOLLOW
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
# In-kernel copies, tried in order: (src fd, dst fd, count) -> bytes copied, at both file positions.
_KERNEL_COPIES: list[Callable[[int, int, int], int]] = [
    lambda src, dst, n: os.sendfile(dst, src, None, n),
]
if hasattr(os, "copy_file_range"):
    _KERNEL_COPIES.insert(0, lambda src, dst, n: os.copy_file_range(src, dst, n))
# errnos meaning "not this way here" (cross-device, unsupported file system): try the next route.
_COPY_FILE_RANGE = hasattr(os, "copy_file_range")
_NO_KERNEL_COPY = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF}
_MISSING = (FileNotFoundError, NotADirectoryError)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def copy_fd(src: int, dst: int, size: int) -> None:
    """Copy ``size`` bytes from ``src``'s position to ``dst``'s, in the kernel where it can.

    ``copy_file_range`` first (a reflink on file systems that share extents), then
    ``sendfile``, then ``read``/``write`` — each taking over where the one before stopped.
    Bytes appended to ``src`` while it is copied are left out (a rerun sees the new size).
    """
    done = 0
    for move in _KERNEL_COPIES:
        try:
            while done < size:
                n = move(src, dst, size - done)
                if n == 0:  # EOF (the file shrank), or this route copies nothing here
                    break
                done += n
        except OSError as err:
            if err.errno not in _NO_KERNEL_COPY:
                raise
        if done >= size:
            return
    while done < size and (chunk := os.read(src, min(COPY_CHUNK, size - done))):
        _write_all(dst, chunk)
        done += len(chunk)


def atomic_write(source: str | IO, destination: str) -> None:
    """Write ``source`` (a path or a binary file object) to ``destination`` atomically.

    The bytes go to a temporary file beside ``destination`` (its directory is created when
    missing), which is then renamed over it: readers see the old file or the new one,
    never a mix, and a killed writer leaves only the temp file (see ``reap_temp_files``).
    """
    try:
        fd, tmp = temp_file_beside(destination)
    except FileNotFoundError:  # the directory is new: create it only now
        os.makedirs(os.path.dirname(destination) or ".", exist_ok=True)
        fd, tmp = temp_file_beside(destination)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, str):
                src = os.open(source, READ_FLAGS)
                try:
                    copy_fd(src, out.fileno(), os.fstat(src).st_size)
                finally:
                    os.close(src)
            else:
                shutil.copyfileobj(source, out, COPY_CHUNK)
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _split(key: str) -> tuple[str, str]:
    """``(directory, file name)`` of a file key (normalised: no ``..``, no NUL)."""
    directory, _, name = normalize_key(key).rpartition("/")
    if not name:
        raise InvalidPathError(f"key {key!r} names a directory, not a file")
    return directory, name


class _DirFds:
    """Directory fds of one side of a batch, opened on first use and closed at the end;
    a failure to open one is remembered and raised for each of its files."""

    def __init__(self, provider: PosixFileStorageProvider, create: bool) -> None:
        self.provider, self.create = provider, create
        self.fds: dict[str, int | BaseException] = {}

    def get(self, rel_dir: str) -> int:
        fd = self.fds.get(rel_dir)
        if fd is None:
            try:
                fd = self.fds[rel_dir] = self.provider.open_dir(rel_dir, self.create)
            except Exception as exc:
                self.fds[rel_dir] = exc
                raise
        if isinstance(fd, BaseException):
            raise fd
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            if isinstance(fd, int):
                os.close(fd)


def _open_source(source: PosixFileStorageProvider, key: str, sdir: int, name: str) -> int:
    """An fd of source file ``name`` in directory fd ``sdir``; a symlink is resolved through the
    provider's confinement check; a missing file raises the provider's not-found error."""
    try:
        try:
            return os.open(name, _READ_NOFOLLOW, dir_fd=sdir)
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            return os.open(source._path(key), READ_FLAGS)  # a symlink: checked, then followed
    except _MISSING:
        raise source._missing(key) from None


def copy_many(
    target: PosixFileStorageProvider, source: PosixFileStorageProvider, pairs: Sequence[tuple[str, str]]
) -> list[BaseException | None]:
    """Copy ``(source key, target key)`` pairs between two local providers, each atomically
    (see :meth:`~manystore.providers.posix_file.PosixFileStorageProvider.copy_many_from`)."""
    errors: list[BaseException | None] = []
    src_dirs, dst_dirs = _DirFds(source, create=False), _DirFds(target, create=True)
    tag = temp_tag() + "-"
    counter = temp_counter
    last_src = last_dst = None
    sdir = ddir = -1
    try:
        for src_key, dst_key in pairs:
            try:
                # Keys in normal form (the listing's) are split here; others are normalised first.
                if src_key[:1] in "/." or "//" in src_key or "/." in src_key or "\x00" in src_key:
                    src_dir, sname = _split(src_key)
                else:
                    src_dir, _, sname = src_key.rpartition("/")
                if dst_key[:1] in "/." or "//" in dst_key or "/." in dst_key or "\x00" in dst_key:
                    dst_dir, dname = _split(dst_key)
                else:
                    dst_dir, _, dname = dst_key.rpartition("/")
                if not sname or not dname:
                    _split(src_key if not sname else dst_key)  # raises: names a directory
                if src_dir != last_src:
                    try:
                        sdir = src_dirs.get(src_dir)
                    except _MISSING:
                        raise source._missing(src_key) from None
                    last_src = src_dir
                if dst_dir != last_dst:
                    ddir = dst_dirs.get(dst_dir)
                    last_dst = dst_dir
                sfd = _open_source(source, src_key, sdir, sname)
                try:
                    st = os.fstat(sfd)
                    if not stat.S_ISREG(st.st_mode):
                        raise source._missing(src_key)
                    size = st.st_size
                    tmp = f".{dname}.{tag}{next(counter)}{TEMP_SUFFIX}"
                    dfd = os.open(tmp, _TEMP_FLAGS, 0o666, dir_fd=ddir)
                    try:
                        try:
                            # One kernel call copies a small file; copy_fd finishes or falls back.
                            done = 0
                            if _COPY_FILE_RANGE and size:
                                try:
                                    done = os.copy_file_range(sfd, dfd, size)
                                except OSError:  # copy_fd tries again, then the other routes
                                    done = 0
                            if done < size:
                                copy_fd(sfd, dfd, size - done)
                        finally:
                            os.close(dfd)
                        os.replace(tmp, dname, src_dir_fd=ddir, dst_dir_fd=ddir)
                    except BaseException:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(tmp, dir_fd=ddir)
                        raise
                finally:
                    os.close(sfd)
                errors.append(None)
            except Exception as exc:
                errors.append(exc)
    finally:
        src_dirs.close()
        dst_dirs.close()
    return errors
