"""Telemetry given to a provider's constructor rather than through a config.

Two spellings reach a storage provider's ``__init__``:

* the reference's (seed 000): ``metric_counters`` / ``metric_gauges`` — OpenTelemetry
  instruments keyed by :class:`~manystore.telemetry.Telemetry.CounterName` /
  ``GaugeName`` (or their string values) — and ``metric_attributes_providers``;
* multi-storage-client 1.3.1's: ``config_dict`` (the resolved config, whose
  ``opentelemetry.metrics`` section turns metrics on) and ``telemetry_provider``
  (a function returning a :class:`~manystore.telemetry.Telemetry`).

:func:`wire_provider` applies either to a freshly built provider through
:func:`manystore.telemetry.instrument.instrument`, so a directly constructed provider records
the same operations, with the same attributes, as one built from a config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["InstrumentSink", "wire_provider"]

logger = logging.getLogger(__name__)


_REQUEST = "multistorageclient.request.sum"
_RESPONSE = "multistorageclient.response.sum"
_DATA_SUM = "multistorageclient.data_size.sum"
_LATENCY = "multistorageclient.latency"
_DATA_SIZE = "multistorageclient.data_size"
_DATA_RATE = "multistorageclient.data_rate"


def _name(key: Any) -> str:
    value = getattr(key, "value", key)
    if not isinstance(value, str):
        raise TypeError(f"metric key {key!r}: expected a Telemetry.CounterName/GaugeName or its string value")
    return value


def _instruments(given: Any, option: str, method: str) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise TypeError(
            f"{option}: expected a mapping of metric name to instrument, got {type(given).__name__}"
        )
    found: dict[str, Any] = {}
    for key, inst in given.items():
        if inst is None:
            continue
        if not callable(getattr(inst, method, None)):
            raise TypeError(f"{option}[{key!r}]: expected an instrument with .{method}(), got {inst!r}")
        found[_name(key)] = inst
    return found


class InstrumentSink:
    """Records of an instrumented provider, written into caller-supplied instruments.

    Counters: requests, responses (with ``multistorageclient.status``) and bytes; gauges:
    ``multistorageclient.latency`` (each operation's seconds), ``data_size`` (bytes of the
    last batch of operations with those attributes) and ``data_rate`` (their bytes ÷ seconds).
    Instruments live in the process that made them: a copy of the provider pickled to
    another process records nothing there (a warning says so once).
    """

    def __init__(self, counters: Mapping[str, Any], gauges: Mapping[str, Any]) -> None:
        self.counters = dict(counters)
        self.gauges = dict(gauges)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_detached, ())

    def record_batch(self, config: Mapping[str, Any], batch: list[tuple[Any, ...]]) -> None:
        """Write aggregated records (see :meth:`manystore.telemetry.Telemetry.record_batch`)."""
        c, g = self.counters, self.gauges
        for items, status, count, nbytes, latencies in batch:
            attrs = dict(items)
            if _REQUEST in c:
                c[_REQUEST].add(count, attrs)
            attrs["multistorageclient.status"] = status
            if _RESPONSE in c:
                c[_RESPONSE].add(count, attrs)
            if nbytes is not None and _DATA_SUM in c:
                c[_DATA_SUM].add(nbytes, attrs)
            if _LATENCY in g:
                for value in latencies:
                    g[_LATENCY].set(value, attrs)
            if nbytes is not None:
                if _DATA_SIZE in g:
                    g[_DATA_SIZE].set(nbytes, attrs)
                seconds = sum(latencies)
                if _DATA_RATE in g and seconds > 0:
                    g[_DATA_RATE].set(nbytes / seconds, attrs)

    def telemetry(self) -> InstrumentSink:
        """Itself: the sink is its own telemetry."""
        return self


class _Detached(InstrumentSink):
    _warned = False

    def record_batch(self, config: Mapping[str, Any], batch: list[tuple[Any, ...]]) -> None:
        if not _Detached._warned:
            _Detached._warned = True
            logger.warning(
                "telemetry: a provider built with metric_counters/metric_gauges was copied to another "
                "process; its instruments stay in the first process, so records here are not kept "
                "(configure telemetry through the config's 'opentelemetry' section instead)"
            )


def _detached() -> InstrumentSink:
    return _Detached({}, {})


def wire_provider(provider: Any, options: dict[str, Any], profile: str = "") -> None:
    """Instrument ``provider`` as its telemetry keyword ``options`` ask (no-op when they ask nothing).

    Args:
        provider: A freshly built storage provider.
        options: The telemetry keyword arguments given to its constructor (a subset of
            :data:`manystore.providers.base.TELEMETRY_OPTIONS`).
        profile: The ``multistorageclient.profile`` label.

    Raises:
        TypeError: An option has the wrong type (the message names it).
        ConfigError: ``config_dict``'s ``opentelemetry`` section is invalid.
    """
    counters = _instruments(options.get("metric_counters") or {}, "metric_counters", "add")
    gauges = _instruments(options.get("metric_gauges") or {}, "metric_gauges", "set")
    attributes: Sequence[Any] = options.get("metric_attributes_providers") or ()
    for item in attributes:
        if not callable(getattr(item, "attributes", None)):
            raise TypeError(f"metric_attributes_providers: expected AttributesProvider objects, got {item!r}")
    config_dict = options.get("config_dict")
    telemetry_provider: Callable[[], Any] | None = options.get("telemetry_provider")
    if telemetry_provider is not None and not callable(telemetry_provider):
        raise TypeError(
            f"telemetry_provider: expected a function returning a Telemetry, got {telemetry_provider!r}"
        )
    if config_dict is not None and not isinstance(config_dict, Mapping):
        raise TypeError(f"config_dict: expected the config mapping, got {type(config_dict).__name__}")
    from .instrument import InstrumentationSpec, instrument, instrument_config

    if counters or gauges:
        spec = InstrumentationSpec(profile, {}, {}, telemetry=InstrumentSink(counters, gauges))
        spec.attributes_providers = list(attributes)
        instrument(provider, spec)
    elif config_dict is not None and config_dict.get("opentelemetry") is not None:
        from ..masking import mask_secrets

        instrument_config(  # 1.3.1 passes the resolved config: environment variables expanded
            provider,
            config_dict["opentelemetry"],
            mask_secrets(dict(config_dict)),
            profile,
            telemetry_provider=telemetry_provider,
        )
    elif telemetry_provider is not None and config_dict is None:
        raise TypeError(
            "telemetry_provider given without config_dict: the config's 'opentelemetry.metrics' "
            "section says what to record; pass config_dict too"
        )
    elif attributes:
        raise TypeError(
            "metric_attributes_providers given without metric_counters or metric_gauges: "
            "there is nothing to label; pass the instruments too"
        )
