"""Attribute providers: extra labels attached to every storage-operation metric.

Each provider is configured under ``opentelemetry.metrics.attributes`` as
``{type: <name>, options: {attributes: {...}}}``; the built-in ``type`` names are
``environment_variables``, ``host``, ``msc_config``, ``process``, ``static`` and ``thread``.
"""

from __future__ import annotations

from .base import AttributesProvider, collect_attributes

__all__ = ["ATTRIBUTES_PROVIDERS", "AttributesProvider", "collect_attributes"]

#: Config ``type`` name -> ``module:Class`` of the built-in attribute providers.
ATTRIBUTES_PROVIDERS: dict[str, str] = {
    "environment_variables": (
        "manystore.telemetry.attributes.environment_variables:EnvironmentVariablesAttributesProvider"
    ),
    "host": "manystore.telemetry.attributes.host:HostAttributesProvider",
    "msc_config": "manystore.telemetry.attributes.msc_config:MSCConfigAttributesProvider",
    "process": "manystore.telemetry.attributes.process:ProcessAttributesProvider",
    "static": "manystore.telemetry.attributes.static:StaticAttributesProvider",
    "thread": "manystore.telemetry.attributes.thread:ThreadAttributesProvider",
}
