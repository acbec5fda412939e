"""Benchmarks of manystore's own layers: the read cache (S6) and manifest-backed listing (S7).

S6 re-reads small objects of an S3 profile from the read cache (no request reaches the
server inside the refresh window) and compares with raw Python reads of the same bytes
stored as local files. S7 lists a manifest of many entries (loading it included) and
compares with the provider's own listing of the S3 keys of S3.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.libs import Endpoint, _msc_style_config
from bench.report import Report


def _cached_client(ep: Endpoint, cache_dir: Path) -> Any:
    from manystore import StorageClient, StorageClientConfig

    config = _msc_style_config(ep)
    config["profiles"]["b"]["caching_enabled"] = True
    config["cache"] = {
        "size": "2G",
        "location": str(cache_dir),
        "eviction_policy": {"policy": "lru", "refresh_interval": 3600},
    }
    return StorageClient(StorageClientConfig.from_dict(config, "b"))


def s6(report: Report, ep: Endpoint, work: Path, sizes: dict, runs: int) -> None:
    n = sizes["objects"]
    report.describe("S6", f"re-read {n:,} x 4 KiB S3 objects from the read cache vs raw local reads", "ops/s")
    print("  S6", flush=True)
    body = os.urandom(4096)
    keys = [f"s6/obj{i:06d}" for i in range(n)]
    raw_dir = work / "s6raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw_paths = [str(raw_dir / f"obj{i:06d}") for i in range(n)]
    try:
        client = _cached_client(ep, work / "s6cache")
        for key, path in zip(keys, raw_paths, strict=True):
            client.write(key, body)
            Path(path).write_bytes(body)
        for key in keys:  # populate the cache
            client.read(key)
    except Exception as exc:
        report.error("S6", "cached GET", 1, "manystore", exc)
        return

    def cached() -> float:
        start = time.perf_counter()
        for key in keys:
            if len(client.read(key)) != 4096:
                raise RuntimeError(f"short read of {key}")
        return n / (time.perf_counter() - start)

    def raw() -> float:
        start = time.perf_counter()
        for path in raw_paths:
            with open(path, "rb") as f:
                f.read()
        return n / (time.perf_counter() - start)

    rates: dict[str, list[float]] = {"manystore": [], "python": []}
    for run in range(runs):
        order = [("manystore", cached), ("python", raw)]
        for lib, fn in order if run % 2 == 0 else order[::-1]:
            rates[lib].append(fn())
    for lib, values in rates.items():
        report.value("S6", "cached GET", 1, lib, statistics.median(values))


def _write_manifest(root: Path, n: int) -> None:
    """A manifest of ``n`` synthetic entries under ``root`` (a ``file`` profile)."""
    from manystore.providers.manifest_metadata import ManifestMetadataProvider
    from manystore.providers.posix_file import PosixFileStorageProvider
    from manystore.types import ObjectMetadata

    root.mkdir(parents=True, exist_ok=True)
    provider = ManifestMetadataProvider(PosixFileStorageProvider(str(root)), ".msc_manifests", writable=True)
    now = datetime.now(timezone.utc)
    for i in range(n):
        key = f"shards/{i // 1000:05d}/sample-{i:08d}.tar"
        provider.add_file(key, ObjectMetadata(key=key, content_length=4096, last_modified=now, etag=f"e{i}"))
    provider.commit_updates()


def s7(report: Report, ep: Endpoint, work: Path, sizes: dict, runs: int) -> None:
    from manystore import StorageClient, StorageClientConfig

    n = sizes["manifest"]
    report.describe(
        "S7",
        f"list {n:,} manifest entries (load included) vs the S3 provider's own listing of {sizes['keys']:,} keys",
        "keys/s",
    )
    print("  S7", flush=True)
    root = work / "manifest"
    try:
        _write_manifest(root, n)
        profile = {
            "storage_provider": {"type": "file", "options": {"base_path": str(root)}},
            "metadata_provider": {"type": "manifest", "options": {"manifest_path": ".msc_manifests"}},
        }
        config = {"profiles": {"m": profile}}
        rates = []
        for _ in range(runs):
            start = time.perf_counter()
            client = StorageClient(StorageClientConfig.from_dict(config, "m"))
            counted = sum(1 for _ in client.list(""))
            if counted != n:
                raise RuntimeError(f"manifest listed {counted} entries, expected {n}")
            rates.append(n / (time.perf_counter() - start))
        report.value("S7", "LIST via manifest", 1, "manystore", statistics.median(rates))
    except Exception as exc:
        report.error("S7", "LIST via manifest", 1, "manystore", exc)
    try:
        provider_config = _msc_style_config(ep)
        client = StorageClient(StorageClientConfig.from_dict(provider_config, "b"))
        rates = []
        for _ in range(runs):
            start = time.perf_counter()
            counted = sum(1 for _ in client.list("s3list/"))
            rates.append(counted / (time.perf_counter() - start))
        report.value("S7", "LIST via provider (S3)", 1, "manystore", statistics.median(rates))
    except Exception as exc:
        report.error("S7", "LIST via provider (S3)", 1, "manystore", exc)
