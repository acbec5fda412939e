"""``execution="ray"``: listing and transfers as tasks on a local Ray instance started here.

Ray is in the ``test`` extra (``manystore[ray]`` for users); the instance gets two CPUs
and is shut down at the end of the module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import manystore
from manystore import StorageClient, StorageClientConfig
from manystore.cli import main
from manystore.mirror import SyncError

from .conftest import s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'manystore[ray]')")

TREE = {f"shard-{i}/part-{j}.bin": bytes([i, j]) * (100 * (j + 1)) for i in range(4) for j in range(3)}
TREE["top.txt"] = b"top"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def proxied(rclone_server: S3Server, tmp_path: Path) -> Iterator[tuple[FaultProxy, StorageClient, Path]]:
    """A target on rclone behind a fault proxy, and an MSC config naming it ``dst``."""
    proxy = FaultProxy(rclone_server.endpoint_url)
    profile = s3_profile(rclone_server, f"manystore-test/ray-{uuid.uuid4().hex[:8]}")
    profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
    profile["retry"] = {"attempts": 2, "delay": 0.01}
    config = tmp_path / "msc.json"
    config.write_text(json.dumps({"profiles": {"dst": profile}}))
    yield proxy, StorageClient(StorageClientConfig.from_dict({"profiles": {"dst": profile}}, "dst")), config
    proxy.close()


def _source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for key, body in TREE.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)
    return root


def _contents(client: StorageClient) -> dict[str, bytes]:
    return {m.key: client.read(m.key) for m in client.list("")}


def test_ray_sync_splits_listing_and_mirrors(
    ray_cluster: None, proxied: tuple[FaultProxy, StorageClient, Path], tmp_path: Path
) -> None:
    proxy, target, _ = proxied
    root = _source(tmp_path)
    target.write("stale/old.bin", b"old")
    source, _ = manystore.resolve_storage_client(str(root))
    result = target.sync_from(
        source, str(root), "", delete_unmatched_files=True, execution="ray", progress=False
    )
    assert (result.copied, result.deleted, result.skipped) == (len(TREE), 1, 0)
    assert _contents(target) == TREE
    listed = {p for m, p in proxy.requests_log if m == "GET" and "list-type" in p}
    assert any("shard-2%2F" in p or "shard-2/" in p for p in listed), "sub-trees were listed separately"
    again = target.sync_from(source, str(root), "", execution="ray", progress=False)
    assert (again.copied, again.skipped) == (0, len(TREE))


def test_ray_failures_are_reported_with_their_cause(
    ray_cluster: None, proxied: tuple[FaultProxy, StorageClient, Path], tmp_path: Path
) -> None:
    proxy, target, _ = proxied
    root = _source(tmp_path)
    proxy.fail_next(1000, 500, method="PUT", path="/shard-1/part-2.bin")
    source, _ = manystore.resolve_storage_client(str(root))
    with pytest.raises(SyncError) as info:
        target.sync_from(source, str(root), "", execution="ray", progress=False)
    assert list(info.value.failures) == [f"{str(root).lstrip('/')}/shard-1/part-2.bin"]
    assert "500" in str(next(iter(info.value.failures.values())))
    assert info.value.result.copied == len(TREE) - 1


def test_cli_ray_flag(
    ray_cluster: None,
    proxied: tuple[FaultProxy, StorageClient, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    _, target, config = proxied
    monkeypatch.setenv("MSC_CONFIG", str(config))
    root = _source(tmp_path)
    assert main(["sync", str(root), "msc://dst/", "--ray", "-q", "--delete"]) == 0
    assert f"copied {len(TREE)}" in capsys.readouterr().out
    assert _contents(target) == TREE
