"""``FileSystemInterface``: cottoncandy's file-system calls (ls, glob, cp, mv, rm, browser)."""

from __future__ import annotations

from .basic import BasicInterface


class FileSystemInterface(BasicInterface):
    """cottoncandy's file-system interface: listing, copying, moving and removing objects."""
