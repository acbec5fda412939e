"""cottoncandy's file-system calls and browser (manystore.arrays.fs / browser) on every backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from manystore.arrays import DefaultInterface, get_interface
from manystore.arrays._paths import glob_regex, has_real_magic, remove_trivial_magic
from manystore.arrays.browser import Directory, Group, attribute_name

from .conftest import Backend

TREE = {
    "proj/sub01_run.grp/model01": b"a" * 10,
    "proj/sub01_run.grp/model02": b"b" * 20,
    "proj/sub02-run.grp/model01": b"c" * 30,
    "proj/notes.txt": b"hello",
    "proj/deep/x/y/file.npy": b"d" * 5,
    "01_start/readme": b"r",
    "top": b"t",
}


@pytest.fixture
def cci(backend: Backend) -> DefaultInterface:
    interface = DefaultInterface(backend.client, "root")
    for name, body in TREE.items():
        interface._put(name, body, {"kind": "test"})
    return interface


def test_lsdir_and_ls(cci: DefaultInterface) -> None:
    assert sorted(cci.lsdir("/")) == ["01_start", "proj", "top"]
    assert sorted(cci.lsdir()) == ["01_start", "proj", "top"]
    assert sorted(cci.lsdir("proj")) == [
        "proj/deep",
        "proj/notes.txt",
        "proj/sub01_run.grp",
        "proj/sub02-run.grp",
    ]
    assert sorted(cci.lsdir("/proj/")) == sorted(cci.lsdir("proj/*"))
    assert len(cci.lsdir("proj", limit=2)) == 2
    assert cci.lsdir("nothing") == []
    with pytest.raises(ValueError, match="use ls"):
        cci.lsdir("proj/*.grp")
    # ls without magic is lsdir; with magic, names are cut to the pattern's depth
    assert sorted(cci.ls("proj")) == sorted(cci.lsdir("proj"))
    assert sorted(cci.ls("proj/sub*")) == ["proj/sub01_run.grp", "proj/sub02-run.grp"]
    assert sorted(cci.ls("proj/*/model01")) == ["proj/sub01_run.grp/model01", "proj/sub02-run.grp/model01"]
    assert cci.ls("proj/d*") == ["proj/deep"]
    assert len(cci.ls("proj/sub*/*", limit=1)) == 1
    # page_size bounds the objects scanned: 1 object scanned finds one name only
    assert len(cci.ls("proj/sub*", page_size=1)) == 1
    with pytest.raises(ValueError, match="page_size=0"):
        cci.ls("proj/*", page_size=0)


def test_glob_and_search(cci: DefaultInterface, capsys: pytest.CaptureFixture[str]) -> None:
    assert cci.glob("proj/sub*/model01") == ["proj/sub01_run.grp/model01", "proj/sub02-run.grp/model01"]
    # as in cottoncandy (fnmatch), * crosses "/"
    assert cci.glob("proj/*.npy") == ["proj/deep/x/y/file.npy"]
    # ** matches any depth, none included
    assert cci.glob("proj/**/file.npy") == ["proj/deep/x/y/file.npy"]
    assert cci.glob("**/readme") == ["01_start/readme"]
    assert cci.glob("proj/**/notes.txt") == ["proj/notes.txt"]
    assert cci.glob("/proj/sub0[2]*/*") == ["proj/sub02-run.grp/model01"]
    assert cci.glob("proj/sub0[!2]*/model0?") == ["proj/sub01_run.grp/model01", "proj/sub01_run.grp/model02"]
    # no magic: every name it prefixes
    assert cci.glob("proj/sub01") == ["proj/sub01_run.grp/model01", "proj/sub01_run.grp/model02"]
    assert cci.glob("proj/*", limit=2) == ["proj/deep/x/y/file.npy", "proj/notes.txt"]
    with pytest.warns(UserWarning, match="page_size=2"):
        assert len(cci.glob("proj/*", page_size=2)) == 2
    with pytest.raises(TypeError, match="unexpected option"):
        cci.glob("proj/*", bogus=1)
    capsys.readouterr()
    found = cci.search("proj/sub01*")
    out = capsys.readouterr().out
    assert found == ["proj/sub01_run.grp/model01", "proj/sub01_run.grp/model02"]
    assert 'Found 2 objects matching "proj/sub01*"' in out and "proj/sub01_run.grp/model02" in out


def test_exists_size_and_owner(cci: DefaultInterface, backend: Backend) -> None:
    assert cci.exists_object("proj/notes.txt") and cci.exists_object("/proj//notes.txt")
    assert not cci.exists_object("proj")  # a directory is not an object
    with pytest.raises(FileNotFoundError, match="proj/none"):
        cci.exists_object("proj/none", raise_err=True)
    assert cci.get_size() == sum(len(b) for b in TREE.values())  # sidecars not counted
    if backend.name == "file":
        owner = cci.get_object_owner("top")
        assert owner["uid"] == str(os.getuid())
    else:
        with pytest.raises(NotImplementedError, match="s3cmd-attrs"):
            cci.get_object_owner("top")
        if backend.name.startswith("azure"):
            return  # Azure metadata names must be identifiers: no "s3cmd-attrs" there
        cci._put("owned", b"x", {"s3cmd-attrs": "uid:1000/gid:100/mode:33188"})
        assert cci.get_object_owner("owned") == {"uid": "1000", "gid": "100", "mode": "33188"}


def test_cp_mv_keep_metadata_and_refuse_to_clobber(cci: DefaultInterface, backend: Backend) -> None:
    cci.cp("proj/notes.txt", "copies/notes.txt")
    assert cci._get("copies/notes.txt") == b"hello"
    assert cci._metadata("copies/notes.txt").get("kind") == "test"
    with pytest.raises(FileExistsError, match=r"copies/notes\.txt"):
        cci.cp("top", "copies/notes.txt")
    assert cci._get("copies/notes.txt") == b"hello"
    cci.cp("top", "copies/notes.txt", overwrite=True)
    assert cci._get("copies/notes.txt") == b"t"
    with pytest.raises(FileNotFoundError, match="a directory"):
        cci.cp("proj", "elsewhere")
    with pytest.raises(FileNotFoundError, match="missing"):
        cci.cp("missing", "elsewhere")
    with pytest.raises(FileExistsError, match="top"):
        cci.mv("proj/notes.txt", "top")
    assert cci.exists_object("proj/notes.txt")
    cci.mv("proj/notes.txt", "moved/notes.txt")
    assert not cci.exists_object("proj/notes.txt")
    assert cci._get("moved/notes.txt") == b"hello" and cci._metadata("moved/notes.txt").get("kind") == "test"
    with pytest.raises(ValueError, match="source_bucket='no-such-bucket'"):
        cci.cp("top", "x", source_bucket="no-such-bucket")


def test_cp_to_another_root_by_url(
    cci: DefaultInterface, backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "msc.json"
    config.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    other = DefaultInterface(backend.other_client(), "other")
    cci.cp("top", "t2", dest_bucket="msc://test/other")
    assert not cci._exists("t2")
    assert other._get("t2") == b"t" and other._metadata("t2").get("kind") == "test"
    cci.mv("t2", "t3", source_bucket="msc://test/other", dest_bucket="msc://test/root")
    assert not other._exists("t2") and cci._get("t3") == b"t"
    with pytest.raises(FileExistsError, match="t3"):
        other.cp("top", "t3", source_bucket="msc://test/root", dest_bucket="msc://test/root")
    # both roots through the same (cached) client: a server-side copy between prefixes
    via_url = get_interface("msc://test/root", verbose=False)
    assert via_url._root("msc://test/other", "dest_bucket").client is via_url.client
    via_url.cp("proj/notes.txt", "n", dest_bucket="msc://test/other")
    assert other._get("n") == b"hello" and other._metadata("n").get("kind") == "test"
    assert not via_url._exists("n")


def test_rm_refuses_a_branch_without_recursive(cci: DefaultInterface) -> None:
    with pytest.raises(IsADirectoryError, match=r"cannot remove 'proj/sub01_run\.grp': use `recursive`"):
        cci.rm("proj/sub01_run.grp")
    assert cci.exists_object("proj/sub01_run.grp/model01")
    assert cci.rm("proj/sub01_run.grp/model01") == 1
    assert not cci.exists_object("proj/sub01_run.grp/model01")
    cci._put("proj/sub01_run.grp.bak", b"sibling")  # shares the string prefix, not the branch
    assert cci.rm("proj/sub01_run.grp", recursive=True) == 1
    assert cci.glob("proj/sub01_run*") == ["proj/sub01_run.grp.bak"]
    with pytest.raises(FileNotFoundError, match="nothing found"):
        cci.rm("proj/none", recursive=True)
    with pytest.raises(ValueError, match="delete=False"):
        cci.rm("top", delete=False)
    assert cci.exists_object("top")


def test_browser_tab_completes_the_tree(cci: DefaultInterface) -> None:
    browser = cci.get_browser()
    assert isinstance(browser, Directory)
    assert dir(browser) == ["NUM_01_start", "proj", "top"]
    proj = browser.proj
    assert dir(proj) == ["deep", "notes_DOT_txt", "sub01_run_DOT_grp", "sub02_run_DOT_grp"]
    group = proj.sub02_run_DOT_grp
    assert isinstance(group, Group) and group._fullpath == "proj/sub02-run.grp"
    assert group.keys() == ["model01"] and "load" in dir(group)
    assert "2 keys" not in repr(group) and "1 keys" in repr(group)
    assert proj["sub02-run.grp"]._fullpath == "proj/sub02-run.grp"
    leaf = proj.notes_DOT_txt
    assert leaf.read() == b"hello"
    assert leaf().content_length == 5 and leaf.info().metadata == {"kind": "test"}
    assert browser.NUM_01_start.readme.read() == b"r"
    assert browser.proj.deep.x.y.file_DOT_npy._fullpath == "proj/deep/x/y/file.npy"
    with pytest.raises(AttributeError, match="no child 'nope'"):
        _ = browser.nope
    with pytest.raises(FileNotFoundError, match="directory"):
        browser.proj()


def test_browser_is_lazy(cci: DefaultInterface, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = DefaultInterface._list

    def counting(self: DefaultInterface, prefix: str = "", delimiter: str | None = None):  # type: ignore[no-untyped-def]
        calls.append(prefix)
        return real(self, prefix, delimiter)

    monkeypatch.setattr(DefaultInterface, "_list", counting)
    browser = cci.get_browser()
    proj = browser.proj
    assert calls == [""]  # only the root was listed, once
    _ = proj.sub01_run_DOT_grp
    assert calls == ["", "proj/"]
    dir(proj)
    assert calls == ["", "proj/"]


def test_attribute_names() -> None:
    assert attribute_name("sub01_awesome_analysis.grp") == "sub01_awesome_analysis_DOT_grp"
    assert attribute_name("01-run") == "NUM_01_run"
    assert attribute_name("a.tar.gz") == "a_DOT_tar_DOT_gz"
    assert attribute_name("with space") == "with_space"
    assert attribute_name("class") == "class_"


def test_pattern_helpers() -> None:
    assert not has_real_magic("a/b/*") and has_real_magic("a/*/b") and has_real_magic("a/b?")
    assert remove_trivial_magic("a/b/*") == "a/b/"
    assert glob_regex("a/**/b").match("a/b") and glob_regex("a/**/b").match("a/x/y/b")
    assert not glob_regex("a/?").match("a/bc")


def test_directories_round_trip(cci: DefaultInterface, tmp_path: Path) -> None:
    target = tmp_path / "down"
    assert cci.download_directory("proj", str(target)) == 5
    assert (target / "sub02-run.grp" / "model01").read_bytes() == b"c" * 30
    assert (target / "deep" / "x" / "y" / "file.npy").read_bytes() == b"d" * 5
    assert not list(target.rglob("*.meta.json"))
    with pytest.raises(ValueError, match="wildcards"):
        cci.download_directory("proj/*/x", str(target))
    assert cci.upload_from_directory(str(target), "up") == 1  # notes.txt only: not recursive
    assert cci.lsdir("up") == ["up/notes.txt"]
    assert cci.upload_from_directory(str(target), "up2", recursive=True) == 5
    assert cci._get("up2/deep/x/y/file.npy") == b"d" * 5
    with pytest.raises(NotADirectoryError):
        cci.upload_from_directory(str(tmp_path / "none"))
