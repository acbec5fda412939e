"""Fixed attributes given in the config."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from .base import Attributes, AttributesProvider, check_mapping

__all__ = ["StaticAttributesProvider"]

_SCALARS = (str, bool, int, float)


class StaticAttributesProvider(AttributesProvider):
    """Attributes with fixed values (strings, booleans, numbers or lists of one of those).

    Args:
        attributes: Attribute name -> value.

    Raises:
        TypeError: A value is not a valid attribute value.
    """

    scope: ClassVar[Literal["static", "process", "thread", "call"]] = "static"

    def __init__(self, attributes: Mapping[str, Any] | None) -> None:
        self._attributes = check_mapping(attributes or {}, "attributes")
        for key, value in self._attributes.items():
            ok = isinstance(value, _SCALARS) or (
                isinstance(value, Sequence)
                and not isinstance(value, str)
                and all(isinstance(v, _SCALARS) for v in value)
            )
            if not ok:
                raise TypeError(
                    f"attributes.{key}: expected a string, boolean, number or list of them, got {value!r}"
                )

    def attributes(self) -> Attributes:
        """A copy of the configured attributes."""
        return copy.deepcopy(self._attributes)
