"""The attribute-provider interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

__all__ = ["AttributeValue", "Attributes", "AttributesProvider", "collect_attributes"]

#: An OpenTelemetry attribute value (a scalar or a homogeneous sequence of scalars).
AttributeValue = Any
#: An OpenTelemetry attribute mapping.
Attributes = Mapping[str, AttributeValue]


class AttributesProvider(ABC):
    """Supplies attributes (labels) for storage-operation metrics.

    Attributes:
        scope: How long one answer of :meth:`attributes` stays valid, which lets the
            instrumentation cache it: ``"static"`` (for the life of the provider),
            ``"process"`` (until a fork), ``"thread"`` (per thread) or ``"call"``
            (asked on every operation; the default for user-defined providers).
    """

    scope: ClassVar[Literal["static", "process", "thread", "call"]] = "call"

    @abstractmethod
    def attributes(self) -> Attributes | None:
        """The attributes to attach now."""


def collect_attributes(attributes_providers: Sequence[AttributesProvider]) -> dict[str, AttributeValue]:
    """Merge the attributes of several providers; a later provider wins on a shared key.

    Args:
        attributes_providers: The providers, in config order.

    Returns:
        The merged attributes (a new dict).
    """
    merged: dict[str, AttributeValue] = {}
    for provider in attributes_providers:
        attrs = provider.attributes()
        if attrs:
            merged.update(attrs)
    return merged


def check_mapping(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a dict of str keys, or :class:`TypeError` naming ``what``."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"{what}: expected a mapping of attribute name to value, got {value!r}")
    return dict(value)


def check_choices(value: Any, what: str, choices: Sequence[str]) -> dict[str, str]:
    """``value`` as a dict whose values are among ``choices``, or :class:`ValueError`."""
    mapping = check_mapping(value, what)
    for key, item in mapping.items():
        if item not in choices:
            raise ValueError(f"{what}.{key}: unknown value {item!r}; expected one of {list(choices)}")
    return mapping
