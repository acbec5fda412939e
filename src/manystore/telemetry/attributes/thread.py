"""Attributes describing the calling thread."""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from typing import ClassVar, Literal

from .base import Attributes, AttributesProvider, check_choices

__all__ = ["ThreadAttributesProvider"]


class ThreadAttributesProvider(AttributesProvider):
    """Attributes from the calling thread: ``ident``, ``native_id`` or ``name``.

    Args:
        attributes: Attribute name -> thread attribute.
    """

    scope: ClassVar[Literal["static", "process", "thread", "call"]] = "thread"

    class ThreadAttribute(enum.Enum):
        """The thread attributes available as option values."""

        #: Python's thread identifier.
        IDENT = "ident"
        #: The operating system's thread ID.
        NATIVE_ID = "native_id"
        #: The thread's name.
        NAME = "name"

    def __init__(self, attributes: Mapping[str, str]) -> None:
        choices = [a.value for a in ThreadAttributesProvider.ThreadAttribute]
        self._attributes = {
            key: ThreadAttributesProvider.ThreadAttribute(value)
            for key, value in check_choices(attributes, "attributes", choices).items()
        }

    def attributes(self) -> Attributes:
        """The configured attributes of the calling thread."""
        thread = threading.current_thread()
        return {key: getattr(thread, attr.value) for key, attr in self._attributes.items()}
