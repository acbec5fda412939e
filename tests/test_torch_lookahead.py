"""MapDataset look-ahead across batches: real DataLoader workers (fork and spawn) on every backend."""

# ruff: noqa: F811  (``data`` is test_torch_datasets' fixture, imported to be requested by name)

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import pytest
import torch.utils.data
from torch.utils.data import DataLoader

import manystore.torch as mt
from manystore.torch._lookahead import IDLE_SECONDS, BatchFetcher, Plan, Predictor
from manystore.torch._order import Sharding

from .conftest import Backend
from .test_torch_datasets import URL, N, as_list, data, key_and_bytes  # noqa: F401

BATCH = 4


def with_stats(reader: Any) -> tuple[int, str, bytes, dict[str, int]]:
    """Item plus this worker's look-ahead counters (picklable: spawned workers import it)."""
    info = torch.utils.data.get_worker_info()
    dataset = info.dataset if info is not None else None
    fetcher = getattr(dataset, "last_prefetcher", None)
    stats = {name: getattr(fetcher, name) for name in ("hits", "started", "wasted", "peak_held", "held")}
    return (info.id if info else 0), reader.key.rsplit("/", 1)[-1], reader.read(), stats


def _final_stats(items: list[tuple[int, str, bytes, dict[str, int]]]) -> dict[int, dict[str, int]]:
    """Per worker, the counters seen by its last item."""
    return {worker: stats for worker, _, _, stats in items}


@pytest.mark.parametrize(
    ("context", "shuffled"), [("fork", False), ("fork", True)], ids=["fork-sequential", "fork-sampler"]
)
def test_lookahead_fetches_next_batch_in_workers(
    backend: Backend, data: dict[str, bytes], context: str, shuffled: bool
) -> None:
    """2 workers, batches of 4: every batch after a worker's first was started by the look-ahead."""
    ds = mt.MapDataset.from_prefix(URL, transform=with_stats)
    sampler = ds.sampler(shuffle=True, seed=3) if shuffled else None
    if sampler is not None:
        sampler.set_epoch(1)
    loader = DataLoader(
        ds,
        batch_size=BATCH,
        num_workers=2,
        sampler=sampler,
        collate_fn=as_list,
        multiprocessing_context=context,
        timeout=60,
    )
    items = [item for batch in loader for item in batch]
    names = sorted(data)
    expected = [names[i] for i in (list(sampler) if sampler is not None else range(N))]
    assert [name for _, name, _, _ in items] == expected
    if shuffled:
        assert expected != names
    assert all(body == data[name] for _, name, body, _ in items)
    stats = _final_stats(items)
    assert sorted(stats) == [0, 1]
    per_worker = N // BATCH // 2
    for worker_stats in stats.values():
        # each worker's batches 2 and 3 came from its look-ahead; the last guess fell past the end
        assert worker_stats["hits"] == (per_worker - 1) * BATCH, worker_stats
        assert worker_stats["started"] == worker_stats["hits"] and worker_stats["wasted"] == 0
        assert 0 < worker_stats["peak_held"] <= mt.datasets.DEFAULT_PREFETCH_BYTES
        assert worker_stats["held"] == 0


# Spawned workers import torch afresh (~5-10 s each here): file and one S3 server suffice to
# show the pickled dataset rebuilds its look-ahead; fork runs on every backend above.
@pytest.mark.parametrize("backend", ["file", "s3-rclone"], indirect=True)
def test_lookahead_in_spawned_workers(backend: Backend, data: dict[str, bytes]) -> None:
    test_lookahead_fetches_next_batch_in_workers(backend, data, "spawn", True)


def test_lookahead_stays_within_byte_budget(backend: Backend, data: dict[str, bytes]) -> None:
    budget = 5000  # about two of the larger objects: a guess is only partly fetched ahead
    ds = mt.MapDataset.from_prefix(URL, transform=with_stats, prefetch=4, prefetch_bytes=budget)
    loader = DataLoader(
        ds, batch_size=BATCH, num_workers=1, collate_fn=as_list, multiprocessing_context="fork", timeout=60
    )
    items = [item for batch in loader for item in batch]
    assert [(name, body) for _, name, body, _ in items] == sorted(data.items())
    stats = _final_stats(items)[0]
    assert max(len(b) for b in data.values()) < stats["peak_held"] <= budget
    assert 0 < stats["started"] < (N // BATCH - 1) * BATCH  # the budget cut the guesses short
    assert stats["hits"] == stats["started"] and stats["held"] == 0


def test_persistent_workers_follow_the_samplers_next_epoch(tmp_path: Any, monkeypatch: Any) -> None:
    """Persistent workers never see ``set_epoch``: the look-ahead finds the next epoch's order itself."""
    config = tmp_path / "msc.json"
    profile = {"storage_provider": {"type": "file", "options": {"base_path": tmp_path.as_posix()}}}
    config.write_text(json.dumps({"profiles": {"t": profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    rng = random.Random(1)
    bodies = {f"d/{i:03d}": rng.randbytes(100 + i) for i in range(32)}
    for key, body in bodies.items():
        (tmp_path / key).parent.mkdir(exist_ok=True)
        (tmp_path / key).write_bytes(body)
    ds = mt.MapDataset.from_prefix("msc://t/d/", transform=with_stats)
    sampler = ds.sampler(shuffle=True, seed=5)
    loader = DataLoader(
        ds,
        batch_size=BATCH,
        sampler=sampler,
        num_workers=2,
        persistent_workers=True,
        collate_fn=as_list,
        multiprocessing_context="fork",
        timeout=60,
    )
    hits = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        items = [item for batch in loader for item in batch]
        assert [name for _, name, _, _ in items] == [f"{i:03d}" for i in sampler]
        hits.append(sum(s["hits"] for s in _final_stats(items).values()))
    per_epoch = 32 - 2 * BATCH  # all but each worker's first batch
    assert hits == [per_epoch, 2 * per_epoch]


def test_no_thread_left_after_an_epoch_in_the_main_process(backend: Backend, data: dict[str, bytes]) -> None:
    def lookahead_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "manystore-lookahead")

    ds = mt.MapDataset.from_prefix(URL, transform=key_and_bytes)
    items = [item for batch in DataLoader(ds, batch_size=BATCH, collate_fn=as_list) for item in batch]
    assert items == sorted(data.items())
    fetcher = ds.last_prefetcher
    assert isinstance(fetcher, BatchFetcher) and fetcher.hits == N - BATCH and fetcher.wasted == 0
    assert lookahead_threads() > 0
    deadline = time.monotonic() + IDLE_SECONDS + 3
    while lookahead_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lookahead_threads() == 0


def test_predictor_strides_and_orders() -> None:
    # sequential sampler, 2 workers, batches of 3: worker 0 gets batches 0, 2, 4
    p = Predictor(30, None)
    assert p.next([0, 1, 2], 2) == [6, 7, 8]
    assert p.next([6, 7, 8], 2) == [12, 13, 14]
    assert p.next([24, 25, 26], 2) == []  # a jump of 18: its guess 42.. is past the end
    # DistributedSampler(shuffle=False), rank 1 of 4, no workers: indices 1, 5, 9, ...
    p = Predictor(100, None)
    assert p.next([1, 5, 9], 1) == [13, 17, 21]
    # random batches: no guess
    p = Predictor(100, None)
    assert p.next([17, 3, 88], 1) == [] and p.next([5, 61, 2], 1) == []
    # a known shuffled order, rank 0 of 2 (pad): the next positions of the order
    sharding = Sharding(0, 2, "pad", True, 11)
    plan = Plan(sharding, epoch=3)
    sampler = mt.datasets.MapSampler(25, plan)
    order = list(sampler)
    assert len(order) == 13 and order != sorted(order)
    p = Predictor(25, plan)
    assert p.next(order[0:2], 2) == order[4:6]
    assert p.next(order[4:6], 2) == order[8:10]
    # the workers moved to epoch 4 without seeing set_epoch: found in the next epoch's order
    plan4 = list(mt.datasets.MapSampler(25, Plan(sharding, epoch=4)))
    assert p.next(plan4[2:4], 2) == plan4[6:8]
    with pytest.raises(ValueError, match="uneven"):
        Sharding(0, 1, "even")
