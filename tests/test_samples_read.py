"""manystore.samples reading on every backend: ordered/shuffled, ranks x workers, resume, memory budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from manystore.samples import Dataset, NDArray, SampleLoader, StoreSource, URLSource, packable

from .conftest import Backend
from .samples_shards import Pt, label_of, uneven_shards

SIZES = [7, 5, 9, 3, 6]  # 30 samples, uneven
TOTAL = sum(SIZES)
PATTERN = "msc://test/ds/s-{000..004}.tar"


@packable
class Img:
    image: NDArray
    label: int


@pytest.fixture
def shards(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Five uneven shards under ``ds/`` of profile ``test`` (``MSC_CONFIG`` points at the backend)."""
    config = tmp_path / "msc.json"
    config.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    for i, body in enumerate(uneven_shards(SIZES, extra=True)):
        backend.client.write(f"ds/s-{i:03d}.tar", body)
    return backend


def labels(loader: Any) -> list[int]:
    return [int(s.label) for s in loader]


def test_ordered_and_shuffled_read(shards: Backend) -> None:
    ds = Dataset[Pt](PATTERN)
    assert ds.list_shards() == [f"msc://test/ds/s-{i:03d}.tar" for i in range(5)]
    assert len(ds) == TOTAL
    samples = list(ds)
    assert [s.label for s in samples] == list(range(TOTAL))
    assert all(s.image.dtype == np.uint8 and s.image.shape == (3, 4, 4) for s in samples)
    assert int(samples[17].image[0, 0, 0]) == 17
    shuffled = labels(ds.shuffled(buffer_shards=2, buffer_samples=8, seed=4))
    assert sorted(shuffled) == list(range(TOTAL)) and shuffled != list(range(TOTAL))
    again = ds.shuffled(buffer_shards=2, buffer_samples=8, seed=4)
    assert labels(again) == shuffled  # same seed, same epoch: same order
    again.set_epoch(1)
    assert labels(again) != shuffled
    batches = list(ds.ordered(batch_size=4))
    assert [len(b) for b in batches] == [4] * 7 + [2]
    # a list of URLs and a store listing name the same shards
    listed = StoreSource("msc://test/ds/")
    assert listed.list_shards() == ds.list_shards()
    assert labels(Dataset[Pt](listed).ordered()) == list(range(TOTAL))
    assert labels(Dataset(URLSource(ds.list_shards()[3:]), sample_type=Pt)) == list(range(21, 30))
    stream_ids = [shard_id for shard_id, _ in Dataset[Pt](PATTERN).shards]
    assert stream_ids == ds.list_shards()


def test_two_ranks_two_workers_each_sample_once(shards: Backend) -> None:
    """2 ranks x 2 DataLoader workers (rank 0 forked, rank 1 spawned): equal counts, every sample once."""
    ds = Dataset[Pt](PATTERN)
    seen: list[int] = []
    for rank, context in ((0, "fork"), (1, "spawn")):
        loader = ds.shuffled(buffer_shards=2, buffer_samples=5, seed=3, rank=rank, world_size=2)
        assert len(loader) == TOTAL // 2
        got = list(DataLoader(loader, batch_size=None, num_workers=2, multiprocessing_context=context))
        assert len(got) == TOTAL // 2
        seen += [int(s.label) for s in got]
    assert sorted(seen) == list(range(TOTAL))


def test_uneven_total_pads_or_drops(shards: Backend) -> None:
    """31 samples over 2 ranks: pad wraps to 16 each (one sample twice); drop_uneven gives 15 each."""
    shards.client.write("ds/s-005.tar", uneven_shards([TOTAL, 1])[1])  # label 30
    ds = Dataset[Pt]("msc://test/ds/s-{000..005}.tar")
    pad = [labels(ds.ordered(rank=r, world_size=2)) for r in range(2)]
    assert [len(p) for p in pad] == [16, 16]
    assert sorted(set(pad[0] + pad[1])) == list(range(31)) and pad[1][-1] == 0
    drop = [labels(ds.ordered(rank=r, world_size=2, drop_uneven=True)) for r in range(2)]
    assert [len(d) for d in drop] == [15, 15] and sorted(drop[0] + drop[1]) == list(range(30))
    resampled = ds.shuffled(seed=2, resampled=True, epoch_length=40)
    got = labels(resampled)
    assert len(got) == len(resampled) == 40 and set(got) <= set(range(31))


def test_resume_equals_uninterrupted(shards: Backend) -> None:
    def make() -> SampleLoader:
        loader = Dataset[Pt](PATTERN).shuffled(buffer_shards=3, buffer_samples=6, seed=9)
        loader.set_epoch(2)
        return loader

    full = labels(make())
    assert sorted(full) == list(range(TOTAL))
    first = make()
    it = iter(first)
    head = [int(next(it).label) for _ in range(11)]
    state = first.state_dict()
    assert state["position"] == 11 and state["epoch"] == 2
    second = make()
    second.set_epoch(0)
    second.load_state_dict(state)
    assert head + labels(second) == full

    # through torchdata's StatefulDataLoader with 2 forked workers (one state per worker)
    def loader() -> StatefulDataLoader:
        return StatefulDataLoader(
            make(), batch_size=None, num_workers=2, collate_fn=label_of, multiprocessing_context="fork"
        )

    full_dl = list(loader())
    assert sorted(full_dl) == list(range(TOTAL))
    one = loader()
    head = []
    for step, label in enumerate(one):
        head.append(label)
        if step == 12:
            break
    snapshot = one.state_dict()
    del one
    two = loader()
    two.load_state_dict(snapshot)
    assert head + list(two) == full_dl


def test_memory_budget_bounds_buffer_and_streams(shards: Backend) -> None:
    """Bigger samples (12 KiB images), a 2 MiB budget: the byte bound, not the sample count, limits the buffer."""
    for i, body in enumerate(uneven_shards([40, 40, 40], shape=(3, 64, 64))):
        shards.client.write(f"big/b-{i}.tar", body)
    budget = 2 << 20
    loader = Dataset[Pt]("msc://test/big/b-{0..2}.tar").shuffled(
        buffer_shards=2, buffer_samples=1000, seed=1, memory_budget=budget
    )
    assert sorted(labels(loader)) == list(range(120))
    assert 0 < loader.buffer_bytes < budget
    assert loader.buffer_bytes // 2 < loader.peak_buffer_bytes <= loader.buffer_bytes
    assert loader.peak_buffer_bytes < 120 * 12288  # not the whole epoch
    assert loader.peak_bytes <= budget
    ordered = Dataset[Pt]("msc://test/big/b-{0..2}.tar").ordered(memory_budget=budget)
    assert labels(ordered) == list(range(120))
    assert ordered.peak_open_shards == 2  # the shard being read and the next, prefetched
    assert ordered.peak_bytes <= budget
    with pytest.raises(ValueError, match="memory_budget"):
        Dataset[Pt](PATTERN).shuffled(buffer_shards=200, memory_budget=1 << 20)


def test_reads_indexed_shards_of_write_samples(shards: Backend) -> None:
    """Shards from ``write_samples`` (with ``.idx`` sidecars): counts from the sidecar, a rank split
    inside a shard starts at the indexed member offset, and resume works through the lens view."""
    from manystore.batch import _archindex
    from manystore.samples import write_samples
    from manystore.shortcuts import resolve_storage_client

    samples = [Img(np.full((2, 2), i, np.uint8), i) for i in range(23)]
    urls = write_samples(samples, "msc://test/w/train-%06d.tar", maxcount=7)
    assert len(urls) == 4
    for url in urls:  # forget what the writer remembered: the reader must find the sidecars
        _archindex.forget(*resolve_storage_client(url))
    ds = Dataset[Img]("msc://test/w/train-{000000..000003}.tar")
    ranks = [[s.label for s in ds.ordered(rank=r, world_size=3)] for r in range(3)]
    assert ranks == [list(range(0, 8)), list(range(8, 16)), [*range(16, 23), 0]]
    client, key = resolve_storage_client(urls[1])
    index = _archindex.lookup(client, key)
    assert index is not None and index.source == "sidecar"  # counted from the sidecar, no header walk
    assert all(isinstance(s, Img) and int(s.image[0, 0]) == s.label for s in ds)


def test_get_reads_one_sample_by_index_in_one_ranged_get(
    shards: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Dataset.get(k)``: the k-th sample across the shards; once the member indexes are read,
    each call is exactly one ranged GET of that sample's ``.msgpack`` member."""
    from manystore.objectio import ObjectIO

    ds = Dataset[Pt](PATTERN)
    assert ds.get(0).label == 0  # reads every shard's index (foreign tars: the headers are walked)
    calls: list[tuple[str, Any]] = []
    real = ObjectIO.get_range

    def counting(self: ObjectIO, path: str, byte_range: Any, etag: str | None) -> bytes:
        calls.append((path, byte_range))
        return real(self, path, byte_range, etag)

    monkeypatch.setattr(ObjectIO, "get_range", counting)
    for k in (17, 7, 29, -1, 12):
        calls.clear()
        sample = ds.get(k)
        assert sample.label == k % TOTAL and int(sample.image[0, 0, 0]) == k % TOTAL
        assert len(calls) == 1 and calls[0][1] is not None and calls[0][1].size < 1000
    with pytest.raises(IndexError, match="30 samples"):
        ds.get(TOTAL)
    with pytest.raises(IndexError):
        ds.get(-TOTAL - 1)


def test_buffer_initial_yields_sooner_then_fills_the_buffer() -> None:
    """``buffer_initial`` (webdataset's ``initial``): the first sample leaves once the buffer holds
    that many, then two come in per one out until ``buffer_samples``; None fills it first."""
    import random

    from manystore.samples import _plan

    pieces = [_plan.Piece(0, 0, 40), _plan.Piece(1, 0, 40)]

    def run(initial: int | None) -> tuple[int, list[int], list[tuple[int, int]]]:
        steps = list(
            _plan.schedule(
                pieces,
                None,
                shuffle=True,
                rng=random.Random(1),
                buffer_shards=2,
                buffer_samples=10,
                buffer_bytes=1 << 30,
                buffer_initial=initial,
            )
        )
        held, sizes = 0, []
        for intake, _, _ in steps:
            held += 1 if intake else -1
            sizes.append(held)
        first_out = next(i for i, (intake, _, _) in enumerate(steps) if not intake)
        return first_out, sizes, sorted((n, i) for intake, n, i in steps if not intake)

    early, ramp, out = run(3)
    full, _, out_full = run(None)
    assert early == 3 and full == 10  # intakes before the first sample leaves
    assert max(ramp) == 10 and ramp.index(10) > 3 * 2  # grows one per sample out, up to the cap
    assert out == out_full == sorted((n, i) for n in range(2) for i in range(40))  # each once
    with pytest.raises(ValueError, match="buffer_initial"):
        Dataset[Pt](PATTERN).shuffled(buffer_initial=0)
