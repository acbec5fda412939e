"""Local -> local sync's fast path: directories made once, batches, kernel copies, atomicity.

Real directories under pytest's tmp_path only (no server is involved in a local sync).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.errors import ObjectNotFoundError
from manystore.mirror import transfer
from manystore.providers._tempfile import TEMP_SUFFIX
from manystore.providers.posix_file import PosixFileStorageProvider

FILES = 2000


def _client(root: Path) -> StorageClient:
    profile = {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}
    return StorageClient(StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p"))


def _tree(root: Path, files: int = FILES) -> dict[str, bytes]:
    """``files`` small files: 40 directories of 50, two levels deep, and a few at the top."""
    tree: dict[str, bytes] = {}
    for i in range(files):
        rel = f"top-{i}.bin" if i < 10 else f"g{i % 8}/d{i % 40:02d}/f{i:05d}.bin"
        tree[rel] = os.urandom(i % 300)  # sizes 0..299, the empty file included
    for rel, body in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return tree


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def test_each_target_directory_is_created_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _tree(tmp_path / "src")
    made: list[str] = []
    real_mkdir = os.mkdir

    def counting_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        made.append(os.fspath(path))  # every attempt: os.makedirs of an existing dir tries mkdir too
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", counting_mkdir)
    dst = tmp_path / "dst"  # absent: the sync makes it, and every directory below it
    target = _client(dst)
    result = target.sync_from(_client(tmp_path / "src"), threads=16, progress=False)
    assert (result.copied, result.skipped, result.failures) == (FILES, 0, {})
    real_dst = Path(os.path.realpath(dst))
    leaves = {(real_dst / rel).parent for rel in tree}
    expected_dirs = {
        str(d) for leaf in leaves for d in (leaf, *leaf.parents) if d == real_dst or real_dst in d.parents
    }
    assert len(expected_dirs) == 1 + 8 + 40
    assert sorted(made) == sorted(expected_dirs)  # each directory once, none twice
    provider = target._storage_provider
    assert isinstance(provider, PosixFileStorageProvider)
    # One makedirs per new leaf: g0/d00 (first in key order) also makes dst and g0; top-* need none.
    assert provider.directories_created == 40
    assert _files(dst) == tree  # byte for byte
    assert not _temps(dst)

    made.clear()
    again = target.sync_from(_client(tmp_path / "src"), threads=16, progress=False)
    assert (again.copied, again.skipped) == (0, FILES)
    assert made == []


def test_batches_carry_many_objects_per_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _tree(tmp_path / "src", 500)
    # 500 files in one directory too: cut into full batches and one partial
    flat = {f"flat/f{i:04d}": os.urandom(10) for i in range(500)}
    for rel, body in flat.items():
        (tmp_path / "src" / rel).parent.mkdir(exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(body)
    batches: list[list[str]] = []
    real = transfer.Transfer.copy_batch

    def recording(self: transfer.Transfer, jobs: list[Any]) -> list[BaseException | None]:
        batches.append([job[1] for job in jobs])
        return real(self, jobs)

    monkeypatch.setattr(transfer.Transfer, "copy_batch", recording)
    target = _client(tmp_path / "dst")
    target.sync_from(_client(tmp_path / "src"), progress=False)
    assert sum(map(len, batches)) == 1000
    # A batch holds the files of one directory only (one directory fd on each side), as many
    # as LOCAL_BATCH allows: one task per LOCAL_BATCH files of each directory, rounded up.
    per_dir: dict[str, int] = {}
    for rel in (*tree, *flat):
        per_dir[rel.rpartition("/")[0]] = per_dir.get(rel.rpartition("/")[0], 0) + 1
    assert all(len({key.rpartition("/")[0] for key in batch}) == 1 for batch in batches)
    assert len(batches) == sum(-(-n // transfer.LOCAL_BATCH) for n in per_dir.values())
    assert sorted(map(len, batches))[-1] == transfer.LOCAL_BATCH  # the flat directory's full ones
    assert _files(tmp_path / "dst") == {**tree, **flat}


def test_changed_files_are_replaced_and_unchanged_ones_left(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    tree = _tree(src, 200)
    target, source = _client(dst), _client(src)
    target.sync_from(source, progress=False)
    before = os.stat(dst / "g3/d11/f00011.bin").st_ino
    (src / "g3/d11/f00011.bin").write_bytes(b"new and longer content " * 20)
    tree["g3/d11/f00011.bin"] = b"new and longer content " * 20
    result = target.sync_from(source, progress=False)
    assert (result.copied, result.skipped) == (1, 199)
    assert os.stat(dst / "g3/d11/f00011.bin").st_ino != before  # renamed over, not rewritten in place
    assert _files(dst) == tree and not _temps(dst)


@pytest.mark.parametrize("broken", ["copy_file_range", "copy_file_range+sendfile"])
def test_copy_falls_back_when_the_kernel_cannot_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    calls: list[str] = []

    def refuse(name: str) -> Any:
        def fail(*args: Any) -> int:
            calls.append(name)
            raise OSError(errno.EXDEV, f"{name}: cross-device")

        return fail

    for name in broken.split("+"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(name))
    tree = {"a.bin": os.urandom(3 << 20), "b/c.bin": os.urandom(1000), "b/empty": b""}
    for rel, body in tree.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(body)
    result = _client(tmp_path / "dst").sync_from(_client(tmp_path / "src"), progress=False)
    assert (result.copied, result.failures) == (3, {})
    assert calls  # the refusing route was tried, and the next one took over
    assert _files(tmp_path / "dst") == tree


def test_symlinks_inside_are_followed_and_missing_sources_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "real.bin").write_bytes(b"real")
    (src / "link.bin").symlink_to(src / "real.bin")
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"secret")
    (src / "escape.bin").symlink_to(outside)
    target = _client(tmp_path / "dst")
    result = target.sync_from(_client(src), progress=False)
    assert result.copied == 2  # the escaping link is not listed, hence not copied
    assert _files(tmp_path / "dst") == {"real.bin": b"real", "link.bin": b"real"}

    dst_sp, src_sp = target._storage_provider, _client(src)._storage_provider
    assert isinstance(dst_sp, PosixFileStorageProvider) and isinstance(src_sp, PosixFileStorageProvider)
    errors = dst_sp.copy_many_from(
        src_sp, [("nope.bin", "x.bin"), ("no/dir.bin", "y.bin"), ("real.bin", "z")]
    )
    assert isinstance(errors[0], ObjectNotFoundError) and "nope.bin" in str(errors[0])
    assert isinstance(errors[1], ObjectNotFoundError) and "no/dir.bin" in str(errors[1])
    assert errors[2] is None and (tmp_path / "dst" / "z").read_bytes() == b"real"
    escaped = dst_sp.copy_many_from(src_sp, [("escape.bin", "leak.bin")])[0]
    assert isinstance(escaped, ValueError) and "outside base_path" in str(escaped)
    assert not (tmp_path / "dst" / "leak.bin").exists()


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from manystore import StorageClient, StorageClientConfig

    def client(root):
        profile = {"storage_provider": {"type": "file", "options": {"base_path": root}}}
        return StorageClient(StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p"))

    calls = 0
    real = os.replace

    def replace(*args, **kwargs):  # the rename of the n-th finished temp file never happens
        global calls
        calls += 1
        if calls == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    os.replace = replace
    client(sys.argv[2]).sync_from(client(sys.argv[1]), threads=4, progress=False)
    """
)


def test_killed_local_sync_leaves_no_partial_file_and_rerun_completes(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    tree = _tree(src, 600)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(src), str(dst), "300"], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr.decode()[-500:]
    present = _files(dst)
    visible = {rel: body for rel, body in present.items() if not rel.rpartition("/")[2].endswith(TEMP_SUFFIX)}
    assert 0 < len(visible) < 600
    assert all(tree[rel] == body for rel, body in visible.items())  # nothing partial under a real name
    assert _temps(dst)  # the killed writer's temp file(s), invisible to listings
    result = _client(dst).sync_from(_client(src), progress=False)
    assert (result.copied, result.skipped) == (600 - len(visible), len(visible))
    assert _files(dst) == tree and not _temps(dst)  # leftovers of the dead writer reaped


def test_local_pairs_default_to_few_threads_and_explicit_counts_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import manystore.mirror as mirror

    _tree(tmp_path / "src", 20)
    used: list[int] = []
    real = mirror.transfer_jobs

    def recording(tr: transfer.Transfer, jobs: Any, threads: int, *args: Any, **kwargs: Any) -> Any:
        used.append(threads)
        return real(tr, jobs, threads, *args, **kwargs)

    monkeypatch.setattr(mirror, "transfer_jobs", recording)
    monkeypatch.delenv("MANYSTORE_SYNC_THREADS", raising=False)
    default = transfer.local_threads(str(tmp_path / "src"), str(tmp_path / "a"))
    assert 1 <= default <= 4  # a local disk or memory: never the 16 of network file systems
    source = _client(tmp_path / "src")
    _client(tmp_path / "a").sync_from(source, progress=False)
    monkeypatch.setenv("MANYSTORE_SYNC_THREADS", "5")
    _client(tmp_path / "b").sync_from(source, progress=False)
    _client(tmp_path / "c").sync_from(source, threads=7, progress=False)
    assert used == [default, 5, 7]
    assert _files(tmp_path / "c") == _files(tmp_path / "src")


def test_posix_plan_decides_as_the_metadata_plan(tmp_path: Path) -> None:
    """The planner's tuple listing of two local directories (``scan_files``) makes the same
    decisions as the generic one on ObjectMetadata (taken for dry-run records)."""
    from manystore.mirror.plan import Partition, SyncSpec, plan_partition

    src, dst = tmp_path / "src", tmp_path / "dst"
    cases = {  # name: (source bytes, target bytes or None, target mtime relative to the source's)
        "same.bin": (b"a" * 5, b"a" * 5, 0),
        "newer.bin": (b"b" * 5, b"x" * 5, 30),
        "older.bin": (b"c" * 5, b"c" * 5, -30),
        "resized.bin": (b"d" * 5, b"d" * 6, 30),
        "missing.bin": (b"e", None, 0),
        "sub/.hidden/x.bin": (b"f", None, 0),
        "sub/skip.tmp": (b"g", None, 0),
    }
    base = 1_700_000_000
    for rel, (body, there, delta) in cases.items():
        for root, data, when in ((src, body, base), (dst, there, base + delta)):
            if data is not None:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
                os.utime(root / rel, (when, when))
    (dst / "only-here.bin").write_bytes(b"z")
    spec = SyncSpec("", "", exclude=("**/*.tmp",), delete_unmatched_files=True, ignore_hidden=True)
    source, target = _client(src), _client(dst)
    fast = plan_partition(source, target, spec, Partition())
    generic = plan_partition(source, target, spec, Partition(), record=True)
    assert sorted(job[0] for job in fast.jobs) == ["missing.bin", "older.bin", "resized.bin"]
    assert (sorted(fast.jobs), fast.skipped, fast.unmatched) == (
        sorted(generic.jobs),
        generic.skipped,
        generic.unmatched,
    )
    assert (fast.skipped, fast.unmatched) == (2, ["only-here.bin"])


_MOUNTS = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 27 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw
30 25 0:27 / /dev/shm rw,relatime - ramfs none rw
40 27 0:40 / /mnt/team\\040share rw - nfs4 server:/export rw
41 27 0:41 / /mnt/sshfs rw - fuse.sshfs me@host: rw
"""


def test_mount_fs_type_reads_the_deepest_mount_of_a_path() -> None:
    assert transfer.mount_fs_type("/home/me/data", _MOUNTS) == "ext4"
    assert transfer.mount_fs_type("/dev/shm/x", _MOUNTS) == "ramfs"  # mounted over the tmpfs: the last wins
    assert transfer.mount_fs_type("/dev/shmem", _MOUNTS) == "ext4"  # a name sharing the prefix is not inside
    assert transfer.mount_fs_type("/mnt/team share/a/b", _MOUNTS) == "nfs4"  # octal-escaped space
    assert transfer.mount_fs_type("/mnt/sshfs", _MOUNTS) == "fuse.sshfs"


@pytest.mark.skipif(not os.path.exists("/proc/self/mountinfo"), reason="no /proc/self/mountinfo (not Linux)")
def test_local_threads_follow_what_bounds_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = {"mem": "tmpfs", "disk": "ext4", "net": "nfs4", "fuse": "fuse.sshfs"}
    monkeypatch.setattr(transfer, "mount_fs_type", lambda path, mountinfo=None: kinds[Path(path).name])
    per_disk = max(1, min(4, (os.cpu_count() or 2) // 2))
    assert transfer.local_threads("/x/mem", "/y/mem") == 1  # CPU work: one thread
    assert transfer.local_threads("/x/mem", "/y/disk") == per_disk
    assert transfer.local_threads("/x/disk", "/y/net") == 16  # round trips: overlap them
    assert transfer.local_threads("/x/fuse", "/y/mem") == 16
    assert transfer.local_threads() == per_disk


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm (tmpfs) on this machine")
def test_sync_within_memory_file_system_uses_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    import manystore.mirror as mirror

    if transfer.mount_fs_type("/dev/shm") not in transfer.MEMORY_FILE_SYSTEMS:
        pytest.skip(f"/dev/shm is {transfer.mount_fs_type('/dev/shm')}, not a memory file system")
    used: list[int] = []
    real = mirror.transfer_jobs
    monkeypatch.setattr(
        mirror,
        "transfer_jobs",
        lambda tr, jobs, threads, *a, **k: used.append(threads) or real(tr, jobs, threads, *a, **k),
    )
    monkeypatch.delenv("MANYSTORE_SYNC_THREADS", raising=False)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        tree = _tree(Path(shm) / "src", 50)
        result = _client(Path(shm) / "dst").sync_from(_client(Path(shm) / "src"), progress=False)
        assert (result.copied, used) == (50, [1])
        assert _files(Path(shm) / "dst") == tree
