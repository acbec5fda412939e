"""``BasicInterface``: cottoncandy's object calls (upload/download, json, pickle, sizes)."""

from __future__ import annotations

from ._base import InterfaceBase


class BasicInterface(InterfaceBase):
    """cottoncandy's basic interface: objects, JSON and pickles under a key prefix."""
