"""``manystore.torch.lightning``: a Lightning ``CheckpointIO`` on every backend.

A tiny model is fitted by a real ``Trainer`` whose ``default_root_dir`` is an ``msc://``
URL on each backend; a second Trainer resumes from the stored checkpoint. The plugin's
own operations (save, load, remove, atomicity, ``AsyncCheckpointIO``) and
s3torchconnector's signature (``region``/``endpoint``/``s3client_config`` on ``s3://``
URLs) are checked against the real servers of ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.plugins.io import AsyncCheckpointIO
from s3torchconnector import S3ClientConfig
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from manystore import shortcuts
from manystore.torch.lightning import LightningCheckpoint, S3LightningCheckpoint

from .conftest import Backend
from .servers import S3Server

PROFILE = "ckpt"
SRC = str(Path(__file__).resolve().parents[1] / "src")


class TinyModel(pl.LightningModule):
    """A linear layer fitted by SGD: 2 steps per epoch on 16 samples."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.weights_at_train_start: dict[str, Any] | None = None

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_start(self) -> None:
        self.weights_at_train_start = {k: v.detach().clone() for k, v in self.state_dict().items()}


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(
        TensorDataset(torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)), batch_size=8
    )


def trainer(root: str, max_epochs: int, plugin: Any) -> Any:
    return pl.Trainer(
        plugins=[plugin],
        default_root_dir=root,
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


@pytest.fixture
def store(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``msc://ckpt/run`` on the backend (``MSC_CONFIG`` names a profile ``ckpt`` there)."""
    config = tmp_path / "msc_config.json"
    config.write_text(json.dumps({"profiles": {PROFILE: backend.config["profiles"]["test"]}}))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    shortcuts.reset_cache()
    return f"msc://{PROFILE}/run"


def stored_keys(backend: Backend, prefix: str = "run/") -> list[str]:
    return sorted(o.key for o in backend.client.list(prefix=prefix))


def assert_same_weights(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


# ------------------------------------------------------------------ Trainer
def test_fit_saves_to_store_and_resumes(backend: Backend, store: str) -> None:
    plugin = LightningCheckpoint()
    first = trainer(store, 2, plugin)
    model = TinyModel()
    first.fit(model, loader())
    assert first.strategy.checkpoint_io is plugin
    # ModelCheckpoint keeps the latest only: the epoch-0 file was removed through the plugin.
    assert stored_keys(backend) == ["run/checkpoints/epoch=1-step=4.ckpt"]
    saved_url = f"{store}/checkpoints/epoch=1-step=4.ckpt"
    saved = plugin.load_checkpoint(saved_url)
    assert (saved["epoch"], saved["global_step"]) == (1, 4)
    assert_same_weights(saved["state_dict"], model.state_dict())

    second = trainer(store, 4, LightningCheckpoint())
    resumed = TinyModel()
    second.fit(resumed, loader(), ckpt_path=saved_url)
    assert resumed.weights_at_train_start is not None
    assert_same_weights(resumed.weights_at_train_start, saved["state_dict"])
    assert (second.current_epoch, second.global_step) == (4, 8)
    assert stored_keys(backend) == ["run/checkpoints/epoch=3-step=8.ckpt"]
    final = LightningCheckpoint().load_checkpoint(f"{store}/checkpoints/epoch=3-step=8.ckpt")
    assert (final["epoch"], final["global_step"]) == (3, 8)
    assert_same_weights(final["state_dict"], resumed.state_dict())
    assert not torch.equal(final["state_dict"]["layer.weight"], saved["state_dict"]["layer.weight"])


def test_async_checkpoint_io_wrapping(backend: Backend, store: str) -> None:
    plugin = AsyncCheckpointIO(LightningCheckpoint())
    fit = trainer(store, 2, plugin)
    model = TinyModel()
    fit.fit(model, loader())  # teardown waits for the save thread
    assert stored_keys(backend) == ["run/checkpoints/epoch=1-step=4.ckpt"]
    saved = LightningCheckpoint().load_checkpoint(f"{store}/checkpoints/epoch=1-step=4.ckpt")
    assert saved["global_step"] == 4
    assert_same_weights(saved["state_dict"], model.state_dict())


def test_async_removal_of_a_queued_save_holds(backend: Backend, store: str) -> None:
    inner = LightningCheckpoint()
    plugin = AsyncCheckpointIO(inner)
    plugin.save_checkpoint({"n": 0}, f"{store}/first.ckpt")  # the save thread exists and has saved
    release = threading.Event()
    assert plugin._executor is not None
    plugin._executor.submit(release.wait, 30)  # the save thread is busy: the next save stays queued
    plugin.save_checkpoint({"n": 1}, f"{store}/queued.ckpt")
    plugin.remove_checkpoint(f"{store}/queued.ckpt")  # on this thread, before the save ran
    release.set()
    plugin.teardown()
    assert stored_keys(backend) == ["run/first.ckpt"]
    inner.save_checkpoint({"n": 2}, f"{store}/queued.ckpt")  # a later save of the path is kept
    assert inner.load_checkpoint(f"{store}/queued.ckpt") == {"n": 2}


def test_removal_waits_for_a_running_save(backend: Backend, store: str) -> None:
    inner = LightningCheckpoint()
    plugin = AsyncCheckpointIO(inner)
    started, release = threading.Event(), threading.Event()

    class Slow:
        def __reduce__(self) -> Any:
            started.set()
            release.wait(30)
            return (int, (7,))

    plugin.save_checkpoint({"slow": Slow()}, f"{store}/slow.ckpt")
    assert started.wait(30)
    remover = threading.Thread(target=plugin.remove_checkpoint, args=(f"{store}/slow.ckpt",))
    remover.start()
    remover.join(0.3)
    assert remover.is_alive()  # waiting for the save of the same path
    release.set()
    remover.join(30)
    plugin.teardown()
    assert stored_keys(backend) == []


def test_async_checkpoint_io_reports_a_failed_save(backend: Backend, store: str) -> None:
    plugin = AsyncCheckpointIO(LightningCheckpoint())
    with contextlib.suppress(AttributeError):  # raised here if the thread failed already
        plugin.save_checkpoint({"bad": lambda: None}, f"{store}/bad.ckpt")
    with pytest.raises(AttributeError, match=r"pickle local object .*<lambda>"):
        plugin.teardown()  # waits for the thread and re-raises its error
    gc.collect()
    assert stored_keys(backend) == []


# ------------------------------------------------------------------ the plugin itself
def test_save_load_remove(backend: Backend, store: str) -> None:
    plugin = LightningCheckpoint()
    url = f"{store}/direct/a.ckpt"
    checkpoint = {"state_dict": {"w": torch.arange(1000, dtype=torch.float32)}, "epoch": 7}
    plugin.save_checkpoint(checkpoint, url)
    assert backend.client.info("run/direct/a.ckpt").content_length > 4000
    loaded = plugin.load_checkpoint(url, map_location="cpu", weights_only=True)
    assert loaded["epoch"] == 7
    assert torch.equal(loaded["state_dict"]["w"], checkpoint["state_dict"]["w"])
    plugin.remove_checkpoint(url)
    assert stored_keys(backend) == []
    plugin.remove_checkpoint(url)  # already gone: not an error (as Lightning's TorchCheckpointIO)
    with pytest.raises(FileNotFoundError, match=r"run/direct/a\.ckpt"):
        plugin.load_checkpoint(url)
    plugin.teardown()


def test_failed_save_keeps_the_previous_checkpoint(backend: Backend, store: str) -> None:
    plugin = LightningCheckpoint()
    url = f"{store}/atomic.ckpt"
    plugin.save_checkpoint({"version": 1, "t": torch.ones(3)}, url)
    with pytest.raises(Exception, match=r"lambda|pickle"):
        plugin.save_checkpoint({"version": 2, "t": torch.zeros(3), "bad": lambda: None}, url)
    assert plugin.load_checkpoint(url)["version"] == 1
    with pytest.raises(Exception, match=r"lambda|pickle"):
        plugin.save_checkpoint({"bad": lambda: None}, f"{store}/never.ckpt")
    gc.collect()  # an aborted writer, once collected, must not store anything either
    assert stored_keys(backend) == ["run/atomic.ckpt"]
    assert plugin.load_checkpoint(url)["version"] == 1


def test_bad_arguments_are_refused(backend: Backend, store: str) -> None:
    plugin = LightningCheckpoint()
    with pytest.raises(TypeError, match="storage_options"):
        plugin.save_checkpoint({}, f"{store}/x.ckpt", storage_options={"a": 1})
    with pytest.raises(TypeError, match="expected a URL string"):
        plugin.save_checkpoint({}, 42)
    assert stored_keys(backend) == []


def test_local_path_objects(tmp_path: Path) -> None:
    plugin = LightningCheckpoint()
    target = tmp_path / "deep" / "local.ckpt"
    plugin.save_checkpoint({"n": torch.tensor([5])}, target)
    assert target.is_file()
    assert torch.equal(plugin.load_checkpoint(str(target))["n"], torch.tensor([5]))
    plugin.remove_checkpoint(target)
    assert not target.exists()


# ------------------------------------------------------------------ s3torchconnector's signature
@pytest.fixture
def s3_env(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Credentials of the moto server in the environment, as a seed user's script has them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.secret_key)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return moto_server


def test_seed_signature_on_s3_urls(s3_env: S3Server) -> None:
    config = S3ClientConfig(part_size=5 << 20, force_path_style=True, max_attempts=3)
    plugin = S3LightningCheckpoint(s3_env.region, endpoint=s3_env.endpoint_url, s3client_config=config)
    key = f"{uuid.uuid4().hex}/seed.ckpt"
    url = f"s3://manystore-test/{key}"
    checkpoint = {"w": torch.arange(3 << 20, dtype=torch.float32)}  # 12 MiB: 3 parts of 5 MiB
    plugin.save_checkpoint(checkpoint, url)
    head = s3_env.boto3_client().head_object(Bucket="manystore-test", Key=key)
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # part_size took effect
    assert torch.equal(plugin.load_checkpoint(url)["w"], checkpoint["w"])
    plugin.remove_checkpoint(url)
    listed = s3_env.boto3_client().list_objects_v2(Bucket="manystore-test", Prefix=key)
    assert listed.get("KeyCount", 0) == 0
    uploads = s3_env.boto3_client().list_multipart_uploads(Bucket="manystore-test", Prefix=key)
    assert not uploads.get("Uploads")


def test_seed_signature_failed_save_leaves_no_upload(s3_env: S3Server) -> None:
    plugin = S3LightningCheckpoint(s3_env.region, endpoint=s3_env.endpoint_url)
    key = f"{uuid.uuid4().hex}/failed.ckpt"

    class Exploding:
        def __reduce__(self) -> Any:
            raise RuntimeError("boom while pickling")

    with pytest.raises(RuntimeError, match="boom"):
        plugin.save_checkpoint({"t": torch.zeros(1 << 20), "x": Exploding()}, f"s3://manystore-test/{key}")
    client = s3_env.boto3_client()
    assert client.list_objects_v2(Bucket="manystore-test", Prefix=key).get("KeyCount", 0) == 0
    assert not client.list_multipart_uploads(Bucket="manystore-test", Prefix=key).get("Uploads")


def test_seed_options_mapping_and_errors() -> None:
    from manystore.torch.lightning import s3_profile_options

    options = s3_profile_options(
        "eu-west-1",
        "http://127.0.0.1:1",
        S3ClientConfig(
            throughput_target_gbps=2.5, part_size=6 << 20, unsigned=True, max_attempts=2, profile="p"
        ),
    )
    assert options == {
        "region_name": "eu-west-1",
        "endpoint_url": "http://127.0.0.1:1",
        "multipart_chunksize": 6 << 20,
        "max_concurrency": 4,
        "retries": {"total_max_attempts": 2},
        "signature_version": "UNSIGNED",
        "profile_name": "p",
    }
    with pytest.raises(ValueError, match=r"part_size=1024; expected an int from 5 MiB to 5 GiB"):
        S3LightningCheckpoint("us-east-1", S3ClientConfig(part_size=1024))
    with pytest.raises(ValueError, match=r"max_attempts=0"):
        S3LightningCheckpoint("us-east-1", S3ClientConfig(max_attempts=0))
    with pytest.raises(TypeError, match=r"lacks \['throughput_target_gbps'"):
        S3LightningCheckpoint("us-east-1", s3client_config=object())
    with pytest.raises(
        ValueError, match=r"'msc://p/x\.ckpt': region/endpoint/s3client_config apply to s3://"
    ):
        S3LightningCheckpoint("us-east-1").load_checkpoint("msc://p/x.ckpt")


def test_plugin_pickles_without_clients(s3_env: S3Server) -> None:
    import pickle

    plugin = S3LightningCheckpoint(s3_env.region, endpoint=s3_env.endpoint_url)
    url = f"s3://manystore-test/{uuid.uuid4().hex}/p.ckpt"
    plugin.save_checkpoint({"a": 1}, url)
    copy = pickle.loads(pickle.dumps(plugin))
    assert copy.load_checkpoint(url, weights_only=True) == {"a": 1}
    assert repr(copy) == f"S3LightningCheckpoint(region={s3_env.region!r}, endpoint={s3_env.endpoint_url!r})"


def test_import_manystore_torch_does_not_import_lightning() -> None:
    code = (
        "import sys, manystore.torch; assert 'lightning' not in sys.modules, 'lightning imported'\n"
        "cls = manystore.torch.lightning.S3LightningCheckpoint\n"
        "from lightning.pytorch.plugins.io import CheckpointIO\n"
        "assert issubclass(cls, manystore.torch.lightning.LightningCheckpoint)\n"
        "assert issubclass(cls, CheckpointIO)\n"
        "try:\n    manystore.torch.nothing_here\nexcept AttributeError as e:\n    assert 'nothing_here' in str(e)\n"
        "else:\n    raise SystemExit('no AttributeError')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
