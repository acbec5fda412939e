"""torch.distributed.checkpoint through manystore.torch.dcp on every backend (real servers)."""

from __future__ import annotations

import json
import os
import socket
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as tmp
from torch.distributed.checkpoint.api import CheckpointException

from manystore.contrib.torch import MultiStorageFileSystemReader, MultiStorageFileSystemWriter
from manystore.torch._dcp_reader import SegmentReader, coalesce, dcp_optimized
from manystore.torch.dcp import S3StorageReader, S3StorageWriter, StorageReader, StorageWriter

from .conftest import Backend, s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server
from .test_torch_checkpoint import use_config

warnings.filterwarnings("ignore", message="torch.distributed is disabled")


def model_and_optimizer(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 16))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(8, 64)).sum().backward()
    opt.step()
    return model, opt


def full_state(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    return {"model": model.state_dict(), "optim": opt.state_dict(), "step": 3}


def assert_models_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_save_and_load_model_and_optimizer(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = use_config(backend, tmp_path, monkeypatch)
    model, opt = model_and_optimizer(0)
    dcp.save(full_state(model, opt), storage_writer=StorageWriter(f"{base}/ck1"))
    keys = sorted(m.key for m in backend.client.list("ck1/"))
    assert keys == ["ck1/.metadata", "ck1/__0_0.distcp"]  # no temp object, no leftovers
    model2, opt2 = model_and_optimizer(1)
    state2 = full_state(model2, opt2)
    state2["step"] = 0
    dcp.load(state2, storage_reader=StorageReader(f"{base}/ck1"))
    model2.load_state_dict(state2["model"])
    assert_models_equal(model, model2)
    assert state2["step"] == 3
    exp_avg = opt.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(state2["optim"]["state"][0]["exp_avg"], exp_avg)


def test_load_of_layouts_the_direct_copy_refuses(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A transposed (non-contiguous) tensor, a float16 one loaded into float32, an int64 one, a
    # scalar and an empty one: each comes back as torch.load + copy_ would give it.
    base = use_config(backend, tmp_path, monkeypatch)
    torch.manual_seed(7)
    saved = {
        "t": torch.randn(6, 4).t(),
        "half": torch.randn(5, 3).half(),
        "ints": torch.arange(10, dtype=torch.int64),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "plain": torch.randn(32, 32),
    }
    dcp.save(saved, storage_writer=StorageWriter(f"{base}/layouts"))
    loaded = {
        "t": torch.zeros(4, 6),
        "half": torch.zeros(5, 3),
        "ints": torch.zeros(10, dtype=torch.int64),
        "scalar": torch.tensor(0.0),
        "empty": torch.zeros(0, 3),
        "plain": torch.zeros(32, 32),
    }
    dcp.load(loaded, storage_reader=StorageReader(f"{base}/layouts"))
    assert torch.equal(loaded["t"], saved["t"])
    assert torch.equal(loaded["half"], saved["half"].float())
    for key in ("ints", "scalar", "empty", "plain"):
        assert torch.equal(loaded[key], saved[key]), key


def test_direct_copy_only_for_matching_layouts() -> None:
    import io

    from manystore.torch._dcp_direct import copy_into

    def archive(t: torch.Tensor) -> SegmentReader:
        buf = io.BytesIO()
        torch.save(t, buf)
        return SegmentReader("b", "k", [(0, buf.getvalue())])

    src = torch.randn(16, 8)
    target = torch.zeros(16, 8)
    assert copy_into(archive(src), target)
    assert torch.equal(target, src)
    refused = [
        (src.t().contiguous().t(), torch.zeros(16, 8)),  # stored transposed
        (src, torch.zeros(16, 8, dtype=torch.float64)),  # another dtype
        (src, torch.zeros(8, 16)),  # another shape
        (src[2:], torch.zeros(14, 8)),  # a view of a larger storage
        (src, torch.zeros(8, 32)[:, :16].t().t()),  # a non-contiguous target (8x16)
    ]
    for saved, dest in refused:
        before = dest.clone()
        assert not copy_into(archive(saved), dest)
        assert torch.equal(dest, before)  # nothing written when refused
    assert not copy_into(SegmentReader("b", "k", [(0, b"not a zip archive")]), torch.zeros(2))


@pytest.mark.parametrize("kind", ["sequential", "range_based"])
def test_load_with_the_seed_reader_constructors(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """``StorageReader(reader_constructor=ReaderConstructor.sequential()/range_based())`` as the seed allows."""
    from manystore.torch import ReaderConstructor

    base = use_config(backend, tmp_path, monkeypatch)
    model, opt = model_and_optimizer(0)
    dcp.save(full_state(model, opt), storage_writer=StorageWriter(f"{base}/ck-{kind}"))
    model2, opt2 = model_and_optimizer(1)
    state2 = full_state(model2, opt2)
    constructor = getattr(ReaderConstructor, kind)()
    dcp.load(state2, storage_reader=StorageReader(f"{base}/ck-{kind}", reader_constructor=constructor))
    model2.load_state_dict(state2["model"])
    assert_models_equal(model, model2)


def test_seed_signature_and_msc_classes(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = use_config(backend, tmp_path, monkeypatch)
    model, opt = model_and_optimizer(0)
    writer = MultiStorageFileSystemWriter(f"{base}/ck2", thread_count=2, single_file_per_rank=True)
    dcp.save(full_state(model, opt), storage_writer=writer)
    assert sorted(m.key for m in backend.client.list("ck2/")) == [
        "ck2/.metadata",
        "ck2/__0_0.distcp",
        "ck2/__0_1.distcp",
    ]
    model2, _ = model_and_optimizer(1)
    state = {"model": model2.state_dict()}
    dcp.load(state, storage_reader=MultiStorageFileSystemReader(f"{base}/ck2", thread_count=4))
    model2.load_state_dict(state["model"])
    assert_models_equal(model, model2)
    # s3torchconnector's (region, path) call form: the region only applies to s3:// URLs
    with pytest.raises(ValueError, match="only apply to s3:// URLs"):
        S3StorageReader("us-east-1", f"{base}/ck2")
    with pytest.raises(ValueError, match="thread_count must be an int >= 1, got 0"):
        MultiStorageFileSystemReader(f"{base}/ck2", thread_count=0)
    assert StorageWriter.validate_checkpoint_id(f"{base}/ck2") and StorageReader.validate_checkpoint_id(
        "/tmp/x"
    )
    assert not StorageReader.validate_checkpoint_id("ftp://host/x")
    with pytest.raises(CheckpointException) as refused:
        dcp.save(full_state(model, opt), storage_writer=StorageWriter(f"{base}/ck2", overwrite=False))
    assert "Checkpoint already exists" in str(refused.value)


def test_async_save(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = use_config(backend, tmp_path, monkeypatch)
    model, opt = model_and_optimizer(0)
    future = dcp.async_save(full_state(model, opt), storage_writer=StorageWriter(f"{base}/ck3"))
    future.result(timeout=60)
    model2, _ = model_and_optimizer(1)
    state = {"model": model2.state_dict()}
    dcp.load(state, storage_reader=StorageReader(f"{base}/ck3"))
    model2.load_state_dict(state["model"])
    assert_models_equal(model, model2)


def test_checkpoint_of_torch_filesystemwriter_uploaded(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = use_config(backend, tmp_path, monkeypatch)
    model, opt = model_and_optimizer(0)
    local = tmp_path / "torch-native"
    dcp.save(full_state(model, opt), storage_writer=dcp.FileSystemWriter(str(local)))
    for f in local.iterdir():
        backend.client.upload_file(f"native/{f.name}", str(f))
    model2, opt2 = model_and_optimizer(1)
    state = full_state(model2, opt2)
    dcp.load(state, storage_reader=StorageReader(f"{base}/native"))
    model2.load_state_dict(state["model"])
    assert_models_equal(model, model2)
    # ... and ours loads through torch's own reader once downloaded
    dcp.save(full_state(model, opt), storage_writer=StorageWriter(f"{base}/ours"))
    down = tmp_path / "down"
    down.mkdir()
    for m in backend.client.list("ours/"):
        backend.client.download_file(m.key, str(down / m.key.rsplit("/", 1)[1]))
    model3, _ = model_and_optimizer(2)
    state3 = {"model": model3.state_dict()}
    dcp.load(state3, storage_reader=dcp.FileSystemReader(str(down)))
    model3.load_state_dict(state3["model"])
    assert_models_equal(model, model3)


@pytest.fixture
def proxied(moto_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A profile ``px`` on moto behind a counting proxy (moto answers ranged GETs with 206; the
    rclone here answers 200, which costs the S3 provider one wasted body per client)."""
    proxy = FaultProxy(moto_server.endpoint_url)
    profile = s3_profile(moto_server, f"manystore-test/{uuid.uuid4().hex}", endpoint_url=proxy.url)
    path = tmp_path / "proxied.json"
    path.write_text(json.dumps({"profiles": {"px": profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(path))
    yield proxy
    proxy.close()


def test_partial_load_fetches_only_planned_bytes(proxied: FaultProxy) -> None:
    torch.manual_seed(0)
    big = {
        "model": {f"layer{i}": torch.randn(256, 256) for i in range(4)},  # 4 x 256 KiB
        "optim": {f"m{i}": torch.randn(512, 512) for i in range(4)},  # 4 x 1 MiB
    }
    proxied.requests_log.clear()
    dcp.save(big, storage_writer=StorageWriter("msc://px/ck"))
    metadata_puts = [p for m, p in proxied.requests_log if m == "PUT" and ".metadata" in p]
    assert len(metadata_puts) == 1 and ".tmp" not in metadata_puts[0]  # one PUT, no rename
    assert proxied.requests_by_method["DELETE"] == 0

    reader = StorageReader("msc://px/ck")
    meta = reader.read_metadata()
    needed = sum(info.length for idx, info in meta.storage_data.items() if idx.fqn.startswith("model."))
    proxied.body_bytes_by_method.clear()
    proxied.requests_by_method.clear()
    state = {"model": {k: torch.zeros(256, 256) for k in big["model"]}}
    dcp.load(state, storage_reader=StorageReader("msc://px/ck"))
    for k, v in big["model"].items():
        assert torch.equal(state["model"][k], v)
    client, key = StorageReader("msc://px/ck").fs.resolve("msc://px/ck/.metadata")
    metadata_size = client.info(key).content_length
    fetched = proxied.body_bytes_by_method["GET"] - metadata_size
    assert needed <= fetched <= 1.1 * needed, (fetched, needed)
    assert fetched < 2 << 20  # not one optimizer byte (4 MiB of them) was fetched

    # a gap larger than max_gap_size splits requests; a huge one coalesces into one
    proxied.requests_by_method.clear()
    state = {"model": {"layer0": torch.zeros(256, 256)}, "optim": {"m3": torch.zeros(512, 512)}}
    dcp.load(state, storage_reader=StorageReader("msc://px/ck", reader_constructor=dcp_optimized(0)))
    assert proxied.requests_by_method["GET"] == 1 + 2  # .metadata + two ranges
    proxied.requests_by_method.clear()
    proxied.body_bytes_by_method.clear()
    dcp.load(
        state, storage_reader=StorageReader("msc://px/ck", reader_constructor=dcp_optimized(float("inf")))
    )
    assert proxied.requests_by_method["GET"] <= 1 + 2  # one span (the S3 provider may resume it)
    assert torch.equal(state["optim"]["m3"], big["optim"]["m3"])


def test_coalesce_and_segment_reader() -> None:
    assert coalesce([(10, 20), (0, 5), (22, 30), (50, 50), (60, 70)], 2) == [(0, 5), (10, 30), (60, 70)]
    assert coalesce([(0, 5), (3, 8)], 0) == [(0, 8)]
    # a 10% budget of gap bytes: of gaps 5 and 2 around 100 needed bytes, only the 2 fits... and 5 more not
    assert coalesce([(0, 40), (45, 90), (92, 100)], 10, 0.05) == [(0, 40), (45, 100)]
    assert coalesce([(0, 40), (45, 90), (92, 100)], 10, 0.1) == [(0, 100)]
    assert coalesce([(0, 40), (45, 90), (92, 100)], 10, None) == [(0, 100)]
    with pytest.raises(ValueError, match="invalid byte range 5-1"):
        coalesce([(5, 1)], 0)
    data = bytes(range(100))
    r = SegmentReader("b", "k", [(10, data[10:20]), (20, data[20:40]), (60, data[60:70])])
    v = r.view(15, 20)
    assert v.read(3) == data[15:18] and v.tell() == 3
    buf = bytearray(17)
    assert v.readinto(buf) == 17 and bytes(buf) == data[18:35]  # across two segments
    assert v.read() == b""
    assert v.seek(0) == 0 and v.read() == data[15:35]
    with pytest.raises(ValueError, match="bytes 40-45 were not fetched"):
        r.view(40, 5).read()
    with pytest.raises(TypeError, match="max_gap_size must be an int or float, got str"):
        dcp_optimized("1")  # type: ignore[arg-type]


def test_interop_with_s3torchconnector(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from s3torchconnector import S3ClientConfig
    from s3torchconnector._s3client import S3Client
    from s3torchconnector.dcp import S3FileSystem as TheirFS
    from s3torchconnector.dcp import S3StorageReader as TheirReader
    from s3torchconnector.dcp import S3StorageWriter as TheirWriter

    # On moto: s3torchconnector 1.5's streaming PUT fails against `rclone serve s3` here
    # (CRT error 14366, AWS_ERROR_S3_REQUEST_HAS_COMPLETED); its reads work on both.

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    region, endpoint = moto_server.region, moto_server.endpoint_url
    cfg = S3ClientConfig(force_path_style=True)

    def their_fs() -> Any:
        client = S3Client(region, endpoint=endpoint, s3client_config=cfg)
        return TheirFS(region, s3_client=client, s3client_config=cfg)

    root = f"s3://manystore-test/{uuid.uuid4().hex}"
    model, opt = model_and_optimizer(0)
    # ours -> theirs
    dcp.save(
        full_state(model, opt), storage_writer=S3StorageWriter(region, f"{root}/ours", endpoint=endpoint)
    )
    theirs = TheirReader(region, f"{root}/ours", s3client_config=cfg)
    fs = their_fs()
    fs._reader_constructor = theirs._reader_constructor
    theirs.fs = fs
    model2, _ = model_and_optimizer(1)
    state = {"model": model2.state_dict()}
    dcp.load(state, storage_reader=theirs)
    model2.load_state_dict(state["model"])
    assert_models_equal(model, model2)
    # theirs -> ours
    writer = TheirWriter(region, f"{root}/theirs", s3client_config=cfg)
    writer.fs = their_fs()
    dcp.save(full_state(model, opt), storage_writer=writer)
    model3, opt3 = model_and_optimizer(2)
    state3 = full_state(model3, opt3)
    dcp.load(state3, storage_reader=StorageReader(f"{root}/theirs"))  # endpoint from AWS_ENDPOINT_URL
    model3.load_state_dict(state3["model"])
    assert_models_equal(model, model3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gloo_rank(rank: int, world: int, port: int, url: str, config: str, out: Any) -> None:
    import torch.distributed as dist

    os.environ["MSC_CONFIG"] = config
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(100 + rank)
        mine = {f"rank{rank}": torch.randn(128, 64), "shared": torch.arange(10.0)}
        dcp.save(mine, storage_writer=StorageWriter(url))
        dist.barrier()
        loaded = {f"rank{rank}": torch.zeros(128, 64), "shared": torch.zeros(10)}
        dcp.load(loaded, storage_reader=StorageReader(url))
        ok = torch.equal(loaded[f"rank{rank}"], mine[f"rank{rank}"]) and torch.equal(
            loaded["shared"], mine["shared"]
        )
        out.put((rank, ok))
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_group(rclone_server: S3Server, tmp_path: Path) -> None:
    profile = s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")
    config = tmp_path / "gloo.json"
    config.write_text(json.dumps({"profiles": {"dist": profile}}))
    ctx = tmp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(target=_gloo_rank, args=(r, 2, port, "msc://dist/ck", str(config), out)) for r in range(2)
    ]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert results == [(0, True), (1, True)]
    from manystore import StorageClient, StorageClientConfig

    client = StorageClient(StorageClientConfig.from_dict({"profiles": {"dist": profile}}, "dist"))
    assert sorted(m.key for m in client.list("ck/")) == ["ck/.metadata", "ck/__0_0.distcp", "ck/__1_0.distcp"]
