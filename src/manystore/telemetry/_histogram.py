"""Latency histograms fed one merged batch per attribute group instead of one value per operation.

The OpenTelemetry SDK has no public way to add many values to a histogram at once, and
its per-value ``Histogram.record`` costs several microseconds (taken from the threads doing
I/O, since they share the GIL with the flusher). So the flusher buckets the latencies of a
group itself (:class:`LatencyBatch`, same boundaries as the instrument) and records the
batch as one measurement; a custom aggregation, installed for the latency instrument with
a ``View``, recognises the batch and merges its bucket counts, sum, min and max under the
aggregation's lock. Everything else the SDK does (attribute handling, temporality,
collection, export) is unchanged, so exported points are exactly those per-value recording
gives.

The aggregation subclasses an SDK-internal class, so :func:`batching_supported` checks once
per process that the internals look as expected and that a batch merges into the same data
point as per-value recording; if not, meter providers get no view and
:class:`~manystore.telemetry.Telemetry` records value by value.

Imported only when telemetry is used: it imports the OpenTelemetry SDK.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import Any, cast

from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics._internal.aggregation import (
    AggregationTemporality,
    _ExplicitBucketHistogramAggregation,
)
from opentelemetry.sdk.metrics.view import Aggregation, View

__all__ = ["BatchHistogramAggregation", "LatencyBatch", "batching_supported", "latency_views"]

logger = logging.getLogger(__name__)

#: The aggregation attributes the merge reads and writes.
#: Up to this many bucket boundaries between a batch's smallest and largest value, buckets are
#: counted with one pass per boundary instead of a sort.
_FEW = 2
_REQUIRED = ("_lock", "_value", "_sum", "_min", "_max", "_boundaries", "_record_min_max")


class LatencyBatch(float):
    """Many latencies, pre-bucketed: one histogram measurement standing for all of them.

    As a ``float`` it is the sum of the values (finite and non-negative, so the SDK's
    ``Histogram.record`` checks pass it through); :class:`BatchHistogramAggregation`
    merges its buckets. Values the SDK would drop (negative, NaN, infinite) are dropped.

    Args:
        values: The latencies, in seconds.
        bounds: The histogram's explicit bucket boundaries (strictly increasing).

    Attributes:
        bounds: The boundaries the counts refer to.
        counts: ``len(bounds) + 1`` bucket counts (bucket ``i``: ``bounds[i-1] < v <= bounds[i]``).
        count: Number of values.
        total: Their sum.
        min: The smallest value (``inf`` if none).
        max: The largest value (``-inf`` if none).
    """

    bounds: tuple[float, ...]
    counts: list[int]
    count: int
    total: float
    min: float
    max: float

    def __new__(cls, values: Iterable[float], bounds: Sequence[float]) -> LatencyBatch:
        vals = values if isinstance(values, list) else list(values)
        total = float(sum(vals))  # the SDK adds value by value: equal up to rounding
        if not math.isfinite(total):  # a NaN or an infinity: dropped, as the SDK drops them
            vals = [v for v in vals if math.isfinite(v)]
        b = tuple(bounds)
        counts = [0] * (len(b) + 1)
        lowest, highest = (min(vals), max(vals)) if vals else (0.0, 0.0)
        if lowest < 0:  # negative values: dropped, as the SDK drops them
            vals = [v for v in vals if v >= 0]
            total = float(sum(vals))
            lowest, highest = (min(vals), max(vals)) if vals else (0.0, 0.0)
        # Bucket i holds bounds[i-1] < v <= bounds[i]: bisect_left gives a value's bucket.
        first, last = bisect_left(b, lowest), bisect_left(b, highest)
        if not vals:
            pass
        elif first == last:  # all in one bucket (fast storage: the common case), no pass at all
            counts[first] = len(vals)
        elif last - first <= _FEW:
            # A few buckets: one C pass per bound between them (map over float.__ge__)
            # beats sorting, which costs ~log2(n) comparisons per value.
            below = 0
            for i in range(first, last):
                at_most = sum(map(float(b[i]).__ge__, vals))  # values <= bounds[i]
                counts[i], below = at_most - below, at_most
            counts[last] = len(vals) - below
        else:
            # Many buckets: sort (list.sort compares floats in C), then one bisection per bound.
            ordered = sorted(vals)
            ends = [bisect_right(ordered, bound) for bound in b]  # values <= each bound
            edges = [0, *ends, len(ordered)]
            counts = [edges[i + 1] - edges[i] for i in range(len(b) + 1)]
        self = super().__new__(cls, total)
        self.bounds = b
        self.counts = counts
        self.count = len(vals)
        self.total = total
        self.min = lowest if vals else math.inf
        self.max = highest if vals else -math.inf
        return self

    def __repr__(self) -> str:
        return f"LatencyBatch(count={self.count}, total={self.total!r}, min={self.min!r}, max={self.max!r})"


class _BatchExplicitBucketHistogramAggregation(_ExplicitBucketHistogramAggregation):
    """The SDK's explicit-bucket aggregation, plus merging a :class:`LatencyBatch`."""

    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        batch = measurement.value
        if type(batch) is not LatencyBatch:
            super().aggregate(measurement, should_sample_exemplar)
            return
        if batch.bounds != self._boundaries:
            raise ValueError(
                f"latency batch: bucket boundaries {batch.bounds} do not match the "
                f"histogram's {self._boundaries}"
            )
        if not batch.count:
            return
        me: Any = self  # the SDK types these fields loosely
        with me._lock:
            value = me._value
            if value is None:
                value = me._value = me._get_empty_bucket_counts()
            for i, n in enumerate(batch.counts):
                if n:
                    value[i] += n
            me._sum += batch.total
            if me._record_min_max:
                me._min = min(me._min, batch.min)
                me._max = max(me._max, batch.max)
        # No exemplars: a batch is not one measurement of a traced call.


class BatchHistogramAggregation(Aggregation):
    """An explicit-bucket histogram aggregation that also accepts :class:`LatencyBatch` values.

    Args:
        boundaries: Bucket boundaries; ``None``: the instrument's advisory boundaries.
        record_min_max: Whether to record min and max.
    """

    def __init__(self, boundaries: Sequence[float] | None = None, record_min_max: bool = True) -> None:
        self._boundaries = None if boundaries is None else tuple(boundaries)
        self._record_min_max = record_min_max

    def _create_aggregation(
        self, instrument: Any, attributes: Any, reservoir_factory: Any, start_time_unix_nano: int
    ) -> Any:
        boundaries = self._boundaries
        if boundaries is None:
            advisory = getattr(instrument, "_advisory", None)
            boundaries = getattr(advisory, "explicit_bucket_boundaries", None)
        return _BatchExplicitBucketHistogramAggregation(
            attributes,
            AggregationTemporality.DELTA,  # only synchronous histograms get this aggregation
            start_time_unix_nano,
            reservoir_factory(_ExplicitBucketHistogramAggregation),
            boundaries,
            self._record_min_max,
        )


def latency_views(name: str, bounds: Sequence[float]) -> list[View]:
    """The views a meter provider needs for batched latency histograms (none if unsupported).

    Args:
        name: The latency histogram's instrument name.
        bounds: Its bucket boundaries.
    """
    if not batching_supported():
        return []
    return [
        View(instrument_type=Histogram, instrument_name=name, aggregation=BatchHistogramAggregation(bounds))
    ]


_CHECK_LOCK = threading.Lock()
_SUPPORTED: bool | None = None
#: Set to False to force per-value recording for meter providers built from now on.
ENABLED = True


def batching_supported() -> bool:
    """Whether batches can be merged in this process (checked once; False if :data:`ENABLED` is off)."""
    global _SUPPORTED
    if not ENABLED:
        return False
    with _CHECK_LOCK:
        if _SUPPORTED is None:
            try:
                _SUPPORTED = _self_check()
            except Exception:
                logger.debug("telemetry: batched latency self-check raised", exc_info=True)
                _SUPPORTED = False
            if not _SUPPORTED:
                logger.info("telemetry: SDK internals differ from what batching expects; recording per value")
        return _SUPPORTED


def _points(batched: bool, values: list[float], bounds: tuple[float, ...]) -> list[Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    views = [View(instrument_name="check", aggregation=BatchHistogramAggregation(bounds))] if batched else []
    provider = MeterProvider(metric_readers=[reader], views=views, shutdown_on_exit=False)
    try:
        hist = provider.get_meter("check").create_histogram(
            "check", "s", explicit_bucket_boundaries_advisory=bounds
        )
        attrs = {"k": "v"}
        if batched:
            hist.record(LatencyBatch(values[:3], bounds), attrs)
            hist.record(values[3], attrs)  # a plain value still aggregates as usual
            hist.record(LatencyBatch(values[4:], bounds), attrs)
        else:
            for v in values:
                hist.record(v, attrs)
        data = reader.get_metrics_data()
        if data is None:
            return []
        return [
            dp
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for dp in m.data.data_points
        ]
    finally:
        provider.shutdown()


def _self_check() -> bool:
    if not all(
        hasattr(_ExplicitBucketHistogramAggregation, a) for a in ("_get_empty_bucket_counts", "aggregate")
    ):
        return False
    probe = _BatchExplicitBucketHistogramAggregation(
        {}, AggregationTemporality.DELTA, 0, cast(Any, lambda **_: None), (1.0,), True
    )
    if not all(hasattr(probe, a) for a in _REQUIRED):
        return False
    bounds = (0.001, 0.01, 0.1, 1.0)
    values = [0.0005, 0.001, 0.25, 0.003, 2.0, 0.01, 0.0]
    fast, slow = _points(True, values, bounds), _points(False, values, bounds)
    if len(fast) != 1 or len(slow) != 1:
        return False
    f, s = fast[0], slow[0]
    return (
        f.count == s.count == len(values)
        and tuple(f.bucket_counts) == tuple(s.bucket_counts) == (3, 2, 0, 1, 1)
        and math.isclose(f.sum, s.sum, rel_tol=1e-12)
        and f.min == s.min == 0.0
        and f.max == s.max == 2.0
        and tuple(f.explicit_bounds) == bounds
    )
