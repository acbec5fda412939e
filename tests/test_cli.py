"""Tests of the ``manystore`` command line (in-process through ``main`` and as a subprocess) and the demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from manystore import cli, demo, shortcuts

from .conftest import s3_profile
from .servers import S3Server

SECRET = "SUPERSECRET"


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A config (via ``MSC_CONFIG``) with ``file`` profiles ``src`` and ``dst`` and an s3 profile with a secret."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    config = {
        "profiles": {
            "src": {"storage_provider": {"type": "file", "options": {"base_path": str(src)}}},
            "dst": {"storage_provider": {"type": "file", "options": {"base_path": str(dst)}}},
            "s3x": {
                "storage_provider": {
                    "type": "s3",
                    "options": {"base_path": "bucket", "endpoint_url": "http://127.0.0.1:9"},
                },
                "credentials_provider": {
                    "type": "S3Credentials",
                    "options": {"access_key": "AKIAEXAMPLE", "secret_key": SECRET},
                },
            },
        }
    }
    path = tmp_path / "msc_config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("MSC_CONFIG", str(path))
    monkeypatch.delenv("MANYSTORE_DEBUG", raising=False)
    shortcuts.reset_cache()
    yield {"src": src, "dst": dst, "config": path, "tmp": tmp_path}
    shortcuts.reset_cache()


@pytest.fixture
def data(roots: dict[str, Path]) -> dict[str, bytes]:
    """Files under ``msc://src/data/``."""
    files = {
        "data/a.bin": b"abc",
        "data/big.bin": os.urandom(1536),
        "data/sub/c.txt": b"hello\n",
        "data/sub/deep/d.txt": b"deep",
        "other.txt": b"x",
    }
    for key, body in files.items():
        target = roots["src"] / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return files


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --------------------------------------------------------------------- ls
def test_ls_one_level(capsys: pytest.CaptureFixture[str], data: dict[str, bytes]) -> None:
    code, out, err = run(capsys, "ls", "msc://src/data")
    assert code == 0, err
    assert out.splitlines() == ["msc://src/data/a.bin", "msc://src/data/big.bin", "msc://src/data/sub/"]


def test_ls_profile_root(capsys: pytest.CaptureFixture[str], data: dict[str, bytes]) -> None:
    code, out, _ = run(capsys, "ls", "msc://src/")
    assert code == 0
    assert out.splitlines() == ["msc://src/data/", "msc://src/other.txt"]


def test_ls_long(capsys: pytest.CaptureFixture[str], data: dict[str, bytes]) -> None:
    code, out, _ = run(capsys, "ls", "-l", "msc://src/data/")
    assert code == 0
    lines = out.splitlines()
    assert re.fullmatch(r"\s*3\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+msc://src/data/a\.bin", lines[0])
    assert re.fullmatch(r"\s*1536\s+\S+Z\s+msc://src/data/big\.bin", lines[1])
    assert lines[2].endswith("msc://src/data/sub/")


def test_ls_human_readable(capsys: pytest.CaptureFixture[str], data: dict[str, bytes]) -> None:
    code, out, _ = run(capsys, "ls", "-l", "-h", "msc://src/data")
    assert code == 0
    assert re.search(r"^\s*1\.5K\s+\S+\s+msc://src/data/big\.bin$", out, re.M)
    assert re.search(r"^\s*3B\s+\S+\s+msc://src/data/a\.bin$", out, re.M)


def test_ls_recursive(capsys: pytest.CaptureFixture[str], data: dict[str, bytes]) -> None:
    code, out, _ = run(capsys, "ls", "-r", "msc://src/data")
    assert code == 0
    assert out.splitlines() == [f"msc://src/{k}" for k in sorted(data) if k.startswith("data/")]
    code, out, _ = run(capsys, "ls", "-lr", "msc://src")
    assert code == 0 and len(out.splitlines()) == len(data)


def test_ls_single_object_and_local_path(
    capsys: pytest.CaptureFixture[str], roots: dict[str, Path], data: dict[str, bytes]
) -> None:
    code, out, _ = run(capsys, "ls", "-l", "msc://src/data/a.bin")
    assert code == 0
    assert out.split()[0] == "3" and out.split()[-1] == "msc://src/data/a.bin"
    local = str(roots["src"])
    code, out, _ = run(capsys, "ls", os.path.join(local, "data", "sub"))
    assert code == 0
    assert out.splitlines() == [f"{local}/data/sub/c.txt", f"{local}/data/sub/deep/"]


def test_ls_empty_directory_is_not_an_error(
    capsys: pytest.CaptureFixture[str], roots: dict[str, Path]
) -> None:
    (roots["src"] / "empty").mkdir()
    assert run(capsys, "ls", "msc://src/empty") == (0, "", "")


# --------------------------------------------------------------------- cp
def test_cp_local_to_profile(capsys: pytest.CaptureFixture[str], roots: dict[str, Path]) -> None:
    local = roots["tmp"] / "upload.bin"
    local.write_bytes(b"payload" * 100)
    code, _, err = run(capsys, "cp", str(local), "msc://dst/in/upload.bin")
    assert code == 0, err
    assert (roots["dst"] / "in" / "upload.bin").read_bytes() == b"payload" * 100
    # A destination ending in "/" is a directory: the source's name is kept.
    code, _, err = run(capsys, "cp", f"file://{local}", "msc://dst/dir/")
    assert code == 0, err
    assert (roots["dst"] / "dir" / "upload.bin").read_bytes() == b"payload" * 100


def test_cp_recursive_between_profiles(
    capsys: pytest.CaptureFixture[str], roots: dict[str, Path], data: dict[str, bytes]
) -> None:
    code, _, err = run(capsys, "cp", "-r", "msc://src/data", "msc://dst/backup")
    assert code == 0, err
    assert tree(roots["dst"] / "backup") == {
        k[len("data/") :]: v for k, v in data.items() if k.startswith("data/")
    }


def test_cp_recursive_within_profile_with_progress(
    capsys: pytest.CaptureFixture[str], roots: dict[str, Path], data: dict[str, bytes]
) -> None:
    code, _, err = run(capsys, "cp", "-r", "--progress", "-j", "2", "msc://src/data/", "msc://src/copy/")
    assert code == 0, err
    assert "4/4 objects" in err
    assert tree(roots["src"] / "copy") == tree(roots["src"] / "data")


def test_cp_profile_to_local(
    capsys: pytest.CaptureFixture[str], roots: dict[str, Path], data: dict[str, bytes]
) -> None:
    out_file = roots["tmp"] / "out" / "a.bin"
    code, _, err = run(capsys, "cp", "msc://src/data/big.bin", str(out_file))
    assert code == 0, err
    assert out_file.read_bytes() == data["data/big.bin"]
    # An existing local directory receives the object under its own name.
    code, _, err = run(capsys, "cp", "msc://src/data/a.bin", str(out_file.parent))
    assert code == 0, err
    assert (out_file.parent / "a.bin").read_bytes() == b"abc"
    local_tree = roots["tmp"] / "tree"
    code, _, err = run(capsys, "cp", "-r", "-q", "msc://src/data", str(local_tree))
    assert code == 0, err
    assert tree(local_tree) == tree(roots["src"] / "data")


def test_cp_single_with_progress_streams(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    roots: dict[str, Path],
    data: dict[str, bytes],
) -> None:
    monkeypatch.setattr(cli.copy, "SINGLE_PROGRESS_BYTES", 0)
    monkeypatch.setattr(cli.copy, "CHUNK_SIZE", 512)
    code, _, err = run(capsys, "cp", "--progress", "msc://src/data/big.bin", "msc://dst/big.bin")
    assert code == 0, err
    assert "1.50k" in err.lower()
    monkeypatch.setattr(cli.copy, "_is_local", lambda client: False)  # force the open()/open() stream
    code, _, err = run(capsys, "cp", "--progress", "msc://src/data/big.bin", "msc://dst/streamed.bin")
    assert code == 0, err
    assert (roots["dst"] / "streamed.bin").read_bytes() == data["data/big.bin"]
    assert (roots["dst"] / "big.bin").read_bytes() == data["data/big.bin"]


def test_cp_errors(capsys: pytest.CaptureFixture[str], data: dict[str, bytes]) -> None:
    code, _, err = run(capsys, "cp", "msc://src/data", "msc://dst/x")
    assert code == 1 and "is a directory" in err
    code, _, err = run(capsys, "cp", "msc://src/nope.bin", "msc://dst/x")
    assert code == 1 and err == "manystore: cp: msc://src/nope.bin: not found\n"
    code, _, err = run(capsys, "cp", "-r", "msc://src/nothing", "msc://dst/x")
    assert code == 1 and "msc://src/nothing" in err
    code, _, err = run(capsys, "cp", "msc://src/data/a.bin", "msc://src/data/a.bin")
    assert code == 1 and "same" in err
    code, _, err = run(capsys, "cp", "msc://src/data/a.bin", "bogus://x/y")
    assert code == 2 and err.startswith("manystore: cp: bogus://x/y: ")


def test_cp_recursive_partial_failure(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    roots: dict[str, Path],
    data: dict[str, bytes],
) -> None:
    real = cli.copy._copy_object

    def flaky(src: Any, src_key: str, *args: Any, **kwargs: Any) -> None:
        if src_key.endswith("c.txt"):
            raise OSError("disk on fire")
        real(src, src_key, *args, **kwargs)

    monkeypatch.setattr(cli.copy, "_copy_object", flaky)
    code, _, err = run(capsys, "cp", "-r", "msc://src/data", "msc://dst/d")
    assert code == 1
    assert "manystore: cp: msc://src/data/sub/c.txt: disk on fire" in err
    assert "1 of 4 objects failed" in err
    assert (roots["dst"] / "d" / "a.bin").read_bytes() == b"abc"


# ----------------------------------------------------------------- rm/cat
def test_rm(capsys: pytest.CaptureFixture[str], roots: dict[str, Path], data: dict[str, bytes]) -> None:
    assert run(capsys, "rm", "msc://src/data/a.bin")[0] == 0
    assert not (roots["src"] / "data" / "a.bin").exists()
    code, _, err = run(capsys, "rm", "msc://src/data/a.bin")
    assert code == 1 and "msc://src/data/a.bin: not found" in err
    code, _, err = run(capsys, "rm", "msc://src/data/sub")
    assert code == 1 and "use -r" in err
    assert (roots["src"] / "data" / "sub" / "c.txt").exists()


def test_rm_recursive(
    capsys: pytest.CaptureFixture[str], roots: dict[str, Path], data: dict[str, bytes]
) -> None:
    assert run(capsys, "rm", "-r", "msc://src/data")[0] == 0
    assert tree(roots["src"]) == {"other.txt": b"x"}
    code, _, err = run(capsys, "rm", "-r", "msc://src/data")
    assert code == 1 and "msc://src/data" in err
    code, _, err = run(capsys, "rm", "-r", "msc://src/")
    assert code == 2 and "refusing" in err
    assert (roots["src"] / "other.txt").exists()


def test_cat(capsysbinary: pytest.CaptureFixture[bytes], data: dict[str, bytes]) -> None:
    assert cli.main(["cat", "msc://src/data/big.bin"]) == 0
    assert capsysbinary.readouterr().out == data["data/big.bin"]


def test_cat_streams_in_chunks(
    capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch, data: dict[str, bytes]
) -> None:
    monkeypatch.setattr(cli, "CHUNK_SIZE", 100)
    assert cli.main(["cat", "msc://src/data/big.bin"]) == 0
    assert capsysbinary.readouterr().out == data["data/big.bin"]


# --------------------------------------------------------------- info/glob
def test_info(capsys: pytest.CaptureFixture[str], data: dict[str, bytes]) -> None:
    code, out, _ = run(capsys, "info", "msc://src/data/big.bin")
    assert code == 0
    meta = json.loads(out)
    assert meta["url"] == "msc://src/data/big.bin"
    assert meta["key"] == "data/big.bin"
    assert meta["content_length"] == 1536
    assert meta["type"] == "file"
    assert "last_modified" in meta and meta["etag"]
    code, out, _ = run(capsys, "info", "msc://src/data/sub")
    assert code == 0 and json.loads(out)["type"] == "directory"


def test_glob(capsys: pytest.CaptureFixture[str], data: dict[str, bytes]) -> None:
    code, out, _ = run(capsys, "glob", "msc://src/data/**/*.txt")
    assert code == 0
    assert out.splitlines() == ["msc://src/data/sub/c.txt", "msc://src/data/sub/deep/d.txt"]
    code, out, err = run(capsys, "glob", "msc://src/*.nothing")
    assert code == 1 and out == "" and "no objects match" in err


# ----------------------------------------------------------------- config
def test_config_show_masks_secrets(capsys: pytest.CaptureFixture[str], roots: dict[str, Path]) -> None:
    code, out, err = run(capsys, "config", "show")
    assert code == 0, err
    assert SECRET not in out + err
    assert str(roots["config"]) in out
    shown = yaml.safe_load(out)
    assert set(shown["profiles"]) == {"src", "dst", "s3x"}
    code, out, err = run(capsys, "config", "show", "--json", "--profile", "s3x")
    assert code == 0, err
    assert SECRET not in out + err
    assert list(json.loads(out)["profiles"]) == ["s3x"]
    code, _, err = run(capsys, "config", "show", "--profile", "nope")
    assert code == 2 and "nope" in err


def test_config_validate_good(capsys: pytest.CaptureFixture[str], roots: dict[str, Path]) -> None:
    code, out, err = run(capsys, "config", "validate")
    assert code == 0, err
    assert "OK: 3 profiles" in out
    code, out, err = run(capsys, "config", "validate", str(roots["config"]))
    assert code == 0 and "OK: 3 profiles" in out
    assert SECRET not in out + err


def test_config_validate_bad(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "profiles:\n  p:\n    storage_provider:\n      type: file\n      optons: {base_path: /tmp}\n"
    )
    code, out, err = run(capsys, "config", "validate", str(bad))
    assert code == 2 and out == ""
    assert "profiles.p.storage_provider.optons" in err and "options" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    bad.write_text("profiles:\n  p:\n    storage_provider:\n      type: nosuchtype\n      options: {}\n")
    code, _, err = run(capsys, "config", "validate", str(bad))
    assert code == 2 and "profiles.p.storage_provider.type" in err
    code, _, err = run(capsys, "config", "validate", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err


def test_invalid_config_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], roots: dict[str, Path], tmp_path: Path
) -> None:
    roots["config"].write_text("profiles:\n  p:\n    storage_provder: {type: file}\n")
    shortcuts.reset_cache()
    code, _, err = run(capsys, "ls", "msc://p/")
    assert code == 2 and "storage_provder" in err


# ------------------------------------------------------------- exit codes
def test_missing_object_exit_1_names_url(capsys: pytest.CaptureFixture[str], roots: dict[str, Path]) -> None:
    for argv in (
        ["cat", "msc://src/missing.bin"],
        ["info", "msc://src/missing.bin"],
        ["ls", "msc://src/missing"],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert err == f"manystore: {argv[0]}: {argv[1]}: not found\n"


def test_bad_scheme_exit_2(capsys: pytest.CaptureFixture[str], roots: dict[str, Path]) -> None:
    code, _, err = run(capsys, "ls", "ftp://host/x")
    assert code == 2
    assert err.startswith("manystore: ls: ftp://host/x: ") and "scheme" in err and err.count("\n") == 1


def test_unknown_profile_exit_2(capsys: pytest.CaptureFixture[str], roots: dict[str, Path]) -> None:
    code, _, err = run(capsys, "cat", "msc://nosuch/key")
    assert code == 2
    assert "manystore: cat: msc://nosuch/key: " in err and "nosuch" in err


def test_usage_errors_and_version(capsys: pytest.CaptureFixture[str], roots: dict[str, Path]) -> None:
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys)[0] == 2
    assert run(capsys, "cp", "only-one-arg")[0] == 2
    assert run(capsys, "config")[0] == 2
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == "manystore 0.1.0"
    assert run(capsys, "ls", "--help")[0] == 0


def test_debug_shows_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, roots: dict[str, Path]
) -> None:
    code, _, err = run(capsys, "cat", "msc://src/missing")
    assert code == 1 and "Traceback" not in err
    code, _, err = run(capsys, "--debug", "cat", "msc://src/missing")
    assert code == 1 and "Traceback" in err
    code, _, err = run(capsys, "cat", "--debug", "msc://src/missing")
    assert code == 1 and "Traceback" in err
    monkeypatch.setenv("MANYSTORE_DEBUG", "1")
    code, _, err = run(capsys, "cat", "msc://src/missing")
    assert code == 1 and "Traceback" in err and err.rstrip().endswith("not found")


# -------------------------------------------------------------- subprocess
def test_subprocess_module_and_console_script(roots: dict[str, Path], data: dict[str, bytes]) -> None:
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "manystore.cli", "ls", "-r", "msc://src/data/sub"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["msc://src/data/sub/c.txt", "msc://src/data/sub/deep/d.txt"]
    proc = subprocess.run(
        [sys.executable, "-m", "manystore.cli", "cat", "msc://src/missing"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr == "manystore: cat: msc://src/missing: not found\n"
    script = Path(sys.executable).parent / "manystore"
    if script.exists():
        proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith("manystore ")


def test_cli_does_not_import_storage_modules_at_start() -> None:
    code = "import sys, manystore.cli; print(sorted(m for m in ('tqdm', 'yaml', 'obstore', 'manystore.client') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------------- s3
def test_cli_against_s3(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    roots: dict[str, Path],
    data: dict[str, bytes],
    rclone_server: S3Server,
) -> None:
    """Local -> S3 (upload), S3 -> S3 (server-side), S3 -> local and S3 -> file profile (download)."""
    base = f"manystore-test/{uuid.uuid4().hex}"
    config = yaml.safe_load(roots["config"].read_text())
    config["profiles"]["s3"] = s3_profile(rclone_server, base)
    roots["config"].write_text(yaml.safe_dump(config))
    shortcuts.reset_cache()
    code, _, err = run(capsys, "cp", "-r", str(roots["src"] / "data"), "msc://s3/up")
    assert code == 0, err
    code, out, _ = run(capsys, "ls", "-r", "msc://s3/up")
    assert out.splitlines() == [f"msc://s3/up/{k[5:]}" for k in sorted(data) if k.startswith("data/")]
    code, out, _ = run(capsys, "ls", "msc://s3/up/")
    assert out.splitlines() == ["msc://s3/up/a.bin", "msc://s3/up/big.bin", "msc://s3/up/sub/"]
    assert run(capsys, "cp", "-r", "msc://s3/up", "msc://s3/copy")[0] == 0
    assert run(capsys, "cp", "-r", "msc://s3/copy", "msc://dst/from-s3")[0] == 0
    assert tree(roots["dst"] / "from-s3") == tree(roots["src"] / "data")
    monkeypatch.setattr(cli.copy, "SINGLE_PROGRESS_BYTES", 0)
    code, _, err = run(capsys, "cp", "--progress", "msc://s3/copy/big.bin", str(roots["tmp"] / "big.bin"))
    assert code == 0, err
    assert (roots["tmp"] / "big.bin").read_bytes() == data["data/big.bin"]
    code, _, err = run(capsys, "cp", "--progress", str(roots["tmp"] / "big.bin"), "msc://s3/streamed.bin")
    assert code == 0, err
    code, out, _ = run(capsys, "info", "msc://s3/streamed.bin")
    assert json.loads(out)["content_length"] == 1536
    code, _, err = run(capsys, "cat", "msc://s3/nope")
    assert code == 1 and err == "manystore: cat: msc://s3/nope: not found\n"
    assert run(capsys, "rm", "-r", "msc://s3/up")[0] == 0
    assert run(capsys, "ls", "-r", "msc://s3/up")[0] == 1


# -------------------------------------------------------------------- demo
def test_demo_replica_equals_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert demo.main(["--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "OK: replica matches source" in out and "sha256 match" in out
    source, replica = tree(tmp_path / "source"), tree(tmp_path / "replica")
    assert len(source) == 200
    assert source == replica
    # Reruns start from a clean slate.
    (tmp_path / "replica" / "stray.bin").write_bytes(b"stray")
    assert demo.main(["--dir", str(tmp_path), "--objects", "10"]) == 0
    assert len(tree(tmp_path / "source")) == 10
    assert tree(tmp_path / "source") == tree(tmp_path / "replica")
