"""multi-storage-client 1.3.1 operations on every backend: attribute filters, batch transfers, list_recursive."""

from __future__ import annotations

from pathlib import Path

import pytest

import manystore
from manystore.attribute_filter import compile_attribute_filter
from manystore.types import BatchTransferError, ExecutionMode, SyncResult

from .conftest import Backend


def test_list_path_and_prefix_spellings(backend: Backend) -> None:
    c = backend.client
    c.write("lp/a.bin", b"1")
    c.write("lp/b.bin", b"22")
    assert [m.key for m in c.list("lp/")] == ["lp/a.bin", "lp/b.bin"]
    assert [m.key for m in c.list(path="lp/")] == ["lp/a.bin", "lp/b.bin"]
    assert [m.key for m in c.list(prefix="lp/")] == ["lp/a.bin", "lp/b.bin"]
    with pytest.raises(ValueError, match="both path"):
        list(c.list("lp/", prefix="lp/"))


def test_attribute_filter_on_list_and_glob(backend: Backend) -> None:
    c = backend.client
    c.write("af/one.bin", b"1", attributes={"model": "alpha", "epoch": "3"})
    c.write("af/two.bin", b"2", attributes={"model": "beta", "epoch": "10"})
    c.write("af/three.bin", b"3")
    if backend.name == "file":  # the POSIX provider keeps no user metadata: nothing can match
        assert list(c.list("af/", attribute_filter_expression='model = "alpha"')) == []
        assert c.glob("af/*", attribute_filter_expression="epoch > 0") == []
        return
    keys = [m.key for m in c.list("af/", attribute_filter_expression='model = "alpha" OR epoch >= 10')]
    assert keys == ["af/one.bin", "af/two.bin"]
    assert [m.key for m in c.list("af/", attribute_filter_expression="epoch > 5")] == ["af/two.bin"]
    assert c.glob("af/*.bin", attribute_filter_expression='model != "alpha"') == ["af/two.bin"]
    shown = {m.key: m.metadata for m in c.list("af/", show_attributes=True)}
    assert shown["af/one.bin"] is not None and shown["af/one.bin"]["model"] == "alpha"
    with pytest.raises(ValueError, match="expected"):
        list(c.list("af/", attribute_filter_expression="model = "))


def test_batch_upload_download_delete(backend: Backend, tmp_path: Path) -> None:
    c = backend.client
    sources = []
    for i in range(5):
        p = tmp_path / f"in{i}.bin"
        p.write_bytes(bytes([i]) * (i + 1))
        sources.append(str(p))
    remotes = [f"batch/{i}.bin" for i in range(5)]
    events: list[tuple[str, str, str]] = []
    c.upload_files(
        remotes,
        sources,
        attributes=[{"i": str(i)} for i in range(5)],
        max_workers=3,
        transfer_callback=lambda s, d, state: events.append((s, d, state)),
    )
    assert sorted(e[2] for e in events) == ["completed"] * 5 + ["started"] * 5
    assert c.read("batch/4.bin") == b"\x04" * 5
    if backend.name != "file":  # the POSIX provider keeps no user metadata
        assert c.info("batch/2.bin").metadata == {"i": "2"}
    outs = [str(tmp_path / "out" / f"{i}.bin") for i in range(5)]
    c.download_files(remotes, outs)
    assert [Path(o).read_bytes() for o in outs] == [Path(s).read_bytes() for s in sources]
    with pytest.raises(BatchTransferError) as err:
        c.download_files(["batch/0.bin", "batch/missing.bin"], [outs[0], str(tmp_path / "x")])
    assert [f.index for f in err.value.failures] == [1]
    assert isinstance(err.value.failures[0].error, FileNotFoundError)
    with pytest.raises(ValueError, match="local_paths"):
        c.upload_files(remotes, sources[:2])
    c.delete_many(["batch/0.bin", "batch/1.bin", "batch/never-existed.bin"])
    assert [m.key for m in c.list_recursive("batch")] == ["batch/2.bin", "batch/3.bin", "batch/4.bin"]


def test_list_recursive_is_a_directory_not_a_prefix(backend: Backend) -> None:
    c = backend.client
    c.write("lr/x/1", b"1")
    c.write("lr/x/y/2", b"2")
    c.write("lrz", b"3")
    assert [m.key for m in c.list_recursive("lr")] == ["lr/x/1", "lr/x/y/2"]
    assert [m.key for m in c.list_recursive("lr/", start_after="lr/x/1")] == ["lr/x/y/2"]
    with pytest.raises(ValueError, match="max_workers"):
        list(c.list_recursive("lr", max_workers=0))


def test_get_posix_path(backend: Backend) -> None:
    c = backend.client
    c.write("pp/a", b"x")
    local = c.get_posix_path("pp/a")
    if backend.name == "file":
        assert local is not None and Path(local).read_bytes() == b"x"
    else:
        assert local is None


def test_sync_execution_mode_and_result_fields(backend: Backend) -> None:
    c = backend.client
    c.write("src/a", b"abc")
    c.write("src/b", b"de")
    result = c.sync_from(c, "src", "dst", execution_mode=ExecutionMode.LOCAL)
    assert isinstance(result, manystore.SyncResult) and result is not None
    assert (result.total_files_added, result.total_bytes_added, result.copied) == (2, 5, 2)
    assert result.total_work_units == 2 and result.total_time_seconds > 0
    assert c.read("dst/b") == b"de"
    with pytest.raises(ValueError, match="execution_mode"):
        c.sync_from(c, "src", "dst", execution_mode=ExecutionMode.RAY, execution="nonsense")


def test_attribute_filter_language() -> None:
    pred = compile_attribute_filter('(a = "x" AND n < 2.5) OR b = "y z"')
    assert pred is not None
    assert pred({"a": "x", "n": "2"}) and pred({"b": "y z"})
    assert not pred({"a": "x", "n": "3"}) and not pred({})
    assert compile_attribute_filter("") is None
    for bad in ("a", "a = b", "a = 1 AND", "(a = 1", "a == 1", 'a = "1" b = "2"'):
        with pytest.raises(ValueError, match="invalid attribute filter expression"):
            compile_attribute_filter(bad)


def test_top_level_names_of_1_3_1() -> None:
    assert manystore.SyncResult is SyncResult
    assert manystore.SymlinkHandling.FOLLOW.value == "follow"
    assert manystore.types.MSC_PROTOCOL == "msc://"
    assert manystore.ResolvedPath("k", manystore.ResolvedPathState.EXISTS).exists
