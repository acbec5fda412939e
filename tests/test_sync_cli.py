"""``manystore sync`` and ``sync_clients`` options: skip unchanged, --delete, --include/--exclude, --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import manystore
from manystore.cli import main

from .conftest import s3_profile
from .servers import S3Server


@pytest.fixture(params=["file", "s3-rclone"])
def urls(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A local source directory and a target (local profile, or S3 on rclone)."""
    src = tmp_path / "src"
    for name, body in {"a.txt": b"a", "b.bin": b"bb", "sub/c.txt": b"ccc", "sub/d.log": b"dddd"}.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(body)
    if request.param == "file":
        target = {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path / "dst")}}}
    else:
        server: S3Server = request.getfixturevalue("rclone_server")
        target = s3_profile(server, f"manystore-test/sync-{tmp_path.name}")
    config = tmp_path / "msc.json"
    config.write_text(json.dumps({"profiles": {"dst": target}}))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    return str(src) + "/", "msc://dst/"


def _keys(url: str) -> dict[str, bytes]:
    return {m.key[len(url) :]: manystore.read(m.key) for m in manystore.list(url)}


def test_sync_copies_then_skips_unchanged(urls: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = urls
    assert main(["sync", src, dst, "-q"]) == 0
    assert "copied 4" in capsys.readouterr().out
    assert _keys(dst) == {"a.txt": b"a", "b.bin": b"bb", "sub/c.txt": b"ccc", "sub/d.log": b"dddd"}
    assert main(["sync", src, dst, "-q"]) == 0
    assert "copied 0 (0 bytes), skipped 4" in capsys.readouterr().out
    Path(src, "b.bin").write_bytes(b"changed!")
    assert main(["sync", src, dst, "-q"]) == 0
    assert "copied 1" in capsys.readouterr().out
    assert _keys(dst)["b.bin"] == b"changed!"


def test_sync_delete_and_dry_run(urls: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = urls
    assert main(["sync", src, dst, "-q"]) == 0
    manystore.write(dst + "extra.txt", b"x")
    assert main(["sync", src, dst, "--delete", "--dry-run", "-q"]) == 0
    assert "would delete 1" in capsys.readouterr().out
    assert "extra.txt" in _keys(dst)  # dry run changed nothing
    assert main(["sync", src, dst, "--delete", "-q"]) == 0
    assert "deleted 1" in capsys.readouterr().out
    assert "extra.txt" not in _keys(dst)


def test_sync_include_exclude(urls: tuple[str, str]) -> None:
    src, dst = urls
    assert main(["sync", src, dst, "--include", "**/*.txt", "--exclude", "sub/*", "-q"]) == 0
    assert set(_keys(dst)) == {"a.txt"}
    assert main(["sync", src, dst, "--exclude", "*.bin", "--exclude", "**/*.log", "-q"]) == 0
    assert set(_keys(dst)) == {"a.txt", "sub/c.txt"}


def test_sync_with_worker_processes(urls: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = urls
    assert main(["sync", src, dst, "--processes", "2", "--workers", "2", "-q"]) == 0
    assert "copied 4" in capsys.readouterr().out
    assert _keys(dst) == {"a.txt": b"a", "b.bin": b"bb", "sub/c.txt": b"ccc", "sub/d.log": b"dddd"}


def test_sync_refuses_delete_from_an_empty_source(
    urls: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = urls
    assert main(["sync", src, dst, "-q"]) == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert main(["sync", str(empty), dst, "--delete", "-q"]) == 1
    assert "refusing --delete" in capsys.readouterr().err
    assert len(_keys(dst)) == 4  # nothing deleted


def test_sync_of_one_object_says_use_cp(urls: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = urls
    assert main(["sync", src + "a.txt", dst, "-q"]) == 2
    err = capsys.readouterr().err
    assert "a.txt is an object, not a directory" in err and "cp" in err
