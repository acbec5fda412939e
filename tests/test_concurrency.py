"""One client shared by many threads, across fork (multiprocessing, Pool workers) and pickled to spawn."""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.types import Range

from .conftest import s3_profile
from .servers import S3Server

THREADS = 16

#: The client forked workers inherit (set by the parent before forking; DataLoader style).
_INHERITED: StorageClient | None = None


def _data(i: int, size: int = 20_000) -> bytes:
    return random.Random(i).randbytes(size)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def client(rclone_server: S3Server) -> Iterator[StorageClient]:
    profile = s3_profile(rclone_server, f"manystore-test/conc-{uuid.uuid4().hex}")
    yield StorageClient(StorageClientConfig.from_dict({"profiles": {"c": profile}}, "c"))


def test_one_client_sixteen_threads_mixed(client: StorageClient) -> None:
    for i in range(THREADS):
        client.write(f"seed/{i:02d}", _data(i))
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(n: int) -> int:
        barrier.wait()
        checks = 0
        for round_ in range(6):
            own = f"own/{n:02d}/{round_}"
            body = _data(1000 * n + round_)
            client.write(own, body)
            assert client.read(own) == body
            other = (n + round_) % THREADS
            assert _sha(client.read(f"seed/{other:02d}")) == _sha(_data(other))
            assert client.read(f"seed/{other:02d}", Range(100, 500)) == _data(other)[100:600]
            with client.open(f"seed/{other:02d}", "rb") as fh:
                assert fh.read() == _data(other)
            keys = [m.key for m in client.list("seed/")]
            assert keys == [f"seed/{i:02d}" for i in range(THREADS)]
            assert client.info(own).content_length == len(body)
            checks += 1
        return checks

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, n) for n in range(THREADS)]
        done = []
        for fut in futures:
            try:
                done.append(fut.result(timeout=120))
            except BaseException as err:  # collect all, report the first
                errors.append(err)
    assert not errors, errors[0]
    assert done == [6] * THREADS
    own = [m.key for m in client.list("own/")]
    assert len(own) == THREADS * 6


def _child_read_write(conn: multiprocessing.connection.Connection, key: str) -> None:
    try:
        assert _INHERITED is not None
        data = _INHERITED.read(key)
        _INHERITED.write(key + ".child", data[::-1])
        conn.send(_sha(data))
    except BaseException as err:  # pragma: no cover - reported to the parent
        conn.send(f"error: {err!r}")
    finally:
        conn.close()


def test_client_used_before_and_after_fork(client: StorageClient) -> None:
    global _INHERITED
    body = _data(7, 300_000)
    client.write("fork/obj", body)
    assert client.read("fork/obj") == body  # the parent's transport is live at fork time
    _INHERITED = client
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_child_read_write, args=(child_end, "fork/obj"))
    proc.start()
    try:
        assert parent_end.poll(60), "forked child did not answer (hung on the inherited client?)"
        assert parent_end.recv() == _sha(body)
    finally:
        proc.join(30)
        _INHERITED = None
    assert proc.exitcode == 0
    assert client.read("fork/obj.child") == body[::-1]  # the parent keeps working after the fork
    client.write("fork/after", b"after")
    assert client.read("fork/after") == b"after"


def _pool_task(i: int) -> tuple[int, str]:
    assert _INHERITED is not None
    data = _INHERITED.read(f"pool/{i:03d}")
    return i, _sha(data)


def test_forked_pool_workers_reuse_parents_client(client: StorageClient) -> None:
    """DataLoader style: the parent reads, then forks a Pool whose workers use its client."""
    global _INHERITED
    for i in range(40):
        client.write(f"pool/{i:03d}", _data(i, 5000 + i))
    assert len(list(client.list("pool/"))) == 40
    _INHERITED = client
    try:
        with multiprocessing.get_context("fork").Pool(4) as pool:
            results = pool.map_async(_pool_task, range(40), chunksize=3).get(timeout=120)
    finally:
        _INHERITED = None
    assert sorted(results) == [(i, _sha(_data(i, 5000 + i))) for i in range(40)]
    assert client.read("pool/000") == _data(0, 5000)


def _spawn_task(blob: bytes, key: str) -> str:
    remote = pickle.loads(blob)
    data = remote.read(key)
    remote.write(key + ".spawned", data + b"!")
    return _sha(data)


def test_client_pickled_to_spawn_worker(client: StorageClient) -> None:
    body = _data(11, 100_000)
    client.write("spawn/obj", body)
    blob = pickle.dumps(client)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.apply_async(_spawn_task, (blob, "spawn/obj")).get(timeout=120) == _sha(body)
        # the client object itself as an argument (pickled by multiprocessing)
        assert pool.apply_async(_read_with, (client, "spawn/obj")).get(timeout=120) == _sha(body)
    assert client.read("spawn/obj.spawned") == body + b"!"


def _read_with(remote: StorageClient, key: str) -> str:
    return _sha(remote.read(key))
