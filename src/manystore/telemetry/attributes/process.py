"""Attributes describing the current process."""

from __future__ import annotations

import enum
import multiprocessing
from collections.abc import Mapping
from typing import ClassVar, Literal

from .base import Attributes, AttributesProvider, check_choices

__all__ = ["ProcessAttributesProvider"]


class ProcessAttributesProvider(AttributesProvider):
    """Attributes from the current process: ``pid``, and ``name`` (the multiprocessing name).

    Args:
        attributes: Attribute name -> process attribute (``"pid"`` or ``"name"``).
    """

    scope: ClassVar[Literal["static", "process", "thread", "call"]] = "process"

    class ProcessAttribute(enum.Enum):
        """The process attributes available as option values."""

        #: The process ID.
        PID = "pid"
        #: The multiprocessing process name (``MainProcess``, ``Process-1``...).
        NAME = "name"

    def __init__(self, attributes: Mapping[str, str]) -> None:
        choices = [a.value for a in ProcessAttributesProvider.ProcessAttribute]
        self._attributes = {
            key: ProcessAttributesProvider.ProcessAttribute(value)
            for key, value in check_choices(attributes, "attributes", choices).items()
        }

    def attributes(self) -> Attributes:
        """The configured attributes of the calling process."""
        process = multiprocessing.current_process()
        return {key: getattr(process, attr.value) for key, attr in self._attributes.items()}
