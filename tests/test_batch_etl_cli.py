"""``manystore etl run`` and ``manystore etl ls``, in-process and through a subprocess, on a
local profile and S3 (rclone). Transforms come from ``tests/etl_transforms.py``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import manystore
from manystore.batch.etl_cli import derive_name
from manystore.cli import main

from . import etl_transforms as tx
from .conftest import s3_profile
from .servers import S3Server

ROOT = Path(__file__).resolve().parent.parent
TX = "tests.etl_transforms"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private default cache directory (job state files and the ETL registry)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp


@pytest.fixture(params=["file", "s3-rclone"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> dict[str, bytes]:
    """Profile ``d`` (local or S3) holding ``img/000.jpg``..``img/004.jpg`` and ``img/00N.cls``."""
    if request.param == "file":
        profile = {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path / "d")}}}
    else:
        server: S3Server = request.getfixturevalue("rclone_server")
        profile = s3_profile(server, f"manystore-test/etlcli-{tmp_path.name}")
    config = tmp_path / "msc.json"
    config.write_text(json.dumps({"profiles": {"d": profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    monkeypatch.delenv("MANYSTORE_DEBUG", raising=False)
    data = {f"{i:03d}.{ext}": bytes([97 + i]) * (100 * i + 7) for i in range(5) for ext in ("jpg", "cls")}
    for name, body in data.items():
        manystore.write(f"msc://d/img/{name}", body)
    return data


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def outputs(prefix: str = "msc://d/out/") -> dict[str, bytes]:
    return {
        meta.key[len(prefix) :]: manystore.read(meta.key)  # listed keys are URLs
        for meta in manystore.list(prefix)
        if meta.type == "file"
    }


def renamed(store: dict[str, bytes], fn: object = bytes.upper) -> dict[str, bytes]:
    return {n.replace(".jpg", ".png"): fn(b) for n, b in store.items()}  # type: ignore[operator]


def test_derive_name() -> None:
    assert derive_name(tx.upper) == "upper-etl"
    assert derive_name(tx.upper_stream) == "upper-stream"
    assert derive_name(tx.StreamPrefix) == "stream-prefix"
    assert derive_name(type("X", (), {})) == "x-etl-etl"
    assert len(derive_name(type("A" * 40, (), {}))) == 32


def test_run_renames_reruns_skip_force_and_args(
    store: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    total = sum(len(b) for b in store.values())
    code, out, err = run(
        capsys, "etl", "run", f"{TX}:upper", "msc://d/img", "msc://d/out", "--ext", "jpg:png", "-q"
    )
    assert code == 0, err
    assert out == f"transformed 10 objects ({total} bytes), skipped 0 (current), failed 0 into msc://d/out\n"
    assert outputs() == renamed(store)

    code, out, err = run(
        capsys, "etl", "run", "upper-etl", "msc://d/img", "msc://d/out", "--ext", ".jpg:.png", "-q"
    )
    assert (code, err) == (0, "")
    assert out == "transformed 0 objects (0 bytes), skipped 10 (current), failed 0 into msc://d/out\n"

    code, out, _ = run(
        capsys, "etl", "run", "upper-etl", "msc://d/img", "msc://d/out", "--ext", "jpg:png", "--force", "-q"
    )
    assert code == 0 and out.startswith("transformed 10 objects") and "skipped 0" in out

    # arguments reach the transform and are part of each output's record: a change redoes them
    code, out, err = run(
        capsys,
        "etl",
        "run",
        f"{TX}:tag_args",
        "msc://d/img",
        "msc://d/tag",
        "000.jpg",
        "001.cls",
        "--args",
        '{"size": 2}',
        "--prepend",
        "t-",
        "--workers",
        "1",
        "-q",
    )
    assert code == 0, err
    assert manystore.read("msc://d/tag/t-000.jpg") == store["000.jpg"] + b'|{"size":2}'
    assert manystore.read("msc://d/tag/t-001.cls") == store["001.cls"] + b'|{"size":2}'
    code, out, _ = run(
        capsys,
        "etl",
        "run",
        "tag-args",
        "msc://d/img",
        "msc://d/tag",
        "000.jpg",
        "--args",
        '"x"',
        "--prepend",
        "t-",
        "-q",
    )
    assert code == 0 and "transformed 1 objects" in out and "skipped 0" in out
    assert manystore.read("msc://d/tag/t-000.jpg") == store["000.jpg"] + b"|x"


def test_dry_run_writes_nothing_and_plans_skips(
    store: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        "etl",
        "run",
        f"{TX}:upper",
        "msc://d/img",
        "msc://d/out",
        "--prefix-filter",
        "00",
        "--dry-run",
        "-q",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 11 and lines[-1] == "dry run: would transform 10, skip 0 (current)"
    assert "transform msc://d/img/003.cls -> msc://d/out/003.cls (etl upper-etl)" in lines
    assert not list(manystore.list("msc://d/out/"))
    code, _, err = run(
        capsys, "etl", "run", "upper-etl", "msc://d/img", "msc://d/out", "--template", "00{0..1}.jpg", "-q"
    )
    assert code == 0, err
    code, out, _ = run(
        capsys,
        "etl",
        "run",
        "upper-etl",
        "msc://d/img",
        "msc://d/out",
        "--template",
        "00{0..2}.jpg",
        "--dry-run",
        "-q",
    )
    assert code == 0
    assert out.splitlines()[-1] == "dry run: would transform 1, skip 2 (current)"
    assert "skip msc://d/img/001.jpg -> msc://d/out/001.jpg (output is current)" in out
    assert sorted(outputs()) == ["000.jpg", "001.jpg"]
    code, out, err = run(
        capsys,
        "etl",
        "run",
        "upper-etl",
        "msc://d/img",
        "msc://d/new",
        "004.cls",
        "gone.jpg",
        "--dry-run",
        "-q",
    )
    assert code == 1 and err.startswith("manystore: etl run: msc://d/img/gone.jpg: ") and err.count("\n") == 1
    assert out.splitlines() == [
        "transform msc://d/img/004.cls -> msc://d/new/004.cls (etl upper-etl)",
        "dry run: would transform 1, skip 0 (current)",
    ]
    assert not list(manystore.list("msc://d/new/"))


def test_failing_object_exit_1_names_the_key(
    store: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    manystore.write("msc://d/img/bad.txt", b"no")
    code, out, err = run(
        capsys, "etl", "run", f"{TX}:Reverse", "msc://d/img", "msc://d/out", "--continue-on-error", "-q"
    )
    assert code == 1
    assert err == "manystore: etl run: msc://d/img/bad.txt: ValueError: refusing msc://d/img/bad.txt\n"
    assert (
        out
        == f"transformed 10 objects ({sum(map(len, store.values()))} bytes), skipped 0 (current), failed 1 into msc://d/out\n"
    )
    assert outputs() == {n: b[::-1] for n, b in store.items()}

    # without --continue-on-error the job stops at the first failure
    code, out, err = run(
        capsys,
        "etl",
        "run",
        "reverse",
        "msc://d/img",
        "msc://d/out2",
        "bad.txt",
        "000.jpg",
        "001.jpg",
        "002.jpg",
        "003.jpg",
        "--workers",
        "1",
        "-q",
    )
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == "manystore: etl run: msc://d/img/bad.txt: ValueError: refusing msc://d/img/bad.txt"
    assert lines[1] == (
        "manystore: etl run: msc://d/img: stopped at the first failure, 3 objects not attempted "
        "(--continue-on-error goes on)"
    )
    assert "failed 1" in out and not manystore.is_file("msc://d/out2/bad.txt")


def test_bad_transform_and_usage_exit_2(store: dict[str, bytes], capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        f"{TX}:nope": f"module '{TX}' has no attribute 'nope'",
        "no_such_mod_xyz:fn": "cannot import module 'no_such_mod_xyz': ModuleNotFoundError",
        "not-registered-etl": "no ETL registered under this name",
        f"{TX}:time": "is a module; expected module:function",
        ":fn": "expected module:function",
    }
    for spec, cause in cases.items():
        code, out, err = run(capsys, "etl", "run", spec, "msc://d/img", "msc://d/out", "-q")
        assert code == 2 and out == "", (spec, err)
        assert err.startswith(f"manystore: etl run: {spec}: ") and cause in err and err.count("\n") == 1, err
    usage = [
        (["--ext", "jpg"], "--ext 'jpg': expected OLD:NEW"),
        (["--args", "{bad"], "--args '{bad': expected JSON"),
        (["000.jpg", "--prefix-filter", "0"], "--prefix-filter selects from the whole prefix"),
        (["--template", "a{1..", "--dry-run"], "template"),
        (["--workers", "-5"], "num_workers=-5"),
        (["--timeout", "soon"], "timeout='soon'"),
        (["--name", "BAD NAME"], "ETL name 'BAD NAME'"),
    ]
    for extra, cause in usage:
        code, _, err = run(capsys, "etl", "run", f"{TX}:upper", "msc://d/img", "msc://d/out", *extra, "-q")
        assert code == 2 and cause in err and err.count("\n") == 1, (extra, err)
    code, _, err = run(
        capsys, "etl", "run", f"{TX}:Reverse", "msc://d/img", "msc://d/out", "--streaming", "-q"
    )
    assert code == 2 and "--streaming applies to functions" in err
    assert not list(manystore.list("msc://d/out/"))


def test_streaming_pipeline_and_names(store: dict[str, bytes], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "etl",
        "run",
        f"{TX}:upper_stream",
        "msc://d/img",
        "msc://d/out",
        "--streaming",
        "--name",
        "cli-stream-up",
        "--pipeline",
        f"{TX}:StreamPrefix",
        "--template",
        "00{0..1}.{jpg,cls}",
        "-q",
    )
    assert code == 0, err
    assert outputs() == {
        f"00{i}.{e}": b">" + store[f"00{i}.{e}"].upper() for i in (0, 1) for e in ("jpg", "cls")
    }
    code, out, _ = run(capsys, "etl", "ls")
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert lines["cli-stream-up"] == [
        "cli-stream-up",
        "function",
        "(stream)",
        "Running",
        f"{TX}:upper_stream",
    ]
    assert lines["stream-prefix"] == ["stream-prefix", "class", "(stream)", "Running", f"{TX}:StreamPrefix"]
    code, _, err = run(
        capsys, "etl", "run", "cli-stream-up", "msc://d/img", "msc://d/out", "--name", "y-etl-name"
    )
    assert code == 2 and "--name and --streaming apply to a module:function TRANSFORM" in err


def test_processes(store: dict[str, bytes], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "etl",
        "run",
        f"{TX}:upper",
        "msc://d/img",
        "msc://d/out",
        "--ext",
        "jpg:png",
        "--processes",
        "2",
        "-q",
    )
    assert code == 0, err
    assert out.startswith("transformed 10 objects") and outputs() == renamed(store)
    code, out, err = run(
        capsys, "etl", "run", f"{TX}:pid_of_worker", "msc://d/img", "msc://d/pid", "--processes", "2", "-q"
    )
    assert code == 0, err
    pids = {int(data) for data in outputs("msc://d/pid/").values()}
    assert pids and os.getpid() not in pids  # the transform ran in worker processes


def test_subprocess(store: dict[str, bytes], tmp_path: Path, cache_dir: Path) -> None:
    env = {**os.environ, "TMPDIR": str(cache_dir)}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "manystore.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )

    proc = cli("etl", "run", f"{TX}:upper", "msc://d/img", "msc://d/out", "--ext", "jpg:png", "--progress")
    assert proc.returncode == 0, proc.stderr
    assert "10/10" in proc.stderr  # the job's progress bar
    assert proc.stdout.startswith("transformed 10 objects") and "skipped 0 (current)" in proc.stdout
    assert outputs() == renamed(store)
    proc = cli("etl", "ls")
    assert proc.returncode == 0 and proc.stdout.split() == ["upper-etl", "function", "Running", f"{TX}:upper"]
    proc = cli("etl", "run", "upper-etl", "msc://d/img", "msc://d/out", "--ext", "jpg:png", "-q")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == "transformed 0 objects (0 bytes), skipped 10 (current), failed 0 into msc://d/out\n"
    proc = cli("etl", "run", f"{TX}:missing_fn", "msc://d/img", "msc://d/out")
    assert proc.returncode == 2
    assert (
        proc.stderr == f"manystore: etl run: {TX}:missing_fn: module '{TX}' has no attribute 'missing_fn'\n"
    )
    manystore.write("msc://d/img/bad.txt", b"no")
    proc = cli("etl", "run", f"{TX}:Reverse", "msc://d/img", "msc://d/rev", "--continue-on-error", "-q")
    assert proc.returncode == 1 and "msc://d/img/bad.txt: ValueError: refusing" in proc.stderr
    proc = cli("etl", "run", "--help")
    assert proc.returncode == 0 and "--ray-address" in proc.stdout and "--prefix-filter" in proc.stdout


def test_local_directories_by_plain_path(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"abc")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "etl", "run", f"{TX}:upper", "in", "out", "--ext", "jpg:png", "-q")
    assert code == 0, err
    assert (tmp_path / "out" / "a.png").read_bytes() == b"ABC"
    code, out, err = run(capsys, "etl", "run", "upper-etl", "in/", "./out", "--ext", "jpg:png", "-q")
    assert code == 0 and "skipped 1 (current)" in out


@pytest.mark.skipif(
    not importlib.util.find_spec("ray"), reason="Ray is not installed (pip install 'manystore[ray]')"
)
def test_subprocess_ray(tmp_path: Path, cache_dir: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.txt").write_bytes(b"ray %d" % i)
    short = tempfile.mkdtemp(prefix="etlray-", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "TMPDIR": short, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "manystore.cli",
            "etl",
            "run",
            f"{TX}:upper",
            str(src),
            str(tmp_path / "out"),
            "--ray",
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    shutil.rmtree(short, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("transformed 3 objects")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == {
        f"{i}.txt": b"RAY %d" % i for i in range(3)
    }
