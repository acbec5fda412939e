"""Dask arrays, sparse matrices and dict groups (manystore.arrays dask/sparse/groups) on every backend."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import scipy.sparse as sp

from manystore import StorageClient, StorageClientConfig
from manystore.arrays import DefaultInterface
from manystore.arrays.browser import Group
from manystore.arrays.dask import generate_ndarray_chunks

from .conftest import Backend, s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server


def test_chunking_is_cottoncandys() -> None:
    arr = np.zeros((4, 6, 1000), dtype="<f8")
    chunks = list(generate_ndarray_chunks(arr, axis=-1, buffersize=4 * 6 * 8 * 100))
    # cottoncandy's float rounding gives a step of 101 here; ceil(1000 / 101) + 1 chunks, the
    # last one empty (checked against cottoncandy's own splitter)
    assert [c for c, _ in chunks] == [(0, 0, i) for i in range(11)]
    assert [a.shape for _, a in chunks][-3:] == [(4, 6, 101), (4, 6, 91), (4, 6, 0)]
    iso = list(generate_ndarray_chunks(np.zeros((20, 20)), axis=None, buffersize=800))
    assert [a.shape for _, a in iso][:4] == [(11, 11), (11, 9), (11, 0), (9, 11)] and len(iso) == 9
    with pytest.raises(ValueError, match="axis=3"):
        list(generate_ndarray_chunks(arr, axis=3))
    with pytest.raises(ValueError, match="buffersize=0"):
        list(generate_ndarray_chunks(arr, buffersize=0))


@pytest.mark.parametrize("axis", [-1, 0, None])
def test_dask_round_trip(backend: Backend, axis: int | None) -> None:
    cci = DefaultInterface(backend.client, "root")
    arr = np.arange(6 * 10 * 30, dtype="<f4").reshape(6, 10, 30)
    cci.upload_dask_array("cube", arr, axis=axis, buffersize=6 * 10 * 4 * 8, note="x")
    meta = json.loads(cci._get("cube/metadata.json"))
    assert list(meta) == ["shape", "dtype", "dask", "chunk_sizes", "chunks"]  # cottoncandy's key order
    assert meta["shape"] == [6, 10, 30] and meta["dtype"] == "<f4"
    # parts are named by their key in the bucket (what cottoncandy at the bucket's root sees)
    assert all(re.fullmatch(r"(?:[^/]+/)?root/cube/pt\d{4}", part) for _, part in meta["dask"])
    assert cci._metadata("cube/metadata.json").get("note") == "x"
    parts = [name for name in cci.lsdir("cube") if "/pt" in name]
    assert len(parts) == len(meta["dask"])
    lazy = cci.download_dask_array("cube")
    assert lazy.shape == arr.shape and lazy.dtype == arr.dtype
    np.testing.assert_array_equal(lazy.compute(), arr)
    np.testing.assert_array_equal(np.asarray(lazy[..., 3:17]), arr[..., 3:17])
    # two downloads never share graph keys (the default name gets a token)
    other = np.ones((2, 3), dtype="<i2")
    cci.upload_dask_array("small", other, buffersize=4)
    assert (cci.download_dask_array("small") + 1).sum().compute() == 12
    assert cci.download_dask_array("cube", dask_name="mine").name == "mine"


def test_dask_errors(backend: Backend) -> None:
    cci = DefaultInterface(backend.client, "root")
    with pytest.raises(FileNotFoundError, match=r"nothing/metadata\.json"):
        cci.download_dask_array("nothing")
    cci.upload_json("bad/metadata.json", {"shape": [2]})
    with pytest.raises(ValueError, match="not a chunked array"):
        cci.download_dask_array("bad")
    cci.upload_dask_array("arr", np.arange(10), buffersize=16)
    cci.upload_raw_array("arr/pt0000", np.arange(3))  # a part that no longer matches
    with pytest.raises(ValueError, match=r"arr/pt0000.*expected shape \(2,\)"):
        cci.download_dask_array("arr").compute()
    with pytest.raises(ValueError, match="threads=0"):
        cci.upload_dask_array("arr2", np.arange(10), threads=0)


@pytest.fixture
def proxied_interface(rclone_server: S3Server) -> Iterator[tuple[FaultProxy, DefaultInterface]]:
    """An interface on rclone through a counting proxy."""
    proxy = FaultProxy(rclone_server.endpoint_url)
    profile = s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")
    profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
    client = StorageClient(StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p"))
    try:
        yield proxy, DefaultInterface(client, "")
    finally:
        proxy.close()


def _part_gets(proxy: FaultProxy, start: int) -> set[str]:
    return {
        match.group(1)
        for method, path in proxy.requests_log[start:]
        if method == "GET" and (match := re.search(r"/big/(pt\d{4})(?:\?|$)", path))
    }


def test_dask_slice_fetches_only_its_chunks(proxied_interface: tuple[FaultProxy, DefaultInterface]) -> None:
    proxy, cci = proxied_interface
    arr = np.arange(8 * 1000, dtype="<f8").reshape(8, 1000)
    cci.upload_dask_array("big", arr, axis=-1, buffersize=8 * 8 * 100)  # 100 columns a part
    start = len(proxy.requests_log)
    lazy = cci.download_dask_array("big")
    assert _part_gets(proxy, start) == set()  # only metadata.json so far
    np.testing.assert_array_equal(np.asarray(lazy[:, 250:420]), arr[:, 250:420])
    assert _part_gets(proxy, start) == {"pt0002", "pt0003", "pt0004"}
    start = len(proxy.requests_log)
    assert float(lazy[3, 999].compute()) == arr[3, 999]
    assert _part_gets(proxy, start) == {"pt0009"}


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "dia", "dok", "lil"])
def test_sparse_round_trip(backend: Backend, fmt: str) -> None:
    cci = DefaultInterface(backend.client, "root")
    dense = np.zeros((6, 8), dtype="<f8")
    dense[0, 1], dense[2, 3], dense[5, 7], dense[4, 0] = 1.5, -2.0, 3.25, 7.0
    matrix = sp.csr_matrix(dense).asformat(fmt)
    cci.upload_sparse_array(f"m_{fmt}", matrix)
    stored = "csr" if fmt in ("dok", "lil") else fmt
    meta = json.loads(cci._get(f"m_{fmt}/metadata.json"))
    assert meta["type"] == stored and meta["shape"] == [6, 8]
    got = cci.download_sparse_array(f"m_{fmt}")
    assert got.format == stored and sp.issparse(got)
    np.testing.assert_array_equal(got.toarray(), dense)
    assert sorted(n.rsplit("/", 1)[1] for n in cci.lsdir(f"m_{fmt}")) == sorted(
        [*meta["attrs"], "metadata.json"]
    )


def test_sparse_arrays_and_errors(backend: Backend) -> None:
    cci = DefaultInterface(backend.client, "root")
    cci.upload_sparse_array("a", sp.csc_array(np.eye(3)))
    np.testing.assert_array_equal(cci.download_sparse_array("a").toarray(), np.eye(3))
    with pytest.raises(TypeError, match="ndarray"):
        cci.upload_sparse_array("b", np.eye(3))
    cci.upload_json("c/metadata.json", {"type": "xyz", "attrs": ["data"], "shape": [1, 1]})
    with pytest.raises(ValueError, match="type 'xyz'"):
        cci.download_sparse_array("c")


def test_groups_round_trip(backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    cci = DefaultInterface(backend.client, "root")
    data = {
        "a": np.arange(5, dtype="<i4"),
        "list": [1.0, 2.0],
        "sub": {"b": np.eye(2, dtype="<f8"), "deeper": {"c": np.array([True, False])}},
    }
    cci.dict2cloud("run.grp", data, extra="1")
    assert 'uploaded arrays in "run.grp"' in capsys.readouterr().out
    assert cci._metadata("run.grp/sub/deeper/c").get("extra") == "1"
    got = cci.cloud2dict("run.grp", verbose=False)
    assert sorted(got) == ["a", "list", "sub"] and sorted(got["sub"]) == ["b", "deeper"]
    np.testing.assert_array_equal(got["a"], data["a"])
    np.testing.assert_array_equal(got["list"], np.array([1.0, 2.0]))
    np.testing.assert_array_equal(got["sub"]["deeper"]["c"], data["sub"]["deeper"]["c"])
    subset = cci.cloud2dict("run.grp", keys=["a", "sub"], verbose=False)
    assert sorted(subset) == ["a", "sub"] and sorted(subset["sub"]) == ["b", "deeper"]
    assert list(cci.cloud2dict("run.grp", keys="a", verbose=False)) == ["a"]
    with pytest.raises(KeyError, match="'nope'"):
        cci.cloud2dict("run.grp", keys=["nope"], verbose=False)
    with pytest.raises(FileNotFoundError, match="nothing found"):
        cci.cloud2dict("empty", verbose=False)
    with pytest.raises(TypeError, match="bogus"):
        cci.cloud2dict("run.grp", bogus=1)
    cci._put("run.grp/plain", b"not an array")
    with pytest.warns(UserWarning, match="no dtype/shape"):
        assert cci.cloud2dict("run.grp", keys=["plain"], verbose=False) == {"plain": None}


def test_cloud2dataset_is_a_lazy_group(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    cci = DefaultInterface(backend.client, "root")
    cci.dict2cloud("exp.grp", {"x": np.arange(3), "y": {"z": np.ones(2)}}, verbose=False)
    downloads: list[str] = []
    real = DefaultInterface.download_raw_array

    def counting(self: DefaultInterface, name: str, *args: object, **kwargs: object) -> np.ndarray:
        downloads.append(name)
        return real(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(DefaultInterface, "download_raw_array", counting)
    group = cci.cloud2dataset("exp.grp")
    assert isinstance(group, Group) and downloads == []
    assert group.keys() == ["x", "y"] and downloads == []
    np.testing.assert_array_equal(group.load("x"), np.arange(3))
    assert downloads == ["exp.grp/x"]
    np.testing.assert_array_equal(group["y"].load("z"), np.ones(2))
    np.testing.assert_array_equal(group.y.z.load(), np.ones(2))
    assert "shape=(2)" in repr(group.y.z)
    with pytest.raises(ValueError, match="pass a key"):
        group.load()
    with pytest.raises(KeyError, match="'w'"):
        group.load("w")
    # the browser loads dask arrays and sparse matrices too
    cci.upload_dask_array("exp.grp/d", np.arange(4.0), buffersize=16)
    cci.upload_sparse_array("exp.grp/s", sp.eye(3, format="csr"))
    assert float(group.load("d").sum().compute()) == 6.0
    assert group.load("s").nnz == 3
