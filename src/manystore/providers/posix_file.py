"""POSIX file-system storage provider (config type ``file``).

Every key is confined to ``base_path``: ``..`` segments, NUL bytes and symlinks
that resolve outside the base are refused with
:class:`manystore.errors.InvalidPathError`. Writes are atomic: data goes to a
temporary file in the destination directory, which is renamed over the target.

Backend differences:
    * ETags are synthesised from the file's mtime (ns) and size.
    * ``if_none_match="*"`` is enforced atomically (hard link of the temp file);
      ``if_match`` compares the current ETag first (not atomic against a racing writer).
    * Directories exist on their own: an empty directory is listed with
      ``include_directories=True``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import IO, Any

from ..errors import InvalidPathError, ObjectNotFoundError, PreconditionFailedError
from ..types import ObjectMetadata, Range, SignerType
from ..utils import normalize_key, within_bounds
from ._posix_copy import COPY_CHUNK, atomic_write, copy_many
from ._tempfile import TEMP_SUFFIX, temp_file_beside, writer_alive
from .base import BaseStorageProvider, presign_request

__all__ = ["TEMP_SUFFIX", "PosixFileStorageProvider", "atomic_write", "temp_file_beside"]

_VERIFIED_DIRS_LIMIT = 8192
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_MAX_SINGLE_READ = 1 << 30
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _etag(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


def _metadata(key: str, st: os.stat_result, is_dir: bool = False) -> ObjectMetadata:
    return ObjectMetadata(
        key=key,
        content_length=0 if is_dir else st.st_size,
        last_modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
        type="directory" if is_dir else "file",
        etag=None if is_dir else _etag(st),
    )


class PosixFileStorageProvider(BaseStorageProvider):
    """Storage provider over a local (or mounted network) file system.

    Args:
        base_path: Directory every key is relative to. Created on first write.
        **kwargs: Telemetry options of the reference (accepted, unused here).
    """

    provider_name = "file"
    supports_conditional_writes = True
    supports_server_side_copy = True

    def __init__(self, base_path: str, **kwargs: Any) -> None:
        if base_path == "":  # as in MSC: an empty base_path is the file system root
            base_path = "/"
        if not isinstance(base_path, str) or not base_path:
            raise InvalidPathError(
                f"file provider: base_path must be a non-empty directory path, got {base_path!r}"
            )
        super().__init__(base_path=os.path.abspath(os.path.expanduser(base_path)), **kwargs)
        self._base_real = os.path.realpath(self._base_path)
        self._base_prefix = self._base_real.rstrip(os.sep) + os.sep
        self._base_join = self._base_path.rstrip(os.sep) + os.sep
        # Verified parent directories -> (st_dev, st_ino) seen when verified.
        self._verified: dict[str, tuple[int, int]] = {}
        self._dir_lock = threading.Lock()
        #: Directories this provider created for batch copies (:meth:`copy_many_from`).
        self.directories_created = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_dir_lock"]  # a lock never crosses a process; the copy gets its own
        state["_verified"] = {}  # directory checks are redone where the copy runs
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._dir_lock = threading.Lock()

    # ---------------------------------------------------------------- paths
    def _resolve(self, key: str, check_final: bool = True) -> tuple[str, bool]:
        """``(absolute path, parent directory exists)`` for ``key``, refusing any escape.

        Fast path: the parent directory was verified before and ``stat`` still finds the
        same inode there, and the final component is not a symlink. Otherwise the path is
        resolved with ``realpath`` and must stay inside ``base_path``.
        """
        rel = normalize_key(key)
        if not rel:
            return self._base_path, True
        full = self._base_join + rel
        parent = full.rpartition("/")[0] or "/"
        ident = self._verified.get(parent)
        if ident is not None:
            try:
                st = os.stat(parent)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            if st is not None and (st.st_dev, st.st_ino) == ident:
                if not check_final:
                    return full, True
                try:
                    final_is_link = stat.S_ISLNK(os.lstat(full).st_mode)
                except FileNotFoundError:
                    final_is_link = False
                if not final_is_link:
                    return full, True
        return self._resolve_slow(key, full, parent)

    def _resolve_slow(self, key: str, full: str, parent: str) -> tuple[str, bool]:
        real = os.path.realpath(full)
        if real != self._base_real and not real.startswith(self._base_prefix):
            raise InvalidPathError(f"key {key!r} resolves to {real!r}, outside base_path {self._base_path!r}")
        try:
            st = os.stat(parent)
        except OSError:
            return full, False
        if not stat.S_ISDIR(st.st_mode):
            return full, False
        parent_real = os.path.realpath(parent)
        if parent_real == self._base_real or parent_real.startswith(self._base_prefix):
            if len(self._verified) >= _VERIFIED_DIRS_LIMIT:
                self._verified.clear()
            self._verified[parent] = (st.st_dev, st.st_ino)
        return full, True

    def _path(self, key: str) -> str:
        """Absolute file path for ``key``, refusing anything that resolves outside ``base_path``."""
        return self._resolve(key)[0]

    def generate_presigned_url(
        self,
        path: str,
        *,
        method: str = "GET",
        signer_type: SignerType | None = None,
        signer_options: dict[str, Any] | None = None,
    ) -> str:
        """The ``file://`` URL of ``path``: local files need no signature (and never expire).

        Raises:
            ValueError: A method other than ``GET``/``HEAD``, a signer type, or a bad option.
        """
        verb, _ = presign_request(self, method, signer_type, signer_options, None)
        if verb not in ("GET", "HEAD"):
            raise ValueError(
                f"{self!r}: a file:// URL can only be read; got method {method!r}, expected GET or HEAD"
            )
        return "file://" + urllib.parse.quote(self._path(path))

    def local_path(self, path: str) -> str | None:
        """The confined absolute file path of ``path``."""
        return self._path(path)

    def delete_prefix(self, prefix: str) -> int:
        """Remove the directory tree ``prefix`` (never ``base_path`` itself); returns files removed."""
        full = self._path(prefix)
        if os.path.realpath(full) == self._base_real or not os.path.isdir(full) or os.path.islink(full):
            return super().delete_prefix(prefix)
        count = sum(len(files) for _, _, files in os.walk(full))
        shutil.rmtree(full)
        return count

    def make_symlink(self, path: str, target: str) -> None:
        """Create an OS symlink at ``path`` to ``target``, stored relative to the link's directory
        (an existing file at ``path`` is replaced).

        Raises:
            InvalidPathError: ``path`` or ``target`` lies outside ``base_path``.
        """
        link, dest = normalize_key(path), normalize_key(target)
        local = self._path(link)
        self._path(dest)  # refuses a target outside base_path
        os.makedirs(os.path.dirname(local), exist_ok=True)
        if os.path.lexists(local):
            os.remove(local)
        os.symlink(ObjectMetadata.encode_symlink_target(link, dest), local)

    def _listed_link_target(self, meta: ObjectMetadata) -> str | None:
        """The link-relative target if the listed file is an OS symlink (one ``readlink``)."""
        try:
            local = self._path(meta.key)
            raw = os.readlink(local)
        except (OSError, InvalidPathError):  # not a link, or a link leaving base_path
            return None
        if not os.path.isabs(raw):
            return raw
        root = local[: len(local) - len(meta.key)].rstrip("/")
        return ObjectMetadata.encode_symlink_target(meta.key, os.path.relpath(raw, root))

    def _missing(self, key: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(f"{os.path.join(self._base_path, normalize_key(key))}: no such file")

    # ------------------------------------------------------------- writes
    def put_object(
        self,
        path: str,
        body: bytes,
        if_match: str | None = None,
        if_none_match: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Write ``body`` atomically (temp file + rename); ``attributes`` are not stored on POSIX."""
        if if_none_match not in (None, "*"):
            raise ValueError(f"if_none_match supports only '*', got {if_none_match!r}")
        dest, parent_exists = self._resolve(path)
        if if_match is not None:
            try:
                current = _etag(os.stat(dest))
            except FileNotFoundError:
                raise PreconditionFailedError(f"{dest}: if_match={if_match!r} but the file does not exist")
            if current != if_match:
                raise PreconditionFailedError(
                    f"{dest}: if_match={if_match!r} but the current ETag is {current!r}"
                )
        if not parent_exists:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = temp_file_beside(dest)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
            if if_none_match == "*":
                try:
                    os.link(tmp, dest)
                except FileExistsError:
                    raise PreconditionFailedError(f"{dest}: if_none_match='*' but the file exists")
                os.unlink(tmp)
            else:
                os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def upload_file(self, remote_path: str, f: str | IO, attributes: dict[str, str] | None = None) -> None:
        """Copy a local file or binary file object in, atomically."""
        atomic_write(f, self._path(remote_path))

    def copy_object(self, src_path: str, dest_path: str) -> None:
        """Copy a file (atomically at the destination)."""
        self._copy_one(self, src_path, dest_path)

    def can_copy_from(self, source: BaseStorageProvider) -> bool:
        """True for another local profile (one file system)."""
        return isinstance(source, PosixFileStorageProvider)

    def copy_from(self, source: BaseStorageProvider, src_path: str, dest_path: str) -> None:
        """Copy a file of another local profile (atomically at the destination)."""
        if not isinstance(source, PosixFileStorageProvider):
            super().copy_from(source, src_path, dest_path)
            return
        self._copy_one(source, src_path, dest_path)

    def _copy_one(self, source: PosixFileStorageProvider, src_path: str, dest_path: str) -> None:
        error = self.copy_many_from(source, [(src_path, dest_path)])[0]
        if error is not None:
            raise error

    def copy_many_from(
        self, source: PosixFileStorageProvider, pairs: Sequence[tuple[str, str]]
    ) -> list[BaseException | None]:
        """Copy files ``(source key, key here)`` of a local profile (or this one), each atomically.

        The fast path of local syncs: each directory of the batch is resolved (confined to
        its ``base_path``) and opened once, missing target directories are created once per
        provider, and each file is opened relative to its directory, copied in the kernel
        (``copy_file_range``/``sendfile``) into a temp file there and renamed over the
        target. A final component that is a symlink is read through the checked slow path.

        Returns:
            Per pair, ``None`` when copied, else its error (the other pairs still run).
        """
        return copy_many(self, source, pairs)

    def open_dir(self, rel_dir: str, create: bool) -> int:
        """An fd of directory ``rel_dir`` (``""``: the base), refusing any escape; with
        ``create``, a missing directory is made (once, whichever thread asks first)."""
        full = self._base_join + rel_dir if rel_dir else self._base_path
        real = os.path.realpath(full)
        if real != self._base_real and not real.startswith(self._base_prefix):
            raise InvalidPathError(
                f"directory {rel_dir!r} resolves to {real!r}, outside base_path {self._base_path!r}"
            )
        try:
            return os.open(real, _DIR_FLAGS)
        except FileNotFoundError:
            if not create:
                raise
        with self._dir_lock:  # another thread may be creating it right now
            try:
                return os.open(real, _DIR_FLAGS)
            except FileNotFoundError:
                os.makedirs(real, exist_ok=True)
                self.directories_created += 1
        return self.open_dir(rel_dir, create=False)

    def reap_temp_files(self, prefix: str) -> int:
        """Remove temp files under ``prefix`` whose writer process (named in the file) is gone."""
        top = os.path.dirname(self._path(prefix + "x")) if prefix else self._base_real
        removed = 0
        for directory, _, files in os.walk(top):
            for name in files:
                if name.endswith(TEMP_SUFFIX) and not writer_alive(name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(directory, name))
                        removed += 1
        return removed

    def delete_object(self, path: str, if_match: str | None = None) -> None:
        """Delete one file; a missing file raises :class:`FileNotFoundError`."""
        full = self._path(path)
        try:
            if if_match is not None and _etag(os.stat(full)) != if_match:
                raise PreconditionFailedError(
                    f"{full}: if_match={if_match!r} does not match the current ETag"
                )
            os.unlink(full)
        except FileNotFoundError:
            raise self._missing(path)
        except IsADirectoryError:
            raise InvalidPathError(f"{full} is a directory; use delete(..., recursive=True)")

    # -------------------------------------------------------------- reads
    def get_object(self, path: str, byte_range: Range | None = None, *, if_match: str | None = None) -> bytes:
        full = self._resolve(path, check_final=False)[0]
        try:
            try:  # O_NOFOLLOW: a symlink as the final component takes the checked slow path
                fd = os.open(full, _READ_FLAGS | os.O_NOFOLLOW)
            except OSError as err:
                if err.errno != errno.ELOOP:
                    raise
                fd = os.open(self._resolve_slow(path, full, full.rpartition("/")[0] or "/")[0], _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(path)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise self._missing(path)
            if if_match is not None and _etag(st) != if_match:
                raise PreconditionFailedError(
                    f"{full}: if_match={if_match!r} does not match the current ETag"
                )
            if byte_range is not None:
                return os.pread(fd, byte_range.size, byte_range.offset)
            data = os.read(fd, st.st_size + 1) if st.st_size < _MAX_SINGLE_READ else b""
            if len(data) <= st.st_size:  # short read, a large file, or the file grew: read to EOF
                parts = [data]
                while chunk := os.read(fd, COPY_CHUNK):
                    parts.append(chunk)
                data = b"".join(parts)
            return data
        finally:
            os.close(fd)

    def download_file(self, remote_path: str, f: str | IO, metadata: ObjectMetadata | None = None) -> None:
        """Copy out to a local path (atomically) or into a binary file object."""
        src = self._path(remote_path)
        if not os.path.isfile(src):
            raise self._missing(remote_path)
        if isinstance(f, str):
            atomic_write(src, f)
        else:
            with open(src, "rb") as fh:
                shutil.copyfileobj(fh, f, COPY_CHUNK)

    def get_object_metadata(self, path: str, strict: bool = True) -> ObjectMetadata:
        """Metadata of a file; with ``strict=False`` a directory answers as ``type="directory"``."""
        full = self._path(path)
        key = normalize_key(path).rstrip("/")
        try:
            st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(path)
        if os.path.isdir(full):
            if strict:
                raise self._missing(path)
            return _metadata(key, st, is_dir=True)
        return _metadata(key, st)

    def is_file(self, path: str) -> bool:
        return os.path.isfile(self._path(path))

    def _list_objects(
        self,
        prefix: str,
        start_after: str | None = None,
        end_at: str | None = None,
        include_directories: bool = False,
    ) -> Iterator[ObjectMetadata]:
        """Files whose keys start with ``prefix``, in byte order of their keys.

        With ``include_directories=True`` only one level is listed (like a ``/`` delimiter)
        and sub-directories are yielded as ``type="directory"`` entries.
        """
        prefix = normalize_key(prefix) if prefix else ""
        head, _, _ = prefix.rpartition("/")
        directory = self._path(head)
        rel_dir = head + "/" if head else ""
        for key, st, is_dir in self._walk(
            directory, rel_dir, prefix, start_after, end_at, include_directories
        ):
            yield _metadata(key, st, is_dir)

    def scan_files(
        self, prefix: str, start_after: str | None = None, end_at: str | None = None
    ) -> Iterator[tuple[str, int, int]]:
        """``(key, size, mtime in ns)`` of the files :meth:`list_objects` lists (recursively), in
        the same order: the sync planner's listing, without building metadata objects."""
        for chunk in self.scan_chunks(prefix, start_after, end_at):
            yield from chunk

    def scan_chunks(
        self, prefix: str, start_after: str | None = None, end_at: str | None = None
    ) -> Iterator[list[tuple[str, int, int]]]:
        """:meth:`scan_files` a run of files of one directory at a time (each list non-empty,
        the lists in key order): the cheapest listing to iterate over many small files."""
        prefix = normalize_key(prefix) if prefix else ""
        head, _, _ = prefix.rpartition("/")
        rel_dir = head + "/" if head else ""
        yield from self._scan(self._path(head), rel_dir, prefix, start_after, end_at)

    def _scan(
        self, directory: str, rel_dir: str, prefix: str, start_after: str | None, end_at: str | None
    ) -> Iterator[list[tuple[str, int, int]]]:
        """The files under ``directory`` as :meth:`scan_chunks` yields them; the same entries and
        order as :meth:`_walk` (not one level), with the per-file checks a directory needs only."""
        try:
            with os.scandir(directory) as it:
                # Byte order of full keys: a directory sorts as "name/" so "a-b" < "a/" < "a0".
                entries = sorted([(e.name + "/" if e.is_dir() else e.name, e) for e in it])
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return
            raise
        # Per-file key checks only where this directory can hold keys outside prefix or bounds.
        check_prefix = not rel_dir.startswith(prefix)
        bounded = start_after is not None or end_at is not None
        files: list[tuple[str, int, int]] = []
        for name, entry in entries:
            if name[-1] == "/":
                sub = rel_dir + name
                if not (sub.startswith(prefix) or prefix.startswith(sub)):
                    continue
                if end_at is not None and sub > end_at and not end_at.startswith(sub):
                    break
                if start_after is not None and sub <= start_after and not start_after.startswith(sub):
                    continue
                if entry.is_symlink() and not self._inside(entry.path):
                    continue
                if files:
                    yield files
                    files = []
                yield from self._scan(entry.path, sub, prefix, start_after, end_at)
                continue
            if name.endswith(TEMP_SUFFIX):
                continue
            key = rel_dir + name
            if check_prefix and not key.startswith(prefix):
                continue
            if bounded:
                if end_at is not None and key > end_at:
                    break
                if start_after is not None and key <= start_after:
                    continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # removed while listing
                continue
            if entry.is_symlink() and not self._inside(entry.path):
                continue
            files.append((key, st.st_size, st.st_mtime_ns))
        if files:
            yield files

    def _walk(
        self,
        directory: str,
        rel_dir: str,
        prefix: str,
        start_after: str | None,
        end_at: str | None,
        one_level: bool,
    ) -> Iterator[tuple[str, os.stat_result, bool]]:
        """``(key, stat, is a directory)`` of the entries under ``directory`` in key order
        (directories only with ``one_level``, as one level)."""
        try:
            with os.scandir(directory) as it:
                entries = [(e, e.is_dir()) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return
            raise
        # Byte order of full keys: a directory sorts as "name/" so "a-b" < "a/" < "a0".
        entries.sort(key=lambda pair: pair[0].name + "/" if pair[1] else pair[0].name)
        for entry, is_dir in entries:
            key = rel_dir + entry.name
            if is_dir:
                sub = key + "/"
                if not (sub.startswith(prefix) or prefix.startswith(sub)):
                    continue
                if end_at is not None and sub > end_at and not end_at.startswith(sub):
                    return
                if start_after is not None and sub <= start_after and not start_after.startswith(sub):
                    continue
                if entry.is_symlink() and not self._inside(entry.path):
                    continue
                if one_level:
                    if key.startswith(prefix) and within_bounds(key, start_after, end_at):
                        yield key, entry.stat(), True
                    continue
                yield from self._walk(entry.path, sub, prefix, start_after, end_at, one_level)
            else:
                if not key.startswith(prefix) or entry.name.endswith(TEMP_SUFFIX):
                    continue
                if end_at is not None and key > end_at:
                    return
                if start_after is not None and key <= start_after:
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:  # removed while listing
                    continue
                if entry.is_symlink() and not self._inside(entry.path):
                    continue
                yield key, st, False

    def _inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self._base_real or real.startswith(self._base_prefix)
