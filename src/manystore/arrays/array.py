"""``ArrayInterface``: numpy arrays stored as cottoncandy stores them (raw buffers, ``.npy``)."""

from __future__ import annotations

from .basic import BasicInterface
from .dask import DaskMixin
from .groups import GroupMixin
from .sparse import SparseMixin


class ArrayInterface(DaskMixin, SparseMixin, GroupMixin, BasicInterface):
    """cottoncandy's array interface: raw and ``.npy`` arrays, dask arrays, sparse matrices, groups."""
