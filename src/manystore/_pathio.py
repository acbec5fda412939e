"""File queries and whole-file I/O of :class:`manystore.pathlib.MultiStoragePath`, with MSC
1.3.1's signatures: ``is_file``/``is_dir`` (``strict``), ``open`` (``buffering``,
``encoding``, ``errors``, ``newline``), ``read_text``/``write_text`` and ``touch``.
"""

from __future__ import annotations

import errno
import io
import os
import pathlib
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import StorageClient

__all__ = ["PathIOMethods"]


class PathIOMethods:
    """Mixin of :class:`~manystore.pathlib.MultiStoragePath` (see the module documentation)."""

    _url: str

    if TYPE_CHECKING:  # provided by MultiStoragePath

        def _resolve(self) -> tuple[StorageClient, str]: ...

        @staticmethod
        def _local_path(client: StorageClient, key: str) -> str | None: ...

        def _file_key(self) -> tuple[StorageClient, str]: ...

        def read_bytes(self) -> bytes: ...

        def write_bytes(self, data: bytes | bytearray | memoryview) -> int: ...

    # ------------------------------------------------------------ queries
    def is_file(self, strict: bool = True) -> bool:
        """True if a file (an object) exists at this path.

        Args:
            strict: As in MSC 1.3.1: with a metadata provider (a manifest), ``False`` also
                counts files written but not yet committed (and not those deleted but not yet
                committed); ``True`` looks at committed entries only. Without a metadata
                provider it changes nothing.
        """
        client, key = self._resolve()
        if not key:
            return False
        mp = client.config.metadata_provider
        if mp is not None and not strict:
            try:
                return mp.get_object_metadata(key, include_pending=True).type == "file"
            except FileNotFoundError:
                return False
        return client.is_file(key)

    def is_dir(self, strict: bool = True) -> bool:
        """True if this is a directory.

        On object stores: True if at least one object's key starts with ``key/``. An object
        store key can be a file and a directory at once.

        Args:
            strict: As :meth:`is_file`: ``False`` also counts uncommitted files of the
                metadata provider (a manifest lists them; another provider is asked for
                ``key/`` with ``include_pending=True``, as MSC 1.3.1 does).
        """
        client, key = self._resolve()
        local = self._local_path(client, key)
        if local is not None:
            return os.path.isdir(local)
        mp = client.config.metadata_provider
        if mp is None or strict:
            return not client.is_empty(key)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        from .providers.manifest_metadata import ManifestMetadataProvider

        if isinstance(mp, ManifestMetadataProvider):
            return next(iter(mp.list_objects(prefix, include_pending=True)), None) is not None
        try:
            return mp.get_object_metadata(prefix, include_pending=True).type == "directory"
        except FileNotFoundError:
            return not client.is_empty(key)

    # ---------------------------------------------------------- reading/writing
    def open(
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        **kwargs: Any,
    ) -> IO[Any]:
        """Open the file, as :func:`open`; other keywords as :meth:`manystore.StorageClient.open`.

        Args:
            mode: ``r``, ``rb``, ``w``, ``wb``, ``a`` or ``ab`` (``t`` is accepted and dropped).
            buffering: Buffer size (local files, as :func:`open`).
            encoding: Text modes: the encoding (default UTF-8).
            errors: Text modes: how encoding errors are handled (default ``strict``).
            newline: Text modes: newline translation, as :func:`open` (default: universal
                newlines when reading, ``\\n`` kept when writing).
            **kwargs: ``atomic``, ``memory_load_limit``, ``prefetch_file``, ``attributes``...

        Object-store writes become visible on ``close()``, all at once.

        Raises:
            ValueError: ``encoding``, ``errors`` or ``newline`` with a binary mode.
        """
        client, key = self._file_key()
        mode = mode.replace("t", "") if "t" in mode and "b" not in mode else mode
        if "b" in mode:
            for name, value in (("encoding", encoding), ("errors", errors), ("newline", newline)):
                if value is not None:
                    raise ValueError(
                        f"{self._url}: binary mode {mode!r} doesn't take an {name} argument ({value!r})"
                    )
            return client.open(key, mode, buffering, **kwargs)  # type: ignore[return-value]
        if errors is None and newline is None:
            return client.open(key, mode, buffering, encoding, **kwargs)  # type: ignore[return-value]
        binary = client.open(key, mode + "b", buffering, **kwargs)
        return io.TextIOWrapper(binary, encoding or "utf-8", errors, newline)

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The file's contents decoded (newlines are not translated).

        Raises:
            FileNotFoundError: No file here.
        """
        return self.read_bytes().decode(encoding, errors)

    def write_text(
        self, data: str, encoding: str = "utf-8", errors: str = "strict", newline: str | None = None
    ) -> int:
        """Encode ``data`` and write it; returns the character count.

        A ``newline`` other than None/``""`` replaces each ``"\\n"`` when writing.

        Raises:
            TypeError: ``data`` is not a ``str``.
        """
        if not isinstance(data, str):
            raise TypeError(f"data must be str, not {type(data).__name__}")
        text = data.replace("\n", newline) if newline else data
        self.write_bytes(text.encode(encoding, errors))
        return len(data)

    def touch(self, mode: int = 0o666, exist_ok: bool = False) -> None:
        """Create an empty file here.

        A local path behaves as :meth:`pathlib.Path.touch` (``mode`` masked by the umask on
        creation; an existing file gets the current mtime), except that missing parent
        directories are created, as :meth:`write_bytes` does. On object
        stores an empty object is written; ``mode`` does not apply there (objects have no
        permission bits), and an existing object is left as it is (its mtime cannot change
        without rewriting it).

        Raises:
            FileExistsError: ``exist_ok`` is False and the file exists (also on object stores,
                where MSC 1.3.1 only logs a warning).
        """
        client, key = self._file_key()
        local = self._local_path(client, key)
        if local is not None:
            os.makedirs(os.path.dirname(local), exist_ok=True)  # as write_bytes; object stores need none
            pathlib.Path(local).touch(mode, exist_ok)
            return
        if client.is_file(key):
            if not exist_ok:
                raise FileExistsError(errno.EEXIST, "file exists", self._url)
            return
        client.write(key, b"")
