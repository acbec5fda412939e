"""S11: feeding a PyTorch DataLoader from raw objects, manystore vs its peers.

Objects: ``n`` x 16 KiB and ``n / 10`` x 256 KiB under ``s11/`` of the bench bucket, written
into rclone's backing directory before the server starts. Each cell is a fresh process
(``python -m bench.torch_loader JSON``) that builds the dataset, wraps it in a
``torch.utils.data.DataLoader`` (batch 64, ``num_workers`` 0 or 2, no shuffle, default
``fork`` workers, ``persistent_workers=False`` as everywhere by default), and runs 2 epochs,
checking that every epoch delivered ``n`` samples of the right size.

Libraries, each at its documented best settings:

- ``manystore`` ``MapDataset``/``IterableDataset.from_prefix("s3://...", endpoint=...,
  s3client_config=S3ClientConfig(force_path_style=True))`` — the seed's call with only the
  import changed; defaults (8 objects fetched ahead per process within 64 MiB; the map
  dataset fetches a DataLoader batch concurrently through ``__getitems__``); the iterable
  one with ``enable_sharding=True`` so 2 workers split the objects.
- ``s3torchconnector`` 1.5 ``S3MapDataset``/``S3IterableDataset.from_prefix`` with the same
  arguments (its README: the default sequential reader for whole objects,
  ``enable_sharding=True`` for the iterable one with workers, ``force_path_style`` for a
  custom endpoint).
- ``litdata`` ``StreamingRawDataset`` (its own venv, ``.tools/litdata-venv``: see the Makefile)
  with ``storage_options={"endpoint_url": ...}``, read through litdata's own
  ``StreamingDataLoader`` at the same batch size and workers (its README's way to load it).
- ``msc`` 1.3.1 (its own venv, ``.tools/msc-torch-venv``: MSC plus torch 2.13.0): MSC has no
  dataset class, so a map dataset whose items are ``msc.open(url).read()`` over a list from
  ``msc.list`` in the parent — what an MSC user writes; default S3 provider options.

Figures per cell: samples/s of epoch 1 (from before the dataset is built: listing included)
and epoch 2, time to the first batch (from before the dataset is built), peak RSS summed
over the parent and its DataLoader workers (``VmRSS`` sampled every 50 ms, plus the parent's
``VmHWM``; a forked worker's pages shared with its parent count twice, alike for all), and
the LIST / GET / HEAD requests of one extra run sent through ``tests/faultproxy.py`` (a
Python reverse proxy: its timing is discarded; the timed runs talk to rclone directly).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._children import run_json_child

if TYPE_CHECKING:
    from bench.libs import Endpoint
    from bench.report import Report

REPO = Path(__file__).resolve().parent.parent
KiB = 1 << 10
BATCH = 64
EPOCHS = 2
WORKERS = (0, 2)
PREFIX = "s11"
#: Column name -> (venv python relative to the repo or None for this interpreter, dataset kinds).
LIBS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "manystore": (None, ("map", "iterable")),
    "s3torchconnector": (None, ("map", "iterable")),
    "litdata": (".tools/litdata-venv/bin/python", ("map",)),
    "msc": (".tools/msc-torch-venv/bin/python", ("map",)),
}


def shapes(quick: bool) -> list[tuple[int, int]]:
    """``(count, size)`` of the two object sets."""
    return [(2000, 16 * KiB), (200, 256 * KiB)] if quick else [(20_000, 16 * KiB), (2000, 256 * KiB)]


def _folder(count: int, size: int, lib: str = "") -> str:
    # litdata writes ``index.json.zstd`` next to the data it opens: its own copy of the objects
    # keeps that file out of the other libraries' listings.
    top = f"{PREFIX}-litdata" if lib == "litdata" else PREFIX
    return f"{top}/{count}x{size // KiB}k/"


def populate(bucket_dir: Path, quick: bool) -> None:
    """Write the objects straight into rclone's backing directory (before the server starts)."""
    for count, size in shapes(quick):
        block = os.urandom(size + count)
        for lib in ("", "litdata"):
            folder = bucket_dir / _folder(count, size, lib)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"obj{i:06d}.bin").write_bytes(block[i : i + size])


# ---------------------------------------------------------------------------- child side
def _status_kib(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid`` (every thread's ``children`` file), recursively."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            continue
        for kid in kids:
            found.append(kid)
            found.extend(_descendants(kid))
    return found


def _pss_kib(pid: int | str) -> int:
    """Proportional set size: shared pages split between the processes mapping them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssSampler:
    """Peaks of this process's plus its descendants' RSS and PSS, summed, sampled on a thread.

    RSS counts a forked child's pages shared with its parent twice; PSS splits them, so its
    sum is the memory the process tree really holds.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.peak_kib = 0
        self.peak_pss_kib = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = os.getpid()
        tree = [me, *_descendants(me)]
        rss = sum(_status_kib(p, "VmRSS:") for p in tree)
        self.peak_kib = max(self.peak_kib, rss, _status_kib(me, "VmHWM:"))
        self.peak_pss_kib = max(self.peak_pss_kib, sum(_pss_kib(p) for p in tree))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _version(lib: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"msc": "multi-storage-client"}.get(lib, lib)
    try:
        return f"{version(dist)} (torch {version('torch')})"
    except PackageNotFoundError:
        return "?"


def _read_all(reader: Any) -> bytes:
    return reader.read()


def _collate(batch: list[bytes]) -> list[bytes]:
    return batch


def _build(spec: dict) -> tuple[Any, Any]:
    """``(dataset, DataLoader class)`` for the spec's library and kind."""
    from torch.utils.data import DataLoader

    lib, kind, ep = spec["lib"], spec["kind"], spec["endpoint"]
    url = f"s3://{ep['bucket']}/{spec['folder']}"
    if lib in ("manystore", "s3torchconnector"):
        if lib == "manystore":
            from manystore.torch import S3ClientConfig, S3IterableDataset, S3MapDataset
        else:
            from s3torchconnector import S3ClientConfig, S3IterableDataset, S3MapDataset
        args: dict[str, Any] = {
            "region": ep["region"],
            "endpoint": ep["url"],
            "transform": _read_all,
            "s3client_config": S3ClientConfig(force_path_style=True),
        }
        if kind == "map":
            return S3MapDataset.from_prefix(url, **args), DataLoader
        return S3IterableDataset.from_prefix(url, enable_sharding=True, **args), DataLoader
    if lib == "litdata":
        import tempfile

        from litdata import StreamingRawDataset
        from litdata.streaming import downloader

        # Its async downloads build an obstore S3Store with fixed client options that refuse a
        # plain-http endpoint (no option or environment variable reaches them): the one change
        # made to litdata here is adding ``allow_http`` to those options.
        downloader._OBSTORE_CLIENT_OPTIONS = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": True}

        # Its README: a plain DataLoader; defaults (adaptive download concurrency, 16 items
        # looked ahead per worker). A fresh local cache per process; the index it uploads next
        # to the data on first open (its "indexed once" design) is found by later runs.
        # Credentials from the AWS_* environment: its lister (s3fs) and downloader (boto3) name
        # the key options differently; both read the environment.
        options = {"endpoint_url": ep["url"]}
        cache = tempfile.mkdtemp(prefix="s11-litdata-")
        return StreamingRawDataset(url, cache_dir=cache, storage_options=options), DataLoader
    if lib == "msc":
        return _MscDataset.build(spec), DataLoader
    raise ValueError(f"unknown library {lib!r}: expected one of {', '.join(LIBS)}")


class _MscDataset:
    """Map-style dataset over MSC: ``msc.list`` once in the parent, ``msc.open(url).read()`` per item."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls

    @classmethod
    def build(cls, spec: dict) -> _MscDataset:
        import multistorageclient as msc

        prefix = f"msc://b/{spec['folder']}"
        # msc.list yields metadata whose key is already the full msc:// URL.
        urls = [obj.key if "://" in obj.key else f"msc://b/{obj.key}" for obj in msc.list(prefix)]
        return cls(urls)

    def __len__(self) -> int:
        return len(self.urls)

    def __getitem__(self, index: int) -> bytes:
        import multistorageclient as msc

        with msc.open(self.urls[index], "rb") as f:
            return f.read()


def _msc_config(ep: dict, path: Path) -> None:
    """The MSC config file (profile ``b``) the msc child reads through ``MSC_CONFIG``."""
    options = {"base_path": ep["bucket"], "endpoint_url": ep["url"], "region_name": ep["region"]}
    profile = {
        "storage_provider": {"type": "s3", "options": options},
        "credentials_provider": {
            "type": "S3Credentials",
            "options": {"access_key": ep["access_key"], "secret_key": ep["secret_key"]},
        },
    }
    path.write_text(json.dumps({"profiles": {"b": profile}}))


def measure(spec: dict) -> dict:
    """Run the spec's 2 epochs; the figures of this process as a JSON-able dict."""
    import torch  # noqa: F401  (imported before the clock starts, as a training script would)

    count, size, workers = spec["count"], spec["size"], spec["workers"]
    epoch_seconds: list[float] = []
    first_batch = 0.0
    with RssSampler() as rss:
        start = time.perf_counter()
        dataset, loader_cls = _build(spec)
        loader = loader_cls(dataset, batch_size=BATCH, num_workers=workers, collate_fn=_collate)
        for epoch in range(EPOCHS):
            if epoch:
                start = time.perf_counter()
            samples = nbytes = 0
            for batch in loader:
                if not first_batch:
                    first_batch = time.perf_counter() - start
                samples += len(batch)
                nbytes += sum(len(b) for b in batch)
            epoch_seconds.append(time.perf_counter() - start)
            if samples != count or nbytes != count * size:
                raise RuntimeError(
                    f"epoch {epoch + 1}: {samples} samples / {nbytes} bytes, expected {count} / {count * size}"
                )
    return {
        "epoch_seconds": epoch_seconds,
        "first_batch": first_batch,
        "rss_mib": rss.peak_kib / KiB,
        "pss_mib": rss.peak_pss_kib / KiB,
        "version": _version(spec["lib"]),
    }


def child_main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    try:
        result = measure(spec)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- parent side
def _count_requests(log: list[tuple[str, str]], bucket: str) -> dict[str, int]:
    """LIST / GET / HEAD / other among the proxy's ``(method, path?query)`` log entries."""
    counts = {"LIST": 0, "GET": 0, "HEAD": 0, "other": 0}
    for method, target in log:
        parts = urllib.parse.urlsplit(target)
        path = parts.path.strip("/")
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        if method == "GET" and path in ("", bucket) and ("list-type" in query or "prefix" in query):
            counts["LIST"] += 1
        elif method == "GET" and path not in ("", bucket):
            counts["GET"] += 1
        elif method == "HEAD":
            counts["HEAD"] += 1
        else:
            counts["other"] += 1
    return counts


def _run_child(spec: dict, work: Path) -> dict:
    python, _kinds = LIBS[spec["lib"]]
    extra: dict[str, str] = {}
    if spec["lib"] == "msc":
        config = work / f"msc-{abs(hash(spec['endpoint']['url']))}.json"
        _msc_config(spec["endpoint"], config)
        extra["MSC_CONFIG"] = str(config)
    return run_json_child("bench.torch_loader", spec, python, extra)


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def s11(report: Report, ep: Endpoint, work: Path, quick: bool, runs: int, libs: list[str]) -> None:
    """DataLoader rows: every (library, dataset kind, shape, workers) cell, ``runs`` timed runs each.

    Cells run interleaved (the order rotates every run) so drift hits every library alike;
    run 0 goes through the fault proxy and only counts requests.
    """
    from dataclasses import asdict

    from tests.faultproxy import FaultProxy

    # Its four libraries, unless --libs names s3torchconnector or litdata (which no other
    # scenario knows): then only the named ones.
    chosen = [lib for lib in LIBS if lib in libs]
    if not {"s3torchconnector", "litdata"} & set(libs):
        chosen = list(LIBS)
    desc = ", ".join(f"{c:,} x {s // KiB} KiB" for c, s in shapes(quick))
    title = (
        f"DataLoader over raw objects ({desc}), batch {BATCH}, {EPOCHS} epochs; `Threads` = DataLoader "
        "workers; manystore/s3torchconnector rows per dataset kind (map: `MapDataset`/`S3MapDataset`, "
        "iterable: `IterableDataset`/`S3IterableDataset`); litdata (`StreamingRawDataset`) and msc "
        "(`msc.open().read()` map dataset) in the map rows. Epoch 1 and first batch count from before "
        "the dataset is built (listing included). RSS / PSS: peak of the sum over the parent and its "
        "DataLoader workers (absolute, not a delta; RSS counts pages a forked worker shares with its "
        "parent twice, PSS splits them). Requests: one extra run through tests/faultproxy.py"
    )
    report.describe("S11", title, "samples/s")
    cells = [
        (lib, kind, count, size, workers)
        for count, size in shapes(quick)
        for workers in WORKERS
        for lib in chosen
        for kind in LIBS[lib][1]
    ]
    results: dict[tuple, list[dict]] = {cell: [] for cell in cells}
    counts: dict[tuple, dict[str, int] | str] = {}
    proxy = FaultProxy(ep.url)
    loads = [_load()]
    try:
        for run in range(runs + 1):
            shift = run % len(cells)
            for cell in cells[shift:] + cells[:shift]:
                lib, kind, count, size, workers = cell
                if any("error" in r for r in results[cell]) or isinstance(counts.get(cell), str):
                    continue
                endpoint = asdict(ep)
                if run == 0:
                    endpoint["url"] = proxy.url
                    before = len(proxy.requests_log)
                spec = {"lib": lib, "kind": kind, "count": count, "size": size, "workers": workers}
                spec.update(folder=_folder(count, size, lib), endpoint=endpoint)
                print(f"  S11 run {run} {lib} {kind} {count}x{size // KiB}k w{workers}", flush=True)
                result = _run_child(spec, work)
                if run == 0:
                    counts[cell] = result.get("error") or _count_requests(
                        proxy.requests_log[before:], ep.bucket
                    )
                else:
                    results[cell].append(result)
            loads.append(_load())
    finally:
        proxy.close()
    for cell in cells:
        _record(report, cell, results[cell], counts.get(cell, "not run"))
    versions = {c[0]: r["version"] for c in cells for r in results[c] if "version" in r}
    title += ". Versions: " + ", ".join(f"{lib} {v}" for lib, v in versions.items())
    report.describe("S11", title + f". Load average (1/5/15 min) per round: {'; '.join(loads)}", "samples/s")


def _record(report: Report, cell: tuple, runs: list[dict], counted: dict[str, int] | str) -> None:
    lib, kind, count, size, workers = cell
    column = lib
    tag = f"{kind} {size // KiB}K"
    errors = [r["error"] for r in runs if "error" in r]
    rows = {
        f"{tag} epoch 1": None,
        f"{tag} epoch 2": None,
        f"{tag} first batch s": "s ↓",
        f"{tag} RSS": None,
        f"{tag} PSS": "MiB ↓",
    }
    if errors or not runs:
        for op, unit in rows.items():
            report.error("S11", op, workers, column, errors[0] if errors else "no run")
            if unit:
                report.unit("S11", op, workers, unit)
    else:
        med = statistics.median
        report.value(
            "S11", f"{tag} epoch 1", workers, column, count / med(r["epoch_seconds"][0] for r in runs)
        )
        report.value(
            "S11", f"{tag} epoch 2", workers, column, count / med(r["epoch_seconds"][1] for r in runs)
        )
        report.value("S11", f"{tag} first batch s", workers, column, med(r["first_batch"] for r in runs))
        report.unit("S11", f"{tag} first batch s", workers, "s ↓")
        report.value("S11", f"{tag} RSS", workers, column, med(r["rss_mib"] for r in runs))
        report.value("S11", f"{tag} PSS", workers, column, med(r["pss_mib"] for r in runs))
        report.unit("S11", f"{tag} PSS", workers, "MiB ↓")
    op = f"{tag} requests LIST/GET/HEAD"
    report.unit("S11", op, workers, "count")
    if isinstance(counted, str):
        report.error("S11", op, workers, column, counted)
    else:
        text = f"{counted['LIST']:,}/{counted['GET']:,}/{counted['HEAD']:,}"
        report.value(
            "S11", op, workers, column, text + (f" +{counted['other']:,}" if counted["other"] else "")
        )


def target_main(runs: int = 3) -> None:
    """The issue's target row at full size, alone: 20,000 x 16 KiB, 2 workers, manystore vs
    s3torchconnector, both dataset kinds, ``runs`` interleaved runs (median), on one fresh
    ``rclone serve s3``; prints a markdown table (``python -m bench.torch_loader --target [RUNS]``)."""
    import shutil
    import tempfile

    from tests.servers import start_rclone_s3

    count, size, workers, bucket = 20_000, 16 * KiB, 2, "bench"
    work = Path(tempfile.mkdtemp(prefix="s11-target-"))
    folder = work / "s3data" / bucket / _folder(count, size)
    folder.mkdir(parents=True)
    block = os.urandom(size + count)
    for i in range(count):
        (folder / f"obj{i:06d}.bin").write_bytes(block[i : i + size])
    server = start_rclone_s3(work / "s3data")
    cells = [(lib, kind) for kind in ("map", "iterable") for lib in ("manystore", "s3torchconnector")]
    results: dict[tuple[str, str], list[dict]] = {cell: [] for cell in cells}
    loads = [_load()]
    try:
        ep = {"url": server.endpoint_url, "access_key": server.access_key, "secret_key": server.secret_key}
        ep.update(bucket=bucket, region=server.region)
        for run in range(runs):
            shift = run % len(cells)
            for lib, kind in cells[shift:] + cells[:shift]:
                spec = {"lib": lib, "kind": kind, "count": count, "size": size, "workers": workers}
                spec.update(folder=_folder(count, size), endpoint=ep)
                result = _run_child(spec, work)
                print(f"run {run} {lib} {kind}: {json.dumps(result)[:200]}", file=sys.stderr, flush=True)
                results[(lib, kind)].append(result)
            loads.append(_load())
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    print(f"Load average (1/5/15 min) per round: {'; '.join(loads)}\n")
    print("| Op | Unit | manystore | s3torchconnector | ms÷s3tc |\n|---|---|---|---|---|")
    figures = [
        ("epoch 1", "samples/s ↑", lambda r: count / r["epoch_seconds"][0]),
        ("epoch 2", "samples/s ↑", lambda r: count / r["epoch_seconds"][1]),
        ("first batch", "s ↓", lambda r: r["first_batch"]),
        ("RSS (sum)", "MiB ↓", lambda r: r["rss_mib"]),
        ("PSS (sum)", "MiB ↓", lambda r: r["pss_mib"]),
    ]
    for kind in ("map", "iterable"):
        for name, unit, get in figures:
            values = []
            for lib in ("manystore", "s3torchconnector"):
                ok = [get(r) for r in results[(lib, kind)] if "error" not in r]
                values.append(med(ok) if ok else float("nan"))
            fmt = "{:,.0f}" if "samples" in unit or "MiB" in unit else "{:.2f}"
            ratio = values[0] / values[1] if values[1] else float("nan")
            print(
                f"| {kind} {name} | {unit} | {fmt.format(values[0])} | {fmt.format(values[1])} | {ratio:.2f} |"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--target"]:
        target_main(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    else:
        child_main(sys.argv[1:])
    os._exit(0)  # no teardown: a peer's native threads must not hang the exit
