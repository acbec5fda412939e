"""numpy, zarr and xarray over manystore URLs, on every backend.

``LazyZarrStore`` (zarr 3 store): the store contract (byte ranges, listing, deletes,
read-only, equality, pickling), array and group round trips with several chunkings,
consolidated metadata, partial reads that fetch only their chunks (request counts through
a proxy), concurrent multi-key fetches; xarray ``to_zarr``/``open_zarr``; numpy
``load``/``save``/``savez`` and ``mmap_mode`` through the read cache or a temp file.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("zarr", reason="zarr is not installed (extra 'arrays')")
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype

import manystore
from manystore.arrays.zarr_store import LazyZarrStore
from manystore.contrib import numpy as mnp
from manystore.contrib import xarray as mxr
from manystore.contrib import zarr as mzarr

from .conftest import Backend, s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server

PROTO = default_buffer_prototype()


@pytest.fixture
def url(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``msc://test/<fresh>`` on the backend, through ``MSC_CONFIG``."""
    config = tmp_path / "msc.yaml"
    config.write_text(yaml.safe_dump(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    return f"msc://test/{uuid.uuid4().hex[:8]}"


def buf(data: bytes) -> Any:
    return PROTO.buffer.from_bytes(data)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(it: Any) -> list[str]:
    return sorted([k async for k in it])


# ------------------------------------------------------------------ the store contract
def test_store_get_set_ranges_list_delete(url: str) -> None:
    store = LazyZarrStore(url + "/s.zarr")
    assert store._client is None  # lazy: nothing resolved yet

    async def scenario() -> None:
        await store.set("a/b/c", buf(b"0123456789"))
        await store.set("a/d", buf(b"xy"))
        await store.set("zarr.json", buf(b"{}"))
        get = store.get
        assert (await get("a/b/c", PROTO)).to_bytes() == b"0123456789"
        assert (await get("a/b/c", PROTO, RangeByteRequest(2, 5))).to_bytes() == b"234"
        assert (await get("a/b/c", PROTO, RangeByteRequest(8, 20))).to_bytes() == b"89"
        assert (await get("a/b/c", PROTO, OffsetByteRequest(7))).to_bytes() == b"789"
        assert (await get("a/b/c", PROTO, SuffixByteRequest(3))).to_bytes() == b"789"
        assert (await get("a/b/c", PROTO, SuffixByteRequest(50))).to_bytes() == b"0123456789"
        assert await get("missing", PROTO) is None
        assert await get("missing", PROTO, RangeByteRequest(0, 2)) is None
        assert await store.exists("a/d") and not await store.exists("a") and not await store.exists("nope")
        assert await store.getsize("a/b/c") == 10
        assert await collect(store.list()) == ["a/b/c", "a/d", "zarr.json"]
        assert await collect(store.list_prefix("a/")) == ["a/b/c", "a/d"]
        assert await collect(store.list_dir("")) == ["a", "zarr.json"]
        assert await collect(store.list_dir("a")) == ["b", "d"]
        got = await store.get_partial_values(
            PROTO, [("a/b/c", RangeByteRequest(0, 1)), ("missing", None), ("a/d", SuffixByteRequest(1))]
        )
        assert [g if g is None else g.to_bytes() for g in got] == [b"0", None, b"y"]
        many = {
            k: v.to_bytes()
            async for k, v in store._get_many([("a/d", PROTO, None), ("zarr.json", PROTO, None)])
        }
        assert many == {"a/d": b"xy", "zarr.json": b"{}"}
        await store.delete("a/d")
        await store.delete("a/d")  # a missing key is not an error
        assert not await store.exists("a/d")
        await store.delete_dir("a")
        assert await collect(store.list()) == ["zarr.json"]
        assert not await store.is_empty("")

    run(scenario())
    assert store.get_sync("zarr.json").to_bytes() == b"{}"
    store.set_sync("k", buf(b"v"))
    assert manystore.read(url + "/s.zarr/k") == b"v"  # keys are objects under the URL
    store.delete_sync("k")
    assert not run(store.exists("k"))


def test_store_read_only_equality_pickle(url: str) -> None:
    store = LazyZarrStore(url, prefix="p.zarr")
    ro = store.with_read_only(True)
    assert ro.read_only and not store.read_only
    with pytest.raises(ValueError, match="read-only"):
        run(ro.set("k", buf(b"1")))
    with pytest.raises(ValueError, match="read-only"):
        run(ro.delete("k"))
    run(store.set("k", buf(b"1")))
    assert ro.get_sync("k").to_bytes() == b"1"
    assert store == LazyZarrStore(url, prefix="p.zarr")
    assert store != LazyZarrStore(url, prefix="q.zarr")
    assert store != ro
    client, path = manystore.resolve_storage_client(url)
    assert LazyZarrStore(client, prefix=f"{path}/p.zarr") == store  # same place, given as a client
    assert hash(LazyZarrStore(client, prefix=f"{path}/p.zarr")) == hash(store)
    clone = pickle.loads(pickle.dumps(store))
    assert clone == store and clone._client is None  # a URL store pickles as its URL
    assert clone.get_sync("k").to_bytes() == b"1"
    by_client = pickle.loads(pickle.dumps(LazyZarrStore(client, f"{path}/p.zarr")))
    assert by_client.get_sync("k").to_bytes() == b"1"
    assert "secret" not in repr(store).lower() and str(store) == f"{url}/p.zarr"


def test_store_bad_arguments() -> None:
    with pytest.raises(TypeError, match="StorageClient or a URL, got int"):
        LazyZarrStore(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="msc_max_workers must be a positive integer or None, got 0"):
        LazyZarrStore("msc://x/y", msc_max_workers=0)
    with pytest.raises(TypeError, match="msc_max_workers applies to msc:// stores only"):
        mzarr.open_array("/tmp/nowhere.zarr", msc_max_workers=4)


# ------------------------------------------------------------------ zarr round trips
CHUNKINGS = [
    {"chunks": (7, 5)},
    {"chunks": (64, 64)},
    {"chunks": (4, 40), "shards": (8, 40)},
]


@pytest.mark.parametrize("layout", CHUNKINGS, ids=["small", "one-chunk", "sharded"])
def test_zarr_array_round_trip(url: str, layout: dict[str, Any]) -> None:
    data = np.arange(40 * 40, dtype="f4").reshape(40, 40)
    store = LazyZarrStore(url + "/a.zarr")
    arr = zarr.create_array(store, shape=data.shape, dtype=data.dtype, **layout)
    arr[:] = data
    back = mzarr.open_array(url + "/a.zarr", mode="r")
    assert np.array_equal(back[:], data)
    assert np.array_equal(back[3:17, 9:31], data[3:17, 9:31])
    back_rw = zarr.open_array(LazyZarrStore(url + "/a.zarr"), mode="r+")
    back_rw[0, :] = -1
    assert float(mzarr.open(url + "/a.zarr", mode="r")[0, 5]) == -1.0


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_zarr_group_and_consolidated_metadata(url: str) -> None:
    root = mzarr.open_group(url + "/g.zarr", mode="w")
    root.create_array("x", data=np.arange(10, dtype="i8"), chunks=(3,))
    sub = root.create_group("sub")
    sub.create_array("y", data=np.eye(3, dtype="complex64"), chunks=(2, 2))
    root.attrs["title"] = "demo"
    zarr.consolidate_metadata(LazyZarrStore(url + "/g.zarr"))
    assert b"consolidated_metadata" in manystore.read(url + "/g.zarr/zarr.json")
    group = mzarr.open_consolidated(url + "/g.zarr", mode="r")
    assert group.metadata.consolidated_metadata is not None
    assert sorted(name for name, _ in group.members(max_depth=None)) == ["sub", "sub/y", "x"]
    manystore.delete(url + "/g.zarr/x/zarr.json")  # from now on only the consolidated copy knows x
    group = mzarr.open_consolidated(url + "/g.zarr", mode="r")
    assert group["x"].shape == (10,) and group["x"].chunks == (3,)
    assert group.attrs["title"] == "demo"
    assert np.array_equal(group["x"][:], np.arange(10))  # chunks are still there
    assert np.array_equal(group["sub/y"][:], np.eye(3, dtype="complex64"))


def test_partial_read_fetches_only_needed_chunks(
    rclone_server: S3Server, tmp_path: Path, monkeypatch: Any
) -> None:
    proxy = FaultProxy(rclone_server.endpoint_url)
    try:
        profile = s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}", endpoint_url=proxy.url)
        (tmp_path / "msc.yaml").write_text(yaml.safe_dump({"profiles": {"px": profile}}))
        monkeypatch.setenv("MSC_CONFIG", str(tmp_path / "msc.yaml"))
        data = np.arange(64 * 64, dtype="f4").reshape(64, 64)
        arr = zarr.create_array(LazyZarrStore("msc://px/a.zarr"), shape=data.shape, dtype="f4", chunks=(8, 8))
        arr[:] = data  # 64 chunks
        reader = mzarr.open_array("msc://px/a.zarr", mode="r")
        before = len(proxy.requests_log)
        assert np.array_equal(reader[8:16, 0:24], data[8:16, 0:24])  # chunks (1,0) (1,1) (1,2)
        chunk_gets = sorted(p for m, p in proxy.requests_log[before:] if m == "GET" and "/a.zarr/c/" in p)
        assert len(chunk_gets) == 3, chunk_gets
        assert all("/c/1/" in p for p in chunk_gets)
    finally:
        proxy.close()


def test_multi_key_fetches_are_concurrent(rclone_server: S3Server, tmp_path: Path, monkeypatch: Any) -> None:
    proxy = FaultProxy(rclone_server.endpoint_url)
    try:
        profile = s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}", endpoint_url=proxy.url)
        (tmp_path / "msc.yaml").write_text(yaml.safe_dump({"profiles": {"cx": profile}}))
        monkeypatch.setenv("MSC_CONFIG", str(tmp_path / "msc.yaml"))
        store = LazyZarrStore("msc://cx/m", msc_max_workers=8)
        for i in range(8):
            store.set_sync(f"k{i}", buf(bytes([i]) * 10))
        proxy.inject("latency", 8, method="GET", delay=0.5)
        t0 = time.monotonic()
        got = run(store.get_partial_values(PROTO, [(f"k{i}", None) for i in range(8)]))
        elapsed = time.monotonic() - t0
        assert [g.to_bytes() for g in got] == [bytes([i]) * 10 for i in range(8)]
        assert proxy.injected["latency"] == 8
        assert elapsed < 2.0, f"8 GETs with 0.5 s latency took {elapsed:.2f} s: not concurrent"
    finally:
        proxy.close()


# ------------------------------------------------------------------ xarray
@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_xarray_round_trip(url: str) -> None:
    xr = pytest.importorskip("xarray", reason="xarray is not installed (extra 'arrays')")
    ds = xr.Dataset(
        {"t": (("time", "x"), np.random.default_rng(0).random((6, 5)).astype("f8"))},
        coords={"time": np.arange(6), "x": np.linspace(0, 1, 5)},
        attrs={"source": "test"},
    )
    mxr.to_zarr(ds, url + "/ds.zarr", mode="w", consolidated=True)  # through LazyZarrStore
    back = mxr.open_zarr(url + "/ds.zarr")
    assert back.attrs["source"] == "test"
    xr.testing.assert_identical(back.load(), ds)
    ds.to_zarr(LazyZarrStore(url + "/ds2.zarr"), mode="w")  # a store object
    xr.testing.assert_identical(mxr.open_zarr(url + "/ds2.zarr", msc_max_workers=4).load(), ds)
    ds.to_zarr(url + "/ds3.zarr", mode="w")  # a plain msc:// URL: fsspec's msc protocol
    xr.testing.assert_identical(xr.open_zarr(LazyZarrStore(url + "/ds3.zarr")).load(), ds)


# ------------------------------------------------------------------ numpy
def test_numpy_npy_npz_round_trip(url: str) -> None:
    a = np.arange(12, dtype="i4").reshape(3, 4)
    f = np.asfortranarray(np.linspace(0, 1, 6).reshape(2, 3))
    mnp.save(url + "/a.npy", a, attributes={"kind": "ints"})
    assert np.array_equal(mnp.load(url + "/a.npy"), a)
    mnp.save(url + "/f.npy", f)
    back = mnp.load(url + "/f.npy")
    assert np.array_equal(back, f) and back.flags.f_contiguous
    mnp.savez(url + "/z.npz", a, named=f)
    with mnp.load(url + "/z.npz") as npz:
        assert sorted(npz.files) == ["arr_0", "named"] and np.array_equal(npz["named"], f)
    mnp.savez_compressed(url + "/c.npz", x=np.zeros(1000))
    assert len(manystore.read(url + "/c.npz")) < 1000
    with mnp.load(url + "/c.npz") as npz:
        assert np.array_equal(npz["x"], np.zeros(1000))
    mnp.save(url + "/o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        mnp.load(url + "/o.npy")
    assert mnp.load(url + "/o.npy", allow_pickle=True)[0] == {"a": 1}


def test_numpy_mmap_mode(url: str) -> None:
    a = np.arange(1000, dtype="f8").reshape(10, 100)
    mnp.save(url + "/m.npy", a)
    mapped = mnp.load(url + "/m.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, a)
    cow = mnp.load(url + "/m.npy", mmap_mode="c")
    cow[0, 0] = 42.0  # copy-on-write: the stored object is unchanged
    assert mnp.load(url + "/m.npy")[0, 0] == 0.0
    client, _ = manystore.resolve_storage_client(url)
    if client._is_local():
        return  # a local file: numpy maps it itself, every mode allowed
    assert not Path(str(mapped.filename)).exists()  # no cache: a temp copy, unlinked once mapped
    with pytest.raises(ValueError, match="expected 'r' or 'c'"):
        mnp.load(url + "/m.npy", mmap_mode="r+")


@pytest.fixture
def cached_url(rclone_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    profile = s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")
    profile["caching_enabled"] = True
    config = {"profiles": {"cx": profile}, "cache": {"size": "64M", "location": str(tmp_path / "cache")}}
    (tmp_path / "msc.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("MSC_CONFIG", str(tmp_path / "msc.yaml"))
    yield "msc://cx"


def test_numpy_mmap_maps_the_read_cache_entry(cached_url: str, tmp_path: Path) -> None:
    a = np.arange(4096, dtype="i2")
    mnp.save(cached_url + "/m.npy", a)
    mapped = mnp.load(cached_url + "/m.npy", mmap_mode="r")
    assert np.array_equal(mapped, a)
    assert str(tmp_path / "cache") in str(mapped.filename)  # the cache's own file, not a copy
    raw = mnp.memmap(cached_url + "/m.npy", dtype=np.uint8)
    assert bytes(raw[:6]) == b"\x93NUMPY"
