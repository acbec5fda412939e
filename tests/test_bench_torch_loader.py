"""bench/torch_loader.py (scenario S11) against a real rclone server: children, counts, report cells."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path

import pytest
from bench import torch_loader as tl
from bench.libs import Endpoint
from bench.report import Report

from .faultproxy import FaultProxy
from .servers import S3Server

COUNT = 130  # three DataLoader batches of 64: the last one short
SIZE = 1024


@pytest.fixture
def dataset(rclone_server: S3Server) -> tuple[Endpoint, str]:
    """``COUNT`` objects of ``SIZE`` bytes under a fresh folder of a fresh bucket."""
    bucket = f"s11-{uuid.uuid4().hex[:8]}"
    rclone_server.create_bucket(bucket)
    client = rclone_server.boto3_client()
    folder = f"{tl.PREFIX}/{uuid.uuid4().hex[:6]}/"
    for i in range(COUNT):
        client.put_object(Bucket=bucket, Key=f"{folder}obj{i:04d}", Body=bytes([i % 256]) * SIZE)
    ep = Endpoint(
        rclone_server.endpoint_url,
        rclone_server.access_key,
        rclone_server.secret_key,
        bucket,
        rclone_server.region,
    )
    return ep, folder


def _spec(lib: str, kind: str, workers: int, ep: Endpoint, folder: str, count: int = COUNT) -> dict:
    return {
        "lib": lib,
        "kind": kind,
        "count": count,
        "size": SIZE,
        "workers": workers,
        "folder": folder,
        "endpoint": asdict(ep),
    }


@pytest.mark.parametrize(("lib", "kind"), [("manystore", "map"), ("s3torchconnector", "iterable")])
def test_child_runs_two_epochs_and_the_proxy_counts_its_requests(
    dataset: tuple[Endpoint, str], tmp_path: Path, lib: str, kind: str
) -> None:
    ep, folder = dataset
    proxy = FaultProxy(ep.url)
    try:
        spec = _spec(lib, kind, 2, ep, folder)
        spec["endpoint"]["url"] = proxy.url
        result = tl._run_child(spec, tmp_path)
        counts = tl._count_requests(proxy.requests_log, ep.bucket)
    finally:
        proxy.close()
    assert "error" not in result, result
    assert len(result["epoch_seconds"]) == tl.EPOCHS
    assert all(s > 0 for s in result["epoch_seconds"])
    assert 0 < result["first_batch"] <= result["epoch_seconds"][0]
    # parent plus two workers, each a Python process with torch: well over 100 MiB together
    assert result["rss_mib"] > 100
    assert 0 < result["pss_mib"] <= result["rss_mib"]  # shared pages split, never counted twice
    assert result["version"].startswith(("0.", "1.", "2."))
    # every object once per epoch across the two workers (sharded, never duplicated)
    assert counts["GET"] == COUNT * tl.EPOCHS
    assert counts["LIST"] >= 1
    assert counts["other"] == 0


def test_a_short_epoch_is_an_error_not_a_figure(
    dataset: tuple[Endpoint, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ep, folder = dataset
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ep.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ep.secret_key)
    with pytest.raises(RuntimeError, match=f"epoch 1: {COUNT} samples"):
        tl.measure(_spec("manystore", "map", 0, ep, folder, count=COUNT + 1))


def test_count_requests_tells_list_get_head_apart() -> None:
    log = [
        ("GET", "/bench?list-type=2&prefix=s11%2F"),  # path style LIST
        ("GET", "/?list-type=2&prefix=s11%2F"),  # virtual-hosted LIST
        ("GET", "/bench/s11/obj0"),
        ("GET", "/s11/obj1"),  # virtual-hosted GET
        ("HEAD", "/bench/s11/obj0"),
        ("PUT", "/bench/s11/index.json.zstd"),
        ("GET", "/bench"),  # bucket GET without a listing query: not a LIST
    ]
    assert tl._count_requests(log, "bench") == {"LIST": 2, "GET": 2, "HEAD": 1, "other": 2}


def test_populate_writes_both_copies_at_the_quick_shapes(tmp_path: Path) -> None:
    tl.populate(tmp_path, quick=True)
    for count, size in tl.shapes(quick=True):
        for lib in ("manystore", "litdata"):
            files = sorted((tmp_path / tl._folder(count, size, lib)).iterdir())
            assert len(files) == count
            assert {f.stat().st_size for f in files} == {size}
    assert tl._folder(10, 16384, "litdata") != tl._folder(10, 16384, "msc")


def test_report_rows_with_their_own_unit_and_text_cells() -> None:
    report = Report(["manystore", "peer"], quick=True, runs=3, sizes={})
    report.describe("S11", "loader", "samples/s")
    report.value("S11", "map 16K epoch 1", 2, "manystore", 3000.0)
    report.value("S11", "map 16K epoch 1", 2, "peer", 2000.0)
    report.value("S11", "map 16K first batch s", 2, "manystore", 0.2)
    report.value("S11", "map 16K first batch s", 2, "peer", 0.4)
    report.unit("S11", "map 16K first batch s", 2, "s ↓")
    report.value("S11", "map 16K requests", 2, "manystore", "1/260/0")
    report.unit("S11", "map 16K requests", 2, "count")
    text = report.markdown(elapsed=1.0)
    assert "| S11 | map 16K epoch 1 | 2 | samples/s ↑ | 3,000 | 2,000 | 1.50 |" in text
    assert "| S11 | map 16K first batch s | 2 | s ↓ | 0.2 | 0.4 | 0.50 |" in text
    assert "| S11 | map 16K requests | 2 | count | 1/260/0 | - | - |" in text
