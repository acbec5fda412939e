"""``manystore archive ls|get|create`` and ``manystore batch get``, on a local profile and S3 (rclone)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import manystore
from manystore.cli import main

from .conftest import s3_profile
from .servers import S3Server


@pytest.fixture(params=["file", "s3-rclone"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, bytes]:
    """Profile ``d`` (local or S3) holding ``img/000.jpg``..``img/004.jpg`` and ``img/00N.cls``."""
    if request.param == "file":
        profile = {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path / "d")}}}
    else:
        server: S3Server = request.getfixturevalue("rclone_server")
        profile = s3_profile(server, f"manystore-test/cli-{tmp_path.name}")
    config = tmp_path / "msc.json"
    config.write_text(json.dumps({"profiles": {"d": profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    monkeypatch.delenv("MANYSTORE_DEBUG", raising=False)
    data = {f"{i:03d}.{ext}": bytes([i + 1]) * (1000 * i + 7) for i in range(5) for ext in ("jpg", "cls")}
    for name, body in data.items():
        manystore.write(f"msc://d/img/{name}", body)
    return data


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def members(raw: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() if m.size else b"" for m in tar.getmembers()}  # type: ignore[union-attr]


def test_archive_create_ls_get(
    store: dict[str, bytes], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "archive", "create", "msc://d/shards/a.tar", "msc://d/img", "--template", "00{0..2}.jpg", "-q"
    )
    assert code == 0, err
    assert out.startswith("archived 3 objects (") and out.endswith(" bytes) into msc://d/shards/a.tar\n")
    assert members(manystore.read("msc://d/shards/a.tar")) == {
        f"00{i}.jpg": store[f"00{i}.jpg"] for i in range(3)
    }
    code, out, _ = run(capsys, "archive", "ls", "msc://d/shards/a.tar", "-l")
    assert code == 0 and out.splitlines() == [f"{len(store[f'00{i}.jpg']):>10}  00{i}.jpg" for i in range(3)]
    code, out, _ = run(capsys, "archive", "ls", "msc://d/shards/a.tar")
    assert out.splitlines() == ["000.jpg", "001.jpg", "002.jpg"]

    dest = tmp_path / "one.jpg"
    code, _, err = run(capsys, "archive", "get", "msc://d/shards/a.tar", "001.jpg", "-o", str(dest))
    assert code == 0, err
    assert dest.read_bytes() == store["001.jpg"]
    code, _, err = run(
        capsys, "archive", "get", "msc://d/shards/a.tar?archpath=002.jpg", "-o", "msc://d/out/m"
    )
    assert code == 0 and manystore.read("msc://d/out/m") == store["002.jpg"]
    code, _, err = run(
        capsys, "archive", "get", "msc://d/shards/a.tar", "--regex", "00[02]", "-o", str(tmp_path / "m.tar")
    )
    assert code == 0 and members((tmp_path / "m.tar").read_bytes()) == {
        n: store[n] for n in ("000.jpg", "002.jpg")
    }

    # every object under the prefix, appended as a zip; then the errors
    code, out, err = run(capsys, "archive", "create", "msc://d/shards/all.zip", "msc://d/img/", "-q")
    assert code == 0, err
    with zipfile.ZipFile(io.BytesIO(manystore.read("msc://d/shards/all.zip"))) as zf:
        assert sorted(zf.namelist()) == sorted(store)
    code, _, err = run(capsys, "archive", "get", "msc://d/shards/a.tar", "nope.jpg")
    assert (
        code == 1
        and err == "manystore: archive get: msc://d/shards/a.tar: no member 'nope.jpg' in the archive\n"
    )
    code, _, err = run(capsys, "archive", "get", "msc://d/shards/a.tar")
    assert code == 2 and "give one MEMBER" in err and err.count("\n") == 1
    code, _, err = run(capsys, "archive", "ls", "msc://d/img/000.jpg")
    assert code == 1 and "cannot tell the archive format" in err and err.count("\n") == 1
    code, out, err = run(
        capsys, "archive", "create", "msc://d/shards/b.tar", "msc://d/img", "000.cls", "gone.cls", "-q"
    )
    assert code == 1 and "msc://d/img/gone.cls" in err and "not created" in err
    assert not manystore.is_file("msc://d/shards/b.tar")
    code, out, err = run(
        capsys,
        "archive",
        "create",
        "msc://d/shards/b.tar",
        "msc://d/img",
        "000.cls",
        "gone.cls",
        "--continue-on-error",
        "-q",
    )
    assert code == 1 and "gone.cls" in err and out.startswith("archived 1 objects")
    assert list(members(manystore.read("msc://d/shards/b.tar"))) == ["000.cls"]


def test_batch_get(store: dict[str, bytes], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(
        capsys, "archive", "create", "msc://d/shards/s.tar", "msc://d/img", "--template", "00{0..4}.cls", "-q"
    )
    assert code == 0, err
    out_tar = tmp_path / "out.tar"
    code, out, err = run(
        capsys,
        "batch",
        "get",
        "msc://d",
        "img/003.jpg",
        "shards/s.tar?archpath=004.cls",
        "img/001.cls",
        "-o",
        str(out_tar),
        "-q",
    )
    assert code == 0, err
    assert out.startswith("fetched 3 of 3 objects")
    with tarfile.open(out_tar) as tar:
        assert tar.getnames() == ["d/img/003.jpg", "d/shards/s.tar/004.cls", "d/img/001.cls"]
    got = members(out_tar.read_bytes())
    assert got["d/shards/s.tar/004.cls"] == store["004.cls"] and got["d/img/003.jpg"] == store["003.jpg"]

    code, out, err = run(
        capsys,
        "batch",
        "get",
        "msc://d/img",
        "--template",
        "00{3..6}.jpg",
        "-o",
        "msc://d/b.zip",
        "--only-obj-name",
        "-q",
    )
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2 and [line.split(": ")[:3] for line in lines] == [
        ["manystore", "batch get", f"msc://d/img/00{i}.jpg"] for i in (5, 6)
    ]
    with zipfile.ZipFile(io.BytesIO(manystore.read("msc://d/b.zip"))) as zf:
        assert zf.namelist() == ["003.jpg", "004.jpg", "__404__/005.jpg", "__404__/006.jpg"]
    code, _, err = run(
        capsys,
        "batch",
        "get",
        "msc://d/img",
        "000.jpg",
        "009.jpg",
        "-o",
        "msc://d/strict.tar",
        "--strict",
        "-q",
    )
    assert code == 1 and err.count("\n") == 1 and "009.jpg" in err
    assert not manystore.is_file("msc://d/strict.tar")  # nothing stored
    code, _, err = run(capsys, "batch", "get", "msc://d/img", "-o", "x.tar")
    assert code == 2 and "give the objects" in err
    code, _, err = run(capsys, "batch", "get", "msc://d/img", "--template", "a{1..", "-o", "x.tar")
    assert code == 1 and "template" in err.lower() and err.count("\n") == 1


def test_subprocess_progress_and_stdout(store: dict[str, bytes], tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "manystore.cli",
            "batch",
            "get",
            "msc://d/img",
            "--template",
            "00{0..4}.{jpg,cls}",
            "-o",
            "-",
            "--progress",
        ],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert members(proc.stdout) == {f"d/img/{n}": b for n, b in store.items()}
    stderr = proc.stderr.decode()
    assert "10/10" in stderr and "fetched 10 of 10 objects" in stderr  # the bar, then the summary
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "manystore.cli",
            "archive",
            "create",
            "msc://d/p.tgz",
            "msc://d/img",
            "--progress",
        ],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "10/10" in proc.stderr.decode() and proc.stdout.decode().startswith("archived 10 objects")
    proc = subprocess.run(
        [sys.executable, "-m", "manystore.cli", "archive", "get", "msc://d/p.tgz", "002.cls"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout == store["002.cls"]
