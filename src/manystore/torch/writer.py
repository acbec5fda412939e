"""``Writer``: s3torchconnector's ``S3Writer`` on every backend — a streaming, all-or-nothing upload.

Bytes go out while they are written (object stores: a multipart upload of the profile's
part size; local paths: a temporary file beside the target). Nothing is visible until
:meth:`Writer.close`; leaving a ``with`` block by an exception, or calling
:meth:`Writer.abort`, abandons the upload: no object and no dangling multipart upload.
"""

from __future__ import annotations

import io
import os
import threading
from types import TracebackType
from typing import IO, Any

from ._ckpt_client import resolve, split_bucket_key

__all__ = ["S3Writer", "Writer"]


class Writer(io.BufferedIOBase):
    """A write-only binary stream that stores one object when closed.

    Args:
        url: Where the object goes (``msc://``, ``s3://``, ``gs://``, ``az://``, ``ais://``
            or a local path).
        region: AWS region (``s3://`` URLs only; as s3torchconnector).
        endpoint: S3 endpoint URL (``s3://`` URLs only).
        s3client_config: ``ClientConfig`` options (``s3://`` URLs only).

    Attributes:
        bucket: The URL's bucket or profile (``""`` for a local path).
        key: The key within it (the absolute path for a local path).
        url: The URL written.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        region: str | None = None,
        endpoint: str | None = None,
        s3client_config: Any = None,
    ) -> None:
        super().__init__()
        client, path = resolve(url, region, endpoint, s3client_config)
        self.url = str(url)
        self.bucket, self.key = split_bucket_key(self.url)
        self._stream: IO[bytes] = client.open(path, "wb")  # type: ignore[assignment]
        self._position = 0
        self._lock = threading.Lock()
        self._done = False

    def write(self, data: Any) -> int:
        """Send ``data`` (any bytes-like object); returns its length.

        Raises:
            ValueError: The writer is closed or aborted.
        """
        if self._done:
            raise ValueError(f"write to closed Writer for {self.url!r}")
        view = memoryview(data)
        n = view.nbytes
        self._stream.write(view if view.contiguous and view.format == "B" else view.cast("B"))
        self._position += n
        return n

    def close(self) -> None:
        """Complete the upload: the object appears atomically. Idempotent.

        Raises:
            Exception: The store refused the upload (the error of the store's client).
        """
        with self._lock:
            if self._done:
                return
            self._done = True
            try:
                self._stream.close()
            finally:
                super().close()

    def abort(self) -> None:
        """Abandon the upload: nothing is stored and no multipart upload is left behind."""
        with self._lock:
            if self._done:
                return
            self._done = True
            try:
                abort = getattr(self._stream, "abort", None)
                if abort is not None:
                    abort()
            finally:
                super().close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:  # an unclosed writer never publishes a partial object
        if not getattr(self, "_done", True):
            self.abort()

    @property
    def closed(self) -> bool:
        """Whether the writer was closed or aborted."""
        return self._done

    def flush(self) -> None:
        """Nothing to do: parts are sent as they fill; the object appears on :meth:`close`."""

    def readable(self) -> bool:
        """Always False."""
        return False

    def seekable(self) -> bool:
        """Always False: an upload only grows."""
        return False

    def writable(self) -> bool:
        """True until closed."""
        return not self._done

    def tell(self) -> int:
        """Bytes written so far."""
        return self._position

    def __repr__(self) -> str:
        return f"Writer({self.url!r})"


#: s3torchconnector's name.
S3Writer = Writer
