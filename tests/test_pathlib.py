"""Tests of ``manystore.Path`` (:class:`manystore.pathlib.MultiStoragePath`).

The I/O tests take a ``root`` fixture: a path of an empty, directory-like location
(``msc://data/run1`` on a ``file`` profile, or the same directory as a plain local path).
They assert only what holds on every backend, so more backends (e.g. S3 servers) can be
added to ``root``'s parameters; checks that need real directories test ``posix`` first.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import pickle
import stat
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest

import manystore
from manystore import shortcuts
from manystore.errors import InvalidURLError
from manystore.pathlib import MultiStoragePath, StatResult

from .conftest import s3_profile

Path = MultiStoragePath


@pytest.fixture
def stores(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, pathlib.Path]]:
    """Two ``file`` profiles, ``data`` and ``other``, in a config named by ``MSC_CONFIG``."""
    dirs = {name: tmp_path / name for name in ("data", "other")}
    profiles = {}
    for name, directory in dirs.items():
        directory.mkdir()
        profiles[name] = {"storage_provider": {"type": "file", "options": {"base_path": str(directory)}}}
    config = tmp_path / "msc_config.json"
    config.write_text(json.dumps({"profiles": profiles}))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    shortcuts.reset_cache()
    yield dirs
    shortcuts.reset_cache()


@pytest.fixture(params=["msc", "local", "s3-rclone", "s3-moto"])
def root(
    request: pytest.FixtureRequest, stores: dict[str, pathlib.Path], monkeypatch: pytest.MonkeyPatch
) -> MultiStoragePath:
    """An empty directory-like root that does not exist yet, on every backend."""
    if request.param == "msc":
        return Path("msc://data/run1")
    if request.param == "local":
        return Path(stores["data"] / "run1")
    server = request.getfixturevalue("rclone_server" if request.param == "s3-rclone" else "moto_server")
    config_path = pathlib.Path(os.environ["MSC_CONFIG"])
    config = json.loads(config_path.read_text())
    config["profiles"]["remote"] = s3_profile(server, f"manystore-test/{uuid.uuid4().hex}")
    config_path.write_text(json.dumps(config))
    shortcuts.reset_cache()
    return Path("msc://remote/run1")


@pytest.fixture
def posix(root: MultiStoragePath) -> bool:
    """True if ``root`` is stored as plain files (real directories exist on their own)."""
    client, _ = shortcuts.resolve_storage_client(str(root))
    return getattr(client.config.storage_provider, "provider_name", "") == "file"


def populate(root: MultiStoragePath) -> None:
    (root / "a.txt").write_text("alpha")
    (root / "b.bin").write_bytes(b"\x00\x01")
    (root / "sub" / "c.txt").write_text("gamma")
    (root / "sub" / "deep" / "d.txt").write_text("delta")


# ----------------------------------------------------------------- pure paths
def test_alias_and_repr(stores: dict[str, pathlib.Path]) -> None:
    assert manystore.Path is MultiStoragePath
    p = Path("s3://bucket/key/x.txt")
    assert repr(p) == "MultiStoragePath('s3://bucket/key/x.txt')"
    assert str(p) == "s3://bucket/key/x.txt"


def test_parse_forms(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(Path("msc://prof/a//b/./c/")) == "msc://prof/a/b/c"
    assert str(Path("MSC://prof/a")) == "msc://prof/a"
    assert str(Path("msc://prof")) == str(Path("msc://prof/")) == "msc://prof/"
    assert str(Path("gs://bkt/k")) == "gs://bkt/k"
    assert str(Path("file:///tmp/x/../y")) == "/tmp/y"
    assert Path("file:///tmp/y") == Path("/tmp/y")
    assert str(Path(pathlib.PurePosixPath("/tmp/z"))) == "/tmp/z"
    monkeypatch.chdir(tmp_path)
    assert str(Path("rel/f.txt")) == str(tmp_path / "rel" / "f.txt")
    assert Path(Path("msc://p/a")) == Path("msc://p/a")
    assert Path("msc://p", "a", "b") == Path("msc://p/a/b")


@pytest.mark.parametrize("bad", ["", "ftp://host/x", "msc:///x", "s3:///k", "/a\x00b"])
def test_invalid_urls(bad: str) -> None:
    with pytest.raises(InvalidURLError):
        Path(bad)
    with pytest.raises(ValueError):
        Path(bad)


def test_invalid_types() -> None:
    with pytest.raises(TypeError):
        Path(cast(Any, 42))
    with pytest.raises(TypeError):
        Path("msc://p/a") / cast(Any, 3)


def test_join_and_dotdot_never_escape_root() -> None:
    p = Path("msc://p/a/b")
    assert p / "c" == p.joinpath("c") == Path("msc://p/a/b/c")
    assert p / "c/d" / "e" == Path("msc://p/a/b/c/d/e")
    assert p / ".." == Path("msc://p/a")
    assert p / ".." / ".." / ".." / ".." / "x" == Path("msc://p/x")
    assert Path("msc://p/../../etc") == Path("msc://p/etc")
    assert Path("/..") == Path("/")
    assert p / "/top" == Path("msc://p/top")  # "/" restarts at the profile root
    assert p / "s3://other/k" == Path("s3://other/k")
    assert p / Path("msc://q/z") == Path("msc://q/z")
    assert p / pathlib.PurePosixPath("x/y") == Path("msc://p/a/b/x/y")
    assert "msc://p/a" / Path("msc://q/z") == Path("msc://q/z")
    assert p.joinpath() == p


def test_name_stem_suffix() -> None:
    p = Path("msc://p/dir/archive.tar.gz")
    assert p.name == "archive.tar.gz"
    assert p.suffix == ".gz"
    assert p.suffixes == [".tar", ".gz"]
    assert p.stem == "archive.tar"
    assert Path("msc://p/.bashrc").suffix == ""
    assert Path("msc://p/.bashrc").stem == ".bashrc"
    assert Path("msc://p/noext").suffixes == []
    assert Path("msc://p/trailing.").suffix == ""
    root = Path("msc://p")
    assert (root.name, root.stem, root.suffix) == ("", "", "")


def test_parent_parents_parts_anchor() -> None:
    p = Path("s3://bkt/a/b/c.txt")
    assert p.parent == Path("s3://bkt/a/b")
    assert p.parents == (Path("s3://bkt/a/b"), Path("s3://bkt/a"), Path("s3://bkt/"))
    assert p.parts == ("s3://bkt/", "a", "b", "c.txt")
    assert p.anchor == "s3://bkt/"
    top = Path("s3://bkt")
    assert top.parent == top
    assert top.parents == ()
    assert Path("/x/y").parts == ("/", "x", "y")
    assert Path("/").parent == Path("/")


def test_with_name_suffix_stem() -> None:
    p = Path("msc://p/d/file.txt")
    assert p.with_name("other.csv") == Path("msc://p/d/other.csv")
    assert p.with_suffix(".json") == Path("msc://p/d/file.json")
    assert p.with_suffix("") == Path("msc://p/d/file")
    assert p.with_stem("new") == Path("msc://p/d/new.txt")
    for bad_name in ("", "a/b", ".", ".."):
        with pytest.raises(ValueError):
            p.with_name(bad_name)
    for bad_suffix in ("json", ".", "./x", "a.b"):
        with pytest.raises(ValueError):
            p.with_suffix(bad_suffix)
    with pytest.raises(ValueError):
        Path("msc://p").with_name("x")
    with pytest.raises(ValueError):
        Path("msc://p").with_suffix(".x")


def test_relative_to() -> None:
    p = Path("msc://p/a/b/c")
    assert p.relative_to("msc://p/a") == pathlib.PurePosixPath("b/c")
    assert p.relative_to(Path("msc://p/a/b/c")) == pathlib.PurePosixPath(".")
    assert p.is_relative_to("msc://p/a")
    assert not p.is_relative_to("msc://q/a")
    with pytest.raises(ValueError):
        p.relative_to("msc://p/ab")


def test_equality_hash_ordering() -> None:
    a, b, c = Path("msc://p/a"), Path("msc://p/b"), Path("msc://q/a")
    assert a == Path("msc://p/a/") and hash(a) == hash(Path("msc://p/a/"))
    assert a != c and a != "msc://p/a"
    assert sorted([c, b, a]) == [a, b, c]
    assert a < b <= b and c > a >= a
    assert len({a, Path("msc://p/a"), b}) == 2
    with pytest.raises(TypeError):
        _ = a < cast(Any, "msc://p/b")


def test_immutable_and_picklable() -> None:
    p = Path("msc://p/a/b")
    with pytest.raises(AttributeError):
        cast(Any, p).name = "x"
    assert pickle.loads(pickle.dumps(p)) == p
    local = Path("/tmp/some file")
    assert pickle.loads(pickle.dumps(local)) == local


def test_fspath_and_as_uri(tmp_path: pathlib.Path) -> None:
    local = Path(tmp_path / "f.txt")
    assert os.fspath(local) == str(tmp_path / "f.txt")
    with open(local, "w") as fh:  # builtins accept local paths
        fh.write("x")
    assert local.as_uri() == (tmp_path / "f.txt").as_uri()
    assert Path("/tmp/a b").as_uri() == "file:///tmp/a%20b"
    assert local.as_posix() == str(local)
    remote = Path("msc://p/a b")
    assert remote.as_uri() == "msc://p/a b"
    for url in ("msc://p/a", "s3://bkt/k"):
        with pytest.raises(TypeError, match=url):
            os.fspath(Path(url))


# ------------------------------------------------------------ I/O on every root
def test_write_read_roundtrip(root: MultiStoragePath) -> None:
    f = root / "dir" / "hello.txt"
    assert f.write_text("héllo\nworld") == len("héllo\nworld")
    assert f.read_text() == "héllo\nworld"
    assert f.read_bytes() == "héllo\nworld".encode()
    assert f.write_text("é", encoding="latin-1") == 1
    assert f.read_bytes() == b"\xe9"
    assert f.read_text(encoding="latin-1") == "é"
    assert f.read_text(errors="replace") == "\ufffd"
    f.write_text("a\nb", newline="\r\n")
    assert f.read_bytes() == b"a\r\nb"
    assert f.write_bytes(bytearray(b"xyz")) == 3
    assert f.read_bytes() == b"xyz"
    assert f.write_bytes(memoryview(b"12345")[1:3]) == 2
    assert f.read_bytes() == b"23"
    with pytest.raises(TypeError):
        f.write_text(cast(Any, b"bytes"))


def test_open_modes(root: MultiStoragePath) -> None:
    f = root / "opened.txt"
    with f.open("w") as fh:
        fh.write("line1\n")
    with f.open() as fh:
        assert fh.read() == "line1\n"
    with f.open("rt") as fh:
        assert fh.read() == "line1\n"
    with f.open("wb") as fh:
        fh.write(b"\x01\x02")
    with f.open("rb") as fh:
        assert fh.read() == b"\x01\x02"
    with pytest.raises(ValueError):
        f.open("rw+")


def test_missing_file_errors(root: MultiStoragePath) -> None:
    missing = root / "nope.txt"
    for call in (missing.read_bytes, missing.read_text, missing.open, missing.stat, missing.unlink):
        with pytest.raises(FileNotFoundError):
            call()
    missing.unlink(missing_ok=True)
    assert not missing.exists() and not missing.is_file() and not missing.is_dir()


def test_exists_is_file_is_dir(root: MultiStoragePath) -> None:
    populate(root)
    assert root.exists() and root.is_dir() and not root.is_file()
    assert (root / "a.txt").exists() and (root / "a.txt").is_file()
    assert not (root / "a.txt").is_dir()
    assert (root / "sub").is_dir() and (root / "sub").exists() and not (root / "sub").is_file()
    assert (root / "sub" / "deep").is_dir()
    assert not (root / "su").exists() and not (root / "su").is_dir()  # a key prefix is not a directory
    assert not (root / "a.tx").exists()
    anchor = Path(root.anchor)
    assert anchor.exists() and anchor.is_dir() and not anchor.is_file()


def test_iterdir(root: MultiStoragePath) -> None:
    with pytest.raises(FileNotFoundError):
        root.iterdir()
    populate(root)
    children = list(root.iterdir())
    assert children == [root / "a.txt", root / "b.bin", root / "sub"]
    assert [c.is_dir() for c in children] == [False, False, True]
    assert list((root / "sub").iterdir()) == [root / "sub" / "c.txt", root / "sub" / "deep"]
    with pytest.raises(NotADirectoryError):
        (root / "a.txt").iterdir()
    with pytest.raises(FileNotFoundError):
        (root / "missing").iterdir()
    assert root in list(root.parent.iterdir())


def test_glob_and_rglob(root: MultiStoragePath) -> None:
    populate(root)
    assert list(root.glob("*.txt")) == [root / "a.txt"]
    assert list(root.glob("*")) == [root / "a.txt", root / "b.bin"]
    assert list(root.glob("sub/*.txt")) == [root / "sub" / "c.txt"]
    assert list(root.glob("./sub//c.*")) == [root / "sub" / "c.txt"]
    assert list(root.glob("**/*.txt")) == [root / "a.txt", root / "sub" / "c.txt", root / "sub/deep/d.txt"]
    assert list(root.rglob("*.txt")) == list(root.glob("**/*.txt"))
    assert list(root.rglob("d.*")) == [root / "sub" / "deep" / "d.txt"]
    assert list(root.glob("[ab].*")) == [root / "a.txt", root / "b.bin"]
    assert list(root.glob("a.txt")) == [root / "a.txt"]
    assert list(root.glob("*.csv")) == []
    assert list((root / "missing").glob("*")) == []
    for bad in ("", "/abs/*", "s3://b/*", "../*", "."):
        with pytest.raises(ValueError):
            root.glob(bad)


def test_glob_under_wildcard_named_directory(root: MultiStoragePath) -> None:
    weird = root / "we[ir]d*dir?"
    (weird / "x.txt").write_text("x")
    (root / "wed").mkdir(parents=True, exist_ok=True)
    assert list(weird.glob("*.txt")) == [weird / "x.txt"]
    assert list(weird.iterdir()) == [weird / "x.txt"]


def test_stat(root: MultiStoragePath) -> None:
    before = time.time()
    (root / "s.bin").write_bytes(b"x" * 100)
    st = (root / "s.bin").stat()
    assert isinstance(st, StatResult)
    assert st.st_size == 100
    assert stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)
    assert before - 5 <= st.st_mtime <= time.time() + 5
    assert st.st_mtime_ns // 1_000_000_000 == int(st.st_mtime)
    assert st.st_atime == st.st_ctime == st.st_mtime
    assert st.metadata is not None and st.metadata.content_length == 100
    dst = root.stat()
    assert stat.S_ISDIR(dst.st_mode) and dst.st_size == 0


def test_unlink(root: MultiStoragePath) -> None:
    populate(root)
    (root / "a.txt").unlink()
    assert not (root / "a.txt").exists()
    with pytest.raises(FileNotFoundError):
        (root / "a.txt").unlink()
    (root / "a.txt").unlink(missing_ok=True)
    with pytest.raises(IsADirectoryError):
        (root / "sub").unlink()
    with pytest.raises(IsADirectoryError):
        (root / "sub").unlink(missing_ok=True)
    assert (root / "sub" / "c.txt").is_file()


def test_rmdir(root: MultiStoragePath) -> None:
    populate(root)
    deep = root / "sub" / "deep"
    with pytest.raises(OSError) as info:
        deep.rmdir()
    assert info.value.errno == errno.ENOTEMPTY
    with pytest.raises(NotADirectoryError):
        (root / "a.txt").rmdir()
    (deep / "d.txt").unlink()
    deep.rmdir()
    assert not deep.exists()
    assert (root / "sub" / "c.txt").is_file()


def test_mkdir(root: MultiStoragePath, posix: bool) -> None:
    d = root / "made" / "nested"
    d.mkdir(parents=True)
    d.mkdir(parents=True, exist_ok=True)
    (d / "f.txt").write_text("f")
    assert d.is_dir()
    with pytest.raises(FileExistsError):
        d.mkdir()
    with pytest.raises(FileExistsError):
        d.mkdir(parents=True)
    d.mkdir(exist_ok=True)
    with pytest.raises(FileExistsError):
        (d / "f.txt").mkdir(exist_ok=True)
    with pytest.raises(FileExistsError):
        (d / "f.txt").mkdir(parents=True, exist_ok=True)
    empty = root / "empty"
    empty.mkdir(parents=True)
    assert empty.is_dir() == posix  # object stores have no empty directories
    empty.rmdir()
    assert not empty.exists()


def test_touch(root: MultiStoragePath) -> None:
    t = root / "t" / "touched"
    t.touch()
    assert t.is_file() and t.read_bytes() == b""
    t.write_bytes(b"keep")
    t.touch(exist_ok=True)
    assert t.read_bytes() == b"keep"
    with pytest.raises(FileExistsError):
        t.touch()  # exist_ok defaults to False, as in MSC 1.3.1 and pathlib
    (root / "t" / "new").touch(exist_ok=False)
    assert (root / "t" / "new").is_file()


def test_samefile(root: MultiStoragePath) -> None:
    populate(root)
    a = root / "a.txt"
    assert a.samefile(str(a))
    assert a.samefile(root / "sub" / ".." / "a.txt")
    assert not a.samefile(root / "b.bin")
    with pytest.raises(FileNotFoundError):
        a.samefile(root / "missing")
    with pytest.raises(FileNotFoundError):
        (root / "missing").samefile(a)


def test_root_operations_need_a_file(root: MultiStoragePath) -> None:
    top = Path(root.anchor)
    for call in (top.read_bytes, top.unlink, top.touch):
        with pytest.raises(IsADirectoryError):
            call()
    with pytest.raises(IsADirectoryError):
        top.write_bytes(b"x")


# ------------------------------------------------------ local-profile specifics
def test_local_mkdir_rmdir_follow_pathlib(stores: dict[str, pathlib.Path]) -> None:
    for base in (Path("msc://data/m"), Path(stores["data"] / "m")):
        with pytest.raises(FileNotFoundError):
            (base / "x" / "y").mkdir()
        base.mkdir()
        assert base.is_dir() and list(base.iterdir()) == []
        (base / "x" / "y").mkdir(parents=True)
        assert (stores["data"] / "m" / "x" / "y").is_dir()
        (base / "x" / "y").rmdir()
        (base / "x").rmdir()
        base.rmdir()
        with pytest.raises(FileNotFoundError):
            base.rmdir()
        assert not (stores["data"] / "m").exists()


def test_local_touch_updates_mtime(stores: dict[str, pathlib.Path]) -> None:
    f = Path("msc://data/old.txt")
    f.write_text("x")
    os.utime(stores["data"] / "old.txt", (1_000_000, 1_000_000))
    assert f.stat().st_mtime == pytest.approx(1_000_000)
    f.touch(exist_ok=True)
    assert f.stat().st_mtime > 1_000_000


def test_msc_and_local_paths_name_the_same_files(stores: dict[str, pathlib.Path]) -> None:
    via_msc = Path("msc://data/shared/f.txt")
    via_local = Path(stores["data"] / "shared" / "f.txt")
    via_msc.write_text("same")
    assert via_local.read_text() == "same"
    assert (stores["data"] / "shared" / "f.txt").read_text() == "same"
    assert via_msc.samefile(via_local) and via_local.samefile(via_msc)
    assert via_msc != via_local
    assert not Path("msc://other/shared/f.txt").exists()
    assert list(Path("msc://data").iterdir()) == [Path("msc://data/shared")]
    assert list(Path("msc://other").iterdir()) == []


def test_profile_root_is_clamped(stores: dict[str, pathlib.Path]) -> None:
    (stores["data"].parent / "outside.txt").write_text("secret")
    escaped = Path("msc://data") / ".." / "outside.txt"
    assert escaped == Path("msc://data/outside.txt")
    assert not escaped.exists()


def test_unknown_profile_fails_on_io_only(stores: dict[str, pathlib.Path]) -> None:
    p = Path("msc://nosuchprofile/x")  # building a path contacts nothing
    with pytest.raises(KeyError):
        p.exists()


def test_path_mapping_keeps_the_callers_urls(
    stores: dict[str, pathlib.Path], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = json.loads(pathlib.Path(os.environ["MSC_CONFIG"]).read_text())
    config["path_mapping"] = {"s3://mapped-bucket/prefix/": "msc://data/"}
    mapped_config = tmp_path / "mapped.json"
    mapped_config.write_text(json.dumps(config))
    monkeypatch.setenv("MSC_CONFIG", str(mapped_config))
    shortcuts.reset_cache()
    base = Path("s3://mapped-bucket/prefix/m")
    (base / "sub" / "f.txt").write_text("mapped")
    assert (stores["data"] / "m" / "sub" / "f.txt").read_text() == "mapped"
    assert list(base.iterdir()) == [base / "sub"]
    assert list(base.rglob("*.txt")) == [base / "sub" / "f.txt"]
    assert (base / "sub").is_dir() and (base / "sub" / "f.txt").stat().st_size == 6
