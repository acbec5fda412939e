"""The ``opentelemetry`` config section: validation, exporters and attribute providers.

Validation imports nothing from OpenTelemetry except, when an exporter is configured, the
exporter's class (to check its option names); building a meter provider imports the SDK.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .attributes import ATTRIBUTES_PROVIDERS
from .attributes.base import AttributesProvider

__all__ = [
    "METRICS_EXPORTERS",
    "build_attributes_providers",
    "build_meter_provider",
    "validate_opentelemetry",
]

logger = logging.getLogger(__name__)

#: Exporter ``type`` -> ``module:Class``; ``prometheus`` is a pull endpoint (see :func:`build_meter_provider`).
METRICS_EXPORTERS: dict[str, str] = {
    "console": "opentelemetry.sdk.metrics.export:ConsoleMetricExporter",
    "otlp": "opentelemetry.exporter.otlp.proto.http.metric_exporter:OTLPMetricExporter",
    "prometheus": "opentelemetry.exporter.prometheus:PrometheusMetricReader",
}
_PROMETHEUS_OPTIONS = {"host": str, "port": int, "prefix": str, "disable_target_info": bool}
_READER_OPTIONS = (
    "collect_interval_millis",
    "collect_timeout_millis",
    "export_interval_millis",
    "export_timeout_millis",
)
_METRICS_KEYS = ("attributes", "exporter", "reader")


def _load(spec: str, where: str) -> Any:
    module_name, _, name = spec.partition(":") if ":" in spec else spec.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot import {spec!r}: {exc}") from None


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
    return dict(value)


def _check_keys(section: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys: {list(allowed)}")


def _exporter_class(type_name: Any, where: str) -> Any:
    if not isinstance(type_name, str) or not type_name:
        raise ConfigError(f"{where}.type: expected an exporter name or dotted class path, got {type_name!r}")
    if type_name not in METRICS_EXPORTERS and "." not in type_name:
        raise ConfigError(
            f"{where}.type: unknown exporter {type_name!r}; expected one of {sorted(METRICS_EXPORTERS)} "
            "or a dotted class path"
        )
    return _load(METRICS_EXPORTERS.get(type_name, type_name), f"{where}.type")


def validate_opentelemetry(
    section: Any, config_dict: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """Check an ``opentelemetry`` section; returns its ``metrics`` part (``None`` when absent).

    Args:
        section: The section's value.
        config_dict: The whole config (for ``msc_config`` attribute providers).

    Raises:
        ConfigError: Any structural problem, an unknown exporter or attribute provider, or bad
            options; the message names the key path.
    """
    where = "opentelemetry"
    otel = _mapping(section, where)
    _check_keys(otel, ("metrics",), where)
    if otel.get("metrics") is None:
        return None
    where += ".metrics"
    metrics = _mapping(otel["metrics"], where)
    _check_keys(metrics, _METRICS_KEYS, where)
    if "exporter" not in metrics:
        raise ConfigError(
            f"{where}.exporter: required (one of {sorted(METRICS_EXPORTERS)}) when metrics are on"
        )
    exporter = _mapping(metrics["exporter"], f"{where}.exporter")
    _check_keys(exporter, ("type", "options"), f"{where}.exporter")
    options = _mapping(exporter.get("options") or {}, f"{where}.exporter.options")
    if exporter.get("type") == "prometheus":
        for key, value in options.items():
            expected = _PROMETHEUS_OPTIONS.get(key)
            if expected is None:
                raise ConfigError(
                    f"{where}.exporter.options.{key}: unknown option; allowed: {sorted(_PROMETHEUS_OPTIONS)}"
                )
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(
                    f"{where}.exporter.options.{key}: expected {expected.__name__}, got {value!r}"
                )
        port = options.get("port", 9464)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where}.exporter.options.port: expected 0..65535, got {port!r}")
    else:
        cls = _exporter_class(exporter.get("type"), f"{where}.exporter")
        params = inspect.signature(cls).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(options) - set(params))
            if unknown:
                raise ConfigError(
                    f"{where}.exporter.options: unknown option(s) {unknown} for {exporter['type']!r}; "
                    f"allowed: {sorted(params)}"
                )
    reader = _mapping(metrics.get("reader") or {}, f"{where}.reader")
    _check_keys(reader, ("options",), f"{where}.reader")
    for key, value in _mapping(reader.get("options") or {}, f"{where}.reader.options").items():
        if key not in _READER_OPTIONS:
            raise ConfigError(
                f"{where}.reader.options.{key}: unknown option; allowed: {list(_READER_OPTIONS)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ConfigError(
                f"{where}.reader.options.{key}: expected a positive number of ms, got {value!r}"
            )
    build_attributes_providers(metrics, config_dict or {})
    return metrics


def build_attributes_providers(
    metrics: Mapping[str, Any], config_dict: Mapping[str, Any]
) -> list[AttributesProvider]:
    """The attribute providers of a ``metrics`` section, in config order.

    Raises:
        ConfigError: Not a list, an unknown ``type`` or bad ``options`` (naming the entry).
    """
    where = "opentelemetry.metrics.attributes"
    entries = metrics.get("attributes") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list of {{type, options}}, got {entries!r}")
    providers: list[AttributesProvider] = []
    for i, entry in enumerate(entries):
        here = f"{where}[{i}]"
        entry = _mapping(entry, here)
        _check_keys(entry, ("type", "options"), here)
        type_name = entry.get("type")
        if not isinstance(type_name, str) or (type_name not in ATTRIBUTES_PROVIDERS and "." not in type_name):
            raise ConfigError(
                f"{here}.type: unknown attribute provider {type_name!r}; expected one of "
                f"{sorted(ATTRIBUTES_PROVIDERS)} or a dotted class path"
            )
        cls = _load(ATTRIBUTES_PROVIDERS.get(type_name, type_name), f"{here}.type")
        options = _mapping(entry.get("options") or {}, f"{here}.options")
        if type_name == "msc_config":
            options["config_dict"] = config_dict
        try:
            provider = cls(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{here}.options: {exc}") from None
        if not isinstance(provider, AttributesProvider):
            raise ConfigError(f"{here}.type: {type_name!r} is not an AttributesProvider")
        providers.append(provider)
    return providers


_prometheus_lock = threading.Lock()


def build_meter_provider(metrics: Mapping[str, Any], views: Sequence[Any] = ()) -> Any:
    """A new SDK ``MeterProvider`` exporting as ``metrics`` says (a validated section), with ``views``.

    ``otlp``/``console``/dotted exporters are driven by a
    :class:`~manystore.telemetry.metrics.readers.diperiodic_exporting.DiperiodicExportingMetricReader`
    (``reader.options``); ``prometheus`` serves ``/metrics`` on ``host`` (default 127.0.0.1),
    ``port`` (default 9464) from this process, collecting on each scrape.
    """
    from opentelemetry.sdk.metrics import MeterProvider

    exporter = metrics["exporter"]
    options = dict(exporter.get("options") or {})
    if exporter["type"] == "prometheus":
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=True)
        reader: Any = PrometheusMetricReader(
            disable_target_info=options.get("disable_target_info", False),
            prefix=options.get("prefix", ""),
            registry=registry,
        )
        with _prometheus_lock:
            server, _thread = start_http_server(
                options.get("port", 9464), addr=options.get("host", "127.0.0.1"), registry=registry
            )
        logger.debug("prometheus endpoint on %s", server.server_address)
    else:
        from .metrics.readers.diperiodic_exporting import DiperiodicExportingMetricReader

        cls = _exporter_class(exporter["type"], "opentelemetry.metrics.exporter")
        reader = DiperiodicExportingMetricReader(
            cls(**options), **((metrics.get("reader") or {}).get("options") or {})
        )
        server = None
    # Shut down by manystore.telemetry at exit of the process that built it: never from a fork.
    try:
        provider = MeterProvider(metric_readers=[reader], views=list(views), shutdown_on_exit=False)
    except BaseException:
        close_http_server(server)  # else a retry would find the port still taken
        raise
    if server is not None:
        provider._manystore_http_server = server  # type: ignore[attr-defined]  # closed by close_http_server at shutdown
    return provider


def close_http_server(server: Any) -> None:
    """Stop the Prometheus ``/metrics`` server ``server`` (or a meter provider's; ``None``: no-op)."""
    server = getattr(server, "_manystore_http_server", server)
    if server is None or not hasattr(server, "server_close"):
        return
    server.shutdown()
    server.server_close()
