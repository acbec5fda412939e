"""Telemetry handed to a provider's constructor: the seed's instruments and 1.3.1's config_dict.

Every backend; records are read back from a real OpenTelemetry SDK reader.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from manystore.config import CREDENTIALS_PROVIDERS, STORAGE_PROVIDERS, _build
from manystore.errors import ConfigError
from manystore.providers.posix_file import PosixFileStorageProvider
from manystore.telemetry import Telemetry, _recorder
from manystore.telemetry.attributes.static import StaticAttributesProvider
from manystore.telemetry.instrument import is_instrumented
from tests.conftest import Backend


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    _recorder.flush_buffer()
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _provider_with(backend: Backend, **options: Any) -> Any:
    """The backend's storage provider built anew from its config section, plus ``options``."""
    spec = backend.config["profiles"]["test"]
    extra: dict[str, Any] = dict(options)
    if "credentials_provider" in spec:
        extra["credentials_provider"] = _build(
            spec["credentials_provider"], CREDENTIALS_PROVIDERS, "credentials provider", "test"
        )
    return _build(spec["storage_provider"], STORAGE_PROVIDERS, "storage provider", "test", **extra)


def test_seed_instruments_count_every_operation(backend: Backend) -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("test")
    counters = {
        Telemetry.CounterName.REQUEST_SUM: meter.create_counter("multistorageclient.request.sum"),
        Telemetry.CounterName.RESPONSE_SUM: meter.create_counter("multistorageclient.response.sum"),
        "multistorageclient.data_size.sum": meter.create_counter("multistorageclient.data_size.sum"),
    }
    gauges = {Telemetry.GaugeName.DATA_SIZE: meter.create_gauge("multistorageclient.data_size")}
    provider = _provider_with(
        backend,
        metric_counters=counters,
        metric_gauges=gauges,
        metric_attributes_providers=[StaticAttributesProvider({"team": "data"})],
    )
    assert is_instrumented(provider)
    for i in range(3):
        provider.put_object(f"d/{i}", b"x" * 100)
    assert provider.get_object("d/1") == b"x" * 100
    points = _points(reader)
    requests = {
        p.attributes["multistorageclient.operation"]: p.value
        for p in points["multistorageclient.request.sum"]
    }
    assert requests["put"] == 3 and requests["get"] == 1
    assert all(p.attributes["team"] == "data" for p in points["multistorageclient.request.sum"])
    ok = [
        p
        for p in points["multistorageclient.response.sum"]
        if p.attributes["multistorageclient.status"] == "success"
    ]
    assert sum(p.value for p in ok) >= 4
    sizes = {
        p.attributes["multistorageclient.operation"]: p.value
        for p in points["multistorageclient.data_size.sum"]
    }
    assert sizes["put"] == 300 and sizes["get"] == 100
    assert {p.attributes["multistorageclient.operation"] for p in points["multistorageclient.data_size"]} >= {
        "put",
        "get",
    }


def test_msc131_config_dict_turns_metrics_on(tmp_path: Any) -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    meter = meter_provider.get_meter("test")
    made: dict[str, Any] = {}

    class _Sink:
        def record_batch(self, config: Any, batch: list[tuple[Any, ...]]) -> None:
            counter = made.setdefault("c", meter.create_counter("ops"))
            for items, _status, count, _nbytes, _lat in batch:
                counter.add(count, dict(items))

    sink = _Sink()
    config_dict = {
        "opentelemetry": {
            "metrics": {
                "exporter": {"type": "console"},
                "attributes": [{"type": "static", "options": {"attributes": {"k": "v"}}}],
            }
        }
    }
    provider = PosixFileStorageProvider(
        str(tmp_path), config_dict=config_dict, telemetry_provider=lambda: sink
    )
    assert is_instrumented(provider)
    provider.put_object("a", b"123")
    provider.get_object("a")
    points = _points(reader)["ops"]
    assert {p.attributes["multistorageclient.operation"]: p.value for p in points} == {"put": 1, "get": 1}
    assert all(p.attributes["k"] == "v" for p in points)


def test_config_dict_without_opentelemetry_leaves_provider_plain(tmp_path: Any) -> None:
    provider = PosixFileStorageProvider(
        str(tmp_path), config_dict={"profiles": {}}, telemetry_provider=Telemetry
    )
    assert not is_instrumented(provider)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metric_counters": [1]}, "metric_counters: expected a mapping"),
        ({"metric_counters": {"x": object()}}, "metric_counters['x']: expected an instrument with .add()"),
        ({"metric_gauges": {"x": object()}}, "metric_gauges['x']: expected an instrument with .set()"),
        ({"metric_attributes_providers": [StaticAttributesProvider({"a": 1})]}, "nothing to label"),
        ({"telemetry_provider": Telemetry}, "telemetry_provider given without config_dict"),
        ({"config_dict": "x"}, "config_dict: expected the config mapping"),
    ],
)
def test_bad_telemetry_options_are_refused(tmp_path: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        PosixFileStorageProvider(str(tmp_path), **options)


def test_unknown_option_still_refused(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="telemetry"):
        PosixFileStorageProvider(str(tmp_path), telemetry=object())


def test_instrumented_provider_pickles_detached(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("test")
    provider = PosixFileStorageProvider(
        str(tmp_path), metric_counters={Telemetry.CounterName.REQUEST_SUM: meter.create_counter("r")}
    )
    copy_ = pickle.loads(pickle.dumps(provider))
    copy_.put_object("k", b"1")
    with caplog.at_level("WARNING"):
        _recorder.flush_buffer()
    assert "copied to another process" in caplog.text
    assert copy_.get_object("k") == b"1"
