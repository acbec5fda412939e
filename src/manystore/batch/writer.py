"""``ObjectWriter`` and ``ObjectFileWriter``: whole writes, custom properties, and AIS-style appends.

Appends on every backend
------------------------
AIStore's ``append_content(content, handle, flush)`` accumulates parts that stay invisible
until a flush makes the object (its old content followed by the parts) visible at once.
Here each part is stored as a hidden object of the same profile::

    .manystore-append/<digest of the object key>-<session id>/part-00000000
    .manystore-append/<digest of the object key>-<session id>/part-00000001 ...

The handle returned to the caller is ``"<session id>.<parts so far>"``, so the writer keeps
no state between calls (any process may continue an append with the handle). A flush:

1. records the object's current ETag (or its absence) in ``seal.json`` next to the parts;
2. writes the object anew with one streamed, atomic write (multipart on object stores, a
   renamed temp file on POSIX): its current bytes read pinned to that ETag, then the parts
   in order — readers see the old object until this write completes, then the new one;
3. deletes the parts and the seal.

Crash safety: before step 2 completes, the object is untouched and the parts remain; a
flush retried with the same handle redoes it. If a crash falls between steps 2 and 3, the
retried flush finds the seal and an object whose ETag differs from the recorded one, so
it only cleans up (it never appends the parts twice). A handle that is never flushed
leaves its parts behind; :meth:`ObjectWriter.discard_append` removes them. Bucket listings
of this package hide ``.manystore-append/``; a raw listing of the profile shows it.

Each flush rewrites the whole object, so many flushes of a large object cost quadratic
bytes: append freely, flush rarely.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
from typing import TYPE_CHECKING, Any

from ..types import Range

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["APPEND_DIR", "ObjectFileWriter", "ObjectWriter"]

#: Profile-relative directory of the staged append parts.
APPEND_DIR = ".manystore-append/"
#: ``ObjectFileWriter`` stages its writes as parts of at least this many bytes.
FILE_PART_SIZE = 8 << 20
#: Bytes per ranged GET when copying the old content into the flushed object.
_COPY_BLOCK = 8 << 20
_HANDLE = re.compile(r"^([0-9a-f]{32})\.(\d+)$")


class ObjectWriter:
    """Writes one object's content and properties (as the SDK's ``ObjectWriter``).

    Args:
        client: The profile's client.
        key: The object's key in the profile.
        url: The object's URL (for messages).
    """

    def __init__(self, client: StorageClient, key: str, url: str) -> None:
        self._client, self._key, self._url = client, key, url

    # ------------------------------------------------------------ whole writes
    def put_content(self, content: bytes) -> None:
        """Store ``content`` as the object (atomically; replaces any old content)."""
        self._client.write(self._key, bytes(content))

    def put_file(self, path: str | os.PathLike[str]) -> None:
        """Store the local file at ``path`` as the object (streamed; multipart when large).

        Raises:
            ValueError: ``path`` is not a regular file.
        """
        local = os.fspath(path)
        if not os.path.isfile(local):
            raise ValueError(f"put_file: {local!r} is not a file; expected the path of a local file")
        self._client.upload_file(self._key, local)

    def set_custom_props(self, custom_metadata: dict[str, str], replace_existing: bool = False) -> None:
        """Set user metadata on the object (merged into what it has, or replacing it).

        Object stores cannot change metadata in place: the object is rewritten with its
        bytes read pinned to its current ETag, so a concurrent change fails the call.

        Raises:
            NotImplementedError: A POSIX profile (it keeps no user metadata).
            FileNotFoundError: The object does not exist.
            PreconditionFailedError: The object changed while being rewritten.
        """
        if self._client.get_posix_path(self._key) is not None:
            raise NotImplementedError(
                f"set_custom_props on {self._url}: POSIX profiles keep no user metadata; "
                "expected an object-store profile"
            )
        meta = self._client.info(self._key)
        attributes = {} if replace_existing else {str(k): str(v) for k, v in (meta.metadata or {}).items()}
        attributes.update({str(k): str(v) for k, v in custom_metadata.items()})
        data = self._client._io.get_range(self._key, None, meta.etag)
        self._client.write(self._key, data, attributes)

    # ----------------------------------------------------------------- appends
    def _staging(self, session: str) -> str:
        digest = hashlib.sha1(self._key.encode()).hexdigest()[:16]
        return f"{APPEND_DIR}{digest}-{session}/"

    def _parse(self, handle: str) -> tuple[str, int]:
        match = _HANDLE.match(handle)
        if match is None:
            raise ValueError(
                f"append handle {handle!r} for {self._url}: expected '' or a handle returned by append_content"
            )
        return match.group(1), int(match.group(2))

    def append_content(self, content: bytes, handle: str = "", flush: bool = False) -> str:
        """Stage ``content`` after what was appended under ``handle``; with ``flush``, publish.

        Args:
            content: Bytes to append (may be empty, e.g. for a bare flush).
            handle: ``""`` to start an append session, else the handle the last call returned.
            flush: Make the object (its old content followed by every staged part) visible now.

        Returns:
            The handle for the next call; ``""`` after a flush.

        Raises:
            ValueError: ``handle`` is malformed.
            FileNotFoundError: A staged part of ``handle`` is missing (flushed or discarded already).
        """
        session, count = self._parse(handle) if handle else (uuid.uuid4().hex, 0)
        staging = self._staging(session)
        if content:
            self._client.write(f"{staging}part-{count:08d}", bytes(content))
            count += 1
        if not flush:
            return f"{session}.{count}"
        if count:
            self._flush(staging, count)
        return ""

    def _flush(self, staging: str, count: int) -> None:
        client, seal = self._client, f"{staging}seal.json"
        try:
            recorded = json.loads(client.read(seal))
        except FileNotFoundError:
            recorded = None
        current = self._current_etag()
        if recorded is not None:
            if recorded["base"] != current:  # an earlier flush of this handle already published
                self._discard(staging)
                return
            base, count = recorded["base"], int(recorded["parts"])
        else:
            base = current
            client.write(seal, json.dumps({"base": base, "parts": count, "key": self._key}).encode())
        for i in range(count):  # fail before touching the object if a part is gone
            if not client.is_file(f"{staging}part-{i:08d}"):
                raise FileNotFoundError(f"append to {self._url}: staged part {i} of {count} is missing")
        with client.open(self._key, "wb") as out:
            if base is not None:
                size = client.info(self._key).content_length
                for offset in range(0, size, _COPY_BLOCK):
                    span = Range(offset, min(_COPY_BLOCK, size - offset))
                    out.write(client._io.get_range(self._key, span, base or None))
            for i in range(count):
                out.write(client.read(f"{staging}part-{i:08d}"))
        self._discard(staging)

    def _current_etag(self) -> str | None:
        try:
            return self._client.info(self._key).etag or ""
        except FileNotFoundError:
            return None

    def _discard(self, staging: str) -> None:
        try:
            self._client.delete(staging, recursive=True)
        except FileNotFoundError:
            pass

    def discard_append(self, handle: str) -> None:
        """Drop the parts staged under ``handle`` without publishing them.

        Raises:
            ValueError: ``handle`` is malformed.
        """
        session, _ = self._parse(handle)
        self._discard(self._staging(session))

    def as_file(self, mode: str = "a") -> ObjectFileWriter:
        """A writable file over the object: ``"a"`` appends to it, ``"w"`` empties it first.

        Raises:
            ValueError: ``mode`` is not ``"w"`` or ``"a"``.
        """
        if mode not in ("w", "a"):
            raise ValueError(f"ObjectWriter.as_file mode {mode!r}: expected 'w' or 'a'")
        return ObjectFileWriter(self, mode)


class ObjectFileWriter(io.BufferedIOBase):
    """A file whose writes are appended to an object (as the SDK's ``ObjectFileWriter``).

    Writes are buffered and staged as append parts of at least :data:`FILE_PART_SIZE`
    bytes; :meth:`flush` (and :meth:`close`) publish everything written so far at once.

    Args:
        obj_writer: The object's writer.
        mode: ``"w"`` stores an empty object first (truncating it); ``"a"`` keeps its content.
    """

    def __init__(self, obj_writer: ObjectWriter, mode: str) -> None:
        super().__init__()
        if mode not in ("w", "a"):
            raise ValueError(f"ObjectFileWriter mode {mode!r}: expected 'w' or 'a'")
        self._writer, self._mode = obj_writer, mode
        self._handle = ""
        self._pending = bytearray()
        if mode == "w":
            obj_writer.put_content(b"")

    def writable(self) -> bool:
        return True

    def write(self, buffer: Any) -> int:
        """Buffer ``buffer``; full parts are staged (not yet visible)."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        data = bytes(buffer)
        self._pending += data
        if len(self._pending) >= FILE_PART_SIZE:
            self._handle = self._writer.append_content(bytes(self._pending), self._handle)
            self._pending.clear()
        return len(data)

    def flush(self) -> None:
        """Publish everything written so far (the object gets it at once)."""
        if self.closed:
            return
        if self._pending or self._handle:
            self._writer.append_content(bytes(self._pending), self._handle, flush=True)
            self._pending.clear()
            self._handle = ""

    def close(self) -> None:
        """Publish what is left and close."""
        if not self.closed:
            try:
                self.flush()
            finally:
                super().close()
