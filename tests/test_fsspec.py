"""The ``msc`` fsspec filesystem: paths and names, reads, writes, errors, and the data ecosystem.

pandas, pyarrow, zarr and UPath run against ``msc://`` URLs on the rclone S3 server (and
the local backend where noted); the entry-point registration is checked in a subprocess
that never imports manystore itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import fsspec
import pytest

from manystore import shortcuts
from manystore.contrib.async_fs import MultiStorageAsyncFileSystem

from .conftest import s3_profile
from .servers import S3Server
from .test_fsspec_abstract import PROFILE, use_profile

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def s3fsx(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MultiStorageAsyncFileSystem:
    """Profile ``fsx`` on the rclone S3 server (a fresh prefix), and the filesystem."""
    use_profile("s3-rclone", request, tmp_path, monkeypatch)
    return MultiStorageAsyncFileSystem()


@pytest.fixture(params=["file", "s3-rclone"])
def anyfsx(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MultiStorageAsyncFileSystem:
    """Profile ``fsx`` on the local backend and on rclone S3."""
    use_profile(request.param, request, tmp_path, monkeypatch)
    return MultiStorageAsyncFileSystem()


# ------------------------------------------------------------------ registration
def test_registered_protocol_and_alias_module() -> None:
    import manystore.async_fs

    assert fsspec.get_filesystem_class("msc") is MultiStorageAsyncFileSystem
    assert manystore.async_fs.MultiStorageAsyncFileSystem is MultiStorageAsyncFileSystem
    assert MultiStorageAsyncFileSystem.protocol == "msc"
    assert isinstance(fsspec.filesystem("msc"), MultiStorageAsyncFileSystem)


def test_fsspec_open_without_importing_manystore(s3fsx: MultiStorageAsyncFileSystem) -> None:
    s3fsx.pipe_file(f"msc://{PROFILE}/sub/hello.txt", b"hello from s3")
    code = (
        "import sys, fsspec\n"
        "assert 'manystore' not in sys.modules\n"
        f"with fsspec.open('msc://{PROFILE}/sub/hello.txt', 'rt') as f:\n"
        "    text = f.read()\n"
        f"with fsspec.open('msc://{PROFILE}/sub/out.bin', 'wb') as f:\n"
        "    f.write(b'written by a subprocess')\n"
        "print(text)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello from s3"
    assert s3fsx.cat_file(f"{PROFILE}/sub/out.bin") == b"written by a subprocess"


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="block_sizes"):
        MultiStorageAsyncFileSystem(block_sizes=5, skip_instance_cache=True)
    with pytest.raises(ValueError, match="use_listings_cache"):
        MultiStorageAsyncFileSystem(use_listings_cache=True, skip_instance_cache=True)
    fs = MultiStorageAsyncFileSystem(use_listings_cache=False, skip_instance_cache=True)
    assert isinstance(fs, MultiStorageAsyncFileSystem)


# ------------------------------------------------------------------------ paths
def test_strip_unstrip_and_parent() -> None:
    fs = MultiStorageAsyncFileSystem
    assert fs._strip_protocol("msc://p/a/b/") == "p/a/b"
    assert fs._strip_protocol("/p/a") == "p/a"
    assert fs._strip_protocol("s3://bucket/k/") == "s3://bucket/k"
    assert fs._strip_protocol("file:///") == "file:///"
    assert fs._strip_protocol(["msc://p/x", "p/y/"]) == ["p/x", "p/y"]
    inst = MultiStorageAsyncFileSystem()
    assert inst.unstrip_protocol("p/a") == "msc://p/a"
    assert inst.unstrip_protocol("s3://b/k") == "s3://b/k"
    assert fs._parent("msc://p/a/b") == "p/a"
    assert fs._parent("p") == ""
    assert fs._parent("s3://b/k") == "s3://b"
    assert fs._parent("file:///abs") == "file:///"


def test_info_ls_find_names_and_types(anyfsx: MultiStorageAsyncFileSystem) -> None:
    fs = anyfsx
    fs.pipe({f"{PROFILE}/d/a.bin": b"aaa", f"{PROFILE}/d/sub/b.bin": b"bb", f"{PROFILE}/d2": b"x"})
    info = fs.info(f"msc://{PROFILE}/d/a.bin")
    assert (info["name"], info["size"], info["type"]) == (f"{PROFILE}/d/a.bin", 3, "file")
    assert info["LastModified"] == fs.modified(f"{PROFILE}/d/a.bin")
    assert fs.info(f"msc://{PROFILE}/d/") == {"name": f"{PROFILE}/d", "size": 0, "type": "directory"}
    assert fs.info(PROFILE)["type"] == "directory"
    assert fs.ls(f"msc://{PROFILE}/d", detail=False) == [f"{PROFILE}/d/a.bin", f"{PROFILE}/d/sub"]
    assert fs.ls(f"{PROFILE}/d/a.bin", detail=False) == [f"{PROFILE}/d/a.bin"]  # a file lists as itself
    assert fs.isdir(f"{PROFILE}/d/sub") and not fs.isfile(f"{PROFILE}/d/sub")
    assert fs.isfile(f"{PROFILE}/d2") and not fs.isdir(f"{PROFILE}/d2")
    assert fs.find(f"{PROFILE}/d") == [f"{PROFILE}/d/a.bin", f"{PROFILE}/d/sub/b.bin"]
    assert fs.find(f"{PROFILE}/d", maxdepth=1, withdirs=True) == [
        f"{PROFILE}/d",
        f"{PROFILE}/d/a.bin",
        f"{PROFILE}/d/sub",
    ]
    assert fs.glob(f"msc://{PROFILE}/d/**/*.bin") == [f"{PROFILE}/d/a.bin", f"{PROFILE}/d/sub/b.bin"]
    assert fs.du(f"{PROFILE}/d") == 5
    with pytest.raises(FileNotFoundError, match=f"msc://{PROFILE}/nope"):
        fs.info(f"{PROFILE}/nope")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{PROFILE}/nope")
    with pytest.raises(IsADirectoryError, match="modification time"):
        fs.modified(f"{PROFILE}/d")
    with pytest.raises(ValueError, match="maxdepth"):
        fs.find(f"{PROFILE}/d", maxdepth=0)


def test_s3_and_file_urls_keep_their_form(
    rclone_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rclone_server.secret_key)
    monkeypatch.setenv("AWS_REGION", rclone_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", rclone_server.endpoint_url)
    fs = MultiStorageAsyncFileSystem()
    base = f"s3://manystore-test/fsspec-{os.getpid()}-{tmp_path.name}"
    fs.pipe_file(f"{base}/x/y.txt", b"via s3 url")
    assert fs.cat_file(f"{base}/x/y.txt") == b"via s3 url"
    assert fs.ls(f"{base}/x", detail=False) == [f"{base}/x/y.txt"]
    assert fs.info(f"{base}/x")["type"] == "directory"
    fs.rm(base, recursive=True)
    assert not fs.exists(f"{base}/x/y.txt")
    local = tmp_path / "loc" / "f.bin"
    fs.pipe_file(f"file://{local}", b"local bytes")
    assert local.read_bytes() == b"local bytes"
    assert fs.ls(f"file://{local.parent}", detail=False) == [f"file://{local}"]


# ------------------------------------------------------------------ reads/writes
def test_ranged_and_random_access_reads(s3fsx: MultiStorageAsyncFileSystem) -> None:
    fs = s3fsx
    data = bytes(range(256)) * 4096  # 1 MiB
    fs.pipe_file(f"{PROFILE}/r.bin", data)
    assert fs.cat_file(f"{PROFILE}/r.bin", start=1000, end=1010) == data[1000:1010]
    assert fs.cat_file(f"{PROFILE}/r.bin", start=-8) == data[-8:]
    assert fs.cat_file(f"{PROFILE}/r.bin", start=10, end=-10) == data[10:-10]
    assert fs.cat_file(f"{PROFILE}/r.bin", start=50, end=40) == b""
    assert fs.cat_ranges([f"{PROFILE}/r.bin"] * 2, [0, 500_000], [4, 500_004]) == [
        data[:4],
        data[500_000:500_004],
    ]
    with fs.open(
        f"msc://{PROFILE}/r.bin", "rb", block_size=64 << 10
    ) as f:  # larger than block_size: ranged reads
        f.seek(-16, os.SEEK_END)
        assert f.read() == data[-16:]
        f.seek(300_000)
        assert f.read(5) == data[300_000:300_005]
        assert f.tell() == 300_005


def test_writes_are_atomic_and_create_modes(anyfsx: MultiStorageAsyncFileSystem) -> None:
    fs = anyfsx
    path = f"{PROFILE}/w/obj.bin"
    with pytest.raises(RuntimeError), fs.open(path, "wb") as f:
        f.write(b"partial")
        raise RuntimeError("abort the write")
    assert not fs.exists(path)  # nothing stored when the with block raises
    with fs.open(path, "wt") as f:
        f.write("text ✓")
    assert fs.cat_file(path) == "text ✓".encode()
    with fs.open(path, "ab") as f:
        f.write(b"!")
    assert fs.cat_file(path).endswith(b"!")
    with pytest.raises(FileExistsError, match="already exists"):
        fs.pipe_file(path, b"no", mode="create")
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    with pytest.raises(ValueError, match="mode"):
        fs.pipe_file(path, b"no", mode="append")
    fs.pipe_file(f"{PROFILE}/w/new.bin", b"new", mode="create")
    assert fs.cat_file(f"{PROFILE}/w/new.bin") == b"new"
    with pytest.raises(NotImplementedError, match="transactions"):
        fs.open(path, "wb", autocommit=False)
    with pytest.raises(ValueError, match="cache_options"):
        fs.open(path, "rb", cache_options={"blocksize": 5})


def test_put_get_copy_move_and_rm(anyfsx: MultiStorageAsyncFileSystem, tmp_path: Path) -> None:
    fs = anyfsx
    src = tmp_path / "up"
    (src / "deep").mkdir(parents=True)
    (src / "one.txt").write_bytes(b"1")
    (src / "deep" / "two.txt").write_bytes(b"22")
    fs.put(str(src) + "/", f"{PROFILE}/up", recursive=True)
    assert fs.find(f"{PROFILE}/up") == [f"{PROFILE}/up/deep/two.txt", f"{PROFILE}/up/one.txt"]
    with pytest.raises(FileExistsError):
        fs.put_file(str(src / "one.txt"), f"{PROFILE}/up/one.txt", mode="create")
    fs.get(f"{PROFILE}/up/", str(tmp_path / "down"), recursive=True)
    assert (tmp_path / "down" / "deep" / "two.txt").read_bytes() == b"22"
    fs.cp(f"{PROFILE}/up", f"{PROFILE}/cp", recursive=True)
    assert fs.cat(f"{PROFILE}/cp/deep/two.txt") == b"22"
    fs.mv(f"{PROFILE}/cp/one.txt", f"{PROFILE}/mv/one.txt")
    assert fs.cat(f"{PROFILE}/mv/one.txt") == b"1" and not fs.exists(f"{PROFILE}/cp/one.txt")
    with pytest.raises(IsADirectoryError, match="recursive=True"):
        fs.rm(f"{PROFILE}/up/deep")
    fs.rm(f"{PROFILE}/up", recursive=True)
    assert not fs.exists(f"{PROFILE}/up")
    with pytest.raises(FileNotFoundError):
        fs.rm(f"{PROFILE}/up", recursive=True)
    with pytest.raises(FileExistsError):
        fs.makedirs(f"{PROFILE}/cp")
    fs.makedirs(f"{PROFILE}/cp", exist_ok=True)


def test_cross_profile_copy_streams(s3fsx: MultiStorageAsyncFileSystem, tmp_path: Path) -> None:
    s3fsx.pipe_file(f"{PROFILE}/x.bin", b"cross" * 1000)
    dest = tmp_path / "copy" / "x.bin"
    s3fsx.cp_file(f"{PROFILE}/x.bin", f"file://{dest}")
    assert dest.read_bytes() == b"cross" * 1000


def test_async_use_and_pickling(s3fsx: MultiStorageAsyncFileSystem) -> None:
    async def main() -> tuple[bytes, list[Any]]:
        fs = MultiStorageAsyncFileSystem(asynchronous=True, skip_instance_cache=True)
        await fs._pipe_file(f"{PROFILE}/as/a", b"async")
        data = await fs._cat_file(f"{PROFILE}/as/a")
        return data, await asyncio.gather(*[fs._exists(f"{PROFILE}/as/{n}") for n in "ab"])

    assert asyncio.run(main()) == (b"async", [True, False])
    clone = pickle.loads(pickle.dumps(s3fsx))
    assert clone.cat_file(f"{PROFILE}/as/a") == b"async"


# -------------------------------------------------------------------- ecosystem
def test_pandas_parquet_round_trip(s3fsx: MultiStorageAsyncFileSystem) -> None:
    import pandas as pd

    df = pd.DataFrame({"n": range(1000), "s": [f"row{i}" for i in range(1000)]})
    df.to_parquet(f"msc://{PROFILE}/pd/df.parquet")
    assert s3fsx.info(f"{PROFILE}/pd/df.parquet")["size"] > 0
    back = pd.read_parquet(f"msc://{PROFILE}/pd/df.parquet")
    pd.testing.assert_frame_equal(back, df)
    df.to_csv(f"msc://{PROFILE}/pd/df.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv(f"msc://{PROFILE}/pd/df.csv"), df)


def test_pyarrow_dataset_round_trip(s3fsx: MultiStorageAsyncFileSystem) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds

    table = pa.table({"part": ["a", "b"] * 50, "v": list(range(100))})
    ds.write_dataset(
        table,
        f"{PROFILE}/ds",
        format="parquet",
        filesystem=s3fsx,
        partitioning=["part"],
        partitioning_flavor="hive",
    )
    assert s3fsx.isdir(f"{PROFILE}/ds/part=a")
    # pyarrow compares listed names with the path it was given: give the stripped form
    path = s3fsx._strip_protocol(f"msc://{PROFILE}/ds")
    back = ds.dataset(path, format="parquet", filesystem=s3fsx, partitioning="hive").to_table()
    assert sorted(back.column("v").to_pylist()) == list(range(100))
    assert sorted(set(back.column("part").to_pylist())) == ["a", "b"]


def test_zarr_through_fsspec_url(s3fsx: MultiStorageAsyncFileSystem) -> None:
    import numpy as np
    import zarr

    url = f"msc://{PROFILE}/arrays/z.zarr"
    z = zarr.create_array(url, shape=(64, 64), chunks=(16, 16), dtype="int32", overwrite=True)
    z[:] = np.arange(64 * 64, dtype="int32").reshape(64, 64)
    again = zarr.open_array(url, mode="r")
    assert (again[10:20, 30:40] == np.arange(64 * 64).reshape(64, 64)[10:20, 30:40]).all()
    assert s3fsx.exists(f"{PROFILE}/arrays/z.zarr/zarr.json")
    group = zarr.open_group(f"msc://{PROFILE}/arrays/g.zarr", mode="w")
    group.create_array("x", shape=(4,), dtype="float64")[:] = [1.0, 2.0, 3.0, 4.0]
    assert list(zarr.open_group(f"msc://{PROFILE}/arrays/g.zarr", mode="r")["x"][:]) == [1.0, 2.0, 3.0, 4.0]


def test_upath_read_write_iterdir(s3fsx: MultiStorageAsyncFileSystem) -> None:
    import warnings

    import upath

    from manystore.contrib.upath import MultiStorageUPath

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "filesystem not explicitly implemented" fallback
        root = upath.UPath(f"msc://{PROFILE}/up")
    assert type(root) is MultiStorageUPath
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(b"beta")
    assert (root / "a.txt").read_text() == "alpha"
    assert sorted(p.name for p in root.iterdir()) == ["a.txt", "sub"]
    assert (root / "sub").is_dir() and (root / "a.txt").is_file()
    assert [str(p) for p in root.glob("**/*.bin")] == [f"msc://{PROFILE}/up/sub/b.bin"]
    (root / "a.txt").unlink()
    assert not (root / "a.txt").exists()


def test_ecosystem_in_a_subprocess_without_manystore_import(rclone_server: S3Server, tmp_path: Path) -> None:
    """pandas, pyarrow, zarr and UPath find ``msc`` through the entry point alone."""
    config = tmp_path / "cfg.json"
    base = f"manystore-test/sub-{tmp_path.name}"
    config.write_text(json.dumps({"profiles": {"eco": s3_profile(rclone_server, base)}}))
    code = """
import sys
import fsspec, numpy as np, pandas as pd, pyarrow.dataset as ds, upath, zarr
df = pd.DataFrame({"a": [1, 2, 3]})
df.to_parquet("msc://eco/t.parquet")
assert pd.read_parquet("msc://eco/t.parquet").equals(df)
fs = fsspec.filesystem("msc")
assert ds.dataset("eco/t.parquet", filesystem=fs).to_table().num_rows == 3
z = zarr.create_array("msc://eco/z.zarr", shape=(4,), dtype="int8")
z[:] = np.arange(4, dtype="int8")
assert list(zarr.open_array("msc://eco/z.zarr")[:]) == [0, 1, 2, 3]
p = upath.UPath("msc://eco/u.txt")
p.write_text("u")
assert p.read_text() == "u"
print("ok", "manystore.contrib.async_fs" in sys.modules, sorted(x.name for x in upath.UPath("msc://eco").iterdir()))
"""
    env = {**os.environ, "PYTHONPATH": SRC, "MSC_CONFIG": str(config), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ok", "True", "['t.parquet',", "'u.txt',", "'z.zarr']"]
    shortcuts.reset_cache()


def test_import_manystore_does_not_import_fsspec() -> None:
    code = "import sys, manystore, manystore.contrib\nprint('fsspec' in sys.modules, 'manystore.async_fs' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
