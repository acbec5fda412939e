"""manystore.torch datasets against S3 through the fault proxy: request counts, resets, fork safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from torch.utils.data import DataLoader

import manystore.torch as mt
from manystore.generators import ManifestMetadataGenerator

from .conftest import s3_profile
from .faultproxy import FaultProxy, wait_until
from .servers import S3Server

SIZE = 256 << 10


def lengths(reader: Any) -> int:
    return len(reader.read())


@pytest.fixture
def proxied(
    rclone_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FaultProxy, dict[str, bytes]]]:
    """Profile ``p`` on rclone through a fault proxy, with 6 objects of 256 KiB under ``ds/``."""
    proxy = FaultProxy(rclone_server.endpoint_url)
    profile = s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")
    profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
    (tmp_path / "msc.json").write_text(json.dumps({"profiles": {"p": profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(tmp_path / "msc.json"))
    import manystore

    objects = {f"ds/o{i}.bin": os.urandom(SIZE) for i in range(6)}
    for key, body in objects.items():
        manystore.write("msc://p/" + key, body)
    try:
        yield proxy, objects
    finally:
        proxy.close()


def _lists(proxy: FaultProxy) -> int:
    return sum(1 for method, path in proxy.requests_log if method == "GET" and "list-type" in path)


def test_no_request_until_read_and_list_once(proxied: tuple[FaultProxy, dict[str, bytes]]) -> None:
    proxy, objects = proxied
    before = _lists(proxy)
    ds = mt.IterableDataset.from_prefix("msc://p/ds/", transform=lengths, enable_sharding=True)
    assert _lists(proxy) == before + 1
    seen = proxy.requests_seen
    readers = mt.MapDataset.from_objects([f"msc://p/{k}" for k in objects])
    reader = readers[2]
    assert proxy.requests_seen == seen  # building datasets and readers sent nothing
    assert reader.read() == objects[sorted(objects)[2]]
    assert proxy.requests_seen > seen
    for epoch in range(2):  # 2 epochs x 2 forked workers: no further LIST
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
        assert sorted(int(n) for batch in loader for n in batch) == [SIZE] * 6
    assert _lists(proxy) == before + 1


def test_mid_body_reset_and_truncation_are_resumed(proxied: tuple[FaultProxy, dict[str, bytes]]) -> None:
    proxy, objects = proxied
    ds = mt.IterableDataset.from_prefix("msc://p/ds/", transform=lambda r: r.read(), prefetch=0)
    proxy.reset_next(1, keep=0.4)
    proxy.truncate_next(1, keep=0.7)
    got = list(ds)
    assert proxy.injected["reset"] == 1 and proxy.injected["truncate"] == 1
    assert got == [objects[k] for k in sorted(objects)]  # no short body reached transform
    ranged = mt.MapDataset.from_prefix("msc://p/ds/", reader_constructor=mt.ReaderConstructor.range_based(0))
    proxy.truncate_next(1, keep=0.5)
    reader = ranged[1]
    reader.seek(1000)
    assert reader.read(100_000) == objects[sorted(objects)[1]][1000:101_000]
    assert proxy.injected["truncate"] == 2


def test_manifest_dataset_sends_no_list(proxied: tuple[FaultProxy, dict[str, bytes]]) -> None:
    proxy, objects = proxied
    import manystore

    client, _ = manystore.resolve_storage_client("msc://p/")
    ManifestMetadataGenerator.generate_and_write_manifest(client, client)
    before = _lists(proxy)
    ds = mt.MapDataset.from_manifest("msc://p/ds/")
    assert len(ds) == 6 and _lists(proxy) == before
    assert [ds[i].read() for i in range(6)] == [objects[k] for k in sorted(objects)]
    assert _lists(proxy) == before


def test_s3_url_with_endpoint_and_client_config(
    rclone_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rclone_server.secret_key)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    prefix = f"s3://manystore-test/{uuid.uuid4().hex}/"
    config = mt.S3ClientConfig(force_path_style=True, max_attempts=2, part_size=16 << 20)
    kwargs: dict[str, Any] = {"region": rclone_server.region, "endpoint": rclone_server.endpoint_url}
    ds = mt.S3MapDataset.from_objects([prefix + "a"], s3client_config=config, **kwargs)
    client = ds._objects.clients[0]
    options = client.config.storage_provider
    assert client.config.retry_config is not None and client.config.retry_config.attempts == 2
    assert getattr(options, "_chunksize", None) == 16 << 20
    client.write(ds._objects.keys[0], b"hello")
    assert ds[0].read() == b"hello"
    listed = mt.S3IterableDataset.from_prefix(prefix, transform=lambda r: r.read(), **kwargs)
    assert list(listed) == [b"hello"]
    with pytest.raises(ValueError, match="s3:// URLs only"):
        mt.MapDataset.from_objects(["/tmp/not-s3/x"], region="us-east-1")


FORK_SCRIPT = textwrap.dedent(
    """
    import sys
    from torch.utils.data import DataLoader
    import manystore.torch as mt
    from manystore.providers._obstore import _runtime_threads_running

    ds = mt.IterableDataset.from_prefix("msc://p/ds/", transform=lambda r: len(r.read()), enable_sharding=True)
    assert not _runtime_threads_running(), "listing started obstore's runtime in the parent"
    for epoch in range(3):
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork", timeout=30)
        total = sum(int(n) for batch in loader for n in batch)
        assert total == 6 * SIZE, total
    print("ok", _runtime_threads_running())
    """
).replace("SIZE", str(SIZE))


def test_dataloader_workers_start_clean(proxied: tuple[FaultProxy, dict[str, bytes]]) -> None:
    """The parent lists without starting obstore's runtime, so forked workers never inherit it."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", FORK_SCRIPT],
            env={**os.environ, "PYTHONPATH": src},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "ok False"


def test_map_lookahead_wrong_guess_costs_reads_only_and_exits_promptly(
    proxied: tuple[FaultProxy, dict[str, bytes]],
) -> None:
    """Batches [0, 1], [2, 3] from a forked worker: the look-ahead reads [2, 3] early (each object
    fetched once) and then guesses [4, 5], which never comes; those GETs are held 8 s by the
    proxy, yet the worker ends at once, and the items are exact."""
    proxy, objects = proxied
    names = sorted(objects)
    ds = mt.MapDataset.from_prefix("msc://p/ds/", transform=lambda r: r.read())
    for name in names[4:]:
        proxy.delay_next(1, 8.0, method="GET", path=name.rsplit("/", 1)[-1])
    before = len(proxy.requests_log)
    start = time.monotonic()
    loader = DataLoader(
        ds, batch_sampler=[[0, 1], [2, 3]], num_workers=1, multiprocessing_context="fork", timeout=60
    )
    iterator = iter(loader)
    batches = list(iterator)
    elapsed = time.monotonic() - start
    assert [bytes(b) for batch in batches for b in batch] == [objects[n] for n in names[:4]]
    gets = [
        path for method, path in proxy.requests_log[before:] if method == "GET" and "list-type" not in path
    ]
    per_object = {n: sum(1 for p in gets if p.split("?")[0].endswith(n)) for n in names}
    assert [per_object[n] for n in names[:4]] == [1, 1, 1, 1], per_object  # no object read twice
    assert wait_until(
        lambda: all(
            any(p.split("?")[0].endswith(n) for _, p in proxy.requests_log[before:]) for n in names[4:]
        )
    )  # the wrong guess was really sent
    assert elapsed < 6.0, elapsed  # the worker did not wait for the held GETs
    assert [w.exitcode for w in iterator._workers] == [0]  # exited by itself, not terminated
