"""S9: the cost of telemetry — small-object PUT/GET with metrics on vs off.

Two clients of the same profile, one of them with an ``opentelemetry.metrics`` section
(Prometheus exporter on a free 127.0.0.1 port, so recording runs in full but nothing is
sent unless scraped), measured interleaved by ``_small_ops``; then the on/off ratio is
printed. The telemetry client records one operation and flushes before the timed runs,
so building the exporter (imports, HTTP server: 0.1-0.3 s) lands in no measured window.
Needs only manystore and the ``telemetry`` extra.

POSIX operations take ~10 µs, so at S3's object count a timed window would last ~20 ms and
one scheduler hiccup would decide the ratio: the POSIX rows use :data:`POSIX_FACTOR` times
more files, at least :data:`POSIX_RUNS` interleaved runs, and a tmpfs (``/dev/shm``) when
there is one, so that the disk's writeback does not swamp the few hundred nanoseconds
being measured (a tmpfs is also where telemetry's relative cost is highest).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from bench.libs import Endpoint, ManystoreS3, _msc_style_config
from bench.report import Report

THREADS = (1, 16)
ON = "manystore+telemetry"
#: POSIX rows: this many times S3's object count ...
POSIX_FACTOR = 10
#: ... and at least this many runs per figure.
POSIX_RUNS = 7
#: S3 rows: at least this many runs per figure (a 16-thread window lasts under half a second).
S3_RUNS = 7


def _warm_up(client: Any) -> None:
    """One recorded operation and a flush: the exporter is built before any timed run."""
    from manystore.telemetry import flush

    client.write("s9-warmup", b"")
    flush()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _PosixAdapter:
    def __init__(self, root: str, otel: dict[str, Any] | None) -> None:
        from manystore import StorageClient, StorageClientConfig

        cfg: dict[str, Any] = {
            "profiles": {"b": {"storage_provider": {"type": "file", "options": {"base_path": root}}}}
        }
        if otel:
            cfg["opentelemetry"] = otel
        self.c = StorageClient(StorageClientConfig.from_dict(cfg, profile="b"))
        if otel:
            _warm_up(self.c)

        self.root = root

    def put(self, key: str, data: bytes) -> None:
        self.c.write(key, data)

    def get(self, key: str) -> bytes:
        return self.c.read(key)

    def clear(self) -> None:
        """Remove every file of the run just measured (outside any timed window)."""
        for entry in os.scandir(self.root):
            shutil.rmtree(entry.path) if entry.is_dir() else os.unlink(entry.path)


class _S3Telemetry(ManystoreS3):
    name = ON

    def __init__(self, ep: Endpoint, otel: dict[str, Any]) -> None:
        from manystore import StorageClient, StorageClientConfig
        from manystore.types import Range

        self._range = Range
        cfg = {**_msc_style_config(ep), "opentelemetry": otel}
        self.c = StorageClient(StorageClientConfig.from_dict(cfg, profile="b"))
        _warm_up(self.c)


def s9(
    report: Report, ep: Endpoint, root: str, sizes: dict, runs: int, small_ops: Callable[..., None]
) -> None:
    """Record S9 (S3) and S9-posix rows and print the telemetry on/off ratios."""
    n = sizes["objects"]
    otel = {"metrics": {"exporter": {"type": "prometheus", "options": {"port": _free_port()}}}}
    report.describe(
        "S9", f"{n:,} x 4 KiB objects on S3, telemetry off vs on, median of {max(runs, S3_RUNS)}", "ops/s"
    )
    report.describe(
        "S9-posix",
        f"{n * POSIX_FACTOR:,} x 4 KiB files (tmpfs when there is one), telemetry off vs on, "
        f"median of {max(runs, POSIX_RUNS)}",
        "ops/s",
    )
    print("  S9", flush=True)
    small_ops(
        report,
        "S9",
        {"manystore": lambda: ManystoreS3(ep), ON: lambda: _S3Telemetry(ep, otel)},
        n,
        max(runs, S3_RUNS),
        THREADS,
    )
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="manystore-s9-", dir=shm or root) as posix_root:
        small_ops(
            report,
            "S9-posix",
            {
                "manystore": lambda: _PosixAdapter(posix_root, None),
                ON: lambda: _PosixAdapter(posix_root, otel),
            },
            n * POSIX_FACTOR,
            max(runs, POSIX_RUNS),
            THREADS,
        )
        _posix_cpu(report, posix_root, otel, n * POSIX_FACTOR, max(runs, POSIX_RUNS))
    for scen in ("S9", "S9-posix"):
        for op in ("PUT", "GET"):
            for t in THREADS:
                cells = report.rows.get((scen, op, t), {})
                off, on = cells.get("manystore"), cells.get(ON)
                if isinstance(off, float) and isinstance(on, float):
                    print(
                        f"  {scen} {op} t={t}: off {off:,.0f} ops/s, on {on:,.0f} ops/s, on/off {on / off:.3f}"
                    )


def _posix_cpu(report: Report, root: str, otel: dict[str, Any], n: int, runs: int) -> None:
    """S9-posix-cpu: process CPU time (user + system) per POSIX operation, telemetry off vs on.

    On a busy machine the wall-clock rows swing by more than the few percent being measured
    (other processes take the cores). The CPU time the process itself spends per operation
    is what telemetry adds to, and it is what bounds throughput when the work is CPU-bound
    (16 threads on a tmpfs): it moves far less with the machine's load. Interleaved runs,
    the order alternating; each run PUTs then GETs ``n`` files; medians.
    """
    import resource
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    report.describe(
        "S9-posix-cpu",
        f"{n:,} x 4 KiB files PUT then GET, process CPU time (user + system) per operation, "
        f"telemetry off vs on, median of {runs}",
        "µs",
    )
    body = os.urandom(4096)
    adapters = {"manystore": _PosixAdapter(root, None), ON: _PosixAdapter(root, otel)}
    for threads in THREADS:
        cpu: dict[str, list[float]] = {lib: [] for lib in adapters}
        with ThreadPoolExecutor(threads) as pool:
            for run in range(runs):
                order = list(adapters) if run % 2 == 0 else list(adapters)[::-1]
                for lib in order:
                    adapter = adapters[lib]
                    keys = [f"s9cpu/t{threads}/r{run}/{i:07d}" for i in range(n)]

                    def put(i: int, adapter: Any = adapter, keys: list[str] = keys) -> None:
                        adapter.put(keys[i], body)

                    def get(i: int, adapter: Any = adapter, keys: list[str] = keys) -> None:
                        adapter.get(keys[i])

                    before = resource.getrusage(resource.RUSAGE_SELF)
                    for fn in (put, get):
                        if threads == 1:
                            for i in range(n):
                                fn(i)
                        else:
                            for _ in pool.map(fn, range(n), chunksize=64):
                                pass
                    after = resource.getrusage(resource.RUSAGE_SELF)
                    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    cpu[lib].append(spent / (2 * n) * 1e6)
                    adapter.clear()
        for lib, values in cpu.items():
            report.value("S9-posix-cpu", "PUT+GET", threads, lib, statistics.median(values))
        report.unit("S9-posix-cpu", "PUT+GET", threads, "µs CPU/op ↓")
        off, on = statistics.median(cpu["manystore"]), statistics.median(cpu[ON])
        print(f"  S9-posix-cpu t={threads}: off {off:.2f} µs, on {on:.2f} µs CPU/op, on/off {on / off:.3f}")
