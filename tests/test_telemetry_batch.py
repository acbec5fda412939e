"""Batched latency histograms: one pre-bucketed measurement per attribute group and flush.

The exported OTLP data (decoded by the receiver of ``tests/test_telemetry.py``) must be
exactly what per-value recording gives; the fallback (per-value ``record``) is forced and
checked on the same values, and so is the self-check that selects it."""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manystore.telemetry import LATENCY_BUCKETS, Telemetry, _histogram, _recorder
from manystore.telemetry.instrument import is_instrumented
from tests.conftest import make_backend
from tests.test_telemetry import BACKENDS, SIZES, Receiver, _client, _otel

LATENCY = "multistorageclient.latency"


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    pair = (Receiver(), Receiver())
    yield pair
    for r in pair:
        r.server.shutdown()


def _bucket(value: float, bounds: tuple[float, ...]) -> int:
    """Reference bucketing: the first bucket whose upper bound is >= value."""
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


def _expected(values: list[float], bounds: tuple[float, ...] = LATENCY_BUCKETS) -> dict[str, Any]:
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[_bucket(v, bounds)] += 1
    return {
        "count": len(values),
        "sum": math.fsum(values),
        "min": min(values),
        "max": max(values),
        "buckets": counts,
    }


def _assert_point(dp: Any, exp: dict[str, Any]) -> None:
    assert dp.count == exp["count"]
    assert list(dp.bucket_counts) == exp["buckets"]
    assert sum(dp.bucket_counts) == dp.count
    assert dp.sum == pytest.approx(exp["sum"], rel=1e-12, abs=1e-15)
    assert dp.min == exp["min"]
    assert dp.max == exp["max"]
    assert tuple(dp.explicit_bounds) == LATENCY_BUCKETS


def test_latency_batch_buckets_like_the_sdk() -> None:
    bounds = (0.001, 0.01, 0.1)
    values = [0.0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.2, 7.0, 0.001]
    batch = _histogram.LatencyBatch(values, bounds)
    exp = _expected(values, bounds)
    assert batch.counts == exp["buckets"] == [4, 2, 2, 2]
    assert batch.count == len(values)
    assert (batch.min, batch.max) == (0.0, 7.0)
    assert batch.total == pytest.approx(math.fsum(values), rel=1e-15) and float(batch) == batch.total
    # What the SDK would drop (negative, NaN, infinite) is dropped.
    odd = _histogram.LatencyBatch([0.5, -1.0, math.nan, math.inf, 0.002], bounds)
    assert (odd.count, odd.counts, odd.min, odd.max) == (2, [0, 1, 0, 1], 0.002, 0.5)
    empty = _histogram.LatencyBatch([], bounds)
    assert (empty.count, float(empty), empty.counts) == (0, 0.0, [0, 0, 0, 0])


@pytest.mark.parametrize(
    "values",
    [
        [0.0002, 0.0007, 0.0001, 0.0009],  # one bucket: no pass over the values
        [0.0002, 0.005, 0.001, 0.0011, 0.01],  # two bounds spanned: a pass per bound
        [0.0, 0.001, 0.02, 0.3, 5, 0.001],  # more: sorted (an int value too)
        [0.001] * 5,  # exactly on a bound: that bound's bucket
    ],
    ids=["one-bucket", "two-bounds", "sorted", "on-bound"],
)
def test_latency_batch_every_bucketing_path_agrees_with_the_sdk(values: list[float]) -> None:
    bounds = (0.001, 0.01, 0.1)
    for given in (bounds, (1e-3, 1e-2, 1e-1)):
        batch = _histogram.LatencyBatch(values, given)
        assert batch.counts == _expected(values, bounds)["buckets"]
        assert (batch.min, batch.max, batch.count) == (min(values), max(values), len(values))
    ints = _histogram.LatencyBatch([0.5, 1.5, 3.0], (1, 2))  # integer bounds compare as floats
    assert ints.counts == [1, 1, 1]


def _record_twice(telemetry: Telemetry, config: dict[str, Any]) -> dict[tuple[str, str], list[float]]:
    """Two flushes' worth of records for two attribute groups; returns the values per group."""
    a = (("multistorageclient.operation", "get"), ("multistorageclient.profile", "p"))
    b = (("multistorageclient.operation", "put"), ("multistorageclient.profile", "p"))
    first_get = [0.0001, 0.0005, 0.001, 0.003, 0.75, 0.0004]
    first_err = [12.0, 0.02]
    first_put = [0.01, 0.0099, 45.0]
    second_get = [0.0002, 2.5, 0.0005]
    telemetry.record_batch(
        config,
        [
            (a, "success", len(first_get), 600, first_get),
            (a, "error.FileNotFoundError", len(first_err), None, first_err),
            (b, "success", len(first_put), 300, first_put),
        ],
    )
    telemetry.record_batch(config, [(a, "success", len(second_get), 30, second_get)])
    return {
        ("get", "success"): first_get + second_get,
        ("get", "error.FileNotFoundError"): first_err,
        ("put", "success"): first_put,
    }


def _by_group(receiver: Receiver) -> dict[tuple[str, str], Any]:
    return {
        (dict(attrs)["multistorageclient.operation"], dict(attrs)["multistorageclient.status"]): dp
        for attrs, dp in receiver.points(LATENCY).items()
    }


def test_batched_points_equal_per_value_points(
    receivers: tuple[Receiver, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_rx, slow_rx = receivers
    fast, slow = Telemetry(), Telemetry()
    fast_cfg, slow_cfg = _otel(fast_rx.endpoint)["metrics"], _otel(slow_rx.endpoint)["metrics"]
    expected = _record_twice(fast, fast_cfg)
    monkeypatch.setattr(_histogram, "ENABLED", False)  # providers built from now on: per value
    assert _record_twice(slow, slow_cfg) == expected
    assert list(fast._batched.values()) == [True]
    assert list(slow._batched.values()) == [False]
    assert fast.force_flush() and slow.force_flush()
    got_fast, got_slow = _by_group(fast_rx), _by_group(slow_rx)
    assert set(got_fast) == set(got_slow) == set(expected)
    for group, values in expected.items():
        _assert_point(got_fast[group], _expected(values))
        _assert_point(got_slow[group], _expected(values))
        f, s = got_fast[group], got_slow[group]
        assert (f.count, list(f.bucket_counts), f.min, f.max) == (
            s.count,
            list(s.bucket_counts),
            s.min,
            s.max,
        )
        assert f.sum == pytest.approx(s.sum, rel=1e-12)
    req = "multistorageclient.request.sum"
    assert fast_rx.total(req, operation="get") == slow_rx.total(req, operation="get") == 11
    assert fast_rx.total("multistorageclient.data_size.sum", operation="get") == 630
    fast.shutdown()
    slow.shutdown()


def test_self_check_falls_back_when_internals_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _histogram.batching_supported()
    # A field the merge needs is missing.
    monkeypatch.setattr(_histogram, "_SUPPORTED", None)
    monkeypatch.setattr(_histogram, "_REQUIRED", (*_histogram._REQUIRED, "_no_such_field"))
    assert not _histogram.batching_supported()
    assert _histogram.latency_views(LATENCY, LATENCY_BUCKETS) == []
    monkeypatch.undo()
    # The SDK no longer reaches the merge (the batch is taken as one value): wrong point.
    monkeypatch.setattr(_histogram, "_SUPPORTED", None)
    monkeypatch.setattr(
        _histogram._BatchExplicitBucketHistogramAggregation,
        "aggregate",
        _histogram._ExplicitBucketHistogramAggregation.aggregate,
    )
    assert not _histogram.batching_supported()
    monkeypatch.undo()
    monkeypatch.setattr(_histogram, "_SUPPORTED", None)
    assert _histogram.batching_supported()
    assert len(_histogram.latency_views(LATENCY, LATENCY_BUCKETS)) == 1


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-value"])
@pytest.mark.parametrize("name", BACKENDS)
def test_exported_histograms_match_recorded_latencies(
    name: str,
    batched: bool,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    receivers: tuple[Receiver, Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = receivers[0]
    monkeypatch.setattr(_histogram, "ENABLED", batched)
    backend = make_backend(name, request, tmp_path)
    telemetry = Telemetry()
    client = _client(backend.config, _otel(receiver.endpoint), telemetry)
    assert is_instrumented(client._storage_provider)
    assert _recorder.flush_buffer()  # records of earlier clients go now
    sink = client._storage_provider._manystore_telemetry.sink
    with _recorder._flush_lock:  # no background flush until the records are read here
        for i, size in enumerate(SIZES):
            client.write(f"h/obj{i}", b"x" * size)
        for _ in range(3):
            for i, size in enumerate(SIZES):
                assert len(client.read(f"h/obj{i}")) == size
        with pytest.raises(FileNotFoundError):
            client.read("h/missing")
        recorded: dict[tuple[str, str], list[float]] = {}
        for group, latencies, _sizes in _recorder.pending():
            if group.sink is sink:
                op = dict(group.attrs)["multistorageclient.operation"]
                recorded.setdefault((op, group.status), []).extend(latencies)
    assert _recorder.flush_buffer()
    assert telemetry.force_flush()
    assert list(telemetry._batched.values()) == [batched]
    assert len(recorded[("put", "success")]) == len(SIZES)
    assert len(recorded[("get", "success")]) == 3 * len(SIZES)
    errors = [g for g in recorded if g[0] == "get" and g[1].startswith("error.")]
    assert len(errors) == 1 and len(recorded[errors[0]]) == 1
    got = _by_group(receiver)
    for group, values in recorded.items():
        _assert_point(got[group], _expected(values))
    telemetry.shutdown()


@pytest.mark.parametrize("name", BACKENDS)
def test_download_and_upload_record_their_byte_counts(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    """The wrappers of ``download_file`` / ``upload_file`` find the file among their arguments."""
    backend = make_backend(name, request, tmp_path)
    telemetry = Telemetry()
    client = _client(backend.config, _otel(receivers[0].endpoint), telemetry)
    provider = client._storage_provider
    assert _recorder.flush_buffer()
    src = tmp_path / "src.bin"
    src.write_bytes(b"u" * 3000)
    with _recorder._flush_lock:
        provider.upload_file("d/obj", str(src))
        provider.download_file("d/obj", str(tmp_path / "to-path.bin"))  # by path
        with open(tmp_path / "to-file.bin", "wb") as fh:
            fh.write(b"already")  # counted from where the file stood
            provider.download_file("d/obj", fh)  # by open file
        sizes = {
            dict(g.attrs)["multistorageclient.operation"]: sorted(nb)
            for g, _lat, nb in _recorder.pending()
            if g.sink is provider._manystore_telemetry.sink and g.status == "success"
        }
    assert sizes["upload"] == [3000]
    assert sizes["download"] == [3000, 3000]
    assert _recorder.flush_buffer()
    telemetry.shutdown()


def test_forked_child_rebuilds_process_attributes(
    tmp_path: Path, request: pytest.FixtureRequest, receivers: tuple[Receiver, Receiver]
) -> None:
    backend = make_backend("file", request, tmp_path)
    attributes = [{"type": "process", "options": {"attributes": {"pid": "pid"}}}]
    telemetry = Telemetry()
    client = _client(backend.config, _otel(receivers[0].endpoint, attributes), telemetry)
    client.write("k", b"abc")
    state = client._storage_provider._manystore_telemetry
    assert dict(state.ok["put"].attrs)["pid"] == os.getpid()
    pid = os.fork()
    if pid == 0:  # the child reports through its exit status only
        code = 1
        try:
            client.read("k")
            groups = [g for g, _, _ in _recorder.pending()]
            if len(groups) == 1 and dict(groups[0].attrs)["pid"] == os.getpid() != os.getppid():
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert dict(state.ok["put"].attrs)["pid"] == os.getpid()  # the parent's cache is untouched
    client.read("k")
    assert _recorder.flush_buffer() and telemetry.force_flush()
    pids = {dict(a)["pid"] for a in receivers[0].points("multistorageclient.request.sum")}
    assert pids == {os.getpid()}
    telemetry.shutdown()


_SENTINEL = object()


class _Echo:
    """Provider-shaped methods with every kind of parameter; each returns what it received."""

    provider_name = "echo"

    def get_object(
        self, path: str, byte_range: Any = None, /, *rest: Any, if_match: Any = _SENTINEL, **extra: Any
    ) -> Any:
        if path == "missing":
            raise FileNotFoundError(path)
        return b"x" * len(path) if byte_range is None else (path, byte_range, rest, if_match, extra)

    def put_object(self, path: str, body: Any, metadata: Any = None, *, if_none_match: Any = None) -> Any:
        return (path, len(body), metadata, if_none_match)

    def delete_object(self, *args: Any, **kwargs: Any) -> Any:
        return (args, kwargs)


def test_compiled_wrappers_forward_every_argument(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    from manystore.telemetry.instrument import InstrumentationSpec, instrument

    telemetry = Telemetry()
    spec = InstrumentationSpec("p", _otel(receivers[0].endpoint)["metrics"], {}, telemetry)
    echo = instrument(_Echo(), spec)
    assert type(echo) is _Echo  # wrappers are set on the instance; the class is untouched
    for name in ("get_object", "put_object", "delete_object"):
        assert getattr(echo, name).__code__.co_filename.startswith("<manystore telemetry wrapper")
        assert getattr(echo, name).__name__ == name
        assert getattr(_Echo(), name).__code__ is getattr(_Echo, name).__code__  # other instances: plain
    assert "self" not in inspect.signature(echo.get_object).parameters
    assert _recorder.flush_buffer()
    with _recorder._flush_lock:
        assert echo.get_object("abcd") == b"xxxx"
        assert echo.get_object("k", 5, 6, 7, z=1) == ("k", 5, (6, 7), _SENTINEL, {"z": 1})
        assert echo.get_object("k", 5, if_match="e") == ("k", 5, (), "e", {})
        with pytest.raises(TypeError):
            echo.get_object(path="k")  # positional-only stays positional-only
        with pytest.raises(FileNotFoundError):
            echo.get_object("missing")
        assert echo.put_object("k", b"12345") == ("k", 5, None, None)
        assert echo.put_object(body=memoryview(b"123"), path="k", if_none_match="*") == ("k", 3, None, "*")
        assert echo.delete_object("a", b=2) == (("a",), {"b": 2})
        records = {
            (dict(g.attrs)["multistorageclient.operation"], g.status): (len(lat), sizes)
            for g, lat, sizes in _recorder.pending()
            if g.sink is spec
        }
    assert records == {  # (operations, byte counts of those that moved bytes)
        ("get", "success"): (3, [4]),
        ("get", "error.FileNotFoundError"): (1, []),
        ("put", "success"): (2, [5, 3]),
        ("delete", "success"): (1, []),
    }
    assert _recorder.flush_buffer() and telemetry.force_flush()
    assert receivers[0].total("multistorageclient.request.sum", operation="get") == 4
    assert receivers[0].total(LATENCY, operation="put") == 2
    telemetry.shutdown()


def test_counts_exact_with_16_threads_and_flushes_racing(
    tmp_path: Path, request: pytest.FixtureRequest, receivers: tuple[Receiver, Receiver]
) -> None:
    # Records are appended (bytes, then latency) while flushes pop them: none may be lost
    # or counted twice, and every byte count must reach the same totals.
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event, Thread

    backend = make_backend("file", request, tmp_path)
    telemetry = Telemetry()
    client = _client(backend.config, _otel(receivers[0].endpoint), telemetry)
    threads, per_thread = 16, 150
    done = Event()

    def flusher() -> None:
        while not done.is_set():
            _recorder.flush_buffer()

    def work(t: int) -> None:
        for i in range(per_thread):
            client.write(f"r/{t}/{i}", b"x" * (i % 7 + 1))
            assert len(client.read(f"r/{t}/{i}")) == i % 7 + 1

    racer = Thread(target=flusher)
    racer.start()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    done.set()
    racer.join()
    assert _recorder.flush_buffer() and telemetry.force_flush()
    n = threads * per_thread
    size = threads * sum(i % 7 + 1 for i in range(per_thread))
    for op in ("put", "get"):
        assert receivers[0].total("multistorageclient.request.sum", operation=op) == n
        assert receivers[0].total(LATENCY, operation=op) == n
        assert receivers[0].total("multistorageclient.data_size.sum", operation=op) == size
    telemetry.shutdown()
