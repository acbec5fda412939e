"""Nested dicts of arrays (``dict2cloud`` / ``cloud2dict`` / ``cloud2dataset``)."""

from __future__ import annotations


class GroupMixin:
    """Groups of arrays for :class:`~manystore.arrays.array.ArrayInterface`."""
