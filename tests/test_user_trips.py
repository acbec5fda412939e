"""What a new user tripped on: each message names the right thing, each CLI form parses as meant.

Real servers throughout (rclone and moto S3 from ``conftest``, every backend for not-found
messages); connection failures use a closed port and a listening socket that never answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import manystore
from manystore import StorageClient, StorageClientConfig, shortcuts
from manystore.cli import main
from manystore.cli.sync import normalize_argv
from manystore.errors import (
    BucketNotFoundError,
    ConfigError,
    ObjectNotFoundError,
    ProviderUnavailableError,
    RetryableError,
)
from manystore.mirror import EmptySourceWarning

from .conftest import Backend, s3_profile
from .servers import S3Server, free_port

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _use_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profiles: dict[str, Any]) -> Path:
    path = tmp_path / f"msc-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"profiles": profiles}))
    monkeypatch.setenv("MSC_CONFIG", str(path))
    shortcuts.reset_cache()
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(params=["rclone", "moto"])
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server


# ------------------------------------------------ 1. cp into a missing bucket
def test_cp_into_missing_bucket_names_the_bucket_and_destination(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    _use_config(tmp_path, monkeypatch, {"miss": s3_profile(s3_server, bucket)})
    local = tmp_path / "x.txt"
    local.write_text("hello")
    code, _, err = _run(capsys, "cp", str(local), "msc://miss/x.txt")
    assert code == 1
    assert err.strip() == f"manystore: cp: msc://miss/x.txt: bucket '{bucket}' does not exist"
    with pytest.raises(BucketNotFoundError) as info:
        manystore.write("msc://miss/y.bin", b"y")
    assert info.value.bucket == bucket and isinstance(info.value, FileNotFoundError)


def test_cp_refused_destination_key_names_the_destination(
    rclone_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """rclone stores keys as file names and refuses one over 255 bytes (moto accepts any length)."""
    _use_config(
        tmp_path, monkeypatch, {"ok": s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")}
    )
    local = tmp_path / "x.txt"
    local.write_text("hello")
    bad = "msc://ok/" + "k" * 1100  # over S3's 1024-byte key limit (and a file name's 255)
    code, _, err = _run(capsys, "cp", str(local), bad)
    assert code == 1
    assert err.startswith(f"manystore: cp: {bad}: ") and str(local) not in err
    assert len(err.strip().splitlines()) == 1, err


# ------------------------------------------------ 2. MSC_CONFIG names a missing file
def test_msc_config_naming_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.yaml")
    monkeypatch.setenv("MSC_CONFIG", missing)
    shortcuts.reset_cache()
    code, _, err = _run(capsys, "ls", "msc://data/")
    assert code == 2 and f"MSC_CONFIG='{missing}': no such config file" in err
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        manystore.list("msc://data/")
    code, _, err = _run(capsys, "config", "show")
    assert code == 2 and missing in err


# ------------------------------------------------ 3. sync from an empty or missing source
def test_sync_empty_source_warns_missing_source_fails(
    rclone_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    _use_config(
        tmp_path,
        monkeypatch,
        {
            "rc": s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}"),
            "miss": s3_profile(rclone_server, bucket),
        },
    )
    empty, out = tmp_path / "empty", tmp_path / "out"
    empty.mkdir()
    code, stdout, err = _run(capsys, "sync", f"{empty}/", "msc://rc/dst/", "-q")
    assert code == 0 and "copied 0" in stdout
    assert f"manystore: sync: warning: {empty}/: empty directory; nothing to sync" in err
    with pytest.warns(EmptySourceWarning, match="empty directory") as record:
        manystore.sync(f"{empty}/", "msc://rc/dst/")
    assert record[0].message.missing is False  # type: ignore[union-attr]

    code, _, err = _run(capsys, "sync", f"{tmp_path}/nonexistent/", "msc://rc/dst/", "-q")
    assert code == 1 and f"manystore: sync: {tmp_path}/nonexistent/: no such directory" in err
    code, _, err = _run(capsys, "sync", "msc://rc/no-such-prefix/", f"{out}/", "-q")
    assert code == 1 and "msc://rc/no-such-prefix/: no such prefix" in err
    code, _, err = _run(capsys, "sync", "msc://miss/", f"{out}/", "-q")
    assert code == 1 and f"msc://miss/: bucket '{bucket}' does not exist" in err
    with pytest.warns(EmptySourceWarning, match="no such prefix") as record:
        manystore.sync("msc://rc/no-such-prefix/", f"{out}/")
    assert record[0].message.missing is True  # type: ignore[union-attr]
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------ 4. sync --ray parsing
def test_sync_ray_flag_keeps_both_positionals(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    import manystore.mirror as mirror

    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append({"source_path": args[1], "target_path": args[3], **kwargs})
        return mirror.SyncResult(total_files_added=1)

    monkeypatch.setattr(mirror, "sync_clients", record)  # only what the CLI asks for is checked here
    src, dst = f"{tmp_path}/a/", f"{tmp_path}/b/"
    assert main(["sync", "--ray", src, dst, "-q"]) == 0
    assert main(["sync", "--ray-address", "10.0.0.1:6379", src, dst, "-q"]) == 0
    assert main(["sync", "--ray=ray://head:10001", src, dst, "-q"]) == 0
    assert main(["sync", src, dst, "-q"]) == 0
    got = [(c["execution"], c["ray_address"], c["source_path"], c["target_path"]) for c in calls]
    assert [g[:2] for g in got] == [
        ("ray", None),
        ("ray", "10.0.0.1:6379"),
        ("ray", "ray://head:10001"),
        ("local", None),
    ]
    assert all(g[2].rstrip("/").endswith("a") and g[3].rstrip("/").endswith("b") for g in got)
    assert normalize_argv(["sync", "--ray=x", "--", "--ray=y"]) == [
        "sync",
        "--ray-address=x",
        "--",
        "--ray=y",
    ]


# ------------------------------------------------ 5. cp stdin/stdout, sync --progress, -j 0
def test_cp_stdin_and_stdout(
    rclone_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _use_config(
        tmp_path, monkeypatch, {"rc": s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")}
    )
    env = {**os.environ, "MSC_CONFIG": str(config), "PYTHONPATH": SRC}
    body = os.urandom(300_000)
    cmd = [sys.executable, "-m", "manystore", "cp"]
    done = subprocess.run(
        [*cmd, "-", "msc://rc/in/piped.bin"], input=body, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert manystore.read("msc://rc/in/piped.bin") == body
    done = subprocess.run([*cmd, "msc://rc/in/piped.bin", "-"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout == body
    done = subprocess.run([*cmd, "-", "msc://rc/in/"], input=b"x", env=env, capture_output=True, timeout=60)
    assert done.returncode == 2 and b"msc://rc/in/: names a directory" in done.stderr


def test_sync_progress_and_zero_workers_or_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"a" * 5000)
    code, _, err = _run(capsys, "sync", "--progress", f"{src}/", f"{tmp_path}/dst/")
    assert code == 0 and "1/1 objects" in err  # the bar, though stderr is not a terminal
    assert (tmp_path / "dst" / "a.bin").read_bytes() == b"a" * 5000
    code, _, err = _run(capsys, "cp", "-r", "-j", "0", f"{src}/", f"{tmp_path}/cp/")
    assert code == 2 and "-j/--jobs: must be >= 1, got 0" in err
    code, _, err = _run(capsys, "sync", "--workers", "0", f"{src}/", f"{tmp_path}/dst/")
    assert code == 2 and "got 0" in err
    assert not (tmp_path / "cp").exists()


# ------------------------------------------------ 6. connection refused and timeouts
def _closed_port() -> int:
    return free_port()  # bound and closed again: nothing listens there


AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _profile(kind: str, port: int, **timeouts: Any) -> dict[str, Any]:
    endpoint = f"http://127.0.0.1:{port}"
    retry = {"attempts": 1}
    if kind == "s3":
        return {
            "storage_provider": {
                "type": "s3",
                "options": {"base_path": "b", "endpoint_url": endpoint, **timeouts},
            },
            "credentials_provider": {
                "type": "S3Credentials",
                "options": {"access_key": "a", "secret_key": "s"},
            },
            "retry": retry,
        }
    if kind == "azure":
        account = f"{endpoint}/devstoreaccount1"
        conn = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZ_KEY};BlobEndpoint={account};"
        return {
            "storage_provider": {
                "type": "azure",
                "options": {"base_path": "c", "endpoint_url": account, **timeouts},
            },
            "credentials_provider": {"type": "AzureCredentials", "options": {"connection": conn}},
            "retry": retry,
        }
    options = {"base_path": "b", "endpoint_url": endpoint, "project_id": "t", "skip_signature": True}
    return {"storage_provider": {"type": "gcs", "options": {**options, **timeouts}}, "retry": retry}


TIMEOUTS = {
    "s3": {"connect_timeout": 0.3, "read_timeout": 0.3},
    "azure": {"connect_timeout": 0.3, "read_timeout": 0.3},
    "gcs": {"timeout": 0.3},
}


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_connection_refused_is_one_line(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    _use_config(tmp_path, monkeypatch, {"p": _profile(kind, port)})
    expected = f"cannot connect to http://127.0.0.1:{port}/ (connection refused)"
    client = StorageClient(StorageClientConfig.from_dict({"profiles": {"p": _profile(kind, port)}}, "p"))
    with pytest.raises(RetryableError) as info:
        client.read("k")
    assert str(info.value).endswith(expected) and "\n" not in str(info.value)
    code, _, err = _run(capsys, "cat", "msc://p/k")
    assert code == 1 and err.strip() == f"manystore: cat: msc://p/k: {expected}"


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_timeout_is_one_line(kind: str) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        config = {"profiles": {"p": _profile(kind, port, **TIMEOUTS[kind])}}
        client = StorageClient(StorageClientConfig.from_dict(config, "p"))
        with pytest.raises(RetryableError) as info:
            client.read("k")
    assert str(info.value).endswith(f"no answer from http://127.0.0.1:{port}/ (timed out)")
    assert "Debug" not in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------ 7. gs:// without the GCS extra
def test_gs_url_without_gcs_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)  # as if google-cloud-storage were absent
    if "google.cloud" in sys.modules:  # an earlier import left the submodule as an attribute
        monkeypatch.delattr(sys.modules["google.cloud"], "storage", raising=False)
    with pytest.raises(ProviderUnavailableError, match=r"pip install 'manystore\[gcs\]'"):
        manystore.read(f"gs://bucket-{uuid.uuid4().hex[:8]}/x")
    code, _, err = _run(capsys, "cat", f"gs://bucket-{uuid.uuid4().hex[:8]}/x")
    assert code == 2 and "pip install 'manystore[gcs]'" in err


# ------------------------------------------------ 8. not-found errors name the caller's URL
@pytest.fixture
def named(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    _use_config(tmp_path, monkeypatch, backend.config["profiles"])
    yield backend
    shortcuts.reset_cache()


def test_not_found_names_the_url_given(named: Backend, tmp_path: Path) -> None:
    url, key = "msc://test/a/b.bin", "a/b.bin"
    target = str(tmp_path / "download.bin")
    client = named.client
    calls = {
        "read": lambda: manystore.read(url),
        "open": lambda: manystore.open(url, "rb").read(),
        "info": lambda: manystore.info(url),
        "download_file": lambda: manystore.download_file(url, target),
        "delete": lambda: manystore.delete(url),
        "client.read": lambda: client.read(key),
        "client.open": lambda: client.open(key, "rb").read(),
        "client.info": lambda: client.info(key),
        "client.download_file": lambda: client.download_file(key, target),
        "client.delete": lambda: client.delete(key),
    }
    base = named.config["profiles"]["test"]["storage_provider"]["options"]["base_path"]
    for name, call in calls.items():
        with pytest.raises(ObjectNotFoundError) as info:
            call()
        message = str(info.value)
        assert message == f"{url}: not found", (name, message)
        assert base not in message
    if named.name == "file":  # a plain path is named as given
        path = os.path.join(base, key)
        for call in (
            lambda: manystore.read(path),
            lambda: manystore.info(path),
            lambda: manystore.delete(path),
        ):
            with pytest.raises(ObjectNotFoundError, match=f"^{path}: not found$"):
                call()
