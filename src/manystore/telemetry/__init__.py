"""OpenTelemetry metrics for every storage operation.

Telemetry is off unless the config has an ``opentelemetry.metrics`` section; then each
client built from it records, per operation (``get``, ``put``, ``head``, ``list``,
``delete``, ``copy``, ``upload``, ``download``...), a request count, a response count by
status (``success`` or ``error.<ExceptionClass>``), the bytes moved and a latency
histogram, labelled with the profile, provider type and operation plus the attributes of
the configured attribute providers. See ``docs/telemetry.md``.

Where the meter provider and exporter live is chosen with :func:`init`:

* :attr:`TelemetryMode.LOCAL` — in this process (a forked child starts with empty
  instruments of its own, so nothing is exported twice);
* :attr:`TelemetryMode.SERVER` — in a manager process started here; worker processes
  (forked or spawned, e.g. DataLoader or sync workers) send their records to it, so there
  is one exporter and one set of totals for the whole process tree;
* :attr:`TelemetryMode.CLIENT` — connect to the manager of an ancestor process (or ``address``).

Nothing here imports OpenTelemetry until telemetry is used.
"""

from __future__ import annotations

import atexit
import enum
import json
import logging
import multiprocessing
import multiprocessing.managers
import os
import threading
from typing import Any, ClassVar

__all__ = ["Telemetry", "TelemetryManager", "TelemetryMode", "flush", "init"]

logger = logging.getLogger(__name__)

#: Latency histogram bucket boundaries, in seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class TelemetryMode(enum.Enum):
    """Where :func:`init` puts the meter providers and exporters."""

    #: In this process.
    LOCAL = "local"
    #: In a manager process started (and connected to) by this process.
    SERVER = "server"
    #: In the manager process of an ancestor (or at a given address).
    CLIENT = "client"


def _key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


class Telemetry:
    """Meter providers and instruments, one set per distinct ``opentelemetry.metrics`` config.

    Get one from :func:`init`; in SERVER/CLIENT mode what you get is a proxy to the instance
    living in the manager process (the same methods, called over IPC). A local instance
    pickles as "the receiving process's :func:`init` ``()``" — instruments are never copied
    between processes.
    """

    class CounterName(enum.Enum):
        """Counters recorded for every operation."""

        #: Requests started (labels: profile, provider, operation, attributes).
        REQUEST_SUM = "multistorageclient.request.sum"
        #: Responses, also labelled by ``multistorageclient.status``.
        RESPONSE_SUM = "multistorageclient.response.sum"
        #: Bytes read or written by successful operations.
        DATA_SIZE_SUM = "multistorageclient.data_size.sum"

    class HistogramName(enum.Enum):
        """Histograms recorded for every operation."""

        #: Operation latency in seconds (labels as RESPONSE_SUM).
        LATENCY = "multistorageclient.latency"

    class GaugeName(enum.Enum):
        """Gauges available to callers of :meth:`gauge` (manystore itself records histograms)."""

        DATA_SIZE = "multistorageclient.data_size"
        DATA_RATE = "multistorageclient.data_rate"
        FILE_DESCRIPTOR_DURATION = "multistorageclient.file_descriptor.duration"

    class UpDownCounterName(enum.Enum):
        """Up-down counters available to callers of :meth:`up_down_counter`."""

        FILE_DESCRIPTOR_OPEN = "multistorageclient.file_descriptor.open"

    _UNITS: ClassVar[dict[str, str]] = {
        "multistorageclient.request.sum": "{request}",
        "multistorageclient.response.sum": "{response}",
        "multistorageclient.data_size.sum": "By",
        "multistorageclient.latency": "s",
        "multistorageclient.data_size": "By",
        "multistorageclient.data_rate": "By/s",
        "multistorageclient.file_descriptor.duration": "s",
        "multistorageclient.file_descriptor.open": "{file_descriptor}",
    }

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._providers: dict[str, Any] = {}
        self._instruments: dict[tuple[str, str], Any] = {}
        self._batched: dict[str, bool] = {}
        self._pid = os.getpid()

    def __reduce__(self) -> tuple[Any, ...]:
        return (init, ())

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's providers (their counts belong to the parent)."""
        self._lock = threading.RLock()
        self._providers = {}
        self._instruments = {}
        self._batched = {}
        self._pid = os.getpid()

    # ------------------------------------------------------------ providers
    def meter_provider(self, config: dict[str, Any]) -> Any:
        """The SDK ``MeterProvider`` for an ``opentelemetry.metrics`` config (built once)."""
        return self._provider(_key(config), config)

    def _provider(self, key: str, config: dict[str, Any]) -> Any:
        with self._lock:
            provider = self._providers.get(key)
            if provider is None:
                from ._histogram import latency_views
                from ._setup import build_meter_provider

                views = latency_views(Telemetry.HistogramName.LATENCY.value, LATENCY_BUCKETS)
                provider = self._providers[key] = build_meter_provider(config, views)
                self._batched[key] = bool(views)
            return provider

    def meter(self, config: dict[str, Any]) -> Any:
        """The ``Meter`` named ``multistorageclient`` of :meth:`meter_provider`."""
        return self.meter_provider(config).get_meter("multistorageclient")

    def _instrument(self, config: dict[str, Any], kind: str, name: str, config_key: str | None = None) -> Any:
        ckey = _key(config) if config_key is None else config_key
        key = (ckey, name)
        with self._lock:
            inst = self._instruments.get(key)
            if inst is None:
                meter = self._provider(ckey, config).get_meter("multistorageclient")
                unit = Telemetry._UNITS.get(name, "")
                if kind == "histogram":
                    inst = meter.create_histogram(
                        name, unit, explicit_bucket_boundaries_advisory=LATENCY_BUCKETS
                    )
                else:
                    inst = getattr(meter, f"create_{kind}")(name, unit)
                self._instruments[key] = inst
            return inst

    def counter(self, config: dict[str, Any], name: CounterName) -> Any:
        """A ``Counter`` of the config's meter."""
        return self._instrument(config, "counter", name.value)

    def histogram(self, config: dict[str, Any], name: HistogramName) -> Any:
        """A ``Histogram`` of the config's meter (latency buckets in seconds)."""
        return self._instrument(config, "histogram", name.value)

    def gauge(self, config: dict[str, Any], name: GaugeName) -> Any:
        """A synchronous ``Gauge`` of the config's meter."""
        return self._instrument(config, "gauge", name.value)

    def up_down_counter(self, config: dict[str, Any], name: UpDownCounterName) -> Any:
        """An ``UpDownCounter`` of the config's meter."""
        return self._instrument(config, "up_down_counter", name.value)

    # ------------------------------------------------------------ recording
    def record_batch(self, config: dict[str, Any], batch: list[tuple[Any, ...]]) -> None:
        """Record aggregated operation records (what instrumented providers send).

        Args:
            config: The ``opentelemetry.metrics`` section.
            batch: ``(attribute_items, status, count, nbytes, latencies)`` tuples:
                ``count`` operations with those attributes and status, ``nbytes`` bytes
                moved (or ``None``) and each operation's latency in seconds.

        The latencies of a tuple reach the histogram as one pre-bucketed measurement when
        the SDK supports it (see :mod:`manystore.telemetry._histogram`), else one by one;
        the exported data points are the same.
        """
        key = _key(config)
        requests = self._instrument(config, "counter", Telemetry.CounterName.REQUEST_SUM.value, key)
        responses = self._instrument(config, "counter", Telemetry.CounterName.RESPONSE_SUM.value, key)
        data = self._instrument(config, "counter", Telemetry.CounterName.DATA_SIZE_SUM.value, key)
        latency = self._instrument(config, "histogram", Telemetry.HistogramName.LATENCY.value, key)
        batched = self._batched.get(key, False)
        if batched:
            from ._histogram import LatencyBatch
        for items, status, count, nbytes, latencies in batch:
            attrs = dict(items)
            requests.add(count, attrs)
            attrs["multistorageclient.status"] = status
            responses.add(count, attrs)
            if nbytes is not None:
                data.add(nbytes, attrs)
            if batched:
                latency.record(LatencyBatch(latencies, LATENCY_BUCKETS), attrs)
            else:
                for value in latencies:
                    latency.record(value, attrs)

    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """Collect and export everything recorded so far, for every config."""
        ok = True
        with self._lock:
            providers = list(self._providers.values())
        for provider in providers:
            ok = bool(provider.force_flush(timeout_millis)) and ok
        return ok

    def shutdown(self) -> None:
        """Flush and shut down the meter providers this process built (idempotent)."""
        with self._lock:
            providers, self._providers, self._instruments = list(self._providers.values()), {}, {}
            self._batched = {}
        if os.getpid() != self._pid:
            return
        from ._setup import close_http_server

        for provider in providers:
            try:
                provider.shutdown()
            except Exception:
                logger.exception("telemetry shutdown failed")
            close_http_server(provider)


class TelemetryManager(multiprocessing.managers.BaseManager):
    """The manager whose server process owns the shared :class:`Telemetry` (SERVER/CLIENT modes).

    Workers send batches of records with one IPC call per flush, so the per-operation cost
    in a worker does not include IPC.
    """


_TELEMETRY_METHODS = (
    "record_batch",
    "force_flush",
    "shutdown",
    "counter",
    "histogram",
    "gauge",
    "up_down_counter",
)
TelemetryManager.register("Counter", exposed=("add",))
TelemetryManager.register("Histogram", exposed=("record",))
TelemetryManager.register("Gauge", exposed=("set",))
TelemetryManager.register("UpDownCounter", exposed=("add",))


def _local() -> Telemetry:
    global _LOCAL
    with _LOCK:
        if _LOCAL is None:
            _LOCAL = Telemetry()
            atexit.register(_shutdown_local, os.getpid())
        return _LOCAL


TelemetryManager.register(
    "Telemetry",
    callable=_local,
    exposed=_TELEMETRY_METHODS,
    method_to_typeid={
        "counter": "Counter",
        "histogram": "Histogram",
        "gauge": "Gauge",
        "up_down_counter": "UpDownCounter",
    },
)

_LOCK = threading.Lock()
_LOCAL: Telemetry | None = None
#: ``(mode, address)`` -> proxy, for this process.
_PROXIES: dict[tuple[str, Any], Any] = {}
_MANAGERS: list[TelemetryManager] = []


def _shutdown_local(pid: int) -> None:
    if os.getpid() == pid and _LOCAL is not None:
        from . import _recorder

        _recorder.flush_buffer()
        _LOCAL.shutdown()


def _local_exit() -> None:
    """At a process's exit (after its buffer is sent): export what its LOCAL instance holds."""
    if _LOCAL is not None and _LOCAL._pid == os.getpid():
        _LOCAL.shutdown()


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()
    _PROXIES.clear()  # a child opens its own connections
    _MANAGERS.clear()  # the parent owns the server
    if _LOCAL is not None:
        _LOCAL._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def default_port(pid: int) -> int:
    """The manager port a SERVER started by process ``pid`` listens on (49152 + pid mod 16384)."""
    return 49152 + pid % 16384


def _ancestors() -> list[int]:
    """This process and its ancestors, nearest first (Linux ``/proc``; else just the parent)."""
    pids = [os.getpid()]
    pid = os.getppid()
    while pid > 1 and len(pids) < 64:
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _normalize(address: str | tuple[str, int]) -> Any:
    return tuple(address) if isinstance(address, (list, tuple)) else address


def _init_server(address: str | tuple[str, int] | None) -> Telemetry:
    addr = _normalize(address) if address is not None else ("127.0.0.1", default_port(os.getpid()))
    with _LOCK:
        proxy = _PROXIES.get(("server", addr))
        if proxy is not None:
            return proxy
        manager = TelemetryManager(address=addr, ctx=multiprocessing.get_context("spawn"))
        manager.start()
        _MANAGERS.append(manager)
        proxy = manager.Telemetry()  # type: ignore[attr-defined]
        _PROXIES[("server", addr)] = proxy
        atexit.register(_stop_server, os.getpid(), manager, proxy)
        return proxy


def _stop_server(pid: int, manager: TelemetryManager, proxy: Any) -> None:
    if os.getpid() != pid:
        return
    from . import _recorder

    _recorder.flush_buffer()
    try:
        proxy.shutdown()
    except Exception:
        logger.exception("telemetry server shutdown failed")
    manager.shutdown()


def _connect(addr: Any) -> Telemetry:
    manager = TelemetryManager(address=addr)
    manager.connect()
    return manager.Telemetry()  # type: ignore[attr-defined]


def _init_client(address: str | tuple[str, int] | None) -> Telemetry:
    candidates = (
        [_normalize(address)]
        if address is not None
        else [("127.0.0.1", default_port(pid)) for pid in _ancestors()]
    )
    with _LOCK:
        for addr in candidates:
            proxy = _PROXIES.get(("client", addr)) or _PROXIES.get(("server", addr))
            if proxy is not None:
                return proxy
        errors = []
        for addr in candidates:
            try:
                proxy = _connect(addr)
            except (OSError, EOFError, multiprocessing.AuthenticationError) as exc:
                errors.append(f"{addr}: {exc}")
                continue
            _PROXIES[("client", addr)] = proxy
            return proxy
    raise ConnectionError(f"no telemetry manager reachable; tried {'; '.join(errors)}")


def init(mode: TelemetryMode | None = None, address: str | tuple[str, int] | None = None) -> Telemetry:
    """This process's :class:`Telemetry` for ``mode`` (created once, then reused).

    Args:
        mode: ``LOCAL``, ``SERVER`` (start a manager process: listening on ``address``,
            default ``127.0.0.1:``:func:`default_port` ``(os.getpid())``) or ``CLIENT``
            (connect to ``address``, default: the manager of the nearest ancestor process
            that started one). ``None``: CLIENT if an ancestor runs a manager, else LOCAL.
        address: The manager's ``(host, port)`` or socket path; ignored for LOCAL.

    Returns:
        The instance (LOCAL) or a proxy to the manager's instance.

    Raises:
        ConnectionError: CLIENT mode and no manager answers.
        ValueError: ``mode`` is not a :class:`TelemetryMode`.
    """
    if mode is None:
        if multiprocessing.parent_process() is not None or address is not None:
            try:
                return _init_client(address)
            except ConnectionError:
                pass
        return _local()
    if mode is TelemetryMode.LOCAL:
        return _local()
    if mode is TelemetryMode.SERVER:
        return _init_server(address)
    if mode is TelemetryMode.CLIENT:
        return _init_client(address)
    raise ValueError(f"mode: expected a TelemetryMode (LOCAL, SERVER or CLIENT), got {mode!r}")


def flush(timeout_millis: float = 30_000) -> bool:
    """Send this process's buffered records and make every known exporter export now.

    Args:
        timeout_millis: Time limit of each exporter flush.

    Returns:
        True if every flush succeeded.
    """
    from . import _recorder

    ok = _recorder.flush_buffer()
    targets: list[Any] = list(_PROXIES.values())
    if _LOCAL is not None:
        targets.append(_LOCAL)
    for target in targets:
        try:
            ok = bool(target.force_flush(timeout_millis)) and ok
        except Exception:
            logger.exception("telemetry flush failed")
            ok = False
    return ok
