"""Attributes computed from the configuration itself with JMESPath expressions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypedDict

from .base import Attributes, AttributesProvider, check_mapping

__all__ = ["MSCConfigAttributesProvider"]


class MSCConfigAttributesProvider(AttributesProvider):
    """Attributes taken from the config dict by JMESPath expressions (evaluated once).

    Besides JMESPath's own functions, ``hash(algorithm, value)`` returns the hex digest of
    a string (any :func:`hashlib.new` algorithm, e.g. ``sha3-256``) — use it to label by a
    value without exporting it. Requires the ``jmespath`` package.

    Args:
        attributes: Attribute name -> ``{"expression": "<JMESPath>"}``.
        config_dict: The configuration (passed by manystore, not written in the config).

    Raises:
        TypeError: An entry is not ``{"expression": str}``.
        ValueError: An expression does not parse.
    """

    scope: ClassVar[Literal["static", "process", "thread", "call"]] = "static"

    class AttributeValueOptions(TypedDict):
        """Options of one attribute."""

        #: The JMESPath expression evaluated against the config dict.
        expression: str

    def __init__(
        self, attributes: Mapping[str, AttributeValueOptions], config_dict: Mapping[str, Any]
    ) -> None:
        import jmespath
        import jmespath.exceptions
        import jmespath.functions

        class _Functions(jmespath.functions.Functions):
            @jmespath.functions.signature({"types": ["string"]}, {"types": ["string"]})
            def _func_hash(self, algorithm: str, value: str) -> str:
                return hashlib.new(algorithm, value.encode()).hexdigest()

        options = jmespath.Options(custom_functions=_Functions())
        values: dict[str, Any] = {}
        for key, spec in check_mapping(attributes, "attributes").items():
            if not isinstance(spec, Mapping) or not isinstance(spec.get("expression"), str) or len(spec) != 1:
                raise TypeError(f"attributes.{key}: expected {{expression: <JMESPath string>}}, got {spec!r}")
            try:
                value = jmespath.search(spec["expression"], dict(config_dict), options=options)
            except jmespath.exceptions.JMESPathError as exc:
                raise ValueError(f"attributes.{key}.expression: {spec['expression']!r}: {exc}") from None
            if value is not None:
                values[key] = value
        self._attributes = values

    def attributes(self) -> Attributes:
        """The values the expressions selected (``None`` results are left out)."""
        return dict(self._attributes)
