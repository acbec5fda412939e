"""``torch.distributed.checkpoint`` storage on every backend: s3torchconnector's DCP classes.

    import torch.distributed.checkpoint as dcp
    from manystore.torch.dcp import StorageReader, StorageWriter

    dcp.save(state_dict, storage_writer=StorageWriter("msc://ckpt/step-100"))
    dcp.load(state_dict, storage_reader=StorageReader("msc://ckpt/step-100"))

The checkpoint layout is torch's own (``__<rank>_<n>.distcp`` files and ``.metadata``), so
checkpoints move freely between these classes, torch's ``FileSystemWriter``/``Reader`` and
s3torchconnector's. Writes stream each rank's file as a multipart upload (no local copy)
and store ``.metadata`` with one PUT (no temporary object and rename). Loads fetch only
the byte ranges of the load plan: sorted, coalesced and concurrent (see
:func:`manystore.torch._dcp_reader.dcp_optimized`).

``S3StorageWriter(region, path, ...)`` and ``S3StorageReader(region, path, ...)`` keep the
seed's signature; ``StorageWriter(path)`` / ``StorageReader(path)`` need no region or
endpoint: the URL's profile carries them.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import posixpath
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch.distributed._shard._utils import narrow_tensor_by_index
from torch.distributed.checkpoint.filesystem import (
    CURRENT_DCP_VERSION,
    FileSystemBase,
    FileSystemReader,
    FileSystemWriter,
    _StoragePrefix,
)
from torch.distributed.checkpoint.metadata import Metadata
from torch.distributed.checkpoint.planner import LoadItemType, LoadPlan, LoadPlanner, ReadItem, SavePlan
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future

from ..client import StorageClient
from ..errors import InvalidURLError
from ..urls import parse_url, url_to_str
from ._ckpt_client import client_options, resolve
from ._dcp_direct import copy_into
from ._dcp_reader import DCPOptimizedConstructor, dcp_optimized
from .writer import Writer

__all__ = [
    "FileSystem",
    "S3FileSystem",
    "S3StorageReader",
    "S3StorageWriter",
    "StorageReader",
    "StorageWriter",
]

_METADATA = ".metadata"


def _join(path: str | os.PathLike[str], suffix: str) -> str:
    text = url_to_str(path)
    if "://" in text:
        return text.rstrip("/") + "/" + suffix
    return os.path.join(text, suffix)


class FileSystem(FileSystemBase):
    """torch's ``FileSystemBase`` over manystore URLs (``msc://``, ``s3://``, ``gs://``, ``az://``,
    ``ais://``, local paths).

    Args:
        region: AWS region of ``s3://`` URLs (s3torchconnector's first argument).
        s3_client: Not supported (s3torchconnector's own client); pass ``endpoint``/
            ``s3client_config``, or use a profile.
        s3client_config: ``ClientConfig`` options of ``s3://`` URLs.
        reader_constructor: What ``create_stream(path, "rb")`` returns: a DCP-optimized
            constructor serves the ranges registered for the file, any other reader
            constructor (``ReaderConstructor.sequential()``, ``range_based()``) is called as the
            seed calls it, ``constructor(bucket, key, get_object_info, get_stream)``; ``None`` opens the
            object with read-ahead.
        endpoint: S3 endpoint URL of ``s3://`` URLs.

    Raises:
        TypeError: ``s3_client`` was given.
    """

    def __init__(
        self,
        region: str | None = None,
        s3_client: Any = None,
        s3client_config: Any = None,
        reader_constructor: Any = None,
        endpoint: str | None = None,
    ) -> None:
        if s3_client is not None:
            raise TypeError(
                "FileSystem(s3_client=...) is s3torchconnector's own client and is not supported: "
                "pass endpoint=/s3client_config=, or use an msc:// profile"
            )
        if s3client_config is not None:
            client_options(s3client_config)
        self.region, self.endpoint, self.s3client_config = region, endpoint, s3client_config
        self.reader_constructor = reader_constructor
        self._path: str = ""

    def resolve(self, path: str | os.PathLike[str]) -> tuple[StorageClient, str]:
        """The client and key serving ``path``."""
        return resolve(path, self.region, self.endpoint, self.s3client_config)

    @contextmanager
    def create_stream(self, path: str | os.PathLike[str], mode: str) -> Generator[io.IOBase, None, None]:
        """A stream writing (``wb``: a streamed upload, stored when the block ends) or reading (``rb``) ``path``.

        Raises:
            ValueError: ``mode`` is neither ``rb`` nor ``wb``.
        """
        if mode == "wb":
            with Writer(path, self.region, self.endpoint, self.s3client_config) as writer:
                yield writer
            return
        if mode != "rb":
            raise ValueError(f"create_stream mode {mode!r}: expected 'rb' or 'wb'")
        client, key = self.resolve(path)
        constructor = self.reader_constructor
        stream: Any
        if isinstance(constructor, DCPOptimizedConstructor):
            stream = constructor(client, key, url_to_str(path))
        elif constructor is not None:  # the seed's shape: (bucket, key, get_object_info, get_stream)
            from ._reader import ObjectSource

            source = ObjectSource(client, key)
            stream = constructor(_bucket_of(client), key, source.info, source)
        else:
            stream = client.open(key, "rb")
        with stream:
            yield stream

    def concat_path(self, path: str | os.PathLike[str], suffix: str) -> str:
        """``path`` joined with ``suffix`` (``/`` for URLs, the OS separator for local paths)."""
        return _join(path, suffix)

    def init_path(self, path: str | os.PathLike[str]) -> str:
        """``path`` as a string (checked to be a URL or path manystore serves).

        Raises:
            InvalidURLError: ``path`` cannot be parsed.
            ValueError: ``region``/``endpoint``/``s3client_config`` were given for a URL that
                is not ``s3://``.
        """
        text = url_to_str(path)
        self.resolve(text)
        self._path = text
        return text

    def rename(self, path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> None:
        """Move an object (server-side copy and delete within a profile; else read, write, delete)."""
        src_client, src = self.resolve(path)
        dest_client, dest = self.resolve(new_path)
        if src_client is dest_client:
            src_client.copy(src, dest)
        else:
            dest_client.write(dest, src_client.read(src))
        src_client.delete(src)

    def mkdir(self, path: str | os.PathLike[str]) -> None:
        """Create the directory of a local path; object stores need none."""
        client, key = self.resolve(path)
        if client.is_default_profile():
            os.makedirs("/" + key, exist_ok=True)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        """Whether manystore can serve ``checkpoint_id`` (a URL of a known scheme or a path)."""
        try:
            parse_url(checkpoint_id)
        except (InvalidURLError, TypeError, ValueError):
            return False
        return True

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """Whether an object (or file) exists at ``path``."""
        client, key = self.resolve(path)
        return client.is_file(key)

    def rm_file(self, path: str | os.PathLike[str]) -> None:
        """Delete the object at ``path``.

        Raises:
            FileNotFoundError: Nothing is stored at ``path``.
        """
        client, key = self.resolve(path)
        client.delete(key)

    def ls(self, path: str | os.PathLike[str]) -> list[str]:
        """URLs of the objects under ``path`` (recursively)."""
        client, key = self.resolve(path)
        prefix = key.rstrip("/") + "/"
        base = url_to_str(path).rstrip("/") + "/"
        return [base + m.key[len(prefix) :] for m in client.list(prefix, include_directories=False)]


def _split_region_path(region: Any, path: Any, cls: str) -> tuple[str | None, str | os.PathLike[str]]:
    if path is None:  # StorageWriter(path): no region
        if region is None:
            raise TypeError(f"{cls}() needs a checkpoint path or URL")
        return None, region
    return region, path


class StorageWriter(FileSystemWriter):
    """``StorageWriter`` for ``torch.distributed.checkpoint.save``/``async_save`` on every backend.

    Called as ``StorageWriter(path)`` or, as s3torchconnector, ``StorageWriter(region, path)``.

    Args:
        region: AWS region of an ``s3://`` path, or the path itself when ``path`` is omitted.
        path: Checkpoint URL (a "directory": files go under it).
        s3client_config: ``ClientConfig`` options of an ``s3://`` path.
        prefix_strategy: ``rank -> file-name prefix`` (s3torchconnector's prefix strategies
            fit); default ``__<rank>_`` as torch.
        thread_count: Files written in parallel per rank (each a streamed upload).
        endpoint: S3 endpoint URL of an ``s3://`` path.
        **kwargs: torch's ``FileSystemWriter`` options: ``single_file_per_rank``,
            ``per_thread_copy_ahead``, ``cache_staged_state_dict``, ``overwrite``,
            ``sync_files`` (local paths: fsync each file; object stores: an upload is
            durable when it completes, so there is nothing to sync).
    """

    def __init__(
        self,
        region: str | os.PathLike[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        s3client_config: Any = None,
        prefix_strategy: Callable[[int], str] | None = None,
        thread_count: int = 1,
        endpoint: str | None = None,
        **kwargs: Any,
    ) -> None:
        region_, path_ = _split_region_path(region, path, type(self).__name__)
        sync = kwargs.pop("sync_files", False)
        super().__init__(path=url_to_str(path_), sync_files=sync, thread_count=thread_count, **kwargs)
        self.fs: FileSystem = FileSystem(  # type: ignore[assignment]
            cast(str | None, region_), s3client_config=s3client_config, endpoint=endpoint
        )
        self.path = self.fs.init_path(path_)
        if prefix_strategy is not None and not callable(prefix_strategy):
            raise TypeError(
                f"prefix_strategy must be callable (rank -> prefix), got {type(prefix_strategy).__name__}"
            )
        self.prefix_strategy = prefix_strategy

    @property
    def sync_files(self) -> bool:
        """fsync written files: only meaningful (and only done) for local paths."""
        return self._sync_files and self._is_local()

    @sync_files.setter
    def sync_files(self, value: bool) -> None:
        self._sync_files = bool(value)

    def _is_local(self) -> bool:
        fs = getattr(self, "fs", None)
        if not isinstance(fs, FileSystem) or not self.path:
            return False
        return fs.resolve(self.path)[0].is_default_profile()

    def prepare_global_plan(self, plans: list[SavePlan]) -> list[SavePlan]:
        """Give each rank its file-name prefix (``prefix_strategy`` if set, else torch's)."""
        if self.prefix_strategy is None:
            return super().prepare_global_plan(plans)
        strategy = self.prefix_strategy
        return [
            dataclasses.replace(plan, storage_data=_StoragePrefix(strategy(i)))
            if plan.storage_data is None or isinstance(plan.storage_data, _StoragePrefix)
            else plan
            for i, plan in enumerate(plans)
        ]

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        """Store the checkpoint's ``.metadata`` with one PUT (an atomic overwrite, no rename)."""
        metadata.version = CURRENT_DCP_VERSION
        metadata.storage_data = {wr.index: wr.storage_data for wr_list in results for wr in wr_list}
        metadata.storage_meta = self.storage_meta()
        per_rank = not self.use_collectives and self.rank is not None
        client, key = self.fs.resolve(self._get_metadata_path(self.rank if per_rank else None))
        client.write(key, pickle.dumps(metadata))

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        """Whether manystore can serve ``checkpoint_id``."""
        return FileSystem.validate_checkpoint_id(checkpoint_id)


class StorageReader(FileSystemReader):
    """``StorageReader`` for ``torch.distributed.checkpoint.load`` on every backend.

    Called as ``StorageReader(path)`` or, as s3torchconnector, ``StorageReader(region, path)``.
    With the default ``dcp_optimized()`` reader constructor a load fetches only the byte
    ranges its plan needs, coalesced and concurrently.

    Args:
        region: AWS region of an ``s3://`` path, or the path itself when ``path`` is omitted.
        path: Checkpoint URL.
        s3client_config: ``ClientConfig`` options of an ``s3://`` path.
        reader_constructor: ``dcp_optimized(max_gap_size)`` (default) or another reader
            constructor (``ReaderConstructor.sequential()``/``range_based()``, one reader per file).
        endpoint: S3 endpoint URL of an ``s3://`` path.
    """

    def __init__(
        self,
        region: str | os.PathLike[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        s3client_config: Any = None,
        reader_constructor: Any = None,
        endpoint: str | None = None,
    ) -> None:
        region_, path_ = _split_region_path(region, path, type(self).__name__)
        super().__init__(url_to_str(path_))
        self._reader_constructor = reader_constructor if reader_constructor is not None else dcp_optimized()
        self.fs: FileSystem = FileSystem(  # type: ignore[assignment]
            cast(str | None, region_),
            s3client_config=s3client_config,
            reader_constructor=self._reader_constructor,
            endpoint=endpoint,
        )
        self.path = self.fs.init_path(path_)
        self.sync_files = False

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        """The checkpoint's ``.metadata`` (one GET)."""
        client, key = cast(FileSystem, self.fs).resolve(self._get_metadata_path(kwargs.get("rank")))
        metadata = pickle.loads(client.read(key))
        if getattr(metadata, "storage_meta", None) is None:
            from torch.distributed.checkpoint.metadata import StorageMeta

            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return cast(Metadata, metadata)

    def prepare_local_plan(self, plan: LoadPlan) -> LoadPlan:
        """Sort the plan by file and offset; register its ranges with a DCP-optimized constructor."""
        plan.items.sort(
            key=lambda item: (
                self.storage_data[item.storage_index].relative_path,
                self.storage_data[item.storage_index].offset,
            )
        )
        if isinstance(self._reader_constructor, DCPOptimizedConstructor):
            self._reader_constructor.set_item_ranges_by_file(plan.items, self.storage_data, self.path)
        return plan

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        """Fetch the planned ranges (coalesced, concurrent) and hand each item to ``planner``."""
        constructor = self._reader_constructor
        if not isinstance(constructor, DCPOptimizedConstructor):
            return super().read_data(plan, planner)
        per_file: dict[str, list[ReadItem]] = {}
        for item in plan.items:
            per_file.setdefault(self.storage_data[item.storage_index].relative_path, []).append(item)
        client, base = cast(FileSystem, self.fs).resolve(self.path)
        key_of = {posixpath.join(base, rel) if base else rel: rel for rel in per_file}
        files = [(key, [self._span(req) for req in per_file[rel]]) for key, rel in key_of.items()]
        ends: dict[str, int] = {}  # a file ends where its last item does (torch writes them back to back)
        for info in self.storage_data.values():
            ends[info.relative_path] = max(ends.get(info.relative_path, 0), info.offset + info.length)
        sizes = {key: ends[rel] for key, rel in key_of.items()}
        for key, reader in constructor.readers(client, files, sizes=sizes):
            reqs = sorted(per_file[key_of[key]], key=lambda r: self.storage_data[r.storage_index].offset)
            for req in reqs:
                self._load_item(req, reader, planner)
        fut: Future[None] = Future()
        fut.set_result(None)
        return fut

    def _span(self, req: ReadItem) -> tuple[int, int]:
        info = self.storage_data[req.storage_index]
        return info.offset, info.offset + info.length

    def _load_item(self, req: ReadItem, reader: Any, planner: LoadPlanner) -> None:
        info = self.storage_data[req.storage_index]
        raw = reader.view(info.offset, info.length)
        stream = self.transforms.transform_load_stream(req, info.transform_descriptors or (), raw)
        if req.type == LoadItemType.BYTE_IO:
            planner.load_bytes(req, io.BytesIO(stream.read(-1)))
            return
        if not info.transform_descriptors and not any(req.storage_offsets):
            target = planner.resolve_tensor(req).detach()
            if copy_into(raw, target):  # one copy from the fetched bytes, no torch.load
                planner.commit_tensor(req, target)
                return
            raw.seek(0)  # refused: torch.load reads the item from its start
        if not stream.seekable():
            stream = io.BytesIO(stream.read(-1))
        tensor = torch.load(stream, map_location="cpu", weights_only=True)
        tensor = narrow_tensor_by_index(tensor, req.storage_offsets, req.lengths)
        target = planner.resolve_tensor(req).detach()
        if target.size() != tensor.size():
            raise ValueError(
                f"checkpoint item {req.storage_index} has size {tuple(tensor.size())}, "
                f"expected {tuple(target.size())} by the state dict"
            )
        target.copy_(tensor)
        planner.commit_tensor(req, target)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        """Whether manystore can serve ``checkpoint_id``."""
        return FileSystem.validate_checkpoint_id(checkpoint_id)


#: s3torchconnector's names.
S3FileSystem = FileSystem
S3StorageWriter = StorageWriter
S3StorageReader = StorageReader


def _bucket_of(client: Any) -> str:
    """The seed's ``bucket`` of a client: the authority of its URL prefix (``""`` for local paths)."""
    _, sep, rest = client.url_prefix.partition("://")
    return rest.partition("/")[0] if sep else ""
