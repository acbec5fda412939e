"""Get-Batch on every backend: request order, in-place errors, cont_on_err, archive streams, byte budget."""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
import zipfile
from pathlib import Path

import pytest

from manystore import shortcuts
from manystore.batch import BatchItem, GetBatch, get_batch, write_archive

from .conftest import Backend

PROBE = 64 << 10


def _objects(backend: Backend, sizes: list[int], seed: int = 1) -> dict[str, bytes]:
    rng = random.Random(seed)
    objs = {f"obj/{i:03d}.bin": rng.randbytes(size) for i, size in enumerate(sizes)}
    for key, data in objs.items():
        backend.client.write(key, data)
    return objs


def _mixed(backend: Backend) -> tuple[list[tuple], list[bytes | None]]:
    """Items of every kind (some failing) and what each should deliver (None: an error)."""
    c = backend.client
    objs = _objects(backend, [0, 10, 70_000, 5, 300_000, 1234])
    write_archive(c, "shard.tar", [("a.cls", b"7"), ("b.jpg", b"J" * 90_000)])
    write_archive(c, "shard.zip", [("z.txt", b"zip!")])
    keys = list(objs)
    items: list[tuple] = [
        (c, keys[2]),
        (c, "obj/missing.bin"),
        (c, keys[0]),
        (c, "shard.tar", "b.jpg"),
        (c, keys[4]),
        (c, "shard.tar", "nope"),
        (c, "shard.zip", "z.txt"),
        (c, keys[1]),
        (c, keys[3]),
        (c, keys[5]),
    ]
    expected = [
        objs[keys[2]],
        None,
        b"",
        b"J" * 90_000,
        objs[keys[4]],
        None,
        b"zip!",
        objs[keys[1]],
        objs[keys[3]],
        objs[keys[5]],
    ]
    return items, expected


def test_order_and_in_place_errors(backend: Backend) -> None:
    items, expected = _mixed(backend)
    batch = GetBatch(items, byte_budget=256 << 10, workers=4, probe=PROBE)
    got = list(batch.get())
    assert [(i.obj_name, i.archpath) for i, _ in got] == [
        (it[1], it[2] if len(it) > 2 else "") for it in items
    ]
    for (info, data), want in zip(got, expected, strict=True):
        if want is None:
            assert info.err_msg and data == b"" and info.size == 0
        else:
            assert info.err_msg is None and data == want and info.size == len(want)
    assert "obj/missing.bin" in (got[1][0].err_msg or "") and "nope" in (got[5][0].err_msg or "")
    assert got[0][0].bucket == "test" and got[0][0].provider
    assert batch.stats.items == len(items) and batch.stats.errors == 2
    assert batch.stats.refetches >= 2  # the 70 KB and 300 KB objects exceed the 64 KiB probe


def test_streaming_get_false_checks_first(backend: Backend) -> None:
    items, expected = _mixed(backend)
    got = [data for _, data in GetBatch(items, streaming_get=False, byte_budget=256 << 10)]
    assert got == [b"" if want is None else want for want in expected]
    delivered: list[bytes] = []
    with pytest.raises(FileNotFoundError, match=r"missing\.bin"):
        for _, data in GetBatch(items, streaming_get=False, cont_on_err=False):
            delivered.append(data)
    assert delivered == []  # the failure is known before anything is delivered


def test_cont_on_err_false_raises_at_the_failing_item(backend: Backend) -> None:
    items, expected = _mixed(backend)
    delivered: list[bytes] = []
    with pytest.raises(FileNotFoundError, match=r"missing\.bin"):
        for _, data in get_batch(items, cont_on_err=False):
            delivered.append(data)
    assert delivered == [expected[0]]


@pytest.mark.parametrize("fmt", [".tar", ".tar.gz", ".zip"])
def test_archive_stream_in_order_with_404_markers(backend: Backend, fmt: str) -> None:
    items, expected = _mixed(backend)
    stream = GetBatch(items, output_format=fmt, byte_budget=256 << 10).get(raw=True)
    raw = stream.read()  # type: ignore[union-attr]
    stream.close()  # type: ignore[union-attr]
    if fmt == ".zip":
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [(n, zf.read(n)) for n in zf.namelist()]
    else:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tf:
            members = [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]  # type: ignore[union-attr]
    names = [n for n, _ in members]
    assert names[1] == "__404__/test/obj/missing.bin" and names[5] == "__404__/test/shard.tar/nope"
    assert names[3] == "test/shard.tar/b.jpg" and names[0] == "test/" + items[0][1]
    assert [d for _, d in members] == [b"" if want is None else want for want in expected]


def test_byte_budget_bounds_memory_not_batch_size(backend: Backend) -> None:
    sizes = [random.Random(i).choice([1_000, 40_000, 200_000]) for i in range(60)]
    objs = _objects(backend, sizes, seed=5)
    budget = 300_000
    batch = GetBatch([(backend.client, k) for k in objs], byte_budget=budget, workers=8, probe=PROBE)
    total = 0
    for (info, data), key in zip(batch.get(), objs, strict=True):
        assert data == objs[key] and info.obj_name == key
        total += len(data)
    assert total == sum(sizes) > 10 * budget
    assert batch.stats.peak_held_bytes <= budget + max(sizes)
    # an object larger than the whole budget is still delivered (alone)
    backend.client.write("huge.bin", b"h" * (2 * budget))
    small = GetBatch(
        [(backend.client, "huge.bin"), (backend.client, next(iter(objs)))], byte_budget=budget, probe=PROBE
    )
    assert [len(d) for _, d in small] == [2 * budget, sizes[0]]
    assert small.stats.peak_held_bytes <= budget + 2 * budget


def test_ranges_and_opaque(backend: Backend) -> None:
    objs = _objects(backend, [100_000])
    key = next(iter(objs))
    write_archive(backend.client, "r.tar", [("m", b"0123456789")])
    batch = GetBatch(probe=PROBE)
    batch.add(backend.client, key, start=10, length=20, opaque=b"id-1")
    batch.add(backend.client, key, start=99_990, length=-1)
    batch.add(backend.client, "r.tar", "m", start=2, length=3)
    batch.add(BatchItem(backend.client, key, start=200_000, length=5))
    got = list(batch)
    assert got[0][1] == objs[key][10:30] and got[0][0].opaque == b"id-1"
    assert got[1][1] == objs[key][99_990:]
    assert got[2][1] == b"234"
    assert got[3][0].err_msg and "past its end" in got[3][0].err_msg


def test_across_profiles_by_url(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_bytes(b"from the other profile")
    config = {
        "profiles": {
            **backend.config["profiles"],
            "other": {"storage_provider": {"type": "file", "options": {"base_path": str(other)}}},
        }
    }
    path = tmp_path / "msc.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("MSC_CONFIG", str(path))
    shortcuts.reset_cache()
    backend.client.write("y.txt", b"from test")
    local = tmp_path / "plain.bin"
    local.write_bytes(os.urandom(1000))
    items = ["msc://other/x.txt", ("msc://test/", "y.txt"), str(local), "msc://other/absent"]
    got = list(get_batch(items))
    assert [d for _, d in got[:3]] == [b"from the other profile", b"from test", local.read_bytes()]
    assert [i.bucket for i, _ in got] == ["other", "test", "__filesystem__", "other"]
    assert got[3][0].err_msg


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"output_format='\.rar'"):
        GetBatch(output_format=".rar")
    with pytest.raises(ValueError, match="byte_budget=0"):
        GetBatch(byte_budget=0)
    with pytest.raises(TypeError, match="of type int"):
        GetBatch().add(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected \\(client-or-URL"):
        GetBatch().add(("a", "b", "c", "d"))
