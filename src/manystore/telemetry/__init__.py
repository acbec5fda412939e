"""Telemetry hooks. Clients accept a :class:`Telemetry` instance; OpenTelemetry export is optional.

Instances are process-local: they are not shared across ``fork()`` nor pickled.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["Telemetry", "TelemetryMode", "init"]


class TelemetryMode(enum.Enum):
    """How :func:`init` creates a :class:`Telemetry` object."""

    CLIENT = "client"
    LOCAL = "local"
    SERVER = "server"


class Telemetry:
    """Holds the meter/tracer providers built from a config's ``opentelemetry`` section."""

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}

    def __reduce__(self) -> Any:
        raise TypeError("Telemetry instances are process-local and cannot be pickled")


_instance: Telemetry | None = None


def init(
    mode: TelemetryMode = TelemetryMode.LOCAL, address: str | tuple[str, int] | None = None
) -> Telemetry:
    """Create (once) and return this process's :class:`Telemetry` instance."""
    global _instance
    if _instance is None:
        _instance = Telemetry()
    return _instance
