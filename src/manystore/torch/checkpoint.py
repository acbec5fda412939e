"""``Checkpoint``: s3torchconnector's ``S3Checkpoint`` on every backend, for ``torch.save``/``torch.load``.

Example::

    checkpoint = Checkpoint()                       # or Checkpoint(region, endpoint=...) for s3://
    with checkpoint.writer("msc://ckpt/epoch-3.pt") as f:
        torch.save(model.state_dict(), f)           # streamed; visible only on close
    state = torch.load(checkpoint.reader("msc://ckpt/epoch-3.pt"))
"""

from __future__ import annotations

import os
from typing import Any

from ._ckpt_client import resolve
from ._dcp_reader import ObjectReader
from .writer import Writer

__all__ = ["Checkpoint", "S3Checkpoint"]


class Checkpoint:
    """Readers and writers of checkpoint objects for ``torch.load``/``torch.save``.

    Args:
        region: AWS region of ``s3://`` URLs (s3torchconnector's first argument; other
            URLs take their settings from their profile and refuse it).
        endpoint: S3 endpoint URL of ``s3://`` URLs.
        s3client_config: ``ClientConfig`` options of ``s3://`` URLs (part size, retries...).

    Raises:
        TypeError, ValueError: ``s3client_config`` is not a valid client configuration.
    """

    def __init__(
        self,
        region: str | None = None,
        endpoint: str | None = None,
        s3client_config: Any = None,
    ) -> None:
        self.region = region
        self.endpoint = endpoint
        self.s3client_config = s3client_config
        if s3client_config is not None:  # refuse a bad configuration now, not at the first URL
            from ._ckpt_client import client_options

            client_options(s3client_config)

    def reader(self, url: str | os.PathLike[str]) -> ObjectReader:
        """A seekable binary stream of the object at ``url``, fetched on first read.

        Raises:
            ValueError: ``region``/``endpoint``/``s3client_config`` were given and ``url``
                is not an ``s3://`` URL.
        """
        return ObjectReader(url, self.region, self.endpoint, self.s3client_config)

    def writer(self, url: str | os.PathLike[str]) -> Writer:
        """A write-only stream that stores the object at ``url`` when closed (see :class:`Writer`).

        Raises:
            ValueError: ``region``/``endpoint``/``s3client_config`` were given and ``url``
                is not an ``s3://`` URL.
        """
        return Writer(url, self.region, self.endpoint, self.s3client_config)

    def exists(self, url: str | os.PathLike[str]) -> bool:
        """Whether an object is stored at ``url``."""
        client, path = resolve(url, self.region, self.endpoint, self.s3client_config)
        return client.is_file(path)

    def __repr__(self) -> str:
        return f"Checkpoint(region={self.region!r}, endpoint={self.endpoint!r})"


#: s3torchconnector's name.
S3Checkpoint = Checkpoint
