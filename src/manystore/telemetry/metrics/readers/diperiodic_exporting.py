"""A metric reader that collects and exports on two independent periods.

The SDK's ``PeriodicExportingMetricReader`` collects exactly when it exports (by default
once a minute), so the time resolution of the exported series is the export period.
:class:`DiperiodicExportingMetricReader` collects often (default every second) into a
buffer and sends everything buffered in one export call on a longer period (default
``OTEL_METRIC_EXPORT_INTERVAL`` or one minute): fine resolution, few requests.

Requires ``opentelemetry-sdk`` (the ``telemetry`` extra).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import Any

from opentelemetry.sdk.environment_variables import OTEL_METRIC_EXPORT_INTERVAL, OTEL_METRIC_EXPORT_TIMEOUT
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, MetricsData

__all__ = [
    "DEFAULT_COLLECT_INTERVAL_MILLIS",
    "DEFAULT_COLLECT_TIMEOUT_MILLIS",
    "DEFAULT_EXPORT_INTERVAL_MILLIS",
    "DEFAULT_EXPORT_TIMEOUT_MILLIS",
    "DiperiodicExportingMetricReader",
]

DEFAULT_COLLECT_INTERVAL_MILLIS: float = 1_000
DEFAULT_COLLECT_TIMEOUT_MILLIS: float = 10_000
DEFAULT_EXPORT_INTERVAL_MILLIS: float = 60_000
DEFAULT_EXPORT_TIMEOUT_MILLIS: float = 30_000

logger = logging.getLogger(__name__)


def _millis(name: str, value: float | None, env: str | None, default: float) -> float:
    if value is None and env is not None and os.environ.get(env):
        try:
            value = float(os.environ[env])
        except ValueError:
            logger.warning("%s=%r is not a number; using %s ms", env, os.environ[env], default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name}: expected a number of milliseconds in (0, inf), got {value!r}")
    return float(value)


class DiperiodicExportingMetricReader(MetricReader):
    """Collects every ``collect_interval_millis`` and exports every ``export_interval_millis``.

    Each collection is kept, so an export carries every snapshot taken since the previous
    one. :meth:`force_flush` collects and exports at once; :meth:`shutdown` does a final
    collect and export, then shuts the exporter down.

    The two background threads belong to the process that built the reader: a forked
    child does not inherit them (nor re-export the parent's buffer) — build a new meter
    provider in the child.

    Args:
        exporter: Where snapshots go; its preferred temporality and aggregation are used.
        collect_interval_millis: Collection period (default 1000).
        collect_timeout_millis: Timeout of one collection (default 10000).
        export_interval_millis: Export period (default ``$OTEL_METRIC_EXPORT_INTERVAL`` or 60000).
        export_timeout_millis: Timeout of one export (default ``$OTEL_METRIC_EXPORT_TIMEOUT`` or 30000).

    Raises:
        ValueError: An interval or timeout is not a positive finite number.
    """

    def __init__(
        self,
        exporter: MetricExporter,
        collect_interval_millis: float | None = None,
        collect_timeout_millis: float | None = None,
        export_interval_millis: float | None = None,
        export_timeout_millis: float | None = None,
    ) -> None:
        self._collect_interval = _millis(
            "collect_interval_millis", collect_interval_millis, None, DEFAULT_COLLECT_INTERVAL_MILLIS
        )
        self._collect_timeout = _millis(
            "collect_timeout_millis", collect_timeout_millis, None, DEFAULT_COLLECT_TIMEOUT_MILLIS
        )
        self._export_interval = _millis(
            "export_interval_millis",
            export_interval_millis,
            OTEL_METRIC_EXPORT_INTERVAL,
            DEFAULT_EXPORT_INTERVAL_MILLIS,
        )
        self._export_timeout = _millis(
            "export_timeout_millis",
            export_timeout_millis,
            OTEL_METRIC_EXPORT_TIMEOUT,
            DEFAULT_EXPORT_TIMEOUT_MILLIS,
        )
        super().__init__(
            preferred_temporality=exporter._preferred_temporality,
            preferred_aggregation=exporter._preferred_aggregation,
        )
        self._exporter = exporter
        self._buffer: list[MetricsData] = []
        self._buffer_lock = threading.Lock()
        self._export_lock = threading.Lock()
        self._stopped = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._pid = os.getpid()
        self._threads = [
            threading.Thread(target=self._collect_loop, name="manystore-metrics-collect", daemon=True),
            threading.Thread(target=self._export_loop, name="manystore-metrics-export", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------ background work
    def _collect_loop(self) -> None:
        while not self._stopped.wait(self._collect_interval / 1000):
            self._collect_once()

    def _export_loop(self) -> None:
        while not self._stopped.wait(self._export_interval / 1000):
            self._export_once()

    def _collect_once(self, timeout_millis: float | None = None) -> None:
        if self._collect is None:  # not registered with a meter provider yet
            return
        try:
            self.collect(timeout_millis=timeout_millis or self._collect_timeout)
        except Exception:
            logger.exception("metrics collection failed")

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        with self._buffer_lock:
            self._buffer.append(metrics_data)

    def _export_once(self, timeout_millis: float | None = None) -> bool:
        with self._export_lock:
            with self._buffer_lock:
                pending, self._buffer = self._buffer, []
            if not pending:
                return True
            merged = MetricsData(resource_metrics=[rm for md in pending for rm in md.resource_metrics])
            try:
                self._exporter.export(merged, timeout_millis=timeout_millis or self._export_timeout)
                return True
            except Exception:
                logger.exception("metrics export failed; %d snapshot(s) dropped", len(pending))
                return False

    # ------------------------------------------------------------ MetricReader API
    def force_flush(
        self, timeout_millis: float = DEFAULT_COLLECT_TIMEOUT_MILLIS + DEFAULT_EXPORT_TIMEOUT_MILLIS
    ) -> bool:
        """Collect now and export everything buffered.

        Args:
            timeout_millis: Overall time limit.

        Returns:
            True if the export succeeded.
        """
        deadline = time.monotonic() + timeout_millis / 1000
        super().force_flush(timeout_millis=timeout_millis)
        ok = self._export_once(max(1.0, (deadline - time.monotonic()) * 1000))
        self._exporter.force_flush(timeout_millis=max(1.0, (deadline - time.monotonic()) * 1000))
        return ok

    def shutdown(
        self,
        timeout_millis: float = DEFAULT_COLLECT_TIMEOUT_MILLIS + DEFAULT_EXPORT_TIMEOUT_MILLIS,
        **kwargs: Any,
    ) -> None:
        """Stop the background threads, collect and export a last time, shut the exporter down."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._shutdown_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            if os.getpid() == self._pid:
                for thread in self._threads:
                    thread.join(max(0.0, deadline - time.monotonic()))
            self._collect_once(max(1.0, (deadline - time.monotonic()) * 1000))
            self._export_once(max(1.0, (deadline - time.monotonic()) * 1000))
            self._exporter.shutdown(timeout_millis=max(1.0, (deadline - time.monotonic()) * 1000))
