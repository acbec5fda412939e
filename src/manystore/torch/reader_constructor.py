"""``ReaderConstructor`` (s3torchconnector's ``S3ReaderConstructor``): which reader a dataset hands out.

Every factory returns a callable ``constructor(bucket, key, get_object_info, get_stream)``
building a :class:`~manystore.torch.Reader` (see :mod:`manystore.torch._reader` for the
arguments).
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Any

from ._reader import RangedReader, SequentialReader

__all__ = ["ReaderConstructor", "S3ReaderConstructor"]

#: The seed's default ``max_gap_size`` of ``dcp_optimized`` (32 MiB).
DEFAULT_MAX_GAP_SIZE = 32 << 20
_DCP_MODULE = "manystore.torch._dcp_reader"


class ReaderConstructor:
    """Factories of reader constructors (the seed's ``S3ReaderConstructor``)."""

    @staticmethod
    def sequential() -> Any:
        """Readers that fetch the whole object on first read (the default; all access patterns).

        Example:
            >>> from manystore.torch import ReaderConstructor
            >>> ReaderConstructor.get_reader_type_string(ReaderConstructor.sequential())
            'sequential'
        """
        return partial(SequentialReader)

    @staticmethod
    def range_based(buffer_size: int | None = None) -> Any:
        """Readers that fetch only the ranges read, through a ``buffer_size`` buffer.

        Args:
            buffer_size: Buffer bytes (``None``: 8 MiB; ``0``: no buffer, one request per read).

        Raises:
            ValueError: ``buffer_size`` is negative or not an int.
        """
        if buffer_size is not None and (not isinstance(buffer_size, int) or buffer_size < 0):
            raise ValueError(
                f"range_based: invalid buffer_size {buffer_size!r}; expected an int >= 0 or None"
            )
        return partial(RangedReader, buffer_size=buffer_size)

    @staticmethod
    def dcp_optimized(max_gap_size: int | float = DEFAULT_MAX_GAP_SIZE) -> Any:
        """Readers for ``torch.distributed.checkpoint`` loads: coalesced, concurrent ranged GETs.

        Delegates to ``manystore.torch._dcp_reader.dcp_optimized(max_gap_size)``.

        Args:
            max_gap_size: Largest gap (bytes) between two needed ranges fetched as one request
                (``float("inf")``: always coalesce; ``0``: never).

        Raises:
            ValueError: ``max_gap_size`` is negative.
            ImportError: The DCP reader module is not available in this installation.
        """
        if max_gap_size < 0:
            raise ValueError(f"dcp_optimized: invalid max_gap_size {max_gap_size!r}; expected >= 0")
        try:
            module = importlib.import_module(_DCP_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name != _DCP_MODULE:
                raise
            raise ImportError(
                f"ReaderConstructor.dcp_optimized needs {_DCP_MODULE}.dcp_optimized, which this "
                "installation lacks"
            ) from exc
        return module.dcp_optimized(max_gap_size)

    @staticmethod
    def default() -> Any:
        """The default constructor: :meth:`sequential`."""
        return ReaderConstructor.sequential()

    @staticmethod
    def get_reader_type_string(constructor: Any) -> str:
        """``"sequential"``, ``"range_based"``, ``"dcp_optimized"`` or ``"unknown"`` for ``constructor``.

        ``None`` stands for :meth:`default`.
        """
        if constructor is None:
            return "sequential"
        if isinstance(constructor, partial):
            if constructor.func is SequentialReader:
                return "sequential"
            if constructor.func is RangedReader:
                return "range_based"
            return "unknown"
        module = type(constructor).__module__ or ""
        return "dcp_optimized" if module.startswith(_DCP_MODULE) else "unknown"


S3ReaderConstructor = ReaderConstructor
