"""MSC 1.3.1 semantics of ``manystore.Path`` and of keys/URLs, on every backend.

Methods that need a local file system (symlinks, permissions, device types, ``walk``...) work on
paths stored as plain files and raise NotImplementedError naming the method on object stores,
as 1.3.1 does; ``lstat``/``resolve``/``rename`` have an object-store meaning there.
"""

from __future__ import annotations

import json
import os
import pathlib
import pwd
from collections.abc import Iterator

import pytest

import manystore
from manystore import shortcuts
from manystore.pathlib import MultiStoragePath, StatResult

from .conftest import Backend

Path = MultiStoragePath
LOCAL_ONLY = [
    "chmod", "lchmod", "expanduser", "group", "owner", "is_block_device", "is_char_device", "is_fifo",
    "is_mount", "is_reserved", "is_socket", "is_symlink", "readlink", "symlink_to", "replace", "walk",
]  # fmt: skip
ARGS = {"chmod": (0o600,), "lchmod": (0o600,), "symlink_to": ("x",), "replace": ("msc://test/other",)}


@pytest.fixture
def msc(backend: Backend, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """``backend`` reachable as ``msc://test/`` through ``MSC_CONFIG``."""
    config = tmp_path / "msc.json"
    config.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    shortcuts.reset_cache()
    yield backend
    shortcuts.reset_cache()


def test_local_only_methods(msc: Backend) -> None:
    path = Path("msc://test/dir/a.bin")
    path.write_bytes(b"abc")
    local = msc.name == "file"
    for name in LOCAL_ONLY:
        if local:
            continue
        with pytest.raises(
            NotImplementedError, match=rf"MultiStoragePath\.{name}\(\).*msc://test/dir/a\.bin"
        ):
            result = getattr(path, name)(*ARGS.get(name, ()))
            if name == "walk":
                next(iter(result))
    assert path.is_absolute() and path.absolute() is path
    assert path.match("*.bin") and path.match("dir/*.bin") and not path.match("*.txt")
    assert path.with_segments("x", "y") == Path("msc://test/dir/a.bin/x/y")
    assert path.resolve() == path
    lstat = path.lstat()
    assert lstat.st_size == 3
    if not local:
        assert isinstance(lstat, StatResult)
    moved = path.rename("msc://test/dir/b.bin")
    assert moved == Path("msc://test/dir/b.bin")
    assert moved.read_bytes() == b"abc" and not path.exists()


def test_local_methods_on_plain_files(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "t.txt"
    target.write_text("hi")
    path = Path(str(target))
    path.chmod(0o600)
    assert target.stat().st_mode & 0o777 == 0o600
    assert path.owner() == pwd.getpwuid(os.getuid()).pw_name
    assert path.group() == pathlib.Path(target).group()
    link = Path(str(tmp_path / "link"))
    link.symlink_to(str(target))
    assert link.is_symlink() and not path.is_symlink()
    assert link.readlink() == path
    assert link.resolve() == path
    assert link.lstat().st_size != path.lstat().st_size or os.path.islink(str(link))
    os.mkfifo(tmp_path / "fifo")
    assert Path(str(tmp_path / "fifo")).is_fifo() and not path.is_fifo()
    assert not path.is_socket() and not path.is_block_device() and not path.is_char_device()
    assert Path("/dev/null").is_char_device()
    assert Path("/").is_mount() and not path.is_mount()
    assert not path.is_reserved()
    assert path.expanduser() == path
    walked = list(Path(str(tmp_path)).walk())
    assert walked[0][0] == Path(str(tmp_path)) and "t.txt" in walked[0][2]
    other = path.replace(str(tmp_path / "u.txt"))
    assert other == Path(str(tmp_path / "u.txt")) and other.read_text() == "hi" and not target.exists()
    assert MultiStoragePath.cwd() == pathlib.Path.cwd() and MultiStoragePath.home() == pathlib.Path.home()


def test_filesystem_profile_is_the_local_root(tmp_path: pathlib.Path) -> None:
    assert Path("/x/y") == Path("msc://__filesystem__/x/y")
    assert hash(Path("/x")) == hash(Path("msc://__filesystem__/x"))
    (tmp_path / "f.bin").write_bytes(b"1")
    assert Path(f"msc://__filesystem__{tmp_path}/f.bin").read_bytes() == b"1"
    client, _ = manystore.resolve_storage_client(str(tmp_path / "f.bin"))
    assert client.profile == "__filesystem__" and client.is_default_profile()
    assert manystore.StorageClientConfig.from_dict({}).profile == "__filesystem__"


def test_glob_returns_msc_urls(msc: Backend) -> None:
    manystore.write("msc://test/g/a.bin", b"a")
    manystore.write("msc://test/g/b.txt", b"b")
    assert manystore.glob("msc://test/g/*.bin") == ["msc://test/g/a.bin"]


def test_file_name_is_the_key_given(msc: Backend, tmp_path: pathlib.Path) -> None:
    msc.client.write("n/a.bin", b"abc")
    with msc.client.open("n/a.bin", "rb") as f:
        assert f.name == "n/a.bin"
    with msc.client.open("n/w.bin", "wb") as f:
        assert f.name == "n/w.bin"
    local = tmp_path / "plain.bin"
    local.write_bytes(b"x")
    with manystore.open(str(local), "rb") as f:
        assert f.name == str(local).lstrip("/")  # the key within __filesystem__ (see the report)


def test_directory_marker_is_a_directory(msc: Backend) -> None:
    # On object stores, writing the zero-byte "dir1/" marker is NOT done: object_store drops the
    # trailing "/" and stores "dir1" (see the report). Here: the directory made by mkdir (file
    # profiles) or by an object under it.
    if msc.name == "file":
        Path("msc://test/dir1").mkdir()
    else:
        msc.client.write("dir1/x", b"")
    info = msc.client.info("dir1", strict=False)
    assert info.type == "directory" and info.key.rstrip("/") == "dir1"
    assert Path("msc://test/dir1").is_dir()
