"""S14-arrays: upload and download of one float32 array, manystore.arrays vs cottoncandy 0.4.0.

One ``rclone serve s3``; a 1 GiB float32 array (quick: 128 MiB) of integer values in
``[0, 4096)`` (seeded random numbers: Zstd stores 54% of the bytes)
is uploaded with ``upload_raw_array`` and downloaded with ``download_raw_array``, uncompressed
(``compression=False``) and with ``compression='Zstd'``, by:

* ``manystore`` — ``manystore.arrays.get_interface("s3://bench", ACCESS_KEY=, SECRET_KEY=,
  endpoint_url=)`` (the implicit S3 profile, default options) with ``threads=THREADS``;
* ``cottoncandy`` 0.4.0 (PyPI; boto3 underneath, in ``.tools/cottoncandy-venv``) —
  ``cottoncandy.get_interface("bench", ACCESS_KEY=, SECRET_KEY=, endpoint_url=)`` with
  ``threads=THREADS`` and its multipart knobs (``mpu_chunksize`` / ``mpd_chunksize`` in its
  ``options.cfg``) at ``CC_CHUNK_MB``: the best of a sweep on this machine (see ``CC_SWEEP``).

Every cell (library x codec x direction x run) is a fresh process (``python -m
bench.arrays_bench JSON``). It builds the array (uploads) or nothing (downloads), resets the
peak-RSS mark (``/proc/self/clear_refs``), notes its RSS, times the one call, and reports
MB/s (array bytes / wall time of the call) and the RSS the call added (peak RSS after it
minus the RSS right before it), in MiB and as a multiple of the array size. After a download
the values are checked against the array, block by block (after the clock stops). Each
library downloads the object it uploaded. Targets: manystore >= 2x cottoncandy's MB/s, and
<= 1.2x the array in added RSS.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._children import run_json_child

if TYPE_CHECKING:
    from bench.libs import Endpoint
    from bench.report import Report

MiB = 1 << 20
LIBS = ("manystore", "cottoncandy")
CODECS = ("raw", "Zstd")
#: Parallel requests per call, both libraries (cottoncandy's ``threads=``, manystore's ``threads=``).
THREADS = 8
#: cottoncandy's multipart part size (upload and download), MB: the best of ``CC_SWEEP``.
CC_CHUNK_MB = 100
#: cottoncandy settings tried (threads, chunk MB) when choosing the above; its defaults are (4, 100).
CC_SWEEP = ((4, 100), (8, 100), (8, 16), (16, 16), (8, 8))
#: The cottoncandy interpreter, relative to the repository (``make servers`` builds it).
CC_PYTHON = ".tools/cottoncandy-venv/bin/python"
PREFIX = "s14arrays"
BLOCK = 16 * MiB


# ------------------------------------------------------------------ child side
def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    """Peak RSS of this address space (``VmHWM``; ``ru_maxrss`` survives exec on Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the peak-RSS mark to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _block(np: Any, start: int, stop: int) -> Any:
    """Items ``[start, stop)`` (``start`` a multiple of ``BLOCK // 4``) of the benchmark array:
    random integers in ``[0, 4096)`` as float32, seeded by the block's index."""
    rng = np.random.default_rng(start // (BLOCK // 4))
    return rng.integers(0, 4096, stop - start, dtype=np.int16).astype(np.float32)


def make_array(nbytes: int) -> Any:
    import numpy as np

    n = nbytes // 4
    out = np.empty(n, dtype=np.float32)
    step = BLOCK // 4
    for start in range(0, n, step):
        out[start : start + step] = _block(np, start, min(n, start + step))
    return out


def check_array(array: Any, nbytes: int) -> None:
    import numpy as np

    n = nbytes // 4
    if array.shape != (n,) or array.dtype != np.float32:
        raise RuntimeError(f"downloaded {array.shape} {array.dtype}; expected ({n},) float32")
    step = BLOCK // 4
    for start in range(0, n, step):
        stop = min(n, start + step)
        if not np.array_equal(array[start:stop], _block(np, start, stop)):
            raise RuntimeError(f"downloaded values differ from the array in items {start}..{stop}")


def _interface(spec: dict) -> Any:
    ep = spec["endpoint"]
    if spec["lib"] == "manystore":
        from manystore.arrays import get_interface

        return get_interface(
            f"s3://{ep['bucket']}",
            ACCESS_KEY=ep["access_key"],
            SECRET_KEY=ep["secret_key"],
            endpoint_url=ep["url"],
            region_name=ep["region"],
            verbose=False,
        )
    import cottoncandy

    return cottoncandy.get_interface(
        ep["bucket"],
        ACCESS_KEY=ep["access_key"],
        SECRET_KEY=ep["secret_key"],
        endpoint_url=ep["url"],
        verbose=False,
    )


def measure(spec: dict) -> dict:
    """One call (``spec["op"]``: upload or download) of one library; figures as a dict."""
    nbytes, key, threads = spec["nbytes"], spec["key"], spec["threads"]
    compression: Any = False if spec["codec"] == "raw" else spec["codec"]
    cci = _interface(spec)
    array = make_array(nbytes) if spec["op"] == "upload" else None
    reset = _reset_peak()
    before = _rss_now() if reset else _peak_rss()
    start = time.perf_counter()
    if spec["op"] == "upload":
        cci.upload_raw_array(key, array, compression=compression, threads=threads)
    else:
        array = cci.download_raw_array(key, threads=threads)
    seconds = time.perf_counter() - start
    added = max(0, _peak_rss() - before)
    if spec["op"] == "download":
        check_array(array, nbytes)
    return {"seconds": seconds, "rss": added}


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        result = measure(spec)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write("\n" + json.dumps(result) + "\n")


# ----------------------------------------------------------------- parent side
def cc_config(work: Path, chunk_mb: int, threads: int) -> dict[str, str]:
    """Environment giving cottoncandy an ``options.cfg`` with ``chunk_mb`` parts (its documented knobs)."""
    home = work / f"cc-data-{chunk_mb}-{threads}"
    (home / "cottoncandy").mkdir(parents=True, exist_ok=True)
    (home / "cottoncandy" / "options.cfg").write_text(
        "[basic]\n"
        f"threads = {threads}\n"
        "[upload_settings]\n"
        f"mpu_use_threshold = {chunk_mb}\nmpu_chunksize = {chunk_mb}\n"
        "[download_settings]\n"
        f"mpd_use_threshold = {chunk_mb}\nmpd_chunksize = {chunk_mb}\n"
    )
    return {"XDG_DATA_HOME": str(home), "HOME": str(work)}


def cell(spec: dict, work: Path, chunk_mb: int = CC_CHUNK_MB) -> dict:
    """Run one cell in a fresh process (cottoncandy in its own venv)."""
    if spec["lib"] == "cottoncandy":
        return run_json_child(
            "bench.arrays_bench", spec, CC_PYTHON, cc_config(work, chunk_mb, spec["threads"])
        )
    return run_json_child("bench.arrays_bench", spec, None)


def s14_arrays(report: Report, ep: Endpoint, work: Path, quick: bool, runs: int) -> None:
    """Run S14-arrays: rows ``upload``/``download`` x raw/Zstd (MB/s, added RSS, RSS / array)."""
    from dataclasses import asdict

    nbytes = (128 if quick else 1024) * MiB
    report.describe(
        "S14-arrays",
        f"one {nbytes // MiB} MiB float32 array, upload_raw_array / download_raw_array, manystore.arrays "
        f"vs cottoncandy 0.4.0 (boto3; threads={THREADS}, {CC_CHUNK_MB} MB parts); each call in a fresh process",
        "MB/s",
    )
    for codec in CODECS:
        for op in ("upload", "download"):
            label = f"{op} {'raw' if codec == 'raw' else codec} {nbytes // MiB} MiB f4"
            rates: dict[str, list[float]] = {lib: [] for lib in LIBS}
            rss: dict[str, list[float]] = {lib: [] for lib in LIBS}
            for run in range(runs):
                order = LIBS[run % 2 :] + LIBS[: run % 2]
                for lib in order:
                    spec = {
                        "lib": lib,
                        "op": op,
                        "codec": codec,
                        "nbytes": nbytes,
                        "threads": THREADS,
                        "key": f"{PREFIX}/{lib}-{codec}",
                        "endpoint": asdict(ep),
                    }
                    result = cell(spec, work)
                    if "error" in result:
                        print(f"    {label} {lib}: {result['error']}", flush=True)
                        report.error("S14-arrays", label, THREADS, lib, result["error"])
                        continue
                    rates[lib].append(nbytes / 1e6 / result["seconds"])
                    rss[lib].append(result["rss"] / MiB)
            for lib in LIBS:
                if rates[lib]:
                    report.value("S14-arrays", label, THREADS, lib, statistics.median(rates[lib]))
                    report.value("S14-arrays", label + " RSS", THREADS, lib, max(rss[lib]))
                    report.value(
                        "S14-arrays", label + " RSS÷array", THREADS, lib, max(rss[lib]) * MiB / nbytes
                    )
                    report.unit("S14-arrays", label + " RSS÷array", THREADS, "x ↓")
            ms, cc = rates["manystore"], rates["cottoncandy"]
            if ms and cc:
                print(
                    f"    {label}: manystore {statistics.median(ms):,.0f} MB/s, cottoncandy "
                    f"{statistics.median(cc):,.0f} MB/s ({statistics.median(ms) / statistics.median(cc):.2f}x); "
                    f"RSS {max(rss['manystore']):,.0f} vs {max(rss['cottoncandy']):,.0f} MiB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
