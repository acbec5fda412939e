"""Attributes read from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar, Literal

from .base import Attributes, AttributesProvider, check_mapping

__all__ = ["EnvironmentVariablesAttributesProvider"]


class EnvironmentVariablesAttributesProvider(AttributesProvider):
    """Attributes whose values are environment variables (unset variables are left out).

    The environment is read once per process (again after a fork), not on every operation.

    Args:
        attributes: Attribute name -> environment variable name.
    """

    scope: ClassVar[Literal["static", "process", "thread", "call"]] = "process"

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self._attributes = check_mapping(attributes, "attributes")
        for key, var in self._attributes.items():
            if not isinstance(var, str):
                raise TypeError(f"attributes.{key}: expected an environment variable name, got {var!r}")

    def attributes(self) -> Attributes:
        """The attributes whose variables are set."""
        return {key: os.environ[var] for key, var in self._attributes.items() if var in os.environ}
