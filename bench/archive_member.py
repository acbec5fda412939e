"""Issue 13 bench row: one 64 KiB member out of a large tar on one ``rclone serve s3``.

    python -m bench.archive_member [--size-mib 1024] [--runs 3]

Builds a tar of 64 KiB members (foreign: streamed by ``tarfile``; and the same members
written by ``manystore.batch.ArchiveWriter``, which adds the sidecar index), then measures,
through a request-counting proxy, the requests, bytes moved and latency of:

* downloading the whole shard (``client.read``);
* reading one member cold (index unknown: foreign = header walk, written = sidecar);
* reading another member warm (index known): one ranged GET.

Prints a markdown table (medians of ``--runs``; cold runs use a fresh client each time).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from tests.faultproxy import FaultProxy
from tests.servers import start_rclone_s3

from manystore import StorageClient, StorageClientConfig
from manystore.batch import ArchiveWriter, read_member

MEMBER = 64 << 10


def _client(server: Any, proxy: FaultProxy, base: str) -> StorageClient:
    profile = {
        "storage_provider": {
            "type": "s3",
            "options": {"base_path": base, "endpoint_url": proxy.url, "region_name": server.region},
        },
        "credentials_provider": {
            "type": "S3Credentials",
            "options": {"access_key": server.access_key, "secret_key": server.secret_key},
        },
    }
    return StorageClient(StorageClientConfig.from_dict({"profiles": {"b": profile}}, "b"))


def _members(count: int) -> Iterator[tuple[str, bytes]]:
    block = os.urandom(MEMBER)
    for i in range(count):
        yield f"sample/{i:07d}.bin", block[i % 256 :] + block[: i % 256]


def _measure(proxy: FaultProxy, fn: Callable[[], Any]) -> tuple[float, int, int]:
    reqs, body = Counter(proxy.requests_by_method), proxy.body_bytes_by_method["GET"]
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    now = Counter(proxy.requests_by_method)
    now.subtract(reqs)
    return elapsed, sum(now.values()), proxy.body_bytes_by_method["GET"] - body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    count = (args.size_mib << 20) // (MEMBER + 512)
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_rclone_s3(data_dir)
        server.create_bucket("bench")
        proxy = FaultProxy(server.endpoint_url)
        try:
            setup = _client(server, proxy, "bench/arch")
            with setup.open("foreign.tar", "wb") as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
                for name, data in _members(count):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            with ArchiveWriter(setup, "written.tar") as writer:
                for name, data in _members(count):
                    writer.add(name, data)
            size = setup.info("foreign.tar").content_length
            target, other = f"sample/{count // 2:07d}.bin", f"sample/{count // 3:07d}.bin"
            rows: list[tuple[str, float, int, int]] = []

            def median(label: str, make: Callable[[], Callable[[], Any]]) -> None:
                runs = [_measure(proxy, make()) for _ in range(args.runs)]
                rows.append((label, *(statistics.median(r[i] for r in runs) for i in range(3))))  # type: ignore[arg-type]

            def fresh() -> StorageClient:
                return _client(server, proxy, "bench/arch")

            def download() -> Callable[[], Any]:
                c = fresh()
                return lambda: c.read("foreign.tar")

            def cold(shard: str) -> Callable[[], Callable[[], Any]]:
                def make() -> Callable[[], Any]:
                    c = fresh()
                    return lambda: read_member(c, shard, target)

                return make

            median("download the whole shard", download)
            for shard in ("foreign.tar", "written.tar"):
                kind = "foreign tar (header walk)" if shard == "foreign.tar" else "manystore tar (sidecar)"
                median(f"one member, cold: {kind}", cold(shard))
                warm = fresh()
                read_member(warm, shard, target)
                median(f"one member, warm: {kind}", lambda s=shard, c=warm: lambda: read_member(c, s, other))
            print(
                f"\nshard: {size / (1 << 20):.0f} MiB, {count} members of 64 KiB; rclone serve s3 on loopback\n"
            )
            print("| case | latency | requests | bytes moved |")
            print("| --- | ---: | ---: | ---: |")
            for label, secs, n, moved in rows:
                print(f"| {label} | {secs * 1000:.1f} ms | {n:.0f} | {moved / (1 << 20):.2f} MiB |")
        finally:
            proxy.close()
            server.stop()


if __name__ == "__main__":
    main()
