"""S14-zarr: reading a float32 zarr array in 1 MiB chunks through three zarr 3 stores.

One uncompressed array (full 1 GiB, quick 128 MiB; 1 MiB chunks, no codecs but zarr's
``bytes``) is written once through :class:`manystore.arrays.zarr_store.LazyZarrStore`, then
read whole (``arr[:]``: zarr fetches every chunk, ``async.concurrency`` at a time — the same
setting for every store) through:

* ``manystore`` — ``LazyZarrStore`` over a manystore S3 client;
* ``obstore`` — ``zarr.storage.ObjectStore`` over an ``obstore.store.S3Store``;
* ``s3fs`` — ``zarr.storage.FsspecStore`` over an asynchronous ``s3fs.S3FileSystem``.

Each run builds a fresh store (new connections) and the order of the stores rotates between
runs; the figure is MB/s (10^6 bytes per second) of the whole read. The read values are
checked against what was written. Targets: manystore >= 1.0x obstore, >= 2x s3fs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.libs import POOL, Endpoint, _msc_style_config
from bench.report import Report

MiB = 1 << 20
CHUNK_ITEMS = MiB // 4  # float32: 1 MiB per chunk
PREFIX = "s14/array.zarr"
LIBS = ("manystore", "obstore", "s3fs")


def _manystore_store(ep: Endpoint) -> Any:
    from manystore import StorageClient, StorageClientConfig
    from manystore.arrays.zarr_store import LazyZarrStore

    client = StorageClient(StorageClientConfig.from_dict(_msc_style_config(ep), profile="b"))
    return LazyZarrStore(client, PREFIX)


def _obstore_store(ep: Endpoint) -> Any:
    from obstore.store import S3Store
    from zarr.storage import ObjectStore

    s3 = S3Store(
        ep.bucket,
        prefix=PREFIX,
        endpoint=ep.url,
        access_key_id=ep.access_key,
        secret_access_key=ep.secret_key,
        region=ep.region,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    return ObjectStore(s3, read_only=True)


def _fsspec_store(ep: Endpoint) -> Any:
    import s3fs
    from zarr.storage import FsspecStore

    fs = s3fs.S3FileSystem(
        key=ep.access_key,
        secret=ep.secret_key,
        endpoint_url=ep.url,
        client_kwargs={"region_name": ep.region},
        config_kwargs={"s3": {"addressing_style": "path"}, "max_pool_connections": POOL},
        skip_instance_cache=True,
        asynchronous=True,
    )
    return FsspecStore(fs, path=f"{ep.bucket}/{PREFIX}", read_only=True)


STORES: dict[str, Callable[[Endpoint], Any]] = {
    "manystore": _manystore_store,
    "obstore": _obstore_store,
    "s3fs": _fsspec_store,
}


def populate(ep: Endpoint, nbytes: int) -> Any:
    """Write the array (values ``0, 1, 2...`` as float32) and return the expected data."""
    import numpy as np
    import zarr

    n = nbytes // 4
    data = np.arange(n, dtype="f4")
    arr = zarr.create_array(
        _manystore_store(ep),
        shape=(n,),
        chunks=(CHUNK_ITEMS,),
        dtype="f4",
        compressors=None,
        filters=None,
        overwrite=True,
    )
    arr[:] = data
    return data


def read_once(store: Any, expected: Any) -> float:
    """Seconds to read the whole array through ``store`` (values checked after the clock stops)."""
    import numpy as np
    import zarr

    start = time.perf_counter()
    arr = zarr.open_array(store, mode="r")
    got = arr[:]
    seconds = time.perf_counter() - start
    if got.shape != expected.shape or not np.array_equal(got, expected):
        raise RuntimeError("the array read back differs from the one written")
    return seconds


def s14_zarr(report: Report, ep: Endpoint, work: Path, quick: bool, runs: int) -> None:
    """Run S14-zarr and record its row (``read 1 MiB chunks``, MB/s per store)."""
    import zarr

    nbytes = (128 if quick else 1024) * MiB
    concurrency = int(zarr.config.get("async.concurrency"))
    label = f"read {nbytes // MiB} MiB f4 array, 1 MiB chunks"
    report.describe(
        "S14-zarr",
        "zarr 3 array read through LazyZarrStore vs zarr's ObjectStore (obstore) and FsspecStore "
        "(s3fs); Threads = zarr's async.concurrency (chunk requests in flight)",
        "MB/s",
    )
    try:
        expected = populate(ep, nbytes)
    except Exception as exc:
        for lib in LIBS:
            report.error("S14-zarr", label, concurrency, lib, exc)
        return
    seconds: dict[str, list[float]] = {lib: [] for lib in LIBS}
    errors: dict[str, BaseException] = {}
    for run in range(runs):
        order = LIBS[run % len(LIBS) :] + LIBS[: run % len(LIBS)]
        for lib in order:
            if lib in errors:
                continue
            try:
                seconds[lib].append(read_once(STORES[lib](ep), expected))
            except Exception as exc:
                errors[lib] = exc
    for lib in LIBS:
        if lib in errors:
            report.error("S14-zarr", label, concurrency, lib, errors[lib])
        else:
            report.value("S14-zarr", label, concurrency, lib, nbytes / 1e6 / statistics.median(seconds[lib]))
