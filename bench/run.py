"""Benchmark manystore against its peers against one local ``rclone serve s3``.

    python -m bench.run [--quick] [--only S1,S4] [--libs manystore,boto3] [--runs 3]

Scenarios: S1 small-object PUT/GET (1 and 16 threads), S2 one large object (PUT, whole
GET, parallel 8 MiB ranged GETs; MB/s and peak RSS, each in a fresh subprocess), S3 listing,
S4 POSIX small files vs raw Python, S5 streaming a large object through ``open()``,
S6 re-reads from manystore's read cache, S7 manifest listing, S8 syncing many 64 KiB files
(local -> S3, S3 -> S3, no-change rerun) with manystore, msc and ``rclone copy``; S8 always
runs those three tools, whatever ``--libs`` says. S9 small-object PUT/GET with telemetry off
vs on (S3 and POSIX), printing the on/off ratio.
S10 local -> local sync of 20,000 tiny files
(nested and flat, plus no-change reruns) with manystore's API and CLI, ``cp -r`` and
``rclone copy`` (no S3 server started when only S10 runs; see ``bench/local_sync.py``).
S11 a PyTorch DataLoader (0 and 2 workers, 2 epochs) over raw 16 KiB and 256 KiB objects with
manystore's datasets, s3torchconnector's, litdata's ``StreamingRawDataset`` and an MSC map
dataset, each in a fresh process (peers in their own venvs; see ``bench/torch_loader.py``);
S11 always runs those four, whatever ``--libs`` says.
S12 PyTorch checkpoints: DCP save, full load and model-only (half) load of a 512 MiB state dict,
and ``torch.save``/``torch.load`` of 256 MiB, with manystore, s3torchconnector and MSC (each in
a fresh process; bytes moved and requests counted through the fault proxy; see
``bench/torch_ckpt.py``); S12 always runs those three, whatever ``--libs`` says.
S13 ``manystore.batch``: Get-Batch of 10,000 x 16 KiB objects vs a GET loop (manystore, MSC)
vs the 16-thread obstore ceiling, and one 64 KiB member out of a 1 GiB tar, cold and warm, vs
downloading it (see ``bench/batch_bench.py``); S13 always runs its own columns.
S13-etl ``manystore.batch`` ETL of many 256 KiB objects (identity transform) on threads,
worker processes and Ray (see ``bench/etl_bench.py``).
S14-zarr a 1 GiB float32 zarr 3 array read in 1 MiB chunks through ``LazyZarrStore`` vs zarr's
``ObjectStore`` (obstore) and ``FsspecStore`` (s3fs) (see ``bench/zarr_read.py``); S14-zarr
always runs those three stores, whatever ``--libs`` says.
S14-arrays a 1 GiB float32 array uploaded and downloaded (raw and Zstd) with ``manystore.arrays``
vs cottoncandy 0.4.0, each call in a fresh process: MB/s and added peak RSS (see
``bench/arrays_bench.py``); S14-arrays always runs those two, whatever ``--libs`` says.
S14-samples typed samples (3x64x64 uint8 + label, 16 MiB shards): ``manystore.samples``
write and DataLoader reads (ordered, shuffled; 0 and 2 workers) vs webdataset and litdata,
and ``Dataset.get(k)`` random access (see ``bench/samples_bench.py``); S14-samples always
runs its own columns, whatever ``--libs`` says.
Every figure is the median of ``--runs`` (>= 3) runs. The markdown table is printed and
written to ``bench/results/latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from bench import (
    arrays_bench,
    batch_bench,
    etl_bench,
    layers,
    local_sync,
    samples_bench,
    sync_bench,
    telemetry_bench,
    torch_ckpt,
    torch_loader,
    zarr_read,
)
from bench.libs import POSIX_LIBS, S3_LIBS, Endpoint, make_posix, make_s3
from bench.report import Report

REPO = Path(__file__).resolve().parent.parent
BUCKET = "bench"
MiB = 1 << 20
CHUNK = 8 * MiB
SMALL = 4096
S1_THREADS = (1, 16)
RANGE_THREADS = 8
SCENARIOS = (
    "S1",
    "S2",
    "S3",
    "S4",
    "S5",
    "S6",
    "S7",
    "S8",
    "S9",
    "S10",
    "S11",
    "S12",
    "S13",
    "S13-etl",
    "S14-zarr",
    "S14-arrays",
    "S14-samples",
)
#: Scenarios that need no S3 server.
LOCAL_ONLY = {"S10"}

FULL = {
    "objects": 2000,
    "big": 1024 * MiB,
    "keys": 100_000,
    "stream": 2048 * MiB,
    "manifest": 1_000_000,
    "sync_files": 10_000,
    "local_sync_files": 20_000,
}
QUICK = {
    "objects": 500,
    "big": 64 * MiB,
    "keys": 10_000,
    "stream": 256 * MiB,
    "manifest": 100_000,
    "sync_files": 1_000,
    "local_sync_files": 2_000,
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    p.add_argument("--only", default="", help="comma-separated scenarios, e.g. S1,S4")
    p.add_argument("--libs", default="", help="comma-separated libraries (default: all)")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (median; at least 3)")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "latest.md"))
    args = p.parse_args(argv)
    canonical = {s.upper(): s for s in SCENARIOS}
    args.only = [
        canonical.get(s.strip().upper(), s.strip().upper()) for s in args.only.split(",") if s.strip()
    ] or list(SCENARIOS)
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.libs = [s.strip() for s in args.libs.split(",") if s.strip()] or [*S3_LIBS, "python"]
    if args.runs < 3:
        p.error("--runs must be at least 3 (figures are medians)")
    return args


def _rate(threads: int, fn: Callable[[int], object], n: int) -> float:
    """Operations per second of ``fn(0) .. fn(n - 1)`` on ``threads`` threads."""
    start = time.perf_counter()
    if threads == 1:
        for i in range(n):
            fn(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(fn, range(n)):
                pass
    return n / (time.perf_counter() - start)


def _small_ops(
    report: Report, scen: str, makers: dict[str, Callable[[], object]], n: int, runs: int, threads: tuple
) -> None:
    """PUT then GET ``n`` 4 KiB objects, per thread count; records ops/s medians.

    Runs are interleaved across libraries (and the order rotates each run), so page-cache,
    server and CPU-frequency drift hit every library alike instead of whichever runs first.
    """
    body = os.urandom(SMALL)
    adapters: dict[str, object] = {}
    for lib, make in makers.items():
        try:
            adapters[lib] = make()
        except Exception as exc:
            for t in threads:
                for op in ("PUT", "GET"):
                    report.error(scen, op, t, lib, exc)
    for t in threads:
        rates: dict[str, dict[str, list[float]]] = {lib: {"PUT": [], "GET": []} for lib in adapters}
        failed: set[str] = set()
        order = list(adapters)
        for run in range(runs):
            for lib in order[run % len(order) :] + order[: run % len(order)] if order else []:
                if lib in failed:
                    continue
                adapter = adapters[lib]
                keys = [f"{scen.lower()}/{lib}/t{t}/r{run}/obj{i:06d}" for i in range(n)]

                def put(i: int, keys: list[str] = keys, adapter: object = adapter) -> None:
                    adapter.put(keys[i], body)  # type: ignore[attr-defined]

                def get(i: int, keys: list[str] = keys, adapter: object = adapter) -> None:
                    if len(adapter.get(keys[i])) != SMALL:  # type: ignore[attr-defined]
                        raise RuntimeError(f"short read of {keys[i]}")

                try:
                    rates[lib]["PUT"].append(_rate(t, put, n))
                    rates[lib]["GET"].append(_rate(t, get, n))
                    if hasattr(adapter, "clear"):  # an adapter whose runs must not pile up
                        adapter.clear()
                except Exception as exc:
                    failed.add(lib)
                    report.error(scen, "PUT", t, lib, exc)
                    report.error(scen, "GET", t, lib, exc)
        for lib in adapters:
            if lib not in failed:
                report.value(scen, "PUT", t, lib, statistics.median(rates[lib]["PUT"]))
                report.value(scen, "GET", t, lib, statistics.median(rates[lib]["GET"]))


def s1(report: Report, ep: Endpoint, libs: list[str], sizes: dict, runs: int) -> None:
    n = sizes["objects"]
    report.describe("S1", f"{n:,} x 4 KiB objects, PUT then GET", "ops/s")
    print("  S1", flush=True)
    makers = {lib: (lambda lib=lib: make_s3(lib, ep)) for lib in libs if lib in S3_LIBS}
    _small_ops(report, "S1", makers, n, runs, S1_THREADS)


def s4(report: Report, root: str, libs: list[str], sizes: dict, runs: int) -> None:
    n = sizes["objects"]
    report.describe("S4", f"POSIX, {n:,} x 4 KiB files, write then read", "ops/s")
    print("  S4", flush=True)
    makers = {lib: (lambda lib=lib: make_posix(lib, root)) for lib in libs if lib in POSIX_LIBS}
    _small_ops(report, "S4", makers, n, runs, S1_THREADS)


def s3(report: Report, ep: Endpoint, libs: list[str], sizes: dict, runs: int) -> None:
    n = sizes["keys"]
    report.describe("S3", f"list {n:,} keys under one prefix", "keys/s")
    for lib in [x for x in libs if x in S3_LIBS]:
        print(f"  S3 {lib}", flush=True)
        try:
            adapter = make_s3(lib, ep)
            rates = []
            for _ in range(runs):
                start = time.perf_counter()
                counted = adapter.list_count("s3list/")
                secs = time.perf_counter() - start
                if counted != n:
                    raise RuntimeError(f"listed {counted} keys, expected {n}")
                rates.append(n / secs)
            report.value("S3", "LIST", 1, lib, statistics.median(rates))
        except Exception as exc:
            report.error("S3", "LIST", 1, lib, exc)


def _child(spec: dict) -> dict:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.child", json.dumps(spec)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"child exited {proc.returncode}: {tail[0][:200]}"}


def _large(report: Report, scen: str, op: str, threads: int, spec: dict, lib: str) -> None:
    result = _child({**spec, "lib": lib})
    if "error" in result:
        report.error(scen, op, threads, lib, result["error"])
        report.error(scen, op + " RSS", threads, lib, result["error"])
        return
    rate = spec["size"] / 1e6 / statistics.median(result["seconds"])
    report.value(scen, op, threads, lib, rate)
    report.value(scen, op + " RSS", threads, lib, result["rss_mib"])


def s2(report: Report, ep: Endpoint, libs: list[str], sizes: dict, runs: int) -> None:
    size = sizes["big"]
    report.describe("S2", f"one {size // MiB:,} MiB object", "MB/s")
    base = {"endpoint": asdict(ep), "size": size, "chunk": CHUNK, "threads": 1, "repeats": runs}
    for lib in [x for x in libs if x in S3_LIBS]:
        print(f"  S2 {lib}", flush=True)
        _large(report, "S2", "PUT", 1, {**base, "op": "put", "key": f"s2/put-{lib}"}, lib)
        _large(report, "S2", "GET", 1, {**base, "op": "get", "key": "s2/common"}, lib)
        ranged = {**base, "op": "range", "key": "s2/common", "threads": RANGE_THREADS}
        _large(report, "S2", "ranged GET 8 MiB", RANGE_THREADS, ranged, lib)


def s5(report: Report, ep: Endpoint, libs: list[str], sizes: dict, runs: int) -> None:
    size = sizes["stream"]
    report.describe("S5", f"stream a {size // MiB:,} MiB object via open(), 8 MiB reads", "MB/s")
    spec = {"endpoint": asdict(ep), "size": size, "chunk": CHUNK, "threads": 1, "repeats": runs}
    for lib in [x for x in libs if x in S3_LIBS]:
        print(f"  S5 {lib}", flush=True)
        _large(report, "S5", "open().read", 1, {**spec, "op": "stream", "key": "s5/common"}, lib)


def _populate(bucket_dir: Path, only: list[str], sizes: dict) -> None:
    """Write S2/S3/S5 source data straight into rclone's backing directory (before it starts)."""
    if "S3" in only or "S7" in only:
        d = bucket_dir / "s3list"
        d.mkdir(parents=True)
        for i in range(sizes["keys"]):
            (d / f"key{i:07d}").write_bytes(b"x")
    for scen, key, size in (("S2", "s2/common", sizes["big"]), ("S5", "s5/common", sizes["stream"])):
        if scen in only:
            path = bucket_dir / key
            path.parent.mkdir(parents=True, exist_ok=True)
            block = os.urandom(CHUNK)
            with open(path, "wb") as f:
                for off in range(0, size, CHUNK):
                    f.write(block[: min(CHUNK, size - off)])


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from tests.servers import start_rclone_s3

    sizes = QUICK if args.quick else FULL
    work = Path(tempfile.mkdtemp(prefix="manystore-bench-"))
    # Every temporary file of the run, the peers' caches in child processes included, lands
    # under ``work``, which is removed at the end: a bench run leaves nothing in /tmp.
    scratch = work / "tmp"
    scratch.mkdir()
    os.environ["TMPDIR"] = tempfile.tempdir = str(scratch)
    report = Report(args.libs, quick=args.quick, runs=args.runs, sizes=sizes)
    server = None
    t0 = time.monotonic()
    try:
        print(f"populating {work} ...", flush=True)
        _populate(work / "s3data" / BUCKET, args.only, sizes)
        (work / "s3data" / BUCKET).mkdir(parents=True, exist_ok=True)
        if "S11" in args.only:
            torch_loader.populate(work / "s3data" / BUCKET, args.quick)
        if set(args.only) - LOCAL_ONLY:
            server = start_rclone_s3(work / "s3data")
            ep = Endpoint(server.endpoint_url, server.access_key, server.secret_key, BUCKET, server.region)
            print(f"rclone serve s3 at {ep.url}", flush=True)
        steps = {
            "S1": lambda: s1(report, ep, args.libs, sizes, args.runs),
            "S2": lambda: s2(report, ep, args.libs, sizes, args.runs),
            "S3": lambda: s3(report, ep, args.libs, sizes, args.runs),
            "S4": lambda: s4(report, str(work / "posix"), args.libs, sizes, args.runs),
            "S5": lambda: s5(report, ep, args.libs, sizes, args.runs),
            "S6": lambda: layers.s6(report, ep, work, sizes, args.runs),
            "S7": lambda: layers.s7(report, ep, work, sizes, args.runs),
            "S8": lambda: sync_bench.s8(report, ep, work, sizes, args.runs),
            "S9": lambda: telemetry_bench.s9(report, ep, str(work / "s9posix"), sizes, args.runs, _small_ops),
            "S10": lambda: local_sync.s10(report, work, sizes, args.runs),
            "S11": lambda: torch_loader.s11(report, ep, work, args.quick, args.runs, args.libs),
            "S12": lambda: torch_ckpt.s12(report, ep, work, args.quick, args.runs),
            "S13": lambda: batch_bench.s13(report, ep, work, args.quick, args.runs),
            "S13-etl": lambda: etl_bench.s13_etl(report, ep, work, args.quick, args.runs),
            "S14-zarr": lambda: zarr_read.s14_zarr(report, ep, work, args.quick, args.runs),
            "S14-arrays": lambda: arrays_bench.s14_arrays(report, ep, work, args.quick, args.runs),
            "S14-samples": lambda: samples_bench.s14_samples(report, ep, work, args.quick, args.runs),
        }
        for scen in SCENARIOS:
            if scen in args.only:
                print(f"{scen} ...", flush=True)
                steps[scen]()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = report.markdown(elapsed=time.monotonic() - t0)
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
