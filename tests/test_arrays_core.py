"""Raw and ``.npy`` arrays, json and pickle through ``manystore.arrays`` on every backend."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from manystore.arrays import DefaultInterface, codecs

from .conftest import Backend, make_backend

CODECS = [False, *codecs.CODECS]


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 7))
    out = {
        "bool": base > 0,
        "int8": (base * 50).astype(np.int8),
        "int64": (base * 1e9).astype(np.int64),
        "uint16": (np.abs(base) * 1000).astype(np.uint16),
        "float16": base.astype(np.float16),
        "float32": base.astype(np.float32),
        "float64": base,
        "complex128": base + 1j * base[::-1],
        "datetime64": (base * 1e6).astype(np.int64).astype("datetime64[ns]"),
        "timedelta64": (base * 1e3).astype(np.int64).astype("timedelta64[ms]"),
        "unicode": np.array([[f"s{i}{j}é" for j in range(7)] for i in range(5)]),
        "bytes": np.array([[f"b{i}{j}".encode() for j in range(7)] for i in range(5)]),
        "big-endian": base.astype(">f8"),
    }
    rec = np.zeros((5, 7), dtype=[("a", "<i4"), ("b", "<f8", (2,)), ("c", "S3")])
    rec["a"], rec["b"][..., 0], rec["c"] = (base * 10).astype(int), base, b"xyz"
    out["structured"] = rec
    return out


def check_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("compression", [False, "gzip"])
def test_raw_every_dtype_and_order(backend: Backend, compression: object) -> None:
    cci = DefaultInterface(backend.client, "raw")
    for name, arr in sample_arrays().items():
        for layout, value in (("C", arr), ("F", np.asfortranarray(arr)), ("strided", arr[::2, ::3])):
            key = f"{name}-{layout}"
            cci.upload_raw_array(key, value, compression=compression)
            got = cci.download_raw_array(key)
            check_same(got, value)
            if layout == "F" and value.ndim > 1:
                assert got.flags.f_contiguous  # stored as order F, not copied to C
            assert cci._metadata(key)["compression"] == str(compression)


@pytest.mark.parametrize("compression", CODECS)
def test_raw_each_codec_shapes(backend: Backend, compression: object) -> None:
    cci = DefaultInterface(backend.client, "codec")
    arrays = {
        "zero-d": np.array(3.5),
        "empty": np.zeros((0, 4), dtype=np.int32),
        "f-order": np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4)),
        "strided": np.arange(100, dtype=np.int16)[::3],
        "datetime": np.arange(10).astype("datetime64[s]"),
    }
    for key, arr in arrays.items():
        cci.upload_raw_array(key, arr, compression=compression)
        check_same(cci.download_raw_array(key), arr)
        meta = cci._metadata(key)
        assert meta["dtype"] == arr.dtype.str and meta["shape"] == ",".join(map(str, arr.shape))
        if compression not in (False, "gzip"):
            assert meta["order"] == "C"  # numcodecs readers assume C order


def test_raw_large_streams_and_ranged_reads(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    from manystore.arrays import _base, array

    monkeypatch.setattr(_base, "RANGE_CHUNK", 256 * 1024)
    monkeypatch.setattr(array, "SMALL_PUT", 64 * 1024)
    monkeypatch.setattr(_base, "SMALL_PUT", 64 * 1024)
    cci = DefaultInterface(backend.client, "large", threads=4)
    arr = np.random.default_rng(1).standard_normal((300, 1000)).astype(np.float32)  # 1.2 MB
    for compression in CODECS:
        cci.upload_raw_array("a", arr, compression=compression)
        check_same(cci.download_raw_array("a", buffersize=100_000), arr)
    cci.upload_raw_array("f", np.asfortranarray(arr), compression=False)
    assert cci._size("f") == arr.nbytes
    check_same(cci.download_raw_array("f"), arr)


def test_raw_errors(backend: Backend) -> None:
    cci = DefaultInterface(backend.client, "err")
    with pytest.raises(ValueError, match="compression='Snappy'"):
        cci.upload_raw_array("x", np.arange(3), compression="Snappy")
    with pytest.raises(TypeError, match="object"):
        cci.upload_raw_array("x", np.array([{}, 1], dtype=object))
    with pytest.raises(ValueError, match="acl='public-read'"):
        cci.upload_raw_array("x", np.arange(3), acl="public-read")
    with pytest.raises(ValueError, match="'shape'"):
        cci.upload_raw_array("x", np.arange(3), shape="1")
    with pytest.raises(FileNotFoundError):
        cci.download_raw_array("missing")
    cci.upload_object("plain", b"abc")
    with pytest.raises(ValueError, match="no array metadata"):
        cci.download_raw_array("plain")
    cci.upload_object("bad", b"not gzip", dtype="<f8", shape="2", compression="gzip", order="C")
    with pytest.raises(ValueError, match="not a valid gzip"):
        cci.download_raw_array("bad")
    cci.upload_object("short", b"\0" * 8, dtype="<f8", shape="2", compression="False", order="C")
    with pytest.raises(ValueError, match="expected 16"):
        cci.download_raw_array("short")


def test_lz4_limit_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"LZ4.*at most 2113929216"):
        codecs.resolve("LZ4", codecs.LZ4_LIMIT + 1)
    assert codecs.resolve(True, 2**31 + 1) == "Zstd" and codecs.resolve(True, 10) == "gzip"
    assert codecs.resolve("zstd", 2**33) == "Zstd"


def test_npy_round_trip(backend: Backend) -> None:
    cci = DefaultInterface(backend.client, "npy")
    for name, arr in sample_arrays().items():
        for value in (arr, np.asfortranarray(arr), arr[:, ::2], arr[0, 0]):
            cci.upload_npy_array(name, value)
            raw = cci.download_object(name)
            check_same(np.load(io.BytesIO(raw)), value)  # what np.save would have written
            check_same(cci.download_npy_array(name), value)
    cci.upload_pickle("obj", np.array([{}, 1], dtype=object), trusted_note="x")
    buf = io.BytesIO()
    np.save(buf, np.array([{}, 1], dtype=object), allow_pickle=True)
    cci.upload_object("objnpy", buf.getvalue())
    with pytest.raises(ValueError, match="refusing"):
        cci.download_npy_array("objnpy")


def test_json_pickle_and_objects(backend: Backend, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cci = DefaultInterface(backend.client, "basic")
    cci.upload_json("d.json", {"a": [1, 2], "b": "c"}, note="n")
    assert cci.download_json("d.json") == {"a": [1, 2], "b": "c"}
    assert cci.download_stream("d.json").metadata["note"] == "n"
    cci.upload_pickle("p.pkl", {"x": (1, 2)})
    with pytest.raises(PermissionError, match="trusted=True"):
        cci.download_pickle("p.pkl")
    assert cci.download_pickle("p.pkl", trusted=True) == {"x": (1, 2)}
    cci.allow_pickle = True
    assert cci.download_pickle("p.pkl") == {"x": (1, 2)}
    src = tmp_path / "f.bin"
    src.write_bytes(b"0123456789" * 1000)
    cci.upload_from_file(str(src), "f.bin")
    cci.download_to_file("f.bin", str(tmp_path / "out" / "g.bin"))
    assert (tmp_path / "out" / "g.bin").read_bytes() == src.read_bytes()
    with pytest.raises(ValueError, match="ExtraArgs"):
        cci.upload_from_file(str(src), "f.bin", ExtraArgs={"ACL": "authenticated-read", "X": 1})
    cci.mpu_fileobject("m.bin", io.BytesIO(b"abc" * 5000), buffersize=1000, verbose=False, k="v")
    assert cci.download_object("m.bin") == b"abc" * 5000
    assert cci.download_stream("m.bin").metadata["k"] == "v"
    assert cci.exists_object("m.bin") and not cci.exists_object("nope")
    with pytest.raises(FileNotFoundError):
        cci.exists_object("nope", raise_err=True)
    names = sorted(m.key for m in cci.get_objects())
    assert names == ["d.json", "f.bin", "m.bin", "p.pkl"]  # no sidecars on POSIX
    assert cci.get_size() == sum(m.content_length for m in cci.get_objects())


_RSS_CHILD = """
import json, resource, sys
import numpy as np
from manystore import StorageClient, StorageClientConfig
from manystore.arrays import DefaultInterface
cci = DefaultInterface(StorageClient(StorageClientConfig.from_dict(json.loads(sys.argv[1]), "test")), "rss")
cci._metadata("a")  # warm up imports and the connection
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
got = cci.download_raw_array("a")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ok = bool(got[4096] == 2.0 and got[1] == 1.0)
print(json.dumps({"base": base, "peak": peak, "nbytes": got.nbytes, "ok": ok}))
"""


@pytest.mark.parametrize("compression", [False, "Zstd"])
@pytest.mark.parametrize("name", ["file", "s3-rclone"])  # the POSIX path and the ranged-GET path
def test_download_peak_memory_is_about_the_array(
    name: str, compression: object, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A 200 MiB download adds at most 1.3x the array to peak RSS (measured in a fresh child)."""
    import json
    import os
    import subprocess
    import sys

    backend = make_backend(name, request, tmp_path)
    arr = np.ones(200 * 2**20 // 4, dtype=np.float32)
    arr[::4096] = 2.0
    DefaultInterface(backend.client, "rss").upload_raw_array("a", arr, compression=compression)
    nbytes = arr.nbytes
    del arr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, json.dumps(backend.config)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    numbers = json.loads(out.stdout.strip().splitlines()[-1])
    assert numbers["ok"] and numbers["nbytes"] == nbytes
    assert numbers["peak"] - numbers["base"] <= 1.3 * nbytes, numbers
