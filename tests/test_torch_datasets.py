"""manystore.torch datasets and readers on every backend, with real DataLoader workers."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

import manystore.torch as mt
from manystore.torch._order import Sharding, worker_order

from .conftest import Backend

N = 24


def key_and_bytes(reader: Any) -> tuple[str, bytes]:
    """A picklable transform (spawned workers import it by name)."""
    return reader.key.rsplit("/", 1)[-1], reader.read()


def key_only(reader: Any) -> str:
    return str(reader.key.rsplit("/", 1)[-1])


def as_list(batch: list[Any]) -> list[Any]:
    return batch


@pytest.fixture
def data(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """``N`` objects under ``ds/`` of profile ``test`` (``MSC_CONFIG`` points at the backend)."""
    config = tmp_path / "msc.json"
    config.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    rng = random.Random(7)
    objects = {f"o{i:03d}.bin": rng.randbytes(500 + 97 * i) for i in range(N)}
    for name, body in objects.items():
        backend.client.write(f"ds/{name}", body)
    return objects


URL = "msc://test/ds/"


def test_items_equal_direct_reads(backend: Backend, data: dict[str, bytes]) -> None:
    ds = mt.MapDataset.from_prefix(URL)
    assert len(ds) == N
    for i, name in enumerate(sorted(data)):
        reader = ds[i]
        assert isinstance(reader, mt.S3Reader) and reader.key.endswith(f"ds/{name}")
        assert reader.read() == data[name] == backend.client.read(f"ds/{name}")
    buf = bytearray(300)
    reader = ds[3]
    reader.seek(10)
    assert reader.readinto(buf) == 300 and bytes(buf) == data[sorted(data)[3]][10:310]
    assert reader.tell() == 310
    batch = ds.__getitems__([5, 1, -1])
    assert [r.read() for r in batch] == [data[sorted(data)[i]] for i in (5, 1, -1)]
    it = mt.IterableDataset.from_objects([URL + n for n in sorted(data)[:5]], transform=key_and_bytes)
    assert list(it) == [(n, data[n]) for n in sorted(data)[:5]]


def test_range_based_reader(backend: Backend, data: dict[str, bytes]) -> None:
    for buffer_size in (None, 0, 64):
        ds = mt.MapDataset.from_prefix(URL, reader_constructor=mt.ReaderConstructor.range_based(buffer_size))
        body = data[sorted(data)[7]]
        reader = ds[7]
        assert reader.read(5) == body[:5]
        assert reader.read(40) == body[5:45]
        reader.seek(-20, os.SEEK_END)
        assert reader.read() == body[-20:]
        reader.seek(100)
        buf = bytearray(1000)
        assert reader.readinto(buf) == min(1000, len(body) - 100)
        assert bytes(buf[: len(body) - 100]) == body[100:1100]
    with pytest.raises(ValueError, match="prefetch"):
        mt.MapDataset.from_prefix(URL, reader_constructor=mt.ReaderConstructor.range_based(), prefetch=4)


def _epoch_items(ds: mt.IterableDataset, workers: int, context: str | None) -> list[tuple[str, bytes]]:
    loader = DataLoader(
        ds, batch_size=4, num_workers=workers, collate_fn=as_list, multiprocessing_context=context
    )
    return [item for batch in loader for item in batch]


def test_every_item_once_across_workers_and_ranks(backend: Backend, data: dict[str, bytes]) -> None:
    """2 ranks x 2 workers: rank 0's workers forked, rank 1's spawned; every object exactly once."""
    seen: list[tuple[str, bytes]] = []
    for rank, context in ((0, "fork"), (1, "spawn")):
        ds = mt.IterableDataset.from_prefix(
            URL, transform=key_and_bytes, enable_sharding=True, rank=rank, world_size=2, shuffle=True, seed=1
        )
        got = _epoch_items(ds, 2, context)
        assert len(got) == len(ds) == N // 2
        seen += got
    assert sorted(seen) == sorted(data.items())


def test_resume_equals_uninterrupted(backend: Backend, data: dict[str, bytes]) -> None:
    def make() -> mt.IterableDataset:
        ds = mt.IterableDataset.from_prefix(
            URL, transform=key_only, enable_sharding=True, shuffle=True, seed=9, shuffle_buffer=4
        )
        ds.set_epoch(2)
        return ds

    full = [k for batch in DataLoader(make(), batch_size=5, collate_fn=as_list) for k in batch]
    assert sorted(full) == sorted(data) and full != sorted(data)
    ds = make()
    head: list[str] = []
    for step, batch in enumerate(DataLoader(ds, batch_size=5, collate_fn=as_list)):
        head += batch
        if step == 1:
            break
    state = ds.state_dict()
    assert state["position"] == 10 and state["epoch"] == 2
    again = make()
    again.set_epoch(0)
    again.load_state_dict(state)
    rest = [k for batch in DataLoader(again, batch_size=5, collate_fn=as_list) for k in batch]
    assert head + rest == full

    # through torchdata's StatefulDataLoader with 2 forked workers (one state per worker)
    def loader(ds: mt.IterableDataset) -> StatefulDataLoader:
        return StatefulDataLoader(
            ds, batch_size=3, num_workers=2, collate_fn=as_list, multiprocessing_context="fork"
        )

    full_dl = [k for batch in loader(make()) for k in batch]
    assert sorted(full_dl) == sorted(data)
    first = loader(make())
    head = []
    for step, batch in enumerate(first):
        head += batch
        if step == 2:
            break
    snapshot = first.state_dict()
    del first
    second = loader(make())
    second.load_state_dict(snapshot)
    assert head + [k for batch in second for k in batch] == full_dl


def test_prefetch_stays_within_byte_budget(backend: Backend, data: dict[str, bytes]) -> None:
    budget = 8_000
    ds = mt.IterableDataset.from_prefix(URL, transform=key_and_bytes, prefetch=6, prefetch_bytes=budget)
    assert list(ds) == sorted(data.items())
    assert ds.last_prefetcher is not None
    peak = ds.last_prefetcher.peak_held
    assert max(len(b) for b in data.values()) < peak <= budget  # several objects in flight, never over
    mapped = mt.MapDataset.from_prefix(URL, prefetch=4, prefetch_bytes=budget)
    batch = mapped.__getitems__(list(range(N)))
    assert [r.read() for r in batch] == [data[k] for k in sorted(data)]
    assert mapped.last_prefetcher is not None and mapped.last_prefetcher.peak_held <= budget


def test_list_once_and_manifest_len(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A map dataset over 100,000 keys answers len() from one manifest listing."""
    root = tmp_path / "root"
    parts = root / ".msc_manifests" / "parts"
    parts.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "key": f"s/{i:06d}",
                "size_bytes": 3,
                "last_modified": "2024-05-01T12:00:00+00:00",
                "type": "file",
            }
        )
        for i in range(100_000)
    ]
    (parts / "msc_manifest_part000001.jsonl").write_text("\n".join(lines))
    (root / ".msc_manifests" / "msc_manifest_index.json").write_text(
        json.dumps({"version": "1", "parts": [{"path": "parts/msc_manifest_part000001.jsonl"}]})
    )
    (root / "s").mkdir()
    (root / "s" / "000042").write_bytes(b"abc")
    config = {
        "profiles": {"local": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}}
    }
    (tmp_path / "msc.json").write_text(json.dumps(config))
    monkeypatch.setenv("MSC_CONFIG", str(tmp_path / "msc.json"))
    ds = mt.MapDataset.from_manifest("msc://local/s/")
    assert len(ds) == 100_000
    assert ds[42].read() == b"abc"


def test_sharding_counts_and_shuffle_determinism() -> None:
    for n in (23, 24, 1):
        for uneven in ("pad", "drop"):
            per_rank = []
            for rank in range(2):
                sharding = Sharding(rank, 2, uneven, shuffle=True, seed=4)
                got = [i for w in range(2) for i in worker_order(n, sharding, 0, w, 2)]
                assert len(got) == sharding.rank_count(n)
                per_rank.append(got)
            assert len(per_rank[0]) == len(per_rank[1])
            union = per_rank[0] + per_rank[1]
            if uneven == "drop":
                assert len(set(union)) == len(union) == n - n % 2
            else:
                assert set(union) == set(range(n))
    s = Sharding(shuffle=True, seed=11, shuffle_buffer=5)
    assert worker_order(50, s, 3) == worker_order(50, s, 3)
    assert worker_order(50, s, 3) != worker_order(50, s, 4)
    assert sorted(worker_order(50, s, 3)) == list(range(50))
    assert worker_order(50, Sharding(shuffle=True, seed=12), 3) != worker_order(
        50, Sharding(shuffle=True, seed=11), 3
    )
    with pytest.raises(ValueError, match="uneven='wrap'"):
        Sharding(0, 2, "wrap")
    with pytest.raises(ValueError, match="rank=2"):
        Sharding(2, 2)


def test_reader_constructors() -> None:
    rc = mt.S3ReaderConstructor
    assert rc.get_reader_type_string(rc.default()) == "sequential"
    assert rc.get_reader_type_string(None) == "sequential"
    assert rc.get_reader_type_string(rc.range_based(1024)) == "range_based"
    assert rc.get_reader_type_string(lambda *a: None) == "unknown"
    with pytest.raises(ValueError, match="buffer_size -1"):
        rc.range_based(-1)
    with pytest.raises(ValueError, match="max_gap_size -1"):
        rc.dcp_optimized(-1)
    try:
        constructor = rc.dcp_optimized(1 << 20)
    except ImportError as exc:  # the DCP reader module is delivered separately
        assert "manystore.torch._dcp_reader.dcp_optimized" in str(exc)
    else:
        assert rc.get_reader_type_string(constructor) == "dcp_optimized"


def test_seed_names_and_lazy_import() -> None:
    assert mt.S3MapDataset is mt.MapDataset and mt.S3IterableDataset is mt.IterableDataset
    assert mt.S3ClientConfig is mt.ClientConfig and mt.S3Reader is mt.Reader
    assert issubclass(mt.SequentialReader, mt.S3Reader) and issubclass(
        mt.S3Reader, __import__("io").BufferedIOBase
    )
    code = "import sys, manystore, manystore.torch; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": "src"})
    with pytest.raises(ValueError, match="profile='dev'"):
        mt.ClientConfig(profile="dev")
    with pytest.raises(ValueError, match="part_size=1"):
        mt.ClientConfig(part_size=1)
    assert torch.utils.data.get_worker_info() is None


def test_demo_runs_a_dataloader_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [sys.executable, "-m", "manystore.demo", "--dir", str(tmp_path / "a"), "--objects", "20"],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "IterableDataset.from_prefix" in out.stdout and "shuffled: ok" in out.stdout
    assert "DCP save" in out.stdout and "step-1: ok" in out.stdout  # the checkpoint step
    assert (tmp_path / "a" / "checkpoints" / "step-1" / ".metadata").is_file()
    # the samples step: shards written, a shuffled DataLoader epoch, one sample by index, the index
    assert "write_samples:" in out.stdout and "DataLoader, 2 workers, batches of 64: ok" in out.stdout
    assert "(one ranged GET)" in out.stdout and "dataset demo-train" in out.stdout
    assert (tmp_path / "a" / "index.db").is_file()
    # the arrays step: raw and gzip arrays and a dict group read back equal
    assert "download raw" in out.stdout and "download gzip" in out.stdout, out.stdout
    assert "dict2cloud + cloud2dict: equal" in out.stdout and "DIFFERENT" not in out.stdout
    assert (tmp_path / "a" / "layers" / "arrays" / "demo" / "raw").is_file()
    from manystore import demo

    real = demo.importlib.util.find_spec
    monkeypatch.setattr(
        demo.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name)
    )
    assert demo.main(["--dir", str(tmp_path / "b"), "--objects", "5"]) == 0
    assert "torch step skipped: it needs PyTorch (pip install 'manystore[torch]')" in capsys.readouterr().out
