"""S13: issue 13's many-objects rows (``manystore.batch``) against one ``rclone serve s3``.

``s13_getbatch`` — fetching N x 16 KiB objects (full 10,000; quick 1,000), objects/s:

* manystore Get-Batch (``Client().batch(names, bucket).get()``, 16 fetching threads);
* one GET per object in a loop: manystore ``client.read`` and MSC 1.3.1's
  ``msc.open(url).read()`` (MSC 1.3.1 with its S3 extra — boto3 — in its own venv, ``.tools/msc-torch-venv``, in a child
  process; ``.tools/msc-venv`` has no boto3);
* the ceiling: raw obstore GETs from 16 threads in one process.

The ``Get-Batch ÷ ceiling`` row is the ratio within the same run (target >= 0.8).

``s13_archive`` — one 64 KiB member out of a tar (full 1 GiB; quick 64 MiB) through a
request-counting proxy: latency, requests and bytes moved of downloading the whole shard
vs reading the member cold (index unknown: a foreign tar's header walk, or a manystore
tar's sidecar) and warm (index known: one ranged GET).

(The ETL row, ``S13-etl``, is in ``bench/etl_bench.py``.)
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.libs import Endpoint, _msc_style_config
from bench.report import Report

REPO = Path(__file__).resolve().parent.parent
MSC_PYTHON = REPO / ".tools" / "msc-torch-venv" / "bin" / "python"
OBJ_SIZE = 16 << 10
THREADS = 16
MEMBER = 64 << 10
PREFIX = "s13/obj"

_MSC_LOOP = """
import json, sys, time
import multistorageclient as msc
urls = json.load(open(sys.argv[1]))
runs = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    for url in urls:
        assert len(msc.open(url).read()) > 0
    runs.append(len(urls) / (time.perf_counter() - start))
print(json.dumps(runs))
"""


def _names(n: int) -> list[str]:
    return [f"obj-{i:05d}" for i in range(n)]


def _populate(client: Any, n: int) -> None:
    block = os.urandom(OBJ_SIZE)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda name: client.write(f"{PREFIX}/{name}", block), _names(n)))


def _rate(n: int, fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def _msc_loop(ep: Endpoint, work: Path, names: list[str], runs: int) -> list[float]:
    config = work / "s13-msc.json"
    config.write_text(json.dumps(_msc_style_config(ep)))
    urls = work / "s13-urls.json"
    urls.write_text(json.dumps([f"msc://b/{PREFIX}/{name}" for name in names]))
    env = {**os.environ, "MSC_CONFIG": str(config), "MSC_SUPPRESS_PROGRESS_BAR": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(MSC_PYTHON), "-c", _MSC_LOOP, str(urls), str(runs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "msc child failed"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def s13_getbatch(report: Report, ep: Endpoint, work: Path, quick: bool, runs: int) -> None:
    """Get-Batch vs a GET loop (manystore, MSC) vs the 16-thread obstore ceiling, objects/s."""
    import obstore
    from obstore.store import S3Store

    from manystore import StorageClient, StorageClientConfig
    from manystore.batch import Client

    n = 1000 if quick else 10_000
    report.describe(
        "S13",
        f"Get-Batch of {n:,} x 16 KiB objects vs one GET per object vs the ceiling (raw obstore, "
        f"{THREADS} threads); one 64 KiB member out of a {'64 MiB' if quick else '1 GiB'} tar",
        "obj/s",
    )
    config = _msc_style_config(ep)
    client = StorageClient(StorageClientConfig.from_dict(config, profile="b"))
    _populate(client, n)
    names = _names(n)
    sdk = Client(config=config)
    bucket = sdk.bucket(f"msc://b/{PREFIX}")

    def getbatch() -> None:
        got = 0
        for info, data in sdk.batch(names, bucket=bucket).get():
            assert info.err_msg is None and len(data) == OBJ_SIZE
            got += 1
        assert got == n

    store = S3Store(
        ep.bucket,
        endpoint=ep.url,
        access_key_id=ep.access_key,
        secret_access_key=ep.secret_key,
        region=ep.region,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    keys = [f"{PREFIX}/{name}" for name in names]

    def ceiling() -> None:
        with ThreadPoolExecutor(THREADS) as pool:
            sizes = list(pool.map(lambda k: len(obstore.get(store, k).bytes()), keys))
        assert sizes == [OBJ_SIZE] * n

    def loop() -> None:
        for key in keys:
            assert len(client.read(key)) == OBJ_SIZE

    getbatch()  # warm the connection pools once
    ceiling()
    batch_rates, ceiling_rates, loop_rates = [], [], []
    for _ in range(runs):  # interleaved, so both see the same machine load
        batch_rates.append(_rate(n, getbatch))
        ceiling_rates.append(_rate(n, ceiling))
    for _ in range(runs):
        loop_rates.append(_rate(n, loop))
    report.value("S13", "Get-Batch", THREADS, "manystore", statistics.median(batch_rates))
    report.value("S13", "ceiling: raw GETs", THREADS, "obstore", statistics.median(ceiling_rates))
    ratio = statistics.median(b / c for b, c in zip(batch_rates, ceiling_rates, strict=True))
    report.value("S13", "Get-Batch ÷ ceiling (same run)", THREADS, "manystore", round(ratio, 2))
    report.unit("S13", "Get-Batch ÷ ceiling (same run)", THREADS, "ratio ↑ (target ≥ 0.8)")
    report.value("S13", "GET per object, loop", 1, "manystore", statistics.median(loop_rates))
    try:
        report.value(
            "S13", "GET per object, loop", 1, "msc", statistics.median(_msc_loop(ep, work, names, runs))
        )
    except Exception as exc:
        report.error("S13", "GET per object, loop", 1, "msc", exc)


# --------------------------------------------------------------- archive member
def _member_client(ep: Endpoint, url: str, base: str) -> Any:
    from manystore import StorageClient, StorageClientConfig

    proxied = Endpoint(url, ep.access_key, ep.secret_key, base, ep.region)
    return StorageClient(StorageClientConfig.from_dict(_msc_style_config(proxied), "b"))


def _members(count: int) -> Iterator[tuple[str, bytes]]:
    block = os.urandom(MEMBER)
    for i in range(count):
        yield f"sample/{i:07d}.bin", block[i % 256 :] + block[: i % 256]


def _measure(proxy: Any, fn: Callable[[], Any]) -> tuple[float, int, int]:
    reqs, body = Counter(proxy.requests_by_method), proxy.body_bytes_by_method["GET"]
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    now = Counter(proxy.requests_by_method)
    now.subtract(reqs)
    return elapsed, sum(now.values()), proxy.body_bytes_by_method["GET"] - body


def s13_archive(report: Report, ep: Endpoint, quick: bool, runs: int) -> None:
    """One 64 KiB member out of a large tar: cold and warm, vs downloading the shard."""
    from tests.faultproxy import FaultProxy

    from manystore.batch import ArchiveWriter, read_member

    size_mib = 64 if quick else 1024
    count = (size_mib << 20) // (MEMBER + 512)
    proxy = FaultProxy(ep.url)
    base = f"{ep.bucket}/s13-arch"
    try:
        setup = _member_client(ep, proxy.url, base)
        with setup.open("foreign.tar", "wb") as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
            for name, data in _members(count):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        with ArchiveWriter(setup, "written.tar") as writer:
            for name, data in _members(count):
                writer.add(name, data)
        target, other = f"sample/{count // 2:07d}.bin", f"sample/{count // 3:07d}.bin"

        def fresh() -> Any:
            return _member_client(ep, proxy.url, base)

        def row(label: str, make: Callable[[], Callable[[], Any]]) -> None:
            results = [_measure(proxy, make()) for _ in range(runs)]
            secs, n, moved = (statistics.median(r[i] for r in results) for i in range(3))
            report.value("S13", f"{label}: latency", 1, "manystore", secs * 1000)
            report.unit("S13", f"{label}: latency", 1, "ms ↓")
            report.value(
                "S13",
                f"{label}: requests, bytes",
                1,
                "manystore",
                f"{n:.0f} req, {moved / (1 << 20):.2f} MiB",
            )
            report.unit("S13", f"{label}: requests, bytes", 1, "-")

        def download() -> Callable[[], Any]:
            c = fresh()
            return lambda: c.read("foreign.tar")

        row(f"tar {size_mib} MiB: download the shard", download)
        for shard, kind in (
            ("foreign.tar", "foreign tar (header walk)"),
            ("written.tar", "manystore tar (sidecar)"),
        ):

            def cold(shard: str = shard) -> Callable[[], Any]:
                c = fresh()
                return lambda: read_member(c, shard, target)

            row(f"64 KiB member, cold, {kind}", cold)
            warm = fresh()
            read_member(warm, shard, target)
            row(f"64 KiB member, warm, {kind}", lambda s=shard, c=warm: lambda: read_member(c, s, other))
    finally:
        proxy.close()


def s13(report: Report, ep: Endpoint, work: Path, quick: bool, runs: int) -> None:
    """Every S13 row (Get-Batch, then the archive member)."""
    s13_getbatch(report, ep, work, quick, runs)
    s13_archive(report, ep, quick, runs)
