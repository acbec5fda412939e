"""S8: syncing many small files with manystore, msc and rclone, side by side.

Three row groups, each in files/s: local directory -> fresh S3 prefix; S3 prefix -> fresh
prefix in the same bucket; and a no-change rerun of local -> S3 into a complete target
(listing plus change detection only). Every timed run is followed, outside the timing, by a
manystore listing of the target that must hold exactly N objects, so a tool that silently
skips files cannot post a good figure.

How each tool parallelizes (defaults, except the rclone flags in ``RCLONE_FLAGS``):

- manystore ``sync_from``: ``MANYSTORE_SYNC_THREADS`` threads (default 16) in this process
  (``num_worker_processes`` left at None: no worker processes).
  S3 -> S3 with the same client on both sides is a server-side ``copy`` per object.
- msc ``sync_from``: ``MSC_NUM_PROCESSES`` spawned worker processes (default
  ``min(8, cpus)``) x ``MSC_NUM_THREADS_PER_PROCESS`` threads each (default
  ``max(cpus // processes, 16)``); one process x 8 threads only when both sides are POSIX or
  use the Rust client (not here). Process start-up counts in its time. S3 -> S3 is a download
  to a temporary file plus an upload (no server-side copy).
- rclone ``copy``: ``--transfers 16 --checkers 16`` (defaults 4 and 8), see ``RCLONE_FLAGS``.
  S3 -> S3 within one remote is a server-side copy.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.libs import POOL, Endpoint, _msc_style_config
from bench.report import Report

TOOLS = ("manystore", "msc", "rclone")
FILE_SIZE = 64 * 1024
THREADS = 16
SOURCE_PREFIX = "sync-src/"
# rclone: --transfers/--checkers plus three flags that drop per-object HEADs manystore and msc
# don't send (counted with --dump headers, 1,000 files): --checksum compares size + MD5 (local
# MD5 vs the listed ETag) instead of reading X-Amz-Meta-Mtime with a HEAD per object on the
# rerun; --s3-no-head skips the HEAD after every upload; --s3-no-head-object drops one of the
# two HEADs per server-side copy. (--update --use-server-modtime, the other documented way, is
# worse here: ``rclone serve s3`` reports the preserved mtime as LastModified, so every rerun
# does a HEAD plus a metadata-updating copy per object.) All else is default.
RCLONE_FLAGS = ["--transfers", str(THREADS), "--checkers", str(THREADS)]
RCLONE_FLAGS += ["--checksum", "--s3-no-head", "--s3-no-head-object"]

# sync(from_local, source_path, target_prefix): copy every object of the source into target.
Sync = Callable[[bool, str, str], None]


def _library_sync(lib: str, ep: Endpoint, local: Path) -> Sync:
    """``s3.sync_from(source, ...)`` with manystore's or msc's StorageClient."""
    if lib == "manystore":
        from manystore import StorageClient, StorageClientConfig

        config = _msc_style_config(ep)
    else:
        from multistorageclient import StorageClient, StorageClientConfig  # type: ignore[assignment]

        config = _msc_style_config(ep, {"max_pool_connections": POOL})
    config["profiles"]["local"] = {"storage_provider": {"type": "file", "options": {"base_path": str(local)}}}
    s3: Any = StorageClient(StorageClientConfig.from_dict(config, profile="b"))
    posix: Any = StorageClient(StorageClientConfig.from_dict(config, profile="local"))

    def sync(from_local: bool, source_path: str, target: str) -> None:
        s3.sync_from(posix if from_local else s3, source_path, target)

    return sync


def _rclone_sync(ep: Endpoint, local: Path, config_path: Path) -> Sync:
    """``rclone copy`` with an on-the-fly ``:s3,...:`` remote for the bench server."""
    from tests.servers import find_rclone

    binary = find_rclone()
    if binary is None:
        raise RuntimeError("rclone binary not found")
    remote = (
        f":s3,provider=Other,endpoint='{ep.url}',region={ep.region},"
        f"access_key_id={ep.access_key},secret_access_key={ep.secret_key}:{ep.bucket}/"
    )

    def sync(from_local: bool, source_path: str, target: str) -> None:
        source = str(local) if from_local else remote + source_path
        cmd = [binary, "copy", source, remote + target, *RCLONE_FLAGS, "--config", str(config_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"rclone copy exited {proc.returncode}: {tail[:200]}")

    return sync


def _make_local(root: Path, n: int) -> None:
    """``n`` files of 64 KiB (random bytes each), 1,000 per sub-directory."""
    for i in range(n):
        path = root / f"d{i // 1000:03d}" / f"f{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(FILE_SIZE))


def _timed_runs(
    report: Report,
    op: str,
    syncs: dict[str, Sync],
    runs: int,
    job: Callable[[str, int], tuple[bool, str, str]],
    check: Callable[[str], None],
    after: Callable[[str, int], None],
    n: int,
) -> None:
    """``runs`` interleaved runs of every tool (order rotates); records the median files/s."""
    rates: dict[str, list[float]] = {tool: [] for tool in syncs}
    failed: set[str] = set()
    order = list(syncs)
    for run in range(runs):
        for tool in order[run % len(order) :] + order[: run % len(order)]:
            if tool in failed:
                continue
            from_local, source_path, target = job(tool, run)
            try:
                start = time.perf_counter()
                syncs[tool](from_local, source_path, target)
                secs = time.perf_counter() - start
                check(target)
                rates[tool].append(n / secs)
            except Exception as exc:
                failed.add(tool)
                report.error("S8", op, THREADS, tool, exc)
            after(tool, run)
    for tool, values in rates.items():
        if tool not in failed:
            report.value("S8", op, THREADS, tool, statistics.median(values))


def s8(report: Report, ep: Endpoint, work: Path, sizes: dict, runs: int) -> None:
    from manystore import StorageClient, StorageClientConfig

    n = sizes["sync_files"]
    report.describe(
        "S8",
        f"sync {n:,} x 64 KiB files: local dir -> S3, S3 -> S3 (same bucket), and a no-change "
        f"rerun of local -> S3; manystore and rclone on {THREADS} threads/transfers, msc at its "
        "defaults (processes x threads, see bench/sync_bench.py)",
        "files/s",
    )
    print("  S8", flush=True)
    os.environ.setdefault("MSC_SUPPRESS_PROGRESS_BAR", "1")  # display only; no effect on parallelism
    local = work / "sync-local"
    bucket_dir = work / "s3data" / ep.bucket  # rclone's backing directory (see bench.run.main)
    lister: Any = StorageClient(StorageClientConfig.from_dict(_msc_style_config(ep), profile="b"))

    def check(prefix: str) -> None:
        counted = sum(1 for _ in lister.list(prefix))
        if counted != n:
            raise RuntimeError(f"{prefix} holds {counted} objects after sync, expected {n}")

    def drop(prefix: str) -> None:
        # Outside the timing: delete a finished target's files to bound disk use. Nothing lists
        # or reads these prefixes again, so rclone's stale directory cache does not matter.
        shutil.rmtree(bucket_dir / prefix, ignore_errors=True)

    groups = ("local→S3", "local→S3 no-change rerun", "S3→S3")
    syncs: dict[str, Sync] = {}
    try:
        _make_local(local, n)
        config_path = work / "s8-rclone.conf"
        config_path.touch()
        for tool in TOOLS:
            try:
                if tool == "rclone":
                    syncs[tool] = _rclone_sync(ep, local, config_path)
                else:
                    syncs[tool] = _library_sync(tool, ep, local)
            except Exception as exc:
                for op in groups:
                    report.error("S8", op, THREADS, tool, exc)
        # The S3 -> S3 source goes in through the S3 API (rclone's listing cache would miss
        # files written straight into its backing directory).
        _library_sync("manystore", ep, local)(True, "", SOURCE_PREFIX)
        check(SOURCE_PREFIX)
    except Exception as exc:
        for op in groups:
            for tool in TOOLS:
                report.error("S8", op, THREADS, tool, exc)
        return

    def target(group: str) -> Callable[[str, int], str]:
        return lambda tool, run: f"s8/{group}/{tool}-r{run}/"

    up, copy = target("up"), target("copy")
    _timed_runs(
        report,
        groups[0],
        syncs,
        runs,
        lambda tool, run: (True, "", up(tool, run)),
        check,
        lambda tool, run: drop(up(tool, run)) if run > 0 else None,
        n,
    )
    # Rerun into each tool's own complete target of run 0 above (written by that tool).
    _timed_runs(report, groups[1], syncs, runs, lambda tool, run: (True, "", up(tool, 0)), check, _noop, n)
    for tool in syncs:
        drop(up(tool, 0))
    _timed_runs(
        report,
        groups[2],
        syncs,
        runs,
        lambda tool, run: (False, SOURCE_PREFIX, copy(tool, run)),
        check,
        lambda tool, run: drop(copy(tool, run)),
        n,
    )


def _noop(tool: str, run: int) -> None:
    return None
