"""S14-samples: typed samples in 16 MiB tar shards — manystore.samples vs webdataset (and litdata).

The same samples for every library (full 50,000, quick 5,000): a ``@packable`` type with
``image: NDArray`` (3x64x64 uint8, random) and ``label: int``. Sample ``i`` is drawn from a
generator seeded with ``i``; its label is ``i`` and its first pixel ``i % 256``, so every
cell checks it saw each sample once (count, sum and sum of squares of the labels) and that
each image travelled with its label. Everything talks to one ``rclone serve s3``; every cell
runs in a fresh process (``python -m bench.samples_bench JSON``).

* **Write** (samples/s, generation included alike): manystore ``write_samples(..., maxsize=16
  MiB)`` straight to ``s3://bench/ms/train-%06d.tar`` (multipart streams + ``.idx``
  sidecars) vs webdataset ``ShardWriter(maxsize=16 MiB)`` writing local shards, each uploaded
  with boto3 ``upload_file`` from its ``post=`` hook and deleted (webdataset's documented way
  to S3 without a pipe to the aws CLI; the upload is counted).
* **Read** ordered and shuffled, ``DataLoader`` with 0 and 2 workers, batches of 64 decoded to
  numpy: manystore ``Dataset[T](pattern).ordered(batch_size=64)`` /
  ``.shuffled(buffer_samples=5000, batch_size=64)`` in ``DataLoader(batch_size=None)``
  (both shuffle buffers start yielding at 100 samples: webdataset's ``initial``, manystore's
  ``buffer_initial``);
  webdataset ``WebDataset(urls, shardshuffle=..., workersplitter=split_by_worker)
  .shuffle(5000).decode(handle_extension("msgpack", ...)).map(np.load ...).batched(64)`` in
  ``WebLoader(batch_size=None)``, the shards streamed by webdataset's ``gopen`` (see
  :data:`WDS_VIA`); litdata ``StreamingDataset(s3://..., shuffle=...)`` in its
  ``StreamingDataLoader(batch_size=64)``, in its own venv, over the same samples converted
  once with ``litdata.optimize`` (``chunk_bytes`` 16 MiB; that conversion is timed apart).
  Figures: samples/s (from before the dataset is built to the last batch), seconds to the
  first batch, peak RSS (``ru_maxrss`` of the cell process; with workers, also the largest
  worker's).
* **Random access**: ``Dataset.get(k)`` of random indices — GET requests per sample
  (counted through ``tests/faultproxy.py``) and latency, cold (first call: the shards'
  sidecar indexes are read) and warm.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._children import run_json_child

if TYPE_CHECKING:
    from bench.libs import Endpoint
    from bench.report import Report

MiB = 1 << 20
SHARD_BYTES = 16 * MiB
BATCH = 64
BUFFER = 5000
WORKERS = (0, 2)
ORDERS = ("ordered", "shuffled")
SHAPE = (3, 64, 64)
RANDOM_READS = 200
LITDATA_PY = ".tools/litdata-venv/bin/python"
#: How webdataset opens a shard on the S3 server: ``curl`` (an ``http://`` presigned URL, its
#: built-in ``gopen`` handler for http) or ``aws`` (``pipe:aws s3 cp ... -``, its README's S3 way).
WDS_VIA = "curl"  # measured: `pipe:aws s3 cp` read the full set ~4x slower (aws CLI v1 start-up per shard)
READERS = ("manystore", "webdataset", "litdata")


def sample_count(quick: bool) -> int:
    """Samples in the data set."""
    return 5_000 if quick else 50_000


# ---------------------------------------------------------------------------- the samples
def make_image(i: int) -> Any:
    """Sample ``i``'s image: random uint8 from seed ``i``, first pixel ``i % 256``."""
    import numpy as np

    image = np.random.default_rng(i).integers(0, 256, SHAPE, dtype=np.uint8)
    image[0, 0, 0] = i % 256
    return image


def _sample_type() -> Any:
    """The ``@packable`` sample class, made on first use (this module also runs in venvs without
    manystore) and bound at module level so DataLoader workers can pickle its samples."""
    cls = globals().get("ImageSample")
    if cls is not None:
        return cls
    from manystore.samples import NDArray, packable

    globals()["NDArray"] = NDArray  # the annotations below are strings resolved in this module

    class ImageSample:
        image: NDArray
        label: int

    ImageSample.__qualname__ = "ImageSample"
    cls = globals()["ImageSample"] = packable(ImageSample)
    return cls


class Tally:
    """Count, sum and sum of squares of labels, and the image/label pairing check."""

    def __init__(self) -> None:
        self.count = self.total = self.squares = 0

    def add(self, images: Any, labels: Any) -> None:
        import numpy as np

        images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
        if images.shape[1:] != SHAPE or images.dtype != np.uint8:
            raise RuntimeError(f"batch of images {images.shape} {images.dtype}, expected (n, *{SHAPE}) uint8")
        if not np.array_equal(images[:, 0, 0, 0], labels % 256):
            raise RuntimeError("an image arrived with another sample's label")
        self.count += len(labels)
        self.total += int(labels.sum())
        self.squares += int((labels * labels).sum())

    def check(self, n: int) -> None:
        want = (n, n * (n - 1) // 2, (n - 1) * n * (2 * n - 1) // 6)
        if (self.count, self.total, self.squares) != want:
            raise RuntimeError(
                f"saw {self.count} samples (label sum {self.total}, squares {self.squares}); "
                f"expected {want[0]} ({want[1]}, {want[2]})"
            )


# ---------------------------------------------------------------------------- child side
def _s3_url(ep: dict, key: str) -> str:
    return f"s3://{ep['bucket']}/{key}"


def _boto3(ep: dict) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=ep["url"],
        aws_access_key_id=ep["access_key"],
        aws_secret_access_key=ep["secret_key"],
        region_name=ep["region"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", max_pool_connections=32),
    )


def write_manystore(spec: dict) -> int:
    from manystore.samples import write_samples

    cls = _sample_type()
    samples = (cls(image=make_image(i), label=i) for i in range(spec["n"]))
    urls = write_samples(samples, _s3_url(spec["endpoint"], "ms/train-%06d.tar"), maxsize=SHARD_BYTES)
    return len(urls)


def write_webdataset(spec: dict) -> int:
    import tempfile

    import webdataset as wds

    cls = _sample_type()
    ep = spec["endpoint"]
    s3 = _boto3(ep)
    shards: list[str] = []

    def upload(path: str) -> None:
        key = f"wds/{os.path.basename(path)}"
        s3.upload_file(path, ep["bucket"], key)
        os.unlink(path)
        shards.append(key)

    with tempfile.TemporaryDirectory(prefix="s14-wds-") as tmp:
        pattern = os.path.join(tmp, "train-%06d.tar")
        with wds.ShardWriter(pattern, maxcount=10**9, maxsize=SHARD_BYTES, post=upload, verbose=0) as sink:
            for i in range(spec["n"]):
                sink.write(cls(image=make_image(i), label=i).as_wds | {"__key__": f"{i:09d}"})
    return len(shards)


def _manystore_loader(spec: dict) -> Any:
    from torch.utils.data import DataLoader

    from manystore.samples import Dataset

    cls = _sample_type()
    ds = Dataset[cls](spec["urls"])  # type: ignore[valid-type]
    if spec["order"] == "shuffled":
        loader = ds.shuffled(buffer_samples=BUFFER, batch_size=BATCH, seed=spec.get("seed", 0))
    else:
        loader = ds.ordered(batch_size=BATCH)
    len(loader)  # its docs: count the shards' samples in the main process, before workers start
    return DataLoader(loader, batch_size=None, num_workers=spec["workers"])


def _wds_decode(sample: dict) -> tuple[Any, int]:
    import io

    import numpy as np

    fields = sample["msgpack"]
    return np.load(io.BytesIO(fields["image"]), allow_pickle=False), fields["label"]


def _unpack(data: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(data, raw=False)


def _webdataset_loader(spec: dict) -> Any:
    import webdataset as wds

    shuffled = spec["order"] == "shuffled"
    ds = wds.WebDataset(
        spec["urls"],
        shardshuffle=100 if shuffled else False,
        nodesplitter=wds.single_node_only,
        workersplitter=wds.split_by_worker,
        empty_check=False,
    )
    if shuffled:
        ds = ds.shuffle(BUFFER)
    ds = ds.decode(wds.handle_extension("msgpack", _unpack)).map(_wds_decode).batched(BATCH)
    return wds.WebLoader(ds, batch_size=None, num_workers=spec["workers"])


def _litdata_loader(spec: dict) -> Any:
    import tempfile

    from litdata import StreamingDataLoader, StreamingDataset

    _litdata_patches()
    ds = StreamingDataset(
        spec["urls"][0],
        cache_dir=tempfile.mkdtemp(prefix="s14-litdata-"),
        shuffle=spec["order"] == "shuffled",
        storage_options={"endpoint_url": spec["endpoint"]["url"]},
    )
    return StreamingDataLoader(ds, batch_size=BATCH, num_workers=spec["workers"])


def _images_labels(lib: str, batch: Any) -> tuple[Any, Any]:
    if lib == "manystore":
        return batch.image, batch.label
    if lib == "webdataset":
        return batch[0], batch[1]
    return batch["image"].numpy(), batch["label"].numpy()


def _maxrss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def read(spec: dict) -> dict:
    import numpy  # noqa: F401  (imported before the clock starts, as a training script would)
    import torch  # noqa: F401

    lib = spec["lib"]
    me = resource.getrusage(resource.RUSAGE_SELF)
    spec["cpu0"] = me.ru_utime + me.ru_stime  # imports before the clock
    build = {"manystore": _manystore_loader, "webdataset": _webdataset_loader, "litdata": _litdata_loader}[
        lib
    ]
    tally = Tally()
    first = 0.0
    start = time.perf_counter()
    loader = build(spec)
    for batch in loader:
        if not first:
            first = time.perf_counter() - start
        tally.add(*_images_labels(lib, batch))
    seconds = time.perf_counter() - start
    del loader
    tally.check(spec["n"])
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": seconds,
        "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime - spec.get("cpu0", 0.0),
        "first": first,
        "rss_mib": _maxrss_mib(resource.RUSAGE_SELF),
        "worker_rss_mib": _maxrss_mib(resource.RUSAGE_CHILDREN),
    }


def _litdata_patches() -> None:
    """The two changes made to litdata here. As in S11, its obstore transfers (downloads and
    ``optimize``'s uploads) refuse a plain-http endpoint unless ``allow_http``; and ``rclone serve
    s3`` leaves ``KeyCount`` out of ListObjectsV2 answers, which litdata's emptiness check of
    the output prefix reads: count the keys instead."""
    from litdata.streaming import downloader
    from litdata.streaming.fs_provider import S3FsProvider

    downloader._OBSTORE_CLIENT_OPTIONS = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": True}

    def is_empty(self: Any, path: str) -> bool:
        obj = urllib.parse.urlparse(path)
        listed = self.client.client.list_objects_v2(
            Bucket=obj.netloc, Delimiter="/", Prefix=obj.path.lstrip("/").rstrip("/") + "/"
        )
        return not (listed.get("Contents") or listed.get("CommonPrefixes"))

    S3FsProvider.is_empty = is_empty


def convert_litdata(spec: dict) -> int:
    from litdata import optimize

    _litdata_patches()

    optimize(
        fn=_litdata_item,
        inputs=list(range(spec["n"])),
        output_dir=_s3_url(spec["endpoint"], spec["prefix"]),
        chunk_bytes=SHARD_BYTES,
        num_workers=2,
        storage_options={"endpoint_url": spec["endpoint"]["url"]},
        verbose=False,
    )
    return 0


def _litdata_item(i: int) -> dict:
    return {"image": make_image(i), "label": i}


def random_access(spec: dict) -> dict:
    import random

    import numpy as np

    from manystore.samples import Dataset

    cls = _sample_type()
    ds = Dataset[cls](spec["urls"])  # type: ignore[valid-type]
    n = spec["n"]
    picks = random.Random(7).sample(range(n), RANDOM_READS + 1)
    start = time.perf_counter()
    sample = ds.get(picks[0])
    cold = time.perf_counter() - start
    if sample.label != picks[0]:
        raise RuntimeError(f"get({picks[0]}) returned label {sample.label}")
    times = []
    for k in picks[1:]:
        t0 = time.perf_counter()
        sample = ds.get(k)
        times.append(time.perf_counter() - t0)
        if sample.label != k or not np.array_equal(sample.image, make_image(k)):
            raise RuntimeError(f"get({k}) returned another sample (label {sample.label})")
    return {"cold": cold, "warm": statistics.median(times), "reads": len(times)}


def child_main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    try:
        op = spec["op"]
        if op == "write":
            start = time.perf_counter()
            shards = (write_manystore if spec["lib"] == "manystore" else write_webdataset)(spec)
            result: dict = {"seconds": time.perf_counter() - start, "shards": shards}
        elif op == "convert":
            start = time.perf_counter()
            convert_litdata(spec)
            result = {"seconds": time.perf_counter() - start}
        elif op == "random":
            result = random_access(spec)
        else:
            result = read(spec)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- parent side
def _list(ep: Endpoint, prefix: str, suffix: str) -> list[str]:
    s3 = _boto3(_ep_dict(ep))
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=ep.bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffix)]
    return sorted(keys)


def _ep_dict(ep: Endpoint) -> dict:
    from dataclasses import asdict

    return asdict(ep)


def _wds_urls(ep: Endpoint, keys: list[str]) -> list[str]:
    if WDS_VIA == "aws":
        return [f"pipe:aws s3 cp --endpoint-url {ep.url} --quiet s3://{ep.bucket}/{k} -" for k in keys]
    s3 = _boto3(_ep_dict(ep))
    return [
        s3.generate_presigned_url("get_object", Params={"Bucket": ep.bucket, "Key": k}, ExpiresIn=6 * 3600)
        for k in keys
    ]


def _run(spec: dict, python: str | None = None) -> dict:
    env = {"AWS_ENDPOINT_URL": spec["endpoint"]["url"]}
    return run_json_child("bench.samples_bench", spec, python, env)


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _count_gets(log: list[tuple[str, str]]) -> dict[str, int]:
    counts = {"GET": 0, "HEAD": 0}
    for method, target in log:
        if method in counts and "list-type" not in urllib.parse.urlsplit(target).query:
            counts[method] += 1
    return counts


def s14_samples(report: Report, ep: Endpoint, work: Path, quick: bool, runs: int) -> None:
    """Run S14-samples and record its rows."""
    from tests.faultproxy import FaultProxy

    n = sample_count(quick)
    scen = "S14-samples"
    report.describe(
        scen,
        f"{n:,} samples (3x64x64 uint8 + int label, {SHARD_BYTES // MiB} MiB shards) written and read "
        f"through one rclone serve s3; reads: DataLoader, batch {BATCH} decoded to numpy, shuffle buffer "
        f"{BUFFER:,}; `Threads` = DataLoader workers; webdataset reads shards with gopen over "
        f"{'presigned http:// URLs (curl)' if WDS_VIA == 'curl' else 'pipe:aws s3 cp'}; litdata reads its "
        "own format converted once by litdata.optimize (conversion timed apart); RSS = ru_maxrss "
        "of the cell process, worker RSS = the largest DataLoader worker's",
        "samples/s",
    )
    epd = _ep_dict(ep)
    base = {"endpoint": epd, "n": n}
    # ---- write (interleaved runs; the last run of each leaves the shards that are read)
    writes: dict[str, list[float]] = {"manystore": [], "webdataset": []}
    failed: dict[str, str] = {}
    for run in range(runs):
        for lib in ("manystore", "webdataset") if run % 2 == 0 else ("webdataset", "manystore"):
            if lib in failed:
                continue
            print(f"  {scen} write run {run} {lib}", flush=True)
            result = _run({**base, "op": "write", "lib": lib})
            if "error" in result:
                failed[lib] = result["error"]
            else:
                writes[lib].append(result["seconds"])
    for lib, secs in writes.items():
        if lib in failed:
            report.error(scen, "write", 1, lib, failed[lib])
        else:
            report.value(scen, "write", 1, lib, n / statistics.median(secs))
    # ---- litdata's conversion (timed apart; one fresh prefix per run, the last one is read)
    conversions: list[float] = []
    for run in range(runs):
        print(f"  {scen} litdata optimize run {run}", flush=True)
        result = _run({**base, "op": "convert", "lib": "litdata", "prefix": f"ld-{run}"}, LITDATA_PY)
        if "error" in result:
            failed["litdata"] = result["error"]
            report.error(scen, "litdata optimize (conversion)", 2, "litdata", result["error"])
            break
        conversions.append(result["seconds"])
    if conversions:
        report.value(scen, "litdata optimize (conversion)", 2, "litdata", n / statistics.median(conversions))
    # ---- reads
    urls = {
        "manystore": [_s3_url(epd, k) for k in _list(ep, "ms/", ".tar")],
        "webdataset": _wds_urls(ep, _list(ep, "wds/", ".tar")),
        "litdata": [_s3_url(epd, f"ld-{len(conversions) - 1}")],
    }
    cells = [(lib, order, w) for order in ORDERS for w in WORKERS for lib in READERS]
    results: dict[tuple, list[dict]] = {cell: [] for cell in cells}
    loads = [_load()]
    for run in range(runs):
        shift = run % len(cells)
        for cell in cells[shift:] + cells[:shift]:
            lib, order, workers = cell
            if lib in failed or any("error" in r for r in results[cell]):
                continue
            print(f"  {scen} read run {run} {lib} {order} w{workers}", flush=True)
            spec = {**base, "op": "read", "lib": lib, "order": order, "workers": workers, "urls": urls[lib]}
            results[cell].append(_run(spec, LITDATA_PY if lib == "litdata" else None))
        loads.append(_load())
    for lib, order, workers in cells:
        rows = _read_rows(order, workers)
        got = results[(lib, order, workers)]
        errors = [r["error"] for r in got if "error" in r] or ([failed[lib]] if lib in failed else [])
        for op, (key, unit) in rows.items():
            if unit:
                report.unit(scen, op, workers, unit)
            if errors or not got:
                report.error(scen, op, workers, lib, errors[0] if errors else "no run")
                continue
            values = [r[key] for r in got]
            value = statistics.median(values)
            report.value(scen, op, workers, lib, n / value if key == "seconds" else value)
    # ---- random access (manystore), requests counted through the fault proxy
    proxy = FaultProxy(ep.url)
    try:
        proxied = {**epd, "url": proxy.url}
        spec = {**base, "op": "random", "lib": "manystore", "endpoint": proxied}
        spec["urls"] = urls["manystore"]
        before = len(proxy.requests_log)
        result = _run(spec)
        log = proxy.requests_log[before:]
    finally:
        proxy.close()
    _random_rows(report, scen, result, log, len(urls["manystore"]))
    shards = {lib: len(u) for lib, u in urls.items() if lib != "litdata"}
    title, unit = report.titles[scen]
    report.describe(
        scen,
        f"{title}. Shards: manystore {shards['manystore']}, webdataset {shards['webdataset']} (each library's own "
        "16 MiB rule: manystore counts the tar's headers and padding, webdataset the payload). CPU s = user + "
        "system seconds of the cell process and its children (DataLoader workers, curl), the figure least "
        f"disturbed by the shared machine. Load average (1/5/15 min) per read round: {'; '.join(loads)}",
        unit,
    )


def _read_rows(order: str, workers: int) -> dict[str, tuple[str, str | None]]:
    rows: dict[str, tuple[str, str | None]] = {
        f"read {order}": ("seconds", None),
        f"read {order} first batch s": ("first", "s ↓"),
        f"read {order} CPU s": ("cpu", "s ↓"),
        f"read {order} RSS": ("rss_mib", "MiB ↓"),
    }
    if workers:
        rows[f"read {order} worker RSS"] = ("worker_rss_mib", "MiB ↓")
    return rows


def _random_rows(report: Report, scen: str, result: dict, log: list[tuple[str, str]], shards: int) -> None:
    ops = ("random get(k) cold ms", "random get(k) warm ms", "random get(k) requests")
    if "error" in result:
        for op in ops:
            report.error(scen, op, 1, "manystore", result["error"])
        return
    counts = _count_gets(log)
    reads = result["reads"]
    # The first get reads each shard's sidecar index (HEAD + GET per shard), then one GET.
    warm_gets = counts["GET"] - shards - 1
    report.value(scen, ops[0], 1, "manystore", result["cold"] * 1000)
    report.unit(scen, ops[0], 1, "ms ↓ (via proxy)")
    report.value(scen, ops[1], 1, "manystore", result["warm"] * 1000)
    report.unit(scen, ops[1], 1, "ms ↓ (via proxy)")
    report.value(
        scen,
        ops[2],
        1,
        "manystore",
        f"cold {counts['HEAD']} HEAD + {shards + 1} GET; then {warm_gets / reads:.2f} GET/sample ({reads} samples)",
    )
    report.unit(scen, ops[2], 1, "count")


if __name__ == "__main__":
    child_main(sys.argv[1:])
    os._exit(0)  # no teardown: a peer's native threads must not hang the exit
