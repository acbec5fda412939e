"""cottoncandy's ``cottoncandy.interfaces`` module: the interface classes under their usual home.

``import manystore.arrays as cc`` then ``cc.interfaces.DefaultInterface(bucket, ACCESS_KEY,
SECRET_KEY, url)`` works as in cottoncandy (see :class:`~manystore.arrays._base.InterfaceBase`
for the constructor's two forms).
"""

from __future__ import annotations

from ._base import InterfaceBase as InterfaceObject
from .array import ArrayInterface
from .basic import BasicInterface
from .crypto import EncryptedInterface
from .fs import FileSystemInterface
from .interface import DefaultInterface

__all__ = [
    "ArrayInterface",
    "BasicInterface",
    "DefaultInterface",
    "EncryptedInterface",
    "FileSystemInterface",
    "InterfaceObject",
]
