"""Attributes describing the host."""

from __future__ import annotations

import enum
import socket
from collections.abc import Mapping
from typing import ClassVar, Literal

from .base import Attributes, AttributesProvider, check_choices

__all__ = ["HostAttributesProvider"]


class HostAttributesProvider(AttributesProvider):
    """Attributes from the host: ``name`` is the host name.

    Args:
        attributes: Attribute name -> host attribute (``"name"``).
    """

    scope: ClassVar[Literal["static", "process", "thread", "call"]] = "process"

    class HostAttribute(enum.Enum):
        """The host attributes available as option values."""

        #: The host name (``socket.gethostname()``).
        NAME = "name"

    def __init__(self, attributes: Mapping[str, str]) -> None:
        choices = [a.value for a in HostAttributesProvider.HostAttribute]
        self._attributes = {
            key: HostAttributesProvider.HostAttribute(value)
            for key, value in check_choices(attributes, "attributes", choices).items()
        }

    def attributes(self) -> Attributes:
        """The configured host attributes."""
        return {key: socket.gethostname() for key in self._attributes}
