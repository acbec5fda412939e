"""Module-level shortcuts, implicit profiles and the per-profile client cache."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

import manystore
from manystore import shortcuts

from .conftest import s3_profile
from .servers import S3Server


@pytest.fixture
def s3_env(rclone_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Standard AWS environment pointing at the local rclone server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rclone_server.secret_key)
    monkeypatch.setenv("AWS_REGION", rclone_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", rclone_server.endpoint_url)
    return rclone_server


def test_implicit_s3_profile_from_aws_environment(s3_env: S3Server) -> None:
    manystore.write("s3://manystore-test/implicit/a.txt", b"hello")
    client, path = manystore.resolve_storage_client("s3://manystore-test/implicit/a.txt")
    assert client.profile == "_s3-manystore-test"
    assert path == "implicit/a.txt"
    assert manystore.read("s3://manystore-test/implicit/a.txt") == b"hello"
    assert [m.key for m in manystore.list("s3://manystore-test/implicit/")] == [
        "s3://manystore-test/implicit/a.txt"
    ]
    assert manystore.glob("s3://manystore-test/implicit/*.txt") == ["s3://manystore-test/implicit/a.txt"]
    assert manystore.is_file("s3://manystore-test/implicit/a.txt")
    assert not manystore.is_empty("s3://manystore-test/implicit")
    manystore.delete("s3://manystore-test/implicit", recursive=True)
    assert manystore.is_empty("s3://manystore-test/implicit")


def test_local_paths_and_file_urls(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.bin"
    manystore.write(str(target), b"local")
    assert target.read_bytes() == b"local"
    assert manystore.read(f"file://{target}") == b"local"
    client, path = manystore.resolve_storage_client(str(target))
    assert client.profile == "__filesystem__"
    assert "/" + path == str(target)
    assert [m.key for m in manystore.list(str(tmp_path / "d") + "/")] == [str(target)]
    with manystore.open(str(target), "rb") as f:
        assert f.read() == b"local"


def test_copy_between_profiles_streams(s3_env: S3Server, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"z" * (3 << 20))
    manystore.upload_file("s3://manystore-test/copy/src.bin", str(src))
    manystore.copy("s3://manystore-test/copy/src.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    manystore.copy("s3://manystore-test/copy/src.bin", "s3://manystore-test/copy/dup.bin")
    assert manystore.info("s3://manystore-test/copy/dup.bin").content_length == 3 << 20
    manystore.download_file("s3://manystore-test/copy/dup.bin", str(tmp_path / "dl.bin"))
    assert (tmp_path / "dl.bin").read_bytes() == src.read_bytes()


def test_msc_profile_from_config_file(
    rclone_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "msc.json"
    cfg.write_text(json.dumps({"profiles": {"remote": s3_profile(rclone_server, "manystore-test/cfg")}}))
    monkeypatch.setenv("MSC_CONFIG", str(cfg))
    manystore.write("msc://remote/x/y", b"via config")
    assert manystore.read("msc://remote/x/y") == b"via config"
    assert [m.key for m in manystore.list("msc://remote/x/")] == ["msc://remote/x/y"]
    p = manystore.Path("msc://remote/x") / "y"
    assert p.read_bytes() == b"via config"
    assert p.exists()


def test_client_cache_one_client_per_profile_across_threads(tmp_path: Path) -> None:
    seen: list[object] = []
    barrier = threading.Barrier(16)

    def resolve() -> None:
        barrier.wait()
        seen.append(manystore.resolve_storage_client(str(tmp_path / "x"))[0])

    threads = [threading.Thread(target=resolve) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 16
    assert len({id(c) for c in seen}) == 1


def _child_resolves(url: str, queue: multiprocessing.Queue) -> None:
    try:
        inherited = dict(shortcuts._clients)  # emptied by the at-fork hook
        manystore.resolve_storage_client(url)
        queue.put((not inherited and bool(shortcuts._clients), manystore.read(url)))
    except Exception as exc:
        queue.put((False, repr(exc).encode()))


def test_forked_child_builds_its_own_client(s3_env: S3Server) -> None:
    url = "s3://manystore-test/fork/obj"
    manystore.write(url, b"before fork")
    manystore.resolve_storage_client(url)
    assert shortcuts._clients  # the parent has a cached client with live connections
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = ctx.Queue()
    proc = ctx.Process(target=_child_resolves, args=(url, queue))
    proc.start()
    fresh, data = queue.get(timeout=60)
    proc.join(30)
    assert fresh
    assert data == b"before fork"
    assert manystore.read(url) == b"before fork"
