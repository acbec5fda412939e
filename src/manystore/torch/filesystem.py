"""MSC 1.3.1's ``MultiStorageFileSystem``, ``MultiStorageFileSystemReader`` and ``MultiStorageFileSystemWriter``.

The reference's DCP classes, with the reference's signatures, built on
:mod:`manystore.torch.dcp`: any URL manystore resolves, streamed rank files, a one-PUT
``.metadata``, and loads that fetch only the planned byte ranges (``thread_count`` of
them at a time). Also reachable as ``manystore.contrib.torch``.
"""

from __future__ import annotations

import os

from ._dcp_reader import DCPOptimizedConstructor
from .dcp import FileSystem, StorageReader, StorageWriter

__all__ = ["MultiStorageFileSystem", "MultiStorageFileSystemReader", "MultiStorageFileSystemWriter"]


class MultiStorageFileSystem(FileSystem):
    """torch's ``FileSystemBase`` over every URL manystore resolves (``msc://``, ``s3://``, paths...)."""

    def __init__(self) -> None:
        super().__init__()


class MultiStorageFileSystemReader(StorageReader):
    """A DCP ``StorageReader`` of a checkpoint at any manystore URL.

    Args:
        path: The checkpoint's URL or path.
        thread_count: Ranged requests in flight while loading (the reference's prefetch threads).

    Raises:
        ValueError: ``thread_count`` is not an int >= 1.
    """

    def __init__(self, path: str | os.PathLike[str], thread_count: int = 1) -> None:
        if isinstance(thread_count, bool) or not isinstance(thread_count, int) or thread_count < 1:
            raise ValueError(f"thread_count must be an int >= 1, got {thread_count!r}")
        super().__init__(path, reader_constructor=DCPOptimizedConstructor(max_concurrency=thread_count))
        self.fs = MultiStorageFileSystem()
        self.fs.reader_constructor = self._reader_constructor
        self.path = self.fs.init_path(path)
        self.thread_count = thread_count


class MultiStorageFileSystemWriter(StorageWriter):
    """A DCP ``StorageWriter`` (and ``AsyncStager``) to any manystore URL.

    Args:
        path: The checkpoint's URL or path.
        single_file_per_rank: One file per rank (else one per tensor/blob).
        sync_files: fsync written files (local paths; an object-store upload is durable once complete).
        thread_count: Files written in parallel per rank.
        per_thread_copy_ahead: Bytes copied from the GPU ahead of writing.
        cache_staged_state_dict: Keep the staged CPU state dict between ``async_save`` calls.
        overwrite: Allow overwriting an existing checkpoint (else ``RuntimeError``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        single_file_per_rank: bool = True,
        sync_files: bool = True,
        thread_count: int = 1,
        per_thread_copy_ahead: int = 10_000_000,
        cache_staged_state_dict: bool = False,
        overwrite: bool = True,
    ) -> None:
        super().__init__(
            path,
            thread_count=thread_count,
            single_file_per_rank=single_file_per_rank,
            sync_files=sync_files,
            per_thread_copy_ahead=per_thread_copy_ahead,
            cache_staged_state_dict=cache_staged_state_dict,
            overwrite=overwrite,
        )
        self.fs = MultiStorageFileSystem()
        self.path = self.fs.init_path(path)
