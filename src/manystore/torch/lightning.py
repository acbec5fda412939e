"""Lightning checkpoints on every backend: :class:`LightningCheckpoint` (``S3LightningCheckpoint``).

A :class:`lightning.pytorch.plugins.io.CheckpointIO` that saves, loads and removes
checkpoints at any URL manystore resolves (``msc://profile/...``, ``s3://``, ``gs://``,
``az://``, ``ais://``, local paths)::

    from lightning.pytorch import Trainer
    from manystore.torch.lightning import LightningCheckpoint

    trainer = Trainer(plugins=[LightningCheckpoint()], default_root_dir="msc://ckpt/run1")

Saves write the ``torch.save`` output through ``client.open(path, "wb")`` (a streamed
multipart upload on S3 and GCS, a spooled upload on the other object stores, a temporary
file renamed on close locally): nothing is visible until the whole
checkpoint is written, and a failed save leaves no object behind. Loads read through the
client's file object (one GET for a checkpoint up to 512 MiB, ranged reads pinned to the
object's ETag above that). The class works unchanged inside Lightning's
``AsyncCheckpointIO``.

``S3LightningCheckpoint(region, s3client_config=None, endpoint=None)`` is
s3torchconnector's signature, accepted as is: ``region``, ``endpoint`` and
``s3client_config`` configure the client of ``s3://`` URLs (see
:class:`LightningCheckpoint`). This module imports Lightning and PyTorch; ``import
manystore.torch`` does not import it.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import IO, Any, cast

import torch
from lightning.pytorch.plugins.io import CheckpointIO

from ..client import StorageClient
from ..config import StorageClientConfig
from ..errors import ObjectNotFoundError
from ..shortcuts import resolve_storage_client
from ..urls import parse_url, url_to_str

__all__ = ["LightningCheckpoint", "S3LightningCheckpoint"]

logger = logging.getLogger(__name__)

#: s3torchconnector's ``S3ClientConfig`` fields this module maps onto S3 profile options.
_S3_CONFIG_FIELDS = (
    "throughput_target_gbps",
    "part_size",
    "unsigned",
    "force_path_style",
    "max_attempts",
    "profile",
)
#: Parts in flight per Gbit/s of ``throughput_target_gbps`` (10 Gbit/s -> 16, the S3 default).
_PARTS_PER_GBPS = 1.6
_MIN_PART_SIZE, _MAX_PART_SIZE = 5 << 20, 5 << 30


def s3_profile_options(
    region: str | None, endpoint: str | None, s3client_config: Any | None
) -> dict[str, Any]:
    """The S3 provider options meaning what s3torchconnector's client arguments mean.

    Args:
        region: AWS region (``region_name``), or ``None``.
        endpoint: Endpoint URL (``endpoint_url``), or ``None``.
        s3client_config: An object with the fields of s3torchconnector's ``S3ClientConfig``
            (that class, or any object with the same fields), or ``None``. ``part_size`` sets
            ``multipart_chunksize``; ``throughput_target_gbps`` sets ``max_concurrency``
            (1.6 parts in flight per Gbit/s, at least 1); ``unsigned`` sends anonymous
            requests; ``force_path_style`` path-style addressing; ``max_attempts`` the
            transport's total attempts per request; ``profile`` the AWS profile name.

    Returns:
        Options for an ``s3`` storage provider (without ``base_path``).

    Raises:
        TypeError: ``s3client_config`` lacks one of the fields above.
        ValueError: A field has a value outside its range (names the field and the range).
    """
    options: dict[str, Any] = {}
    if region:
        options["region_name"] = region
    if endpoint:
        options["endpoint_url"] = endpoint
    if s3client_config is None:
        return options
    missing = [name for name in _S3_CONFIG_FIELDS if not hasattr(s3client_config, name)]
    if missing:
        raise TypeError(
            f"s3client_config {type(s3client_config).__name__} lacks {missing}; expected an "
            f"S3ClientConfig with fields {list(_S3_CONFIG_FIELDS)}"
        )
    part_size = s3client_config.part_size
    if not isinstance(part_size, int) or not _MIN_PART_SIZE <= part_size <= _MAX_PART_SIZE:
        raise ValueError(f"s3client_config.part_size={part_size!r}; expected an int from 5 MiB to 5 GiB")
    gbps = s3client_config.throughput_target_gbps
    if not isinstance(gbps, (int, float)) or isinstance(gbps, bool) or not gbps > 0:
        raise ValueError(f"s3client_config.throughput_target_gbps={gbps!r}; expected a positive number")
    attempts = s3client_config.max_attempts
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ValueError(f"s3client_config.max_attempts={attempts!r}; expected an int >= 1")
    options["multipart_chunksize"] = part_size
    options["max_concurrency"] = max(1, math.ceil(gbps * _PARTS_PER_GBPS))
    options["retries"] = {"total_max_attempts": attempts}
    if s3client_config.unsigned:
        options["signature_version"] = "UNSIGNED"
    if s3client_config.force_path_style:
        options["force_path_style"] = True
    if s3client_config.profile:
        options["profile_name"] = s3client_config.profile
    return options


class LightningCheckpoint(CheckpointIO):
    """A Lightning ``CheckpointIO`` storing checkpoints at manystore URLs.

    Pass it to ``Trainer(plugins=[...])`` (alone or wrapped in ``AsyncCheckpointIO``);
    ``default_root_dir``/``ModelCheckpoint(dirpath=...)`` and ``fit(ckpt_path=...)`` then
    take ``msc://`` URLs (through manystore's fsspec filesystem), and the plugin itself
    serves every URL manystore resolves.

    Args:
        region: s3torchconnector's region: the ``region_name`` of ``s3://`` URLs' client.
        s3client_config: s3torchconnector's ``S3ClientConfig`` (or an object with its
            fields) for ``s3://`` URLs, mapped as :func:`s3_profile_options` says.
        endpoint: Endpoint URL of ``s3://`` URLs' client (else ``AWS_ENDPOINT_URL``).

    With none of the three, every URL goes through
    :func:`manystore.shortcuts.resolve_storage_client` (profiles, path mappings, implicit
    profiles). With any of them, ``s3://bucket/...`` URLs use an S3 client built from
    them, and other URLs are refused: an ``msc://`` profile carries its own options.

    Raises:
        TypeError: ``s3client_config`` is not an ``S3ClientConfig``-like object.
        ValueError: One of its fields is out of range.
    """

    def __init__(
        self,
        region: str | None = None,
        s3client_config: Any | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.region = region
        self.endpoint = endpoint
        self.s3client_config = s3client_config
        # Validated now, so a bad config fails at construction rather than at the first save.
        self._s3_options = s3_profile_options(region, endpoint, s3client_config)
        self._overridden = region is not None or endpoint is not None or s3client_config is not None
        self._clients: dict[str, StorageClient] = {}
        self._lock = threading.Lock()
        self._init_ordering()

    def _init_ordering(self) -> None:
        # AsyncCheckpointIO saves on its own thread but removes on the caller's: a removal
        # must not run before, or be undone by, a save of the same path still in the queue.
        self._saves = threading.Condition()
        self._saving: dict[str, int] = {}  # path -> saves running now
        self._cancelled: dict[str, int] = {}  # removed before stored -> the remover's thread

    # ------------------------------------------------------------ CheckpointIO
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """``torch.save`` the checkpoint to ``path``, stored atomically when complete.

        Args:
            checkpoint: Model and trainer state, as Lightning builds it.
            path: Target URL or path. Existing checkpoints at ``path`` are replaced.
            storage_options: Not supported (as Lightning's ``TorchCheckpointIO``).

        Raises:
            TypeError: ``storage_options`` is given, or ``path`` is not a str or path object.
        """
        if storage_options is not None:
            raise TypeError(
                f"storage_options={storage_options!r} is not supported by {type(self).__name__}; "
                "expected None (configure the profile instead)"
            )
        client, key = self._resolve(path)
        name = url_to_str(path)
        with self._saves:
            remover = self._cancelled.pop(name, None)
            if remover is not None and remover != threading.get_ident():
                logger.debug("save_checkpoint: %s was removed before it was stored; not saved", name)
                return
            self._saving[name] = self._saving.get(name, 0) + 1
        try:
            with client.open(key, "wb") as stream:
                torch.save(checkpoint, cast("IO[bytes]", stream))
        finally:
            with self._saves:
                self._saving[name] -= 1
                if not self._saving[name]:
                    del self._saving[name]
                self._saves.notify_all()

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """``torch.load`` the checkpoint at ``path``.

        Args:
            path: Source URL or path.
            map_location: As ``torch.load``'s.
            weights_only: As ``torch.load``'s (``None``: PyTorch's default, as Lightning 2.6).

        Returns:
            The loaded checkpoint dictionary.

        Raises:
            FileNotFoundError: No checkpoint at ``path`` (names it).
            TypeError: ``path`` is not a str or path object.
        """
        client, key = self._resolve(path)
        try:
            stream = client.open(key, "rb")
        except ObjectNotFoundError as exc:
            raise exc.named(url_to_str(path)) from exc
        with stream:
            loaded: dict[str, Any] = torch.load(
                cast("IO[bytes]", stream), map_location=map_location, weights_only=weights_only
            )
        return loaded

    def remove_checkpoint(self, path: Any) -> None:
        """Delete the checkpoint at ``path``; a checkpoint already gone is not an error.

        A save of ``path`` running on another thread (``AsyncCheckpointIO``) is waited for
        first. If nothing is stored at ``path`` yet, the next save of ``path`` made on
        another thread (one still queued in ``AsyncCheckpointIO``) is dropped, so the removal
        holds; a later save from this thread is kept.

        Raises:
            TypeError: ``path`` is not a str or path object.
        """
        client, key = self._resolve(path)
        name = url_to_str(path)
        with self._saves:
            self._saves.wait_for(lambda: name not in self._saving)
        try:
            client.delete(key)
        except FileNotFoundError:
            logger.debug("remove_checkpoint: %s does not exist", name)
            with self._saves:
                self._cancelled[name] = threading.get_ident()

    def teardown(self) -> None:
        """Forget the S3 clients built from ``region``/``endpoint``/``s3client_config``."""
        with self._lock:
            self._clients.clear()

    # ------------------------------------------------------------------ helpers
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_clients"] = {}
        for name in ("_lock", "_saves", "_saving", "_cancelled"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._init_ordering()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(region={self.region!r}, endpoint={self.endpoint!r})"

    def _resolve(self, path: Any) -> tuple[StorageClient, str]:
        url = url_to_str(path)
        if not isinstance(url, str):
            raise TypeError(
                f"checkpoint path {path!r} is a {type(path).__name__}; expected a URL string "
                "(msc://, s3://, gs://, az://, ais://) or a local path"
            )
        if not self._overridden:
            return resolve_storage_client(url)
        if not url.lower().startswith("s3://"):
            raise ValueError(
                f"checkpoint path {url!r}: region/endpoint/s3client_config apply to s3:// URLs only; "
                "expected an s3:// URL, or a LightningCheckpoint() without them (a profile carries its options)"
            )
        parsed = parse_url(url)
        with self._lock:
            client = self._clients.get(parsed.profile)
            if client is None:
                bucket = parsed.profile[len("_s3-") :]
                options = {**self._s3_options, "base_path": bucket}
                profile = {"storage_provider": {"type": "s3", "options": options}}
                config = StorageClientConfig.from_dict(
                    {"profiles": {parsed.profile: profile}}, parsed.profile, skip_validation=True
                )
                client = self._clients[parsed.profile] = StorageClient(config)
        return client, parsed.path


class S3LightningCheckpoint(LightningCheckpoint):
    """s3torchconnector's name for :class:`LightningCheckpoint` (same arguments, every backend)."""
