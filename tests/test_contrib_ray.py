"""``manystore.contrib.ray`` (``manystore.ray``): ``SharedQueue`` and ``SharedEvent`` on a local Ray.

The Ray instance gets two CPUs and is shut down at the end of the module. Tasks
receive the queue/event as arguments, as users pass them; a producer task lists and
reads objects of a file profile and hands them to the driver through the queue.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import manystore
from manystore.contrib.ray import SharedEvent, SharedQueue

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'manystore[ray]')")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote(num_cpus=1)
def _produce(q: SharedQueue, url: str, done: SharedEvent) -> int:
    """Put ``(key, body)`` of every object under ``url`` into ``q``, then set ``done``."""
    count = 0
    for meta in manystore.list(url):
        q.put((meta.key, manystore.read(url.rstrip("/") + "/" + meta.key.rsplit("/", 1)[-1])))
        count += 1
    done.set()
    return count


@ray.remote(num_cpus=1)
def _take(q: SharedQueue, n: int) -> list[Any]:
    return [q.get(timeout=20) for _ in range(n)]


@ray.remote(num_cpus=1)
def _wait_for(event: SharedEvent) -> bool:
    return event.wait(timeout=20)


def test_lazy_names_and_import_cost() -> None:
    """``manystore.ray`` is the contrib module; importing it does not import Ray."""
    assert manystore.ray is sys.modules["manystore.contrib.ray"]
    assert manystore.ray.SharedQueue is SharedQueue
    code = "import sys, manystore.contrib.ray; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_queue_fifo_and_nonblocking(ray_cluster: None) -> None:
    q = SharedQueue(maxsize=2)
    assert q.empty() and not q.full() and q.qsize() == 0
    q.put("a")
    q.put_nowait({"b": [1, 2]})
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full, match="no free slot without waiting"):
        q.put("c", block=False)
    started = time.monotonic()
    with pytest.raises(queue.Full, match=r"within 0\.2 s"):
        q.put("c", timeout=0.2)
    assert 0.15 <= time.monotonic() - started < 5
    assert q.get() == "a"
    assert q.get_nowait() == {"b": [1, 2]}
    with pytest.raises(queue.Empty, match="without waiting"):
        q.get(block=False)
    with pytest.raises(queue.Empty, match=r"within 0\.1 s"):
        q.get(timeout=0.1)
    assert q.empty()


def test_queue_unbounded_when_maxsize_not_positive(ray_cluster: None) -> None:
    q = SharedQueue(maxsize=-1)
    for i in range(50):
        q.put_nowait(i)
    assert q.qsize() == 50 and not q.full()
    assert [q.get() for _ in range(50)] == list(range(50))


def test_blocked_get_is_served_by_a_task_put(ray_cluster: None) -> None:
    """A consumer task blocks in ``get`` while the driver puts: the actor serves both at once."""
    q = SharedQueue()
    pending = _take.remote(q, 3)
    time.sleep(0.3)
    for item in ("x", "y", "z"):
        q.put(item)
    assert ray.get(pending, timeout=30) == ["x", "y", "z"]


def test_producer_task_reads_storage_into_queue(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task lists/reads a file profile and hands the objects to the driver through the queue."""
    root = tmp_path / "data"
    root.mkdir()
    expected = {f"shard-{i}.bin": bytes([i]) * (i + 1) for i in range(5)}
    for name, body in expected.items():
        (root / name).write_bytes(body)
    config = tmp_path / "msc.json"
    profile = {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}
    config.write_text(json.dumps({"profiles": {"data": profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    q, done = SharedQueue(), SharedEvent(cache_ttl=0)
    ref = _produce.options(runtime_env={"env_vars": {"MSC_CONFIG": str(config)}}).remote(
        q, "msc://data/", done
    )
    got = dict(q.get(timeout=30) for _ in expected)
    assert ray.get(ref, timeout=30) == len(expected)
    assert {key.rsplit("/", 1)[-1]: body for key, body in got.items()} == expected
    assert done.is_set() and q.empty()


def test_event_set_by_driver_wakes_task(ray_cluster: None) -> None:
    event = SharedEvent()
    assert not event.is_set()
    assert event.wait(timeout=0.1) is False
    waiting = _wait_for.remote(event)
    time.sleep(0.3)
    event.set()
    assert ray.get(waiting, timeout=30) is True
    assert event.is_set()


def test_event_cache_ttl(ray_cluster: None) -> None:
    """A copy that saw "not set" answers from its cache for ``cache_ttl``; "set" sticks until clear."""
    owner = SharedEvent(cache_ttl=1.0)
    assert owner.wait(timeout=0) is False  # the actor is up: the calls below are quick
    viewer = SharedEvent.__new__(SharedEvent)
    viewer.__dict__.update(owner.__dict__)  # a second holder of the same actor, as a task gets
    viewer._checked_at = None
    assert not viewer.is_set()
    owner.set()
    assert not viewer.is_set()  # cached "not set", within the TTL
    time.sleep(1.05)
    assert viewer.is_set()
    owner.clear()
    assert not owner.is_set()
    assert viewer.is_set()  # it saw "set" and keeps it until it clears itself
    viewer.clear()
    assert not viewer.is_set()
    fresh = SharedEvent(cache_ttl=0)
    fresh_copy = SharedEvent.__new__(SharedEvent)
    fresh_copy.__dict__.update(fresh.__dict__)
    assert not fresh_copy.is_set()
    fresh.set()
    assert fresh_copy.is_set()  # cache_ttl=0: asks every time


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(TypeError, match=r"maxsize must be an int.*'10'"):
        SharedQueue(maxsize="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"cache_ttl must be a non-negative number.*-1"):
        SharedEvent(cache_ttl=-1)


def test_bad_timeout_names_the_value(ray_cluster: None) -> None:
    q = SharedQueue()
    with pytest.raises(ValueError, match=r"timeout must be None or a non-negative number.*-0\.5"):
        q.get(timeout=-0.5)
    with pytest.raises(ValueError, match=r"timeout must be finite.*inf"):
        q.put(1, timeout=float("inf"))
    with pytest.raises(ValueError, match=r"timeout.*'1'"):
        SharedEvent().wait(timeout="1")  # type: ignore[arg-type]
