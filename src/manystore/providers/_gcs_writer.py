"""The GCS provider's streaming writer (a resumable upload), split out of :mod:`.gcs`."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ._gcs_errors import translate_error as _translate

if TYPE_CHECKING:
    from .gcs import GoogleStorageProvider

__all__ = ["GCSWriter"]


class GCSWriter:
    """A resumable upload: chunks are sent while written; the object appears on ``close``."""

    def __init__(self, provider: GoogleStorageProvider, blob: Any, url: str, retry: Any) -> None:
        self._provider, self._url = provider, url
        self._raw = blob.open("wb", chunk_size=provider._chunksize, retry=retry, ignore_flush=True)
        self._done = False

    def write(self, data: Any) -> int:
        try:
            self._raw.write(data)
        except Exception as err:
            self.abort()
            raise _translate(err, self._url)
        return len(memoryview(data))

    def close(self) -> None:
        if self._done:
            return
        try:
            self._raw.close()
        except Exception as err:
            self.abort()
            raise _translate(err, self._url)
        self._done = True

    def abort(self) -> None:
        """Cancel the resumable session (DELETE on its URL) so no object is ever created."""
        if self._done:
            return
        self._done = True
        inner = getattr(self._raw, "raw", self._raw)  # BufferedWriter -> BlobWriter
        started = getattr(inner, "_upload_and_transport", None)
        if started:
            upload, transport = started
            with contextlib.suppress(Exception):
                transport.request("DELETE", upload.resumable_url, timeout=self._provider._timeout)
        with contextlib.suppress(Exception):
            inner._upload_and_transport = None
            # BlobWriter.close() (also run when it is collected) uploads whatever its buffer
            # holds while the buffer is open: a closed buffer means nothing is ever created.
            inner._buffer.close()
