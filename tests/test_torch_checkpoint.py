"""manystore.torch.Writer / Checkpoint / save / load on every backend (real servers)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import torch

import manystore.torch as mtorch
from manystore.torch import Checkpoint, S3Checkpoint, S3Writer, Writer
from manystore.torch._ckpt_client import client_options

from .conftest import Backend
from .servers import S3Server

MiB = 1 << 20


def use_config(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **s3_options: Any) -> str:
    """Point ``MSC_CONFIG`` at the backend's config (profile ``test``); returns ``msc://test``."""
    config = json.loads(json.dumps(backend.config))
    provider = config["profiles"]["test"]["storage_provider"]
    if provider["type"] in ("s3", "ais_s3"):
        provider["options"].update(s3_options)
    path = tmp_path / "msc_config.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("MSC_CONFIG", str(path))
    return "msc://test"


def pending_uploads(server: S3Server, bucket: str) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_seed_names_are_ours() -> None:
    assert S3Writer is Writer and S3Checkpoint is Checkpoint
    assert mtorch.MultiStorageFileSystemWriter.__module__ == "manystore.torch.filesystem"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        mtorch.Nope  # noqa: B018


def test_writer_streams_and_publishes_on_close(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = use_config(backend, tmp_path, monkeypatch, multipart_chunksize="5M")
    body = bytes(range(256)) * (6 * MiB // 256) + b"tail"
    w = Writer(f"{base}/w/obj.bin")
    assert (w.bucket, w.key) == ("test", "w/obj.bin")
    assert w.write(body[: 3 * MiB]) == 3 * MiB
    assert w.write(memoryview(body)[3 * MiB :]) == len(body) - 3 * MiB
    assert w.tell() == len(body) and w.writable() and not w.readable() and not w.seekable()
    assert not backend.client.is_file("w/obj.bin")  # nothing visible before close
    w.close()
    w.close()  # idempotent
    assert w.closed and not w.writable()
    assert backend.client.read("w/obj.bin") == body
    with pytest.raises(ValueError, match="closed Writer"):
        w.write(b"x")


def test_writer_exception_leaves_nothing(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = use_config(backend, tmp_path, monkeypatch, multipart_chunksize="5M")
    seen_uploads: list[str] = []
    s3ish = backend.name.startswith(("s3-moto",))
    bucket = backend.config["profiles"]["test"]["storage_provider"]["options"]["base_path"].split("/")[0]
    with pytest.raises(RuntimeError, match="boom"), Writer(f"{base}/abort/obj.bin") as w:
        w.write(b"x" * (12 * MiB))  # two 5 MiB parts are uploaded already
        if s3ish:
            seen_uploads = pending_uploads(backend.server, bucket)
        raise RuntimeError("boom")
    assert w.closed
    assert not backend.client.is_file("abort/obj.bin")
    assert [m.key for m in backend.client.list("abort/")] == []
    if s3ish:
        assert any(k.endswith("abort/obj.bin") for k in seen_uploads)  # the upload was really in flight
        assert pending_uploads(backend.server, bucket) == []  # ... and is gone
    if backend.name == "file":
        root = Path(backend.config["profiles"]["test"]["storage_provider"]["options"]["base_path"])
        assert [p for p in root.rglob("*") if p.is_file()] == []  # no temp file left


def test_checkpoint_round_trip(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = use_config(backend, tmp_path, monkeypatch)
    state = {"w": torch.randn(64, 32), "step": 7, "names": ["a", "b"]}
    ckpt = Checkpoint()
    with ckpt.writer(f"{base}/ck/model.pt") as f:
        torch.save(state, f)
    assert ckpt.exists(f"{base}/ck/model.pt")
    reader = ckpt.reader(f"{base}/ck/model.pt")
    assert (reader.bucket, reader.key) == ("test", "ck/model.pt")
    loaded = torch.load(reader, weights_only=True)
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 7 and loaded["names"] == ["a", "b"]
    mtorch.save(state, f"{base}/ck/other.pt")
    again = mtorch.load(f"{base}/ck/other.pt", weights_only=True)
    assert torch.equal(again["w"], state["w"])
    with pytest.raises(FileNotFoundError):
        torch.load(ckpt.reader(f"{base}/ck/missing.pt"))


def test_reader_seek_read_readinto(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = use_config(backend, tmp_path, monkeypatch)
    backend.client.write("r/obj.bin", bytes(range(200)))
    r = Checkpoint().reader(f"{base}/r/obj.bin")
    assert r.read(3) == b"\x00\x01\x02" and r.tell() == 3
    buf = bytearray(5)
    assert r.readinto(buf) == 5 and bytes(buf) == bytes(range(3, 8))
    assert r.seek(-10, 2) == 190 and r.read() == bytes(range(190, 200))
    assert r.read(4) == b""


def test_save_failure_leaves_no_object(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = use_config(backend, tmp_path, monkeypatch)

    class Unpicklable:
        def __reduce__(self) -> Any:
            raise TypeError("cannot pickle this")

    with pytest.raises(TypeError, match="cannot pickle"):
        mtorch.save({"t": torch.ones(1000), "bad": Unpicklable()}, f"{base}/bad/model.pt")
    assert not backend.client.is_file("bad/model.pt")


def test_s3_url_with_seed_region_endpoint_and_config(
    rclone_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3torchconnector import S3ClientConfig

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rclone_server.secret_key)
    ckpt = Checkpoint(
        rclone_server.region,
        endpoint=rclone_server.endpoint_url,
        s3client_config=S3ClientConfig(force_path_style=True, part_size=5 * MiB),
    )
    url = f"s3://manystore-test/{uuid.uuid4().hex}/m.pt"
    with ckpt.writer(url) as f:
        torch.save({"x": torch.arange(5)}, f)
    assert torch.equal(torch.load(ckpt.reader(url))["x"], torch.arange(5))
    with pytest.raises(ValueError, match="only apply to s3:// URLs"):
        ckpt.writer("msc://somewhere/x.pt")


def test_client_config_mapping() -> None:
    from s3torchconnector import S3ClientConfig

    options, attempts = client_options(
        S3ClientConfig(part_size=16 * MiB, force_path_style=True, max_attempts=4, throughput_target_gbps=5.0)
    )
    assert options["multipart_chunksize"] == 16 * MiB and options["force_path_style"] is True
    assert options["max_concurrency"] == 8 and attempts == 4
    assert client_options(S3ClientConfig(unsigned=True))[0]["signature_version"] == "UNSIGNED"
    with pytest.raises(ValueError, match="part_size must be an int >= 5 MiB, got 1024"):
        client_options(S3ClientConfig(part_size=1024))
    with pytest.raises(TypeError, match="got dict"):
        Checkpoint(s3client_config={"part_size": 1})
