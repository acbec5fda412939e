"""Telemetry end to end: real exporters (OTLP/HTTP into a local receiver, a Prometheus
endpoint), real backends, worker processes sharing one manager."""

from __future__ import annotations

import http.server
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.errors import ConfigError
from manystore.providers.base import BaseStorageProvider
from manystore.telemetry import Telemetry, TelemetryMode, _recorder, init
from manystore.telemetry.instrument import is_instrumented
from tests.conftest import make_backend

BACKENDS = ["file", "s3-rclone"]
SIZES = [10, 200, 3000, 1, 4096]


class Receiver:
    """An OTLP/HTTP metrics endpoint on 127.0.0.1 keeping every decoded request."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        self.requests: list[Any] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                msg = ExportMetricsServiceRequest()
                msg.ParseFromString(body)
                receiver.raw.append(body)
                receiver.requests.append(msg)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"

    def points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """Latest cumulative data point of metric ``name`` per attribute set."""
        latest: dict[frozenset[tuple[str, Any]], Any] = {}
        for req in self.requests:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != name:
                            continue
                        kind = metric.WhichOneof("data")
                        for dp in getattr(metric, kind).data_points:
                            attrs = frozenset((a.key, _value(a.value)) for a in dp.attributes)
                            if attrs not in latest or dp.time_unix_nano >= latest[attrs].time_unix_nano:
                                latest[attrs] = dp
        return latest

    def total(self, name: str, **labels: Any) -> float:
        """Sum over series of ``name`` whose attributes include ``labels`` (histograms: count)."""
        out = 0.0
        for attrs, dp in self.points(name).items():
            d = dict(attrs)
            if all(d.get(f"multistorageclient.{k}", d.get(k)) == v for k, v in labels.items()):
                out += dp.count if hasattr(dp, "bucket_counts") else (dp.as_int or dp.as_double)
        return out


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def _otel(endpoint: str, attributes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metrics": {
            "exporter": {"type": "otlp", "options": {"endpoint": endpoint, "timeout": 5}},
            "reader": {"options": {"collect_interval_millis": 200, "export_interval_millis": 500}},
            **({"attributes": attributes} if attributes else {}),
        }
    }


def _client(config: dict[str, Any], otel: dict[str, Any], telemetry: Any) -> StorageClient:
    return StorageClient(
        StorageClientConfig.from_dict({**config, "opentelemetry": otel}, "test", telemetry=telemetry)
    )


def _export(telemetry: Any) -> None:
    assert _recorder.flush_buffer()
    assert telemetry.force_flush()


def _workload(client: StorageClient, tag: str) -> None:
    for i, size in enumerate(SIZES):
        client.write(f"{tag}/obj{i}", b"x" * size)
    for i, size in enumerate(SIZES):
        assert len(client.read(f"{tag}/obj{i}")) == size
    assert len(list(client.list(f"{tag}/"))) == len(SIZES)


@pytest.mark.parametrize("name", BACKENDS)
def test_otlp_counts_bytes_and_labels(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver
) -> None:
    backend = make_backend(name, request, tmp_path)
    telemetry = Telemetry()
    client = _client(backend.config, _otel(receiver.endpoint), telemetry)
    assert isinstance(client._storage_provider, BaseStorageProvider)
    _workload(client, "a")
    with pytest.raises(FileNotFoundError):
        client.read("a/missing")
    _export(telemetry)
    ptype = "file" if name == "file" else "s3"
    req = "multistorageclient.request.sum"
    assert receiver.total(req, operation="put", profile="test", provider=ptype) == len(SIZES)
    assert receiver.total(req, operation="get", provider=ptype) == len(SIZES) + 1
    assert receiver.total(req, operation="list", provider=ptype) == 1
    resp = "multistorageclient.response.sum"
    assert receiver.total(resp, operation="get", status="success") == len(SIZES)
    errors = {
        dict(a)["multistorageclient.status"]
        for a in receiver.points(resp)
        if dict(a).get("multistorageclient.operation") == "get"
    }
    assert any(s.startswith("error.") and "NotFound" in s for s in errors), errors
    data = "multistorageclient.data_size.sum"
    assert receiver.total(data, operation="put") == sum(SIZES)
    assert receiver.total(data, operation="get") == sum(SIZES)
    assert receiver.total("multistorageclient.latency", operation="put") == len(SIZES)
    telemetry.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("name", BACKENDS)
def test_prometheus_scrape(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    backend = make_backend(name, request, tmp_path)
    port = _free_port()
    otel = {"metrics": {"exporter": {"type": "prometheus", "options": {"port": port, "host": "127.0.0.1"}}}}
    telemetry = Telemetry()
    client = _client(backend.config, otel, telemetry)
    _workload(client, "p")
    assert _recorder.flush_buffer()
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("multistorageclient_request_sum") and not sample.name.endswith(
                "_created"
            ):
                op = sample.labels["multistorageclient_operation"]
                assert sample.labels["multistorageclient_profile"] == "test"
                counts[op] = counts.get(op, 0) + sample.value
    assert counts == {"put": len(SIZES), "get": len(SIZES), "list": 1}
    telemetry.shutdown()


def test_prometheus_port_released_on_failure_and_shutdown() -> None:
    from manystore.telemetry._setup import build_meter_provider

    port = _free_port()
    metrics = {"exporter": {"type": "prometheus", "options": {"port": port, "host": "127.0.0.1"}}}
    with pytest.raises(TypeError):  # fails after the server started
        build_meter_provider(metrics, views=5)  # type: ignore[arg-type]
    telemetry = Telemetry()  # the retry binds the same port: the failed attempt released it
    telemetry.counter(metrics, Telemetry.CounterName.REQUEST_SUM).add(1, {"a": "b"})
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "multistorageclient_request_sum" in body
    telemetry.shutdown()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


def _worker(client: StorageClient, tag: str) -> None:
    _workload(client, tag)


def test_manager_mode_fork_and_spawn_workers(
    request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver
) -> None:
    backend = make_backend("file", request, tmp_path)
    telemetry = init(TelemetryMode.SERVER, address=("127.0.0.1", _free_port()))
    client = _client(backend.config, _otel(receiver.endpoint), telemetry)
    _workload(client, "main")
    pickle.loads(pickle.dumps(client))  # pickling never copies instrumentation state
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        procs = [ctx.Process(target=_worker, args=(client, f"{method}{i}")) for i in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
    _export(telemetry)
    n = len(SIZES)
    req = "multistorageclient.request.sum"
    assert receiver.total(req, operation="put") == 5 * n  # main + 2 forked + 2 spawned
    assert receiver.total(req, operation="get") == 5 * n
    assert receiver.total(req, operation="list") == 5
    assert receiver.total("multistorageclient.data_size.sum", operation="get") == 5 * sum(SIZES)
    telemetry.shutdown()  # the manager's exporter stops before the receiver does


def test_off_by_default_imports_nothing(tmp_path: Path) -> None:
    code = (
        "import sys, manystore\n"
        "from manystore import StorageClient, StorageClientConfig\n"
        f"cfg = {{'profiles': {{'p': {{'storage_provider': {{'type': 'file', 'options': {{'base_path': {str(tmp_path)!r}}}}}}}}}}}\n"
        "c = StorageClient(StorageClientConfig.from_dict(cfg, 'p'))\n"
        "c.write('k', b'v'); assert c.read('k') == b'v'; list(c.list(''))\n"
        "from manystore.providers.posix_file import PosixFileStorageProvider\n"
        "assert type(c._storage_provider) is PosixFileStorageProvider\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'manystore.telemetry', 'prometheus'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_attribute_providers(
    tmp_path: Path, request: pytest.FixtureRequest, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANYSTORE_TEST_JOB", "job-42")
    backend = make_backend("file", request, tmp_path)
    attributes = [
        {"type": "environment_variables", "options": {"attributes": {"job": "MANYSTORE_TEST_JOB"}}},
        {"type": "host", "options": {"attributes": {"host": "name"}}},
        {
            "type": "msc_config",
            "options": {"attributes": {"ptype": {"expression": "profiles.test.storage_provider.type"}}},
        },
        {"type": "process", "options": {"attributes": {"pid": "pid"}}},
        {"type": "static", "options": {"attributes": {"team": "data", "tier": 3}}},
        {"type": "thread", "options": {"attributes": {"thread": "name"}}},
    ]
    telemetry = Telemetry()
    client = _client(backend.config, _otel(receiver.endpoint, attributes), telemetry)
    client.write("k", b"abc")
    t = threading.Thread(target=client.read, args=("k",), name="reader-thread")
    t.start()
    t.join()
    _export(telemetry)
    points = receiver.points("multistorageclient.request.sum")
    by_op = {dict(a)["multistorageclient.operation"]: dict(a) for a in points}
    attrs = by_op["get"]
    assert attrs["job"] == "job-42"
    assert attrs["host"] == socket.gethostname()
    assert attrs["ptype"] == "file"
    assert attrs["pid"] == os.getpid()
    assert attrs["team"] == "data" and attrs["tier"] == 3
    assert attrs["thread"] == "reader-thread"
    assert by_op["put"]["thread"] == threading.current_thread().name
    telemetry.shutdown()


def test_no_secret_in_exported_attributes(
    request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver
) -> None:
    backend = make_backend("s3-rclone", request, tmp_path)
    creds = backend.config["profiles"]["test"]["credentials_provider"]["options"]
    secret_expr = "profiles.test.credentials_provider.options"
    attributes = [
        {
            "type": "msc_config",
            "options": {
                "attributes": {
                    "creds": {"expression": f"{secret_expr}.secret_key"},
                    "ak": {"expression": f"{secret_expr}.access_key"},
                }
            },
        }
    ]
    telemetry = Telemetry()
    client = _client(backend.config, _otel(receiver.endpoint, attributes), telemetry)
    _workload(client, "s")
    _export(telemetry)
    blob = b"".join(receiver.raw)
    assert receiver.total("multistorageclient.request.sum", operation="put") == len(SIZES)
    assert creds["secret_key"].encode() not in blob
    assert creds["access_key"].encode() not in blob
    attrs = dict(next(iter(receiver.points("multistorageclient.request.sum"))))
    assert attrs["creds"] == "***"
    telemetry.shutdown()


@pytest.mark.parametrize(
    ("otel", "key"),
    [
        ({"metrics": {"exporter": {"type": "nope"}}}, "opentelemetry.metrics.exporter.type"),
        (
            {"metrics": {"exporter": {"type": "otlp", "options": {"endpont": "x"}}}},
            "opentelemetry.metrics.exporter.options",
        ),
        (
            {
                "metrics": {
                    "exporter": {"type": "console"},
                    "reader": {"options": {"collect_interval_millis": 0}},
                }
            },
            "reader.options.collect_interval_millis",
        ),
        (
            {"metrics": {"exporter": {"type": "console"}, "attributes": [{"type": "nope"}]}},
            "opentelemetry.metrics.attributes[0].type",
        ),
        (
            {
                "metrics": {
                    "exporter": {"type": "console"},
                    "attributes": [{"type": "host", "options": {"attributes": {"h": "ip"}}}],
                }
            },
            "attributes[0].options",
        ),
        (
            {"metrics": {"exporter": {"type": "prometheus", "options": {"port": "80"}}}},
            "exporter.options.port",
        ),
        ({"traces": {}}, "opentelemetry"),
    ],
)
def test_bad_sections_name_the_key(tmp_path: Path, otel: dict[str, Any], key: str) -> None:
    cfg = {
        "profiles": {"test": {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path)}}}}
    }
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        StorageClientConfig.from_dict({**cfg, "opentelemetry": otel}, "test")


def test_provider_pickles_plain_and_reinstruments(tmp_path: Path, receiver: Receiver) -> None:
    cfg = {
        "profiles": {"test": {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path)}}}}
    }
    telemetry = Telemetry()
    client = _client(cfg, _otel(receiver.endpoint), telemetry)
    provider = client._storage_provider
    copy = pickle.loads(pickle.dumps(provider))
    assert is_instrumented(copy) and type(copy) is type(provider)  # the class itself is never changed
    assert copy._manystore_telemetry is not provider._manystore_telemetry
    assert copy.get_object is not provider.get_object  # wrappers bound to the copy, recording into its state
    copy.put_object("p", b"abc")
    assert copy.get_object("p") == b"abc"
    assert {op for op in copy._manystore_telemetry.ok} >= {"put", "get"}
    assert "get" not in provider._manystore_telemetry.ok
    assert _recorder.flush_buffer()  # sent while the receiver is up (not at exit, to a closed port)
    copy._manystore_telemetry.spec.telemetry().shutdown()  # the copy's own (unpickled) Telemetry
    telemetry.shutdown()


def test_diperiodic_reader_collects_more_often_than_it_exports() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    from manystore.telemetry.metrics.readers.diperiodic_exporting import DiperiodicExportingMetricReader

    class Keep(MetricExporter):
        def __init__(self) -> None:
            super().__init__()
            self.exports: list[Any] = []

        def export(self, metrics_data: Any, timeout_millis: float = 0, **kwargs: Any) -> MetricExportResult:
            self.exports.append(metrics_data)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kwargs: Any) -> None:
            pass

    exporter = Keep()
    reader = DiperiodicExportingMetricReader(
        exporter, collect_interval_millis=50, export_interval_millis=100_000
    )
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    provider.get_meter("t").create_counter("c").add(3)
    import time

    time.sleep(0.4)
    assert exporter.exports == []  # collected, not yet exported
    reader.force_flush()
    assert len(exporter.exports) == 1 and len(exporter.exports[0].resource_metrics) >= 3
    provider.shutdown()
    with pytest.raises(ValueError, match="export_interval_millis"):
        DiperiodicExportingMetricReader(exporter, export_interval_millis=0)


def test_short_process_sends_its_records_at_exit(tmp_path: Path, receiver: Receiver) -> None:
    # The process ends long before the first background flush: the exit flush must still
    # build the exporter (the SDK does so on a thread pool, closed once shutdown begins).
    otel = {"metrics": {"exporter": {"type": "otlp", "options": {"endpoint": receiver.endpoint}}}}
    cfg = {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path)}}}}}
    code = (
        "from manystore import StorageClient, StorageClientConfig\n"
        f"c = StorageClient(StorageClientConfig.from_dict({{**{cfg!r}, 'opentelemetry': {otel!r}}}, 'p'))\n"
        "for i in range(3):\n"
        "    c.write(f'k{i}', b'abcd')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "could not be sent" not in out.stderr, out.stderr
    assert receiver.total("multistorageclient.request.sum", operation="put") == 3
    assert receiver.total("multistorageclient.data_size.sum", operation="put") == 12
